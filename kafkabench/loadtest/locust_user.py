"""Locust users for Kafka: `KafkaClient`, `KafkaUser`, `KafkaConsumerUser`, `KafkaLoadShape`.

The only kafkabench module that imports locust (which monkey-patches the process with gevent):
locustfiles import it, nothing else does. `kafkabench.locust_results` runs Locust as a
subprocess and reads its CSV files into DataFrames.

confluent-kafka is a C client that gevent cannot patch, so nothing here ever blocks the gevent
hub: a task calls `produce()` and, every `POLL_EVERY` sends, `poll(0)`; a background greenlet
per producer serves delivery reports every millisecond; a consumer task calls `consume(n, 0)`
and sleeps in gevent when idle; flushing at the end is a bounded loop of `poll(0)` and
`gevent.sleep`, and closing a consumer (which leaves the group, a blocking call) runs in
gevent's thread pool with a timeout.

Every delivery report fires Locust's `request` event (`request_type="produce"`, name = topic,
`response_time` = publish latency in ms, `response_length` = bytes, `exception` = the delivery
error); every consumed message fires `request_type="consume"` with the end-to-end latency
(receive time minus the message's Kafka timestamp); every rebalance a consumer sees fires
`request_type="rebalance"` (name "assign", "revoke" or "lost"). A consumer user with a
processing stage (`KafkaConsumerUser.processing`, `--kafka-processing`) fires, per message it
handles, `"process"` (the processing time, inline retries included; a failure when the message
failed its last attempt), `"retry"` (forwarded to a retry topic) or `"filter"` (dropped).

Configured from Locust's command line or config file (`locust.conf`): `--kafka-bootstrap`,
`--kafka-topic`, `--kafka-profile`, `--kafka-conf key=value`, ...; run `locust -f X --help`.
"""

from __future__ import annotations

import itertools
import logging
import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, ClassVar

import gevent
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from gevent.lock import Semaphore
from locust import LoadTestShape, User, events, task
from locust.runners import MasterRunner, WorkerRunner
from locust.user.task import LOCUST_STATE_STOPPING
from locust.user.wait_time import constant_throughput

from kafkabench.cluster.admin import admin_client, create_topic
from kafkabench.cluster.local import check_reachable, resolve_bootstrap
from kafkabench.core.errors import ConfigError, KafkabenchError, NoClusterError
from kafkabench.core.log import LIBRDKAFKA_LOG, librdkafka_logger
from kafkabench.engine.batches import store_offsets
from kafkabench.engine.stage import Handled, Outcome, Stage, Stopped
from kafkabench.engine.workers import fewer_gc_pauses
from kafkabench.loadtest.orders import order_messages
from kafkabench.loadtest.shapes import DEFAULT_SHAPE, DEFAULT_STEPS, SHAPES, options_tick
from kafkabench.spec.processing import Processing, load_processing_file, processing_from_spec
from kafkabench.spec.profile import ClientProfile, load_profile, parse_kv, route_settings

log = logging.getLogger(__name__)

DEFAULT_TOPIC = "kb-locust"
DEFAULT_PARTITIONS = 6
# Delivery reports are served at least this often even when no task runs. msg.latency() is
# read when a report is served, so the wait until then is part of the publish latency: 1 ms
# matches the resolution of Locust's statistics and costs about 1% of a core.
POLL_INTERVAL_S = 0.001
# A task's produce() also serves the ready reports, every this many sends: sooner, when a
# task sends many messages between two polls of the greenlet. Every send: measured ~9% fewer
# msgs/s at full speed than every 32nd (a poll costs about as much as a send).
POLL_EVERY = 32
# A consumer task with nothing to read sleeps this long (in gevent) before it asks again.
IDLE_S = 0.005
FLUSH_TIMEOUT_S = 10.0
# A stage's wait (processing time, backoff) checks this often whether its user is stopping.
STOP_CHECK_S = 0.1
# Reachability check at start: a dead cluster is an error message within seconds.
CONNECT_TIMEOUT_S = 10.0
TOPIC_TIMEOUT_S = 30.0
# Locust writes its CSV files every second (locust.stats.CSV_STATS_INTERVAL_SEC).
CSV_SETTLE_S = 1.2
#: Task runs per second of a paced producer user at most (see `KafkaUser.batch`).
TASK_RUNS_MAX = 100
#: Messages per task run of a producer user at full speed.
FULL_SPEED_BATCH = 100

# Locust consumers can be many per process: librdkafka's pre-fetch (kafkabench's default of
# up to 64 MB queued per consumer) would multiply. Applied unless the profile sets them.
LOCUST_CONSUMER_DEFAULTS: Mapping[str, Any] = {"queued.max.messages.kbytes": 8192}


class KafkaDeliveryError(Exception):
    """A delivery report's error, as Locust records it (grouped by its text)."""

    @classmethod
    def from_error(cls, err: KafkaError) -> KafkaDeliveryError:
        """Wrap a `KafkaError`: "MSG_SIZE_TOO_LARGE: Broker: Message size too large"."""
        return cls(f"{err.name()}: {err.str()}")


class ProcessingError(Exception):
    """A message that failed its last attempt in a processing stage, as Locust records it
    (grouped by its text: the dead letter's `error` header)."""


# --- command line --------------------------------------------------------------------------


@events.init_command_line_parser.add_listener
def _add_arguments(parser: Any) -> None:
    group = parser.add_argument_group(
        "kafkabench", "Kafka settings (kafkabench.locust_user); also accepted in locust.conf")
    group.add_argument("--kafka-bootstrap", default=None, env_var="KAFKABENCH_BOOTSTRAP",
                       help="bootstrap servers (default: $KAFKABENCH_BOOTSTRAP, else the running "
                            "embedded cluster `kafkabench cluster up` started)")
    group.add_argument("--kafka-topic", default=None,
                       help="topic to produce to / consume from (default: the user class's)")
    group.add_argument("--kafka-profile", default=None,
                       help="client profile: a preset name (default, throughput, latency, ...) "
                            "or a kafkabench/OMB driver YAML file; TLS/SASL go in its `common`")
    group.add_argument("--kafka-conf", action="append", default=[], metavar="KEY=VALUE",
                       help="librdkafka setting on top of the profile (repeatable); prefix "
                            "producer. or consumer. to give it to one role only")
    group.add_argument("--kafka-partitions", type=int, default=DEFAULT_PARTITIONS,
                       help="partitions of a topic kafkabench creates (existing topics are "
                            "used as they are)")
    group.add_argument("--kafka-rate", type=float, default=None,
                       help="messages/s per producer user, 0 = as fast as it can "
                            "(default: the user class's)")
    group.add_argument("--kafka-group", default=None,
                       help="consumer group of consumer users (default: kb-locust-<topic>)")
    group.add_argument("--kafka-shape", default=DEFAULT_SHAPE, choices=SHAPES,
                       help="load shape of locustfiles with a KafkaLoadShape: constant (-u at "
                            "-r), step (--kafka-steps equal steps up to -u over -t) or spike "
                            "(a quarter of -u, -u in the middle fifth of -t)")
    group.add_argument("--kafka-steps", type=int, default=DEFAULT_STEPS,
                       help="steps of the step shape")
    group.add_argument("--kafka-flush-timeout", type=float, default=FLUSH_TIMEOUT_S,
                       help="seconds a stopping producer waits for outstanding delivery "
                            "reports; what is left then is purged and counted as failed")
    group.add_argument("--kafka-producer-per-user", action="store_true", default=False,
                       help="one producer per user instead of one shared per process")
    group.add_argument("--kafka-processing", default=None, metavar="FILE.yaml",
                       help="processing stage of every consumer user, replacing the user "
                            "class's `processing`: a YAML mapping of kafkabench.processing."
                            "Processing fields (time_ms, transient_fraction, poison_fraction, "
                            "retry, backoff, dead_letter, filter_fraction, output, seed)")
    group.add_argument("--kafka-metrics-port", type=int, default=None, metavar="PORT",
                       help="serve produced/consumed counts, latencies and errors for "
                            "Prometheus on this port (kafkabench.metrics.LocustMetrics; on the "
                            "master of a distributed run)")


def parse_conf(pairs: Sequence[str]) -> dict[str, dict[str, str]]:
    """`--kafka-conf` values as profile sections, by `config.route_settings` without a role.

    Args:
        pairs: "key=value" strings; "producer.key=value" and "consumer.key=value" name the role.

    Returns:
        {"common": {...}, "producer": {...}, "consumer": {...}}; an unprefixed setting that only
        one role accepts goes to that role, connection settings and the rest to every client.

    Raises:
        ConfigError: a pair without "=" (librdkafka checks the settings when they are laid
            over the profile).
    """
    return route_settings(dict(parse_kv(pair, "--kafka-conf") for pair in pairs))


@dataclass(frozen=True, slots=True)
class KafkaSettings:
    """What every Kafka user of one Locust process shares, resolved from its options.

    Attributes:
        bootstrap: bootstrap servers.
        profile: the client profile with `--kafka-conf` applied.
        topic: `--kafka-topic`, or None for each user class's own.
        partitions: partitions of topics kafkabench creates.
        rate: `--kafka-rate`, or None for each user class's own.
        group: `--kafka-group`, or None for kb-locust-<topic>.
        flush_timeout_s: bound of the final flush.
        share_producer: one producer per process (True) or per user.
        processing: `--kafka-processing`, or None for each consumer user class's own.
    """

    bootstrap: str
    profile: ClientProfile
    topic: str | None = None
    partitions: int = DEFAULT_PARTITIONS
    rate: float | None = None
    group: str | None = None
    flush_timeout_s: float = FLUSH_TIMEOUT_S
    share_producer: bool = True
    processing: Processing | None = None
    created: set[str] = field(default_factory=set, compare=False)

    @classmethod
    def from_options(cls, options: Any, *, resolve: bool = True) -> KafkaSettings:
        """Settings from Locust's parsed options.

        Args:
            options: `environment.parsed_options` (None: all defaults).
            resolve: look up the cluster (False on a master, which may not reach it).

        Raises:
            ConfigError: a bad profile or setting. NoClusterError: no cluster found.
        """
        get = partial(getattr, options) if options is not None else (lambda _k, d=None: d)
        profile = load_profile(get("kafka_profile", None)).with_settings(
            **parse_conf(get("kafka_conf", None) or []))
        partitions = get("kafka_partitions", DEFAULT_PARTITIONS)
        if partitions is None or partitions < 1:
            raise ConfigError(f"--kafka-partitions {partitions!r}: expected an integer >= 1")
        rate = get("kafka_rate", None)
        if rate is not None and rate < 0:
            raise ConfigError(f"--kafka-rate {rate!r}: expected messages/s >= 0")
        processing = load_processing(get("kafka_processing", None))
        bootstrap = get("kafka_bootstrap", None)
        if resolve:
            try:
                bootstrap = resolve_bootstrap(bootstrap)
            except NoClusterError:
                raise NoClusterError("no Kafka cluster: pass --kafka-bootstrap, set "
                                     "KAFKABENCH_BOOTSTRAP, or start one with `kafkabench "
                                     "cluster up`") from None
        return cls(bootstrap=bootstrap or "", profile=profile, topic=get("kafka_topic", None),
                   partitions=partitions, rate=rate, group=get("kafka_group", None),
                   flush_timeout_s=get("kafka_flush_timeout", FLUSH_TIMEOUT_S),
                   share_producer=not get("kafka_producer_per_user", False),
                   processing=processing)

    def producer_config(self, **overrides: Any) -> dict[str, Any]:
        """confluent-kafka producer settings."""
        return self.profile.producer_config(self.bootstrap, **overrides)

    def consumer_config(self, group: str, **overrides: Any) -> dict[str, Any]:
        """confluent-kafka consumer settings, with `LOCUST_CONSUMER_DEFAULTS` where unset."""
        conf = self.profile.consumer_config(self.bootstrap, group, **overrides)
        for key, value in LOCUST_CONSUMER_DEFAULTS.items():
            if key not in self.profile.common and key not in self.profile.consumer:
                conf[key] = value
        return conf

    def check_reachable(self, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
        """Raise ClusterError when the cluster does not answer within `timeout_s`."""
        check_reachable(self.bootstrap, self.profile.common, timeout_s)

    def ensure_topic(self, topic: str) -> None:
        """Create `topic` unless it exists (once per process, in the thread pool, not the hub).

        Raises:
            KafkabenchError: the topic could not be looked up or created in time.
        """
        if topic in self.created:
            return
        with _topic_lock:
            if topic in self.created:
                return
            job = gevent.get_hub().threadpool.spawn(
                _ensure_topic, self.bootstrap, topic, self.partitions,
                self.profile.replication_factor or -1,  # -1: the broker's default
                dict(self.profile.topic_config), dict(self.profile.common))
            try:
                job.get(timeout=TOPIC_TIMEOUT_S + CONNECT_TIMEOUT_S)
            except gevent.Timeout:
                raise KafkabenchError(f"topic {topic!r} not ready within "
                                      f"{TOPIC_TIMEOUT_S + CONNECT_TIMEOUT_S:.0f} s") from None
            self.created.add(topic)


def load_processing(path: str | None) -> Processing | None:
    """`--kafka-processing FILE.yaml` as a `Processing` (None: no file given).

    Raises:
        ConfigError: a missing or bad file, or a bad setting, named with the option.
    """
    return load_processing_file(path, "--kafka-processing") if path else None


def class_processing(user_class: type) -> Processing | None:
    """A consumer user class's `processing` attribute as a `Processing` (None: no stage).

    Raises:
        ConfigError: a bad setting, named with the class.
    """
    try:
        return processing_from_spec(getattr(user_class, "processing", None))
    except ConfigError as exc:
        raise ConfigError(f"{user_class.__name__}.processing: {exc}") from None


def _ensure_topic(bootstrap: str, topic: str, partitions: int, replication_factor: int,
                  config: dict[str, Any], conf: dict[str, Any]) -> None:
    """Create the topic if the cluster does not have it; an existing one is used as it is."""
    check_reachable(bootstrap, conf, CONNECT_TIMEOUT_S)  # one clear error, e.g. on a worker
    # All topics' metadata: asking for one by name would auto-create it on brokers with
    # auto.create.topics.enable=true, with the broker's partition count.
    metadata = admin_client(bootstrap, conf).list_topics(timeout=CONNECT_TIMEOUT_S)
    existing = metadata.topics.get(topic)
    if existing is not None and existing.error is None:
        return
    create_topic(bootstrap, topic, partitions, replication_factor, config, conf=conf,
                 exist_ok=True, timeout_s=TOPIC_TIMEOUT_S)


_topic_lock = Semaphore()
_settings_cache: dict[tuple, KafkaSettings] = {}


def settings_for(environment: Any) -> KafkaSettings:
    """The process's `KafkaSettings` for the environment's current options (cached).

    Raises:
        KafkabenchError: bad settings, or no cluster.
    """
    options = environment.parsed_options
    names = ("kafka_bootstrap", "kafka_profile", "kafka_conf", "kafka_topic", "kafka_partitions",
             "kafka_rate", "kafka_group", "kafka_flush_timeout", "kafka_producer_per_user",
             "kafka_processing")
    key = tuple(repr(getattr(options, n, None)) for n in names)
    if key not in _settings_cache:
        _settings_cache[key] = KafkaSettings.from_options(options)
    return _settings_cache[key]


@events.init.add_listener
def _check_settings(environment: Any, **_kwargs: Any) -> None:
    # Fail before the first user starts: a typo or a dead cluster is one line, exit code 1.
    # Workers get their options from the master when the test starts: their users check them.
    # librdkafka's own lines (at INFO, Locust's default level) only with --loglevel DEBUG.
    loglevel = str(getattr(environment.parsed_options, "loglevel", "") or "").upper()
    if loglevel != "DEBUG" and LIBRDKAFKA_LOG.level == logging.NOTSET:
        LIBRDKAFKA_LOG.setLevel(logging.WARNING)
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        return
    try:
        settings = KafkaSettings.from_options(environment.parsed_options,
                                              resolve=not isinstance(runner, MasterRunner))
        for user_class in environment.user_classes or ():
            if issubclass(user_class, KafkaConsumerUser):
                class_processing(user_class)
        if not isinstance(runner, MasterRunner):
            settings.check_reachable()
    except KafkabenchError as exc:
        log.error("kafkabench: %s", exc)
        raise SystemExit(1) from None


_metrics: list[Any] = []


@events.init.add_listener
def _serve_metrics(environment: Any, **_kwargs: Any) -> None:
    # On the master (or a lone process): its statistics hold every worker's requests.
    port = getattr(environment.parsed_options, "kafka_metrics_port", None)
    if port is None or isinstance(environment.runner, WorkerRunner):
        return
    from kafkabench.observe.metrics import LocustMetrics

    try:
        _metrics.append(LocustMetrics(port, environment=environment,
                                      group=getattr(environment.parsed_options, "kafka_group", None)))
    except KafkabenchError as exc:
        log.error("kafkabench: %s", exc)
        raise SystemExit(1) from None
    log.info("kafkabench: metrics at %s", _metrics[-1].url)


@events.quitting.add_listener
def _stop_metrics(**_kwargs: Any) -> None:
    while _metrics:
        _metrics.pop().close()


# --- producing -----------------------------------------------------------------------------


class _ProducerService:
    """A Producer, the greenlet serving its delivery reports, and the users holding it."""

    def __init__(self, environment: Any, config: Mapping[str, Any],
                 poll_interval_s: float = POLL_INTERVAL_S):
        self.on_delivery = _delivery_reporter(environment.events.request.fire, "produce")
        self.producer = Producer({"logger": librdkafka_logger(), **config,
                                  "on_delivery": self.on_delivery})
        self.users = 0
        self._interval = poll_interval_s
        self._closed = False
        self._poller = gevent.spawn(self._serve)

    def _serve(self) -> None:
        poll = self.producer.poll
        while not self._closed:
            try:
                poll(0)
            except Exception:  # noqa: BLE001 - a poller must survive anything
                log.exception("kafkabench: serving delivery reports failed")
            gevent.sleep(self._interval)

    def flush(self, timeout_s: float) -> int:
        """Serve delivery reports until none is outstanding or `timeout_s` passed.

        Returns:
            Messages still outstanding (0 when everything was reported).
        """
        deadline = time.monotonic() + timeout_s
        producer = self.producer
        while len(producer) and time.monotonic() < deadline:
            producer.poll(0)
            gevent.sleep(0.005)
        return len(producer)

    def close(self, timeout_s: float) -> int:
        """Flush with a bound, purge what is left (reported as failures), stop the poller.

        Returns:
            Messages purged.
        """
        left = self.flush(timeout_s)
        if left:
            log.warning("kafkabench: %d messages not delivered within %.0f s: purged, "
                        "reported as failed", left, timeout_s)
            self.producer.purge(in_queue=True, in_flight=True, blocking=False)
            self.flush(1.0)  # the purged messages' reports are quick to arrive
        self._closed = True
        self._poller.kill(block=False)
        return left


_shared: dict[tuple, _ProducerService] = {}


def _delivery_reporter(fire: Any, request_type: str, name: str | None = None):
    """A delivery callback firing Locust's request event; it never raises."""

    def on_delivery(err: KafkaError | None, msg: Any) -> None:
        try:
            # msg.latency(): seconds from produce() until this report, measured by librdkafka.
            fire(request_type=request_type, name=name or msg.topic(),
                 response_time=(msg.latency() or 0.0) * 1000.0, response_length=len(msg),
                 exception=None if err is None else KafkaDeliveryError.from_error(err),
                 context={})
        except Exception:  # noqa: BLE001 - a callback records, never raises
            log.exception("kafkabench: delivery report for %r not recorded", msg)

    return on_delivery


# --- the processing stage ------------------------------------------------------------------


class _StageProducer:
    """The stage's producer as `processing.Stage` uses it, without blocking the hub: a wait
    for room in a full queue (`poll(t)`) sleeps in gevent."""

    def __init__(self, producer: Producer):
        self.producer = producer

    def produce(self, topic: str, **kwargs: Any) -> None:
        self.producer.produce(topic, **kwargs)

    def poll(self, timeout: float = 0.0) -> int:
        served = self.producer.poll(0)  # 0: never wait in librdkafka
        if timeout and not served:
            gevent.sleep(timeout)
        return served

    def __len__(self) -> int:
        return len(self.producer)


class _LocustStage:
    """A consumer's `processing.Stage` run inside a Locust user: waits sleep in gevent and end
    early when the user stops; each handled message fires Locust events; offsets are stored
    once a message is handled (the consumer runs with enable.auto.offset.store=false).

    Args:
        processing: what to do with each message.
        inputs: the consumer's input topics.
        consumer: the consumer (pause, seek, resume, store_offsets).
        producer: for retry, dead-letter and output records (None when the stage writes none).
        fire: `events.request.fire`.
        stopping: says whether the user is stopping (then a wait ends early and the message in
            hand is neither done nor stored).
    """

    def __init__(self, processing: Processing, inputs: Sequence[str], *, consumer: Consumer,
                 producer: Producer | None, fire: Any, stopping: Callable[[], bool]):
        self._fire, self._stopping, self.consumer = fire, stopping, consumer
        self.producer = None if producer is None else _StageProducer(producer)
        self.stage = Stage(processing, tuple(inputs), producer=self.producer, consumer=consumer,
                           sleep=self._sleep, on_error=self._on_error,
                           seed=random.getrandbits(32))

    @property
    def topics(self) -> tuple[str, ...]:
        """Topics to subscribe to: the inputs and their retry topics."""
        return self.stage.topics

    def _sleep(self, seconds: float) -> bool:
        # gevent.sleep, in slices: the other users run meanwhile, and a stopping user (Locust's
        # --stop-timeout) is not held for a whole backoff.
        deadline = time.monotonic() + seconds
        while not self._stopping():
            left = deadline - time.monotonic()
            if left <= 0:
                return True
            gevent.sleep(min(left, STOP_CHECK_S))
        return False

    def _on_error(self, err: Any, context: str) -> None:
        exception = (KafkaDeliveryError.from_error(err) if isinstance(err, KafkaError)
                     else KafkaDeliveryError(str(err)))
        self._fire(request_type="process", name=context, response_time=0.0, response_length=0,
                   exception=exception, context={})

    def run(self, msgs: list[Any], name: str | None = None) -> list[Any]:
        """Handle a batch: fire "consume" and the outcome of each message handled, store the
        offsets of those, resume retry partitions that are due.

        Returns:
            The messages handled (and errors); a retry record not due yet is left out (its
            partition was rewound to it).
        """
        fire, stage = self._fire, self.stage
        now_ms = time.time() * 1000.0
        done: dict[tuple[str, int], int] = {}
        out = []
        try:
            for msg in msgs:
                err = msg.error()
                if err is not None:
                    if err.code() != KafkaError._PARTITION_EOF:
                        fire(request_type="consume", name=name or msg.topic() or "",
                             response_time=0.0, response_length=0,
                             exception=KafkaDeliveryError.from_error(err), context={})
                        out.append(msg)
                    continue
                if stage.is_paused(msg):  # rewound earlier in this batch: read again later
                    continue
                outcome = stage.handle(msg)
                if not outcome.settled:
                    continue
                done[(msg.topic(), msg.partition())] = msg.offset() + 1
                topic, size = name or msg.topic(), len(msg)
                fire(request_type="consume", name=topic,
                     response_time=max(0.0, now_ms - msg.timestamp()[1]), response_length=size,
                     exception=None, context={})
                request_type, exception = _request_of(outcome)
                fire(request_type=request_type, name=topic, response_time=outcome.latency_s * 1000.0,
                     response_length=size, exception=exception, context={})
                out.append(msg)
        except Stopped:
            pass  # the user is stopping: the message in hand is read again by whoever owns it
        finally:
            # Also when the user's greenlet is killed mid-message (GreenletExit).
            store_offsets(self.consumer, done)
        stage.resume_due()
        return out

    def idle(self) -> None:
        """Nothing to read: resume the retry partitions that are due."""
        self.stage.resume_due()

    def forget(self, partitions: list[Any]) -> None:
        """Partitions revoked or lost: not this member's to resume."""
        self.stage.forget(partitions)


#: Locust request types of a stage's outcomes other than "process".
_REQUEST_TYPES = {Handled.FORWARDED: "retry", Handled.FILTERED: "filter"}


def _request_of(outcome: Outcome) -> tuple[str, Exception | None]:
    """(request type, exception) Locust records for a message the stage settled."""
    if outcome.kind is Handled.DEAD_LETTERED:  # the failure as the dead letter's error header
        return "process", ProcessingError(outcome.error)
    if outcome.kind is Handled.FAILED:
        return "process", ProcessingError("failed its last attempt (dropped: dead_letter is false)")
    return _REQUEST_TYPES.get(outcome.kind, "process"), None


# --- the client ----------------------------------------------------------------------------


class KafkaClient:
    """A confluent-kafka Producer and/or Consumer that reports every message to Locust.

    Args:
        environment: the Locust environment whose `events.request` gets the reports.
        producer_config: confluent-kafka producer settings, or None for no producer.
        consumer_config: confluent-kafka consumer settings (group.id included), or None.
        topics: topics the consumer subscribes to.
        shared: use the process's producer for these settings (created on first use),
            instead of an own one.
        poll_interval_s: how often the background greenlet serves delivery reports.
        processing: a processing stage the consumer runs over what it reads (its retry,
            dead-letter and output records go through the producer, which it then needs).
        stopping: says whether the owner is stopping (ends the stage's waits early).

    The producer's delivery reports fire `request_type="produce"`; consumed messages fire
    `"consume"` with the end-to-end latency; rebalances fire `"rebalance"`; with a stage,
    each handled message also fires `"process"`, `"retry"` or `"filter"` (`_LocustStage`).

    Raises:
        ConfigError: a stage that writes records without a producer.
    """

    def __init__(self, environment: Any, producer_config: Mapping[str, Any] | None = None,
                 consumer_config: Mapping[str, Any] | None = None, *,
                 topics: Sequence[str] = (), shared: bool = True,
                 poll_interval_s: float = POLL_INTERVAL_S,
                 processing: Processing | None = None,
                 stopping: Callable[[], bool] = lambda: False):
        if processing is not None and producer_config is None and any(
                processing.extra_topics(t) for t in topics):
            raise ConfigError("a processing stage with retry topics, dead letters or output "
                              "needs a producer: pass producer_config")
        self.environment = environment
        self._fire = environment.events.request.fire
        self._service: _ProducerService | None = None
        self._shared_key: tuple | None = None
        if producer_config is not None:
            if shared:
                self._shared_key = (id(environment), tuple(sorted(
                    (k, repr(v)) for k, v in producer_config.items())))
                service = _shared.get(self._shared_key)
                if service is None:
                    service = _shared[self._shared_key] = _ProducerService(
                        environment, producer_config, poll_interval_s)
            else:
                service = _ProducerService(environment, producer_config, poll_interval_s)
            service.users += 1
            self._service = service
        self.producer: Producer | None = self._service.producer if self._service else None
        self.consumer: Consumer | None = None
        self.group: str | None = None
        self.assignment: set[tuple[str, int]] = set()
        self._unassigned_since = time.monotonic()
        self._closing = False
        self._late_events: list[dict[str, Any]] = []
        self._unpolled = 0
        self.stage: _LocustStage | None = None
        if consumer_config is not None:
            self.group = consumer_config.get("group.id")
            conf = {"logger": librdkafka_logger(), **consumer_config}
            if processing is not None:
                # Offsets are stored once a message is handled, not when consume() returns it.
                conf["enable.auto.offset.store"] = False
            self.consumer = Consumer(conf)
            if processing is not None:
                self.stage = _LocustStage(processing, topics, consumer=self.consumer,
                                          producer=self.producer, fire=self._fire,
                                          stopping=stopping)
                topics = self.stage.topics
            self.consumer.subscribe(list(topics), on_assign=self._on_assign,
                                    on_revoke=self._on_revoke, on_lost=self._on_lost)
        # Every delivery report and consumed message is a GC-tracked object: as in kafkabench's
        # own workers, no young-generation collections walk them while a client is open
        # (measured: ~17% more msgs/s of a full-speed producer user). Undone by close().
        self._gc_pauses: Any = fewer_gc_pauses()
        self._gc_pauses.__enter__()

    # ------------------------------------------------------------------ producer

    def produce(self, topic: str, value: bytes | None, key: bytes | str | None = None, *,
                headers: Any = None, partition: int = -1, name: str | None = None,
                timestamp: int = 0) -> bool:
        """Queue one message; its delivery report fires the request event later.

        Args:
            topic: the topic.
            value: the message value.
            key: the message key (chooses the partition unless `partition` is given).
            headers: message headers, a list of (name, value) pairs or a dict.
            partition: the partition; -1 lets the partitioner choose by key.
            name: name in Locust's statistics (default: the topic).
            timestamp: Kafka timestamp in ms; 0 = now.

        Returns:
            True if queued; False if it failed at once (fired as a failure, e.g. an unknown
            topic or a full local queue that did not drain within the flush timeout).
        """
        producer = self.producer
        try:
            if name is None and partition == -1 and not timestamp:
                # The producer's default delivery callback (set in its config) reports it.
                producer.produce(topic, value, key, headers=headers)
            else:
                kwargs = self._produce_kwargs(name, partition, timestamp, headers)
                producer.produce(topic, value, key, **kwargs)
        except BufferError:
            kwargs = self._produce_kwargs(name, partition, timestamp, headers)
            if not self._wait_for_room(topic, value, key, **kwargs):
                self._fail("produce", name or topic, value, "queue full: the local producer "
                           "queue did not drain (queue.buffering.max.messages/kbytes)")
                return False
        except KafkaException as exc:
            self._fail("produce", name or topic, value, exc.args[0])
            return False
        self._unpolled += 1
        if self._unpolled >= POLL_EVERY:
            # Serve delivery reports that are ready; 0 = never wait (never block the hub).
            self._unpolled = 0
            producer.poll(0)
        return True

    def _produce_kwargs(self, name: str | None, partition: int, timestamp: int,
                        headers: Any) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"partition": partition, "timestamp": timestamp,
                                  "headers": headers}
        if name is not None:
            kwargs["on_delivery"] = _delivery_reporter(self._fire, "produce", name)
        return kwargs

    def _wait_for_room(self, *args: Any, **kwargs: Any) -> bool:
        # librdkafka's queue is full: let the broker catch up without blocking the hub.
        # The broker being down, messages time out (message.timeout.ms) and free room.
        deadline = time.monotonic() + max(self._flush_timeout(), 1.0)
        producer = self.producer
        while time.monotonic() < deadline:
            producer.poll(0)
            gevent.sleep(0.001)
            try:
                producer.produce(*args, **kwargs)
                return True
            except BufferError:
                continue
        return False

    def _flush_timeout(self) -> float:
        return float(getattr(self.environment.parsed_options, "kafka_flush_timeout", None)
                     or FLUSH_TIMEOUT_S)

    def _fail(self, request_type: str, name: str, value: Any, error: Any) -> None:
        exception = (KafkaDeliveryError.from_error(error) if isinstance(error, KafkaError)
                     else KafkaDeliveryError(str(error)))
        self._fire(request_type=request_type, name=name, response_time=0.0,
                   response_length=len(value) if value else 0, exception=exception,
                   context={})

    def poll(self) -> int:
        """Serve the delivery reports that are ready; never waits.

        Returns:
            Reports served.
        """
        return self.producer.poll(0) if self.producer is not None else 0

    def flush(self, timeout_s: float = FLUSH_TIMEOUT_S) -> int:
        """Wait, in gevent, until every delivery report is in or `timeout_s` passed.

        Returns:
            Messages still outstanding.
        """
        return self._service.flush(timeout_s) if self._service else 0

    @property
    def outstanding(self) -> int:
        """Messages queued or in flight (of the whole process's producer when shared)."""
        return len(self.producer) if self.producer is not None else 0

    # ------------------------------------------------------------------ consumer

    def consume(self, max_messages: int = 500, *, name: str | None = None,
                idle_s: float = IDLE_S) -> list[Any]:
        """Take the messages that are ready (up to `max_messages`), firing one event each.

        With a processing stage, each message is processed before this returns (see
        `_LocustStage.run`).

        Args:
            max_messages: most messages to take.
            name: name in Locust's statistics (default: the topic).
            idle_s: when nothing is ready, sleep this long in gevent before returning.

        Returns:
            The messages (errors included; partition EOF events are left out; with a stage,
            retry records not due yet are left out too).
        """
        consumer = self.consumer
        msgs = consumer.consume(max_messages, 0)  # 0: take what is there, never wait
        if not msgs:
            if self.stage is not None:
                self.stage.idle()
            gevent.sleep(idle_s)
            return msgs
        if self.stage is not None:
            return self.stage.run(msgs, name)
        fire = self._fire
        now_ms = time.time() * 1000.0
        out = []
        for msg in msgs:
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    continue
                fire(request_type="consume", name=name or msg.topic() or "", response_time=0.0,
                     response_length=0, exception=KafkaDeliveryError.from_error(err),
                     context={})
            else:
                # Kafka timestamps are the producer's clock at produce(), in whole ms.
                latency = max(0.0, now_ms - msg.timestamp()[1])
                fire(request_type="consume", name=name or msg.topic(), response_time=latency,
                     response_length=len(msg), exception=None, context={})
            out.append(msg)
        return out

    def _rebalance(self, event: str, partitions: list[Any], *, failed: bool = False) -> None:
        now = time.monotonic()
        parts = {(p.topic, p.partition) for p in partitions}
        if event == "assign":
            self.assignment |= parts
            # How long this member owned nothing: the rebalance pause as it saw it.
            response_time = (now - self._unassigned_since) * 1000.0
        else:
            self.assignment -= parts
            response_time = 0.0
            if self.stage is not None:
                self.stage.forget(partitions)
            if not self.assignment:
                self._unassigned_since = now
        kwargs = {"request_type": "rebalance", "name": event, "response_time": response_time,
                  "response_length": len(parts), "context": {"group": self.group},
                  "exception": KafkaDeliveryError(f"partitions lost: {len(parts)}")
                  if failed else None}
        if self._closing:
            self._late_events.append(kwargs)  # close() runs in another thread: fire later
        else:
            self._fire(**kwargs)

    def _on_assign(self, consumer: Consumer, partitions: list[Any]) -> None:
        try:
            self._rebalance("assign", partitions)
        except Exception:  # noqa: BLE001 - callbacks never raise
            log.exception("kafkabench: assign not recorded")

    def _on_revoke(self, consumer: Consumer, partitions: list[Any]) -> None:
        try:
            self._rebalance("revoke", partitions)
        except Exception:  # noqa: BLE001
            log.exception("kafkabench: revoke not recorded")

    def _on_lost(self, consumer: Consumer, partitions: list[Any]) -> None:
        try:
            self._rebalance("lost", partitions, failed=True)
        except Exception:  # noqa: BLE001
            log.exception("kafkabench: lost partitions not recorded")

    # ------------------------------------------------------------------ the end

    def close(self, timeout_s: float = FLUSH_TIMEOUT_S) -> None:
        """Flush the producer (bounded; the last user of a shared one) and close the consumer.

        Args:
            timeout_s: bound for the flush and, separately, for leaving the group.
        """
        service, self._service, self.producer = self._service, None, None
        if service is not None and self.stage is not None and self.consumer is not None:
            # The stage's records are acknowledged before the consumer commits the offsets of
            # their inputs at close (a shared producer is not flushed by every user's close).
            service.flush(timeout_s)
        if service is not None:
            service.users -= 1
            if service.users <= 0:
                if self._shared_key is not None:
                    _shared.pop(self._shared_key, None)
                service.close(timeout_s)
        consumer, self.consumer = self.consumer, None
        if consumer is not None:
            self._closing = True
            # close() commits and leaves the group: blocking librdkafka calls, so they run in
            # a real thread; the hub (and the other users) keep running meanwhile.
            pool = gevent.get_hub().threadpool
            try:
                pool.spawn(consumer.close).get(timeout=timeout_s)
            except gevent.Timeout:
                log.warning("kafkabench: consumer of group %r did not leave within %.0f s",
                            self.group, timeout_s)
            except Exception as exc:  # noqa: BLE001 - broker gone: nothing more to do
                log.warning("kafkabench: closing consumer of group %r: %s", self.group, exc)
            for kwargs in self._late_events:
                self._fire(**kwargs)
            self._late_events.clear()
        pauses, self._gc_pauses = self._gc_pauses, None
        if pauses is not None:
            pauses.__exit__(None, None, None)


# --- users ---------------------------------------------------------------------------------


class _KafkaUserBase(User):
    """Settings shared by Kafka users, resolved once per process from Locust's options."""

    abstract = True
    #: Topic unless --kafka-topic is given.
    topic: ClassVar[str] = DEFAULT_TOPIC

    def __init__(self, environment: Any):
        super().__init__(environment)
        self.client: KafkaClient | None = None
        self.settings: KafkaSettings | None = None

    def _configure(self) -> KafkaSettings:
        # In on_start, not __init__: a worker gets its options from the master when the test
        # starts, and an error here is reported (to the master too) as the user's error.
        self.settings = settings = settings_for(self.environment)
        self.topic = settings.topic or type(self).topic
        settings.ensure_topic(self.topic)
        return settings

    def on_stop(self) -> None:
        if self.client is not None:
            self.client.close(self.settings.flush_timeout_s)
            self.client = None


class KafkaUser(_KafkaUserBase):
    """An abstract Locust user holding a `KafkaClient` with a producer.

    Subclass it, set `topic` (and `rate`), and declare a task that sends `self.batch`
    messages with `self.client.produce(self.topic, value, key, headers=...)`. The process's
    users share one producer (librdkafka batches across them: measured 1.3-2x the rate of one
    producer per user, see `--kafka-producer-per-user`). On stop the producer is flushed,
    bounded by `--kafka-flush-timeout`.

    Attributes:
        topic: topic unless --kafka-topic is given; created if missing.
        rate: messages per second of each user unless --kafka-rate is given; 0 = as fast as
            it can.
        batch: messages per task run (set in on_start): 1 up to 100 msgs/s, then rate / 100,
            so a user runs its task at most 100 times a second; `FULL_SPEED_BATCH` at full
            speed. A task run costs Locust about as much as a few messages, so batching is what
            lets one process send 10^5 msgs/s; each message is still its own request.
    """

    abstract = True
    rate: ClassVar[float] = 0.0
    batch: int = 1
    _pace: Any = None

    def wait_time(self) -> float:
        """Pace to `rate` messages per second (none: as fast as the tasks go)."""
        return self._pace(self) if self._pace is not None else 0.0

    def on_start(self) -> None:
        settings = self._configure()
        rate = settings.rate if settings.rate is not None else type(self).rate
        if rate:
            self.batch = max(1, math.ceil(rate / TASK_RUNS_MAX))
            self._pace = constant_throughput(rate / self.batch)
        else:
            self.batch, self._pace = FULL_SPEED_BATCH, None
        self.client = KafkaClient(self.environment, settings.producer_config(),
                                  shared=settings.share_producer)


class OrderEventUser(KafkaUser):
    """An abstract producer user sending order events (`kafkabench.orders.OrderEvent`),
    keyed by order id, with headers event-type and version, from a pool built once per process.

    Subclass it with a `topic` (and a `rate`, 0 = as fast as it can).
    """

    abstract = True

    def on_start(self) -> None:
        super().on_start()
        pool = order_messages()
        # Each user starts at its own place in the shared pool.
        self._orders = itertools.islice(itertools.cycle(pool), random.randrange(len(pool)), None)

    @task
    def send_orders(self) -> None:
        """Send `batch` order events."""
        for _ in range(self.batch):
            key, value, headers = next(self._orders)
            self.client.produce(self.topic, value, key, headers=headers)


class KafkaConsumerUser(_KafkaUserBase):
    """An abstract Locust user that is one member of a consumer group.

    Subclass it and declare a task calling `self.client.consume(self.batch)`. Users joining
    and leaving rebalance the group; each rebalance is a "rebalance" request in Locust's
    statistics ("assign" with the time this member owned no partition, "revoke", and "lost"
    as a failure). On stop the consumer commits and leaves the group (bounded by
    `--kafka-flush-timeout`).

    With a processing stage (`processing`, or `--kafka-processing` for every consumer user),
    `consume()` also processes what it reads, as `kafkabench.processing.Stage` does in
    kafkabench's own consumers: processing time, injected transient and poison failures,
    retries inline or through `<topic>.retry.N` topics, dead letters in `<topic>.dlq`,
    filtering, output to `<topic>.out` (those topics are created when missing). A message's
    offset is committed once it is handled. Each handled message is a "process" request (the
    processing time, inline retries and backoff included; a failure, with the dead letter's
    error, when it failed its last attempt), a "retry" request (forwarded to a retry topic) or
    a "filter" request (dropped), named by the topic it was read from. The stage's records
    go through the process's producer (the producer settings), flushed before the consumer
    commits at stop.

    Attributes:
        topic: topic unless --kafka-topic is given; created if missing.
        group: consumer group unless --kafka-group is given (default kb-locust-<topic>).
        batch: most messages one consume() takes.
        processing: the processing stage, a mapping of `kafkabench.processing.Processing`
            fields (None: consume only); `--kafka-processing FILE.yaml` replaces it.
    """

    abstract = True
    group: ClassVar[str | None] = None
    batch: ClassVar[int] = 500
    processing: ClassVar[dict[str, Any] | None] = None

    def wait_time(self) -> float:
        """No wait: `consume()` sleeps in gevent when there is nothing to read."""
        return 0.0

    def on_start(self) -> None:
        settings = self._configure()
        self.group = settings.group or type(self).group or f"kb-locust-{self.topic}"
        processing = settings.processing or class_processing(type(self))
        producer_config = None
        if processing is not None:
            extra = processing.extra_topics(self.topic)
            for topic in extra:
                settings.ensure_topic(topic)
            if extra:
                producer_config = settings.producer_config()
        self.client = KafkaClient(self.environment, producer_config,
                                  consumer_config=settings.consumer_config(self.group),
                                  topics=[self.topic], shared=settings.share_producer,
                                  processing=processing, stopping=self._stopping)

    def _stopping(self) -> bool:
        # Locust's --stop-timeout asks a user to stop after its task; without it the user's
        # greenlet is killed (GreenletExit) wherever it waits.
        return self._state == LOCUST_STATE_STOPPING


class KafkaLoadShape(LoadTestShape):
    """Users over time from -u, -r and -t, in the profile --kafka-shape selects.

    constant: ramp to -u users at -r per second and hold; step: `--kafka-steps` equal steps up
    to -u, each lasting -t / steps; spike: a quarter of -u, then all -u during the middle fifth
    of -t, then a quarter again. The test ends after -t (60 s when not given).
    """

    abstract = True
    use_common_options = True

    def tick(self) -> tuple[int, float] | None:
        """(users, spawn rate) now, or None to end the test (`loadshapes.options_tick`)."""
        return options_tick(self.runner.environment.parsed_options, self.get_run_time())


# --- CSV files -----------------------------------------------------------------------------


@events.quitting.add_listener
def _final_csv_write(environment: Any, **_kwargs: Any) -> None:
    # Locust rewrites its --csv files once a second and does not write them again at exit, so
    # the last delivery reports (the final flush, the workers' last stats) could be missing
    # from them: wait for one more write.
    if not isinstance(environment.runner, WorkerRunner) and getattr(
            environment.parsed_options, "csv_prefix", None):
        gevent.sleep(CSV_SETTLE_S)


# --- distributed: requests per worker, seen by the master -----------------------------------

_per_worker: dict[str, list[int]] = {}


@events.worker_report.add_listener
def _count_worker_report(client_id: str, data: dict[str, Any], **_kwargs: Any) -> None:
    total = data.get("stats_total") or {}
    counts = _per_worker.setdefault(client_id, [0, 0])
    counts[0] += int(total.get("num_requests", 0))
    counts[1] += int(total.get("num_failures", 0))


@events.quitting.add_listener
def _write_per_worker(environment: Any, **_kwargs: Any) -> None:
    if not isinstance(environment.runner, MasterRunner) or not _per_worker:
        return
    for worker, (requests, failures) in sorted(_per_worker.items()):
        log.info("kafkabench: worker %s: %d requests, %d failures", worker, requests, failures)
    prefix = getattr(environment.parsed_options, "csv_prefix", None)
    if prefix:
        with open(f"{prefix}_workers.csv", "w", encoding="utf-8") as f:
            f.write("Worker,Request Count,Failure Count\n")
            for worker, (requests, failures) in sorted(_per_worker.items()):
                f.write(f"{worker},{requests},{failures}\n")


__all__ = ["KafkaClient", "KafkaUser", "OrderEventUser", "KafkaConsumerUser", "KafkaLoadShape",
           "KafkaSettings", "KafkaDeliveryError", "ProcessingError", "parse_conf", "settings_for",
           "load_processing", "class_processing"]

"""A service's consumer group with a processing stage, fed by a producer.

    locust -f locustfiles/service_consumer.py --headless -u 4 -r 2 -t 60s

One `OrderFeeder` publishes order events (`--kafka-rate`, default 200/s); every other user is a
member of the order service's consumer group, which processes each event: 2 ms of work, 5% fail
once (transient) and succeed on their next attempt, 1% always fail (poison). A failed event goes
to `<topic>.retry.1`, then `<topic>.retry.2` (read 200 ms, then 400 ms after the failure); after
its third attempt it is a dead letter in `<topic>.dlq`. `--kafka-processing FILE.yaml` replaces
the stage (a YAML mapping of `kafkabench.processing.Processing` fields).

Statistics: "process" rows carry the processing time; a dead letter is a "process" failure with
its error ("injected poison failure"), so the run exits with 1 unless `--exit-code-on-error 0`;
"retry" rows count the events forwarded to a retry topic, by the topic they were read from.
"""

from locust import task

from kafkabench.loadtest.locust_user import KafkaConsumerUser, OrderEventUser


class OrderFeeder(OrderEventUser):
    """Publishes order events at a steady rate, for the service to process."""

    topic = "kb-locust-service"
    rate = 200
    fixed_count = 1


class OrderService(KafkaConsumerUser):
    """One member of the order service's consumer group, with its processing stage."""

    topic = "kb-locust-service"
    processing = {
        "time_ms": 2,
        "transient_fraction": 0.05,
        "poison_fraction": 0.01,
        "retry": "topics",
        "backoff": {"initial_ms": 200, "multiplier": 2, "max_attempts": 3},
    }

    @task
    def handle_orders(self):
        self.client.consume(self.batch)

"""LatencyRecorder, spectrum and librdkafka statistics parsing (no broker)."""

import json
import math
from pathlib import Path

import pytest

from kafkabench.measure.stats import (
    PERCENTILE_LADDER,
    SUMMARY_KEYS,
    LatencyRecorder,
    StatsCollector,
    parse_statistics,
    scale_us,
    spectrum,
)

DATA = Path(__file__).parent / "data"


def _recorder(values):
    rec = LatencyRecorder()
    for v in values:
        rec.record(v)
    return rec


def test_percentiles_of_uniform_values():
    rec = _recorder(range(1, 10_001))  # 1 us .. 10 ms
    p = rec.percentiles("ms")
    assert list(p) == list(SUMMARY_KEYS)
    assert rec.count == 10_000
    # 3 significant digits: within 0.1 % of the exact order statistic
    assert p["p50"] == pytest.approx(5.0, rel=1e-3)
    assert p["p99"] == pytest.approx(9.9, rel=1e-3)
    assert p["max"] == pytest.approx(10.0, rel=1e-3)
    assert p["avg"] == pytest.approx(5.0, rel=1e-3)
    assert rec.percentiles("us", keys=["p50"])["p50"] == pytest.approx(5000, rel=1e-3)


def test_empty_recorder_gives_nan():
    p = LatencyRecorder().percentiles()
    assert all(math.isnan(v) for v in p.values())
    assert math.isnan(LatencyRecorder().value_at(99))


def test_out_of_range_values_are_clamped_not_dropped():
    rec = _recorder([-5, 10**13, 2.7])
    assert rec.count == 3
    assert rec.percentiles("s", keys=["max"])["max"] == pytest.approx(3600, rel=1e-3)
    assert rec.value_at(0, "us") == 0


def test_encode_decode_and_merge_keep_percentiles():
    a, b = _recorder(range(100, 1100)), _recorder(range(5000, 6000))
    decoded = LatencyRecorder.decode(a.encode())
    assert isinstance(a.encode(), str)
    assert decoded.percentiles() == a.percentiles()
    merged = a.copy().merge(b.encode())
    assert merged.count == 2000
    assert merged.percentiles() == a.copy().merge(b).percentiles()
    assert merged.value_at(50, "us") == pytest.approx(1099, rel=1e-3)
    assert LatencyRecorder.decode(LatencyRecorder().encode()).count == 0


def test_spectrum_columns_and_monotonic_values():
    frame = spectrum({"publish_latency_us": _recorder(range(1, 5000)), "empty": LatencyRecorder()})
    assert list(frame.columns) == ["metric", "percentile", "value_ms"]
    assert set(frame["metric"]) == {"publish_latency_us"}
    assert len(frame) == len(PERCENTILE_LADDER)
    assert frame["percentile"].iloc[0] == 0 and frame["percentile"].iloc[-1] == 99.999
    assert frame["value_ms"].is_monotonic_increasing
    assert {50.0, 99.0, 99.9, 99.99} <= set(PERCENTILE_LADDER)


def test_scale_us_units():
    assert scale_us(1500, "ms") == 1.5 and scale_us(2_000_000, "s") == 2
    with pytest.raises(ValueError, match="'min'"):
        scale_us(1, "min")


def test_stats_collector_never_raises_and_stores_raw():
    coll = StatsCollector(client="p0", max_samples=2)
    for raw in ("{}", "not json", None, (DATA / "librdkafka_stats_producer.json").read_text()):
        coll(raw)
    assert len(coll.samples) == 2  # bounded
    frame = coll.frame()  # malformed and None samples are skipped
    assert set(frame["client"]) == {"p0"}


def test_parse_producer_statistics():
    raw = (DATA / "librdkafka_stats_producer.json").read_text()
    doc = json.loads(raw)
    frame = parse_statistics([(10.0, raw), (11.0, raw)], t0=9.5)
    assert list(frame.columns) == ["t", "client", "scope", "name", "metric", "value"]
    assert sorted(frame["t"].unique()) == [0.5, 1.5]
    one = frame[frame["t"] == 0.5]
    get = lambda scope, name, metric: one.loc[(one["scope"] == scope) & (one["name"] == name)
                                               & (one["metric"] == metric), "value"].item()
    client = doc["name"]
    assert set(one["client"]) == {client}
    assert get("client", client, "txmsgs") == doc["txmsgs"]
    broker = next(b for b in doc["brokers"].values() if b["nodeid"] >= 0)
    assert get("broker", broker["name"], "int_latency_p99") == broker["int_latency"]["p99"]
    assert get("broker", broker["name"], "rtt_avg") == broker["rtt"]["avg"]
    assert get("broker", broker["name"], "txretries") == broker["txretries"]
    # a window with no samples (no throttling happened) is left out rather than read as 0
    assert broker["throttle"]["cnt"] != 0 or not (one["metric"] == "throttle_p50").any()
    topic, tdoc = next(iter(doc["topics"].items()))
    assert get("topic", topic, "batchsize_p50") == tdoc["batchsize"]["p50"]
    assert get("topic", topic, "batchcnt_avg") == tdoc["batchcnt"]["avg"]
    parts = one[one["scope"] == "partition"]
    assert not parts["name"].str.endswith("--1").any()  # internal partition -1 skipped
    assert get("partition", f"{topic}-0", "msgq_cnt") == tdoc["partitions"]["0"]["msgq_cnt"]
    assert not (parts["metric"] == "consumer_lag").any()  # -1 (unknown) for a producer
    assert not (one["scope"] == "cgrp").any()


def test_parse_consumer_statistics():
    raw = (DATA / "librdkafka_stats_consumer.json").read_text()
    doc = json.loads(raw)
    frame = parse_statistics([raw])  # bare JSON: timed by its own ts
    assert (frame["t"] == 0).all()
    cg = frame[frame["scope"] == "cgrp"].set_index("metric")["value"]
    assert cg["rebalance_cnt"] == doc["cgrp"]["rebalance_cnt"]
    assert cg["assignment_size"] == doc["cgrp"]["assignment_size"]
    topic = next(iter(doc["topics"]))
    lag = frame[(frame["metric"] == "consumer_lag") & (frame["name"] == f"{topic}-0")]["value"]
    assert lag.item() == doc["topics"][topic]["partitions"]["0"]["consumer_lag"]
    assert frame["client"].iloc[0] == doc["name"]


def test_parse_nothing_gives_typed_empty_frame():
    frame = parse_statistics([])
    assert frame.empty and list(frame.columns) == ["t", "client", "scope", "name", "metric", "value"]
    assert str(frame["value"].dtype) == "float64"


def test_record_many_gives_the_same_histogram_as_one_by_one():
    import random

    rng = random.Random(7)
    values = [rng.lognormvariate(8, 2) for _ in range(50_000)] + [0, 1, 2047, 2048, 2049, 4e9]
    one, many, seconds = LatencyRecorder(), LatencyRecorder(), LatencyRecorder()
    for v in values:
        one.record(v)
    many.record_many(values)
    seconds.record_many([v / 1e6 for v in values], scale=1e6)
    assert one.count == many.count == seconds.count == len(values)
    assert one.encode() == many.encode()
    assert one.percentiles("us") == many.percentiles("us")
    assert one.percentiles("ms", keys=["p50", "p99", "max"]) == seconds.percentiles("ms", keys=["p50", "p99", "max"])


def test_record_many_adds_to_what_is_there_and_clamps_like_record():
    values = [-5, 0.4, 3, 3, 900.7, 5e9]
    one, many = LatencyRecorder(), LatencyRecorder()
    for v in (10, 20, *values):
        one.record(v)
    many.record(10)
    many.record(20)
    many.record_many(values[:3])
    many.record_many(values[3:])
    assert one.count == many.count == 8
    assert one.encode() == many.encode()
    assert one.percentiles("us", keys=["p50", "max"]) == many.percentiles("us", keys=["p50", "max"])


def test_record_many_on_a_histogram_of_another_layout():
    from hdrh.histogram import HdrHistogram

    values = [1.0, 7.5, 1000.0, 123456.0, 123457.0]
    one, many = (LatencyRecorder(HdrHistogram(4, 3_600_000_000, 2)) for _ in range(2))
    for v in values:
        one.record(v)
    many.record_many(values)
    assert one.encode() == many.encode() and many.count == len(values)


def test_second_histograms_keep_old_seconds_encoded_and_read_back_the_same_counts():
    import numpy as np

    from kafkabench.measure.stats import SecondHistograms

    store = SecondHistograms(live_s=2)
    for t in range(10):
        rec = LatencyRecorder()
        rec.record_many(np.full(t + 1, 1000.0 * (t + 1)))
        store[(t, "publish_latency_us")] = rec
    # Only the newest seconds stay decoded: a long run's parent does not grow ~190 KB a second.
    assert sorted(k[0] for k in store._live) == [7, 8, 9]
    assert len(store) == 10 and (3, "publish_latency_us") in store
    assert [store[(t, "publish_latency_us")].count for t in range(10)] == list(range(1, 11))
    # A frozen second read, merged and assigned back keeps the merge.
    extra = LatencyRecorder()
    extra.record(5)
    store[(0, "publish_latency_us")] = store[(0, "publish_latency_us")].merge(extra)
    assert store[(0, "publish_latency_us")].count == 2
    del store[(0, "publish_latency_us")]
    assert (0, "publish_latency_us") not in store and len(store) == 9


def test_a_recorder_is_freed_by_reference_counting_not_only_by_the_cyclic_gc():
    # hdrh's encoder and histogram referred to each other: every decoded ~190 KB histogram
    # waited for a full GC, and a run's parent grew ~22 MB in 2 minutes (tracemalloc).
    import gc
    import weakref

    encoded = LatencyRecorder().encode()
    enabled = gc.isenabled()
    gc.disable()
    try:
        for make in (LatencyRecorder, lambda: LatencyRecorder.decode(encoded)):
            rec = make()
            rec.record(1000)
            assert LatencyRecorder.decode(rec.encode()).count == 1  # still encodes
            gone = weakref.ref(rec._hist)
            del rec
            assert gone() is None
    finally:
        if enabled:
            gc.enable()


def test_stats_collector_keeps_samples_compressed_and_parses_them_the_same():
    # A worker kept every raw JSON sample (10-20 kB a second on 3 brokers) until the end.
    raw = (DATA / "librdkafka_stats_producer.json").read_text()
    coll = StatsCollector(client="p0")
    coll(raw)
    kept = coll.samples[0][1]
    assert isinstance(kept, bytes) and len(kept) < len(raw.encode()) / 3
    plain = parse_statistics([(coll.samples[0][0], raw)], client="p0")
    import pandas.testing as pdt

    pdt.assert_frame_equal(coll.frame(), plain)

"""orders: the order events Locust users send (Event / OrderEvent / Item, JSON, keyed by order id)."""

from __future__ import annotations

import dataclasses
import json
import random
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from kafkabench.loadtest.orders import (
    ORDER_EVENT_TYPES,
    ORDER_POOL_SIZE,
    Event,
    Item,
    OrderEvent,
    order_messages,
)


def test_order_event_json_round_trips_to_its_fields():
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    event = OrderEvent.random(random.Random(1), now=now)
    assert isinstance(event, Event)
    data = json.loads(event.value())
    assert list(data) == ["event_id", "event_type", "timestamp", "source", "order_id",
                          "customer_id", "items", "total"]
    assert data["event_type"] in ORDER_EVENT_TYPES and data["source"] == "order-service"
    assert datetime.fromisoformat(data["timestamp"]) <= now
    assert data["items"] == [{"sku": i.sku, "quantity": i.quantity, "price": i.price}
                             for i in event.items]
    assert all(isinstance(i, Item) for i in event.items) and event.items
    rebuilt = OrderEvent(**{**data, "items": tuple(Item(**i) for i in data["items"])})
    assert rebuilt == event


def test_key_is_the_order_id_and_headers_name_the_type():
    event = OrderEvent(event_id="e-1", event_type="OrderPaid", timestamp="2026-01-01T00:00:00+00:00",
                       source="shop", order_id="ord-1", customer_id="cust-7",
                       items=(Item("SKU-001-0001", 2, 3.5), Item("SKU-002-0002", 1, 10.0)),
                       total=17.0)
    assert event.key() == b"ord-1"
    assert event.headers() == [("event-type", b"OrderPaid"), ("version", b"1")]
    assert json.loads(event.value())["items"][0] == {"sku": "SKU-001-0001", "quantity": 2,
                                                       "price": 3.5}
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.total = 0.0


def test_total_is_the_sum_of_the_items():
    rng = random.Random(7)
    for _ in range(200):
        event = OrderEvent.random(rng)
        assert event.total == round(sum(i.quantity * i.price for i in event.items), 2)
        assert 1 <= len(event.items) <= 80


def test_pool_is_built_once_and_the_same_for_a_seed():
    pool = order_messages(256, seed=3)
    assert order_messages(256, seed=3) is pool
    keys = [key for key, _, _ in pool]
    assert len(set(keys)) == len(pool)  # one order per event: keys spread over partitions
    assert [json.loads(v)["order_id"].encode() for _, v, _ in pool] == keys
    other = order_messages(256, seed=4)
    assert [k for k, _, _ in other] != keys


def test_default_pool_has_a_mix_of_sizes():
    sizes = [len(value) for _, value, _ in order_messages()]
    assert len(sizes) == ORDER_POOL_SIZE
    # Mostly small orders, a tail of big ones (Locust's producer test expects 200-5000 B mean).
    assert min(sizes) > 200 and max(sizes) > 5 * min(sizes)
    assert 300 < sum(sizes) / len(sizes) < 2000


def test_import_leaves_locust_out():
    code = ("import sys, kafkabench.orders; "
            "print(sorted(m for m in ('locust', 'gevent') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"

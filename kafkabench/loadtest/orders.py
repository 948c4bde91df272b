"""Order events, the demo data of kafkabench's Locust users: JSON messages keyed by order id.

Modelled on the design source's event models: an `Event` envelope (event_id, event_type,
timestamp, source) and an `OrderEvent` carrying order_id, customer_id, its `Item`s (sku,
quantity, price) and the total. `order_messages` builds a pool of ready-to-send
(key, value, headers) once per process; nothing here imports locust.
"""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

#: Order events a pool of `order_messages` holds by default.
ORDER_POOL_SIZE = 4096
#: Where the events say they come from.
ORDER_SOURCE = "order-service"
#: Event types of order events, and how often each occurs in a pool.
ORDER_EVENT_TYPES = ("OrderCreated", "OrderPaid", "OrderPacked", "OrderShipped",
                     "OrderDelivered", "OrderCancelled")
_TYPE_WEIGHTS = (40, 25, 12, 12, 8, 3)
#: Value of every event's "version" header.
SCHEMA_VERSION = "1"
_PRODUCTS = 15
# Items per order: most orders are small, some carts are big, a few are bulk orders, so
# message sizes run from ~270 B to ~4 KB with a long tail (mean ~550 B).
_ITEM_COUNTS = ((range(1, 4), 70), (range(4, 16), 25), (range(16, 81), 5))


@dataclass(frozen=True, slots=True)
class Item:
    """One line of an order.

    Attributes:
        sku: the product's stock-keeping unit, "SKU-<product>-<variant>".
        quantity: units ordered.
        price: price of one unit.
    """

    sku: str
    quantity: int
    price: float

    def to_dict(self) -> dict[str, Any]:
        """The item as JSON-ready data."""
        return {"sku": self.sku, "quantity": self.quantity, "price": self.price}


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """What every event carries.

    Attributes:
        event_id: unique id of the event (a UUID).
        event_type: what happened, e.g. "OrderCreated"; also the "event-type" header.
        timestamp: when it happened, ISO 8601 in UTC.
        source: the service that emitted it.
    """

    event_id: str
    event_type: str
    timestamp: str
    source: str

    def to_dict(self) -> dict[str, Any]:
        """The event as JSON-ready data."""
        return {"event_id": self.event_id, "event_type": self.event_type,
                "timestamp": self.timestamp, "source": self.source}

    def value(self) -> bytes:
        """The message value: the event as compact JSON."""
        return json.dumps(self.to_dict(), separators=(",", ":")).encode()

    def headers(self) -> list[tuple[str, bytes]]:
        """Message headers "event-type" and "version"."""
        return [("event-type", self.event_type.encode()), ("version", SCHEMA_VERSION.encode())]


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderEvent(Event):
    """An e-commerce order event, keyed by order id so one order's events stay in order.

    Attributes:
        order_id: "ord-<hex>"; the message key.
        customer_id: "cust-<n>".
        items: the order's lines (a JSON list in the message).
        total: sum of quantity * price over the items, rounded to cents.
    """

    order_id: str
    customer_id: str
    items: tuple[Item, ...]
    total: float

    @classmethod
    def random(cls, rng: random.Random, *, customers: int = 100_000,
               now: datetime | None = None) -> OrderEvent:
        """A random order event with the size mix of `_ITEM_COUNTS`, from `rng` alone
        (except its timestamp: up to an hour before `now`).

        Args:
            rng: the random source; the same seed gives the same events.
            customers: distinct customer ids to draw from.
            now: latest timestamp (default: the current time).
        """
        counts = rng.choices([c for c, _ in _ITEM_COUNTS], weights=[w for _, w in _ITEM_COUNTS])[0]
        items = tuple(Item(sku=f"SKU-{rng.randrange(_PRODUCTS):03d}-{rng.randrange(10_000):04d}",
                           quantity=rng.randint(1, 5), price=round(rng.uniform(2.0, 150.0), 2))
                      for _ in range(rng.choice(counts)))
        at = (now or datetime.now(UTC)) - timedelta(seconds=rng.uniform(0, 3600))
        return cls(event_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                   event_type=rng.choices(ORDER_EVENT_TYPES, weights=_TYPE_WEIGHTS)[0],
                   timestamp=at.isoformat(timespec="milliseconds"), source=ORDER_SOURCE,
                   order_id=f"ord-{rng.getrandbits(48):012x}",
                   customer_id=f"cust-{rng.randrange(customers)}", items=items,
                   total=round(sum(i.quantity * i.price for i in items), 2))

    def to_dict(self) -> dict[str, Any]:
        """The event as JSON-ready data: the envelope, then the order."""
        return {**Event.to_dict(self), "order_id": self.order_id,
                "customer_id": self.customer_id, "items": [i.to_dict() for i in self.items],
                "total": self.total}

    def key(self) -> bytes:
        """The message key: the order id."""
        return self.order_id.encode()


_order_pools: dict[tuple[int, int], list[tuple[bytes, bytes, list[tuple[str, bytes]]]]] = {}


def order_messages(count: int = ORDER_POOL_SIZE,
                   seed: int = 0) -> list[tuple[bytes, bytes, list[tuple[str, bytes]]]]:
    """Pre-built (key, value, headers) of `count` order events, built once per process.

    Serialising JSON per send would cost more than producing it; Locust users cycle through
    this pool from their own random offset instead.

    Args:
        count: events in the pool.
        seed: random seed; the same seed gives the same orders (timestamps aside).

    Returns:
        The pool, shared by every caller asking for the same count and seed.
    """
    pool = _order_pools.get((count, seed))
    if pool is None:
        rng = random.Random(seed)
        events = [OrderEvent.random(rng) for _ in range(count)]
        pool = _order_pools[(count, seed)] = [(e.key(), e.value(), e.headers()) for e in events]
    return pool


__all__ = ["Event", "Item", "OrderEvent", "ORDER_EVENT_TYPES", "ORDER_POOL_SIZE", "order_messages"]

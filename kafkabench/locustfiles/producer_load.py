"""Order events into Kafka, keyed by order id, at a realistic mix of sizes.

    locust -f locustfiles/producer_load.py --headless -u 5 -r 5 -t 60s

Each user sends order events (`kafkabench.orders.OrderEvent`: JSON of ~270 B to ~4 KB,
headers event-type and version) as fast as it can, or `--kafka-rate N` events/s.
"""

from kafkabench.loadtest.locust_user import OrderEventUser


class OrderProducer(OrderEventUser):
    """A service publishing order events."""

    topic = "kb-locust-orders"

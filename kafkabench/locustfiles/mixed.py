"""Producers and consumers together, with a step or spike load shape.

    locust -f locustfiles/mixed.py --headless -u 8 -r 4 -t 60s                    # 4 steps
    locust -f locustfiles/mixed.py --headless -u 8 -r 4 -t 60s --kafka-shape spike

Half the users publish order events at `--kafka-rate` (default 500/s each), half are members
of one consumer group. `--kafka-shape` picks the users over time: step (`--kafka-steps` equal
steps up to -u, over -t), spike (a quarter of -u, all of -u in the middle fifth of -t) or
constant. Every step adds producers (rate) and consumers (rebalances).
"""

from locust import task

from kafkabench.loadtest.locust_user import KafkaConsumerUser, KafkaLoadShape, OrderEventUser


class OrderProducer(OrderEventUser):
    """A service publishing order events at a steady rate."""

    topic = "kb-locust-mixed"
    rate = 500


class OrderConsumer(KafkaConsumerUser):
    """One member of the order-processing consumer group."""

    topic = "kb-locust-mixed"

    @task
    def read_orders(self):
        self.client.consume(self.batch)


class Shape(KafkaLoadShape):
    """Users over time as --kafka-shape says."""

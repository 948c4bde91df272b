"""Consumer-group members as Locust users: joining and leaving users rebalance the group.

    locust -f locustfiles/consumer_load.py --headless -u 4 -r 1 -t 60s

One `OrderFeeder` keeps the topic fed (`--kafka-rate`, default 2000 orders/s); every other
user is a member of one consumer group (`--kafka-group`, default kb-locust-<topic>) reading
the topic. Statistics: "consume" rows carry the end-to-end latency, "rebalance" rows count
the rebalances (assign: how long the member owned no partition; lost: a failure).
A new group starts at the earliest offset, so whatever producer_load.py left on the topic is
read first.
"""

from locust import task

from kafkabench.loadtest.locust_user import KafkaConsumerUser, OrderEventUser


class OrderFeeder(OrderEventUser):
    """Publishes order events at a steady rate, so the consumers have something to read."""

    topic = "kb-locust-orders"
    rate = 2000
    fixed_count = 1


class OrderConsumer(KafkaConsumerUser):
    """One member of the order-processing consumer group."""

    topic = "kb-locust-orders"

    @task
    def read_orders(self):
        self.client.consume(self.batch)

"""Order events into Kafka, keyed by user id, at a realistic mix of sizes.

    locust -f locustfiles/producer_load.py --headless -u 5 -r 5 -t 60s

Each user sends order events (`kafkabench.locust_user.OrderEvent`: JSON of ~250 B to ~10 KB,
headers event-type and version) as fast as it can, or `--kafka-rate N` events/s.
"""

import itertools
import random

from locust import task

from kafkabench.locust_user import KafkaUser, order_messages


class OrderProducer(KafkaUser):
    """A service publishing order events."""

    topic = "kb-locust-orders"

    def on_start(self):
        super().on_start()
        pool = order_messages()
        self.orders = itertools.islice(itertools.cycle(pool), random.randrange(len(pool)), None)

    @task
    def send_orders(self):
        for _ in range(self.batch):
            key, value, headers = next(self.orders)
            self.client.produce(self.topic, value, key, headers=headers)

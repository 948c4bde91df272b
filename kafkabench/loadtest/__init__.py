"""Load tests with Locust. `locust_user` holds `KafkaClient` and the abstract `KafkaUser` (the
only module that imports locust, which monkey-patches the process: nothing else of kafkabench
imports it); `locust_results` runs Locust headless as a subprocess and reads its CSVs into a
`RunResult`; `shapes` is load-shape maths without Locust; `orders` the demo order events.

May import: `kafkabench.runner` and everything below it; `locust` only in `locust_user`.
"""

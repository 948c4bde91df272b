"""kafkabench: observe and load-test Apache Kafka from Python and JupyterLab."""

#: The one place the version is set: pyproject.toml reads it (`[tool.setuptools.dynamic]`).
__version__ = "0.1.0"

#: The one place the Apache Kafka version is pinned (broker, tools and docker image).
KAFKA_VERSION = "4.4.0"

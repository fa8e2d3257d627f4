"""Drop-in classes for testcontainers-python 4.15 users: change the import lines, keep the tests.

    from localdev.testcontainers import PostgresContainer     # was: from testcontainers.postgres import ...

`PostgresContainer`, `MongoDbContainer`, `LocalStackContainer` (same constructors, context managers,
`start()`/`stop()` and accessors) and `DynamoDbContainer` each lease a namespace on the shared cluster at
`start()` and delete it at `stop()`: no container to pull, start and wait for; xdist workers get namespaces
of their own; a killed run's namespaces expire (TTL, default 1h: `ttl=` or LOCALDEV_TESTCONTAINERS_TTL).
Submodules mirror testcontainers' (`localdev.testcontainers.postgres`, `.mongodb`, `.localstack`).
"""

from localdev.testcontainers.core import ArgumentIgnored, ContainerStartException, ContainerUnsupported
from localdev.testcontainers.dynamodb import DynamoDbContainer
from localdev.testcontainers.localstack import LocalStackContainer
from localdev.testcontainers.mongodb import MongoDbContainer
from localdev.testcontainers.postgres import PostgresContainer

__all__ = ["ArgumentIgnored", "ContainerStartException", "ContainerUnsupported", "DynamoDbContainer",
           "LocalStackContainer", "MongoDbContainer", "PostgresContainer"]

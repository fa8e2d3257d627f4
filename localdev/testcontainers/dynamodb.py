"""`DynamoDbContainer`: DynamoDB Local as a testcontainers-style class (testcontainers-python 4.15 has no module
for it: people write `DockerContainer("amazon/dynamodb-local")`), shaped like its LocalStack class, on a
namespace: a database of its own (DynamoDB Local keeps one per access key) on the shared cluster.

    >>> from localdev.testcontainers.dynamodb import DynamoDbContainer
    >>> with DynamoDbContainer() as dynamodb:
    ...     dynamodb.get_client().list_tables()["TableNames"]
    []
"""

from __future__ import annotations

from typing import Any

from localdev.testcontainers.core import AwsEndpoint, split_url


class DynamoDbContainer(AwsEndpoint):
    service = "dynamodb"
    default_image = "amazon/dynamodb-local:latest"
    server = "DynamoDB Local"

    def __init__(self, image: str = "amazon/dynamodb-local:latest", port: int = 8000, region_name: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(image, region_name=region_name, **kwargs)
        self.port = port
        self.with_exposed_ports(self.port)

    def _endpoint(self) -> tuple[str, int]:
        return split_url(self._ns_env["AWS_ENDPOINT_URL_DYNAMODB"])

    def get_url(self) -> str:
        return f"http://{self.get_container_host_ip()}:{self.get_exposed_port(self.port)}"

    def get_client(self, name: str = "dynamodb", **kwargs: Any) -> Any:
        return self._client(name, self.get_url(), kwargs)

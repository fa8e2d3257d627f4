"""`LocalStackContainer`, as testcontainers-python 4.15 has it, on a namespace: an account of its own (a random
12-digit key) on the shared cluster's AWS emulator (LocalStack or MiniStack).

    >>> from localdev.testcontainers.localstack import LocalStackContainer
    >>> with LocalStackContainer(image="localstack/localstack:2.0.1").with_services("s3", "sqs") as localstack:
    ...     localstack.get_client("s3").list_buckets()["Buckets"]
    []

`get_client("dynamodb")` is a client of the cluster's DynamoDB Local when it runs one (with the same key), as
`ns env` points boto3 at it. `with_services(...)` is accepted: the emulator serves all of them anyway.
What the emulator does not isolate between accounts is in the README's isolation table.
"""

from __future__ import annotations

from typing import Any

from localdev.testcontainers.core import AwsEndpoint, split_url


class LocalStackContainer(AwsEndpoint):
    service = "aws"
    default_image = "localstack/localstack:2.0.1"
    server = "AWS emulator"

    def __init__(self, image: str = "localstack/localstack:2.0.1", edge_port: int = 4566,
                 region_name: str | None = None, **kwargs: Any) -> None:
        super().__init__(image, region_name=region_name, **kwargs)
        self.edge_port = edge_port
        self.services: tuple[str, ...] = ()
        self.with_exposed_ports(self.edge_port)

    def with_services(self, *services: str) -> LocalStackContainer:
        self.services = services
        return self

    def start(self, timeout: float = 60) -> LocalStackContainer:
        return super().start()

    def _endpoint(self) -> tuple[str, int]:
        return split_url(self._ns_env["AWS_ENDPOINT_URL"])

    def get_url(self) -> str:
        host = self.get_container_host_ip()
        port = self.get_exposed_port(self.edge_port)
        return f"http://{host}:{port}"

    def get_client(self, name: str, **kwargs: Any) -> Any:
        dynamodb = self._ns_env.get("AWS_ENDPOINT_URL_DYNAMODB")
        url = dynamodb if name == "dynamodb" and dynamodb else self.get_url()
        return self._client(name, url, kwargs)

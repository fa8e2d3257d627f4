"""What the services that speak AWS APIs (DynamoDB Local, the AWS emulator) share: one set of namespace
credentials, warm botocore clients, and how an AWS error's code is read.

One botocore session for the whole process (loading its models is the costly part of a first client),
and per service a bounded LRU of clients keyed by what makes them differ (API, key, region, ...).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from localdev.names import new_account_id, new_secret
from localdev.services.base import Secret

# Both AWS endpoints take one key pair per namespace (the "aws" secret group): the access key id is a random
# 12-digit account id, which DynamoDB Local keeps one database per and the emulators map to an account.
SECRETS = (Secret("aws", "access_key_id", new_account_id), Secret("aws", "secret_access_key", lambda: new_secret(30)))
CREDENTIAL_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_DEFAULT_REGION")


def credentials_env(ns) -> dict[str, str]:
    return {"AWS_ACCESS_KEY_ID": access_key_id(ns), "AWS_SECRET_ACCESS_KEY": ns.secret("aws", "secret_access_key"),
            "AWS_REGION": ns.region, "AWS_DEFAULT_REGION": ns.region}


def access_key_id(ns) -> str:
    return ns.secret("aws", "access_key_id")


def error_code(exc: BaseException) -> str | None:
    """The AWS error code of a botocore ClientError (e.g. "ResourceNotFoundException"), else None."""
    response = getattr(exc, "response", None)
    return (response or {}).get("Error", {}).get("Code") if isinstance(response, dict) else None


def boto3_client(env: dict, api: str, endpoint_key: str):
    """A boto3 client as a user's code makes one from `ns env` (the pytest fixtures')."""
    import boto3

    return boto3.session.Session(
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_REGION"]).client(api, endpoint_url=env[endpoint_key])


_session = None
_session_lock = threading.Lock()


def session():
    global _session
    with _session_lock:
        if _session is None:
            import botocore.session

            _session = botocore.session.get_session()
        return _session


class WarmClients:
    def __init__(self, max_size: int):
        self.max_size = max_size
        self._clients: OrderedDict[tuple, Any] = OrderedDict()  # botocore clients
        self._lock = threading.Lock()

    def get(self, api: str, *, endpoint: str, key: str, secret: str, region: str, config, tag: str = ""):
        cache_key = (api, endpoint, key, secret, region, tag)
        with self._lock:
            client = self._clients.get(cache_key)
            if client is not None:
                self._clients.move_to_end(cache_key)
                return client
            client = session().create_client(api, region_name=region, endpoint_url=endpoint, aws_access_key_id=key,
                                             aws_secret_access_key=secret, config=config)
            self._clients[cache_key] = client
            while len(self._clients) > self.max_size:
                self._clients.popitem(last=False)  # not closed: another thread may be using it
            return client

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()

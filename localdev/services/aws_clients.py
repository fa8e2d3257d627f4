"""What the services that speak AWS APIs (DynamoDB Local, the AWS emulator) share: one set of namespace
credentials, warm botocore clients, and how an AWS error's code is read.

One botocore session for the whole process (loading its models is the costly part of a first client),
and per service a bounded LRU of clients keyed by what makes them differ (API, key, region, ...), each used
under a lease so that an evicted client can be closed without closing it under a thread.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from contextlib import contextmanager

from localdev.config import Option
from localdev.names import new_account_id, new_secret
from localdev.services.base import CA_FILE, Secret

# Both AWS endpoints take one key pair per namespace (the "aws" secret group): the access key id is a random
# 12-digit account id, which DynamoDB Local keeps one database per and the emulators map to an account.
SECRETS = (Secret("aws", "access_key_id", new_account_id), Secret("aws", "secret_access_key", lambda: new_secret(30)))
CREDENTIAL_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_CA_BUNDLE")
# Both sit behind localdev's gateway (localdev/gateway/), on a private loopback port; 0: `up` picks a free one.
GATEWAY_OPTIONS = {"backend_port": Option(0, int, help="the server's own loopback port behind the gateway "
                                                       "(default: a free one, chosen at `up`)")}


def public_url(svc) -> str:
    """The gateway's endpoint for a service behind it, as `ns env` gives it: https with the cluster CA beyond
    loopback (team mode), where the gateway terminates TLS. On runtime = "external", the service's url (there
    is no gateway of ours in front of it)."""
    host = svc.client_host
    where = f"[{host}]" if ":" in host else host
    scheme = svc.ctx.endpoint.scheme if svc.ctx.endpoint else ("https" if svc.tls else "http")
    return f"{scheme}://{where}:{svc.port}"


def server_url(svc) -> str:
    """The server itself, for localdev's own clients (seeding, readiness): behind the gateway on loopback, or
    an external url as given."""
    if svc.ctx.endpoint:
        return svc.ctx.endpoint.url(path="", user=False, query=())
    return f"http://127.0.0.1:{svc.backend_port}"


def credentials_env(ns, tls: bool = False) -> dict[str, str]:
    env = {"AWS_ACCESS_KEY_ID": access_key_id(ns), "AWS_SECRET_ACCESS_KEY": ns.secret("aws", "secret_access_key"),
           "AWS_REGION": ns.region, "AWS_DEFAULT_REGION": ns.region}
    if tls:  # boto3 and the AWS CLI verify the gateway's certificate against the cluster CA
        env["AWS_CA_BUNDLE"] = CA_FILE
    return env


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


class _Entry:
    __slots__ = ("client", "leases", "retired")

    def __init__(self, client):
        self.client = client
        self.leases = 0
        self.retired = False


class WarmClients:
    """A bounded LRU of botocore clients, each used under a lease (`with clients.lease(...) as client:`).

    A botocore client holds a pool of sockets until it is closed; dropping the last reference does not close
    them soon (its reference cycles wait for the cyclic collector), so a long-lived agent that only forgot
    evicted clients kept ~2.4 sockets per namespace ever served. An evicted or dropped client is retired:
    closed at once if no lease holds it, else by the last lease to end, so a thread never has its client
    closed under it."""

    def __init__(self, max_size: int):
        self.max_size = max_size
        self._clients: OrderedDict[tuple, _Entry] = OrderedDict()
        self._lock = threading.Lock()

    @contextmanager
    def lease(self, api: str, *, endpoint: str, key: str, secret: str, region: str, config, tag: str = ""):
        cache_key = (api, endpoint, key, secret, region, tag)
        to_close: list[_Entry] = []
        with self._lock:
            entry = self._clients.get(cache_key)
            if entry is not None:
                self._clients.move_to_end(cache_key)
            else:
                entry = _Entry(session().create_client(
                    api, region_name=region, endpoint_url=endpoint, aws_access_key_id=key,
                    aws_secret_access_key=secret, config=config))
                self._clients[cache_key] = entry
                while len(self._clients) > self.max_size:
                    to_close += self._retire(self._clients.popitem(last=False)[1])
            entry.leases += 1
        _close(to_close)
        try:
            yield entry.client
        finally:
            with self._lock:
                entry.leases -= 1
                done = entry.retired and entry.leases == 0
            if done:
                _close([entry])

    def drop(self, key: str) -> None:
        """Retire every client made with access key `key` (a deleted namespace's)."""
        with self._lock:
            gone = [k for k in self._clients if k[2] == key]
            to_close = [e for k in gone for e in self._retire(self._clients.pop(k))]
        _close(to_close)

    def __len__(self) -> int:
        return len(self._clients)

    def _retire(self, entry: _Entry) -> list[_Entry]:
        entry.retired = True
        return [entry] if entry.leases == 0 else []

    def close(self) -> None:
        with self._lock:
            entries = list(self._clients.values())
            self._clients.clear()
            to_close = [e for e in entries for e in self._retire(e)]
        _close(to_close)


def _close(entries: list[_Entry]) -> None:
    # Outside the lock: closing a pool of sockets is I/O, and other threads want their clients meanwhile.
    for entry in entries:
        entry.client.close()

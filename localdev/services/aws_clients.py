"""What the services that speak AWS APIs (DynamoDB Local, the AWS emulator) share: one set of namespace
credentials, warm botocore clients, and how an AWS error's code is read.

One botocore session for the whole process (loading its models is the costly part of a first client),
and per service a few clients shared by every account, each call signed with its account's credentials
(`WarmClients`), used under a lease so that a restarting service's client is not closed under a thread.
"""

from __future__ import annotations

import threading
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


# The keyword an account's calls carry through a shared client, taken out again before botocore validates
# the parameters (no AWS API has a lower-case parameter).
_CREDENTIALS_PARAM = "localdev_credentials"


def _take_credentials(params, context, **_):
    credentials = params.pop(_CREDENTIALS_PARAM, None)
    if credentials is not None:
        context.setdefault("signing", {})["request_credentials"] = credentials


def _require_credentials(request, **_):
    # A call that reached the client around an AccountClient would be signed with the client's placeholder
    # key, which the emulators map to a default account: refused here, loudly, instead.
    if not request.context.get("signing", {}).get("request_credentials"):
        raise RuntimeError("a shared AWS client was called without an account's credentials")


class AccountClient:
    """One account's view of a shared botocore client: every call (and every page of a paginator) is signed
    with this account's key and secret; everything else is the shared client's."""

    def __init__(self, client, credentials):
        self._client = client
        self._credentials = credentials
        self._operations = client.meta.method_to_api_mapping

    def __getattr__(self, name: str):
        attr = getattr(self._client, name)
        if name in self._operations:
            credentials = self._credentials
            return lambda **kwargs: attr(**kwargs, **{_CREDENTIALS_PARAM: credentials})
        return attr

    def get_paginator(self, operation: str):
        return _AccountPaginator(self._client.get_paginator(operation), self._credentials)


class _AccountPaginator:
    def __init__(self, paginator, credentials):
        self._paginator, self._credentials = paginator, credentials

    def paginate(self, **kwargs):
        return self._paginator.paginate(**kwargs, **{_CREDENTIALS_PARAM: self._credentials})


class WarmClients:
    """A few shared botocore clients, one per (API, endpoint, region, tag), each call signed with the
    credentials of the account it is made for: `with clients.lease(api, key=..., ...) as client:`.

    A client per account cost its creation on every namespace's first request (a new client class, the
    endpoint rules parsed, the event handlers copied) and a pool of sockets, which a long-lived agent had
    to close when it evicted the client. The accounts now only differ in the credentials each request is
    signed with. A client is closed only when its service restarts (`close`): at once if no lease holds it,
    else by the last lease to end, so a thread never has its client closed under it."""

    def __init__(self):
        self._clients: dict[tuple, _Entry] = {}
        self._lock = threading.Lock()

    @contextmanager
    def lease(self, api: str, *, endpoint: str, key: str, secret: str, region: str, config, tag: str = ""):
        from botocore.credentials import Credentials

        cache_key = (api, endpoint, region, tag)
        with self._lock:
            entry = self._clients.get(cache_key)
            if entry is None:
                entry = self._clients[cache_key] = _Entry(_shared_client(api, endpoint, region, config))
            entry.leases += 1
        try:
            yield AccountClient(entry.client, Credentials(key, secret))
        finally:
            with self._lock:
                entry.leases -= 1
                done = entry.retired and entry.leases == 0
            if done:
                _close([entry])

    def close(self) -> None:
        with self._lock:
            entries = list(self._clients.values())
            self._clients.clear()
            for entry in entries:
                entry.retired = True
            to_close = [e for e in entries if e.leases == 0]
        _close(to_close)


def _shared_client(api: str, endpoint: str, region: str, config):
    from botocore.config import Config

    # Every namespace's requests share its connections: a pool for the agent's concurrent creators' steps.
    client = session().create_client(api, region_name=region, endpoint_url=endpoint,
                                     aws_access_key_id="localdev-shared", aws_secret_access_key="unused",
                                     config=config.merge(Config(max_pool_connections=32)))
    client.meta.events.register("before-parameter-build", _take_credentials)
    client.meta.events.register("before-sign", _require_credentials)
    client.meta.events.register_last("before-call.s3", _no_expect_for_small_bodies)
    return client


SMALL_BODY = 1 << 20


def _no_expect_for_small_bodies(params, **_):
    """botocore sends every S3 upload of a file (and of bytes, which it wraps in one) with `Expect:
    100-continue`: it waits for the server's interim answer before it sends the body, and reads that answer
    one byte per system call. For a seed's or a snapshot's object of a few bytes that is a round trip and a
    few dozen wake-ups more per object, on a create's path. A body up to SMALL_BODY goes at once, as it
    would if the server refused it: the refusal still comes, after a small upload."""
    from botocore.utils import determine_content_length

    headers = params.get("headers", {})
    if headers.get("Expect") == "100-continue":
        length = determine_content_length(params.get("body"))
        if length is not None and length <= SMALL_BODY:
            del headers["Expect"]


def _close(entries: list[_Entry]) -> None:
    # Outside the lock: closing a pool of sockets is I/O, and other threads want their clients meanwhile.
    for entry in entries:
        entry.client.close()

"""Warm botocore clients for the services that speak AWS APIs (DynamoDB Local, the AWS emulator).

One botocore session for the whole process (loading its models is the costly part of a first client),
and per service a bounded LRU of clients keyed by what makes them differ (API, key, region, ...).
"""

from __future__ import annotations

import threading
from collections import OrderedDict

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
        self._clients: OrderedDict[tuple, object] = OrderedDict()
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

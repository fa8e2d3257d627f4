"""`MongoDbContainer`, as testcontainers-python 4.15 has it, on a namespace: a database and user of its own on
the shared cluster's MongoDB-compatible server.

    >>> from localdev.testcontainers.mongodb import MongoDbContainer
    >>> with MongoDbContainer("mongo:7.0.7") as mongo:
    ...     db = mongo.get_connection_client().test
    ...     _ = db.restaurants.insert_one({"name": "Vella", "restaurant_id": "123456"})
    ...     db.restaurants.find_one({"name": "Vella"})["restaurant_id"]
    '123456'

The namespace's user may use its own database only. So that code written for a private server keeps working,
the client from `get_connection_client()` gives that database under the name the container was asked for
(`dbname`, default "test") as well as under its own (`.dbname` after `start()`); any other database is
refused by the server (unauthorized), never quietly another one.
"""

from __future__ import annotations

import os
from typing import Any

from localdev.testcontainers.core import NamespaceContainer, split_url


class MongoDbContainer(NamespaceContainer):
    service = "mongo"
    default_image = "mongo:latest"
    server = "MongoDB-compatible server"

    def __init__(self, image: str = "mongo:latest", port: int = 27017, username: str | None = None,
                 password: str | None = None, dbname: str | None = None, **kwargs: Any) -> None:
        if kwargs.pop("port_to_expose", None):
            raise ValueError("Use `port` instead of `port_to_expose`")
        super().__init__(image=image, **kwargs)
        for given, what, variable in ((username, "username", "MONGO_INITDB_ROOT_USERNAME"),
                                      (password, "password", "MONGO_INITDB_ROOT_PASSWORD")):
            if given or os.environ.get(variable):
                self._ignored(what if given else variable, "the namespace has its own user (in get_connection_url())")
        self.username = username or os.environ.get("MONGO_INITDB_ROOT_USERNAME", "test")
        self.password = password or os.environ.get("MONGO_INITDB_ROOT_PASSWORD", "test")
        self.dbname = dbname or os.environ.get("MONGO_DB", "test")
        self._asked_db = self.dbname
        self.port = port
        self.with_exposed_ports(self.port)

    def _leased(self) -> None:
        from urllib.parse import unquote, urlsplit

        parts = urlsplit(self._ns_env["MONGODB_URI"])
        self.dbname = parts.path.lstrip("/")
        self.username, self.password = unquote(parts.username or ""), unquote(parts.password or "")

    def _endpoint(self) -> tuple[str, int]:
        return split_url(self._ns_env["MONGODB_URI"])

    def get_connection_url(self) -> str:
        """The namespace's URI: its user, and its database in the path (also the authentication source)."""
        self.get_exposed_port(self.port)  # refuses before start(), as testcontainers does
        return self._ns_env["MONGODB_URI"]

    def get_connection_client(self):
        """A pymongo MongoClient on which `client[dbname]` (the name asked for) is the namespace's database."""
        return _client_class()(self.get_connection_url(), alias=self._asked_db, target=self.dbname)


def _client_class():
    from pymongo import MongoClient

    class NamespaceMongoClient(MongoClient):
        """`client[alias]` and `client.get_database(alias)` give the namespace's database (`target`)."""

        def __init__(self, *args: Any, alias: str, target: str, **kwargs: Any) -> None:
            self._alias, self._target = alias, target
            super().__init__(*args, **kwargs)

        def _name(self, name):
            return self._target if name == self._alias else name

        def __getitem__(self, name: str):
            return super().__getitem__(self._name(name))

        def get_database(self, name=None, *args: Any, **kwargs: Any):
            return super().get_database(self._name(name), *args, **kwargs)

    return NamespaceMongoClient

"""`PostgresContainer`, as testcontainers-python 4.15 has it, on a namespace: a database and role of its own on
the shared cluster's PostgreSQL.

    >>> from localdev.testcontainers.postgres import PostgresContainer
    >>> import psycopg
    >>> with PostgresContainer("postgres:16", driver=None) as postgres:
    ...     with psycopg.connect(postgres.get_connection_url()) as conn:
    ...         conn.execute("select current_user = current_database()").fetchone()
    (True,)

`username`, `password` and `dbname` are the namespace's (random, set by `start()`); ones given are said and
not applied, since roles are shared by every namespace of the server.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import quote, urlsplit

from localdev.testcontainers.core import NamespaceContainer, split_url

_UNSET: Any = object()


class PostgresContainer(NamespaceContainer):
    service = "postgres"
    default_image = "postgres:latest"
    server = "PostgreSQL"

    def __init__(self, image: str = "postgres:latest", port: int = 5432, username: str | None = None,
                 password: str | None = None, dbname: str | None = None, driver: str | None = "psycopg2",
                 **kwargs: Any) -> None:
        if kwargs.pop("user", None):
            raise ValueError("Use `username` instead of `user`")
        super().__init__(image=image, **kwargs)
        for given, what, variable in ((username, "username", "POSTGRES_USER"), (password, "password",
                                      "POSTGRES_PASSWORD"), (dbname, "dbname", "POSTGRES_DB")):
            if given or os.environ.get(variable):
                self._ignored(what if given else variable, "the namespace has its own role and database (read "
                              "them from .username, .password, .dbname after start())")
        self.username: str = username or os.environ.get("POSTGRES_USER", "test")
        self.password: str = password or os.environ.get("POSTGRES_PASSWORD", "test")
        self.dbname: str = dbname or os.environ.get("POSTGRES_DB", "test")
        self.port = port
        self.driver = f"+{driver}" if driver else ""
        self.with_exposed_ports(self.port)

    def _leased(self) -> None:
        env = self._ns_env
        self.username, self.password, self.dbname = env["PGUSER"], env["PGPASSWORD"], env["PGDATABASE"]

    def _endpoint(self) -> tuple[str, int]:
        return split_url(self._ns_env["DATABASE_URL"])

    def get_connection_url(self, host: str | None = None, driver: str | None = _UNSET) -> str:
        """testcontainers' shape: `postgresql+psycopg2://user:password@host:port/dbname`; `driver=None` drops the
        driver. Where the cluster needs TLS (team mode), its settings follow as a query string."""
        driver_str = "" if driver is None else self.driver if driver is _UNSET else f"+{driver}"
        host = host or self.get_container_host_ip()
        port = self.get_exposed_port(self.port)
        url = f"postgresql{driver_str}://{self.username}:{quote(self.password, safe=' +')}@{host}:{port}/{self.dbname}"
        query = urlsplit(self._ns_env["DATABASE_URL"]).query
        return f"{url}?{query}" if query else url

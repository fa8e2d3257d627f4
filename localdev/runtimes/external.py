"""Services someone else runs (runtime = "external"): a managed PostgreSQL, a MongoDB cluster, a Redis, the
Services of a Kubernetes deployment. localdev starts none of them, and stops, restarts and purges nothing:
each service's `[services.<name>] url` says where it is and as whom localdev administers it, and `up`
checks that with a real round trip and the privileges namespaces need before it starts the agent.

Passwords come from LOCALDEV_<SERVICE>_PASSWORD, else from the file `password_file` names (a mounted
Kubernetes Secret, say); a password written in the url is refused, so the config and cluster.json never
hold one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from localdev.errors import BadInput, LocalDevError
from localdev.runtimes.base import Endpoint, ProcessState
from localdev.state import StateDir


def password_env(name: str) -> str:
    return f"LOCALDEV_{name.upper()}_PASSWORD"


def parse_url(name: str, url: str, schemes: tuple[str, ...], default_port: int, where: str) -> Endpoint:
    """[services.<name>] url -> Endpoint without its password; BadInput naming the key for anything wrong."""
    key = f"{where}: services.{name}.url"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise BadInput(f"{key}: {url!r} is not a url: {exc}") from None
    if parts.scheme not in schemes:
        raise BadInput(f"{key}: the scheme must be {' or '.join(s + '://' for s in schemes)}, not {parts.scheme!r}")
    if not parts.hostname:
        raise BadInput(f"{key}: {url!r} names no host")
    if parts.password is not None:
        raise BadInput(f"{key}: the url holds a password; the config must not: give it in {password_env(name)} or "
                       f"in a file named by [services.{name}] password_file")
    return Endpoint(scheme=parts.scheme, host=parts.hostname, port=port or default_port,
                    user=unquote(parts.username or ""), path=parts.path if parts.path not in ("", "/") else "",
                    query=tuple(parse_qsl(parts.query, keep_blank_values=True)))


def read_password(name: str, password_file: str, environ=os.environ) -> str | None:
    """LOCALDEV_<NAME>_PASSWORD, else the first line of `password_file`, else None (the server may need none)."""
    if environ.get(password_env(name)):
        return environ[password_env(name)]
    if not password_file:
        return None
    try:
        text = Path(password_file).read_text()
    except OSError as exc:
        raise BadInput(f"[services.{name}] password_file = {password_file!r}: cannot read it: "
                       f"{exc.strerror}") from None
    return text.splitlines()[0] if text.strip() else None


class ExternalRuntime:
    """Nothing to run: each service is where its url says. `state` reports every service as running (it is
    not localdev's to start), so the agent's supervisor restarts nothing and `status` shows each one's health
    from its readiness round trip."""

    name = "external"

    def __init__(self, state: StateDir, host: str = "127.0.0.1"):
        self.dirs = state
        self.host = host

    def endpoint(self, name: str, options: dict) -> Endpoint | None:
        if not options.get("url"):
            return None  # a disabled service: config validation asks every enabled one for its url
        from localdev.services import service_classes

        cls = service_classes()[name]
        endpoint = parse_url(name, options["url"], cls.url_schemes, cls.default_port, "config")
        password = read_password(name, options.get("password_file", ""))
        return Endpoint(**{**endpoint.__dict__, "password": password})

    def verify(self, service) -> None:
        """The service's round trip and privileges (BadInput naming what is missing), before the agent starts."""
        self.spec_for(service)
        service.check_endpoint()

    def spec_for(self, service) -> Endpoint:
        if service.ctx.endpoint is None:
            raise BadInput(f'runtime = "external" needs [services.{service.name}] url (where it runs, with the '
                           "admin user), or enabled = false")
        return service.ctx.endpoint

    def prepare(self, service) -> None:
        """No binaries and no data here."""

    def start(self, name: str, spec) -> int | None:
        return None

    def state(self, name: str) -> ProcessState:
        return ProcessState(True, None, "external")

    def instance(self, name: str) -> str | None:
        return None  # someone else runs it: a restart is not ours to see

    def stop(self, name: str, spec=None) -> None:
        """Never stops a service it did not start; `down` stops only the agent."""

    def kill(self, name: str) -> None:
        raise LocalDevError(f"{name} is an external service: localdev does not run it, so it cannot kill it")

    def purge(self, service_names: list[str] | None = None) -> None:
        """`down --purge` removes local state only: the services, and the namespaces in them, are shared."""

    def log_path(self, name: str) -> Path | None:
        return None

    def logs(self, name: str, tail: int | None = None, follow: bool = False) -> Iterator[str]:
        raise BadInput(f"{name} is an external service: its logs are kept by whoever runs it "
                       "(`localdev logs agent` shows what localdev did with it)")

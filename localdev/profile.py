"""Where the client finds its cluster: LOCALDEV_URL / LOCALDEV_TOKEN / LOCALDEV_CA, else the profile that
`localdev login` wrote (0600, in the user's config dir), else the local cluster in LOCALDEV_HOME.

`login` pins the cluster CA: it fetches the CA's certificate, shows its SHA-256 fingerprint (which the
server's admin can compare with `localdev status --json` there), checks the agent's certificate against
it and the token against the agent, and only then writes the profile.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from localdev.agent_client import AgentClient
from localdev.errors import BadInput
from localdev.state import write_private


class Remote:
    """Where a remote cluster is and how to reach it (a plain class: see names.Namespace)."""

    __slots__ = ("url", "token", "ca")

    def __init__(self, url: str, token: str | None, ca: str | None):
        self.url, self.token, self.ca = url, token, ca  # ca: a PEM file

    def __eq__(self, other):
        if other.__class__ is not self.__class__:
            return NotImplemented
        return (self.url, self.token, self.ca) == (other.url, other.token, other.ca)

    def __hash__(self):
        return hash((self.url, self.token, self.ca))

    def __repr__(self) -> str:  # never the token
        return f"Remote(url={self.url!r}, token={'<set>' if self.token else None}, ca={self.ca!r})"


def config_dir() -> Path:
    """platformdirs' user config dir. On Linux, the XDG rule it applies, computed here: every command reads
    the profile's path, and importing platformdirs costs each of them ~5 ms."""
    if sys.platform.startswith("linux"):
        base = os.environ.get("XDG_CONFIG_HOME", "").strip()
        return Path(base if base else Path.home() / ".config") / "localdev"
    from platformdirs import user_config_dir

    return Path(user_config_dir("localdev", appauthor=False))


def profile_path() -> Path:
    return config_dir() / "profile.json"


def remote() -> Remote | None:
    """The remote cluster this user is pointed at, or None for the local one."""
    url, token, ca = os.environ.get("LOCALDEV_URL"), os.environ.get("LOCALDEV_TOKEN"), os.environ.get("LOCALDEV_CA")
    saved = _load()
    if not url and saved:
        url = saved["url"]
    if not url:
        return None
    same = saved is not None and saved["url"].rstrip("/") == url.rstrip("/")
    token = token or (saved["token"] if same and saved else None)
    if not ca and same and saved:
        ca = saved["ca_file"]
    if ca and not Path(ca).is_file():
        raise BadInput(f"LOCALDEV_CA {ca}: not a file (a PEM certificate of the cluster's CA)")
    return Remote(url=url, token=token, ca=ca)


def connect(home: Path | str | None = None, timeout: float = 600) -> AgentClient:
    """A client of the cluster this user is pointed at (see the module's docstring)."""
    where = remote()
    if where is not None:
        return AgentClient(timeout=timeout, url=where.url, token=where.token, ca=where.ca)
    from localdev.state import default_home

    return AgentClient(Path(home) if home else default_home(), timeout=timeout)


def _load() -> dict | None:
    try:
        return json.loads(profile_path().read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise BadInput(f"{profile_path()}: unreadable ({exc}): `localdev logout` removes it") from None


def fetch_ca(url: str) -> str:
    """The CA certificate the agent at `url` offers (read over TLS that is not verified yet: it is pinned by
    its fingerprint, shown to the user)."""
    import socket
    import ssl

    client = AgentClient(url=url)
    if not client.secure:
        raise BadInput(f"{url} is plain HTTP: there is no CA to pin (the server runs with insecure = true)")
    unverified = ssl.create_default_context()
    unverified.check_hostname = False
    unverified.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((client.host, client.port), timeout=10) as raw, \
                unverified.wrap_socket(raw, server_hostname=client.host) as sock:
            sock.sendall(f"GET /ca.pem HTTP/1.1\r\nHost: {client.host}:{client.port}\r\nConnection: close\r\n\r\n"
                         .encode())
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
    except OSError as exc:
        raise BadInput(f"cannot reach {url}: {exc}") from None
    head, _, body = data.partition(b"\r\n\r\n")
    if b" 200 " not in head.split(b"\r\n", 1)[0] + b" " or b"BEGIN CERTIFICATE" not in body:
        raise BadInput(f"{url} offers no cluster CA (a certificate the config names?): pass --ca FILE")
    return body.decode()


def login(url: str, token: str, ca_file: str | None = None, fingerprint_expected: str | None = None) -> dict:
    """Pin the CA, check the token, write the profile; returns what to tell the user."""
    from localdev.tls import fingerprint

    url = url.rstrip("/")
    if ca_file:
        try:
            pem = Path(ca_file).read_text()
        except OSError as exc:
            raise BadInput(f"--ca {ca_file}: {exc.strerror}") from None
    else:
        pem = fetch_ca(url)
    found = fingerprint(pem)
    if fingerprint_expected and fingerprint_expected.replace(":", "").upper() != found.replace(":", ""):
        raise BadInput(f"the agent's CA has fingerprint {found}, not the one given: do not log in there")
    directory = config_dir()
    directory.mkdir(parents=True, exist_ok=True)
    ca_path = directory / f"ca-{found.replace(':', '')[:16].lower()}.pem"
    write_private(ca_path, pem)
    who = AgentClient(url=url, token=token, ca=str(ca_path), timeout=30).whoami()
    write_private(profile_path(), json.dumps({"url": url, "token": token, "ca_file": str(ca_path),
                                              "ca_fingerprint": found}, indent=2))
    return {"url": url, "name": who["name"], "role": who["role"], "fingerprint": found, "profile": str(profile_path())}


def logout() -> bool:
    path = profile_path()
    if not path.exists():
        return False
    path.unlink()
    return True

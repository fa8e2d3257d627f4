"""The CLI's side of the agent: HTTP/1.1 over the agent's Unix socket, with nothing but the standard library.

Kept free of psycopg, boto3 and pymongo, and of http.client too (it pulls in the email package): every
`localdev ns ...` is a new process that pays its imports, and the agent is ours and answers with Content-Length
or chunked NDJSON, nothing else. bench/agent_client_imports.py measures the choice; its figures are in
bench/results/agent_client_imports.json. In a `localdev ns` process, which has already imported the CLI,
http.client costs about 3.5 times this module's import and makes the process's start-up (interpreter and
imports) almost half as long again; httpx costs about 20 times as much and more than triples that start-up.
"""

from __future__ import annotations

import _socket
import builtins
import io
import json
from pathlib import Path
from urllib.parse import quote, urlencode, urlsplit

from localdev.errors import AgentUnavailable, BadInput, LocalDevError, NotFound, SeedsMissing, from_kind

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs every command
if TYPE_CHECKING:
    import socket
    import ssl

# In an env value: the path of the cluster CA's certificate on the machine that uses the env (a remote
# client puts its pinned copy's; the agent, for a local client, its own file's). Defined here, not in
# localdev.tls, so that the CLI does not import the certificate code on every command.
CA_FILE = "{localdev-ca-file}"


class _LocalSocket(_socket.socket):
    """The agent's Unix socket, with what this client uses of a `socket.socket`. The socket module is the C
    module `_socket` under a Python layer whose import (its enums' conversions, selectors) cost every local
    command a few milliseconds, for nothing a Unix socket needs; a remote agent's TCP and TLS go through it."""

    __slots__ = ()

    def __enter__(self) -> _LocalSocket:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def makefile(self, mode: str = "rb") -> io.BufferedReader:
        return io.BufferedReader(_Received(self))


class _Received(io.RawIOBase):
    def __init__(self, sock: _LocalSocket):
        self._sock = sock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        return self._sock.recv_into(buffer)


class _Response:
    """One response read from a socket: status, lower-cased headers, then the body in pieces."""

    def __init__(self, sock: socket.socket | _LocalSocket):
        self._file = sock.makefile("rb")
        status_line = self._file.readline()
        parts = status_line.split()
        if len(parts) < 2 or not parts[1].isdigit():
            raise LocalDevError(f"the agent answered something that is not HTTP ({status_line[:60]!r}): "
                                "see `localdev logs agent`")
        self.status = int(parts[1])
        self.headers: dict[str, str] = {}
        for line in iter(self._file.readline, b""):
            if line in (b"\r\n", b"\n"):
                break
            key, _, value = line.decode("latin-1").partition(":")
            self.headers[key.strip().lower()] = value.strip()

    def pieces(self):
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                line = self._file.readline()
                if not line:  # closed before the last (empty) chunk: the sender failed midway
                    raise LocalDevError("the agent's answer was cut off: see `localdev logs agent`")
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if not size:
                    return
                piece = self._file.read(size)
                if len(piece) < size:
                    raise LocalDevError("the agent's answer was cut off: see `localdev logs agent`")
                yield piece
                self._file.readline()  # the CRLF after each chunk
        elif "content-length" in self.headers:
            yield self._file.read(int(self.headers["content-length"]))
        else:
            yield self._file.read()

    def lines(self):
        pending = b""
        for piece in self.pieces():
            pending += piece
            *complete, pending = pending.split(b"\n")
            yield from (line for line in complete if line.strip())
        if pending.strip():
            yield pending

    def body(self) -> bytes:
        return b"".join(self.pieces())


class AgentClient:
    """The agent's API. Local: its Unix socket under `home`. Remote (team mode): `url` (https://host:port, or
    http:// where the server is `insecure`), a bearer `token`, and the cluster CA to verify it by (`ca`, a PEM
    file; else the system's trust store)."""

    def __init__(self, home: Path | str | None = None, timeout: float = 600, *, url: str | None = None,
                 token: str | None = None, ca: str | None = None):
        self.home = Path(home) if home is not None else None
        self.socket = self.home / "run" / "agent.sock" if self.home is not None else None
        self.timeout = timeout
        self.url, self.token, self.ca = url, token, ca
        self._tls: ssl.SSLContext | None = None  # made at the first TLS connection
        if url:
            parts = urlsplit(url)
            if parts.scheme not in ("https", "http") or not parts.hostname:
                raise BadInput(f"LOCALDEV_URL {url!r}: expected https://HOST:PORT (http:// only for an insecure agent)")
            self.host, self.port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
            self.secure = parts.scheme == "https"

    @property
    def remote(self) -> bool:
        return self.url is not None

    def _where(self) -> str:
        return self.url if self.url else f"LOCALDEV_HOME={self.home}"

    def _connect(self, timeout: float) -> socket.socket | _LocalSocket:
        if not self.remote:
            local = _LocalSocket(_socket.AF_UNIX, _socket.SOCK_STREAM)
            local.settimeout(timeout)
            try:
                local.connect(str(self.socket))
            except (FileNotFoundError, ConnectionRefusedError):
                local.close()
                raise AgentUnavailable(f"the cluster agent is not running ({self._where()}): "
                                       "run `localdev up` to start the cluster and its agent") from None
            return local
        import socket

        try:
            sock = socket.create_connection((self.host, self.port), timeout=timeout)
        except OSError as exc:
            raise AgentUnavailable(f"the cluster agent at {self.url} does not answer ({exc.strerror or exc}): check "
                                   "the URL, the network, and that the server ran `localdev up --serve`") from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # small writes, no delayed-ACK stalls
        if not self.secure:
            return sock
        import ssl  # only here: local commands do not pay for it

        if self._tls is None:
            self._tls = ssl.create_default_context(cafile=self.ca) if self.ca else ssl.create_default_context()
        try:
            return self._tls.wrap_socket(sock, server_hostname=self.host)
        except ssl.SSLCertVerificationError as exc:
            sock.close()
            raise BadInput(f"the agent at {self.url} did not prove who it is ({exc.verify_message}): run "
                           "`localdev login URL --token T` to pin the cluster's CA, or set LOCALDEV_CA") from None
        except (ssl.SSLError, OSError) as exc:
            sock.close()
            raise AgentUnavailable(f"TLS with the agent at {self.url} failed: {exc}") from None

    def _send(self, method: str, path: str, body, accept: str, timeout: float,
              content_type: str = "application/json",
              headers: dict | None = None) -> socket.socket | _LocalSocket:
        """`body`: bytes, JSON-able, or (an open binary file, its size) sent as it is read."""
        stream = body if isinstance(body, tuple) else None
        payload = b"" if stream else body if isinstance(body, bytes) else \
            (json.dumps(body).encode() if body is not None else b"")
        host = f"{self.host}:{self.port}" if self.remote else "localhost"
        auth = f"Authorization: Bearer {self.token}\r\n" if self.remote and self.token else ""
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        length = stream[1] if stream else len(payload)
        head = (f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n{auth}{extra}"
                f"Content-Type: {content_type}\r\nAccept: {accept}\r\nContent-Length: {length}\r\n\r\n")
        sock = self._connect(timeout)
        try:
            sock.sendall(head.encode() + payload)
            if stream:
                for chunk in iter(lambda: stream[0].read(1 << 16), b""):
                    sock.sendall(chunk)
        except BaseException:
            sock.close()
            raise
        return sock

    def request(self, method: str, path: str, body=None, query: dict | None = None,
                content_type: str = "application/json", headers: dict | None = None):
        if query:
            path += "?" + urlencode({k: v for k, v in query.items() if v is not None})
        with self._send(method, path, body, "application/json", self.timeout, content_type, headers) as sock:
            resp = _Response(sock)
            raw = resp.body()
        try:
            data = json.loads(raw or b"null")
        except ValueError:
            if resp.status == 404:  # no such route: an agent older than this client
                raise NotFound(f"the agent ({self._where()}) has no {method} {path.split('?')[0]}") from None
            raise LocalDevError(f"the agent ({self._where()}) answered {resp.status} with something that is not "
                                "JSON: is that URL a localdev agent?") from None
        if resp.status >= 400:
            raise from_kind((data or {}).get("kind"), (data or {}).get("error", f"agent answered {resp.status}"))
        return data

    def stream(self, method: str, path: str, body: dict, on_progress) -> dict:
        """A long operation: `on_progress(service, message, fraction)` for each progress line, then the result."""
        with self._send(method, path, body, "application/x-ndjson", self.timeout) as sock:
            for raw in _Response(sock).lines():
                item = json.loads(raw)
                if "progress" in item:
                    on_progress(item.get("service", ""), item["progress"], item.get("fraction"))
                elif "result" in item:
                    return item["result"]
                else:
                    raise from_kind(item.get("kind"), item.get("error", "the agent failed"))
        raise LocalDevError("the agent closed the connection before answering: see `localdev logs agent`")

    def ping(self) -> bool:
        try:
            with self._send("GET", "/health", None, "application/json", 2) as sock:
                return _Response(sock).status == 200
        except (OSError, LocalDevError):
            return False

    # namespace API, mirrored
    def _maybe_streamed(self, path: str, body: dict, on_progress) -> dict:
        if on_progress is None:
            return self.request("POST", path, body)
        return self.stream("POST", path, body, on_progress)

    def _with_seeds(self, path: str, body: dict, seeds_dir, on_progress) -> dict:
        """A request that names seeds: by path to the local agent; by content to a remote one, which is sent
        the files only when it answers that it does not have that set yet."""
        if not seeds_dir:
            return self._maybe_streamed(path, body, on_progress)
        if not self.remote:
            return self._maybe_streamed(path, {**body, "seeds_dir": str(seeds_dir)}, on_progress)
        from localdev.seedpack import pack, tree_hash

        digest = tree_hash(Path(seeds_dir))
        body = {**body, "seeds_hash": digest, "seeds_label": str(seeds_dir)}
        try:
            return self._maybe_streamed(path, body, on_progress)
        except SeedsMissing:
            self.request("PUT", f"/seeds/{digest}", pack(Path(seeds_dir)), content_type="application/x-tar")
            return self._maybe_streamed(path, body, on_progress)

    def create(self, name, ttl=None, labels=None, exist_ok=False, seed=False, seeds_dir=None, on_progress=None,
               with_env: bool = False, max_connections: int | None = None, with_masks: bool = False,
               from_: str | None = None) -> dict:
        """`with_env`: the namespace's settings come back in the same answer, under "env" (and, `with_masks`,
        the secret values among them under "masks"). `max_connections`: its connection budget (None: the
        cluster's default). `from_`: a namespace or snapshot to copy."""
        body = {"name": name, "ttl": ttl, "labels": labels or [], "exist_ok": exist_ok, "seed": seed, "env": with_env,
                "max_connections": max_connections, "masks": with_masks, "from": from_}
        info = self._with_seeds("/namespaces", body, seeds_dir if seed else None, on_progress)
        if "env" in info:
            info["env"] = self._local_paths(info["env"])
        if with_masks:
            _masked(info)
        return info

    def list(self) -> builtins.list[dict]:
        return self.request("GET", "/namespaces")

    def get(self, name) -> dict:
        return self.request("GET", f"/namespaces/{quote(name, safe='')}")

    def env(self, name) -> dict:
        """The namespace's settings; TLS settings name this machine's pinned copy of the cluster CA."""
        return self._local_paths(self.request("GET", f"/namespaces/{quote(name, safe='')}/env"))

    def env_and_masks(self, name) -> tuple[dict, builtins.list[str]]:
        """The settings, and the secret values among them (for a CI log to mask)."""
        answer = self.request("GET", f"/namespaces/{quote(name, safe='')}/env", query={"masks": "1"})
        return self._local_paths(_masked(answer)["env"]), answer["masks"]

    def _local_paths(self, env: dict) -> dict:
        if any(CA_FILE in v for v in env.values()):
            if not self.ca:
                raise BadInput("the cluster's services use TLS with its own CA: run `localdev login URL --token T` "
                               "to pin it (or set LOCALDEV_CA to its certificate file)")
            env = {k: v.replace(CA_FILE, str(Path(self.ca).resolve())) for k, v in env.items()}
        return env

    def delete(self, name, missing_ok=False) -> bool:
        return self.request("DELETE", f"/namespaces/{quote(name, safe='')}",
                            query={"missing_ok": "1" if missing_ok else "0"})["deleted"]

    def gc(self, dry_run=False) -> builtins.list[str]:
        return self.request("POST", "/gc", query={"dry_run": "1" if dry_run else "0"})["names"]

    def seed(self, name, seeds_dir, services=None, on_progress=None) -> dict:
        return self._with_seeds(f"/namespaces/{quote(name, safe='')}/seed", {"services": services or []}, seeds_dir,
                                on_progress)

    # snapshots
    def snapshot(self, name: str, as_name: str) -> dict:
        return self.request("POST", f"/namespaces/{quote(name, safe='')}/snapshot", {"as": as_name})

    def snapshots(self) -> builtins.list[dict]:
        return self.request("GET", "/snapshots")

    def snapshot_delete(self, name: str) -> bool:
        return self.request("DELETE", f"/snapshots/{quote(name, safe='')}")["deleted"]

    def reset(self, name: str, to: str | None = None) -> dict:
        return self.request("POST", f"/namespaces/{quote(name, safe='')}/reset", {"to": to})

    def status(self) -> dict:
        return self.request("GET", "/status")

    def whoami(self) -> dict:
        return self.request("GET", "/whoami")

    # tokens (admin)
    def token_create(self, name: str, role: str, ttl: str | None = None) -> dict:
        return self.request("POST", "/tokens", {"name": name, "role": role, "ttl": ttl})

    def token_list(self) -> builtins.list[dict]:
        return self.request("GET", "/tokens")

    def token_revoke(self, name: str) -> dict:
        return self.request("DELETE", f"/tokens/{quote(name, safe='')}")

    # exports, imports, backups (localdev/exports.py, localdev/backups.py)
    def export(self, name: str, out, compress: bool = True) -> None:
        """Write namespace `name`'s export archive to the binary file `out`, as the agent sends it."""
        path = f"/namespaces/{quote(name, safe='')}/export?compress={'1' if compress else '0'}"
        with self._send("GET", path, None, "application/x-tar", self.timeout) as sock:
            resp = _Response(sock)
            if resp.status >= 400:
                data = json.loads(resp.body() or b"{}")
                raise from_kind(data.get("kind"), data.get("error", f"agent answered {resp.status}"))
            for piece in resp.pieces():
                out.write(piece)

    def import_archive(self, fh, name: str, label: str, ttl=None, labels=None, restore: dict | None = None) -> dict:
        """Send the archive in the open binary file `fh` (read as it is sent) to be imported as `name`."""
        import os

        size = os.fstat(fh.fileno()).st_size - fh.tell()
        options = {"name": name, "label": label, "labels": labels or [], "restore": restore}
        if ttl is not None:
            options["ttl"] = ttl
        return self.request("POST", "/imports", (fh, size), content_type="application/x-tar",
                            headers={"X-Localdev-Import": json.dumps(options)})

    def checksum(self, name: str) -> dict:
        return self.request("GET", f"/namespaces/{quote(name, safe='')}/checksum")

    def backup_registry(self) -> dict:
        return self.request("GET", "/backup/registry")

    def restore_tokens(self, tokens: builtins.list[dict]) -> dict:
        return self.request("POST", "/backup/tokens", tokens)


def _masked(answer) -> dict:
    if not isinstance(answer, dict) or "masks" not in answer:
        raise LocalDevError("the cluster's agent does not say which settings are secret (it predates CI formats): "
                            "upgrade localdev on the cluster, or use --format shell or dotenv")
    return answer

"""The CLI's side of the agent: HTTP/1.1 over the agent's Unix socket, with nothing but the standard library.

Kept free of psycopg, boto3 and pymongo, and of http.client too (it pulls in the email package): every
`localdev ns ...` is a new process that pays its imports, and the agent is ours and answers with Content-Length
or chunked NDJSON, nothing else. bench/agent_client_imports.py measures the choice; its figures are in
bench/results/agent_client_imports.json. In a `localdev ns` process, which has already imported the CLI,
http.client costs about 3.5 times this module's import and makes the process's start-up (interpreter and
imports) almost half as long again; httpx costs about 20 times as much and more than triples that start-up.
"""

from __future__ import annotations

import builtins
import json
import socket
from pathlib import Path
from urllib.parse import quote, urlencode

from localdev.errors import AgentUnavailable, LocalDevError, from_kind


class _Response:
    """One response read from a socket: status, lower-cased headers, then the body in pieces."""

    def __init__(self, sock: socket.socket):
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
            while size := int(self._file.readline().split(b";")[0] or b"0", 16):
                yield self._file.read(size)
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
    def __init__(self, home: Path | str, timeout: float = 600):
        self.home = Path(home)
        self.socket = self.home / "run" / "agent.sock"
        self.timeout = timeout

    def _send(self, method: str, path: str, body: dict | None, accept: str, timeout: float) -> socket.socket:
        payload = json.dumps(body).encode() if body is not None else b""
        head = (f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
                f"Content-Type: application/json\r\nAccept: {accept}\r\nContent-Length: {len(payload)}\r\n\r\n")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(str(self.socket))
            sock.sendall(head.encode() + payload)
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            raise AgentUnavailable(f"the cluster agent is not running (LOCALDEV_HOME={self.home}): "
                                   "run `localdev up` to start the cluster and its agent") from None
        except BaseException:
            sock.close()
            raise
        return sock

    def request(self, method: str, path: str, body: dict | None = None, query: dict | None = None):
        if query:
            path += "?" + urlencode({k: v for k, v in query.items() if v is not None})
        with self._send(method, path, body, "application/json", self.timeout) as sock:
            resp = _Response(sock)
            data = json.loads(resp.body() or b"null")
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

    def create(self, name, ttl=None, labels=None, exist_ok=False, seed=False, seeds_dir=None, on_progress=None) -> dict:
        return self._maybe_streamed("/namespaces", {"name": name, "ttl": ttl, "labels": labels or [],
                                                    "exist_ok": exist_ok, "seed": seed,
                                                    "seeds_dir": str(seeds_dir) if seeds_dir else None}, on_progress)

    def list(self) -> builtins.list[dict]:
        return self.request("GET", "/namespaces")

    def get(self, name) -> dict:
        return self.request("GET", f"/namespaces/{quote(name, safe='')}")

    def env(self, name) -> dict:
        return self.request("GET", f"/namespaces/{quote(name, safe='')}/env")

    def delete(self, name, missing_ok=False) -> bool:
        return self.request("DELETE", f"/namespaces/{quote(name, safe='')}",
                            query={"missing_ok": "1" if missing_ok else "0"})["deleted"]

    def gc(self, dry_run=False) -> builtins.list[str]:
        return self.request("POST", "/gc", query={"dry_run": "1" if dry_run else "0"})["names"]

    def seed(self, name, seeds_dir, services=None, on_progress=None) -> dict:
        return self._maybe_streamed(f"/namespaces/{quote(name, safe='')}/seed",
                                    {"seeds_dir": str(seeds_dir), "services": services or []}, on_progress)

    def status(self) -> dict:
        return self.request("GET", "/status")

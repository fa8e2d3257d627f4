"""The CLI's side of the agent: HTTP over the agent's Unix socket, with nothing but the standard library.

Kept free of psycopg, boto3 and pymongo: a namespace command pays for none of their imports.
"""

from __future__ import annotations

import http.client
import json
import socket
from pathlib import Path
from urllib.parse import quote, urlencode

from localdev.errors import AgentUnavailable, BadInput, Conflict, LocalDevError, NotFound

ERRORS = {"bad_input": BadInput, "not_found": NotFound, "conflict": Conflict, "failed": LocalDevError}


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


class AgentClient:
    def __init__(self, home: Path | str, timeout: float = 600):
        self.home = Path(home)
        self.socket = self.home / "run" / "agent.sock"
        self.timeout = timeout

    def request(self, method: str, path: str, body: dict | None = None, query: dict | None = None):
        if query:
            path += "?" + urlencode({k: v for k, v in query.items() if v is not None})
        conn = _UnixConnection(str(self.socket), self.timeout)
        try:
            conn.request(method, path, body=json.dumps(body) if body is not None else None,
                         headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            data = json.loads(resp.read() or b"null")
        except (FileNotFoundError, ConnectionRefusedError):
            raise AgentUnavailable(f"the cluster agent is not running (LOCALDEV_HOME={self.home}): "
                                   "run `localdev up` to start the cluster and its agent") from None
        finally:
            conn.close()
        if resp.status >= 400:
            kind = (data or {}).get("kind", "failed")
            raise ERRORS.get(kind, LocalDevError)((data or {}).get("error", f"agent answered {resp.status}"))
        return data

    def stream(self, method: str, path: str, body: dict, on_progress) -> dict:
        """A long operation: `on_progress(message, fraction)` for each progress line, then the result."""
        conn = _UnixConnection(str(self.socket), self.timeout)
        try:
            conn.request(method, path, body=json.dumps(body),
                         headers={"Content-Type": "application/json", "Accept": "application/x-ndjson"})
            resp = conn.getresponse()
            for raw in resp:
                item = json.loads(raw)
                if "progress" in item:
                    on_progress(item["progress"], item.get("fraction"))
                elif "result" in item:
                    return item["result"]
                else:
                    raise ERRORS.get(item.get("kind"), LocalDevError)(item.get("error", "the agent failed"))
        except (FileNotFoundError, ConnectionRefusedError):
            raise AgentUnavailable(f"the cluster agent is not running (LOCALDEV_HOME={self.home}): "
                                   "run `localdev up` to start the cluster and its agent") from None
        finally:
            conn.close()
        raise LocalDevError("the agent closed the connection before answering: see `localdev logs agent`")

    def ping(self) -> bool:
        try:
            conn = _UnixConnection(str(self.socket), 2)
            conn.request("GET", "/health")
            ok = conn.getresponse().status == 200
            conn.close()
            return ok
        except OSError:
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

    def list(self) -> list[dict]:
        return self.request("GET", "/namespaces")

    def get(self, name) -> dict:
        return self.request("GET", f"/namespaces/{quote(name, safe='')}")

    def env(self, name) -> dict:
        return self.request("GET", f"/namespaces/{quote(name, safe='')}/env")

    def delete(self, name, missing_ok=False) -> bool:
        return self.request("DELETE", f"/namespaces/{quote(name, safe='')}",
                            query={"missing_ok": "1" if missing_ok else "0"})["deleted"]

    def gc(self, dry_run=False) -> list[str]:
        return self.request("POST", "/gc", query={"dry_run": "1" if dry_run else "0"})["names"]

    def seed(self, name, seeds_dir, on_progress=None) -> dict:
        return self._maybe_streamed(f"/namespaces/{quote(name, safe='')}/seed", {"seeds_dir": str(seeds_dir)},
                                    on_progress)

    def status(self) -> dict:
        return self.request("GET", "/status")

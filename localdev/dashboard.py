"""The cluster's dashboard: a read-only page of the services and their health, the namespaces and the
supervisor's recent events, served by the agent (dashboard.html: plain HTML and a little JS, no build step).

Who may look: `localdev dashboard` asks the agent for a one-time URL. Its first visit trades the token for a
session cookie (HttpOnly, SameSite=Strict, scoped to the page) and is redirected to the bare page, so the URL
left in a shell's history or a proxy's log opens nothing afterwards; any request without a live session is
refused (401). Locally the page is on a listener the agent opens on 127.0.0.1 at the first `localdev
dashboard` (a browser cannot reach the Unix socket); in team mode on the agent's TCP listener, where the
session is asked for with a token and sees what that token may see (a ci token: its own namespaces).

It shows what `status` and `ns list` show, chosen field by field: never a credential, never a token.
"""

from __future__ import annotations

import hashlib
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from localdev.errors import BadInput
from localdev.tokens import LOCAL, Principal

TICKET_TTL = 600.0  # an unused one-time URL stops working after this
SESSION_TTL = 12 * 3600.0
SIZES_TTL = 10.0  # sizes walk each namespace's files: not at every refresh
PAGE = Path(__file__).with_name("dashboard.html")
HEADERS = {"Cache-Control": "no-store", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
           "X-Content-Type-Options": "nosniff"}


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass
class _Grant:
    who: Principal
    until: float


class Sessions:
    """One-time tickets and the sessions they open, in the agent's memory (a restarted agent forgets them)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tickets: dict[str, _Grant] = {}
        self._sessions: dict[str, _Grant] = {}

    def ticket(self, who: Principal) -> str:
        ticket = secrets.token_urlsafe(24)
        with self._lock:
            self._prune()
            self._tickets[_digest(ticket)] = _Grant(who, time.monotonic() + TICKET_TTL)
        return ticket

    def redeem(self, ticket: str) -> str | None:
        """A new session for a live, unused ticket (which is spent); None otherwise."""
        with self._lock:
            self._prune()
            grant = self._tickets.pop(_digest(ticket), None)
            if grant is None:
                return None
            session = secrets.token_urlsafe(32)
            self._sessions[_digest(session)] = _Grant(grant.who, time.monotonic() + SESSION_TTL)
            return session

    def who(self, session: str | None) -> Principal | None:
        if not session:
            return None
        with self._lock:
            self._prune()
            grant = self._sessions.get(_digest(session))
        return grant.who if grant else None

    def _prune(self) -> None:
        now = time.monotonic()
        for table in (self._tickets, self._sessions):
            for key in [k for k, g in table.items() if g.until <= now]:
                del table[key]


class Dashboard:
    """The dashboard of one agent: its sessions, its pages, and the local listener once opened."""

    def __init__(self, cluster):
        self.cluster = cluster
        self.sessions = Sessions()
        self._lock = threading.Lock()
        self._local_port: int | None = None
        self._sizes: dict[str | None, tuple[float, dict]] = {}

    # -- what the page shows -----------------------------------------------------------
    def snapshot(self, who: Principal) -> dict:
        status = self.cluster.status()
        items = self.cluster.namespaces.list(owner=who.owner) if status["services"].get("postgres", {}).get(
            "state") == "healthy" else []
        sizes = self._cached_sizes(who.owner) if items else {}
        aws = (status.get("gateway") or {}).get("namespaces", {})  # the AWS gateway's counts, by name
        return {
            "now": time.time(), "home": status["home"], "state": status["state"], "runtime": status["runtime"],
            "viewer": {"name": who.name, "role": who.role},
            "services": [{"name": n, "state": s["state"], "endpoint": f"{s['host']}:{s['port']}", "pid": s["pid"]}
                         for n, s in status["services"].items()],
            "agent": {"running": status["agent"]["running"], "pid": status["agent"].get("pid")},
            "namespaces": [{"name": i["name"], "state": i["state"], "created_at": i["created_at"],
                            "expires_at": i["expires_at"], "labels": i["labels"], "owner": i["owner"],
                            "services": i["services"], "sizes": sizes.get(i["name"], {}),
                            "max_connections": i["max_connections"], "problems": i["problems"],
                            "aws": aws.get(i["name"])} for i in items],
            "events": [{"time": e["time"], "service": e["service"], "event": e["event"],
                        "detail": e.get("detail", "")} for e in status["events"]][-20:],
        }

    def _cached_sizes(self, owner: str | None) -> dict:
        now = time.monotonic()
        cached = self._sizes.get(owner)
        if cached is None or now - cached[0] > SIZES_TTL:
            cached = (now, self.cluster.namespaces.sizes(owner=owner))
            self._sizes[owner] = cached
        return cached[1]

    # -- sessions ------------------------------------------------------------------------
    def local_url(self, port: int | None = None) -> str:
        """A one-time URL on the local listener, opened on 127.0.0.1 at the first call (`port`: 0 or None, any
        free one)."""
        with self._lock:
            if self._local_port is None:
                self._local_port = self._open_local(port or 0)
            elif port and port != self._local_port:
                raise BadInput(f"the dashboard already listens on 127.0.0.1:{self._local_port}; it stays there "
                               "until the agent stops (`localdev dashboard` without --port reuses it)")
        return f"http://127.0.0.1:{self._local_port}/dashboard?token={self.sessions.ticket(LOCAL)}"

    def remote_url(self, request: Request, who: Principal) -> str:
        base = f"{request.url.scheme}://{request.headers.get('host') or request.url.netloc}"
        return f"{base}/dashboard?token={self.sessions.ticket(who)}"

    def _open_local(self, port: int) -> int:
        import asyncio

        import uvicorn

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            sock.close()
            raise BadInput(f"cannot listen on 127.0.0.1:{port} for the dashboard ({exc.strerror}): choose another "
                           "--port, or leave it out for a free one") from None
        sock.listen(64)
        bound = sock.getsockname()[1]
        from starlette.applications import Starlette

        app = Starlette(routes=self.page_routes(cookie=f"localdev_dashboard_{bound}", secure=False,
                                                hosts={f"127.0.0.1:{bound}", f"localhost:{bound}"}))
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))
        # its own thread and event loop: it is opened from a request, while the agent's loop serves others
        threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), name="dashboard",
                         daemon=True).start()
        return bound

    # -- the page's routes ---------------------------------------------------------------
    def page_routes(self, cookie: str, secure: bool, hosts: set[str] | None = None) -> list[Route]:
        """GET /dashboard (the page; `?token=` opens a session) and GET /dashboard/data (what it shows).
        `hosts`: the Host headers accepted (a loopback listener refuses others: DNS rebinding)."""

        def refused(request: Request) -> Response | None:
            if hosts is not None and request.headers.get("host") not in hosts:
                return PlainTextResponse("unexpected Host header", 403, headers=HEADERS)
            return None

        async def page(request: Request) -> Response:
            if (answer := refused(request)) is not None:
                return answer
            ticket = request.query_params.get("token")
            if ticket is not None:
                session = self.sessions.redeem(ticket)
                if session is None:
                    return PlainTextResponse("this dashboard link was used already or has expired: run "
                                             "`localdev dashboard` for a new one", 403, headers=HEADERS)
                response = RedirectResponse("/dashboard", 303, headers=HEADERS)
                response.set_cookie(cookie, session, max_age=int(SESSION_TTL), path="/dashboard", secure=secure,
                                    httponly=True, samesite="strict")
                return response
            if self.sessions.who(request.cookies.get(cookie)) is None:
                return PlainTextResponse("not signed in: open the URL `localdev dashboard` prints", 401,
                                         headers=HEADERS)
            return HTMLResponse(PAGE.read_text(), headers=HEADERS)

        async def data(request: Request) -> Response:
            if (answer := refused(request)) is not None:
                return answer
            who = self.sessions.who(request.cookies.get(cookie))
            if who is None:
                return JSONResponse({"error": "not signed in: open the URL `localdev dashboard` prints",
                                     "kind": "unauthorized"}, 401, headers=HEADERS)
            return JSONResponse(await run_in_threadpool(self.snapshot, who), headers=HEADERS)

        return [Route("/dashboard", page, methods=["GET"]), Route("/dashboard/data", data, methods=["GET"])]

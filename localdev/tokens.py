"""Tokens for team mode: who may use the agent over TCP, with which role. Kept hashed in the registry, so
every agent that shares the registry knows them; the token itself is shown once, at `token create`.

Roles: `admin` may do everything; `ci` creates namespaces and sees, reads the env of, seeds and deletes only
the ones its token created (another's answer 404, as if absent); `reader` lists namespaces and reads status.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from localdev.errors import BadInput, Conflict, Forbidden, NotFound, Unauthorized
from localdev.names import parse_ttl, validate_name

ROLES = ("admin", "ci", "reader")
PREFIX = "ldt_"
SCHEMA = """
CREATE TABLE IF NOT EXISTS tokens (
    name          text PRIMARY KEY,
    role          text NOT NULL CHECK (role IN ('admin', 'ci', 'reader')),
    hash          text NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz,
    last_used_at  timestamptz
);
"""
TOUCH_EVERY = timedelta(seconds=60)  # last use is recorded at most this often per token (one write per request else)


@dataclass(frozen=True)
class Principal:
    """Who is asking: a token's name and role, or the local user on the agent's 0600 socket."""

    name: str
    role: str

    @property
    def owner(self) -> str | None:
        """Whose namespaces it may touch: a ci token only its own; None means all."""
        return self.name if self.role == "ci" else None

    def need(self, *roles: str) -> None:
        if self.role not in roles:
            raise Forbidden(f"the token {self.name!r} has role {self.role!r}; this needs {' or '.join(roles)}")


LOCAL = Principal("local", "admin")


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Tokens:
    def __init__(self, pool):
        self.pool = pool  # a callable returning the registry's connection pool

    def create(self, name: str, role: str, ttl: str | None = None) -> dict:
        validate_name(name)
        if role not in ROLES:
            raise BadInput(f"invalid role {role!r}: use one of {', '.join(ROLES)}")
        seconds = parse_ttl(ttl) if ttl else None
        token = PREFIX + secrets.token_urlsafe(32)
        expires = datetime.now(UTC) + timedelta(seconds=seconds) if seconds else None
        import psycopg

        with self.pool().connection() as conn:
            try:
                conn.execute("INSERT INTO tokens (name, role, hash, expires_at) VALUES (%s, %s, %s, %s)",
                             (name, role, _hash(token), expires))
            except psycopg.errors.UniqueViolation:
                raise Conflict(f"a token named {name!r} exists: `localdev token revoke {name}` first") from None
        return {"name": name, "role": role, "token": token, "expires_at": expires.timestamp() if expires else None}

    def list(self) -> list[dict]:
        with self.pool().connection() as conn:
            rows = conn.execute("SELECT name, role, created_at, expires_at, last_used_at FROM tokens "
                                "ORDER BY name").fetchall()
        return [{"name": n, "role": r, "created_at": c.timestamp(), "expires_at": e.timestamp() if e else None,
                 "last_used_at": u.timestamp() if u else None} for n, r, c, e, u in rows]

    def revoke(self, name: str) -> dict:
        validate_name(name)
        with self.pool().connection() as conn:
            if conn.execute("DELETE FROM tokens WHERE name = %s", (name,)).rowcount == 0:
                raise NotFound(f"no token named {name!r}: `localdev token list` shows them")
        return {"revoked": name}

    def verify(self, token: str | None) -> Principal:
        if not token:
            raise Unauthorized("this agent needs a token: set LOCALDEV_TOKEN or run `localdev login URL --token T`")
        with self.pool().connection() as conn:
            row = conn.execute("SELECT name, role, expires_at, last_used_at FROM tokens WHERE hash = %s",
                               (_hash(token),)).fetchone()
            if row is None:
                raise Unauthorized("the token is not valid (wrong or revoked): ask the cluster's admin for one")
            name, role, expires, used = row
            now = datetime.now(UTC)
            if expires is not None and expires <= now:
                raise Unauthorized(f"the token {name!r} expired: ask the cluster's admin for a new one")
            if used is None or now - used > TOUCH_EVERY:
                conn.execute("UPDATE tokens SET last_used_at = now() WHERE name = %s", (name,))
        return Principal(name, role)

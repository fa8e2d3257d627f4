"""Errors a user can act on. The exit code is part of the CLI contract."""


class LocalDevError(Exception):
    """An operation failed (exit 1)."""

    exit_code = 1


class BadInput(LocalDevError):
    """Bad input: names, TTLs, config, fixtures, occupied ports (exit 2). Nothing was changed."""

    exit_code = 2


class Unauthorized(BadInput):
    """No token, or one that is wrong, revoked or expired (HTTP 401). Nothing was changed."""


class Forbidden(BadInput):
    """The token's role does not allow this (HTTP 403). Nothing was changed."""


class NotFound(LocalDevError):
    exit_code = 1


class SeedsMissing(NotFound):
    """The agent does not have the seed set a request names by hash: the client uploads it and asks again."""


class Conflict(LocalDevError):
    exit_code = 1


class AgentUnavailable(LocalDevError):
    exit_code = 1


# How the agent sends an error and the client raises it again: (class, HTTP status, kind), most specific first.
KINDS: tuple[tuple[type[LocalDevError], int, str], ...] = (
    (Unauthorized, 401, "unauthorized"),
    (Forbidden, 403, "forbidden"),
    (BadInput, 400, "bad_input"),
    (SeedsMissing, 404, "seeds_missing"),
    (NotFound, 404, "not_found"),
    (Conflict, 409, "conflict"),
    (LocalDevError, 500, "failed"),
)


def kind_of(exc: BaseException) -> tuple[int, str]:
    """The HTTP status and kind the agent answers `exc` with (anything unexpected is a 500 "failed")."""
    for cls, status, kind in KINDS:
        if isinstance(exc, cls):
            return status, kind
    return 500, "failed"


def from_kind(kind: str | None, message: str) -> LocalDevError:
    """The exception a client raises for an error the agent sent."""
    cls = next((c for c, _, k in KINDS if k == kind), LocalDevError)
    return cls(message)

"""Errors a user can act on. The exit code is part of the CLI contract."""


class LocalDevError(Exception):
    """An operation failed (exit 1)."""

    exit_code = 1


class BadInput(LocalDevError):
    """Bad input: names, TTLs, config, fixtures, occupied ports (exit 2). Nothing was changed."""

    exit_code = 2


class NotFound(LocalDevError):
    exit_code = 1


class Conflict(LocalDevError):
    exit_code = 1


class AgentUnavailable(LocalDevError):
    exit_code = 1

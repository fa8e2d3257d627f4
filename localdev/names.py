"""Namespace names, TTLs, labels and the credentials a namespace owns. Pure logic, no I/O."""

from __future__ import annotations

import os
import re

from localdev.errors import BadInput, LocalDevError

NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
LABEL_KEY_RE = re.compile(r"^[a-z0-9][a-z0-9._/-]{0,62}$")
TTL_RE = re.compile(r"^(\d{1,6})([smhd])$")
TTL_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_TTL = 365 * 86400


def validate_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise BadInput(
            f"invalid namespace name {name!r}: use 1-40 characters, a lowercase letter first, "
            "then lowercase letters, digits or '-' (pattern ^[a-z][a-z0-9-]{0,39}$)"
        )
    return name


def parse_ttl(text: str | None) -> int | None:
    """'30m', '2h', '7d' -> seconds; 'none'/'0' -> None (never expires)."""
    if text is None:
        return None
    value = str(text).strip().lower()
    if value in ("none", "never", "0"):
        return None
    match = TTL_RE.fullmatch(value)
    if not match or int(match.group(1)) == 0:
        raise BadInput(f"invalid TTL {text!r}: use a positive number with a unit s, m, h or d (e.g. 30m, 2h, 7d), "
                       "or 'none'")
    seconds = int(match.group(1)) * TTL_UNITS[match.group(2)]
    if seconds > MAX_TTL:
        raise BadInput(f"invalid TTL {text!r}: at most 365d")
    return seconds


def parse_labels(items: list[str] | dict | None) -> dict[str, str]:
    if not items:
        return {}
    if isinstance(items, dict):
        items = [f"{k}={v}" for k, v in items.items()]
    labels: dict[str, str] = {}
    for item in items:
        key, sep, value = str(item).partition("=")
        if not sep or not LABEL_KEY_RE.fullmatch(key):
            raise BadInput(f"invalid label {item!r}: use key=value, the key lowercase letters, digits, "
                           "'.', '_', '-', '/'")
        if len(value) > 256 or any(ord(c) < 32 for c in value):
            raise BadInput(f"invalid label {item!r}: the value must be at most 256 printable characters")
        labels[key] = value
    return labels


def slug(text: str) -> str:
    """Any string -> the longest valid namespace name it suggests ('' if none)."""
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    s = re.sub(r"^[^a-z]+", "", s)
    return s[:40].rstrip("-")


def name_from_ci(environ: dict | None = None) -> str:
    """A namespace name from the usual CI variables (GitHub Actions, GitLab CI, generic)."""
    env = os.environ if environ is None else environ
    pr = None
    ref = env.get("GITHUB_REF", "")
    match = re.fullmatch(r"refs/pull/(\d+)/(merge|head)", ref)
    if match:
        pr = match.group(1)
    pr = pr or env.get("CI_MERGE_REQUEST_IID") or env.get("CHANGE_ID") or env.get("PULL_REQUEST_NUMBER")
    if pr and str(pr).isdigit():
        return f"pr-{pr}"
    branch = (env.get("GITHUB_HEAD_REF") or env.get("GITHUB_REF_NAME") or env.get("CI_COMMIT_REF_NAME")
              or env.get("BRANCH_NAME") or env.get("CI_BRANCH") or "")
    name = slug(branch)
    if not name:
        raise BadInput("--from-ci found no pull request number or branch name in the environment "
                       "(looked at GITHUB_REF, GITHUB_HEAD_REF, GITHUB_REF_NAME, CI_MERGE_REQUEST_IID, "
                       "CI_COMMIT_REF_NAME)")
    return validate_name(name)


AWS_KEY_RE = re.compile(r"^[0-9]{12}$")


def new_account_id() -> str:
    """A random 12-digit AWS account id: the namespace's access key id for both AWS endpoints.

    Never 000000000000 (the emulators' default account) and never with a leading zero.
    """
    import secrets  # here, not at the top: the CLI imports this module for validate_name alone

    return str(secrets.randbelow(9 * 10**11) + 10**11)


def new_secret(nbytes: int) -> str:
    import secrets

    return secrets.token_urlsafe(nbytes)


def validate_max_connections(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadInput(f"invalid max_connections {value!r}: must be a whole number of at least 1")
    return value


def validate_access_key(key: str) -> str:
    # DynamoDB Local hangs every client on an over-long key and truncates at '/' or '=': check first.
    if not AWS_KEY_RE.fullmatch(key or ""):
        raise BadInput("invalid AWS access key id for a namespace: must be 12 digits")
    return key


class Namespace:
    """A namespace and the secrets it owns, per service group (random, kept in the registry). Immutable; a
    plain class, not a dataclass: every `localdev` command imports this module, and dataclasses (with the
    inspect module it loads) was the largest part of a namespace command's imports."""

    __slots__ = ("name", "region", "secrets", "max_connections")
    name: str
    region: str
    secrets: dict[str, dict[str, str]]
    max_connections: int | None

    def __init__(self, name: str, region: str = "us-east-1", secrets: dict[str, dict[str, str]] | None = None,
                 max_connections: int | None = None):
        set_ = object.__setattr__
        set_(self, "name", name)
        set_(self, "region", region)
        set_(self, "secrets", {} if secrets is None else secrets)
        # the connection budget its services enforce; None for namespaces created before there was one
        set_(self, "max_connections", max_connections)

    def __setattr__(self, key, value):
        raise AttributeError(f"Namespace is immutable: cannot set {key!r}")

    def __eq__(self, other):
        if other.__class__ is not self.__class__:
            return NotImplemented
        return all(getattr(self, k) == getattr(other, k) for k in self.__slots__)

    __hash__ = None  # type: ignore[assignment]  # (its secrets are a dict)

    def __repr__(self) -> str:  # never the secrets
        return f"Namespace(name={self.name!r}, region={self.region!r}, max_connections={self.max_connections!r})"

    @classmethod
    def new(cls, name: str, region: str, declared, max_connections: int | None = None,
            kept: dict[str, dict[str, str]] | None = None) -> Namespace:
        """A namespace with a fresh value for every declared secret (`Secret`s of its services; a group that
        two services share is made once), except those in `kept` (a restore's)."""
        secrets: dict[str, dict[str, str]] = {g: dict(v) for g, v in (kept or {}).items()}
        for secret in declared:
            secrets.setdefault(secret.group, {}).setdefault(secret.key, secret.make())
        return cls(name=name, region=region, secrets=secrets, max_connections=max_connections)

    def secret(self, group: str, key: str) -> str:
        try:
            return self.secrets[group][key]
        except KeyError:
            raise LocalDevError(f"namespace {self.name!r} has no secret {group}.{key}: it was created before "
                                f"the service that needs it; delete and create it again") from None

    @property
    def db_name(self) -> str:
        """PostgreSQL role and database, MongoDB database: ns_<name> with '-' as '_' (injective: names have no '_')."""
        return "ns_" + self.name.replace("-", "_")


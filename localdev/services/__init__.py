"""The services, found by entry point, and how work is spread over them.

Every service is a `Service` subclass registered under the ``localdev.services`` entry-point group (see
pyproject.toml): ours are the packages beside this file, and a third-party package adds one the same way.
Service packages import their client libraries (psycopg, boto3, pymongo) inside functions, so that reading
their options (config validation, the CLI) stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, TypeVar

from localdev.concurrency import pool
from localdev.errors import LocalDevError

if TYPE_CHECKING:
    from localdev.services.base import Service

if TYPE_CHECKING:
    from localdev.services.base import Service

GROUP = "localdev.services"
# The order `up` and `status` show them in; other services follow, by name.
PREFERRED_ORDER = ("postgres", "dynamodb", "aws", "mongo")

T = TypeVar("T")


@cache
def service_classes() -> dict[str, type[Service]]:
    """name -> Service class, from every installed distribution's ``localdev.services`` entry points."""
    from importlib.metadata import entry_points

    from localdev.services.base import Service  # noqa: F811 (here too: the base imports this package's siblings)

    found: dict[str, type[Service]] = {}
    for ep in entry_points(group=GROUP):
        try:
            cls = ep.load()
        except Exception as exc:  # a broken plugin must say which one, not break with a bare ImportError
            raise LocalDevError(f"the service entry point {ep.name} = {ep.value!r} cannot be loaded: {exc}") from exc
        if not (isinstance(cls, type) and issubclass(cls, Service)) or cls.name != ep.name:
            raise LocalDevError(f"the service entry point {ep.name} = {ep.value!r} is not a Service named {ep.name!r}")
        if ep.name in found and found[ep.name] is not cls:
            raise LocalDevError(f"two installed packages register a service named {ep.name!r}: "
                                f"{found[ep.name].__module__} and {cls.__module__}")
        found[ep.name] = cls
    if not found:
        raise LocalDevError("no localdev services are registered: localdev is not installed as a package "
                            "(pip install -e . in the checkout)")
    rank = {n: i for i, n in enumerate(PREFERRED_ORDER)}
    return dict(sorted(found.items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0])))


def waves(names: list[str], classes: dict[str, type[Service]] | None = None,
          depends: Callable[[str], tuple[str, ...]] | None = None) -> list[list[str]]:
    """Group services so each group depends only on earlier groups (start/create in order, each group in parallel)."""
    known = classes or service_classes()
    depends = depends or (lambda n: known[n].depends_on)
    remaining, done, result = list(names), set(), []
    while remaining:
        wave = [n for n in remaining if all(d in done or d not in names for d in depends(n))]
        if not wave:
            raise ValueError(f"dependency cycle among services {remaining}")
        result.append(wave)
        done.update(wave)
        remaining = [n for n in remaining if n not in done]
    return result


def in_waves(names: list[str], fn: Callable[[str], T], *, dependants_first: bool = False,
             keep_going: bool = False, depends: Callable[[str], tuple[str, ...]] | None = None,
             combine: Callable[[list[tuple[str, BaseException]]], BaseException] | None = None) -> dict[str, T]:
    """Run `fn(name)` for every service in dependency waves, each wave in parallel; returns name -> result.

    Error policy: every failure of a wave is collected; then, unless `keep_going`, no later wave starts.
    At the end the failures, as (service, exception) in the order they ran, are raised as `combine` makes
    them into one exception; by default a single failure is raised as it is and several as `ServiceErrors`.
    `dependants_first` runs the waves backwards (stop, drop: mongo's schema goes before postgres's role).
    `depends`: a service's dependencies for this operation (default: its class's `depends_on`)."""
    order = waves(names, depends=depends)
    results: dict[str, T] = {}
    errors: list[tuple[str, BaseException]] = []
    for wave in (reversed(order) if dependants_first else order):
        with pool(len(wave)) as steps:
            futures = {n: steps.submit(fn, n) for n in wave}
        for name, future in futures.items():
            exc = future.exception()
            if exc is None:
                results[name] = future.result()
            else:
                errors.append((name, exc))
        if errors and not keep_going:
            break
    if errors:
        raise (combine or _as_is)(errors)
    return results


def _as_is(errors: list[tuple[str, BaseException]]) -> BaseException:
    return errors[0][1] if len(errors) == 1 else ServiceErrors(errors)


class ServiceErrors(LocalDevError):
    """Several services failed one operation; `errors` holds (service, exception) in the order they ran."""

    def __init__(self, errors: list[tuple[str, BaseException]]):
        self.errors = errors
        super().__init__("; ".join(f"{n}: {exc}" for n, exc in errors))
        self.__cause__ = errors[0][1]


def with_dependencies(names: list[str], classes: dict[str, type[Service]] | None = None) -> list[str]:
    classes = classes or service_classes()
    out: list[str] = []

    def add(n):
        for dep in classes[n].depends_on:
            add(dep)
        if n not in out:
            out.append(n)

    for n in names:
        add(n)
    return [n for n in classes if n in out]

"""Service discovery: every module here with a `SERVICE` class is a service (base and _private modules excepted).

Service modules import their client libraries (psycopg, boto3, pymongo) inside functions, so that
reading their options (config validation, the CLI) stays cheap.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

# The order `up` and `status` show them in; unknown services follow, by name.
PREFERRED_ORDER = ("postgres", "dynamodb", "aws", "mongo")


@cache
def service_classes() -> dict[str, type]:
    found = {}
    for mod in pkgutil.iter_modules(__path__):
        if mod.name == "base" or mod.name.startswith("_"):
            continue
        cls = getattr(importlib.import_module(f"{__name__}.{mod.name}"), "SERVICE", None)
        if cls is not None:
            found[cls.name] = cls
    rank = {n: i for i, n in enumerate(PREFERRED_ORDER)}
    return dict(sorted(found.items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0])))


def waves(names: list[str], classes: dict[str, type] | None = None) -> list[list[str]]:
    """Group services so each group depends only on earlier groups (start/create in order, each group in parallel)."""
    classes = classes or service_classes()
    remaining, done, result = list(names), set(), []
    while remaining:
        wave = [n for n in remaining if all(d in done or d not in names for d in classes[n].depends_on)]
        if not wave:
            raise ValueError(f"dependency cycle among services {remaining}")
        result.append(wave)
        done.update(wave)
        remaining = [n for n in remaining if n not in done]
    return result


def with_dependencies(names: list[str], classes: dict[str, type] | None = None) -> list[str]:
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

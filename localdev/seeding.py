"""Seeds: read `seeds/`, validate all of it, then apply per service.

Layout (one folder per service, each parsed and applied by its own service module)::

    seeds/postgres/*.sql            applied in name order, in one transaction
    seeds/dynamodb/<table>.json     {"table": <CreateTable parameters>, "items": [...]}
    seeds/mongo/<collection>.json   [<Extended JSON documents>]
    seeds/aws/s3/<bucket>/<key>     each file an object
    seeds/aws/sqs.json              [{"name": ..., "attributes": {...}}]

Nothing is applied unless every file of every service validates (errors: `file:line: what is wrong`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from localdev.errors import BadInput


@dataclass
class Fixtures:
    root: Path
    content_hash: str
    per_service: dict[str, object] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)  # fixture folders of services the cluster does not run


def _hash_tree(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()


def load_fixtures(root, services: list[str] | None = None) -> Fixtures:
    """Parse and validate every fixture under `root`; raise BadInput naming the first bad file."""
    from localdev.services import service_classes

    root = Path(root)
    if not root.is_dir():
        raise BadInput(f"seeds directory {root} does not exist")
    classes = service_classes()
    for entry in sorted(root.iterdir()):
        if entry.name.startswith("."):
            continue
        if not entry.is_dir() or entry.name not in classes:
            raise BadInput(f"{entry}: unexpected entry in the seeds folder; expected folders named after "
                           f"services: {', '.join(classes)}")
    fixtures = Fixtures(root=root, content_hash=_hash_tree(root))
    for name, cls in classes.items():
        folder = root / name
        if not folder.is_dir():
            continue
        if services is None or name in services:
            fixtures.per_service[name] = cls.load_fixtures(folder)
        else:
            fixtures.skipped.append(name)  # the cluster does not run it: nothing to seed there
    return fixtures


def apply(cluster, ns, services: list[str], fixtures: Fixtures) -> str:
    """Replay each service's part on an existing namespace (all-or-nothing per service); returns the content hash."""
    for name, parsed in fixtures.per_service.items():
        if name in services:
            cluster.services[name].seed(ns, parsed)
    return fixtures.content_hash

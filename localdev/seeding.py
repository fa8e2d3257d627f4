"""Seeds: read `seeds/`, validate all of it, then apply per service.

Layout (one folder per service, each parsed and applied by its own service module)::

    seeds/postgres/*.sql            applied in name order, in one transaction
    seeds/dynamodb/<table>.json     {"table": <CreateTable parameters>, "items": [...]}
    seeds/mongo/<collection>.json   [<Extended JSON documents>]
    seeds/aws/s3/<bucket>/<key>     each file an object
    seeds/aws/sqs.json              [{"name": ..., "attributes": {...}}]

Nothing is applied unless every file of every service validates (errors: `file:line: what is wrong`).
SQL files, dynamodb items and mongo documents are streamed, never held whole: each file is read once to
check it and again to apply it, so a 100k-row SQL file or a 50k-item table seeds in bounded memory.
Re-seeding an existing namespace (`apply`) is all-or-nothing across services.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from localdev.errors import BadInput
from localdev.seedpack import tree_hash


@dataclass
class Fixtures:
    root: Path
    content_hash: str
    per_service: dict[str, object] = field(default_factory=dict)


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
    fixtures = Fixtures(root=root, content_hash=tree_hash(root))
    for name, cls in classes.items():
        folder = root / name
        if not folder.is_dir():
            continue
        if services is None or name in services:  # a service the cluster does not run has nothing to seed
            fixtures.per_service[name] = cls.load_fixtures(folder)
    return fixtures


def apply(cluster, ns, services: list[str], fixtures: Fixtures) -> str:
    """Replay the seeds on an existing namespace, all-or-nothing across services; returns the content hash.

    Each service applies its part and returns an Undo; only when all have is each committed. PostgreSQL
    comes first (service order): a bad SQL file fails before the slow parts, and its commit, the one
    that can still fail (deferred constraints), comes before the others are made final. Any failure
    rolls back every part applied, newest first."""
    from localdev.undo import roll_back

    applied = []
    try:
        for name, parsed in fixtures.per_service.items():
            if name in services:
                applied.append(cluster.services[name].seed(ns, parsed))
        for undo in applied:
            undo.commit()
    except BaseException as exc:
        roll_back(applied, exc)
        raise
    return fixtures.content_hash

"""Mongo seeds: seeds/mongo/<collection>.json, an array of documents in MongoDB Extended JSON, and an
optional <collection>.indexes.json, an array of {"key": {...}, ...options}.

Document files are streamed twice and never held whole: `load` checks every document, keeping a count;
`apply` reads them again and inserts them a batch at a time. Both passes read through `_documents`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from localdev.batches import batches
from localdev.errors import BadInput
from localdev.jsonstream import iter_array
from localdev.progress import Counter
from localdev.undo import Undo

BATCH = 1000
NOT_DOCUMENTS = "expected a JSON array of objects"


@dataclass
class CollectionFixture:
    documents: Path | None = None
    count: int = 0
    indexes: list[dict] = field(default_factory=list)

    def read(self) -> Iterator[dict]:
        return _documents(self.documents) if self.documents else iter(())


def _decoder() -> tuple[json.JSONDecoder, tuple]:
    """Extended JSON as `bson.json_util.loads` reads it, and what its hook raises on a bad wrapper."""
    from bson import json_util
    from bson.errors import BSONError

    hook = partial(json_util.object_hook, json_options=json_util.DEFAULT_JSON_OPTIONS)
    return json.JSONDecoder(object_hook=hook), (ValueError, TypeError, KeyError, BSONError)


def _documents(path: Path) -> Iterator[dict]:
    decoder, errors = _decoder()
    for line, document in iter_array(path, decoder, NOT_DOCUMENTS, hook_errors=errors):
        if not isinstance(document, dict):
            raise BadInput(f"{path}:{line}: {NOT_DOCUMENTS}")
        yield document


def load(folder: Path) -> dict[str, CollectionFixture]:
    out: dict[str, CollectionFixture] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        if path.suffix != ".json" or not path.is_file():
            raise BadInput(f"{path}: mongo seeds are <collection>.json or <collection>.indexes.json files")
        indexes = path.name.endswith(".indexes.json")
        collection = path.name[: -len(".indexes.json")] if indexes else path.stem
        if not collection or collection.startswith(("system.", "_ferretdb_")) or "$" in collection:
            raise BadInput(f"{path}: {collection!r} is not a usable collection name")
        entry = out.setdefault(collection, CollectionFixture())
        if indexes:
            entry.indexes = _indexes(path)
        else:
            entry.documents, entry.count = path, sum(1 for _ in _documents(path))
    return out


def _indexes(path: Path) -> list[dict]:
    decoder, errors = _decoder()
    found = []
    for line, index in iter_array(path, decoder, NOT_DOCUMENTS, hook_errors=errors):
        if not isinstance(index, dict) or not isinstance(index.get("key"), dict) or not index["key"]:
            raise BadInput(f"{path}:{line}: every index needs a non-empty \"key\" object, "
                           "e.g. {\"key\": {\"email\": 1}}")
        found.append(index)
    return found


def apply(db, namespace: str, fixtures: dict[str, CollectionFixture], undo: Undo) -> None:
    """Create the indexes and insert the documents. `undo` learns how to take each step back: drop a
    collection this call created; in one that existed, drop the indexes and delete the documents it added."""
    import pymongo
    from bson import ObjectId
    from pymongo.errors import BulkWriteError, PyMongoError

    existing = set(db.list_collection_names())
    name = ""
    try:
        for name, fx in fixtures.items():
            collection = db[name]
            if name not in existing:
                undo.add(db.drop_collection, name)
                db.create_collection(name)  # an empty collection (an export's) exists too
            if fx.indexes:
                before = {ix["name"] for ix in collection.list_indexes()} if name in existing else None
                made = collection.create_indexes([pymongo.IndexModel(list(ix["key"].items()),
                                                                     **{k: v for k, v in ix.items() if k != "key"})
                                                  for ix in fx.indexes])
                for index in made if before is not None else ():
                    if before is not None and index not in before:
                        undo.add(collection.drop_index, index)
            progress = Counter(namespace, "mongo", name, fx.count, "documents")
            for batch in batches(fx.read(), BATCH):
                ids = [document.setdefault("_id", ObjectId()) for document in batch]
                try:
                    collection.insert_many(batch, ordered=True)
                except BulkWriteError as exc:  # ordered: those before the failing one went in
                    ids = ids[:exc.details.get("nInserted", 0)]
                    raise
                finally:
                    if name in existing and ids:
                        undo.add(collection.delete_many, {"_id": {"$in": ids}})
                progress.add(len(batch))
    except PyMongoError as exc:
        raise BadInput(f"seeding mongo collection {name!r} failed: {exc}") from None

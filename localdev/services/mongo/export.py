"""Mongo's part of an export: seeds/mongo/<collection>.json (canonical Extended JSON, one document per line,
in _id order) and <collection>.indexes.json (every index but _id's, with its options).

Consistency: a cursor in _id order, not a snapshot (none of the flavors offers snapshot reads to a plain
find). Each document is read whole, as one write left it, and at most once; a document written while the
export runs may or may not be in it.
"""

from __future__ import annotations

from pathlib import Path

from localdev.exports import Digest, Summary, json_array

SKIP_PREFIXES = ("system.", "_ferretdb_", "_localdev_")
INDEX_FIELDS_DROPPED = ("v", "ns", "key")


def dump(svc, ns, folder: Path | None) -> Summary:
    import bson
    from bson import json_util
    from bson.codec_options import CodecOptions
    from bson.raw_bson import RawBSONDocument
    from bson.son import SON

    raw = CodecOptions(document_class=RawBSONDocument)
    db = svc.admin()[ns.db_name]
    digest = Digest()
    names = sorted(n for n in db.list_collection_names() if not n.startswith(SKIP_PREFIXES))
    documents = 0
    for name in names:
        collection = db.get_collection(name, codec_options=raw)
        indexes = []
        for index in db[name].list_indexes():
            if index["name"] == "_id_":
                continue
            spec = SON([("key", index["key"])] + sorted((k, v) for k, v in index.items()
                                                        if k not in INDEX_FIELDS_DROPPED))
            indexes.append(spec)
            digest.add("index", name, json_util.dumps(spec, json_options=json_util.CANONICAL_JSON_OPTIONS))
        if folder and indexes:
            with json_array(folder / f"{name}.indexes.json") as ixwriter:
                assert ixwriter is not None  # a path was given
                for spec in indexes:
                    ixwriter.add(json_util.dumps(spec, json_options=json_util.CANONICAL_JSON_OPTIONS))
        digest.add("collection", name)
        with json_array(folder / f"{name}.json" if folder else None) as writer:
            for document in collection.find({}, sort=[("_id", 1)], batch_size=1000):
                digest.add("document", name, document.raw)
                documents += 1
                if writer:
                    writer.add(json_util.dumps(bson.decode(document.raw),
                                               json_options=json_util.CANONICAL_JSON_OPTIONS))
    return Summary(counts={"collections": len(names), "documents": documents}, checksum=digest.hexdigest())


def version(svc) -> str:
    try:
        return f"{svc.flavor} " + str(svc.admin().server_info().get("version", ""))
    except Exception:  # noqa: BLE001 - a flavor without buildInfo: the flavor alone says enough
        return svc.flavor

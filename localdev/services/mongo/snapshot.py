"""Mongo snapshots: a database `localdev_snap_<id>` per snapshot, written by localdev's own user.

On mongo-java-server our launcher copies a database at the storage level (`localdevCopyDatabase`, root only:
its MVStore maps under the new name, in one commit, under both databases' write locks): `StorageCopier`.
FerretDB 1.x and MongoDB have no server-side copy (MongoDB removed copydb in 4.2), so there the copy is
logical but never parses seed files: each collection's indexes are made first, then its documents are
streamed as raw BSON (never decoded) in batches, read as the namespace (its own credentials: FerretDB lets
only the owner role read its schema) and written as localdev's user, and back the other way.
"""

from __future__ import annotations

BATCH = 1000


def db_of(sid: str) -> str:
    return f"localdev_snap_{sid}"


class DatabaseCopier:
    copies_seeds = True  # raw BSON, never parsed: cheaper than Extended JSON

    def __init__(self, svc):
        self.svc = svc

    def _own(self, ns):
        import pymongo

        return pymongo.MongoClient(self.svc._env(ns, self.svc.host)["MONGODB_URI"], serverSelectionTimeoutMS=5000)

    def take(self, ns, sid: str, idle: bool) -> dict:
        client = self._own(ns)
        try:
            collections = _copy(client.get_default_database(), self.svc.admin()[db_of(sid)])
        finally:
            client.close()
        return {"db": db_of(sid), "collections": collections}

    def create(self, ns, sid: str, part: dict) -> dict[str, str]:
        env = self.svc.create_namespace(ns)
        self._fill(ns, part)
        return env

    def _fill(self, ns, part: dict) -> None:
        client = self._own(ns)
        try:
            _copy(self.svc.admin()[part["db"]], client.get_default_database())
        finally:
            client.close()

    def reset(self, ns, sid: str | None, part: dict | None) -> None:
        client = self._own(ns)
        try:
            db = client.get_default_database()
            for name in db.list_collection_names():
                if not name.startswith("system."):
                    db.drop_collection(name)
        finally:
            client.close()
        if part is not None:
            self._fill(ns, part)

    def drop(self, sid: str, part: dict | None) -> None:
        self.svc.admin().drop_database(db_of(sid))


def _copy(source, target) -> int:
    """Every collection of database `source` into `target` (indexes first): their number."""
    from bson.codec_options import CodecOptions
    from bson.raw_bson import RawBSONDocument

    raw = CodecOptions(document_class=RawBSONDocument)
    names = sorted(n for n in source.list_collection_names() if not n.startswith("system."))
    for name in names:
        target.create_collection(name)
        for index in source[name].list_indexes():
            if index["name"] == "_id_":
                continue
            options = {k: v for k, v in index.items() if k not in ("v", "key", "ns")}
            target[name].create_index(list(index["key"].items()), **options)
        into = target.get_collection(name, codec_options=raw)
        batch = []
        for doc in source.get_collection(name, codec_options=raw).find({}, batch_size=BATCH):
            batch.append(doc)
            if len(batch) == BATCH:
                into.insert_many(batch, ordered=True)
                batch = []
        if batch:
            into.insert_many(batch, ordered=True)
    return len(names)


class StorageCopier(DatabaseCopier):
    """mongo-java-server: whole databases copied by the server. A database without a collection does not
    exist there, so an empty namespace's snapshot is no database at all (`collections` 0)."""

    def _copy_db(self, source: str, target: str) -> None:
        self.svc.admin().admin.command("localdevCopyDatabase", **{"from": source, "to": target})

    def _collections(self, db: str) -> int:
        return sum(1 for n in self.svc.admin()[db].list_collection_names() if not n.startswith("system."))

    def take(self, ns, sid: str, idle: bool) -> dict:
        admin = self.svc.admin()
        admin.drop_database(db_of(sid))  # a take cut short left it, never a finished snapshot
        collections = self._collections(ns.db_name)
        if collections:
            self._copy_db(ns.db_name, db_of(sid))
        return {"db": db_of(sid), "collections": collections}

    def _fill(self, ns, part: dict) -> None:
        # the namespace's database is being made or reset: whatever is in it goes
        self.svc.admin().drop_database(ns.db_name)
        if part.get("collections", 1):
            self._copy_db(part["db"], ns.db_name)

    def reset(self, ns, sid: str | None, part: dict | None) -> None:
        if part is None:
            self.svc.admin().drop_database(ns.db_name)
        else:
            self._fill(ns, part)

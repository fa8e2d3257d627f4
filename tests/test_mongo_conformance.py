"""A DocumentDB-style conformance suite, run against every mongo flavor this machine can run.

Each case does something an application on Amazon DocumentDB does, as the namespace's own user with the
URI `ns env` gives, and returns what it saw; the case passes when that equals what MongoDB answers.
A flavor may refuse a case (a server or driver error): that is recorded as "refused". A flavor that
answers without an error but wrongly is recorded as "WRONG". What each flavor does is pinned in OUTCOMES
below, so a change either way fails the test; the table in docs/mongo.md is generated from a run of
this file (bench/mongo_conformance.py), never written by hand.
"""

from __future__ import annotations

import json
import os
import threading
import time
from urllib.parse import urlsplit, urlunsplit

import pymongo
import pytest
from pymongo import (ASCENDING, DESCENDING, DeleteOne, InsertOne, ReplaceOne, ReturnDocument, UpdateMany,
                     UpdateOne)
from pymongo.errors import BulkWriteError, DuplicateKeyError, PyMongoError

from conftest import start_cluster

FLAVORS = ("ferretdb", "mongo-java-server")  # mongodb runs only in containers, from an image CI cannot pull
RESULTS_ENV = "LOCALDEV_MONGO_CONFORMANCE_JSON"  # where to write what each case did (the docs table's input)


class Wrong(Exception):
    """A side effect that contradicts what the flavor answered (e.g. a refused transaction that wrote)."""


CASES: dict[str, tuple[str, object, object]] = {}  # name -> (group, function(db, ctx), expected)


def case(group: str, expected):
    def register(fn):
        CASES[fn.__name__] = (group, fn, expected)
        return fn
    return register


def docs(cursor):
    return [{k: v for k, v in d.items() if k != "_id"} for d in cursor]


# -- CRUD ------------------------------------------------------------------------------------------

@case("CRUD", [{"n": 5, "tag": "b"}, {"n": 8, "tag": "a"}])  # n=3 has an array of 3
def find_with_query_operators(db, ctx):
    c = db.find_ops
    c.insert_many([{"n": i, "tag": "ab"[i % 2 == 1 and i < 6], "arr": list(range(i % 4))} for i in range(10)])
    q = {"$or": [{"n": {"$in": [3, 5]}}, {"n": {"$gte": 8, "$lt": 9}}], "tag": {"$exists": True},
         "arr": {"$not": {"$size": 3}}}
    return docs(c.find(q, {"_id": 0, "n": 1, "tag": 1}).sort("n", ASCENDING))


@case("CRUD", [{"name": "ab", "sub": {"x": 2}}, {"name": "abc", "sub": {"x": 3}}])
def find_regex_elemmatch_dotted(db, ctx):
    c = db.find_regex
    c.insert_many([{"name": "ab", "sub": {"x": 2}, "items": [{"k": 1, "v": 5}]},
                   {"name": "abc", "sub": {"x": 3}, "items": [{"k": 1, "v": 7}, {"k": 2, "v": 1}]},
                   {"name": "b", "sub": {"x": 4}, "items": [{"k": 1, "v": 9}]},
                   {"name": "abd", "sub": {"x": 1}, "items": [{"k": 2, "v": 9}]}])
    q = {"name": {"$regex": "^ab"}, "items": {"$elemMatch": {"k": 1, "v": {"$gte": 5}}}, "sub.x": {"$gt": 1}}
    return docs(c.find(q, {"_id": 0, "name": 1, "sub": 1}).sort("name", ASCENDING))


@case("CRUD", {"a": 2, "b": 30, "list": [1, 2, 3, 4], "set": ["x", "y"], "lo": 1, "hi": 9, "renamed": "r"})
def update_operators(db, ctx):
    c = db.update_ops
    c.insert_one({"_id": 1, "a": 1, "b": 10, "gone": True, "list": [1, 2, 3, 9], "set": ["x"], "lo": 5, "hi": 5,
                  "old": "r"})
    c.update_one({"_id": 1}, {"$inc": {"a": 1}, "$mul": {"b": 3}, "$unset": {"gone": ""}, "$addToSet": {"set": "y"},
                              "$min": {"lo": 1}, "$max": {"hi": 9}, "$rename": {"old": "renamed"}})
    c.update_one({"_id": 1}, {"$pull": {"list": 9}})
    c.update_one({"_id": 1}, {"$push": {"list": 4}, "$addToSet": {"set": "x"}})
    return c.find_one({"_id": 1}, {"_id": 0})


@case("CRUD", {"grades": [{"g": 90, "ok": True}, {"g": 60, "ok": False}, {"g": 95, "ok": True}], "tags": ["A", "b"]})
def update_positional_and_array_filters(db, ctx):
    c = db.update_pos
    c.insert_one({"_id": 1, "grades": [{"g": 90}, {"g": 60}, {"g": 95}], "tags": ["a", "b"]})
    c.update_one({"_id": 1, "tags": "a"}, {"$set": {"tags.$": "A"}})
    c.update_one({"_id": 1}, {"$set": {"grades.$[hi].ok": True, "grades.$[lo].ok": False}},
                 array_filters=[{"hi.g": {"$gte": 90}}, {"lo.g": {"$lt": 90}}])
    return c.find_one({"_id": 1}, {"_id": 0})


@case("CRUD", {"replaced": (1, 1), "deleted_one": 1, "deleted_many": 3, "left": [{"n": 0, "v": "new"}]})
def replace_and_delete(db, ctx):
    c = db.replace_del
    c.insert_many([{"n": i, "v": "old"} for i in range(5)])
    r = c.replace_one({"n": 0}, {"n": 0, "v": "new"})
    d1 = c.delete_one({"n": {"$gte": 1}})
    dm = c.delete_many({"n": {"$gte": 1}})
    return {"replaced": (r.matched_count, r.modified_count), "deleted_one": d1.deleted_count,
            "deleted_many": dm.deleted_count, "left": docs(c.find({}, {"_id": 0}))}


@case("CRUD", {"first": (0, 0, True), "second": (1, 1, False), "doc": {"k": "x", "created": 1, "hits": 2}})
def upserts(db, ctx):
    c = db.upserts
    u1 = c.update_one({"k": "x"}, {"$setOnInsert": {"created": 1}, "$inc": {"hits": 1}}, upsert=True)
    u2 = c.update_one({"k": "x"}, {"$setOnInsert": {"created": 2}, "$inc": {"hits": 1}}, upsert=True)
    return {"first": (u1.matched_count, u1.modified_count, u1.upserted_id is not None),
            "second": (u2.matched_count, u2.modified_count, u2.upserted_id is not None),
            "doc": c.find_one({"k": "x"}, {"_id": 0})}


@case("CRUD", {"counts": (2, 4, 4, 1, 0), "docs": [{"n": 1, "v": 1}, {"n": 2, "v": 1}, {"n": 10, "r": True}]})
def bulk_write_ordered(db, ctx):
    c = db.bulk_ordered
    c.insert_many([{"n": i, "v": 0} for i in range(4)])
    r = c.bulk_write([InsertOne({"n": 4, "v": 0}), InsertOne({"n": 5, "v": 0}),
                      UpdateMany({"n": {"$in": [1, 2, 4]}}, {"$set": {"v": 1}}),
                      DeleteOne({"n": 0}), ReplaceOne({"n": 3}, {"n": 10, "r": True}),
                      UpdateOne({"n": 99}, {"$set": {"v": 5}})])
    c.delete_many({"n": {"$in": [4, 5]}})
    return {"counts": (r.inserted_count, r.matched_count, r.modified_count, r.deleted_count, r.upserted_count),
            "docs": docs(c.find({}, {"_id": 0}).sort("n", ASCENDING))}


@case("CRUD", {"inserted": 3, "codes": [11000], "index": [1], "stored": [0, 1, 2, 3]})
def bulk_write_unordered_with_duplicate(db, ctx):
    c = db.bulk_unordered
    c.create_index("n", unique=True)
    c.insert_one({"n": 1})
    try:
        c.insert_many([{"n": 0}, {"n": 1}, {"n": 2}, {"n": 3}], ordered=False)
        return "no error"
    except BulkWriteError as exc:
        d = exc.details
        return {"inserted": d["nInserted"], "codes": [e["code"] for e in d["writeErrors"]],
                "index": [e["index"] for e in d["writeErrors"]],
                "stored": sorted(x["n"] for x in c.find())}


@case("CRUD", {"after": {"k": "b", "v": 21}, "before": {"k": "c", "v": 30}, "deleted": {"k": "a", "v": 10},
               "upserted": {"k": "z", "v": 0}, "left": ["b", "c", "z"]})
def find_and_modify(db, ctx):
    c = db.fam
    c.insert_many([{"k": "a", "v": 10}, {"k": "b", "v": 20}, {"k": "c", "v": 30}])
    after = c.find_one_and_update({"v": {"$gte": 20}}, {"$inc": {"v": 1}}, sort=[("v", ASCENDING)],
                                  projection={"_id": 0}, return_document=ReturnDocument.AFTER)
    before = c.find_one_and_update({"k": "c"}, {"$set": {"v": 31}}, projection={"_id": 0})
    deleted = c.find_one_and_delete({"k": "a"}, projection={"_id": 0})
    upserted = c.find_one_and_replace({"k": "z"}, {"k": "z", "v": 0}, upsert=True, projection={"_id": 0},
                                      return_document=ReturnDocument.AFTER)
    return {"after": after, "before": before, "deleted": deleted, "upserted": upserted,
            "left": sorted(d["k"] for d in c.find())}


# -- indexes ---------------------------------------------------------------------------------------

@case("indexes", {"key": [("a", 1), ("b", -1)], "found": [{"a": 1, "b": 3}, {"a": 1, "b": 2}]})
def index_compound(db, ctx):
    c = db.ix_compound
    c.insert_many([{"a": 1, "b": 2}, {"a": 1, "b": 3}, {"a": 2, "b": 1}])
    name = c.create_index([("a", ASCENDING), ("b", DESCENDING)])
    key = [(k, int(v)) for k, v in c.index_information()[name]["key"]]
    return {"key": key, "found": docs(c.find({"a": 1}, {"_id": 0}).sort([("a", 1), ("b", -1)]).hint(name))}


@case("indexes", {"code": 11000, "count": 1, "unique": True})
def index_unique(db, ctx):
    c = db.ix_unique
    name = c.create_index("email", unique=True)
    c.insert_one({"email": "a@x"})
    try:
        c.insert_one({"email": "a@x"})
        code = None
    except DuplicateKeyError as exc:
        code = exc.code
    return {"code": code, "count": c.count_documents({}), "unique": c.index_information()[name].get("unique")}


@case("indexes", {"expireAfterSeconds": 3600})
def index_ttl(db, ctx):
    c = db.ix_ttl
    name = c.create_index("ts", expireAfterSeconds=3600)
    return {"expireAfterSeconds": c.index_information()[name].get("expireAfterSeconds")}


@case("indexes", {"inactive_duplicates": 2, "active_duplicate": 11000,
                  "partialFilterExpression": {"active": True}})
def index_partial_unique(db, ctx):
    c = db.ix_partial
    name = c.create_index("u", unique=True, partialFilterExpression={"active": True})
    c.insert_many([{"u": 1, "active": False}, {"u": 1, "active": False}, {"u": 1, "active": True}])
    try:
        c.insert_one({"u": 1, "active": True})
        code = None
    except DuplicateKeyError as exc:
        code = exc.code
    return {"inactive_duplicates": c.count_documents({"active": False}), "active_duplicate": code,
            "partialFilterExpression": c.index_information()[name].get("partialFilterExpression")}


@case("indexes", ["_id_", "b_1"])
def index_list_and_drop(db, ctx):
    c = db.ix_list
    c.create_index("a")
    c.create_index("b")
    c.drop_index("a_1")
    return sorted(ix["name"] for ix in c.list_indexes())


# -- aggregation -----------------------------------------------------------------------------------

SALES = [{"k": "x", "v": 1, "q": 2}, {"k": "x", "v": 3, "q": 1}, {"k": "y", "v": 5, "q": 4},
         {"k": "y", "v": 7, "q": 3}, {"k": "y", "v": 9, "q": 5}, {"k": "z", "v": 2, "q": 9}]


def sales(db, name):
    c = db[name]
    c.insert_many([dict(d, i=i) for i, d in enumerate(SALES)])
    return c


def group(db, name, accumulators, sort_first=True):
    pipeline = ([{"$sort": {"i": 1}}] if sort_first else []) + [
        {"$match": {"k": {"$in": ["x", "y"]}}}, {"$group": {"_id": "$k", **accumulators}}, {"$sort": {"_id": 1}}]
    return list(sales(db, name).aggregate(pipeline))


@case("aggregation", [{"_id": "x", "total": 4}, {"_id": "y", "total": 21}])
def group_sum(db, ctx):
    return group(db, "g_sum", {"total": {"$sum": "$v"}})


@case("aggregation", [{"_id": "x", "total": 4, "n": 2, "qty": 3}, {"_id": "y", "total": 21, "n": 3, "qty": 12}])
def group_several_accumulators(db, ctx):
    return group(db, "g_several", {"total": {"$sum": "$v"}, "n": {"$sum": 1}, "qty": {"$sum": "$q"}})


@case("aggregation", [{"_id": "x", "mean": 2.0}, {"_id": "y", "mean": 7.0}])
def group_avg(db, ctx):
    return group(db, "g_avg", {"mean": {"$avg": "$v"}})


@case("aggregation", [{"_id": "x", "lo": 1}, {"_id": "y", "lo": 5}])
def group_min(db, ctx):
    return group(db, "g_min", {"lo": {"$min": "$v"}})


@case("aggregation", [{"_id": "x", "hi": 3}, {"_id": "y", "hi": 9}])
def group_max(db, ctx):
    return group(db, "g_max", {"hi": {"$max": "$v"}})


@case("aggregation", [{"_id": "x", "vs": [1, 3]}, {"_id": "y", "vs": [5, 7, 9]}])
def group_push(db, ctx):
    return group(db, "g_push", {"vs": {"$push": "$v"}})


@case("aggregation", [{"_id": "x", "qs": [1, 2]}, {"_id": "y", "qs": [3, 4, 5]}])
def group_add_to_set(db, ctx):
    rows = group(db, "g_set", {"qs": {"$addToSet": "$q"}})
    return [dict(r, qs=sorted(r["qs"])) for r in rows]  # a set: its order is unspecified


@case("aggregation", [{"_id": "x", "f": 1, "l": 3}, {"_id": "y", "f": 5, "l": 9}])
def group_first_last(db, ctx):
    return group(db, "g_first", {"f": {"$first": "$v"}, "l": {"$last": "$v"}})


@case("aggregation", [{"_id": "x", "n": 2}, {"_id": "y", "n": 3}])
def group_count_accumulator(db, ctx):
    return group(db, "g_count", {"n": {"$count": {}}})


@case("aggregation", [{"_id": None, "n": 6, "total": 27, "mean": 4.5, "lo": 1, "hi": 9}])
def group_all_accumulators_null_key(db, ctx):
    return list(sales(db, "g_all").aggregate([{"$group": {
        "_id": None, "n": {"$sum": 1}, "total": {"$sum": "$v"}, "mean": {"$avg": "$v"}, "lo": {"$min": "$v"},
        "hi": {"$max": "$v"}}}]))


@case("aggregation", [{"k": "x", "value": 2, "label": "x-1", "big": False},
                      {"k": "x", "value": 3, "label": "x-3", "big": False},
                      {"k": "y", "value": 20, "label": "y-5", "big": True}])
def project_expressions(db, ctx):
    return list(sales(db, "p_expr").aggregate([
        {"$match": {"v": {"$lte": 5}}}, {"$sort": {"v": 1}},
        {"$project": {"_id": 0, "k": 1, "value": {"$multiply": ["$v", "$q"]},
                      "label": {"$concat": ["$k", "-", {"$toString": "$v"}]},
                      "big": {"$cond": [{"$gt": [{"$add": ["$v", "$q"]}, 8]}, True, False]}}},
        {"$match": {"k": {"$ne": "z"}}}]))


@case("aggregation", [7, 5, 3])
def sort_skip_limit(db, ctx):
    return [d["v"] for d in sales(db, "ssl").aggregate([{"$sort": {"v": -1}}, {"$skip": 1}, {"$limit": 3}])]


@case("aggregation", [{"_id": "a", "n": 2}, {"_id": "b", "n": 1}, {"_id": "c", "n": 1}])
def unwind(db, ctx):
    c = db.unwind
    c.insert_many([{"tags": ["a", "b"]}, {"tags": ["a", "c"]}, {"tags": []}])
    return list(c.aggregate([{"$unwind": "$tags"}, {"$group": {"_id": "$tags", "n": {"$sum": 1}}},
                             {"$sort": {"_id": 1}}]))


@case("aggregation", [{"o": 1, "cust": [{"cid": 1, "name": "ann"}]}, {"o": 2, "cust": [{"cid": 2, "name": "bob"}]},
                      {"o": 3, "cust": []}])
def lookup(db, ctx):
    db.lk_customers.insert_many([{"cid": 1, "name": "ann"}, {"cid": 2, "name": "bob"}])
    db.lk_orders.insert_many([{"o": 1, "cid": 1}, {"o": 2, "cid": 2}, {"o": 3, "cid": 9}])
    rows = db.lk_orders.aggregate([
        {"$lookup": {"from": "lk_customers", "localField": "cid", "foreignField": "cid", "as": "cust"}},
        {"$project": {"_id": 0, "o": 1, "cust": 1}}, {"$sort": {"o": 1}}])
    return [dict(r, cust=docs(r["cust"])) for r in rows]


@case("aggregation", [{"items": [{"k": 1}, {"k": 2}]}, {"items": {"k": 3}}])
def project_dotted_path_through_array(db, ctx):
    db.p_dotted.insert_many([{"i": 0, "items": [{"k": 1, "v": 5}, {"k": 2, "v": 6}]}, {"i": 1, "items": {"k": 3, "v": 7}}])
    return list(db.p_dotted.aggregate([{"$sort": {"i": 1}}, {"$project": {"_id": 0, "items.k": 1}}]))


@case("CRUD", [{"items": [{"k": 1}, {"k": 2}]}, {"items": {"k": 3}}])
def find_projection_dotted_path_through_array(db, ctx):
    db.f_dotted.insert_many([{"i": 0, "items": [{"k": 1, "v": 5}, {"k": 2, "v": 6}]}, {"i": 1, "items": {"k": 3, "v": 7}}])
    return list(db.f_dotted.find({}, {"_id": 0, "items.k": 1}).sort("i", ASCENDING))


@case("aggregation", [{"count": [{"n": 6}], "top": [{"v": 9}, {"v": 7}]}])
def facet(db, ctx):
    return list(sales(db, "facet").aggregate([{"$facet": {
        "count": [{"$count": "n"}], "top": [{"$sort": {"v": -1}}, {"$limit": 2}, {"$project": {"_id": 0, "v": 1}}]}}]))


@case("aggregation", [{"n": 3}])
def count_stage(db, ctx):
    return list(sales(db, "count_stage").aggregate([{"$match": {"k": "y"}}, {"$count": "n"}]))


@case("aggregation", [{"k": "z", "v": 2, "q": 9, "total": 18, "flag": "k"}])
def add_fields(db, ctx):
    return list(sales(db, "add_fields").aggregate([
        {"$match": {"k": "z"}}, {"$addFields": {"total": {"$multiply": ["$v", "$q"]}, "flag": "k"}},
        {"$project": {"_id": 0, "i": 0}}]))


@case("aggregation", [{"_id": 0, "n": 2}, {"_id": 3, "n": 2}, {"_id": 6, "n": 1}, {"_id": "big", "n": 1}])
def bucket(db, ctx):
    return list(sales(db, "bucket").aggregate([{"$bucket": {
        "groupBy": "$v", "boundaries": [0, 3, 6, 9], "default": "big", "output": {"n": {"$sum": 1}}}}]))


@case("aggregation", [{"_id": "y", "count": 3}, {"_id": "x", "count": 2}, {"_id": "z", "count": 1}])
def sort_by_count(db, ctx):
    return list(sales(db, "sbc").aggregate([{"$sortByCount": "$k"}]))


# -- queries: distinct, counts, cursors --------------------------------------------------------------

@case("queries", {"all": ["x", "y", "z"], "filtered": [5, 7, 9]})
def distinct(db, ctx):
    c = sales(db, "distinct")
    return {"all": sorted(c.distinct("k")), "filtered": sorted(c.distinct("v", {"k": "y"}))}


@case("queries", {"filtered": 3, "skip_limit": 2, "all": 6, "estimated": 6})
def count_documents(db, ctx):
    c = sales(db, "counts")
    return {"filtered": c.count_documents({"v": {"$gte": 5}}), "skip_limit": c.count_documents({}, skip=2, limit=2),
            "all": c.count_documents({}), "estimated": c.estimated_document_count()}


@case("queries", {"find": list(range(250)), "aggregate": list(range(0, 250, 2)), "closed_early": 10})
def cursors_and_get_more(db, ctx):
    c = db.cursors
    c.insert_many([{"i": i} for i in range(250)])
    found = [d["i"] for d in c.find({}, batch_size=40).sort("i", ASCENDING)]
    agg = [d["i"] for d in c.aggregate([{"$match": {"i": {"$mod": [2, 0]}}}, {"$sort": {"i": 1}}], batchSize=30)]
    cur = c.find({}, batch_size=5).sort("i", ASCENDING)
    first = [next(cur)["i"] for _ in range(10)]
    cur.close()  # killCursors
    return {"find": found, "aggregate": agg, "closed_early": len(first)}


# -- sessions, transactions, change streams, authentication ------------------------------------------

@case("sessions", {"read_own_write": {"s": 1}, "count": 1})
def session_causal_consistency(db, ctx):
    client = db.client
    with client.start_session(causal_consistency=True) as s:
        db.sess.insert_one({"s": 1}, session=s)
        seen = db.sess.find_one({}, {"_id": 0}, session=s)
        n = db.sess.count_documents({}, session=s)
    return {"read_own_write": seen, "count": n}


@case("sessions", {"inside": [1, 2], "after": [1, 2]})
def transaction_commit(db, ctx):
    db.txn_commit.insert_one({"seed": True})  # a collection may not be created inside a transaction
    db.txn_commit.delete_many({})
    seen = {}

    def work(s):
        db.txn_commit.insert_many([{"t": 1}, {"t": 2}], session=s)
        seen["inside"] = sorted(d["t"] for d in db.txn_commit.find({}, session=s))

    with db.client.start_session() as s:
        s.with_transaction(work)
    return {"inside": seen.get("inside"), "after": sorted(d["t"] for d in db.txn_commit.find())}


@case("sessions", {"after_abort": 0})
def transaction_abort(db, ctx):
    db.txn_abort.insert_one({"seed": True})
    db.txn_abort.delete_many({})
    try:
        with db.client.start_session() as s:
            s.start_transaction()
            db.txn_abort.insert_one({"t": 1}, session=s)
            s.abort_transaction()
    except PyMongoError:
        if db.txn_abort.count_documents({}):
            raise Wrong("the transaction was refused, but its write was applied") from None
        raise
    return {"after_abort": db.txn_abort.count_documents({})}


@case("change streams", [("insert", {"n": 1}), ("update", {"n": 2}), ("delete", {"_id": 1})])
def change_stream(db, ctx):
    c = db.changes
    c.insert_one({"seed": True})
    c.delete_many({})
    seen = []
    with c.watch(max_await_time_ms=500) as stream:
        c.insert_one({"_id": 1, "n": 1})
        c.update_one({"_id": 1}, {"$set": {"n": 2}})
        c.delete_one({"_id": 1})
        deadline = time.monotonic() + 30
        while len(seen) < 3 and time.monotonic() < deadline:
            change = stream.try_next()
            if change is not None:
                op = change["operationType"]
                try:
                    seen.append((op, {"insert": lambda: {"n": change["fullDocument"]["n"]},
                                      "update": lambda: change["updateDescription"]["updatedFields"],
                                      "delete": lambda: change["documentKey"]}.get(op, lambda: change)()))
                except KeyError as exc:
                    raise Wrong(f"a {op} event without {exc}: {change}") from None
    return seen


@case("authentication", {"ok": 1.0, "user": "self"})
def scram_default_mechanism(db, ctx):
    return _login(ctx["uri"], None)


@case("authentication", {"ok": 1.0, "user": "self"})
def scram_sha_1(db, ctx):
    return _login(ctx["uri"], "SCRAM-SHA-1")


@case("authentication", {"ok": 1.0, "user": "self"})
def scram_sha_256(db, ctx):
    return _login(ctx["uri"], "SCRAM-SHA-256")


def _login(uri: str, mechanism: str | None) -> dict:
    """The namespace's own user and password, as a driver sends them with `mechanism` (None: its default)."""
    parts = urlsplit(uri)
    with pymongo.MongoClient(urlunsplit(parts._replace(query="")), authMechanism=mechanism or "DEFAULT",
                             serverSelectionTimeoutMS=10000) as c:
        db = c.get_default_database()
        n = db.auth_probe.count_documents({})
        status = db.command("connectionStatus")
        users = status.get("authInfo", {}).get("authenticatedUsers", [])
        return {"ok": 1.0 if n == 0 else n, "user": "self" if [u.get("user") for u in users] == [db.name] else users}


# -- what each flavor does (pinned: a change either way fails) ---------------------------------------

OUTCOMES = {
    "ferretdb": {
        "group_several_accumulators": "WRONG",
        "group_avg": "refused", "group_min": "refused", "group_max": "refused", "group_push": "refused",
        "group_add_to_set": "refused", "group_first_last": "refused",
        "group_all_accumulators_null_key": "refused", "project_expressions": "refused", "lookup": "refused",
        "facet": "refused", "bucket": "refused", "sort_by_count": "refused",
        "transaction_commit": "refused", "transaction_abort": "refused", "change_stream": "refused",
        "scram_default_mechanism": "refused", "scram_sha_1": "refused", "scram_sha_256": "refused",
        "find_and_modify": "refused", "find_regex_elemmatch_dotted": "refused", "index_partial_unique": "refused",
        "index_ttl": "refused", "add_fields": "refused", "update_positional_and_array_filters": "refused",
    },
    "mongo-java-server": {
        "transaction_commit": "refused", "transaction_abort": "refused", "group_count_accumulator": "refused",
        "index_partial_unique": "refused", "project_dotted_path_through_array": "refused",
        "change_stream": "refused",
    },
}

_results: dict[str, dict[str, dict]] = {}
_lock = threading.Lock()


def run_case(name: str, db, ctx) -> tuple[str, str]:
    group_, fn, expected = CASES[name]
    try:
        actual = fn(db, ctx)
    except Wrong as exc:
        return "WRONG", str(exc)
    except (PyMongoError, NotImplementedError) as exc:
        return "refused", f"{type(exc).__name__}: {str(exc).split(', full error')[0][:160]}"
    if _normal(actual) == _normal(expected):
        return "pass", ""
    return "WRONG", f"got {actual!r}, expected {expected!r}"


def _normal(value):
    """Compare as MongoDB's documents compare here: numbers by value (1 == 1.0), tuples as lists."""
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_normal(v) for v in value]
    if isinstance(value, bool):
        return ("bool", value)  # True == 1.0 in Python, not in BSON
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    return value


@pytest.fixture(scope="module", params=FLAVORS)
def flavor_db(request, tmp_path_factory):
    flavor = request.param
    h = start_cluster(tmp_path_factory, ["postgres", "mongo"], {"mongo": {"flavor": flavor}}, agent=False)
    h.cluster.namespaces.create("conform")
    uri = h.cluster.namespaces.env("conform")["MONGODB_URI"]
    client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=10000)
    yield flavor, client.get_default_database(), {"uri": uri}
    client.close()
    h.close()
    _write_results()


@pytest.mark.parametrize("name", list(CASES))
def test_case(flavor_db, name):
    flavor, db, ctx = flavor_db
    outcome, detail = run_case(name, db, ctx)
    with _lock:
        _results.setdefault(flavor, {})[name] = {"group": CASES[name][0], "outcome": outcome, "detail": detail}
    pinned = OUTCOMES[flavor].get(name, "pass")
    assert outcome == pinned, f"{flavor}: {name} is now {outcome} (pinned: {pinned}) {detail}"
    if outcome == "WRONG":
        pytest.xfail(f"{flavor} answers {name} wrongly without an error: {detail}")


def _write_results() -> None:
    path = os.environ.get(RESULTS_ENV)
    if not path:
        return
    with _lock:
        old = json.loads(open(path).read()) if os.path.exists(path) else {}
        old.update(_results)
        with open(path, "w") as out:
            json.dump(old, out, indent=1, sort_keys=True)


def test_the_default_flavor_never_answers_wrong():
    """Issue 19's rule: the default flavor computes every case right or refuses it."""
    from localdev.services.mongo import Mongo

    default = Mongo.options["flavor"].default
    assert default in OUTCOMES
    assert "WRONG" not in OUTCOMES[default].values()
    assert set(OUTCOMES[default]) <= set(CASES)


def test_normalisation_is_strict_where_it_matters():
    assert _normal({"a": 1}) == _normal({"a": 1.0})
    assert _normal([1, 2]) != _normal([2, 1])
    assert _normal({"a": 0}) != _normal({"a": 15})
    assert _normal(True) != _normal(1)

"""PostgreSQL's part of an export: seeds/postgres/dump.sql, written by pg_dump (plain SQL, COPY blocks, no
owners or privileges: the seed loader replays it as the importing namespace's own role).

Consistency: one transaction snapshot. A REPEATABLE READ transaction exports its snapshot; pg_dump dumps
with `--snapshot`, and the content checksum is taken in that same transaction, so the file and its
checksum are one committed state of the database, whatever clients write meanwhile.
"""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path

from localdev.errors import BadInput, LocalDevError
from localdev.exports import Digest, Summary

DUMP = "dump.sql"
USER_SCHEMAS = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'"


def dump(svc, ns, folder: Path | None) -> Summary:
    if folder is None:
        return _checksum(svc, ns)
    from localdev.services.postgres.install import PostgresNotFound, find_bin_dir

    try:
        pg_dump = find_bin_dir(svc.option("bin_dir")) / "pg_dump"
    except PostgresNotFound as exc:
        raise BadInput(f"exporting PostgreSQL data needs pg_dump on the agent's machine: {exc}") from None
    with svc.connect(ns.db_name) as conn:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        snapshot = conn.execute("SELECT pg_export_snapshot()").fetchone()[0]
        # the password never on a command line
        env = {**os.environ, **svc.admin_libpq_env(), "PGHOST": svc.host, "PGPORT": str(svc.port),
               "PGDATABASE": ns.db_name, "PGCONNECT_TIMEOUT": "10"}
        # A fixed psql \restrict key (pg_dump 15.14 and later write one, random by default): the same data
        # gives the same file. Nothing runs the file through psql, and the seed loader skips those lines.
        restrict = ["--restrict-key=localdev"] if _has_restrict_key(pg_dump) else []
        proc = subprocess.run([str(pg_dump), *restrict, f"--snapshot={snapshot}", "--format=plain", "--no-owner",
                               "--no-privileges", "--no-comments", "--no-publications", "--no-subscriptions",
                               "--no-security-labels", "--no-tablespaces", "--encoding=UTF8",
                               f"--file={folder / DUMP}"], env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise LocalDevError(f"pg_dump of {ns.db_name} failed: {proc.stderr.strip()}")
        summary = _summary(conn)
        conn.execute("ROLLBACK")
    return summary


@functools.cache
def _has_restrict_key(pg_dump: Path) -> bool:
    return "--restrict-key" in subprocess.run([str(pg_dump), "--help"], capture_output=True, text=True).stdout


def _checksum(svc, ns) -> Summary:
    with svc.connect(ns.db_name) as conn:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        summary = _summary(conn)
        conn.execute("ROLLBACK")
    return summary


def _summary(conn) -> Summary:
    """Tables' columns, constraints, indexes and sequences, and every row: each row is summed server-side as
    60 bits of the MD5 of its text, so nothing of the data crosses to this process."""
    from psycopg import sql

    digest = Digest()
    for (line,) in conn.execute(
            "SELECT format('column %s.%s %s %s %s', c.oid::regclass, a.attname, a.attnum, "
            "format_type(a.atttypid, a.atttypmod), a.attnotnull) FROM pg_attribute a "
            "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            f"WHERE c.relkind IN ('r', 'p', 'v', 'm') AND a.attnum > 0 AND NOT a.attisdropped AND {USER_SCHEMAS} "
            "UNION ALL SELECT format('constraint %s %s %s', c.conrelid::regclass, c.conname, "
            "pg_get_constraintdef(c.oid)) FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace "
            f"WHERE {USER_SCHEMAS} "
            "UNION ALL SELECT 'index ' || indexdef FROM pg_indexes WHERE schemaname NOT IN "
            "('pg_catalog', 'information_schema') "
            "UNION ALL SELECT format('sequence %s.%s %s', schemaname, sequencename, last_value) FROM pg_sequences"):
        digest.add(line)
    tables = conn.execute(
        "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        f"WHERE c.relkind = 'r' AND {USER_SCHEMAS} ORDER BY 1, 2").fetchall()
    rows = 0
    for schema, table in tables:
        count, total = conn.execute(sql.SQL(
            "SELECT count(*), coalesce(sum(('x' || substr(md5(t::text), 1, 15))::bit(60)::bigint), 0)::text "
            "FROM {}.{} t").format(sql.Identifier(schema), sql.Identifier(table))).fetchone()
        digest.add("rows", schema, table, str(count), total)
        rows += count
    return Summary(counts={"tables": len(tables), "rows": rows}, checksum=digest.hexdigest())


def version(svc) -> str:
    with svc.pool().connection() as conn:
        return "PostgreSQL " + conn.execute("SHOW server_version").fetchone()[0]

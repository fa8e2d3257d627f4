"""PostgreSQL fixtures: seeds/postgres/*.sql, validated by streaming each file once, applied in one transaction."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

from localdev.errors import BadInput
from localdev.services.postgres.sqlscript import statements


@dataclass
class SqlSeeds:
    files: list[Path]
    content_hash: str

    @property
    def template(self) -> str:
        return f"localdev_tpl_{self.content_hash}"

    @property
    def owner(self) -> str:
        return f"localdev_seed_{self.content_hash}"


def load(folder: Path) -> SqlSeeds:
    """*.sql files, in name order; each streamed once to check it is UTF-8 and every quote/comment/COPY closes."""
    files = sorted(folder.glob("*.sql"))
    others = [p for p in sorted(folder.iterdir()) if p.suffix != ".sql" and not p.name.startswith(".")]
    if others:
        raise BadInput(f"{others[0]}: postgres seeds are *.sql files")
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0")
        try:
            with open(path, encoding="utf-8") as fh:
                for st in statements(_hashing(fh, digest), str(path)):
                    for _ in st.copy_rows or ():
                        pass
        except UnicodeDecodeError as exc:
            raise BadInput(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return SqlSeeds(files, digest.hexdigest()[:20])


def apply_sql(conn, seeds: SqlSeeds, namespace: str) -> None:
    """Stream every statement of every file into `conn` (the caller owns the transaction)."""
    import psycopg

    from localdev.progress import report

    total = sum(p.stat().st_size for p in seeds.files) or 1
    done = 0
    for path in seeds.files:
        with open(path, "rb") as raw, io.TextIOWrapper(raw, encoding="utf-8") as fh:
            for n, st in enumerate(statements(fh, str(path))):
                if n % 200 == 0:  # bytes read so far (a text file's own tell() is opaque mid-read)
                    report(namespace, "postgres", f"postgres: {path.name}", min(1.0, (done + raw.tell()) / total))
                try:
                    if st.copy_rows is not None:
                        with conn.cursor().copy(st.sql) as copy:
                            for row in st.copy_rows:
                                copy.write(row)
                    else:
                        conn.execute(st.sql)
                except psycopg.Error as exc:
                    pos = exc.diag.statement_position
                    line = st.line + (st.sql[:int(pos) - 1].count("\n") if pos else 0)
                    raise BadInput(f"{path}:{line}: {exc.diag.message_primary or exc}") from None
        done += path.stat().st_size
    report(namespace, "postgres", "postgres: seeded", 1.0)


def commit(conn, seeds: SqlSeeds) -> None:
    """Commit a seed's transaction; deferred constraints are checked only now."""
    import psycopg

    try:
        conn.commit()
    except psycopg.Error as exc:
        where = seeds.files[-1].parent if seeds.files else "seeds/postgres"
        raise BadInput(f"{where}: at commit: {exc.diag.message_primary or exc}") from None
    finally:
        conn.close()


def _hashing(lines, digest):
    for line in lines:
        digest.update(line.encode())
        yield line

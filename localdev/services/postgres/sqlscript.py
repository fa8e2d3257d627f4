"""Split a SQL script into statements as it streams, with the line each starts on.

Handles '...' and "..." (doubled quotes), E'...' escapes, $tag$ bodies, -- and nested /* */ comments, and
psql-style `COPY ... FROM stdin;` blocks whose data runs to a line holding only `\\.` (pg_dump's format),
and skips the `\\restrict` / `\\unrestrict` lines pg_dump puts around its output.
Streaming keeps a 100k-row seed file out of memory; line numbers make errors `file:line: ...`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from localdev.errors import BadInput

COPY_STDIN = re.compile(r"^\s*copy\s.+\sfrom\s+stdin\b", re.IGNORECASE | re.DOTALL)
# Lines pg_dump writes around a dump for psql: `\restrict KEY` first and `\unrestrict KEY` last.
PSQL_RESTRICT = re.compile(r"^\\(un)?restrict [A-Za-z0-9]+\s*$")
DOLLAR_TAG = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")


@dataclass
class Statement:
    sql: str
    line: int  # 1-based line where it starts
    copy_rows: _CopyRows | None = None  # for COPY FROM stdin: the data lines (consume before the next one)


def statements(lines: Iterable[str], source: str = "<sql>") -> Iterator[Statement]:
    it = iter(lines)
    buf: list[str] = []
    start = None
    lineno = 0
    state: Any = None  # None | "'" | '"' | "e'" | ("$", tag) | ("/*", depth)
    for raw in it:
        lineno += 1
        if state is None and start is None and PSQL_RESTRICT.match(raw):
            continue  # pg_dump's (15.14 and later) guard against meta-commands in the dump: not SQL
        i, n = 0, len(raw)
        while i < n:
            ch = raw[i]
            if state is None:
                if start is None and not ch.isspace():
                    if raw.startswith("--", i):
                        break
                    start = lineno
                if raw.startswith("--", i):
                    buf.append(raw[i:].rstrip("\n") and "\n")
                    i = n
                    continue
                if raw.startswith("/*", i):
                    state, i = ("/*", 1), i + 2
                    buf.append("/*")
                    continue
                word_before = i > 0 and (raw[i - 1].isalnum() or raw[i - 1] == "_")
                if ch in ("e", "E") and i + 1 < n and raw[i + 1] == "'" and not word_before:
                    state = "e'"
                    buf.append(raw[i:i + 2])
                    i += 2
                    continue
                if ch in ("'", '"'):
                    state = ch
                elif ch == "$":
                    m = DOLLAR_TAG.match(raw, i)
                    if m and not word_before:
                        state = ("$", m.group(0))
                        buf.append(m.group(0))
                        i = m.end()
                        continue
                elif ch == ";":
                    buf.append(";")
                    sql = "".join(buf).strip()
                    buf, first = [], start
                    start = None
                    i += 1
                    if sql.strip(";").strip():
                        if COPY_STDIN.match(sql):
                            rows = _copy_rows(it, source, lineno)
                            yield Statement(sql, first or lineno, rows)
                            lineno = rows.last_line
                            break
                        yield Statement(sql, first or lineno)
                    continue
                buf.append(ch)
                i += 1
            elif state in ("'", '"'):
                j = raw.find(state, i)
                if j < 0:
                    buf.append(raw[i:])
                    i = n
                elif j + 1 < n and raw[j + 1] == state:
                    buf.append(raw[i:j + 2])
                    i = j + 2
                else:
                    buf.append(raw[i:j + 1])
                    i, state = j + 1, None
            elif state == "e'":
                if ch == "\\" and i + 1 < n:
                    buf.append(raw[i:i + 2])
                    i += 2
                    continue
                buf.append(ch)
                i += 1
                if ch == "'":
                    if i < n and raw[i] == "'":
                        buf.append("'")
                        i += 1
                    else:
                        state = None
            elif state[0] == "$":
                tag = state[1]
                j = raw.find(tag, i)
                if j < 0:
                    buf.append(raw[i:])
                    i = n
                else:
                    buf.append(raw[i:j + len(tag)])
                    i, state = j + len(tag), None
            else:  # block comment, nestable
                depth = state[1]
                if raw.startswith("/*", i):
                    state, i = ("/*", depth + 1), i + 2
                    buf.append("/*")
                elif raw.startswith("*/", i):
                    state = None if depth == 1 else ("/*", depth - 1)
                    buf.append("*/")
                    i += 2
                else:
                    buf.append(ch)
                    i += 1
    if state is not None:
        what = {"'": "a string ('...')", '"': 'a quoted identifier ("...")', "e'": "a string (E'...')"}.get(
            state if isinstance(state, str) else "", "a $$ body" if state[0] == "$" else "a /* comment */")
        raise BadInput(f"{source}:{start or lineno}: {what} that starts here is never closed")
    tail = "".join(buf).strip()
    if tail:
        yield Statement(tail, start or lineno)


class _CopyRows:
    """The data lines of a COPY FROM stdin block, up to the `\\.` line."""

    def __init__(self, it, source: str, lineno: int):
        self.it, self.source, self.last_line = it, source, lineno

    def __iter__(self):
        for raw in self.it:
            self.last_line += 1
            if raw.rstrip("\r\n") == "\\.":
                return
            yield raw
        raise BadInput(f"{self.source}:{self.last_line}: COPY data is not ended by a line holding only \\.")


def _copy_rows(it, source, lineno) -> _CopyRows:
    return _CopyRows(it, source, lineno)

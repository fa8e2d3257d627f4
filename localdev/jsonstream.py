"""Read a JSON file's top-level array (or an object's members) one element at a time, never the file whole.

A bounded text buffer is decoded with `json.JSONDecoder.raw_decode`; consumed text is dropped when more
is read, and a value that runs past the buffer's end is decoded again after a refill. Every position
has its line, so errors read `file:line: problem` (BadInput, exit 2).

Why not ijson: bench/jsonstream.py reads the 50k-item seed fixtures with this and with ijson's C backend
(yajl2_c); the figures are in bench/results/jsonstream.json. ijson parses about 2.5 times faster, but
parsing is a small fraction of a seed: writing the items to the service takes far longer
(bench/results/large_seeds.json). This reader needs less memory while it reads, about half ijson's
peak Python allocations and less RSS growth, though both stay within a few hundred KiB. Position decides
it: ijson gives neither an element's line (which the loaders' `file:line: item N: ...` messages name)
nor an error's place. yajl reports a truncated file as "premature EOF" and a bad value as "unallowed
token", each with a snippet of the text and an arrow, but no line, column or offset.

    >>> with JsonStream(path) as s:
    ...     for line, element in s.array():
    ...         ...
    ...     s.end()
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator
from pathlib import Path

from localdev.errors import BadInput

CHUNK = 1 << 16  # characters read at a time (more while one value is larger than the buffer)
_WHITESPACE = re.compile(r"[ \t\n\r]*")
# A number decoded up to here could go on in text not read yet ("12" of "123", "1" of "1.5e3").
_NUMBER_GOES_ON = re.compile(r"[0-9.eE+-]*\Z")
# A decode error this close to the buffer's end may only mean the value goes on past it ("tru", "-Infinit").
_NEAR_END = 16
_KEY = json.JSONDecoder()


class JsonStream:
    """A JSON file read forwards. `decoder` decodes each value (e.g. `parse_float=Decimal`, or an
    `object_hook`); exceptions of `hook_errors` that its hooks raise are reported as bad input."""

    def __init__(self, path, decoder: json.JSONDecoder | None = None, chunk_size: int = CHUNK,
                 hook_errors: tuple[type[BaseException], ...] = (ValueError, TypeError)):
        self.path = Path(path)
        self.decoder = decoder or _KEY
        self.chunk_size = max(1, chunk_size)
        self.hook_errors = hook_errors
        self._file = open(self.path, "rb")
        self._utf8 = codecs.getincrementaldecoder("utf-8")()
        self._bytes = 0
        self._buf = ""
        self._pos = 0
        self._eof = False
        self._line = 1  # the line of buffer position _counted
        self._counted = 0
        self._column0 = 0  # 0-based column of the buffer's first character

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> JsonStream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- reading -------------------------------------------------------------------------
    def _fill(self) -> bool:
        """Drop the consumed text and read more; False at the end of the file."""
        if self._eof:
            return False
        cut = self._pos
        if cut:
            self._line_at(cut)
            newline = self._buf.rfind("\n", 0, cut)
            self._column0 = cut - newline - 1 if newline >= 0 else self._column0 + cut
            self._buf, self._pos, self._counted = self._buf[cut:], 0, self._counted - cut
        # Read at least as much as is buffered, so a value of any size costs linear time.
        raw = self._file.read(max(self.chunk_size, len(self._buf)))
        pending = len(self._utf8.getstate()[0])
        try:
            text = self._utf8.decode(raw, final=not raw)
        except UnicodeDecodeError as exc:
            raise BadInput(f"{self.path}: not UTF-8 text ({exc.reason} at byte "
                           f"{self._bytes - pending + exc.start})") from None
        self._bytes += len(raw)
        self._eof = not raw
        self._buf += text
        return True

    def _line_at(self, pos: int) -> int:
        if pos >= self._counted:
            self._line += self._buf.count("\n", self._counted, pos)
            self._counted = pos
            return self._line
        return self._line - self._buf.count("\n", pos, self._counted)

    def _column_at(self, pos: int) -> int:
        newline = self._buf.rfind("\n", 0, pos)
        return pos - newline if newline >= 0 else self._column0 + pos + 1

    def peek(self) -> str:
        """The next character that is not white space, not consumed; '' at the end of the file."""
        while True:
            self._pos = _WHITESPACE.match(self._buf, self._pos).end()  # type: ignore[union-attr]  # \s* matches
            if self._pos < len(self._buf):
                return self._buf[self._pos]
            if not self._fill():
                return ""

    @property
    def line(self) -> int:
        """The line of the next character that is not white space."""
        self.peek()
        return self._line_at(self._pos)

    def error(self, problem: str, line: int | None = None) -> BadInput:
        return BadInput(f"{self.path}:{line or self.line}: {problem}")

    def _invalid(self, message: str, pos: int | None = None) -> BadInput:
        pos = self._pos if pos is None else pos
        return BadInput(f"{self.path}:{self._line_at(pos)}: invalid JSON: {message} (column {self._column_at(pos)})")

    def _expect(self, char: str, message: str) -> None:
        if self.peek() != char:
            raise self._invalid(message)
        self._pos += 1

    # -- values --------------------------------------------------------------------------
    def value(self, decoder: json.JSONDecoder | None = None):
        """Decode the next value whole (the caller knows it is small, or wants it whole)."""
        decoder = decoder or self.decoder
        if not self.peek():
            raise self._invalid("Expecting value")
        while True:
            try:
                value, end = decoder.raw_decode(self._buf, self._pos)
            except json.JSONDecodeError as exc:
                truncated = exc.pos >= len(self._buf) - _NEAR_END or exc.msg.startswith("Unterminated string")
                if truncated and self._fill():
                    continue
                raise self._invalid(exc.msg, exc.pos) from None
            except self.hook_errors as exc:  # a hook refused a complete object inside this value
                raise self.error(str(exc) or type(exc).__name__, self._line_at(self._pos)) from None
            if not _NUMBER_GOES_ON.match(self._buf, end) or not self._fill():
                self._pos = end
                return value

    def array(self, decoder: json.JSONDecoder | None = None) -> Iterator[tuple[int, object]]:
        """(line, element) for each element of the array that comes next."""
        self._expect("[", "Expecting '['")
        if self.peek() == "]":
            self._pos += 1
            return
        while True:
            line = self.line
            yield line, self.value(decoder)
            if self.peek() == "]":
                self._pos += 1
                return
            self._expect(",", "Expecting ',' delimiter")

    def members(self) -> Iterator[tuple[str, int]]:
        """(key, line) for each member of the object that comes next; the caller reads each value
        (value() or array()) before asking for the next key."""
        self._expect("{", "Expecting '{'")
        if self.peek() == "}":
            self._pos += 1
            return
        while True:
            if self.peek() != '"':
                raise self._invalid("Expecting property name enclosed in double quotes")
            line = self.line
            key = self.value(_KEY)
            self._expect(":", "Expecting ':' delimiter")
            yield key, line
            if self.peek() == "}":
                self._pos += 1
                return
            self._expect(",", "Expecting ',' delimiter")

    def end(self) -> None:
        """Nothing but white space may follow the top-level value."""
        if self.peek():
            raise self._invalid("Extra data")


def iter_array(path, decoder: json.JSONDecoder | None = None, not_array: str = "expected a JSON array",
               **options) -> Iterator[tuple[int, object]]:
    """(line, element) of each element of the file's top-level array."""
    with JsonStream(path, decoder, **options) as stream:
        if stream.peek() != "[":
            raise stream.error(not_array)
        yield from stream.array()
        stream.end()

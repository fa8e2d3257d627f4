"""HTTP/1.1 for the gateway, on asyncio streams: request heads, bodies, a bounded pool of back-end
connections that waits out a back end's restart, and response relaying without buffering bodies.

A proxy needs only framing (Content-Length, chunked, close-delimited): parsing a head is one
`readuntil` and a split, which keeps the gateway's added latency well below a millisecond
(bench/gateway.py measures it).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

MAX_HEAD = 64 * 1024
PIECE = 256 * 1024
HOP_BY_HOP = frozenset({"expect", "connection", "keep-alive", "proxy-connection", "te", "upgrade"})
REASONS = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found", 413: "Payload Too Large",
           431: "Request Header Fields Too Large", 500: "Internal Server Error", 501: "Not Implemented",
           503: "Service Unavailable"}


class BadRequest(Exception):
    pass


class Unavailable(Exception):
    """The back end did not take the request before the deadline (down, restarting)."""


@dataclass
class Head:
    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]  # as received (name case kept), in order
    lower: dict[str, str]  # lower-cased name -> value (repeated names joined by ',')

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    @property
    def query(self) -> str:
        return self.target.split("?", 1)[1] if "?" in self.target else ""

    @property
    def header_list(self) -> list[tuple[str, str]]:
        return [(n.lower(), v) for n, v in self.headers]

    def keep_alive(self) -> bool:
        conn = self.lower.get("connection", "").lower()
        return "close" not in conn and (self.version != "HTTP/1.0" or "keep-alive" in conn)


def parse_head(data: bytes) -> Head:
    lines = data[:-4].decode("latin-1").split("\r\n")
    try:
        method, target, version = lines[0].split(" ", 2)
    except ValueError:
        raise BadRequest("malformed request line") from None
    headers: list[tuple[str, str]] = []
    lower: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise BadRequest("malformed header line")
        value = value.strip()
        headers.append((name, value))
        key = name.lower()
        lower[key] = f"{lower[key]},{value}" if key in lower else value
    return Head(method, target, version, headers, lower)


async def read_head(reader: asyncio.StreamReader) -> Head | None:
    """The next request's head; None when the client closed between requests."""
    try:
        data = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial.strip():
            return None
        raise BadRequest("the connection closed inside a request head") from None
    except asyncio.LimitOverrunError:
        raise BadRequest("request head too large") from None
    return parse_head(data)


def body_length(head: Head) -> int | None:
    """Content-Length; None for a chunked body."""
    if "chunked" in head.lower.get("transfer-encoding", "").lower():
        return None
    try:
        length = int(head.lower.get("content-length", "0"))
    except ValueError:
        raise BadRequest("invalid Content-Length") from None
    if length < 0:
        raise BadRequest("invalid Content-Length")
    return length


async def read_exactly(reader: asyncio.StreamReader, length: int) -> bytes:
    try:
        return await reader.readexactly(length)
    except asyncio.IncompleteReadError:
        raise BadRequest("the client closed the connection inside the body") from None


async def pieces(reader: asyncio.StreamReader, length: int) -> AsyncIterator[bytes]:
    remaining = length
    while remaining:
        data = await reader.read(min(PIECE, remaining))
        if not data:
            raise BadRequest("the client closed the connection inside the body")
        remaining -= len(data)
        yield data


async def read_chunked(reader: asyncio.StreamReader, limit: int) -> bytes:
    """A chunked (Transfer-Encoding) request body, decoded, at most `limit` bytes."""
    out = bytearray()
    while True:
        line = await reader.readuntil(b"\r\n")
        size = int(line.split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                pass
            return bytes(out)
        if len(out) + size > limit:
            raise BadRequest("body too large")
        out += await read_exactly(reader, size)
        await reader.readexactly(2)


def serialize_head(first_line: str, headers: list[tuple[str, str]]) -> bytes:
    return (first_line + "\r\n" + "".join(f"{n}: {v}\r\n" for n, v in headers) + "\r\n").encode("latin-1")


def response_bytes(status: int, headers: list[tuple[str, str]], body: bytes, close: bool = False) -> bytes:
    extra = [("Connection", "close")] if close else []
    return serialize_head(f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}", headers + extra) + body


# -- back ends ------------------------------------------------------------------------------------------

Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class Backend:
    """One back end (DynamoDB Local, the emulator) on a private loopback port, with a bounded pool of
    keep-alive connections. A refused connection is retried until the caller's deadline: that is how a
    request waits out a restart."""

    def __init__(self, name: str, host: str, port: int, max_connections: int = 64, max_idle: int = 32):
        self.name, self.host, self.port = name, host, port
        self.slots = asyncio.Semaphore(max_connections)
        self.max_idle = max_idle
        self.idle: list[Conn] = []

    def take_idle(self) -> Conn | None:
        while self.idle:
            reader, writer = self.idle.pop()
            if not writer.is_closing() and not reader.at_eof() and not reader._buffer:  # type: ignore[attr-defined]
                return reader, writer
            writer.close()
        return None

    def give_back(self, conn: Conn) -> None:
        if len(self.idle) < self.max_idle and not conn[1].is_closing():
            self.idle.append(conn)
        else:
            conn[1].close()

    async def connect(self, deadline: float) -> Conn:
        delay = 0.02
        while True:
            try:
                reader, writer = await asyncio.open_connection(self.host, self.port, limit=MAX_HEAD)
                sock = writer.get_extra_info("socket")
                if sock is not None:
                    import socket

                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                return reader, writer
            except OSError:
                if time.monotonic() + delay > deadline:
                    raise Unavailable(f"{self.name} did not accept a connection") from None
                await asyncio.sleep(delay)
                delay = min(delay * 1.5, 0.25)

    def close(self) -> None:
        for _, writer in self.idle:
            writer.close()
        self.idle.clear()


@dataclass
class Response:
    status: int
    head: bytes  # the status line and headers, as the back end sent them
    lower: dict[str, str]


async def read_response_head(reader: asyncio.StreamReader) -> Response:
    data = await reader.readuntil(b"\r\n\r\n")
    first, _, rest = data.partition(b"\r\n")
    parts = first.split(b" ", 2)
    lower: dict[str, str] = {}
    for line in rest[:-4].decode("latin-1").split("\r\n"):
        name, sep, value = line.partition(":")
        if sep:
            lower[name.strip().lower()] = value.strip()
    return Response(int(parts[1]), data, lower)


async def relay_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, response: Response,
                     method: str) -> bool:
    """Copy the response body to the client as it comes; True if the back-end connection can be reused."""
    if method == "HEAD" or response.status in (204, 304) or response.status < 200:
        return "close" not in response.lower.get("connection", "").lower()
    if "chunked" in response.lower.get("transfer-encoding", "").lower():
        while True:
            line = await reader.readuntil(b"\r\n")
            writer.write(line)
            size = int(line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while True:
                    trailer = await reader.readuntil(b"\r\n")
                    writer.write(trailer)
                    if trailer == b"\r\n":
                        break
                break
            await _copy(reader, writer, size + 2)
        await writer.drain()
        return "close" not in response.lower.get("connection", "").lower()
    if "content-length" in response.lower:
        await _copy(reader, writer, int(response.lower["content-length"]))
        return "close" not in response.lower.get("connection", "").lower()
    while data := await reader.read(PIECE):  # delimited by the back end closing
        writer.write(data)
        await writer.drain()
    return False


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, length: int) -> None:
    remaining = length
    while remaining:
        data = await reader.read(min(PIECE, remaining))
        if not data:
            raise ConnectionResetError("the back end closed the connection inside a response")
        writer.write(data)
        remaining -= len(data)
        if writer.transport.get_write_buffer_size() > PIECE:
            await writer.drain()
    await writer.drain()

"""The AWS gateway: owns the AWS ports users see and forwards to DynamoDB Local and the emulator on
private loopback ports, after checking each request.

Per request: the SigV4 signature is checked with the namespace's own secret (an unknown key, a wrong
secret, an expired presigned URL get AWS's own error); S3 requests on a bucket another namespace owns, and
SQS/SNS requests naming another account's queue or topic, are refused (AccessDenied); then the request is
re-signed with the back end's secret and forwarded. A back end that is down (restarting) is waited for,
up to HOLD seconds, so its restart is invisible to clients.

Payload modes accepted for S3 uploads: a hex SHA-256 in x-amz-content-sha256 (the body is streamed on and
its hash checked before the last piece leaves, so a body that does not match never completes at the back
end), UNSIGNED-PAYLOAD, STREAMING-UNSIGNED-PAYLOAD-TRAILER (the body's integrity rests on its trailing
checksum, which the back end checks, as AWS does), and STREAMING-AWS4-HMAC-SHA256-PAYLOAD (every chunk's
signature checked, and re-signed for the back end). The signed-trailer variant is refused (NotImplemented).
SigV2 (presigned URLs and the `AWS key:sig` header) and browser-form uploads (post_form) are checked too.

Run by the cluster as ``python -m localdev.gateway --home LOCALDEV_HOME``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import parse_qsl, quote

from localdev.gateway import classify, post_form, sigv2, sigv4
from localdev.gateway.aws_errors import render
from localdev.gateway.http import (
    HOP_BY_HOP,
    PIECE,
    Backend,
    BadRequest,
    Head,
    Unavailable,
    body_length,
    pieces,
    read_chunked,
    read_exactly,
    read_head,
    read_response_head,
    relay_body,
    response_bytes,
    serialize_head,
)
from localdev.gateway.registry import Caller, Registry
from localdev.gateway.stats import Stats

log = logging.getLogger("localdev.gateway")
HOLD = 10.0  # seconds a request waits for a back end that is down
BUFFER_LIMIT = 1024 * 1024  # bodies up to this are read whole (replayable); larger ones are streamed
MAX_BUFFERED = 32 * 1024 * 1024  # a body that must be hashed before it is forwarded (JSON, query APIs)
ACCESS_KEY_RE = re.compile(r"^[0-9]{12}$")  # a namespace's key; anything else never reaches a back end
SIGNATURE_RE = re.compile(r"Signature=[0-9a-fA-F]*")
QUERY_SIGNATURE_RE = re.compile(r"(^|&)X-Amz-Signature=[^&]*")
V2_SIGNATURE_RE = re.compile(r"(^|&)Signature=[^&]*")
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


@dataclass
class Endpoint:
    """One port users see, in front of one back end."""

    name: str  # the service: "dynamodb" | "aws"
    backend: Backend
    backend_secret: str
    default_api: str  # what an unsigned request is refused as


class Refused(Exception):
    def __init__(self, kind: str, message: str, extra: dict[str, str] | None = None):
        super().__init__(message)
        self.kind, self.extra = kind, extra


@dataclass
class Exchange:
    """What is known of one request as it is checked."""

    head: Head
    endpoint: Endpoint
    api: str
    protocol: str
    caller: Caller | None = None
    continue_sent: bool = False
    body_read: bool = False


class Gateway:
    def __init__(self, registry: Registry, stats: Stats, virtual_bases: tuple[str, ...], hold: float = HOLD):
        self.registry = registry
        self.stats = stats
        self.virtual_bases = tuple(sorted(virtual_bases, key=len, reverse=True))
        self.hold = hold

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, endpoint: Endpoint) -> None:
        try:
            while True:
                head = await read_head(reader)
                if head is None:
                    break
                if not await self.one(head, reader, writer, endpoint):
                    break
        except BadRequest as exc:
            status, headers, body = render(endpoint.default_api, "rest-xml" if endpoint.default_api == "s3" else "json",
                                           "bad_request", str(exc))
            writer.write(response_bytes(status, headers, body, close=True))
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except Exception:  # never let one request take the listener down
            log.exception("unexpected failure serving a request")
        finally:
            writer.close()

    # -- one request -------------------------------------------------------------------------------------
    async def one(self, head: Head, reader, writer, endpoint: Endpoint) -> bool:
        """Serve one request; True if the client connection stays open."""
        api = classify.api_of_unsigned(head.lower, head.query, endpoint.default_api)
        ex = Exchange(head, endpoint, api, classify.protocol_of(api, head.lower, head.query))
        try:
            return await self._checked(ex, reader, writer)
        except Refused as refusal:
            self.stats.count(ex.caller.namespace if ex.caller else None, denied=True)
            log.info("refused %s %s %s for %s: %s", ex.api, head.method, head.path,
                     f"namespace {ex.caller.namespace}" if ex.caller else "an unknown caller", refusal)
            status, headers, body = render(ex.api, ex.protocol, refusal.kind, str(refusal), refusal.extra,
                                           head=head.method == "HEAD")
            # An unread body cannot be skipped safely: AWS, too, closes the connection then.
            length = body_length(head)
            close = not ex.body_read and (length is None or length > 0) or not head.keep_alive()
            writer.write(response_bytes(status, headers, body, close=close))
            await writer.drain()
            return not close
        except Unavailable as exc:
            self.stats.count(ex.caller.namespace if ex.caller else None, error=True)
            log.warning("%s: %s within %.0fs: answering 503", endpoint.name, exc, self.hold)
            status, headers, body = render(ex.api, ex.protocol, "unavailable",
                                           f"{endpoint.name} is restarting; try again", head=head.method == "HEAD")
            writer.write(response_bytes(status, headers, body, close=True))
            await writer.drain()
            return False

    async def _checked(self, ex: Exchange, reader, writer) -> bool:
        head = ex.head
        deadline = time.monotonic() + self.hold
        query_pairs = parse_qsl(head.query, keep_blank_values=True)
        if ex.endpoint.name == "aws" and head.method == "POST" and "authorization" not in head.lower \
                and not ({"X-Amz-Signature", "Signature"} & {n for n, _ in query_pairs}):
            boundary = post_form.boundary_of(head.lower.get("content-type", ""))
            if boundary is not None:
                return await self._checked_form(ex, boundary, reader, writer, deadline)
        if ex.endpoint.name == "aws":
            v2 = (sigv2.parse_header(head.lower["authorization"]) if "authorization" in head.lower
                  else sigv2.parse(query_pairs))
            if v2 is not None:
                return await self._checked_v2(ex, v2, reader, writer, deadline)
        try:
            signed = sigv4.parse(head.lower, query_pairs)
        except sigv4.AuthError as exc:
            raise Refused(exc.kind, str(exc)) from None
        if signed is None:
            if ex.endpoint.name == "aws" and head.method in ("GET", "HEAD") and head.path in classify.OPEN_PATHS:
                return await self._forward(ex, reader, writer, head.target, self._headers(head, None), b"", deadline)
            raise Refused("missing", "Access Denied" if ex.api == "s3" else "Request is missing Authentication Token")
        ex.api = signed.service
        ex.protocol = classify.protocol_of(ex.api, head.lower, head.query)
        key_extra = {"AWSAccessKeyId": signed.key} if ex.api == "s3" else None
        ex.caller = await self.registry.caller(signed.key) if ACCESS_KEY_RE.fullmatch(signed.key) else None
        if ex.caller is None:
            raise Refused("unknown_key", "The AWS Access Key Id you provided does not exist in our records."
                          if ex.api == "s3" else "The security token included in the request is invalid.", key_extra)
        caller = ex.caller
        try:
            sigv4.check_time(signed, datetime.now(UTC))
        except sigv4.AuthError as exc:
            raise Refused(exc.kind, str(exc)) from None

        declared = (dict(query_pairs).get("X-Amz-Content-Sha256", sigv4.UNSIGNED) if signed.presigned
                    else head.lower.get("x-amz-content-sha256"))
        length = body_length(head)
        streamed = declared is not None and (declared.startswith("STREAMING-") or (length or 0) > BUFFER_LIMIT)
        body = b""
        if declared == sigv4.STREAMING_SIGNED_TRAILER or (declared or "").startswith("STREAMING-AWS4-ECDSA"):
            raise Refused("not_implemented", f"x-amz-content-sha256 {declared} is not supported here: use "
                                             f"{sigv4.STREAMING_SIGNED} or a SHA-256 of the body")
        if declared is not None and declared != sigv4.UNSIGNED and not declared.startswith("STREAMING-") \
                and not _is_sha256(declared):
            raise Refused("bad_request", "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, a STREAMING- mode or the "
                                         "body's SHA-256")
        # With the payload's hash declared, the signature is checked before the body is read (and before a
        # client that asked is told to send it); otherwise the body's own hash is part of what is signed.
        sts = self._verify(ex, signed, declared) if declared is not None else None
        if not streamed:
            await self._continue(ex, writer)
            if length is None:
                body = await read_chunked(reader, MAX_BUFFERED)
            elif length > MAX_BUFFERED:
                raise Refused("too_large", f"a body of {length} bytes is larger than the {MAX_BUFFERED} this "
                                           "request type may have")
            else:
                body = await read_exactly(reader, length)
            ex.body_read = True
            if declared is None:
                sts = self._verify(ex, signed, hashlib.sha256(body).hexdigest())
            elif _is_sha256(declared) and hashlib.sha256(body).hexdigest() != declared.lower():
                raise Refused("content_sha256", "The provided 'x-amz-content-sha256' header does not match what "
                                                "was computed.")
        assert sts is not None

        target = classify.classify(ex.api, head.method, head.path, head.query, head.lower, body, self.virtual_bases)
        await self._authorize(target, caller)
        backend_signature = sigv4.sign(ex.endpoint.backend_secret, signed, sts)
        if signed.presigned:
            query = QUERY_SIGNATURE_RE.sub(lambda m: f"{m.group(1)}X-Amz-Signature={backend_signature}", head.query)
            request_target, auth = f"{head.path}?{query}", None
        else:
            request_target = head.target
            auth = SIGNATURE_RE.sub(f"Signature={backend_signature}", head.lower["authorization"], count=1)
        headers = self._headers(head, auth)
        if not streamed:
            if head.lower.get("transfer-encoding"):
                headers = [(n, v) for n, v in headers if n.lower() != "transfer-encoding"]
                headers.append(("Content-Length", str(len(body))))
            return await self._forward(ex, reader, writer, request_target, headers, body, deadline, target)
        await self._continue(ex, writer)
        assert declared is not None  # (streamed only when declared)
        if declared == sigv4.STREAMING_SIGNED:
            source = _signed_chunks(reader, signed, caller.secret, ex.endpoint.backend_secret, backend_signature)
        elif _is_sha256(declared):
            source = _hash_checked(pieces(reader, length or 0), declared)
        else:
            source = pieces(reader, length or 0)
        return await self._forward(ex, reader, writer, request_target, headers, source, deadline, target)

    async def _checked_v2(self, ex: Exchange, presigned: sigv2.Presigned, reader, writer, deadline: float) -> bool:
        """SigV2, presigned URL or Authorization header (expires 0): checked with the namespace's secret,
        re-signed with the back end's. Its body is not part of what is signed, so it streams on."""
        head = ex.head
        header_form = "authorization" in head.lower
        ex.api, ex.protocol = "s3", "rest-xml"
        ex.caller = await self.registry.caller(presigned.key) if ACCESS_KEY_RE.fullmatch(presigned.key) else None
        if ex.caller is None:
            raise Refused("unknown_key", "The AWS Access Key Id you provided does not exist in our records.",
                          {"AWSAccessKeyId": presigned.key})
        if header_form:
            when = sigv2.request_time(head.lower)
            if when is None:
                raise Refused("denied", "AWS authentication requires a valid Date or x-amz-date header")
            if abs(time.time() - when) > sigv4.MAX_SKEW:
                raise Refused("skewed", "The difference between the request time and the current time is too "
                                        "large.")
            date_lines: list[int | str] = list(sigv2.header_dates(head.lower))
        else:
            if time.time() > presigned.expires:
                raise Refused("expired", "Request has expired", {"Expires": str(presigned.expires)})
            date_lines = [presigned.expires]
        bucket = classify.virtual_bucket(head.lower.get("host", ""), self.virtual_bases)
        texts = [sigv2.string_to_sign(head.method, head.path, head.query, head.lower, line, bucket)
                 for line in date_lines]
        sts = next((t for t in texts if sigv4.matches(sigv2.sign(ex.caller.secret, t), presigned.signature)), None)
        if sts is None:
            raise Refused("signature", "The request signature we calculated does not match the signature you "
                                       "provided. Check your key and signing method.",
                          {"AWSAccessKeyId": presigned.key, "StringToSign": texts[0],
                           "SignatureProvided": presigned.signature})
        target = classify.classify("s3", head.method, head.path, head.query, head.lower, b"", self.virtual_bases)
        await self._authorize(target, ex.caller)
        resigned = sigv2.sign(ex.endpoint.backend_secret, sts)
        if header_form:
            request_target = head.target
            headers = self._headers(head, f"AWS {presigned.key}:{resigned}")
        else:
            query = V2_SIGNATURE_RE.sub(lambda m: f"{m.group(1)}Signature={quote(resigned, safe='')}", head.query)
            request_target, headers = f"{head.path}?{query}", self._headers(head, None)
        await self._continue(ex, writer)
        length = body_length(head)
        if length is None:
            raise Refused("not_implemented", "a SigV2-signed upload needs a Content-Length")
        body = await read_exactly(reader, length) if length <= BUFFER_LIMIT else pieces(reader, length)
        ex.body_read = True
        return await self._forward(ex, reader, writer, request_target, headers, body, deadline, target)

    async def _checked_form(self, ex: Exchange, boundary: bytes, reader, writer, deadline: float) -> bool:
        """A browser-form upload: the fields before the file read (bounded), the policy's signature checked
        with the namespace's secret and its conditions as AWS checks them, the bucket's ownership enforced;
        then the form goes on with the policy re-signed with the back end's secret, the file streamed (its
        size checked against content-length-range before its last piece leaves)."""
        head = ex.head
        ex.api, ex.protocol = "s3", "rest-xml"
        target = classify.classify("s3", head.method, head.path, head.query, head.lower, b"", self.virtual_bases)
        length = body_length(head)
        if length is None:
            raise Refused("missing_length", "You must provide the Content-Length HTTP header.")
        await self._continue(ex, writer)
        prefix = b""
        form = None
        while form is None:
            if len(prefix) >= min(length, post_form.MAX_PREFIX):
                raise Refused("invalid_argument", "POST requires exactly one file upload per request.")
            prefix += await reader.read(min(PIECE, length - len(prefix)))
            try:
                form = post_form.parse_prefix(prefix, boundary)
            except post_form.FormError as exc:
                raise Refused(exc.kind, str(exc)) from None
        key = post_form.access_key(form)
        ex.caller = await self.registry.caller(key) if key and ACCESS_KEY_RE.fullmatch(key) else None
        if ex.caller is None and key is not None:
            raise Refused("unknown_key", "The AWS Access Key Id you provided does not exist in our records.",
                          {"AWSAccessKeyId": key})
        if target.operation != "bucket" or not target.bucket or ex.caller is None:
            raise Refused("denied", "Access Denied")  # anonymous: no public-write grants here (docs/aws.md)
        caller = ex.caller
        try:
            checked = post_form.check(form, target.bucket, datetime.now(UTC), lambda _: caller.secret)
        except post_form.FormError as exc:
            raise Refused(exc.kind, str(exc)) from None
        await self._authorize(target, caller)
        resigned = post_form.resign(prefix, form, checked, ex.endpoint.backend_secret)
        total = length + len(resigned) - len(prefix)
        headers = [(n, str(total) if n.lower() == "content-length" else v) for n, v in self._headers(head, None)]
        source = _form_body(resigned, form.content_start, pieces(reader, length - len(prefix)), boundary, checked,
                            ex)
        return await self._forward(ex, reader, writer, head.target, headers, source, deadline, target)

    def _verify(self, ex: Exchange, signed: sigv4.Signed, payload_hash: str) -> str:
        head = ex.head
        assert ex.caller is not None
        try:
            canonical = sigv4.canonical_request(head.method, head.path, head.query, head.header_list, signed,
                                                payload_hash)
        except sigv4.AuthError as exc:
            raise Refused(exc.kind, str(exc)) from None
        sts = sigv4.string_to_sign(signed, canonical)
        if not sigv4.matches(sigv4.sign(ex.caller.secret, signed, sts), signed.signature):
            extra = ({"AWSAccessKeyId": signed.key, "StringToSign": sts, "SignatureProvided": signed.signature,
                      "CanonicalRequest": canonical} if ex.api == "s3" else None)
            raise Refused("signature", "The request signature we calculated does not match the signature you "
                                       "provided. Check your key and signing method.", extra)
        return sts

    async def _continue(self, ex: Exchange, writer) -> None:
        if not ex.continue_sent and "100-continue" in ex.head.lower.get("expect", "").lower():
            writer.write(CONTINUE)
            ex.continue_sent = True

    async def _authorize(self, target: classify.Target, caller: Caller) -> None:
        if target.api == "s3":
            names = [target.copy_source_bucket]
            if target.operation != "CreateBucket":  # a taken name is the back end's to refuse (409), as on AWS
                names.append(target.bucket)
            for bucket in names:
                if bucket:
                    owner = await self.registry.owner(bucket)
                    if owner is not None and owner != caller.namespace:
                        raise Refused("denied", "Access Denied")
        else:
            other = classify.foreign(target, caller.account)
            if other is not None:
                action = f"{target.api}:{target.operation or 'request'}".lower()
                raise Refused("denied", f"User: arn:aws:iam::{caller.account}:root is not authorized to perform: "
                                        f"{action} on a resource of account {other}")

    @staticmethod
    def _headers(head: Head, auth: str | None) -> list[tuple[str, str]]:
        out = []
        for name, value in head.headers:
            low = name.lower()
            if low in HOP_BY_HOP:
                continue
            out.append((name, auth if low == "authorization" and auth is not None else value))
        return out

    # -- forwarding ------------------------------------------------------------------------------------
    async def _forward(self, ex: Exchange, reader, writer, request_target: str, headers, body,
                       deadline: float, target: classify.Target | None = None) -> bool:
        backend = ex.endpoint.backend
        head_bytes = serialize_head(f"{ex.head.method} {request_target} HTTP/1.1", headers)
        async with backend.slots:
            if isinstance(body, bytes):
                conn, response = await self._send_replayable(backend, head_bytes + body, deadline)
            else:
                conn = await backend.connect(deadline)
                try:
                    conn[1].write(head_bytes)
                    async for piece in body:
                        conn[1].write(piece)
                        await conn[1].drain()
                    response = await read_response_head(conn[0])
                except (OSError, asyncio.IncompleteReadError) as exc:
                    conn[1].close()
                    raise Unavailable(f"{backend.name} failed during the upload ({exc})") from None
                except BaseException:
                    conn[1].close()  # a body that failed its check never completes at the back end
                    raise
            try:
                if target is not None and ex.caller is not None:
                    await self._after(target, ex.caller, response.status)
                self.stats.count(ex.caller.namespace if ex.caller else None, error=response.status >= 400)
                writer.write(response.head)
                reusable = await relay_body(conn[0], writer, response, ex.head.method)
            except BaseException:
                conn[1].close()
                raise
            if reusable:
                backend.give_back(conn)
            else:
                conn[1].close()
        # A body the back end delimited by closing reached the client the same way: that connection ends too.
        delimited = ("content-length" in response.lower or "chunked" in response.lower.get("transfer-encoding", "")
                     or ex.head.method == "HEAD" or response.status in (204, 304))
        return ex.head.keep_alive() and delimited

    async def _send_replayable(self, backend: Backend, data: bytes, deadline: float):
        """Send a request whose bytes we hold; a connection that dies before answering (a back end killed,
        a pooled connection gone stale) is replaced and the request sent again, until the deadline."""
        delay = 0.02
        while True:
            conn = backend.take_idle() or await backend.connect(deadline)
            try:
                conn[1].write(data)
                await conn[1].drain()
                return conn, await read_response_head(conn[0])
            except (OSError, asyncio.IncompleteReadError):
                conn[1].close()
                if time.monotonic() + delay > deadline:
                    raise Unavailable(f"{backend.name} did not answer") from None
                await asyncio.sleep(delay)
                delay = min(delay * 1.5, 0.25)

    async def _after(self, target: classify.Target, caller: Caller, status: int) -> None:
        """A bucket the back end created or deleted changes hands in the registry."""
        if target.api != "s3" or not target.bucket:
            return
        if target.operation == "CreateBucket" and status == 200:
            await self.registry.record(target.bucket, caller.namespace)
        elif target.operation == "DeleteBucket" and status == 204:
            await self.registry.forget(target.bucket, caller.namespace)


def _is_sha256(value: str) -> bool:
    return len(value) == 64 and all(c in "0123456789abcdefABCDEF" for c in value)


async def _hash_checked(source, expected: str):
    """Pass the pieces on, holding the last back until the whole body's hash is known to match."""
    digest = hashlib.sha256()
    held = None
    async for piece in source:
        digest.update(piece)
        if held is not None:
            yield held
        held = piece
    if digest.hexdigest() != expected.lower():
        raise Refused("content_sha256", "The provided 'x-amz-content-sha256' header does not match what was computed.")
    if held is not None:
        yield held


async def _signed_chunks(reader, signed: sigv4.Signed, secret: str, backend_secret: str, backend_seed: str):
    """aws-chunked with a signature per chunk: each checked before its data goes on, re-signed for the back end
    (a signature has the same length, so the body's length does not change)."""
    previous, previous_backend = signed.signature, backend_seed
    while True:
        line = await reader.readuntil(b"\r\n")
        size_text, _, ext = line[:-2].decode("latin-1").partition(";")
        name, _, given = ext.partition("=")
        try:
            size = int(size_text, 16)
        except ValueError:
            raise Refused("bad_request", "malformed aws-chunked body") from None
        if name != "chunk-signature":
            raise Refused("signature", "an aws-chunked chunk carries no chunk-signature")
        data = await read_exactly(reader, size + 2)
        chunk_hash = hashlib.sha256(data[:-2]).hexdigest()
        text = sigv4.chunk_string_to_sign(signed, previous, chunk_hash)
        expected = sigv4.sign(secret, signed, text)
        if not sigv4.matches(expected, given):
            raise Refused("signature", "The request signature we calculated does not match the signature you "
                                       "provided. Check your key and signing method.")
        previous = given
        previous_backend = sigv4.sign(backend_secret, signed, sigv4.chunk_string_to_sign(signed, previous_backend,
                                                                                         chunk_hash))
        yield f"{size_text};chunk-signature={previous_backend}\r\n".encode() + data
        if size == 0:
            return


async def _form_body(prefix: bytes, content_start: int, rest, boundary: bytes, checked: post_form.Checked,
                     ex: Exchange):
    """The form's bytes, with the file's size (up to the next delimiter) checked against the policy's
    content-length-range before the last piece goes on, so a file out of range never completes."""
    marker = b"\r\n--" + boundary
    seen = prefix[content_start:]
    window, offset, size = seen[-(len(marker) - 1):], len(seen), None
    found = seen.find(marker)
    if found >= 0:
        size = found
    held = prefix
    async for piece in rest:
        if size is None:
            found = (window + piece).find(marker)
            if found >= 0:
                size = offset - len(window) + found
            window = (window + piece)[-(len(marker) - 1):]
        offset += len(piece)
        yield held
        held = piece
    ex.body_read = True
    if size is None:
        raise Refused("bad_request", "the form's file part has no closing delimiter")
    if size < checked.min_size:
        raise Refused("too_small", "Your proposed upload is smaller than the minimum allowed size")
    if checked.max_size is not None and size > checked.max_size:
        raise Refused("too_large", "Your proposed upload exceeds the maximum allowed size")
    yield held

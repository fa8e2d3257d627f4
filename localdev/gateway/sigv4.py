"""AWS Signature Version 4, as the gateway verifies it and re-signs for the back ends. Pure: no I/O.

What is signed is the same for the client and for the back end (method, path, query, the signed headers,
the payload's hash): only the secret differs. So the gateway builds the string to sign once, checks the
client's signature against the namespace's secret, and re-signs with the back end's secret by one more
HMAC over the same string (and, for `aws-chunked` uploads, one more per chunk).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import lru_cache
from urllib.parse import quote, unquote

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED = "UNSIGNED-PAYLOAD"
STREAMING_SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
MAX_SKEW = 15 * 60  # seconds AWS tolerates between X-Amz-Date and its clock
MAX_PRESIGN_EXPIRES = 7 * 86400


class AuthError(Exception):
    """A request whose signature cannot be checked. `kind` picks AWS's error for it (see aws_errors)."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Signed:
    """What a request says about its signature."""

    key: str
    date: str  # YYYYMMDD, the credential scope's
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str
    amz_date: str  # YYYYMMDDTHHMMSSZ
    presigned: bool
    expires: int | None = None  # presigned only

    @property
    def scope(self) -> str:
        return f"{self.date}/{self.region}/{self.service}/aws4_request"


def _credential(text: str) -> tuple[str, str, str, str]:
    parts = text.split("/")
    if len(parts) != 5 or parts[4] != "aws4_request" or not all(parts[:4]):
        raise AuthError("malformed", f"the credential {text.split('/')[0]}/... is not KEY/DATE/REGION/SERVICE/"
                                     "aws4_request")
    return parts[0], parts[1], parts[2], parts[3]


def parse(headers: dict[str, str], query: list[tuple[str, str]]) -> Signed | None:
    """The signature a request carries (Authorization header, or a presigned query string); None if unsigned.

    `headers` is lower-cased name -> value; `query` the decoded (name, value) pairs."""
    auth = headers.get("authorization")
    if auth is not None:
        algorithm, _, rest = auth.strip().partition(" ")
        if algorithm != ALGORITHM:
            raise AuthError("algorithm", "only AWS4-HMAC-SHA256 signatures are accepted")
        fields = {}
        for item in rest.split(","):
            name, _, value = item.strip().partition("=")
            fields[name] = value
        if not {"Credential", "SignedHeaders", "Signature"} <= set(fields):
            raise AuthError("malformed", "the Authorization header lacks Credential, SignedHeaders or Signature")
        amz_date = headers.get("x-amz-date") or _from_http_date(headers.get("date", ""))
        key, date, region, service = _credential(fields["Credential"])
        return Signed(key, date, region, service, tuple(fields["SignedHeaders"].split(";")),
                      fields["Signature"], amz_date, presigned=False)
    params = dict(query)
    if "X-Amz-Signature" not in params and "X-Amz-Credential" not in params:
        return None
    if params.get("X-Amz-Algorithm") != ALGORITHM:
        raise AuthError("algorithm", "only AWS4-HMAC-SHA256 signatures are accepted")
    try:
        expires = int(params["X-Amz-Expires"])
        key, date, region, service = _credential(params["X-Amz-Credential"])
        signed = Signed(key, date, region, service, tuple(params["X-Amz-SignedHeaders"].split(";")),
                        params["X-Amz-Signature"], params["X-Amz-Date"], presigned=True, expires=expires)
    except (KeyError, ValueError):
        raise AuthError("malformed", "a presigned URL needs X-Amz-Credential, X-Amz-Date, X-Amz-Expires, "
                                     "X-Amz-SignedHeaders and X-Amz-Signature") from None
    if expires < 0:
        raise AuthError("query_parameters", "X-Amz-Expires must be non-negative")
    if expires > MAX_PRESIGN_EXPIRES:
        raise AuthError("query_parameters", "X-Amz-Expires must be less than a week (in seconds); that is, the "
                                            "given X-Amz-Expires must be less than 604800 seconds")
    return signed


def _from_http_date(text: str) -> str:
    """SigV4 takes the request's time from `Date` when there is no X-Amz-Date (botocore sends only `Date`
    when a caller set one): the string to sign still carries it as YYYYMMDDTHHMMSSZ."""
    if not text:
        return ""
    try:
        return parsedate_to_datetime(text).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    except (TypeError, ValueError):
        raise AuthError("malformed", f"Date {text!r} is not an HTTP date") from None


def parse_amz_date(text: str) -> datetime:
    try:
        return datetime.strptime(text, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise AuthError("malformed", f"X-Amz-Date {text!r} is not YYYYMMDDTHHMMSSZ") from None


def check_time(signed: Signed, now: datetime) -> None:
    """A header signature within AWS's 15 minutes; a presigned URL not past its expiry."""
    when = parse_amz_date(signed.amz_date)
    if signed.presigned:
        if (now - when).total_seconds() > (signed.expires or 0):
            raise AuthError("expired", "Request has expired")
        if (when - now).total_seconds() > MAX_SKEW:
            raise AuthError("skewed", "The difference between the request time and the server's time is too large.")
    elif abs((now - when).total_seconds()) > MAX_SKEW:
        raise AuthError("skewed", "The difference between the request time and the current time is too large.")


# -- canonical request ---------------------------------------------------------------------------

def _segment(text: str) -> str:
    return quote(unquote(text), safe="~")


def canonical_path(raw_path: str, service: str) -> str:
    """S3 signs the path encoded once, as sent; every other service normalises it and encodes it twice."""
    if service == "s3":
        return "/".join(_segment(s) for s in raw_path.split("/")) or "/"
    out: list[str] = []
    for seg in raw_path.split("/")[1:]:
        if seg == "..":
            if out:
                out.pop()
        elif seg not in (".", ""):
            out.append(seg)
    path = "/" + "/".join(quote(_segment(s), safe="~") for s in out)
    if raw_path.endswith("/") and path != "/":
        path += "/"
    return path


def canonical_query(raw_query: str, drop_signature: bool = False) -> str:
    pairs = []
    for item in raw_query.split("&") if raw_query else ():
        if not item:
            continue
        name, _, value = item.partition("=")
        name, value = quote(unquote(name), safe="-_.~"), quote(unquote(value), safe="-_.~")
        if drop_signature and name == "X-Amz-Signature":
            continue
        pairs.append((name, value))
    return "&".join(f"{n}={v}" for n, v in sorted(pairs))


def canonical_headers(header_list: list[tuple[str, str]], signed: tuple[str, ...]) -> str:
    """`header_list`: (lower-cased name, value) as received; repeated names joined by ','."""
    values: dict[str, list[str]] = {}
    wanted = set(signed)
    for name, value in header_list:
        if name in wanted:
            values.setdefault(name, []).append(" ".join(value.split()))
    missing = [h for h in signed if h not in values]
    if missing:
        raise AuthError("malformed", f"signed header {missing[0]!r} is not in the request")
    return "".join(f"{name}:{','.join(values[name])}\n" for name in signed)


def canonical_request(method: str, raw_path: str, raw_query: str, header_list: list[tuple[str, str]],
                      signed: Signed, payload_hash: str) -> str:
    return "\n".join((method, canonical_path(raw_path, signed.service),
                      canonical_query(raw_query, drop_signature=signed.presigned),
                      canonical_headers(header_list, signed.signed_headers), ";".join(signed.signed_headers),
                      payload_hash))


def string_to_sign(signed: Signed, canonical: str) -> str:
    """`canonical` holds the request's bytes as latin-1 characters (http.parse_head decodes the head so):
    AWS hashes the header values as they came on the wire, which for a non-ASCII value botocore sends as
    UTF-8, so encoding back to latin-1 gives exactly those bytes."""
    return "\n".join((ALGORITHM, signed.amz_date, signed.scope,
                      hashlib.sha256(canonical.encode("latin-1")).hexdigest()))


@lru_cache(maxsize=4096)
def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = ("AWS4" + secret).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def sign(secret: str, signed: Signed, text: str) -> str:
    return hmac.new(signing_key(secret, signed.date, signed.region, signed.service), text.encode(),
                    hashlib.sha256).hexdigest()


def matches(expected: str, given: str) -> bool:
    return hmac.compare_digest(expected.encode(), given.encode())


# -- aws-chunked ------------------------------------------------------------------------------------

def chunk_string_to_sign(signed: Signed, previous: str, chunk_sha256: str) -> str:
    return "\n".join(("AWS4-HMAC-SHA256-PAYLOAD", signed.amz_date, signed.scope, previous, EMPTY_SHA256,
                      chunk_sha256))


def resign_authorization(header: str, signature: str) -> str:
    """The Authorization header with its Signature replaced (same length: the body framing stays)."""
    head, sep, _ = header.rpartition("Signature=")
    return f"{head}{sep}{signature}"

"""S3's older query-string signature (SigV2), which boto3's `generate_presigned_url` still makes unless a
client asks for `s3v4`: `?AWSAccessKeyId=..&Expires=..&Signature=..`, an HMAC-SHA1. Pure: no I/O.

Both of its forms are accepted, as S3 in us-east-1 still accepts them: presigned URLs, and the
`Authorization: AWS key:signature` header (botocore's `signature_version="s3"`), whose string to sign
carries the `Date` header, or an empty line when X-Amz-Date gives the time."""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from urllib.parse import unquote

# The query parameters that are part of the signed resource (botocore's HmacV1Auth list, AWS's docs).
SUBRESOURCES = frozenset({
    "accelerate", "acl", "cors", "defaultObjectAcl", "location", "logging", "partNumber", "policy", "requestPayment",
    "torrent", "versioning", "versionId", "versions", "website", "uploads", "uploadId", "response-content-type",
    "response-content-language", "response-expires", "response-cache-control", "response-content-disposition",
    "response-content-encoding", "delete", "lifecycle", "tagging", "restore", "storageClass", "notification",
    "replication", "analytics", "metrics", "inventory", "select", "select-type", "object-lock"})


@dataclass(frozen=True)
class Presigned:
    key: str
    signature: str
    expires: int  # epoch seconds


def parse(query: list[tuple[str, str]]) -> Presigned | None:
    params = dict(query)
    if "AWSAccessKeyId" not in params or "Signature" not in params:
        return None
    try:
        return Presigned(params["AWSAccessKeyId"], params["Signature"], int(params.get("Expires", "")))
    except ValueError:
        return None


def parse_header(authorization: str) -> Presigned | None:
    """`AWS key:signature`; None for any other scheme. `expires` is 0: the header form's time is its Date."""
    scheme, _, rest = authorization.strip().partition(" ")
    key, sep, signature = rest.strip().rpartition(":")
    if scheme != "AWS" or not sep or not key or not signature:
        return None
    return Presigned(key, signature, 0)


def header_dates(headers: dict[str, str]) -> list[str]:
    """The date lines the header form may have been signed with: AWS's rule (X-Amz-Date, when present, leaves
    the line empty) and botocore's HmacV1Auth (always the Date header)."""
    lines = ["" if "x-amz-date" in headers else headers.get("date", ""), headers.get("date", "")]
    return list(dict.fromkeys(lines))


def request_time(headers: dict[str, str]) -> float | None:
    """Epoch seconds of X-Amz-Date, else Date (both HTTP dates in this form); None if neither parses."""
    try:
        return parsedate_to_datetime(headers.get("x-amz-date") or headers.get("date", "")).timestamp()
    except (TypeError, ValueError):
        return None


def string_to_sign(method: str, raw_path: str, raw_query: str, headers: dict[str, str], expires: int | str,
                   bucket_from_host: str | None = None) -> str:
    """`headers`: lower-cased names. x-amz-* query parameters count as headers (the presigner moves them there).
    `expires`: a presigned URL's Expires, or the header form's date line (header_date)."""
    amz: dict[str, list[str]] = {}
    for name, value in headers.items():
        if name.startswith("x-amz-"):
            amz.setdefault(name, []).append(value.strip())
    pairs = [item.split("=", 1) for item in raw_query.split("&") if item] if raw_query else []
    for pair in pairs:
        name = unquote(pair[0]).lower()
        if name.startswith("x-amz-") and name not in headers:
            amz.setdefault(name, []).append(unquote(pair[1] if len(pair) > 1 else "").strip())
    resource = (f"/{bucket_from_host}" if bucket_from_host else "") + raw_path
    if resource.count("/") == 1 and resource != "/":
        resource += "/"  # a bucket's resource is `/bucket/` (AWS's rule; botocore's auth_path)
    sub = sorted((p[0], unquote(p[1]) if len(p) > 1 else None) for p in pairs if p[0] in SUBRESOURCES)
    if sub:
        resource += "?" + "&".join(n if v is None else f"{n}={v}" for n, v in sub)
    lines = [method, headers.get("content-md5", ""), headers.get("content-type", ""), str(expires)]
    lines += [f"{name}:{','.join(values)}" for name, values in sorted(amz.items())]
    return "\n".join(lines + [resource])


def sign(secret: str, text: str) -> str:
    """`text` holds the wire's bytes as latin-1 characters, as in sigv4.string_to_sign."""
    return base64.b64encode(hmac.new(secret.encode(), text.encode("latin-1"), hashlib.sha1).digest()).decode()

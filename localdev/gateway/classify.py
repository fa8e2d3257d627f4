"""What a request to the gateway is about, for its ownership checks. Pure: no I/O.

- which API and wire protocol (the credential scope names the service; the headers the protocol), which
  decides the shape of an error;
- for S3: the bucket (path-style or virtual-hosted), the bucket a copy reads from (`x-amz-copy-source`),
  and whether it is ListBuckets, CreateBucket or DeleteBucket (whose success changes who owns what);
- for SQS and SNS: the accounts that the queue URLs and ARNs it names belong to.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

# Parameters whose value names another resource by URL or ARN (SQS, SNS); a value elsewhere (a message
# body, an attribute) may quote any ARN and is never read as a reference.
REFERENCE_PARAMS = frozenset({"QueueUrl", "TopicArn", "TargetArn", "SubscriptionArn", "ResourceArn", "Endpoint",
                              "SourceArn", "DestinationArn", "QueueOwnerAWSAccountId"})
ARN_RE = re.compile(r"^arn:aws[a-z-]*:[a-z0-9-]+:[a-z0-9-]*:(\d{12}):")
# a queue URL's path: /ACCOUNT/NAME, or LocalStack's path strategy /queue/REGION/ACCOUNT/NAME
QUEUE_URL_RE = re.compile(r"^(?:/queue/[a-z0-9-]+)?/(\d{12})/[^/]+/?$")
ACCOUNT_RE = re.compile(r"^\d{12}$")
# The health endpoints of the emulators: anyone may ask whether the service is up.
OPEN_PATHS = frozenset({"/_localstack/health", "/_ministack/health"})


@dataclass(frozen=True)
class Target:
    api: str  # the signing service: "s3", "sqs", "sns", "dynamodb", ...
    protocol: str  # "rest-xml" (S3) | "json" | "query" | "rest-json"
    operation: str = ""  # S3: ListBuckets | CreateBucket | DeleteBucket | bucket | object | service
    bucket: str | None = None
    copy_source_bucket: str | None = None
    accounts: frozenset[str] = field(default_factory=frozenset)  # accounts of the queues/topics it names


def protocol_of(api: str, headers: dict[str, str], raw_query: str) -> str:
    if "x-amz-target" in headers:
        return "json"
    if api == "s3":
        return "rest-xml"
    if headers.get("content-type", "").startswith("application/x-www-form-urlencoded") or "Action=" in raw_query:
        return "query"
    return "rest-json"


def api_of_unsigned(headers: dict[str, str], raw_query: str, default: str) -> str:
    """The API an unsigned request is for (to shape its refusal): the JSON target's, a query API's, or `default`."""
    target = headers.get("x-amz-target", "")
    if target.startswith("DynamoDB"):
        return "dynamodb"
    if target.startswith("AmazonSQS"):
        return "sqs"
    if target:
        return "json"
    if headers.get("content-type", "").startswith("application/x-www-form-urlencoded") or "Action=" in raw_query:
        return "sqs" if "QueueUrl" in raw_query else "query"
    return default


def virtual_bucket(host: str, virtual_bases: tuple[str, ...]) -> str | None:
    """The bucket a virtual-hosted-style Host names (`bucket.<base>[:port]`), else None."""
    hostname = (host.rsplit(":", 1)[0] if not host.endswith("]") else host).lower()
    if hostname in virtual_bases:
        return None
    for base in virtual_bases:
        if hostname.endswith("." + base):
            return hostname[: -len(base) - 1]
    return None


def s3_bucket_and_key(raw_path: str, host: str, virtual_bases: tuple[str, ...]) -> tuple[str | None, str]:
    """(bucket, key) of an S3 request: from the Host (`bucket.<base>`) or the path's first segment."""
    path = raw_path.lstrip("/")
    bucket = virtual_bucket(host, virtual_bases)
    if bucket:
        return bucket, unquote(path)
    bucket, _, key = path.partition("/")
    return (unquote(bucket) or None), unquote(key)


def copy_source_bucket(header: str | None) -> str | None:
    """The bucket of `x-amz-copy-source` ("/bucket/key?versionId=...", URL-encoded, leading '/' optional)."""
    if not header:
        return None
    source = unquote(header.split("?", 1)[0]).lstrip("/")
    if source.startswith("arn:"):  # an access point ARN: ".../accesspoint/NAME/object/KEY" has no bucket name
        return source
    return source.split("/", 1)[0] or None


def s3_target(method: str, raw_path: str, raw_query: str, headers: dict[str, str],
              virtual_bases: tuple[str, ...]) -> Target:
    bucket, key = s3_bucket_and_key(raw_path, headers.get("host", ""), virtual_bases)
    if bucket is None:
        operation = "ListBuckets" if method == "GET" else "service"
    elif key:
        operation = "object"
    elif not raw_query and method == "PUT":
        operation = "CreateBucket"
    elif not raw_query and method == "DELETE":
        operation = "DeleteBucket"
    else:
        operation = "bucket"
    return Target("s3", "rest-xml", operation, bucket, copy_source_bucket(headers.get("x-amz-copy-source")))


def params_of(protocol: str, body: bytes, raw_query: str) -> dict[str, list[str]]:
    """The request's parameters by name (JSON: the top level; query: the form and the URL's query)."""
    out: dict[str, list[str]] = {}

    def add(name: str, value) -> None:
        if isinstance(value, str):
            out.setdefault(name, []).append(value)
        elif isinstance(value, list):
            for item in value:
                add(name, item)

    if protocol == "json" and body:
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        if isinstance(data, dict):
            for name, value in data.items():
                add(name, value)
        return out
    pairs = parse_qsl(raw_query, keep_blank_values=True)
    if protocol == "query" and body:
        pairs += parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
    for name, value in pairs:
        # query-protocol lists are "Name.member.N" / "Name.N": the value counts under the base name
        add(name.split(".", 1)[0], value)
    return out


def account_of(value: str) -> str | None:
    """The account a queue URL, ARN or account id names; None if it names none."""
    if ACCOUNT_RE.fullmatch(value):
        return value
    match = ARN_RE.match(value)
    if match:
        return match.group(1)
    if value.startswith(("http://", "https://")):
        match = QUEUE_URL_RE.match(urlsplit(value).path)
        if match:
            return match.group(1)
    return None


def referenced_accounts(api: str, raw_path: str, params: dict[str, list[str]]) -> frozenset[str]:
    found = set()
    if api == "sqs":  # the query protocol may address a queue by the request's path
        match = QUEUE_URL_RE.match(raw_path)
        if match:
            found.add(match.group(1))
    for name in REFERENCE_PARAMS & params.keys():
        for value in params[name]:
            account = account_of(value)
            if account:
                found.add(account)
    return frozenset(found)


def classify(api: str, method: str, raw_path: str, raw_query: str, headers: dict[str, str], body: bytes,
             virtual_bases: tuple[str, ...]) -> Target:
    """`api`: the service the signature names. `body`: the buffered body (unused for S3)."""
    if api == "s3":
        return s3_target(method, raw_path, raw_query, headers, virtual_bases)
    protocol = protocol_of(api, headers, raw_query)
    if api not in ("sqs", "sns"):
        return Target(api, protocol)
    params = params_of(protocol, body, raw_query)
    operation = headers.get("x-amz-target", "").rpartition(".")[2] or (params.get("Action") or [""])[0]
    return Target(api, protocol, operation, accounts=referenced_accounts(api, raw_path, params))


def foreign(target: Target, account: str) -> str | None:
    """The first account other than `account` that the request names, if any."""
    others = sorted(target.accounts - {account})
    return others[0] if others else None

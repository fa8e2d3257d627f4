"""S3 browser-form uploads (`POST /bucket`, multipart/form-data with a policy and its signature): the
form's fields read up to the file, the policy's signature checked (SigV4 `x-amz-signature` or SigV2
`signature`), the policy's expiration and conditions checked as AWS does. Pure: no I/O.

The file field's content is never part of what is parsed here: the server streams it on (AWS ignores
every field after the file, so the fields before it are all that is checked).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from localdev.gateway import sigv4

MAX_PREFIX = 1024 * 1024  # the fields before the file; AWS caps a POST's form fields at 20 KB
# Fields the policy need not name (AWS's rules for POST policies).
EXEMPT = frozenset({"policy", "signature", "awsaccesskeyid", "x-amz-signature", "file"})
DISPOSITION_NAME = re.compile(r'\bname="([^"]*)"', re.I)
DISPOSITION_FILENAME = re.compile(r'\bfilename="([^"]*)"', re.I)


class FormError(Exception):
    """`kind` picks AWS's error (aws_errors)."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


@dataclass
class Form:
    fields: dict[str, str]  # lower-cased name -> value (the first one given)
    spans: dict[str, tuple[int, int]]  # lower-cased name -> (start, end) of its value in the prefix
    content_start: int  # where the file's content begins in the prefix
    filename: str = ""


@dataclass
class Checked:
    """A form whose signature and policy are good: what is left to check as the file streams."""

    key: str
    signature_field: str  # "x-amz-signature" | "signature"
    min_size: int = 0
    max_size: int | None = None
    conditions: list = field(default_factory=list)


def boundary_of(content_type: str) -> bytes | None:
    kind, _, params = content_type.partition(";")
    if kind.strip().lower() != "multipart/form-data":
        return None
    for param in params.split(";"):
        name, _, value = param.strip().partition("=")
        if name.lower() == "boundary" and value:
            return value.strip('"').encode("latin-1")
    return None


def parse_prefix(data: bytes, boundary: bytes) -> Form | None:
    """The fields before the file part; None if `data` does not reach the file's content yet."""
    delim = b"--" + boundary
    pos = data.find(delim)
    if pos < 0:
        return None
    fields: dict[str, str] = {}
    spans: dict[str, tuple[int, int]] = {}
    while True:
        after = pos + len(delim)
        if data[after:after + 2] == b"--":
            raise FormError("invalid_argument", "POST requires exactly one file upload per request.")
        header_end = data.find(b"\r\n\r\n", after)
        if header_end < 0:
            return None
        headers = data[after:header_end].decode("latin-1")
        match = DISPOSITION_NAME.search(headers)
        if match is None:
            raise FormError("bad_request", "a form part has no Content-Disposition name")
        name = match.group(1).lower()
        start = header_end + 4
        if name == "file":
            filename = DISPOSITION_FILENAME.search(headers)
            return Form(fields, spans, start, filename.group(1) if filename else "")
        end = data.find(b"\r\n" + delim, start)
        if end < 0:
            return None
        if name not in fields:
            fields[name] = data[start:end].decode("utf-8", "replace")
            spans[name] = (start, end)
        pos = end + 2


def access_key(form: Form) -> str | None:
    """The key a form names (SigV4's credential, or SigV2's AWSAccessKeyId); None for an anonymous form."""
    if "x-amz-credential" in form.fields:
        return form.fields["x-amz-credential"].split("/")[0]
    return form.fields.get("awsaccesskeyid")


def _expiration(text: object) -> datetime:
    if not isinstance(text, str):
        raise FormError("invalid_policy", "Invalid Policy: Invalid 'expiration' value.")
    for fmt in ("%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%SZ"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise FormError("invalid_policy", f"Invalid Policy: Invalid 'expiration' value: '{text}'")


def _verify_signature(form: Form, policy: str, secret_of) -> tuple[str, str]:
    """(the namespace's key, the signature field) if the policy is signed with that key's secret."""
    fields = form.fields
    if "x-amz-signature" in fields or "x-amz-credential" in fields:
        if fields.get("x-amz-algorithm") != sigv4.ALGORITHM:
            raise FormError("invalid_argument", "Bucket POST must contain a field named 'x-amz-algorithm' with "
                                                "the value AWS4-HMAC-SHA256.")
        for name in ("x-amz-credential", "x-amz-signature", "x-amz-date"):
            if name not in fields:
                raise FormError("invalid_argument", f"Bucket POST must contain a field named '{name}'.")
        parts = fields["x-amz-credential"].split("/")
        if len(parts) != 5 or parts[3] != "s3" or parts[4] != "aws4_request":
            raise FormError("invalid_argument", "x-amz-credential is not KEY/DATE/REGION/s3/aws4_request")
        expected = sign_v4(secret_of(parts[0]), fields["x-amz-credential"], policy)
        given, name = fields["x-amz-signature"], "x-amz-signature"
        key = parts[0]
    else:
        for name in ("awsaccesskeyid", "signature"):
            if name not in fields:
                raise FormError("invalid_argument", f"Bucket POST must contain a field named "
                                                    f"'{'AWSAccessKeyId' if name == 'awsaccesskeyid' else name}'.")
        key = fields["awsaccesskeyid"]
        secret = secret_of(key)
        expected = sign_v2(secret, policy)
        given, name = fields["signature"].strip(), "signature"
    if not sigv4.matches(expected, given):
        raise FormError("signature", "The request signature we calculated does not match the signature you "
                                     "provided. Check your key and signing method.")
    return key, name


def sign_v2(secret: str, policy: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), policy.encode(), hashlib.sha1).digest()).decode()


def sign_v4(secret: str, credential: str, policy: str) -> str:
    _, date, region, service, _ = credential.split("/")
    return hmac.new(sigv4.signing_key(secret, date, region, service), policy.encode(), hashlib.sha256).hexdigest()


def check(form: Form, bucket: str, now: datetime, secret_of) -> Checked:
    """Verify a form against the namespace's secret (`secret_of(key)` returns it, or raises FormError
    unknown_key) and its policy; the size range is left to check as the file streams."""
    fields = form.fields
    if "policy" not in fields:
        raise FormError("denied", "Access Denied")  # an anonymous POST: only a public-write bucket takes it
    policy = fields["policy"].strip()
    key, signature_field = _verify_signature(form, policy, secret_of)
    if "key" not in fields:
        raise FormError("invalid_argument", "Bucket POST must contain a field named 'key'.  If it is specified, "
                                            "please check the order of the fields.")
    try:
        document = json.loads(base64.b64decode(policy, validate=True))
    except (binascii.Error, ValueError):
        raise FormError("invalid_policy", "Invalid Policy: Invalid JSON.") from None
    if not isinstance(document, dict) or "expiration" not in document:
        raise FormError("invalid_policy", "Invalid Policy: Policy missing expiration.")
    if not isinstance(document.get("conditions"), list):
        raise FormError("invalid_policy", "Invalid Policy: Policy missing conditions.")
    if _expiration(document["expiration"]) < now:
        raise FormError("denied", "Invalid according to Policy: Policy expired.")
    out = Checked(key, signature_field)
    values = {**fields, "bucket": bucket}
    if fields.get("key", "").find("${filename}") >= 0:
        values["key"] = fields["key"].replace("${filename}", form.filename)
    covered = {"bucket"}
    for condition in document["conditions"]:
        if isinstance(condition, dict):
            if len(condition) != 1:
                raise FormError("invalid_policy", "Invalid Policy: Invalid Simple-Condition: Simple-Conditions must "
                                                  "have exactly one property specified.")
            (name, value), = condition.items()
            op, name = "eq", "$" + name
        elif isinstance(condition, list) and len(condition) == 3 and condition[0] == "content-length-range":
            low, high = condition[1], condition[2]
            if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (low, high)):
                raise FormError("invalid_policy", "Invalid Policy: Invalid content-length-range: the range must be "
                                                  "two non-negative integers.")
            out.min_size, out.max_size = low, high
            continue
        elif isinstance(condition, list) and len(condition) == 3 and condition[0] in ("eq", "starts-with") \
                and isinstance(condition[1], str) and condition[1].startswith("$"):
            op, name, value = condition
        else:
            raise FormError("invalid_policy", f"Invalid Policy: Invalid Condition: {json.dumps(condition)}")
        field_name = name[1:].lower()
        covered.add(field_name)
        given = values.get(field_name, "")
        if not isinstance(value, str) or not (given == value if op == "eq" else given.startswith(value)):
            raise FormError("denied", f"Invalid according to Policy: Policy Condition failed: "
                                      f"[\"{op}\", \"{name}\", {json.dumps(value)}]")
    extra = [n for n in fields if n not in EXEMPT and n not in covered and not n.startswith("x-ignore-")]
    if extra:
        raise FormError("denied", f"Invalid according to Policy: Extra input fields: {extra[0]}")
    return out


def resign(prefix: bytes, form: Form, checked: Checked, backend_secret: str) -> bytes:
    """The prefix with the policy's signature made with the back end's secret instead (the back end, like
    AWS, may check it)."""
    policy = form.fields["policy"].strip()
    if checked.signature_field == "x-amz-signature":
        signature = sign_v4(backend_secret, form.fields["x-amz-credential"], policy)
    else:
        signature = sign_v2(backend_secret, policy)
    start, end = form.spans[checked.signature_field]
    return prefix[:start] + signature.encode() + prefix[end:]

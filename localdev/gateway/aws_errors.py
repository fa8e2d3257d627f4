"""The errors the gateway answers with, as AWS itself shapes them per protocol, so SDKs raise their usual
exceptions (botocore reads the code from the XML <Code>, the JSON `__type`, or SQS's x-amzn-query-error).

Pure: (api, protocol, kind) -> status, headers, body."""

from __future__ import annotations

import json
import uuid
from xml.sax.saxutils import escape

# kind -> {protocol family: (code, HTTP status)}; "json" is DynamoDB and the other JSON services, "query"
# the XML query protocol (SNS, STS, SQS before JSON), "s3" S3's REST-XML.
CODES: dict[str, dict[str, tuple[str, int]]] = {
    "unknown_key": {"s3": ("InvalidAccessKeyId", 403), "json": ("UnrecognizedClientException", 400),
                    "query": ("InvalidClientTokenId", 403)},
    "signature": {"s3": ("SignatureDoesNotMatch", 403), "json": ("InvalidSignatureException", 400),
                  "query": ("SignatureDoesNotMatch", 403)},
    "missing": {"s3": ("AccessDenied", 403), "json": ("MissingAuthenticationTokenException", 400),
                "query": ("MissingAuthenticationToken", 403)},
    "expired": {"s3": ("AccessDenied", 403), "json": ("InvalidSignatureException", 400),
                "query": ("SignatureDoesNotMatch", 403)},
    "skewed": {"s3": ("RequestTimeTooSkewed", 403), "json": ("InvalidSignatureException", 400),
               "query": ("SignatureDoesNotMatch", 403)},
    "malformed": {"s3": ("AuthorizationHeaderMalformed", 400), "json": ("IncompleteSignatureException", 400),
                  "query": ("IncompleteSignature", 400)},
    "query_parameters": {"s3": ("AuthorizationQueryParametersError", 400),
                         "json": ("IncompleteSignatureException", 400), "query": ("IncompleteSignature", 400)},
    "invalid_argument": {"s3": ("InvalidArgument", 400), "json": ("ValidationException", 400),
                         "query": ("InvalidParameterValue", 400)},
    "invalid_policy": {"s3": ("InvalidPolicyDocument", 400), "json": ("ValidationException", 400),
                       "query": ("InvalidParameterValue", 400)},
    "too_small": {"s3": ("EntityTooSmall", 400), "json": ("ValidationException", 400),
                  "query": ("InvalidParameterValue", 400)},
    "missing_length": {"s3": ("MissingContentLength", 411), "json": ("ValidationException", 400),
                       "query": ("InvalidParameterValue", 400)},
    "algorithm": {"s3": ("AuthorizationHeaderMalformed", 400), "json": ("IncompleteSignatureException", 400),
                  "query": ("IncompleteSignature", 400)},
    "denied": {"s3": ("AccessDenied", 403), "json": ("AccessDeniedException", 400), "query": ("AccessDenied", 403)},
    "content_sha256": {"s3": ("XAmzContentSHA256Mismatch", 400), "json": ("InvalidSignatureException", 400),
                       "query": ("SignatureDoesNotMatch", 403)},
    "not_implemented": {"s3": ("NotImplemented", 501), "json": ("ValidationException", 400),
                        "query": ("InvalidRequest", 400)},
    "too_large": {"s3": ("EntityTooLarge", 400), "json": ("RequestEntityTooLarge", 413),
                  "query": ("RequestEntityTooLarge", 413)},
    "bad_request": {"s3": ("InvalidRequest", 400), "json": ("SerializationException", 400),
                    "query": ("MalformedQueryString", 400)},
    "unavailable": {"s3": ("ServiceUnavailable", 503), "json": ("ServiceUnavailableException", 503),
                    "query": ("ServiceUnavailable", 503)},
}
# Where a service answers a refusal with its own code, as AWS does.
SERVICE_CODES = {("sns", "denied"): ("AuthorizationError", 403),
                 ("sqs", "denied"): ("AccessDenied", 403),
                 ("sqs", "unknown_key"): ("InvalidClientTokenId", 403),
                 ("sqs", "signature"): ("SignatureDoesNotMatch", 403)}
QUERY_XMLNS = {"sqs": "http://queue.amazonaws.com/doc/2012-11-05/", "sns": "http://sns.amazonaws.com/doc/2010-03-31/",
               "sts": "https://sts.amazonaws.com/doc/2011-06-15/"}


def family(protocol: str) -> str:
    return "s3" if protocol == "rest-xml" else "json" if protocol in ("json", "rest-json") else "query"


def code_for(api: str, protocol: str, kind: str) -> tuple[str, int]:
    return SERVICE_CODES.get((api, kind)) or CODES[kind][family(protocol)]


def render(api: str, protocol: str, kind: str, message: str, extra: dict[str, str] | None = None,
           head: bool = False) -> tuple[int, list[tuple[str, str]], bytes]:
    """(status, headers, body) of AWS's error `kind` for a request of `api` spoken in `protocol`."""
    code, status = code_for(api, protocol, kind)
    request_id = uuid.uuid4().hex.upper()[:16]
    fam = family(protocol)
    headers = [("x-amz-request-id", request_id), ("x-amzn-RequestId", request_id)]
    if fam == "s3":
        fields = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in (extra or {}).items())
        body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{escape(message)}'
                f"</Message>{fields}<RequestId>{request_id}</RequestId><HostId>{request_id}</HostId></Error>").encode()
        headers.append(("Content-Type", "application/xml"))
    elif fam == "json":
        # A JSON service that is an old query service (SQS) names the query error too, for the SDKs' sake.
        body = json.dumps({"__type": f"com.amazon.coral.service#{code}", "message": message}).encode()
        headers += [("Content-Type", "application/x-amz-json-1.0"), ("x-amzn-query-error", f"{code};Sender")]
    else:
        xmlns = QUERY_XMLNS.get(api, "")
        body = (f'<?xml version="1.0"?>\n<ErrorResponse xmlns="{xmlns}"><Error><Type>Sender</Type><Code>{code}</Code>'
                f"<Message>{escape(message)}</Message></Error><RequestId>{request_id}</RequestId>"
                "</ErrorResponse>").encode()
        headers.append(("Content-Type", "text/xml"))
    if head:
        body = b""
    headers.append(("Content-Length", str(len(body))))
    return status, headers, body

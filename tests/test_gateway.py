"""The AWS gateway: SigV4 checked with each namespace's secret, AWS's own errors, ownership, presigned URLs,
restarts nobody sees. Real clusters (both emulator flavors), real boto3 clients configured from `ns env`;
unit tests of the pure parts (SigV4 against botocore's own signer, the request classification) beside them."""

from __future__ import annotations

import base64
import email.header
import hashlib
import http.client
import json
import os
import signal
import threading
import time
import urllib.parse
from datetime import UTC, datetime

import boto3
import pytest
from botocore.auth import HmacV1Auth, HmacV1QueryAuth, S3SigV4Auth, S3SigV4QueryAuth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from conftest import start_cluster

from localdev.gateway import classify, post_form, sigv2, sigv4
from localdev.gateway.http import parse_head
from localdev.waiting import poll_until

SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
KEY = "123456789012"


# -- SigV4: our canonicalisation gives botocore's signatures --------------------------------------------

def _signed(request: AWSRequest, signer) -> tuple[str, list[tuple[str, str]]]:
    """Sign with botocore (the reference); return (target, the headers as a server receives them)."""
    signer.add_auth(request)
    prepared = request.prepare()
    split = urllib.parse.urlsplit(prepared.url)
    target = split.path + (f"?{split.query}" if split.query else "")
    headers = [("Host", split.netloc)] + [(k, v) for k, v in prepared.headers.items()]
    return target, headers


def _check(method: str, target: str, headers: list[tuple[str, str]], body: bytes) -> bool:
    head = parse_head(f"{method} {target} HTTP/1.1\r\n".encode() +
                      b"".join(f"{k}: {v}\r\n".encode() for k, v in headers) + b"\r\n")
    signed = sigv4.parse(head.lower, urllib.parse.parse_qsl(head.query, keep_blank_values=True))
    assert signed is not None
    payload = (head.lower.get("x-amz-content-sha256") or
               (sigv4.UNSIGNED if signed.presigned else hashlib.sha256(body).hexdigest()))
    canonical = sigv4.canonical_request(method, head.path, head.query, head.header_list, signed, payload)
    return sigv4.matches(sigv4.sign(SECRET, signed, sigv4.string_to_sign(signed, canonical)), signed.signature)


@pytest.mark.parametrize("path,query", [
    ("/bucket/key", ""), ("/bucket/a%20b/c%2Bd~e", ""), ("/bucket/%E2%82%AC%21%28x%29", "versionId=3%2F4"),
    ("/bucket", "uploads"), ("/bucket/k", "partNumber=2&uploadId=a%2Bb%3D"), ("/", ""),
    ("/bucket", "list-type=2&prefix=a%20b&delimiter=%2F"),
])
def test_s3_header_signature_matches_botocore(path, query):
    body = b"hello"
    request = AWSRequest("PUT", f"http://127.0.0.1:4566{path}" + (f"?{query}" if query else ""), data=body,
                         headers={"X-Amz-Content-SHA256": hashlib.sha256(body).hexdigest(),
                                  "x-amz-meta-Note": "  two   spaces  ", "Content-Type": "text/plain"})
    target, headers = _signed(request, S3SigV4Auth(Credentials(KEY, SECRET), "s3", "us-east-1"))
    assert _check("PUT", target, headers, body)
    tampered = [(k, v + "x" if k.lower() == "content-type" else v) for k, v in headers]
    assert not _check("PUT", target, tampered, body)
    wrong = [(k, v.replace("Signature=", "Signature=0") if k == "Authorization" else v) for k, v in headers]
    assert not _check("PUT", target, wrong, body)


@pytest.mark.parametrize("service,path,body", [
    ("dynamodb", "/", b'{"TableName": "orders"}'), ("sqs", "/", b'{"QueueUrl": "http://h/123456789012/q"}'),
    ("sqs", "/123456789012/q", b"Action=SendMessage&MessageBody=a+b%21"), ("sns", "/", b"Action=ListTopics"),
    ("lambda", "/2015-03-31/functions/f%20x/invocations", b"{}"),
])
def test_other_services_signatures_match_botocore(service, path, body):
    request = AWSRequest("POST", f"http://127.0.0.1:4566{path}", data=body,
                         headers={"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "X.Y"})
    target, headers = _signed(request, SigV4Auth(Credentials(KEY, SECRET), service, "eu-west-1"))
    assert _check("POST", target, headers, body)
    assert not _check("POST", target, headers, body + b" ")


def test_presigned_v4_and_v2_match_botocore():
    request = AWSRequest("GET", "http://127.0.0.1:4566/bucket/a%20key.txt?response-content-type=text%2Fplain")
    target, headers = _signed(request, S3SigV4QueryAuth(Credentials(KEY, SECRET), "s3", "us-east-1", expires=60))
    assert "X-Amz-Signature=" in target and _check("GET", target, headers, b"")
    assert not _check("GET", target.replace("a%20key", "b%20key"), headers, b"")
    signed = sigv4.parse({}, urllib.parse.parse_qsl(target.split("?", 1)[1]))
    assert signed is not None and signed.presigned and signed.expires == 60
    sigv4.check_time(signed, datetime.now(UTC))
    with pytest.raises(sigv4.AuthError) as err:
        sigv4.check_time(signed, datetime.fromtimestamp(time.time() + 61, UTC))
    assert err.value.kind == "expired"

    request = AWSRequest("GET", "http://127.0.0.1:4566/bucket/a%20key.txt?versionId=7")
    HmacV1QueryAuth(Credentials(KEY, SECRET), expires=60).add_auth(request)
    split = urllib.parse.urlsplit(request.url)
    presigned = sigv2.parse(urllib.parse.parse_qsl(split.query))
    assert presigned is not None and presigned.key == KEY
    text = sigv2.string_to_sign("GET", split.path, split.query, {}, presigned.expires)
    assert sigv2.sign(SECRET, text) == presigned.signature
    assert sigv2.sign(SECRET, text.replace("versionId=7", "versionId=8")) != presigned.signature


def test_sigv4_takes_its_time_from_date_when_there_is_no_x_amz_date():
    request = AWSRequest("PUT", "http://127.0.0.1:4566/bucket/k", data=b"bar",
                         headers={"Date": "Tue, 01 Dec 2026 12:00:00 GMT"})
    target, headers = _signed(request, S3SigV4Auth(Credentials(KEY, SECRET), "s3", "us-east-1"))
    names = {k.lower() for k, _ in headers}
    assert "date" in names and "x-amz-date" not in names  # what botocore sends when a caller set Date
    assert _check("PUT", target, headers, b"bar")
    signed = sigv4.parse({"authorization": dict(headers)["Authorization"], "date": "Tue, 01 Dec 2026 12:00:00 GMT"},
                         [])
    assert signed is not None and signed.amz_date == "20261201T120000Z"
    with pytest.raises(sigv4.AuthError) as err:
        sigv4.parse({"authorization": dict(headers)["Authorization"], "date": "yesterday"}, [])
    assert err.value.kind == "malformed"


def test_non_ascii_header_values_are_signed_as_their_wire_bytes():
    """botocore sends a non-ASCII header as UTF-8 and signs those bytes: both signature versions agree."""
    value = "Hello World\xe9 \u20ac"
    request = AWSRequest("PUT", "http://127.0.0.1:4566/bucket/k", data=b"bar", headers={"x-amz-meta-m": value})
    target, headers = _signed(request, S3SigV4Auth(Credentials(KEY, SECRET), "s3", "us-east-1"))
    assert _check("PUT", target, headers, b"bar")
    assert not _check("PUT", target, [(k, v + "x" if k == "x-amz-meta-m" else v) for k, v in headers], b"bar")

    request = AWSRequest("PUT", "http://127.0.0.1:4566/bucket/k", data=b"bar", headers={"x-amz-meta-m": value})
    HmacV1Auth(Credentials(KEY, SECRET)).add_auth(request)
    wire = b"".join(f"{k}: {v}\r\n".encode() for k, v in request.headers.items())
    head = parse_head(b"PUT /bucket/k HTTP/1.1\r\n" + wire + b"\r\n")
    given = sigv2.parse_header(head.lower["authorization"])
    assert given is not None and given.key == KEY
    texts = [sigv2.string_to_sign("PUT", head.path, head.query, head.lower, line) for line in sigv2.header_dates(head.lower)]
    assert given.signature in [sigv2.sign(SECRET, t) for t in texts]
    assert given.signature not in [sigv2.sign(SECRET + "x", t) for t in texts]
    assert sigv2.request_time(head.lower) == pytest.approx(time.time(), abs=5)


def test_sigv2_header_date_line_follows_aws_and_botocore():
    assert sigv2.parse_header("AWS4-HMAC-SHA256 Credential=x") is None
    assert sigv2.parse_header("AWS 123456789012:abc=") == sigv2.Presigned("123456789012", "abc=", 0)
    assert sigv2.header_dates({"date": "D"}) == ["D"]
    assert sigv2.header_dates({"date": "D", "x-amz-date": "X"}) == ["", "D"]
    assert sigv2.request_time({"date": "nonsense"}) is None


@pytest.mark.parametrize("expires,kind", [(-1000, "query_parameters"), (604801, "query_parameters")])
def test_presigned_expiry_out_of_range_is_refused_as_aws_does(expires, kind):
    request = AWSRequest("GET", "http://127.0.0.1:4566/bucket/k")
    target, _ = _signed(request, S3SigV4QueryAuth(Credentials(KEY, SECRET), "s3", "us-east-1", expires=expires))
    with pytest.raises(sigv4.AuthError) as err:
        sigv4.parse({}, urllib.parse.parse_qsl(target.split("?", 1)[1]))
    assert err.value.kind == kind


def _form(fields: dict, file: bytes = b"bar", boundary: str = "XyZ") -> bytes:
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in fields.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="f.txt"\r\n'
                 f"Content-Type: text/plain\r\n\r\n".encode() + file + f"\r\n--{boundary}--\r\n".encode())
    return b"".join(parts)


def _presigned_post(conditions=None, expires=60, **config) -> dict:
    s3 = boto3.session.Session(aws_access_key_id=KEY, aws_secret_access_key=SECRET, region_name="us-east-1").client(
        "s3", endpoint_url="http://127.0.0.1:1", config=Config(**config))
    return s3.generate_presigned_post("bkt", "up/${filename}", Fields={"Content-Type": "text/plain"},
                                      Conditions=[{"Content-Type": "text/plain"}, ["starts-with", "$key", "up/"]]
                                      + (conditions or []), ExpiresIn=expires)["fields"]


@pytest.mark.parametrize("sig", ["s3v4", "s3"])
def test_post_policies_signed_by_botocore_are_checked_as_aws_does(sig):
    fields = _presigned_post([["content-length-range", 1, 10]], signature_version=sig)
    body = _form(fields)
    form = post_form.parse_prefix(body, b"XyZ")
    assert form is not None and form.filename == "f.txt" and body[form.content_start:].startswith(b"bar\r\n")
    now = datetime.now(UTC)
    checked = post_form.check(form, "bkt", now, lambda key: SECRET)
    assert (checked.key, checked.min_size, checked.max_size) == (KEY, 1, 10)
    assert post_form.parse_prefix(body[:form.content_start - 5], b"XyZ") is None  # not at the file yet

    def kind(fields, bucket="bkt", when=now, secret=SECRET):
        with pytest.raises(post_form.FormError) as err:
            post_form.check(post_form.parse_prefix(_form(fields), b"XyZ"), bucket, when, lambda key: secret)
        return err.value.kind, str(err.value)

    assert kind(fields, secret="wrong")[0] == "signature"
    assert kind(fields, bucket="other") == ("denied", 'Invalid according to Policy: Policy Condition failed: '
                                                      '["eq", "$bucket", "bkt"]')
    assert kind(fields, when=datetime.fromtimestamp(time.time() + 120, UTC)) == \
        ("denied", "Invalid according to Policy: Policy expired.")
    assert kind({**fields, "Content-Type": "image/png"})[0] == "denied"
    assert kind({**fields, "x-amz-meta-extra": "1"}) == ("denied", "Invalid according to Policy: Extra input "
                                                                   "fields: x-amz-meta-extra")
    assert post_form.check(post_form.parse_prefix(_form({**fields, "x-ignore-me": "1"}), b"XyZ"), "bkt", now,
                           lambda key: SECRET).key == KEY
    assert kind({k: v for k, v in fields.items() if k != "key"})[0] == "invalid_argument"
    signature_field = "x-amz-signature" if sig == "s3v4" else "signature"
    assert kind({k: v for k, v in fields.items() if k != signature_field})[0] == "invalid_argument"
    resigned = post_form.resign(body, form, checked, "backend-secret")
    again = post_form.parse_prefix(resigned, b"XyZ")
    assert again is not None and len(resigned) == len(body)
    post_form.check(again, "bkt", now, lambda key: "backend-secret")


def test_post_policy_documents_are_refused_as_aws_does():
    def kind(document) -> str:
        policy = base64.b64encode(json.dumps(document).encode()).decode()
        fields = {"key": "k", "AWSAccessKeyId": KEY, "policy": policy, "signature": post_form.sign_v2(SECRET, policy)}
        with pytest.raises(post_form.FormError) as err:
            post_form.check(post_form.parse_prefix(_form(fields), b"XyZ"), "bkt", datetime.now(UTC),
                            lambda key: SECRET)
        return err.value.kind

    later = "2100-01-01T00:00:00Z"
    assert kind({"conditions": []}) == "invalid_policy"
    assert kind({"Expiration": later, "conditions": []}) == "invalid_policy"
    assert kind({"expiration": later}) == "invalid_policy"
    assert kind({"expiration": "tomorrow", "conditions": []}) == "invalid_policy"
    assert kind({"expiration": later, "conditions": [{}]}) == "invalid_policy"
    assert kind({"expiration": later, "conditions": [["StArTs-WiTh", "$key", "k"]]}) == "invalid_policy"
    assert kind({"expiration": later, "conditions": [["content-length-range", -1, 5]]}) == "invalid_policy"
    assert kind({"expiration": later, "conditions": [["eq", "$key", "other"]]}) == "denied"
    assert kind({"expiration": later, "conditions": []}) == "denied"  # the key field is not covered


def test_aws_chunked_signatures_follow_the_documented_example():
    """AWS's worked example of a chunked upload (S3 docs, "Signature Calculations for the Authorization
    Header: Transferring Payload in Multiple Chunks"): 66560 bytes of 'a' in 64 KB chunks."""
    signed = sigv4.Signed("AKIAIOSFODNN7EXAMPLE", "20130524", "us-east-1", "s3", (), "4f232c4386841ef735655705268965c"
                          "44a0e4690baa4adea153f7db9fa80a0a9", "20130524T000000Z", presigned=False)
    previous = signed.signature
    expected = ["ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
                "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
                "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9"]
    for chunk, want in zip((b"a" * 65536, b"a" * 1024, b""), expected, strict=True):
        text = sigv4.chunk_string_to_sign(signed, previous, hashlib.sha256(chunk).hexdigest())
        got = sigv4.sign("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", signed, text)  # (the docs' example secret)
        assert got == want
        previous = got


# -- classification -----------------------------------------------------------------------------------

BASES = ("s3.localhost.localstack.cloud", "localhost.localstack.cloud", "localhost")


@pytest.mark.parametrize("method,path,query,host,headers,expected", [
    ("GET", "/", "", "127.0.0.1:4566", {}, ("ListBuckets", None, None)),
    ("PUT", "/b1", "", "127.0.0.1:4566", {}, ("CreateBucket", "b1", None)),
    ("PUT", "/b1", "acl", "127.0.0.1:4566", {}, ("bucket", "b1", None)),
    ("DELETE", "/b1", "", "127.0.0.1:4566", {}, ("DeleteBucket", "b1", None)),
    ("DELETE", "/b1/k", "", "127.0.0.1:4566", {}, ("object", "b1", None)),
    ("PUT", "/dst/k", "", "127.0.0.1:4566", {"x-amz-copy-source": "/src/a%20b?versionId=1"}, ("object", "dst", "src")),
    ("PUT", "/dst/k", "partNumber=1&uploadId=u", "h", {"x-amz-copy-source": "src/k"}, ("object", "dst", "src")),
    ("GET", "/k/x", "", "b2.localhost:4566", {}, ("object", "b2", None)),
    ("PUT", "/", "", "b3.s3.localhost.localstack.cloud:4566", {}, ("CreateBucket", "b3", None)),
    ("GET", "/", "", "s3.localhost.localstack.cloud:4566", {}, ("ListBuckets", None, None)),
])
def test_s3_requests_are_classified(method, path, query, host, headers, expected):
    target = classify.classify("s3", method, path, query, {"host": host, **headers}, b"", BASES)
    assert (target.operation, target.bucket, target.copy_source_bucket) == expected


def test_sqs_and_sns_references_name_their_accounts():
    own, other = "111111111111", "222222222222"
    json_body = json.dumps({"QueueUrl": f"http://h:1/{other}/q", "MessageBody": f"arn:aws:sns:us-east-1:{other}:t"})
    target = classify.classify("sqs", "POST", "/", "", {"x-amz-target": "AmazonSQS.SendMessage"},
                               json_body.encode(), BASES)
    assert target.operation == "SendMessage" and classify.foreign(target, own) == other
    # a message body that quotes an ARN is no reference
    quoting = json.dumps({"QueueUrl": f"http://h:1/{own}/q", "MessageBody": f"arn:aws:sns:us-east-1:{other}:t"})
    target = classify.classify("sqs", "POST", "/", "", {"x-amz-target": "AmazonSQS.SendMessage"}, quoting.encode(),
                               BASES)
    assert classify.foreign(target, own) is None
    form = {"content-type": "application/x-www-form-urlencoded"}
    query_api = classify.classify("sqs", "POST", f"/{other}/q", "", form, b"Action=PurgeQueue", BASES)
    assert query_api.protocol == "query" and classify.foreign(query_api, own) == other
    localstack_url = json.dumps({"QueueUrl": f"http://h:1/queue/us-east-1/{other}/q"}).encode()
    target = classify.classify("sqs", "POST", "/", "", {"x-amz-target": "AmazonSQS.PurgeQueue"}, localstack_url, BASES)
    assert classify.foreign(target, own) == other
    sub = classify.classify("sns", "POST", "/", "", form, urllib.parse.urlencode(
        {"Action": "Subscribe", "TopicArn": f"arn:aws:sns:us-east-1:{own}:t", "Protocol": "sqs",
         "Endpoint": f"arn:aws:sqs:us-east-1:{other}:q"}).encode(), BASES)
    assert sub.operation == "Subscribe" and classify.foreign(sub, own) == other
    mine = classify.classify("sns", "POST", "/", "", form, urllib.parse.urlencode(
        {"Action": "Publish", "TopicArn": f"arn:aws:sns:us-east-1:{own}:t", "Message": "hi"}).encode(), BASES)
    assert classify.foreign(mine, own) is None


# -- real clusters, both flavors --------------------------------------------------------------------

FLAVORS = ["localstack", "ministack"]


@pytest.fixture(scope="module", params=FLAVORS)
def gw(request, tmp_path_factory):
    """postgres (the registry), DynamoDB Local and the emulator behind the gateway, with the agent."""
    handle = start_cluster(tmp_path_factory, ["postgres", "dynamodb", "aws"], {"aws": {"flavor": request.param}},
                           extra="[agent]\nreap_interval = 3600\n")
    handle.flavor = request.param
    yield handle
    handle.close()


def client(env: dict, api: str, **override):
    env = {**env, **override}
    endpoint = env["AWS_ENDPOINT_URL_DYNAMODB" if api == "dynamodb" else "AWS_ENDPOINT_URL"]
    return boto3.session.Session(
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_REGION"]).client(api, endpoint_url=endpoint, config=Config(
            retries={"max_attempts": 1}, s3={"addressing_style": "path"}, signature_version=override.get("sig")))


def error_of(call) -> tuple[str, int]:
    with pytest.raises(ClientError) as err:
        call()
    return err.value.response["Error"]["Code"], err.value.response["ResponseMetadata"]["HTTPStatusCode"]


def new_ns(h, name: str) -> dict:
    h.cli("ns", "create", name, "--no-seed", check=True)
    return h.ns_env(name)


def raw(method: str, url: str, body: bytes | None = None) -> tuple[int, bytes]:
    """An HTTP request with no SDK at all (what a browser or curl does with a presigned URL)."""
    split = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(split.hostname, split.port, timeout=30)
    conn.request(method, split.path + (f"?{split.query}" if split.query else ""), body=body)
    response = conn.getresponse()
    return response.status, response.read()


@pytest.mark.slow
def test_the_gateway_owns_the_ports_users_see(gw):
    env = new_ns(gw, "ports")
    dynamodb, aws = gw.cluster.services["dynamodb"], gw.cluster.services["aws"]
    assert env["AWS_ENDPOINT_URL_DYNAMODB"] == f"http://127.0.0.1:{dynamodb.port}"
    assert env["AWS_ENDPOINT_URL"] == f"http://127.0.0.1:{aws.port}"
    assert dynamodb.backend_port != dynamodb.port and aws.backend_port != aws.port
    status = json.loads(gw.cli("status", "--json", check=True).stdout)
    gateway = status["gateway"]
    assert gateway["state"] == "healthy" and gateway["ports"] == {"dynamodb": dynamodb.port, "aws": aws.port}
    assert gateway["backends"] == {"dynamodb": dynamodb.backend_port, "aws": aws.backend_port}
    assert "gateway: dynamodb on 127.0.0.1" in gw.cli("logs", "gateway", check=True).stdout


@pytest.mark.slow
def test_wrong_secret_and_unknown_key_get_aws_errors(gw):
    env = new_ns(gw, "creds")
    wrong, unknown = {"AWS_SECRET_ACCESS_KEY": "not-the-secret"}, {"AWS_ACCESS_KEY_ID": "999999999999"}
    assert error_of(lambda: client(env, "s3", **wrong).list_buckets()) == ("SignatureDoesNotMatch", 403)
    assert error_of(lambda: client(env, "sqs", **wrong).list_queues()) == ("SignatureDoesNotMatch", 403)
    assert error_of(lambda: client(env, "sns", **wrong).list_topics()) == ("SignatureDoesNotMatch", 403)
    assert error_of(lambda: client(env, "dynamodb", **wrong).list_tables()) == ("InvalidSignatureException", 400)
    # an upload is refused from its head (boto3 waits for 100 Continue), before its body is read
    assert error_of(lambda: client(env, "s3", **wrong).put_object(Bucket="creds-b", Key="k", Body=b"x" * (2 << 20))) \
        == ("SignatureDoesNotMatch", 403)
    assert error_of(lambda: client(env, "s3", **unknown).list_buckets()) == ("InvalidAccessKeyId", 403)
    assert error_of(lambda: client(env, "sqs", **unknown).list_queues()) == ("InvalidClientTokenId", 403)
    assert error_of(lambda: client(env, "dynamodb", **unknown).list_tables()) == ("UnrecognizedClientException", 400)
    # keys DynamoDB Local would choke on, or that are no namespace's, never reach it
    for key in ("1" * 243, "000000000000", "localdevprobe", "ns_creds"):
        assert error_of(lambda k=key: client(env, "dynamodb", AWS_ACCESS_KEY_ID=k).list_tables())[0] == \
            "UnrecognizedClientException"
    # an unsigned request is refused too
    assert raw("GET", env["AWS_ENDPOINT_URL"] + "/")[0] == 403
    def counted():  # (the gateway writes its counts every second)
        counts = json.loads(gw.cli("status", "--json", check=True).stdout)["gateway"]["namespaces"]
        # (a file written between the two kinds of request has the first's counts and not yet the second's)
        unknown = counts.get("(unknown)", {}).get("denied", 0)
        return counts if counts.get("creds", {}).get("denied") == 5 and unknown >= 8 else None

    counts = poll_until(counted, 10, "the gateway's counts")
    assert counts["creds"]["requests"] == 5 and counts["creds"]["errors"] == 5
    from localdev.dashboard import Dashboard
    from localdev.tokens import LOCAL

    shown = {n["name"]: n["aws"] for n in Dashboard(gw.cluster).snapshot(LOCAL)["namespaces"]}
    assert shown["creds"] == {"requests": 5, "errors": 5, "denied": 5}
    assert env["AWS_SECRET_ACCESS_KEY"] not in gw.cli("status", "--json").stdout
    assert env["AWS_SECRET_ACCESS_KEY"] not in gw.cli("logs", "gateway").stdout


@pytest.mark.slow
def test_own_access_works_on_every_api(gw):
    env = new_ns(gw, "own")
    s3 = client(env, "s3")
    s3.create_bucket(Bucket="own-data")
    s3.put_object(Bucket="own-data", Key="a b/c.txt", Body=b"mine")
    assert s3.get_object(Bucket="own-data", Key="a b/c.txt")["Body"].read() == b"mine"
    big = os.urandom(8 << 20)
    s3.put_object(Bucket="own-data", Key="big", Body=big)
    assert s3.get_object(Bucket="own-data", Key="big")["Body"].read() == big
    s3.copy_object(Bucket="own-data", Key="copy", CopySource={"Bucket": "own-data", "Key": "a b/c.txt"})
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["own-data"]
    sqs = client(env, "sqs")
    url = sqs.create_queue(QueueName="jobs")["QueueUrl"]
    assert url.startswith(env["AWS_ENDPOINT_URL"])
    sqs.send_message(QueueUrl=url, MessageBody="m")
    assert [m["Body"] for m in sqs.receive_message(QueueUrl=url, WaitTimeSeconds=2)["Messages"]] == ["m"]
    topic = client(env, "sns").create_topic(Name="events")["TopicArn"]
    client(env, "sns").publish(TopicArn=topic, Message="x")
    ddb = client(env, "dynamodb")
    ddb.create_table(TableName="orders", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                     BillingMode="PAY_PER_REQUEST")
    ddb.put_item(TableName="orders", Item={"pk": {"S": "1"}})
    assert ddb.get_item(TableName="orders", Key={"pk": {"S": "1"}})["Item"] == {"pk": {"S": "1"}}


@pytest.mark.slow
def test_another_namespace_is_denied_and_ownership_goes_with_the_namespace(gw):
    a, b = new_ns(gw, "owner-a"), new_ns(gw, "owner-b")
    s3a, s3b = client(a, "s3"), client(b, "s3")
    s3a.create_bucket(Bucket="owner-a-private")
    s3a.put_object(Bucket="owner-a-private", Key="secret", Body=b"a only")
    s3b.create_bucket(Bucket="owner-b-own")
    denied = ("AccessDenied", 403)
    for call in (lambda: s3b.get_object(Bucket="owner-a-private", Key="secret"),
                 lambda: s3b.put_object(Bucket="owner-a-private", Key="x", Body=b"x"),
                 lambda: s3b.list_objects_v2(Bucket="owner-a-private"),
                 lambda: s3b.delete_object(Bucket="owner-a-private", Key="secret"),
                 lambda: s3b.delete_bucket(Bucket="owner-a-private"),
                 lambda: s3b.create_multipart_upload(Bucket="owner-a-private", Key="m"),
                 lambda: s3b.copy_object(Bucket="owner-b-own", Key="stolen",
                                         CopySource={"Bucket": "owner-a-private", "Key": "secret"})):
        assert error_of(call) == denied
    assert [x["Name"] for x in s3b.list_buckets()["Buckets"]] == ["owner-b-own"]
    assert s3a.get_object(Bucket="owner-a-private", Key="secret")["Body"].read() == b"a only"
    queue = client(a, "sqs").create_queue(QueueName="inbox")["QueueUrl"]
    assert error_of(lambda: client(b, "sqs").send_message(QueueUrl=queue, MessageBody="x")) == denied
    assert error_of(lambda: client(b, "sqs").purge_queue(QueueUrl=queue)) == denied
    topic = client(a, "sns").create_topic(Name="events")["TopicArn"]
    assert error_of(lambda: client(b, "sns").publish(TopicArn=topic, Message="x")) == ("AuthorizationError", 403)
    # the registry's records go with the namespace: the name is free for anyone once it is deleted
    gw.cli("ns", "delete", "owner-a", check=True)
    s3b.create_bucket(Bucket="owner-a-private")
    s3b.put_object(Bucket="owner-a-private", Key="now-b", Body=b"b")
    # and a deleted namespace's key stops working at once
    assert error_of(lambda: client(a, "s3").list_buckets()) == ("InvalidAccessKeyId", 403)
    assert error_of(lambda: client(a, "dynamodb").list_tables())[0] == "UnrecognizedClientException"


@pytest.mark.slow
@pytest.mark.parametrize("sig", [None, "s3v4"])
def test_presigned_get_and_put_with_the_namespace_secret_then_expiry(gw, sig):
    env = new_ns(gw, f"pre-{sig or 'default'}")
    s3 = client(env, "s3", sig=sig)
    bucket = f"pre-{sig or 'default'}-b"
    s3.create_bucket(Bucket=bucket)
    put = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "up load"}, ExpiresIn=60)
    assert raw("PUT", put, b"through a presigned PUT")[0] == 200
    get = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "up load"}, ExpiresIn=60)
    assert raw("GET", get) == (200, b"through a presigned PUT")
    forged = client(env, "s3", sig=sig, AWS_SECRET_ACCESS_KEY="guessed").generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "up load"}, ExpiresIn=60)
    status, body = raw("GET", forged)
    assert status == 403 and b"<Code>SignatureDoesNotMatch</Code>" in body
    short = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "up load"}, ExpiresIn=1)
    time.sleep(2.2)
    status, body = raw("GET", short)
    assert status == 403 and b"<Code>AccessDenied</Code>" in body and b"Request has expired" in body


class _StreamingSigner(S3SigV4Auth):
    """botocore's S3 signer, declaring the payload a signed chunk stream (botocore itself never sends one)."""

    def payload(self, request):
        return sigv4.STREAMING_SIGNED


def chunked_put(env: dict, bucket: str, key: str, chunks: list[bytes], tamper: bool = False) -> tuple[int, bytes]:
    """An `aws-chunked` upload with a signature per chunk, as the Java and Go SDKs send one: the seed signature
    from botocore's signer, each chunk's per AWS's documented chain (checked above against its example)."""
    body_length = sum(len(c) for c in chunks)
    url = f"{env['AWS_ENDPOINT_URL']}/{bucket}/{key}"
    request = AWSRequest("PUT", url, headers={"X-Amz-Content-SHA256": sigv4.STREAMING_SIGNED,
                                              "Content-Encoding": "aws-chunked",
                                              "x-amz-decoded-content-length": str(body_length)})
    target, headers = _signed(request, _StreamingSigner(Credentials(env["AWS_ACCESS_KEY_ID"],
                                                                    env["AWS_SECRET_ACCESS_KEY"]), "s3", "us-east-1"))
    auth = dict(headers)["Authorization"]
    signed = sigv4.parse({"authorization": auth, "x-amz-date": dict(headers)["X-Amz-Date"]}, [])
    assert signed is not None
    previous, encoded = signed.signature, b""
    for chunk in [*chunks, b""]:
        previous = sigv4.sign(env["AWS_SECRET_ACCESS_KEY"], signed,
                              sigv4.chunk_string_to_sign(signed, previous, hashlib.sha256(chunk).hexdigest()))
        data = chunk.replace(b"a", b"b") if tamper and chunk else chunk
        encoded += f"{len(chunk):x};chunk-signature={previous}\r\n".encode() + data + b"\r\n"
    split = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(split.hostname, split.port, timeout=30)
    conn.putrequest("PUT", target, skip_host=True, skip_accept_encoding=True)
    for name, value in headers:
        if name.lower() != "content-length":  # (botocore's, of the empty body it was given)
            conn.putheader(name, value)
    conn.putheader("Content-Length", str(len(encoded)))
    conn.endheaders(encoded)
    response = conn.getresponse()
    return response.status, response.read()


@pytest.mark.slow
def test_aws_chunked_upload_checks_every_chunk(gw):
    env = new_ns(gw, "chunked")
    s3 = client(env, "s3")
    s3.create_bucket(Bucket="chunked-b")
    chunks = [b"a" * 65536, b"a" * 65536, b"a" * 1000]
    status, body = chunked_put(env, "chunked-b", "obj", chunks)
    assert status == 200, body
    assert s3.get_object(Bucket="chunked-b", Key="obj")["Body"].read() == b"".join(chunks)
    status, body = chunked_put(env, "chunked-b", "forged", chunks, tamper=True)
    assert status == 403 and b"<Code>SignatureDoesNotMatch</Code>" in body
    assert error_of(lambda: s3.head_object(Bucket="chunked-b", Key="forged")) == ("404", 404)


@pytest.mark.slow
@pytest.mark.parametrize("size", [1000, 3 << 20])  # read whole / streamed on with its last piece held back
def test_a_body_that_does_not_match_its_signed_hash_is_never_stored(gw, size):
    env = new_ns(gw, f"hash-{size}")
    s3 = client(env, "s3")
    bucket = f"hash-{size}-b"
    s3.create_bucket(Bucket=bucket)
    signed_body, sent_body = b"a" * size, b"b" * size
    request = AWSRequest("PUT", f"{env['AWS_ENDPOINT_URL']}/{bucket}/obj", data=signed_body,
                         headers={"X-Amz-Content-SHA256": hashlib.sha256(signed_body).hexdigest()})
    target, headers = _signed(request, S3SigV4Auth(Credentials(env["AWS_ACCESS_KEY_ID"],
                                                               env["AWS_SECRET_ACCESS_KEY"]), "s3", "us-east-1"))
    split = urllib.parse.urlsplit(env["AWS_ENDPOINT_URL"])
    conn = http.client.HTTPConnection(split.hostname, split.port, timeout=30)
    conn.putrequest("PUT", target, skip_host=True, skip_accept_encoding=True)
    for name, value in headers:
        conn.putheader(name, value)
    conn.endheaders(sent_body)
    response = conn.getresponse()
    assert (response.status, b"<Code>XAmzContentSHA256Mismatch</Code>" in response.read()) == (400, True)
    assert error_of(lambda: s3.head_object(Bucket=bucket, Key="obj")) == ("404", 404)


@pytest.mark.slow
def test_kill_9_of_dynamodb_local_while_a_client_loops_loses_no_request(gw):
    if gw.flavor != "ministack":
        pytest.skip("DynamoDB Local is the same in both clusters: once is enough")
    env = new_ns(gw, "crashloop")
    ddb = client(env, "dynamodb")
    ddb.create_table(TableName="loop", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                     BillingMode="PAY_PER_REQUEST")
    pid = gw.cluster.runtime.state("dynamodb").pid
    failures: list[str] = []
    written = 0
    killed = threading.Timer(0.5, os.kill, (pid, signal.SIGKILL))
    killed.start()
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline or gw.cluster.runtime.state("dynamodb").pid in (pid, None):
        try:  # (no SDK retries: max_attempts 1)
            ddb.put_item(TableName="loop", Item={"pk": {"S": f"item-{written}"}})
            written += 1
        except Exception as exc:  # noqa: BLE001 - every failure is what this test counts
            failures.append(repr(exc))
        if time.monotonic() > deadline + 60:
            break
    killed.join()
    assert failures == []
    assert gw.cluster.runtime.state("dynamodb").pid != pid
    assert ddb.scan(TableName="loop", Select="COUNT")["Count"] == written
    assert any(e["service"] == "dynamodb" and e["event"] == "restarted" for e in gw.cluster.events(limit=50))


@pytest.mark.slow
def test_kill_9_of_the_gateway_is_restarted_by_the_supervisor(gw):
    env = new_ns(gw, "gwkill")
    native = gw.cluster._native()
    pid = native.state("gateway").pid
    os.kill(pid, signal.SIGKILL)
    poll_until(lambda: native.state("gateway").running and native.state("gateway").pid != pid
               and gw.cluster.gateway_ready(), 30, "the supervisor to restart the gateway")
    assert client(env, "dynamodb").list_tables()["TableNames"] == []
    assert client(env, "s3").list_buckets()["Buckets"] == []
    assert any(e["service"] == "gateway" and e["event"] == "restarted" for e in gw.cluster.events(limit=50))


def rfc2047(value: str) -> str:
    return str(email.header.make_header(email.header.decode_header(value)))


@pytest.mark.slow
def test_sigv2_header_date_header_and_unicode_metadata_through_the_gateway(gw):
    env, other = new_ns(gw, "v2own"), new_ns(gw, "v2other")
    v2 = client(env, "s3", sig="s3")
    v2.create_bucket(Bucket="v2-data")
    v2.put_object(Bucket="v2-data", Key="k", Body=b"old-style", Metadata={"a": "b"})
    assert v2.get_object(Bucket="v2-data", Key="k")["Body"].read() == b"old-style"
    assert error_of(lambda: client(other, "s3", sig="s3").get_object(Bucket="v2-data", Key="k")) == \
        ("AccessDenied", 403)
    assert error_of(lambda: client(env, "s3", sig="s3", AWS_SECRET_ACCESS_KEY="wrong").get_object(
        Bucket="v2-data", Key="k")) == ("SignatureDoesNotMatch", 403)

    s3 = client(env, "s3", sig="s3v4")
    for sdk in (s3, v2):
        def add(params, **_):
            params["headers"]["Date"] = "Tue, 01 Dec 2026 00:00:00 GMT"  # botocore replaces it with its time
            params["headers"]["x-amz-meta-m"] = "Hello World\xe9"
        sdk.meta.events.register("before-call.s3.PutObject", add)
        sdk.put_object(Bucket="v2-data", Key="u", Body=b"bar")
        # The bytes reach the emulator as sent (UTF-8); LocalStack reads them as latin-1, MiniStack as
        # UTF-8; both answer in an RFC 2047 word.
        assert rfc2047(s3.get_object(Bucket="v2-data", Key="u")["Metadata"]["m"]) == \
            ("Hello World\xc3\xa9" if gw.flavor == "localstack" else "Hello World\xe9")
        sdk.meta.events.unregister("before-call.s3.PutObject", add)

    url = s3.generate_presigned_url("put_object", Params={"Bucket": "v2-data", "Key": "k"}, ExpiresIn=-1000)
    status, body = raw("PUT", url, b"late")
    assert status == 400 and b"<Code>AuthorizationQueryParametersError</Code>" in body
    assert v2.get_object(Bucket="v2-data", Key="k")["Body"].read() == b"old-style"


@pytest.mark.slow
@pytest.mark.parametrize("sig", ["s3v4", "s3"])
def test_browser_form_uploads_are_checked_then_stored(gw, sig):
    import requests

    env, other = new_ns(gw, f"form{sig[-1]}"), new_ns(gw, f"formo{sig[-1]}")
    s3, theirs = client(env, "s3", sig=sig), client(other, "s3", sig=sig)
    s3.create_bucket(Bucket=f"form-{sig}")
    theirs.create_bucket(Bucket=f"their-{sig}")
    big = os.urandom(3 << 20)  # larger than a piece: the file streams on

    def post(sdk, bucket: str, data: bytes, conditions=None):
        form = sdk.generate_presigned_post(bucket, "up/${filename}", Fields={"Content-Type": "text/plain"},
                                           Conditions=[{"Content-Type": "text/plain"}, ["starts-with", "$key", "up/"],
                                                       ["content-length-range", 1, 4 << 20]] + (conditions or []))
        return requests.post(form["url"], data=form["fields"], files={"file": ("f.txt", data)}, timeout=60)

    response = post(s3, f"form-{sig}", big)
    assert response.status_code == 204, response.text
    assert s3.get_object(Bucket=f"form-{sig}", Key="up/f.txt")["Body"].read() == big
    response = post(s3, f"form-{sig}", os.urandom((4 << 20) + 1))
    assert response.status_code == 400 and "<Code>EntityTooLarge</Code>" in response.text
    response = post(s3, f"form-{sig}", b"")
    assert response.status_code == 400 and "<Code>EntityTooSmall</Code>" in response.text
    response = post(s3, f"their-{sig}", b"mine")  # a policy of ours on their bucket
    assert response.status_code == 403 and "<Code>AccessDenied</Code>" in response.text
    wrong = client(env, "s3", sig=sig, AWS_SECRET_ACCESS_KEY="wrong")
    response = post(wrong, f"form-{sig}", b"x")
    assert response.status_code == 403 and "<Code>SignatureDoesNotMatch</Code>" in response.text
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=f"form-{sig}").get("Contents", [])]
    assert keys == ["up/f.txt"] and "Contents" not in theirs.list_objects_v2(Bucket=f"their-{sig}")

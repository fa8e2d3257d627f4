"""The cross-namespace matrix: namespace B, with exactly its own `ns env` credentials, against A's buckets,
objects, multipart uploads, queues, topics and tables; and A's key with a wrong secret, and a key no
namespace has, on every AWS API. For both flavors, through the endpoints `ns env` names (the gateway's).

Every case expects what AWS itself answers: the `Error.Code` boto3 reports and the HTTP status (so SDKs
raise their usual exceptions), and then checks that nothing of A's changed. A's and B's own access must
keep working, with exact contents. `bench/aws_isolation.py` runs this file and writes the measured matrix
into docs/aws.md (with LOCALDEV_AWS_ISOLATION_JSON naming where each case's outcome goes).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import http.client
import urllib.parse
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from itertools import count

import boto3
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

RESULTS_ENV = "LOCALDEV_AWS_ISOLATION_JSON"
pytestmark = pytest.mark.slow

WRONG_SECRET = "wrong-secret-0123456789abcdefghijkl"
UNKNOWN_KEY = "987654321098"  # 12 digits, like every namespace's key, but no namespace has it
DOC = b"a's private document\n"


def session(key: str, secret: str, region: str) -> boto3.session.Session:
    return boto3.session.Session(aws_access_key_id=key, aws_secret_access_key=secret, region_name=region)


CONFIG = Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1})
V4 = Config(signature_version="s3v4", s3={"addressing_style": "path"}, retries={"max_attempts": 1})


@dataclass
class Tenant:
    """A namespace's env and its boto3 clients, made exactly as a user's code makes them from `ns env`."""
    name: str
    env: dict
    clients: dict = field(default_factory=dict)

    @property
    def key(self) -> str:
        return self.env["AWS_ACCESS_KEY_ID"]

    def client(self, api: str, secret: str | None = None, key: str | None = None, config: Config = CONFIG):
        cache = (api, secret, key, id(config))
        if cache not in self.clients:
            endpoint = self.env["AWS_ENDPOINT_URL_DYNAMODB" if api == "dynamodb" else "AWS_ENDPOINT_URL"]
            s = session(key or self.key, secret or self.env["AWS_SECRET_ACCESS_KEY"], self.env["AWS_REGION"])
            self.clients[cache] = s.client(api, endpoint_url=endpoint, config=config)
        return self.clients[cache]

    @property
    def s3(self):
        return self.client("s3")

    @property
    def sqs(self):
        return self.client("sqs")

    @property
    def sns(self):
        return self.client("sns")

    @property
    def ddb(self):
        return self.client("dynamodb")


@dataclass
class World:
    flavor: str
    handle: object
    a: Tenant
    b: Tenant
    bucket: str  # A's
    b_bucket: str  # B's own
    queue: str  # A's queue URL
    b_queue: str
    topic: str  # A's topic ARN
    b_topic: str
    upload: str  # an unfinished multipart upload of A's, in A's bucket, key "big.bin"
    receipt: str  # a receipt handle A got from its "handles" queue
    handles_queue: str
    _n: count = field(default_factory=lambda: count(1))

    # Destructive cases get victims of their own, so a case that is wrongly allowed spoils no other case.
    def victim_bucket(self) -> str:
        name = f"mx-a-victim-{next(self._n)}"
        self.a.s3.create_bucket(Bucket=name)
        self.a.s3.put_object(Bucket=name, Key="keep.txt", Body=b"keep")
        return name

    def victim_queue(self) -> str:
        url = self.a.sqs.create_queue(QueueName=f"victim-{next(self._n)}")["QueueUrl"]
        self.a.sqs.send_message(QueueUrl=url, MessageBody="keep")
        return url

    def victim_topic(self) -> str:
        return self.a.sns.create_topic(Name=f"victim-{next(self._n)}")["TopicArn"]

    def a_keys(self, bucket: str | None = None) -> list[str]:
        return sorted(o["Key"] for o in self.a.s3.list_objects_v2(Bucket=bucket or self.bucket).get("Contents", []))

    def queue_depth(self, url: str) -> int:
        attrs = self.a.sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])
        return sum(int(v) for v in attrs["Attributes"].values())

    def a_topics(self) -> list[str]:
        return sorted(t["TopicArn"] for t in self.a.sns.list_topics()["Topics"])


A_KEYS = ["dir/x.bin", "doc.txt"]


def make_tenant(handle, name: str) -> Tenant:
    handle.cli("ns", "create", name, "--no-seed", check=True)
    return Tenant(name, handle.ns_env(name))


@pytest.fixture(scope="module")
def world(aws_cluster):
    handle = aws_cluster
    a, b = make_tenant(handle, "mx-a"), make_tenant(handle, "mx-b")
    try:
        a.s3.create_bucket(Bucket="mx-a-private")
        a.s3.put_object(Bucket="mx-a-private", Key="doc.txt", Body=DOC)
        a.s3.put_object(Bucket="mx-a-private", Key="dir/x.bin", Body=b"\x00\x01")
        upload = a.s3.create_multipart_upload(Bucket="mx-a-private", Key="big.bin")["UploadId"]
        b.s3.create_bucket(Bucket="mx-b-own")
        b.s3.put_object(Bucket="mx-b-own", Key="b.txt", Body=b"b's")
        queue = a.sqs.create_queue(QueueName="inbox")["QueueUrl"]
        a.sqs.send_message(QueueUrl=queue, MessageBody="for a, from a")
        handles = a.sqs.create_queue(QueueName="handles")["QueueUrl"]
        a.sqs.send_message(QueueUrl=handles, MessageBody="handled")
        # visible again at once, so A can still see it after B's attempt to delete it by this handle
        receipt = a.sqs.receive_message(QueueUrl=handles, VisibilityTimeout=0, WaitTimeSeconds=2)[
            "Messages"][0]["ReceiptHandle"]
        b_queue = b.sqs.create_queue(QueueName="inbox")["QueueUrl"]
        topic = a.sns.create_topic(Name="events")["TopicArn"]
        a.sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn(a, "inbox"))
        b_topic = b.sns.create_topic(Name="events")["TopicArn"]
        a.ddb.create_table(TableName="orders", AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                           KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}], BillingMode="PAY_PER_REQUEST")
        a.ddb.put_item(TableName="orders", Item={"id": {"S": "o-1"}, "total": {"N": "42"}})
        w = World(handle.flavor, handle, a, b, "mx-a-private", "mx-b-own", queue, b_queue, topic, b_topic, upload,
                  receipt, handles)
        yield w
    finally:
        for name in ("mx-a", "mx-b"):  # their buckets, queues, topics and tables go with them
            handle.cli("ns", "delete", name, check=True)


def queue_arn(t: Tenant, name: str) -> str:
    return f"arn:aws:sqs:{t.env['AWS_REGION']}:{t.key}:{name}"


# -- recording what each case saw (the docs' matrix) --------------------------------------------------

OUTCOMES: dict[str, dict[str, str]] = {}


@pytest.fixture(scope="module", autouse=True)
def _write_outcomes():
    yield
    path = os.environ.get(RESULTS_ENV)
    if path:
        with open(path, "w") as f:
            json.dump(OUTCOMES, f, indent=1, sort_keys=True)


class Allowed(AssertionError):
    pass


def refused(code: str, status: int, call) -> ClientError:
    """`call()` must fail with AWS's `code` and HTTP `status`, as boto3 reports them."""
    try:
        call()
    except ClientError as exc:
        got = (exc.response.get("Error", {}).get("Code"), exc.response["ResponseMetadata"]["HTTPStatusCode"])
        assert got == (code, status), f"refused with {got[0]} {got[1]}, AWS answers {code} {status}: {exc}"
        return exc
    raise Allowed(f"allowed; AWS answers {code} {status}")


def raw_http(url: str, method: str = "GET", data: bytes | None = None) -> tuple[int, bytes]:
    """A plain HTTP request, as curl sends a presigned URL: no header beyond Host and Content-Length (urllib
    would add a Content-Type, which a SigV2 presigned PUT signs, so AWS would refuse it for that alone)."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.request(method, f"{parts.path}?{parts.query}", body=data)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def http_refused(code: str, status: int, url: str, method: str = "GET", data: bytes | None = None) -> None:
    """A presigned URL must get `status` with S3's XML error `code`."""
    got_status, body = raw_http(url, method, data)
    if got_status < 300:
        raise Allowed(f"allowed (HTTP {got_status}); AWS answers {code} {status}")
    try:
        got_code = ET.fromstring(body).findtext("Code")
    except ET.ParseError:
        got_code = f"(not XML: {body[:80]!r})"
    assert (got_code, got_status) == (code, status), \
        f"refused with {got_code} {got_status}, AWS answers {code} {status}"


def http_ok(url: str, method: str = "GET", data: bytes | None = None) -> bytes:
    status, body = raw_http(url, method, data)
    assert status == 200, f"HTTP {status}: {body[:300]!r}"
    return body


# -- the cases ----------------------------------------------------------------------------------------

CASES: dict[str, tuple[str, str, str, object]] = {}  # name -> (api, what is tried, expected, function(world))


def case(api: str, what: str, expected: str):
    def register(fn):
        CASES[fn.__name__] = (api, what, expected, fn)
        return fn
    return register


# S3: B against A's bucket -------------------------------------------------------------------------------

@case("s3", "B lists the objects of A's bucket (ListObjectsV2)", "AccessDenied 403")
def s3_list_objects_v2(w):
    refused("AccessDenied", 403, lambda: w.b.s3.list_objects_v2(Bucket=w.bucket))


@case("s3", "B lists the objects of A's bucket (ListObjects, v1)", "AccessDenied 403")
def s3_list_objects_v1(w):
    refused("AccessDenied", 403, lambda: w.b.s3.list_objects(Bucket=w.bucket))


@case("s3", "B lists the object versions of A's bucket", "AccessDenied 403")
def s3_list_object_versions(w):
    refused("AccessDenied", 403, lambda: w.b.s3.list_object_versions(Bucket=w.bucket))


@case("s3", "B gets an object of A's", "AccessDenied 403")
def s3_get_object(w):
    refused("AccessDenied", 403, lambda: w.b.s3.get_object(Bucket=w.bucket, Key="doc.txt"))


@case("s3", "B heads an object of A's", "403 403 (HEAD has no body)")
def s3_head_object(w):
    refused("403", 403, lambda: w.b.s3.head_object(Bucket=w.bucket, Key="doc.txt"))


@case("s3", "B heads A's bucket", "403 403 (HEAD has no body)")
def s3_head_bucket(w):
    refused("403", 403, lambda: w.b.s3.head_bucket(Bucket=w.bucket))


@case("s3", "B puts an object into A's bucket", "AccessDenied 403")
def s3_put_object(w):
    refused("AccessDenied", 403, lambda: w.b.s3.put_object(Bucket=w.bucket, Key="intruder.txt", Body=b"x"))
    assert w.a_keys() == A_KEYS


@case("s3", "B overwrites an object of A's", "AccessDenied 403")
def s3_overwrite_object(w):
    refused("AccessDenied", 403, lambda: w.b.s3.put_object(Bucket=w.bucket, Key="doc.txt", Body=b"overwritten"))
    assert w.a.s3.get_object(Bucket=w.bucket, Key="doc.txt")["Body"].read() == DOC


@case("s3", "B deletes an object of A's", "AccessDenied 403")
def s3_delete_object(w):
    bucket = w.victim_bucket()
    refused("AccessDenied", 403, lambda: w.b.s3.delete_object(Bucket=bucket, Key="keep.txt"))
    assert w.a_keys(bucket) == ["keep.txt"]


@case("s3", "B deletes A's bucket (DeleteBucket)", "AccessDenied 403")
def s3_delete_bucket(w):
    bucket = w.victim_bucket()
    w.a.s3.delete_object(Bucket=bucket, Key="keep.txt")  # empty, so only ownership can stop it
    refused("AccessDenied", 403, lambda: w.b.s3.delete_bucket(Bucket=bucket))
    assert bucket in [b["Name"] for b in w.a.s3.list_buckets()["Buckets"]]


@case("s3", "B copies an object out of A's bucket into its own (CopyObject)", "AccessDenied 403")
def s3_copy_from_a(w):
    refused("AccessDenied", 403, lambda: w.b.s3.copy_object(
        Bucket=w.b_bucket, Key="stolen.txt", CopySource={"Bucket": w.bucket, "Key": "doc.txt"}))
    assert sorted(o["Key"] for o in w.b.s3.list_objects_v2(Bucket=w.b_bucket).get("Contents", [])) == ["b.txt"]


@case("s3", "B copies its own object into A's bucket (CopyObject)", "AccessDenied 403")
def s3_copy_into_a(w):
    refused("AccessDenied", 403, lambda: w.b.s3.copy_object(
        Bucket=w.bucket, Key="planted.txt", CopySource={"Bucket": w.b_bucket, "Key": "b.txt"}))
    assert w.a_keys() == A_KEYS


@case("s3", "B copies a part out of A's object into its own upload (UploadPartCopy)", "AccessDenied 403")
def s3_upload_part_copy_from_a(w):
    upload = w.b.s3.create_multipart_upload(Bucket=w.b_bucket, Key="stolen.bin")["UploadId"]
    try:
        refused("AccessDenied", 403, lambda: w.b.s3.upload_part_copy(
            Bucket=w.b_bucket, Key="stolen.bin", UploadId=upload, PartNumber=1,
            CopySource={"Bucket": w.bucket, "Key": "doc.txt"}))
    finally:
        w.b.s3.abort_multipart_upload(Bucket=w.b_bucket, Key="stolen.bin", UploadId=upload)


@case("s3", "B starts a multipart upload into A's bucket", "AccessDenied 403")
def s3_create_multipart_upload(w):
    refused("AccessDenied", 403, lambda: w.b.s3.create_multipart_upload(Bucket=w.bucket, Key="intruder.bin"))
    uploads = w.a.s3.list_multipart_uploads(Bucket=w.bucket).get("Uploads", [])
    assert [u["Key"] for u in uploads] == ["big.bin"]


@case("s3", "B uploads a part into A's unfinished multipart upload", "AccessDenied 403")
def s3_upload_part(w):
    refused("AccessDenied", 403, lambda: w.b.s3.upload_part(
        Bucket=w.bucket, Key="big.bin", UploadId=w.upload, PartNumber=1, Body=b"p" * 1024))
    assert w.a.s3.list_parts(Bucket=w.bucket, Key="big.bin", UploadId=w.upload).get("Parts", []) == []


@case("s3", "B lists the parts of A's multipart upload", "AccessDenied 403")
def s3_list_parts(w):
    refused("AccessDenied", 403, lambda: w.b.s3.list_parts(Bucket=w.bucket, Key="big.bin", UploadId=w.upload))


@case("s3", "B completes A's multipart upload", "AccessDenied 403")
def s3_complete_multipart_upload(w):
    refused("AccessDenied", 403, lambda: w.b.s3.complete_multipart_upload(
        Bucket=w.bucket, Key="big.bin", UploadId=w.upload, MultipartUpload={"Parts": []}))
    assert w.a_keys() == A_KEYS


@case("s3", "B aborts A's multipart upload", "AccessDenied 403")
def s3_abort_multipart_upload(w):
    refused("AccessDenied", 403, lambda: w.b.s3.abort_multipart_upload(
        Bucket=w.bucket, Key="big.bin", UploadId=w.upload))
    assert [u["UploadId"] for u in w.a.s3.list_multipart_uploads(Bucket=w.bucket).get("Uploads", [])] == [w.upload]


@case("s3", "B lists the multipart uploads of A's bucket", "AccessDenied 403")
def s3_list_multipart_uploads(w):
    refused("AccessDenied", 403, lambda: w.b.s3.list_multipart_uploads(Bucket=w.bucket))


@case("s3", "B sets a bucket policy on A's bucket granting itself everything", "AccessDenied 403")
def s3_put_bucket_policy(w):
    policy = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{w.b.key}:root"}, "Action": "s3:*",
        "Resource": [f"arn:aws:s3:::{w.bucket}", f"arn:aws:s3:::{w.bucket}/*"]}]}
    refused("AccessDenied", 403, lambda: w.b.s3.put_bucket_policy(Bucket=w.bucket, Policy=json.dumps(policy)))
    refused("NoSuchBucketPolicy", 404, lambda: w.a.s3.get_bucket_policy(Bucket=w.bucket))


@case("s3", "B makes A's bucket public (PutBucketAcl public-read)", "AccessDenied 403")
def s3_put_bucket_acl(w):
    refused("AccessDenied", 403, lambda: w.b.s3.put_bucket_acl(Bucket=w.bucket, ACL="public-read"))


@case("s3", "B creates a bucket with the name of A's (names are global)", "BucketAlreadyExists 409")
def s3_create_bucket_with_a_name(w):
    refused("BucketAlreadyExists", 409, lambda: w.b.s3.create_bucket(Bucket=w.bucket))
    assert w.bucket not in [b["Name"] for b in w.b.s3.list_buckets()["Buckets"]]


@case("s3", "B's presigned GET of A's object (signed with B's own secret)", "AccessDenied 403")
def s3_presigned_get_by_b(w):
    url = w.b.s3.generate_presigned_url("get_object", Params={"Bucket": w.bucket, "Key": "doc.txt"}, ExpiresIn=300)
    http_refused("AccessDenied", 403, url)


@case("s3", "B's presigned GET of A's object, SigV4", "AccessDenied 403")
def s3_presigned_get_by_b_v4(w):
    url = w.b.client("s3", config=V4).generate_presigned_url(
        "get_object", Params={"Bucket": w.bucket, "Key": "doc.txt"}, ExpiresIn=300)
    http_refused("AccessDenied", 403, url)


@case("s3", "B's presigned PUT into A's bucket", "AccessDenied 403")
def s3_presigned_put_by_b(w):
    url = w.b.s3.generate_presigned_url("put_object", Params={"Bucket": w.bucket, "Key": "p.txt"}, ExpiresIn=300)
    http_refused("AccessDenied", 403, url, "PUT", b"x")
    assert w.a_keys() == A_KEYS


@case("s3", "an anonymous (unsigned) GET of A's object", "AccessDenied 403")
def s3_anonymous_get(w):
    anon = w.a.client("s3", config=Config(signature_version=UNSIGNED, s3={"addressing_style": "path"},
                                          retries={"max_attempts": 1}))
    refused("AccessDenied", 403, lambda: anon.get_object(Bucket=w.bucket, Key="doc.txt"))


@case("s3", "an anonymous (unsigned) PUT into A's bucket", "AccessDenied 403")
def s3_anonymous_put(w):
    anon = w.a.client("s3", config=Config(signature_version=UNSIGNED, s3={"addressing_style": "path"},
                                          retries={"max_attempts": 1}))
    refused("AccessDenied", 403, lambda: anon.put_object(Bucket=w.bucket, Key="anon.txt", Body=b"x"))
    assert w.a_keys() == A_KEYS


# SQS: B against A's queue, by its URL -------------------------------------------------------------------

@case("sqs", "B sends a message to A's queue", "AccessDenied 403")
def sqs_send_message(w):
    refused("AccessDenied", 403, lambda: w.b.sqs.send_message(QueueUrl=w.queue, MessageBody="from b"))


@case("sqs", "B sends a batch to A's queue", "AccessDenied 403")
def sqs_send_message_batch(w):
    refused("AccessDenied", 403, lambda: w.b.sqs.send_message_batch(
        QueueUrl=w.queue, Entries=[{"Id": "1", "MessageBody": "from b"}]))


@case("sqs", "B receives from A's queue", "AccessDenied 403")
def sqs_receive_message(w):
    refused("AccessDenied", 403, lambda: w.b.sqs.receive_message(QueueUrl=w.queue, WaitTimeSeconds=0))


@case("sqs", "B purges A's queue", "AccessDenied 403")
def sqs_purge_queue(w):
    url = w.victim_queue()
    refused("AccessDenied", 403, lambda: w.b.sqs.purge_queue(QueueUrl=url))
    assert w.queue_depth(url) == 1


@case("sqs", "B deletes A's queue", "AccessDenied 403")
def sqs_delete_queue(w):
    url = w.victim_queue()
    refused("AccessDenied", 403, lambda: w.b.sqs.delete_queue(QueueUrl=url))
    assert url in w.a.sqs.list_queues().get("QueueUrls", [])


@case("sqs", "B deletes a message of A's queue by A's receipt handle", "AccessDenied 403")
def sqs_delete_message(w):
    refused("AccessDenied", 403, lambda: w.b.sqs.delete_message(QueueUrl=w.handles_queue, ReceiptHandle=w.receipt))
    assert w.queue_depth(w.handles_queue) == 1


@case("sqs", "B reads A's queue's attributes", "AccessDenied 403")
def sqs_get_queue_attributes(w):
    refused("AccessDenied", 403, lambda: w.b.sqs.get_queue_attributes(QueueUrl=w.queue, AttributeNames=["All"]))


@case("sqs", "B sets a policy on A's queue granting itself everything", "AccessDenied 403")
def sqs_set_queue_attributes(w):
    policy = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": "*", "Action": "sqs:*", "Resource": queue_arn(w.a, "inbox")}]}
    refused("AccessDenied", 403, lambda: w.b.sqs.set_queue_attributes(
        QueueUrl=w.queue, Attributes={"Policy": json.dumps(policy)}))
    assert "Policy" not in w.a.sqs.get_queue_attributes(QueueUrl=w.queue, AttributeNames=["All"])["Attributes"]


# SNS: B against A's topic, by its ARN -------------------------------------------------------------------

@case("sns", "B publishes to A's topic", "AuthorizationError 403")
def sns_publish(w):
    refused("AuthorizationError", 403, lambda: w.b.sns.publish(TopicArn=w.topic, Message="from b"))


@case("sns", "B subscribes its own queue to A's topic", "AuthorizationError 403")
def sns_subscribe(w):
    refused("AuthorizationError", 403, lambda: w.b.sns.subscribe(
        TopicArn=w.topic, Protocol="sqs", Endpoint=queue_arn(w.b, "inbox")))
    subs = w.a.sns.list_subscriptions_by_topic(TopicArn=w.topic)["Subscriptions"]
    assert [s["Endpoint"] for s in subs] == [queue_arn(w.a, "inbox")]


@case("sns", "B lists the subscriptions of A's topic", "AuthorizationError 403")
def sns_list_subscriptions_by_topic(w):
    refused("AuthorizationError", 403, lambda: w.b.sns.list_subscriptions_by_topic(TopicArn=w.topic))


@case("sns", "B reads A's topic's attributes", "AuthorizationError 403")
def sns_get_topic_attributes(w):
    refused("AuthorizationError", 403, lambda: w.b.sns.get_topic_attributes(TopicArn=w.topic))


@case("sns", "B deletes A's topic", "AuthorizationError 403")
def sns_delete_topic(w):
    arn = w.victim_topic()
    refused("AuthorizationError", 403, lambda: w.b.sns.delete_topic(TopicArn=arn))
    assert arn in w.a_topics()


# DynamoDB: B's key is its own database ---------------------------------------------------------------------

@case("dynamodb", "B describes A's table by name", "ResourceNotFoundException 400")
def dynamodb_describe_a_table(w):
    refused("ResourceNotFoundException", 400, lambda: w.b.ddb.describe_table(TableName="orders"))


@case("dynamodb", "B gets an item of A's table", "ResourceNotFoundException 400")
def dynamodb_get_item(w):
    refused("ResourceNotFoundException", 400, lambda: w.b.ddb.get_item(TableName="orders", Key={"id": {"S": "o-1"}}))


# A's access key with a wrong secret ----------------------------------------------------------------------

@case("s3", "A's key, wrong secret: ListBuckets", "SignatureDoesNotMatch 403")
def wrong_secret_s3_list_buckets(w):
    refused("SignatureDoesNotMatch", 403, lambda: w.a.client("s3", secret=WRONG_SECRET).list_buckets())


@case("s3", "A's key, wrong secret: GetObject", "SignatureDoesNotMatch 403")
def wrong_secret_s3_get_object(w):
    refused("SignatureDoesNotMatch", 403,
            lambda: w.a.client("s3", secret=WRONG_SECRET).get_object(Bucket=w.bucket, Key="doc.txt"))


@case("s3", "A's key, wrong secret: PutObject", "SignatureDoesNotMatch 403")
def wrong_secret_s3_put_object(w):
    refused("SignatureDoesNotMatch", 403, lambda: w.a.client("s3", secret=WRONG_SECRET).put_object(
        Bucket=w.bucket, Key="forged.txt", Body=b"x"))
    assert w.a_keys() == A_KEYS


@case("s3", "A's key, wrong secret: a presigned GET", "SignatureDoesNotMatch 403")
def wrong_secret_s3_presigned_get(w):
    url = w.a.client("s3", secret=WRONG_SECRET).generate_presigned_url(
        "get_object", Params={"Bucket": w.bucket, "Key": "doc.txt"}, ExpiresIn=300)
    http_refused("SignatureDoesNotMatch", 403, url)


@case("s3", "A's key, wrong secret: a presigned GET, SigV4", "SignatureDoesNotMatch 403")
def wrong_secret_s3_presigned_get_v4(w):
    url = w.a.client("s3", secret=WRONG_SECRET, config=V4).generate_presigned_url(
        "get_object", Params={"Bucket": w.bucket, "Key": "doc.txt"}, ExpiresIn=300)
    http_refused("SignatureDoesNotMatch", 403, url)


@case("sqs", "A's key, wrong secret: ListQueues", "SignatureDoesNotMatch 403")
def wrong_secret_sqs_list_queues(w):
    refused("SignatureDoesNotMatch", 403, lambda: w.a.client("sqs", secret=WRONG_SECRET).list_queues())


@case("sqs", "A's key, wrong secret: ReceiveMessage", "SignatureDoesNotMatch 403")
def wrong_secret_sqs_receive(w):
    refused("SignatureDoesNotMatch", 403,
            lambda: w.a.client("sqs", secret=WRONG_SECRET).receive_message(QueueUrl=w.queue, WaitTimeSeconds=0))


@case("sns", "A's key, wrong secret: ListTopics", "SignatureDoesNotMatch 403")
def wrong_secret_sns_list_topics(w):
    refused("SignatureDoesNotMatch", 403, lambda: w.a.client("sns", secret=WRONG_SECRET).list_topics())


@case("sns", "A's key, wrong secret: Publish", "SignatureDoesNotMatch 403")
def wrong_secret_sns_publish(w):
    refused("SignatureDoesNotMatch", 403,
            lambda: w.a.client("sns", secret=WRONG_SECRET).publish(TopicArn=w.topic, Message="forged"))


@case("sts", "A's key, wrong secret: GetCallerIdentity", "SignatureDoesNotMatch 403")
def wrong_secret_sts(w):
    refused("SignatureDoesNotMatch", 403, lambda: w.a.client("sts", secret=WRONG_SECRET).get_caller_identity())


@case("dynamodb", "A's key, wrong secret: ListTables", "InvalidSignatureException 400")
def wrong_secret_dynamodb_list_tables(w):
    refused("InvalidSignatureException", 400, lambda: w.a.client("dynamodb", secret=WRONG_SECRET).list_tables())


@case("dynamodb", "A's key, wrong secret: GetItem", "InvalidSignatureException 400")
def wrong_secret_dynamodb_get_item(w):
    refused("InvalidSignatureException", 400, lambda: w.a.client("dynamodb", secret=WRONG_SECRET).get_item(
        TableName="orders", Key={"id": {"S": "o-1"}}))


# A key no namespace has --------------------------------------------------------------------------------------

@case("s3", "a key no namespace has: ListBuckets", "InvalidAccessKeyId 403")
def unknown_key_s3(w):
    refused("InvalidAccessKeyId", 403, lambda: w.a.client("s3", key=UNKNOWN_KEY, secret=WRONG_SECRET).list_buckets())


@case("sqs", "a key no namespace has: ListQueues", "InvalidClientTokenId 403")
def unknown_key_sqs(w):
    refused("InvalidClientTokenId", 403,
            lambda: w.a.client("sqs", key=UNKNOWN_KEY, secret=WRONG_SECRET).list_queues())


@case("sns", "a key no namespace has: ListTopics", "InvalidClientTokenId 403")
def unknown_key_sns(w):
    refused("InvalidClientTokenId", 403,
            lambda: w.a.client("sns", key=UNKNOWN_KEY, secret=WRONG_SECRET).list_topics())


@case("dynamodb", "a key no namespace has: ListTables (DynamoDB Local would make it a database)",
      "UnrecognizedClientException 400")
def unknown_key_dynamodb(w):
    refused("UnrecognizedClientException", 400,
            lambda: w.a.client("dynamodb", key=UNKNOWN_KEY, secret=WRONG_SECRET).list_tables())


@case("s3", "A's own presigned GET after it expired (SigV2 and SigV4)", "AccessDenied 403")
def s3_presigned_get_expired(w):
    urls = [c.generate_presigned_url("get_object", Params={"Bucket": w.bucket, "Key": "doc.txt"}, ExpiresIn=1)
            for c in (w.a.s3, w.a.client("s3", config=V4))]
    time.sleep(2.5)
    for url in urls:
        http_refused("AccessDenied", 403, url)


@pytest.mark.parametrize("name", list(CASES))
def test_cross_namespace_case(world, name):
    api, what, expected, fn = CASES[name]
    try:
        fn(world)
    except Allowed:
        OUTCOMES.setdefault(name, {})[world.flavor] = "**allowed**"
        raise
    except AssertionError as exc:
        OUTCOMES.setdefault(name, {})[world.flavor] = f"wrong: {str(exc).splitlines()[0][:120]}"
        raise
    OUTCOMES.setdefault(name, {})[world.flavor] = "denied as AWS"


# -- each namespace's own access still works, exactly ----------------------------------------------------------

OWN_CHECKS = {  # test -> what it checks (the docs' matrix lists them after the cases, "works" when it passed)
    "test_list_buckets_shows_only_your_own": "ListBuckets shows each namespace its own buckets only",
    "test_own_s3_access_works_exactly": "A's own S3: list, get, head, copy, a two-part multipart upload, presigned "
                                        "GET/PUT (SigV2 and SigV4) with its random secret; B's own bucket",
    "test_own_queues_topics_and_tables_work_exactly": "A's own queue (exactly its own message, and its topic's "
                                                      "fan-out), B's queue of the same name, DynamoDB items, STS",
    "test_aws_cli_cross_namespace_is_refused_and_own_access_works": "the AWS CLI: B refused on A's bucket, object, "
                                                                    "queue and topic, a wrong secret refused; A's "
                                                                    "`s3 cp` and B's `s3 ls` exact",
}


def worked(world, test: str) -> None:
    OUTCOMES.setdefault(test, {})[world.flavor] = "works"

def test_list_buckets_shows_only_your_own(world):
    a = sorted(b["Name"] for b in world.a.s3.list_buckets()["Buckets"])
    assert "mx-a-private" in a and all(n == "mx-a-private" or n.startswith("mx-a-victim-") for n in a)
    assert [b["Name"] for b in world.b.s3.list_buckets()["Buckets"]] == ["mx-b-own"]
    worked(world, "test_list_buckets_shows_only_your_own")


def test_own_s3_access_works_exactly(world):
    a = world.a.s3
    assert world.a_keys() == A_KEYS
    assert a.get_object(Bucket=world.bucket, Key="doc.txt")["Body"].read() == DOC
    assert a.head_object(Bucket=world.bucket, Key="dir/x.bin")["ContentLength"] == 2
    a.copy_object(Bucket=world.bucket, Key="copy.txt", CopySource={"Bucket": world.bucket, "Key": "doc.txt"})
    assert a.get_object(Bucket=world.bucket, Key="copy.txt")["Body"].read() == DOC
    # a multipart upload of two parts (the first at S3's 5 MiB minimum)
    up = a.create_multipart_upload(Bucket=world.bucket, Key="mp.bin")["UploadId"]
    parts = [{"PartNumber": n, "ETag": a.upload_part(Bucket=world.bucket, Key="mp.bin", UploadId=up, PartNumber=n,
                                                     Body=body)["ETag"]}
             for n, body in ((1, b"1" * (5 * 1024 * 1024)), (2, b"22"))]
    a.complete_multipart_upload(Bucket=world.bucket, Key="mp.bin", UploadId=up, MultipartUpload={"Parts": parts})
    got = a.get_object(Bucket=world.bucket, Key="mp.bin")["Body"].read()
    assert len(got) == 5 * 1024 * 1024 + 2 and got.endswith(b"122")
    # presigned GET and PUT with the namespace's own random secret: boto3's default (SigV2 query) and SigV4
    for signer in (a, world.a.client("s3", config=V4)):
        put = signer.generate_presigned_url("put_object", Params={"Bucket": world.bucket, "Key": "pre.txt"},
                                            ExpiresIn=300)
        http_ok(put, "PUT", b"presigned body")
        get = signer.generate_presigned_url("get_object", Params={"Bucket": world.bucket, "Key": "pre.txt"},
                                            ExpiresIn=300)
        assert http_ok(get) == b"presigned body"
        a.delete_object(Bucket=world.bucket, Key="pre.txt")
    for key in ("copy.txt", "mp.bin"):
        a.delete_object(Bucket=world.bucket, Key=key)
    assert world.a_keys() == A_KEYS
    # B's own bucket is B's
    world.b.s3.put_object(Bucket=world.b_bucket, Key="b2.txt", Body=b"b2")
    assert world.b.s3.get_object(Bucket=world.b_bucket, Key="b2.txt")["Body"].read() == b"b2"
    world.b.s3.delete_object(Bucket=world.b_bucket, Key="b2.txt")
    worked(world, "test_own_s3_access_works_exactly")


def test_own_queues_topics_and_tables_work_exactly(world):
    a = world.a
    # A's inbox holds exactly A's own message (nothing B tried to send arrived), then what A's topic fans out
    a.sns.publish(TopicArn=world.topic, Message="fanned out")
    bodies, deadline = [], time.monotonic() + 20
    while len(bodies) < 2 and time.monotonic() < deadline:
        for m in a.sqs.receive_message(QueueUrl=world.queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
                "Messages", []):
            body = m["Body"]
            bodies.append(json.loads(body)["Message"] if body.startswith("{") else body)
            a.sqs.delete_message(QueueUrl=world.queue, ReceiptHandle=m["ReceiptHandle"])
    assert sorted(bodies) == ["fanned out", "for a, from a"]
    assert a.sqs.receive_message(QueueUrl=world.queue, WaitTimeSeconds=0).get("Messages", []) == []
    # B's queue of the same name is B's own
    world.b.sqs.send_message(QueueUrl=world.b_queue, MessageBody="b to b")
    got = world.b.sqs.receive_message(QueueUrl=world.b_queue, WaitTimeSeconds=2)["Messages"]
    assert [m["Body"] for m in got] == ["b to b"]
    assert world.b.sns.list_subscriptions_by_topic(TopicArn=world.b_topic)["Subscriptions"] == []
    # DynamoDB: A's item, exactly; B has no tables
    assert a.ddb.get_item(TableName="orders", Key={"id": {"S": "o-1"}})["Item"] == {
        "id": {"S": "o-1"}, "total": {"N": "42"}}
    assert world.b.ddb.list_tables()["TableNames"] == []
    assert a.client("sts").get_caller_identity()["Account"] == a.key
    worked(world, "test_own_queues_topics_and_tables_work_exactly")


# -- the AWS CLI, as a user's shell runs it with `eval "$(localdev ns env B --format shell)"` -----------------

def aws_cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    cli_env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), **env}
    return subprocess.run(["aws", "--endpoint-url", env["AWS_ENDPOINT_URL"], *args], env=cli_env,
                          capture_output=True, text=True, timeout=120)


def cli_refused(proc: subprocess.CompletedProcess, code: str, operation: str) -> None:
    assert proc.returncode != 0, f"allowed: {proc.stdout}"
    assert f"An error occurred ({code}) when calling the {operation} operation" in proc.stderr, proc.stderr


def test_aws_cli_cross_namespace_is_refused_and_own_access_works(world):
    a, b = world.a.env, world.b.env
    cli_refused(aws_cli(b, "s3", "ls", f"s3://{world.bucket}"), "AccessDenied", "ListObjectsV2")
    cli_refused(aws_cli(b, "s3api", "get-object", "--bucket", world.bucket, "--key", "doc.txt", "/dev/null"),
                "AccessDenied", "GetObject")
    cli_refused(aws_cli(b, "sqs", "receive-message", "--queue-url", world.queue), "AccessDenied", "ReceiveMessage")
    cli_refused(aws_cli(b, "sns", "publish", "--topic-arn", world.topic, "--message", "x"),
                "AuthorizationError", "Publish")
    cli_refused(aws_cli({**a, "AWS_SECRET_ACCESS_KEY": WRONG_SECRET}, "s3", "ls"), "SignatureDoesNotMatch",
                "ListBuckets")
    own = aws_cli(a, "s3", "cp", f"s3://{world.bucket}/doc.txt", "-")
    assert own.returncode == 0 and own.stdout.encode() == DOC, own.stderr
    listed = aws_cli(b, "s3", "ls")
    assert listed.returncode == 0 and [line.split()[-1] for line in listed.stdout.splitlines()] == ["mx-b-own"]
    worked(world, "test_aws_cli_cross_namespace_is_refused_and_own_access_works")

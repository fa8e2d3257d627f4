"""AWS emulator snapshots: objects copied server-side into buckets of an account of the snapshot's own, and
queues and topics re-created from their attributes.

- S3: every bucket of the namespace (named `<namespace>-<rest>`, as seeds name them, since bucket names are
  global) is copied object by object into `ldsnap-<id>-<n>` of the snapshot's account, and back into
  `<new namespace>-<rest>`: CopyObject, keeping content type and metadata. MiniStack refuses a copy across
  accounts (403): there each object goes through localdev instead (GetObject, PutObject), object by object.
  Bucket settings (versioning, policies, CORS, tags) are not copied.
- SQS: queues re-created with their settable attributes (a dead-letter queue's ARN moved to the new
  account). Messages are not copied: a queue comes back empty, in flight or not.
- SNS: topics re-created with their attributes; subscriptions are not copied.
LocalStack keeps no state across its restarts: a snapshot's objects go with them (the registry keeps the row).
"""

from __future__ import annotations

import hashlib
from contextlib import ExitStack
from functools import partial

from localdev.concurrency import all_at_once, pool
from localdev.errors import BadInput
from localdev.services.aws.seeds import location
from localdev.services.aws_clients import access_key_id, error_code

QUEUE_ATTRIBUTES = ("DelaySeconds", "MaximumMessageSize", "MessageRetentionPeriod", "ReceiveMessageWaitTimeSeconds",
                    "VisibilityTimeout", "FifoQueue", "ContentBasedDeduplication", "DeduplicationScope",
                    "FifoThroughputLimit", "KmsMasterKeyId", "KmsDataKeyReusePeriodSeconds")
TOPIC_ATTRIBUTES = ("DisplayName", "FifoTopic", "ContentBasedDeduplication")


def store_account(sid: str) -> str:
    """The snapshot's own account: 12 digits derived from its id (so an interrupted take is found again)."""
    return str(10**11 + int(hashlib.sha256(sid.encode()).hexdigest(), 16) % (9 * 10**11))


class AccountCopier:
    copies_seeds = False  # a copy costs what a PutObject of the seed file does

    def __init__(self, svc):
        self.svc = svc

    def _store(self, sid: str, service: str):
        return self.svc.client(service, store_account(sid), "localdev", "us-east-1")

    def take(self, ns, sid: str, idle: bool) -> dict:
        instance = self.svc.instance()  # before the copies: a restart while they are made is then seen as one
        with ExitStack() as stack:
            s3, sqs, sns = (stack.enter_context(self.svc.ns_client(ns, s)) for s in ("s3", "sqs", "sns"))
            store = stack.enter_context(self._store(sid, "s3"))
            found = self.svc.resources(ns)
            buckets = []
            for n, bucket in enumerate(found["buckets"]):
                if not bucket.startswith(ns.name + "-"):
                    raise BadInput(f"aws: bucket {bucket!r} of namespace {ns.name!r} is not named "
                                   f"'{ns.name}-…': a copy needs a name of its own (bucket names are global), "
                                   "and only that prefix can be swapped for the copy's")
                target = f"ldsnap-{sid}-{n}"
                store.create_bucket(Bucket=target)
                _copy_objects(s3, bucket, store, target, self.svc)
                buckets.append({"rest": bucket[len(ns.name) + 1:], "store": target})
            queues = []
            for url in found["queues"]:
                attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"]).get("Attributes", {})
                kept = {k: v for k, v in attrs.items() if k in QUEUE_ATTRIBUTES}
                if "RedrivePolicy" in attrs:
                    kept["RedrivePolicy"] = attrs["RedrivePolicy"].replace(access_key_id(ns), "{account}")
                queues.append({"name": url.rsplit("/", 1)[1], "attributes": kept})
            topics = []
            for arn in found["topics"]:
                attrs = sns.get_topic_attributes(TopicArn=arn).get("Attributes", {})
                topics.append({"name": arn.rsplit(":", 1)[1],
                               "attributes": {k: v for k, v in attrs.items() if k in TOPIC_ATTRIBUTES}})
        part = {"buckets": buckets, "queues": queues, "topics": topics}
        return {**part, "instance": instance} if instance is not None else part

    def lost(self, sid: str, part: dict) -> str | None:
        """What the emulator no longer holds of the snapshot (it keeps nothing across a restart), or None.
        Queues and topics are re-made from the registry's part; only the copied buckets can go. The same start
        of the emulator as took the copies still holds them, unasked (one request fewer in a seeded create);
        after a restart, or where the runtime cannot tell, its buckets are listed."""
        if not part.get("buckets"):
            return None
        if part.get("instance") is not None and part["instance"] == self.svc.instance():
            return None
        with self._store(sid, "s3") as store:
            held = {b["Name"] for b in store.list_buckets().get("Buckets", [])}
        gone = [b["store"] for b in part["buckets"] if b["store"] not in held]
        if not gone:
            return None
        return (f"the AWS emulator no longer holds its copy of {len(gone)} of its {len(part['buckets'])} buckets "
                f"(it keeps no state across a restart, and was restarted since the snapshot was taken)")

    def create(self, ns, sid: str, part: dict) -> dict[str, str]:
        with pool(2) as steps:  # the marker beside the copies
            env, _ = all_at_once(steps, [partial(self.svc.create_namespace, ns),
                                         partial(self._fill, ns, sid, part, set())])
        return env

    def _fill(self, ns, sid: str, part: dict, existing: set[str]) -> None:
        """Put the snapshot's buckets, objects, queues and topics in the namespace's account; the buckets in
        `existing` are there already, empty. Each bucket, the queues and the topics at once."""
        for bucket in part["buckets"]:
            name = f"{ns.name}-{bucket['rest']}"
            if len(name) > 63:
                raise BadInput(f"aws: the copy of bucket '…-{bucket['rest']}' would be named {name!r}, longer "
                               "than the 63 characters S3 allows: use a shorter namespace name")
        with ExitStack() as stack:
            s3, sqs, sns = (stack.enter_context(self.svc.ns_client(ns, s)) for s in ("s3", "sqs", "sns"))
            store = stack.enter_context(self._store(sid, "s3"))
            steps = stack.enter_context(pool(2 + len(part["buckets"])))
            all_at_once(steps, [partial(self._fill_bucket, ns, s3, store, b, existing) for b in part["buckets"]]
                        + [partial(_make_queues, sqs, part["queues"], access_key_id(ns)),
                           partial(_make_topics, sns, part["topics"])])

    def _fill_bucket(self, ns, s3, store, bucket: dict, existing: set[str]) -> None:
        name = f"{ns.name}-{bucket['rest']}"
        if name not in existing:
            s3.create_bucket(Bucket=name, **location(ns.region))
            self.svc.record_bucket(ns, name)  # the gateway's ownership, as for the buckets it sees made
        _copy_objects(store, bucket["store"], s3, name, self.svc)

    def reset(self, ns, sid: str | None, part: dict | None) -> None:
        """Buckets the snapshot has too are emptied and kept (no delete and create); every other bucket, every
        queue (with its messages) and every topic go, all at once; then the snapshot's are put back. The
        account's marker stays (made again, in case the emulator lost it)."""
        wanted = {f"{ns.name}-{b['rest']}" for b in (part or {}).get("buckets", [])}
        found = self.svc.resources(ns)
        with ExitStack() as stack:
            s3, sqs, sns = (stack.enter_context(self.svc.ns_client(ns, s)) for s in ("s3", "sqs", "sns"))
            steps = stack.enter_context(pool(1 + sum(len(v) for v in found.values())))
            all_at_once(steps, [partial(self._clear_bucket, ns, s3, b, keep=b in wanted) for b in found["buckets"]]
                        + [partial(sqs.delete_queue, QueueUrl=url) for url in found["queues"]]
                        + [partial(sns.delete_topic, TopicArn=arn) for arn in found["topics"]]
                        + [partial(self.svc.create_namespace, ns)])
        if part is not None and sid is not None:
            self._fill(ns, sid, part, wanted & set(found["buckets"]))

    def _clear_bucket(self, ns, s3, bucket: str, keep: bool) -> None:
        self.svc._empty_bucket(s3, bucket)
        if not keep:
            s3.delete_bucket(Bucket=bucket)
            self.svc.record_bucket(ns, bucket, owned=False)

    def drop(self, sid: str, part: dict | None) -> None:
        with self._store(sid, "s3") as store:
            for bucket in store.list_buckets().get("Buckets", []):
                self.svc._empty_bucket(store, bucket["Name"])
                store.delete_bucket(Bucket=bucket["Name"])


def _make_queues(sqs, queues: list[dict], account: str) -> None:
    """Re-create the queues (a dead-letter queue's ARN moved to `account`), then their redrive policies once
    every dead-letter queue exists."""
    redrives = {}
    for queue in queues:
        attrs = dict(queue["attributes"])
        redrive = attrs.pop("RedrivePolicy", None)
        url = sqs.create_queue(QueueName=queue["name"], Attributes=attrs)["QueueUrl"]
        if redrive:
            redrives[url] = redrive.replace("{account}", account)
    for url, redrive in redrives.items():
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"RedrivePolicy": redrive})


def _make_topics(sns, topics: list[dict]) -> None:
    for topic in topics:
        sns.create_topic(Name=topic["name"], Attributes=topic["attributes"])


def _copy_objects(src, src_bucket: str, dst, dst_bucket: str, svc) -> None:
    """Every object of `src_bucket` into `dst_bucket`: CopyObject by `dst`'s account, or, where the emulator
    refuses that across accounts (remembered on the service), a GetObject by `src` and a PutObject by `dst`."""
    from botocore.exceptions import ClientError

    server_side = getattr(svc, "cross_account_copy", True)
    for page in src.get_paginator("list_objects_v2").paginate(Bucket=src_bucket):
        for obj in page.get("Contents", []):
            key = obj["Key"]
            if server_side:
                try:
                    dst.copy_object(Bucket=dst_bucket, Key=key, CopySource={"Bucket": src_bucket, "Key": key},
                                    MetadataDirective="COPY")
                    continue
                except ClientError as exc:
                    if error_code(exc) not in ("AccessDenied", "403"):
                        raise
                    server_side = svc.cross_account_copy = False
            got = src.get_object(Bucket=src_bucket, Key=key)
            dst.put_object(Bucket=dst_bucket, Key=key, Body=got["Body"].read(),
                           ContentType=got.get("ContentType") or "application/octet-stream",
                           Metadata=got.get("Metadata") or {})


"""The AWS emulator's part of an export: seeds/aws/s3/<folder>/<key> (each object a file, streamed from
the emulator), seeds/aws/s3-metadata.json (content type and user metadata of the objects whose type is
not the one their file name suggests, or that have metadata), seeds/aws/sqs.json (queues and their
settable attributes).

Not copied, and said so in the manifest: SQS messages (queues come back empty). Refused (BadInput), as the
seeds format cannot hold them: SNS topics, a bucket whose name does not start with `<namespace>-` (seeded
buckets are named that way), an object key that is no file path (empty or dot segments, a key that is also
another key's folder), and queue attributes that name another queue or account by ARN (RedrivePolicy,
RedriveAllowPolicy, Policy).

Consistency: listings, then one read per object and per queue: each object is read whole, as one PUT left
it; an object or queue made while the export runs may or may not be in it.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
from contextlib import ExitStack
from pathlib import Path, PurePosixPath

from localdev.errors import BadInput
from localdev.exports import Digest, Summary, canonical
from localdev.services.aws.seeds import BUCKET_RE, META_FILE

# The attributes CreateQueue takes (the rest are read-only figures or ARNs).
SETTABLE = ("DelaySeconds", "MaximumMessageSize", "MessageRetentionPeriod", "ReceiveMessageWaitTimeSeconds",
            "VisibilityTimeout", "FifoQueue", "ContentBasedDeduplication", "DeduplicationScope",
            "FifoThroughputLimit", "KmsMasterKeyId", "KmsDataKeyReusePeriodSeconds", "SqsManagedSseEnabled")
NAMES_OTHERS = ("RedrivePolicy", "RedriveAllowPolicy", "Policy")
IN_FLIGHT = ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
             "ApproximateNumberOfMessagesDelayed")


def guessed_type(key: str) -> str:
    """The content type the seed loader gives an object of this name (the sidecar names the others)."""
    return mimetypes.guess_type(PurePosixPath(key).name)[0] or "application/octet-stream"


def dump(svc, ns, folder: Path | None) -> Summary:
    digest = Digest()
    counts = {"buckets": 0, "objects": 0, "queues": 0}
    notes: list[str] = []
    with ExitStack() as stack:
        s3, sqs, sns = (stack.enter_context(svc.ns_client(ns, api)) for api in ("s3", "sqs", "sns"))
        topics = [t["TopicArn"] for page in sns.get_paginator("list_topics").paginate() for t in page.get("Topics", [])]
        if topics:
            raise BadInput(f"aws: namespace {ns.name!r} has SNS topics ({topics[0]}): the seeds format holds S3 "
                           "and SQS only, so it cannot be exported yet")
        prefix = f"{ns.name}-"
        metadata: dict[str, dict] = {}
        for bucket in sorted(b["Name"] for b in s3.list_buckets().get("Buckets", [])):
            if folder and not bucket.startswith(prefix):  # (a checksum takes any bucket as it is)
                raise BadInput(f"aws: bucket {bucket!r} does not start with {prefix!r}: seeded buckets are named "
                               "<namespace>-<folder>, so an import could not give it back its name; it cannot be "
                               "exported")
            name = bucket.removeprefix(prefix)
            if folder and not BUCKET_RE.fullmatch(name):
                raise BadInput(f"aws: bucket {bucket!r}: {name!r} after the namespace's prefix is not a bucket name of "
                               "its own (3-63 characters), which the seeds format needs; it cannot be exported")
            counts["buckets"] += 1
            digest.add("bucket", name)
            root = folder / "s3" / name if folder else None
            if root:
                root.mkdir(parents=True)
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
                for listed in page.get("Contents", []):
                    key = listed["Key"]
                    answer = s3.get_object(Bucket=bucket, Key=key)
                    body_hash = _copy(answer["Body"], _target(root, bucket, key) if root else None)
                    content_type = answer.get("ContentType") or "application/octet-stream"
                    meta = answer.get("Metadata") or {}
                    digest.add("object", name, key, body_hash, content_type, canonical(meta))
                    counts["objects"] += 1
                    if content_type != guessed_type(key) or meta:
                        entry = {"ContentType": content_type, **({"Metadata": meta} if meta else {})}
                        metadata.setdefault(name, {})[key] = entry
        queues, messages = [], 0
        for page in sqs.get_paginator("list_queues").paginate():
            for url in page.get("QueueUrls", []):
                attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"]).get("Attributes", {})
                queue = url.rstrip("/").rsplit("/", 1)[1]
                named = [a for a in NAMES_OTHERS if attributes.get(a)]
                if named:
                    raise BadInput(f"aws: queue {queue!r} has {named[0]}, which names other queues or accounts by "
                                   "ARN: the seeds format cannot carry it to another namespace; it cannot be "
                                   "exported yet")
                kept = {k: attributes[k] for k in SETTABLE if k in attributes}
                messages += sum(int(attributes.get(a, 0)) for a in IN_FLIGHT)
                queues.append({"name": queue, "attributes": kept})
                digest.add("queue", queue, canonical(kept))
        counts["queues"] = len(queues)
        if messages:
            notes.append(f"aws: {messages} SQS message(s) were in the queues; messages are not exported (queues "
                         "come back empty)")
        if folder and queues:
            (folder / "sqs.json").write_text(json.dumps(sorted(queues, key=lambda q: q["name"]), indent=1) + "\n")
        if folder and metadata:
            (folder / META_FILE).write_text(json.dumps(metadata, indent=1, sort_keys=True) + "\n")
    return Summary(counts=counts, checksum=digest.hexdigest(), notes=notes)


def _target(root: Path, bucket: str, key: str) -> Path:
    """The file an object becomes; BadInput for a key that cannot be one (the loader would read it otherwise)."""
    parts = key.split("/")
    if any(p in ("", ".", "..") or p.startswith(".") for p in parts):
        raise BadInput(f"aws: object {key!r} in bucket {bucket!r} is not a plain file path (an empty, '.' or '..' "
                       "segment, or one starting with '.'): the seeds format cannot hold it")
    path = root.joinpath(*parts)
    if path.exists() or any(parent.is_file() for parent in path.parents if parent != root):
        raise BadInput(f"aws: object {key!r} in bucket {bucket!r} is both an object and another object's folder: "
                       "the seeds format cannot hold both")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _copy(body, path: Path | None) -> str:
    h = hashlib.sha256()
    with body, (open(path, "wb") if path else _Discard()) as out:
        for chunk in iter(lambda: body.read(1 << 20), b""):
            h.update(chunk)
            out.write(chunk)
    return h.hexdigest()


class _Discard:
    def write(self, data) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass


def version(svc) -> str:
    from localdev.services.aws import install as prov

    return f"{svc.flavor} " + (prov.LOCALSTACK_VERSION if svc.flavor == "localstack" else prov.MINISTACK_VERSION)

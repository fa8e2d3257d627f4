"""Seeds for the AWS emulator: parsed and validated in full first, then applied to one namespace's account.

    seeds/aws/s3/<bucket>/<key path>   each file becomes an object of bucket <namespace>-<bucket>
    seeds/aws/sqs.json                 [{"name": "jobs", "attributes": {"VisibilityTimeout": "30"}}]
    seeds/aws/s3-metadata.json         {"<folder>": {"<key>": {"ContentType": "...", "Metadata": {...}}}}
                                       (optional: objects not listed get the type their name suggests)

Bucket names are global across accounts in both emulators (as on AWS), so the namespace name is put in
front of every seeded bucket; queue names are per account and kept as written.
"""

from __future__ import annotations

import json
import mimetypes
import re
from functools import partial
from pathlib import Path

from localdev.errors import BadInput, LocalDevError
from localdev.services.aws_clients import error_code
from localdev.undo import Undo

BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{0,61}[a-z0-9]$")
META_FILE = "s3-metadata.json"
QUEUE_RE = re.compile(r"^[A-Za-z0-9_-]{1,75}(\.fifo)?$")


def bucket_name(ns_name: str, folder: str) -> str:
    return f"{ns_name}-{folder}"


def load(folder: Path) -> dict:
    buckets: dict[str, list[tuple[str, Path]]] = {}
    queues: list[dict] = []
    meta_file = None
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.name == "s3" and entry.is_dir():
            buckets = _load_s3(entry)
        elif entry.name == "sqs.json" and entry.is_file():
            queues = _load_sqs(entry)
        elif entry.name == META_FILE and entry.is_file():
            meta_file = entry
        else:
            raise BadInput(f"{entry}: unexpected entry; seeds/aws holds a folder s3/ (one folder per bucket), "
                           f"a file sqs.json and optionally {META_FILE}")
    metadata = _load_metadata(meta_file, buckets) if meta_file else {}
    return {"buckets": buckets, "queues": queues, "metadata": metadata}


def _load_metadata(path: Path, buckets: dict[str, list[tuple[str, Path]]]) -> dict[str, dict[str, dict]]:
    """{folder: {key: {"ContentType": str, "Metadata": {str: str}}}}, every key one of the seeded objects."""
    data = _read_json(path)
    if not isinstance(data, dict):
        raise BadInput(f"{path}: expected an object {{\"<folder>\": {{\"<key>\": {{\"ContentType\": ...}}}}}}")
    for folder, objects in data.items():
        keys = {key for key, _ in buckets.get(folder, [])}
        if not isinstance(objects, dict):
            raise BadInput(f"{path}: {folder!r}: expected an object of keys")
        for key, meta in objects.items():
            where = f"{path}: {folder}/{key}"
            if key not in keys:
                raise BadInput(f"{where}: no such file under s3/{folder}/")
            if not isinstance(meta, dict) or set(meta) - {"ContentType", "Metadata"} or \
                    not isinstance(meta.get("ContentType", ""), str) or \
                    not isinstance(meta.get("Metadata", {}), dict) or \
                    not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.get("Metadata", {}).items()):
                raise BadInput(f"{where}: expected {{\"ContentType\": \"<type>\", \"Metadata\": {{<name>: <text>}}}}")
    return data


def _load_s3(root: Path) -> dict[str, list[tuple[str, Path]]]:
    buckets = {}
    for bucket_dir in sorted(root.iterdir()):
        if not bucket_dir.is_dir():
            raise BadInput(f"{bucket_dir}: seeds/aws/s3 holds one folder per bucket, not files")
        if not BUCKET_RE.fullmatch(bucket_dir.name) or ".." in bucket_dir.name:
            raise BadInput(f"{bucket_dir}: {bucket_dir.name!r} is not a valid S3 bucket name (3-63 lowercase "
                           "letters, digits, '.' or '-', starting and ending with a letter or digit)")
        buckets[bucket_dir.name] = [(p.relative_to(bucket_dir).as_posix(), p)
                                    for p in sorted(bucket_dir.rglob("*")) if p.is_file()]
    return buckets


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise BadInput(f"{path}:{exc.lineno}: invalid JSON: {exc.msg}") from None
    except UnicodeDecodeError as exc:
        raise BadInput(f"{path}: not UTF-8 text ({exc.reason})") from None


def _load_sqs(path: Path) -> list[dict]:
    data = _read_json(path)
    if not isinstance(data, list):
        raise BadInput(f"{path}: expected a list of queues, e.g. [{{\"name\": \"jobs\", \"attributes\": {{}}}}]")
    seen = set()
    queues = []
    for i, item in enumerate(data, 1):
        where = f"{path}: queue {i}"
        if not isinstance(item, dict) or set(item) - {"name", "attributes"}:
            raise BadInput(f"{where}: expected an object with keys \"name\" and optionally \"attributes\"")
        name = item.get("name")
        if not isinstance(name, str) or not QUEUE_RE.fullmatch(name):
            raise BadInput(f"{where}: invalid queue name {name!r} (1-80 letters, digits, '-' or '_', "
                           "'.fifo' at the end for a FIFO queue)")
        if name in seen:
            raise BadInput(f"{where}: queue {name!r} appears twice")
        seen.add(name)
        attributes = item.get("attributes", {})
        if not isinstance(attributes, dict) or not all(isinstance(k, str) and isinstance(v, (str, int, bool))
                                                        and not isinstance(v, float) for k, v in attributes.items()):
            raise BadInput(f"{where}: \"attributes\" must map attribute names to strings or integers")
        attributes = {k: (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in attributes.items()}
        if name.endswith(".fifo"):
            attributes.setdefault("FifoQueue", "true")
        queues.append({"name": name, "attributes": attributes})
    return queues


def apply(svc, ns, fixtures: dict, undo: Undo) -> None:
    """Create the buckets, objects and queues. `undo` learns how to take each step back: remove a bucket
    or queue this call created; in a bucket that existed, delete the objects it added and put back those
    it overwrote."""
    s3, sqs = undo.hold(svc.ns_client(ns, "s3")), undo.hold(svc.ns_client(ns, "sqs"))
    names = _bucket_names(ns, fixtures)
    # Listed, not inferred from CreateBucket: in us-east-1 creating a bucket one already owns succeeds.
    existing = svc.resources(ns)
    for folder, objects in fixtures["buckets"].items():
        name = names[folder]
        made = name not in existing["buckets"]
        if made:
            _create_bucket(svc, ns, s3, folder, name)
            undo.add(partial(_remove_bucket, svc, ns, s3), name)
        svc.record_bucket(ns, name)
        for key, path in objects:
            if not made:
                undo.add(partial(_put_back, s3, name, key), _former_object(s3, name, key))
            _put_object(s3, fixtures, folder, name, key, path)
    for url in _create_queues(sqs, fixtures["queues"]):
        if url not in existing["queues"]:
            undo.add(sqs.delete_queue, QueueUrl=url)


def apply_fresh(svc, ns, fixtures: dict, marker) -> None:
    """The seeds of a namespace being created: its account is new and empty, and a failed create drops the
    whole namespace, so nothing is listed first or recorded to take back, and every step that waits on no
    other runs at once: `marker()`, each bucket's creation and, as soon as that bucket exists, its objects and
    the record of its owner; and each queue (one after the other, in the file's order, if any has a redrive
    policy: it names a queue made before it)."""
    from localdev.concurrency import finished, pool, settled, started

    names = _bucket_names(ns, fixtures)
    in_order = any("RedrivePolicy" in q["attributes"] for q in fixtures["queues"])
    objects = sum(len(items) for items in fixtures["buckets"].values())
    with svc.ns_client(ns, "s3") as s3, svc.ns_client(ns, "sqs") as sqs, \
            pool(1 + len(fixtures["queues"]) + len(names) + objects) as steps:
        queues = [partial(_create_queues, sqs, fixtures["queues"])] if in_order else \
            [partial(_create_queues, sqs, [q]) for q in fixtures["queues"]]

        def bucket(folder: str, name: str) -> list:
            """Creates the bucket, then starts what needs it (and returns at once: a step never waits on
            the pool it runs in, which a seeds folder of many buckets would fill)."""
            _create_bucket(svc, ns, s3, folder, name)
            return started(steps, [partial(svc.record_bucket, ns, name)]
                           + [partial(_put_object, s3, fixtures, folder, name, key, path)
                              for key, path in fixtures["buckets"][folder]])

        others = started(steps, [marker, *queues])
        made = started(steps, [partial(bucket, folder, name) for folder, name in names.items()])
        settled(made)
        then = [f for m in made if m.exception() is None for f in m.result()]
        settled(then + others)  # nothing left running behind a failure
        finished(made + then + others)


def location(region: str) -> dict:
    """CreateBucket's arguments for a bucket in `region` (us-east-1 takes none)."""
    return {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}


def _bucket_names(ns, fixtures: dict) -> dict[str, str]:
    names = {}
    for folder in fixtures["buckets"]:
        name = names[folder] = bucket_name(ns.name, folder)
        if len(name) > 63:
            raise BadInput(f"seeds/aws/s3/{folder}: bucket {name!r} (the namespace's name, '-', the folder's) "
                           "is longer than the 63 characters S3 allows: use a shorter folder name")
    return names


def _create_bucket(svc, ns, s3, folder: str, name: str) -> None:
    """Create the bucket; the caller records it as the namespace's (`svc.record_bucket`: seeded buckets are
    the namespace's, as those it makes through the gateway)."""
    from botocore.exceptions import ClientError

    try:
        s3.create_bucket(Bucket=name, **location(ns.region))
    except ClientError as exc:
        if error_code(exc) == "BucketAlreadyExists":
            raise LocalDevError(f"aws: bucket {name!r} belongs to another account (S3 bucket names are "
                                "global): delete it there or rename seeds/aws/s3/" + folder) from None
        raise


def _put_object(s3, fixtures: dict, folder: str, bucket: str, key: str, path: Path) -> None:
    meta = fixtures.get("metadata", {}).get(folder, {}).get(key, {})
    content_type = meta.get("ContentType") or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    with open(path, "rb") as body:
        s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type, Metadata=meta.get("Metadata", {}))


def _create_queues(sqs, queues: list[dict]) -> list[str]:
    return [sqs.create_queue(QueueName=q["name"], Attributes=q["attributes"])["QueueUrl"] for q in queues]


def _remove_bucket(svc, ns, s3, bucket: str) -> None:
    svc._empty_bucket(s3, bucket)
    s3.delete_bucket(Bucket=bucket)
    svc.record_bucket(ns, bucket, owned=False)


def _former_object(s3, bucket: str, key: str) -> dict | None:
    """What an object holds now (None: there is none), to put back."""
    from botocore.exceptions import ClientError

    try:
        found = s3.get_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if error_code(exc) in ("NoSuchKey", "404"):
            return None
        raise
    return {"Body": found["Body"].read(), "ContentType": found.get("ContentType") or "application/octet-stream",
            "Metadata": found.get("Metadata") or {}}


def _put_back(s3, bucket: str, key: str, former: dict | None) -> None:
    if former is None:
        s3.delete_object(Bucket=bucket, Key=key)
    else:
        s3.put_object(Bucket=bucket, Key=key, **former)

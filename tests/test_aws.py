"""The AWS emulator's conformance suite: the same namespace, isolation and seeding tests for each flavor,
against a real emulator started the way users start it, checked with real boto3 and the real AWS CLI.

Cross-account access is refused by localdev's AWS gateway on both flavors (LocalStack alone allows it):
the tests pin that down, so the README's isolation table stays true.
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from conftest import start_cluster
from localdev.names import Namespace
from localdev.waiting import poll_until

FLAVORS = ["localstack", "ministack"]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=FLAVORS)
def aws(request, tmp_path_factory):
    """One cluster (postgres for the registry + the emulator, with its agent) per flavor."""
    handle = start_cluster(tmp_path_factory, ["postgres", "aws"], {"aws": {"flavor": request.param}})
    handle.flavor = request.param
    yield handle
    handle.close()


def client(env: dict, service: str):
    return boto3.session.Session(
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_REGION"]).client(
        service, endpoint_url=env["AWS_ENDPOINT_URL"],
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))


def aws_cli(env: dict, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
    """The AWS CLI with exactly the namespace's environment (`localdev ns env`), as a user's shell has it.

    `--endpoint-url` is passed too: AWS CLI v1 ignores AWS_ENDPOINT_URL for `aws sqs` (it forces
    queue.amazonaws.com), see the README."""
    cli_env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), **env}
    proc = subprocess.run(["aws", "--endpoint-url", env["AWS_ENDPOINT_URL"], "--output", "json", *args],
                          env=cli_env, capture_output=True, text=True, timeout=120, input=input)
    if check and proc.returncode != 0:
        raise AssertionError(f"aws {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    return proc


def as_ns(name: str, env: dict) -> Namespace:
    return Namespace(name=name, region=env["AWS_REGION"], secrets={"aws": {
        "access_key_id": env["AWS_ACCESS_KEY_ID"], "secret_access_key": env["AWS_SECRET_ACCESS_KEY"]}})


def new_ns(h, name: str, *extra: str) -> dict:
    h.cli("ns", "create", name, "--no-seed" if not extra else "--seed", *extra, check=True)
    return h.ns_env(name)


def listings(env: dict) -> dict:
    s3, sqs, sns = client(env, "s3"), client(env, "sqs"), client(env, "sns")
    return {"buckets": sorted(b["Name"] for b in s3.list_buckets()["Buckets"]),
            "queues": sorted(sqs.list_queues().get("QueueUrls", [])),
            "topics": sorted(t["TopicArn"] for t in sns.list_topics()["Topics"])}


def test_env_names_the_emulator_and_a_12_digit_account(aws):
    env = new_ns(aws, "env-a")
    assert env["AWS_ENDPOINT_URL"] == f"http://127.0.0.1:{aws.cluster.services['aws'].port}"
    assert env["AWS_ACCESS_KEY_ID"].isdigit() and len(env["AWS_ACCESS_KEY_ID"]) == 12
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "us-east-1"
    ident = client(env, "sts").get_caller_identity()
    assert ident["Account"] == env["AWS_ACCESS_KEY_ID"]
    assert json.loads(aws_cli(env, "sts", "get-caller-identity").stdout)["Account"] == env["AWS_ACCESS_KEY_ID"]


def test_listens_on_loopback_only(aws):
    svc = aws.cluster.services["aws"]
    for port in (svc.port, svc.backend_port):  # the gateway's, and the emulator's own behind it
        out = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True, check=True).stdout
        addresses = {line.split()[3] for line in out.splitlines() if line.strip()}
        assert addresses == {f"127.0.0.1:{port}"}, out


def test_two_namespaces_do_not_see_each_others_queues_buckets_topics(aws):
    a, b = new_ns(aws, "iso-a"), new_ns(aws, "iso-b")
    s3a = client(a, "s3")
    s3a.create_bucket(Bucket="iso-a-data")
    s3a.put_object(Bucket="iso-a-data", Key="k.txt", Body=b"a's")
    qa = client(a, "sqs").create_queue(QueueName="jobs")["QueueUrl"]
    ta = client(a, "sns").create_topic(Name="events")["TopicArn"]
    assert a["AWS_ACCESS_KEY_ID"] in qa and a["AWS_ACCESS_KEY_ID"] in ta
    # the same queue and topic names in b are b's own
    qb = client(b, "sqs").create_queue(QueueName="jobs")["QueueUrl"]
    client(b, "sns").create_topic(Name="events")
    assert qb != qa

    assert listings(a) == {"buckets": ["iso-a-data"], "queues": [qa], "topics": [ta]}
    lb = listings(b)
    assert lb["buckets"] == [] and lb["queues"] == [qb] and all(b["AWS_ACCESS_KEY_ID"] in t for t in lb["topics"])
    # the same through the AWS CLI
    assert aws_cli(b, "s3", "ls").stdout.strip() == ""
    assert "iso-a-data" in aws_cli(a, "s3", "ls").stdout
    assert json.loads(aws_cli(b, "sqs", "list-queues").stdout)["QueueUrls"] == [qb]
    topics_b = [t["TopicArn"] for t in json.loads(aws_cli(b, "sns", "list-topics").stdout)["Topics"]]
    assert ta not in topics_b and len(topics_b) == 1


def test_cross_account_access_is_refused_by_the_gateway(aws):
    a, b = new_ns(aws, "xa-a"), new_ns(aws, "xa-b")
    client(a, "s3").create_bucket(Bucket="xa-a-private")
    client(a, "s3").put_object(Bucket="xa-a-private", Key="secret", Body=b"a only")
    s3b = client(b, "s3")
    # enforced on both flavors (LocalStack alone would allow it): the gateway knows who owns the bucket
    for call in (lambda: s3b.get_object(Bucket="xa-a-private", Key="secret"),
                 lambda: s3b.put_object(Bucket="xa-a-private", Key="intruder", Body=b"x"),
                 lambda: s3b.list_objects_v2(Bucket="xa-a-private")):
        with pytest.raises(ClientError) as err:
            call()
        assert err.value.response["Error"]["Code"] == "AccessDenied"
        assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert aws_cli(b, "s3", "ls", "s3://xa-a-private", check=False).returncode != 0
    # ...and so is sending to another account's queue by its URL (neither emulator checks that)
    qa = client(a, "sqs").create_queue(QueueName="inbox")["QueueUrl"]
    with pytest.raises(ClientError) as err:
        client(b, "sqs").send_message(QueueUrl=qa, MessageBody="from b")
    assert err.value.response["Error"]["Code"] == "AccessDenied"
    assert client(a, "sqs").receive_message(QueueUrl=qa, WaitTimeSeconds=1).get("Messages", []) == []


def test_bucket_names_are_global_across_accounts(aws):
    a, b = new_ns(aws, "gl-a"), new_ns(aws, "gl-b")
    client(a, "s3").create_bucket(Bucket="gl-shared-name")
    with pytest.raises(ClientError) as err:
        client(b, "s3").create_bucket(Bucket="gl-shared-name")
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409
    assert err.value.response["Error"]["Code"] == "BucketAlreadyExists"
    assert aws_cli(b, "s3", "mb", "s3://gl-shared-name", check=False).returncode != 0


def test_delete_leaves_nothing_behind(aws):
    env = new_ns(aws, "del-a")
    s3 = client(env, "s3")
    for bucket in ("del-a-one", "del-a-two"):
        s3.create_bucket(Bucket=bucket)
        for i in range(3):
            s3.put_object(Bucket=bucket, Key=f"dir/{i}.txt", Body=b"x" * i)
    s3.put_bucket_versioning(Bucket="del-a-one", VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket="del-a-one", Key="dir/0.txt", Body=b"v2")
    s3.delete_object(Bucket="del-a-one", Key="dir/1.txt")  # a delete marker
    aws_cli(env, "s3", "cp", "-", "s3://del-a-two/from-cli.txt", input="from the CLI")
    sqs = client(env, "sqs")
    for name in ("q1", "q2.fifo"):
        attrs = {"FifoQueue": "true"} if name.endswith(".fifo") else {}
        url = sqs.create_queue(QueueName=name, Attributes=attrs)["QueueUrl"]
        if not attrs:
            sqs.send_message(QueueUrl=url, MessageBody="m")
    topic = client(env, "sns").create_topic(Name="t")["TopicArn"]
    client(env, "sns").subscribe(TopicArn=topic, Protocol="sqs",
                                 Endpoint=f"arn:aws:sqs:us-east-1:{env['AWS_ACCESS_KEY_ID']}:q1")
    before = listings(env)
    assert len(before["buckets"]) == 2 and len(before["queues"]) == 2 and len(before["topics"]) == 1

    aws.cli("ns", "delete", "del-a", check=True)
    with pytest.raises(ClientError) as err:  # the gateway no longer knows the key...
        client(env, "s3").list_buckets()
    assert err.value.response["Error"]["Code"] == "InvalidAccessKeyId"
    # ...and the account is empty in the emulator itself (asked behind the gateway, with the same key)
    behind = {**env, "AWS_ENDPOINT_URL": aws.cluster.services["aws"].endpoint}
    assert listings(behind) == {"buckets": [], "queues": [], "topics": []}
    assert json.loads(aws_cli(behind, "sqs", "list-queues").stdout or "{}").get("QueueUrls", []) == []
    assert aws_cli(behind, "s3", "ls").stdout.strip() == ""
    # the bucket names are free again for any account
    other = new_ns(aws, "del-b")
    client(other, "s3").create_bucket(Bucket="del-a-one")
    # deleting twice is fine
    assert aws.cli("ns", "delete", "del-a", "--missing-ok").returncode == 0


def write_seeds(root) -> str:
    (root / "aws" / "s3" / "assets" / "img").mkdir(parents=True)
    (root / "aws" / "s3" / "assets" / "hello.txt").write_text("hello\n")
    (root / "aws" / "s3" / "assets" / "img" / "logo.svg").write_text("<svg/>")
    (root / "aws" / "sqs.json").write_text(json.dumps(
        [{"name": "jobs", "attributes": {"VisibilityTimeout": 45}}, {"name": "ordered.fifo"}]))
    return str(root)


def seeded_state(env: dict, name: str) -> dict:
    s3 = client(env, "s3")
    bucket = f"{name}-assets"
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))
    queues = sorted(u.rsplit("/", 1)[1] for u in client(env, "sqs").list_queues().get("QueueUrls", []))
    return {"keys": keys, "queues": queues, "hello": s3.get_object(Bucket=bucket, Key="hello.txt")["Body"].read()}


SEEDED = {"keys": ["hello.txt", "img/logo.svg"], "queues": ["jobs", "ordered.fifo"], "hello": b"hello\n"}


def test_kill_9_is_repaired_and_the_lost_state_reported_then_restored_by_seed(aws, tmp_path):
    seeds = write_seeds(tmp_path / "seeds")
    env = new_ns(aws, "crash-a", "--seeds", seeds)
    other = new_ns(aws, "crash-b")
    assert seeded_state(env, "crash-a") == SEEDED
    svc = aws.cluster.services["aws"]
    ns, ns_other = as_ns("crash-a", env), as_ns("crash-b", other)
    assert svc.check_namespace(ns) is None and svc.check_namespace(ns_other) is None
    q = client(env, "sqs").get_queue_url(QueueName="jobs")["QueueUrl"]
    assert client(env, "sqs").get_queue_attributes(QueueUrl=q, AttributeNames=["VisibilityTimeout"])[
        "Attributes"]["VisibilityTimeout"] == "45"

    pid = aws.cluster.runtime.state("aws").pid
    aws.cluster.runtime.kill("aws")
    aws.wait_restarted("aws", pid, 120)  # the agent's supervisor, without anyone running `up`
    status = json.loads(aws.cli("status", "--json", check=True).stdout)
    assert status["services"]["aws"]["state"] == "healthy"
    assert any(e["service"] == "aws" and e["event"] == "died" for e in status["events"])

    # never silent: the loss is reported for every namespace, with what to run
    for n in (ns, ns_other):
        message = svc.check_namespace(n)
        assert message and "restarted" in message and f"localdev seed {n.name}" in message
    with pytest.raises(ClientError):
        client(env, "s3").head_bucket(Bucket="crash-a-assets")
    # ...by `status` and `ns list`, recorded by the agent when it restarted the emulator
    def both_reported() -> dict | None:
        problems = json.loads(aws.cli("status", "--json", check=True).stdout)["problems"]
        return problems if {"crash-a", "crash-b"} <= set(problems) else None

    problems = poll_until(both_reported, 30, "status to report both namespaces")
    assert "localdev seed crash-a" in problems["crash-a"]["aws"]
    assert "namespace crash-b: aws: " in aws.cli("status", check=True).stdout
    states = {n["name"]: n["state"] for n in json.loads(aws.cli("ns", "list", "--json", check=True).stdout)}
    assert states["crash-a"] == states["crash-b"] == "degraded"

    aws.cli("seed", "crash-a", "--seeds", seeds, check=True)
    assert svc.check_namespace(ns) is None
    assert seeded_state(env, "crash-a") == SEEDED
    problems = json.loads(aws.cli("status", "--json", check=True).stdout)["problems"]
    assert "crash-a" not in problems and "crash-b" in problems
    # seeding again is idempotent
    aws.cli("seed", "crash-a", "--seeds", seeds, check=True)
    assert seeded_state(env, "crash-a") == SEEDED


def test_clean_restart_loses_state_too_and_says_so(aws):
    env = new_ns(aws, "restart-a")
    client(env, "sqs").create_queue(QueueName="kept")
    svc = aws.cluster.services["aws"]
    ns = as_ns("restart-a", env)
    aws.cli("down", check=True)
    up = aws.cli("up", check=True)
    assert "localdev seed restart-a" in svc.check_namespace(ns)
    assert listings(env)["queues"] == []
    assert "localdev seed restart-a" in json.loads(aws.cli("status", "--json").stdout)["problems"]["restart-a"]["aws"]
    assert up.returncode == 0
    svc.create_namespace(ns)  # what `seed` does first: the namespace is usable and reported intact again
    assert svc.check_namespace(ns) is None


def test_seed_failure_leaves_nothing_and_bad_seeds_are_refused_before_anything(aws, tmp_path):
    env = new_ns(aws, "seedfail")
    root = tmp_path / "seeds"
    (root / "aws" / "s3" / "ok-bucket").mkdir(parents=True)
    (root / "aws" / "s3" / "ok-bucket" / "a").write_text("a")
    (root / "aws" / "sqs.json").write_text('[{"name": "fine"},\n {"name": "bad name!"}]')
    proc = aws.cli("seed", "seedfail", "--seeds", str(root))
    assert proc.returncode == 2 and "sqs.json: queue 2: invalid queue name" in proc.stderr
    assert listings(env)["buckets"] == []

    # valid files, but a bucket name another account holds (names are global): what this seed made is undone
    other = new_ns(aws, "seedfail-other")
    client(other, "s3").create_bucket(Bucket="seedfail-zz-taken")
    (root / "aws" / "s3" / "zz-taken").mkdir()
    (root / "aws" / "s3" / "zz-taken" / "b").write_text("b")
    (root / "aws" / "sqs.json").write_text('[{"name": "fine"}]')
    proc = aws.cli("seed", "seedfail", "--seeds", str(root))
    assert proc.returncode == 1 and "belongs to another account" in proc.stderr
    assert listings(env) == {"buckets": [], "queues": [], "topics": []}


def test_emulator_writes_only_under_localdev_home(aws):
    env = new_ns(aws, "files-a")
    client(env, "s3").create_bucket(Bucket="files-a-b")
    client(env, "s3").put_object(Bucket="files-a-b", Key="k", Body=b"body")
    data, port = aws.home / "data" / "aws", aws.cluster.services["aws"].backend_port
    if aws.flavor == "localstack":  # object bodies: moved from /tmp/localstack-s3-storage by our launcher
        assert (data / "s3" / "files-a-b").is_dir()
        assert not os.path.exists("/tmp/localstack-s3-storage/files-a-b")
    else:  # its pid file goes to TMPDIR
        assert (data / "tmp" / f"ministack-{port}.pid").is_file()
        assert not os.path.exists(f"/tmp/ministack-{port}.pid")


@pytest.mark.parametrize("metrics", [False, True], ids=["sqs_metrics-off", "sqs_metrics-on"])
def test_localstack_publishes_sqs_metrics_to_cloudwatch_only_when_asked(make_cluster, metrics):
    """Off by default: LocalStack's own default puts three data points per queue of every account into an
    untrimmed metrics database each minute, and one per message sent. `sqs_metrics = true` brings it back."""
    h = make_cluster(["aws"], {"aws": {"flavor": "localstack", "sqs_metrics": metrics}}, agent=False)
    svc = h.cluster.services["aws"]
    with svc.client("sqs") as sqs, svc.client("cloudwatch") as cloudwatch:
        url = sqs.create_queue(QueueName="metered")["QueueUrl"]
        for i in range(3):
            sqs.send_message(QueueUrl=url, MessageBody=f"m{i}")

        def sent() -> list[str]:
            found = cloudwatch.list_metrics(Namespace="AWS/SQS", MetricName="NumberOfMessagesSent")["Metrics"]
            return [d["Value"] for m in found for d in m["Dimensions"] if d["Name"] == "QueueName"]
        if metrics:  # dispatched on a thread pool at each send: there within moments
            assert poll_until(sent, 15, "the NumberOfMessagesSent metric") == ["metered"]
        else:  # what arrives at all arrives within that time when on: wait as long, then none
            time.sleep(3)
            assert sent() == []


def test_up_waits_for_the_emulators_health_and_the_agent_then_loads_the_apis_a_create_uses(make_cluster):
    """`up` waits for LocalStack's own health request only: its APIs load on their first request (about a
    second of one core for the four a create uses), which the agent `up` starts makes right after, so
    neither `up` nor the first namespace pays for them."""
    import urllib.request

    from localdev.services.aws import HEALTH

    h = make_cluster(["postgres", "aws"], {"aws": {"flavor": "localstack"}})
    svc = h.cluster.services["aws"]

    def states() -> dict:
        with urllib.request.urlopen(svc.endpoint + HEALTH["localstack"], timeout=5) as resp:
            found = json.loads(resp.read())["services"]
        return {api: found[api] for api in ("s3", "sqs", "sns", "events")}
    poll_until(lambda: set(states().values()) == {"running"}, 60, "the agent to load the emulator's APIs")
    assert h.cli("ns", "list", "--json", check=True).stdout.strip() == "[]"  # no namespace request loaded them

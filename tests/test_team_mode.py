"""Team mode across a real network: the cluster in one network namespace, its clients in another.

Both namespaces are made here (as root, with `ip netns`), joined by a veth pair whose two ends have the
only non-loopback addresses involved: 10.213.0.1 (the cluster) and 10.213.0.2 (a team member's machine).
The client side has nothing of the cluster: no LOCALDEV_HOME, only the URL, a token and the pinned CA.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, clean_env, free_port, write_config

from localdev.testing import SERVER_IP, Net
from localdev.waiting import poll_until

BIN = Path(sys.executable).parent

if os.geteuid() != 0 or not shutil.which("ip"):
    pytest.skip("network namespaces need root and iproute2 (`ip netns`)", allow_module_level=True)


class Team:
    """The shared cluster (in the server namespace) and a client machine (the client namespace)."""

    def __init__(self, net: Net, root: Path):
        self.net, self.root = net, root
        self.port = free_port()
        self.url = f"https://{SERVER_IP}:{self.port}"
        self.project = root / "server"
        write_config(self.project, ["postgres", "dynamodb", "aws", "mongo", "redis"],
                     {"aws": {"flavor": "ministack", "allow_plaintext": True},
                      "dynamodb": {"allow_plaintext": True}},
                     extra="[agent]\nreap_interval = 3600\n")
        config = self.project / "localdev.toml"
        config.write_text(f'host = "{SERVER_IP}"\n' + config.read_text())
        self.server_env = clean_env(LOCALDEV_HOME=str(root / "home"), LOCALDEV_CONFIG=str(config),
                                    XDG_CONFIG_HOME=str(root / "server-xdg"))
        (root / "client-home").mkdir()
        self.client_cwd = root / "client-home"

    def server(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
        return self.net.run(self.net.server, sys.executable, "-m", "localdev.cli", *args, env=self.server_env,
                            cwd=self.project, check=check, timeout=timeout)

    def client_env(self, token: str | None, profile: bool = False, **extra) -> dict:
        """A team member's shell: the URL and a token (or, with `profile`, what `localdev login` saved), and
        the cluster CA's certificate handed over as LOCALDEV_CA (copied from the server, as an admin would)."""
        env = clean_env(LOCALDEV_URL=self.url, LOCALDEV_HOME=str(self.root / "no-cluster-here"),
                        XDG_CONFIG_HOME=str(self.root / ("client-xdg" if profile else "no-profile")))
        if not profile:
            env["LOCALDEV_CA"] = str(self.root / "home" / "tls" / "ca.pem")
        if token is not None:
            env["LOCALDEV_TOKEN"] = token
        return {**env, **extra}

    def client(self, *args: str, token: str | None, check: bool = False, profile: bool = False,
               **extra) -> subprocess.CompletedProcess:
        return self.net.run(self.net.client, sys.executable, "-m", "localdev.cli", *args,
                            env=self.client_env(token, profile, **extra), cwd=self.client_cwd, check=check)

    def token(self, name: str, role: str, ttl: str | None = None) -> str:
        args = ["token", "create", name, "--role", role] + (["--ttl", ttl] if ttl else [])
        return self.server(*args).stdout.strip()

    def registry_names(self) -> list[str]:
        return [n["name"] for n in json.loads(self.server("ns", "list", "--json").stdout)]


@pytest.fixture(scope="module")
def team(tmp_path_factory):
    net = Net()
    root = tmp_path_factory.mktemp("team")
    team = Team(net, root)
    try:
        team.server("up", "--serve", f"{SERVER_IP}:{team.port}", timeout=600)
        yield team
    finally:
        team.server("down", "--purge", check=False)
        net.close()


def test_a_client_elsewhere_uses_the_cluster_with_tls_verified(team):
    ci = team.token("ci-runner", "ci")
    login = team.client("login", team.url, "--token", ci, token=None, profile=True, check=True)
    assert "as ci-runner (ci)" in login.stdout and "SHA-256" in login.stdout
    profile = team.root / "client-xdg" / "localdev" / "profile.json"
    assert oct(profile.stat().st_mode & 0o777) == "0o600" and ci in profile.read_text()
    # the fingerprint the client pinned is the server's CA
    status = json.loads(team.server("status", "--json").stdout)
    listener = status["agent"]["listener"]
    assert listener["url"] == team.url and listener["tls"] is True
    from localdev.tls import fingerprint

    assert fingerprint(Path(listener["ca"]).read_bytes()) in login.stdout

    # the README's CI recipe, on the client machine: one process creates and prints the settings
    recipe = team.client("ns", "create", "--from-ci", "--ttl", "2h", "--seeds", str(REPO / "seeds"),
                         "--print-env", "shell", token=None, profile=True, GITHUB_REF="refs/pull/42/merge", check=True)
    shell = recipe.stdout
    assert "export LOCALDEV_NAMESPACE=pr-42" in shell and f"PGHOST={SERVER_IP}" in shell
    assert "sslmode=verify-full" in shell and "PGSSLMODE=verify-full" in shell
    assert "tls=true&tlsCAFile=" in shell  # the Mongo server speaks TLS too, verified against the pinned CA
    assert "REDIS_URL='rediss://" in shell and "ssl_ca_certs=" in shell  # and Redis
    checks = (
        # psql over TLS, the server's name checked against the pinned CA
        "psql -Atc \"select current_user, ssl from pg_stat_ssl join pg_stat_activity using (pid) "
        "where pid = pg_backend_pid()\";"
        # the AWS CLI (v1 honours AWS_ENDPOINT_URL for s3) in the namespace's account
        f"{BIN / 'aws'} s3 ls;"
        # boto3 and pymongo as an application would use them
        f"{sys.executable} -c \"import boto3, pymongo, os; "
        "print(sorted(boto3.client('dynamodb').list_tables()['TableNames'])); "
        "db = pymongo.MongoClient(os.environ['MONGODB_URI']).get_default_database(); "
        "db.probe.insert_one({'from': 'client'}); print(db.probe.count_documents({}))\";"
        # redis-py over TLS, the server's name checked against the pinned CA
        f"{sys.executable} -c \"import redis, os; r = redis.Redis.from_url(os.environ['REDIS_URL']); "
        "p = os.environ['REDIS_KEY_PREFIX']; r.set(p + 'k', 'over-tls'); "
        "print(type(r.connection_pool.get_connection()).__name__, r.get(p + 'k').decode())\""
    )
    out = team.net.run(team.net.client, "bash", "-c", shell + checks, env=clean_env(HOME=str(team.client_cwd)),
                       check=True).stdout.split("\n")
    assert out[0] == "ns_pr_42|t"  # its own role, over TLS
    assert any("pr-42-assets" in line for line in out)  # the example seeds' bucket
    assert "['carts']" in out and "1" in out
    assert "SSLConnection over-tls" in out

    # the listener is where it was told to be, on no wildcard address
    listening = team.net.run(team.net.server, "ss", "-ltnH", env=clean_env(), check=True).stdout
    assert f"{SERVER_IP}:{team.port}" in listening and f"0.0.0.0:{team.port}" not in listening
    assert team.client("ns", "delete", "pr-42", token=None, profile=True, check=True).returncode == 0


def test_tokens_that_are_missing_wrong_revoked_or_expired_change_nothing(team):
    before = team.registry_names()
    revoked = team.token("gone", "ci")
    team.server("token", "revoke", "gone")
    expired = team.token("brief", "ci", ttl="1s")
    time.sleep(1.5)
    for token, needle in ((None, "needs a token"), ("ldt_wrong", "not valid"), (revoked, "not valid"),
                          (expired, "expired")):
        proc = team.client("ns", "create", "intruder", "--no-seed", token=token)
        assert proc.returncode == 2 and needle in proc.stderr, (token, proc.stderr)
        assert "Traceback" not in proc.stderr
    assert team.registry_names() == before
    # a reader lists but may neither create nor read credentials
    reader = team.token("dashboard", "reader")
    assert team.client("ns", "list", token=reader).returncode == 0
    proc = team.client("ns", "create", "by-reader", "--no-seed", token=reader)
    assert proc.returncode == 2 and "role 'reader'" in proc.stderr
    assert team.registry_names() == before


def test_a_ci_token_cannot_touch_another_tokens_namespace(team):
    alice, bob = team.token("alice-ci", "ci"), team.token("bob-ci", "ci")
    team.client("ns", "create", "alice-pr", "--no-seed", token=alice, check=True)
    for args in (("ns", "env", "alice-pr"), ("ns", "delete", "alice-pr"), ("seed", "alice-pr", "--seeds",
                                                                            str(REPO / "seeds"))):
        proc = team.client(*args, token=bob)
        assert proc.returncode == 1 and "no namespace named 'alice-pr'" in proc.stderr, (args, proc.stderr)
    listed = json.loads(team.client("ns", "list", "--json", token=bob, check=True).stdout)
    assert listed == []
    assert "alice-pr" in team.registry_names()
    assert team.client("ns", "delete", "alice-pr", token=alice).returncode == 0


def test_plain_tcp_to_the_tls_listener_fails(team):
    probe = (f"import socket; s = socket.create_connection(('{SERVER_IP}', {team.port}), timeout=5); "
             "s.sendall(b'GET /health HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n'); data = s.recv(100); "
             "print('HTTP/1.1 200' in data.decode('latin-1'))")
    out = team.net.run(team.net.client, sys.executable, "-c", probe, env=clean_env(), check=True).stdout
    assert out.strip() == "False"
    proc = team.client("ns", "list", token="x", LOCALDEV_URL=f"http://{SERVER_IP}:{team.port}")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr


def test_redis_beyond_loopback_speaks_only_tls(team):
    team.server("ns", "create", "plain-probe", "--no-seed")
    try:
        env = json.loads(team.server("ns", "env", "plain-probe", "--format", "json").stdout)
        plain = env["REDIS_URL"].replace("rediss://", "redis://").split("?")[0]
        probe = ("import redis, sys\ntry:\n    redis.Redis.from_url(sys.argv[1], socket_timeout=5).ping()\n"
                 "    print('answered')\nexcept (redis.ConnectionError, redis.TimeoutError):\n    print('refused')")
        out = team.net.run(team.net.client, sys.executable, "-c", probe, plain, env=clean_env(), check=True).stdout
        assert out.strip() == "refused"
    finally:
        team.server("ns", "delete", "plain-probe")


def test_pytest_with_four_workers_on_the_remote_cluster(team, tmp_path):
    token = team.token("xdist", "ci")
    project = tmp_path / "sample"
    shutil.copytree(REPO / "tests" / "plugin_project", project)
    (project / "localdev.toml").write_text("")  # the project's own config: seeds in ./seeds
    env = team.client_env(token)
    proc = team.net.run(team.net.client, sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-n", "4",
                        str(project / "sample_orders.py"), env=env, cwd=project, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "16 passed" in proc.stdout
    poll_until(lambda: not [n for n in team.registry_names() if n.startswith("pytest-")], 30,
               "the workers' namespaces to be deleted")


def test_a_service_that_cannot_do_tls_refuses_to_leave_loopback(tmp_path):
    project = tmp_path / "p"
    write_config(project, ["postgres", "dynamodb"])
    config = project / "localdev.toml"
    config.write_text('host = "0.0.0.0"\n' + config.read_text())
    env = clean_env(LOCALDEV_HOME=str(tmp_path / "home"), LOCALDEV_CONFIG=str(config))
    proc = subprocess.run([sys.executable, "-m", "localdev.cli", "up"], env=env, cwd=project, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and "dynamodb cannot serve TLS here" in proc.stderr and "allow_plaintext" in proc.stderr
    with socket.socket() as probe:  # nothing started
        assert probe.connect_ex(("127.0.0.1", int(_port_of(config, "postgres")))) != 0


def _port_of(config: Path, service: str) -> str:
    import tomllib

    return tomllib.loads(config.read_text())["services"][service]["port"]


def test_ferretdb_beyond_loopback_speaks_only_tls(tmp_path):
    """The ferretdb flavor (on PostgreSQL) with the cluster's certificate: pymongo from the other machine
    verifies it against the CA, and a plain client gets no answer."""
    net = Net()
    project = tmp_path / "p"
    write_config(project, ["postgres", "mongo"], {"mongo": {"flavor": "ferretdb"}},
                 extra="[agent]\nreap_interval = 3600\n")
    config = project / "localdev.toml"
    config.write_text(f'host = "{SERVER_IP}"\n' + config.read_text())
    env = clean_env(LOCALDEV_HOME=str(tmp_path / "home"), LOCALDEV_CONFIG=str(config))

    def server(*args):
        return net.run(net.server, sys.executable, "-m", "localdev.cli", *args, env=env, cwd=project, check=True)

    try:
        server("up")
        server("ns", "create", "ferret-tls", "--no-seed")
        uri = json.loads(server("ns", "env", "ferret-tls", "--format", "json").stdout)["MONGODB_URI"]
        assert f"@{SERVER_IP}:" in uri and "authMechanism=PLAIN&tls=true&tlsCAFile=" in uri
        probe = ("import pymongo, sys\n"
                 "db = pymongo.MongoClient(sys.argv[1], serverSelectionTimeoutMS=5000).get_default_database()\n"
                 "db.probe.insert_one({'over': 'tls'}); print(db.probe.find_one({}, {'_id': 0})['over'])\n"
                 "plain = sys.argv[1].split('&tls=')[0]\n"
                 "try:\n    pymongo.MongoClient(plain, serverSelectionTimeoutMS=3000).admin.command('ping')\n"
                 "    print('plain answered')\nexcept pymongo.errors.PyMongoError:\n    print('plain refused')")
        out = net.run(net.client, sys.executable, "-c", probe, uri, env=clean_env(), check=True).stdout.split()
        assert out == ["tls", "plain", "refused"]
    finally:
        net.run(net.server, sys.executable, "-m", "localdev.cli", "down", "--purge", env=env, cwd=project)
        net.close()

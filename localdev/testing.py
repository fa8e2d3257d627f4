"""Helpers for tests: `ephemeral_cluster()`, a private cluster that dies with the process (localdev.ephemeral);
`Net`, for tests and benchmarks that need more than one machine: network namespaces made here.

Only addresses from 10.213.0.0/24, only on interfaces inside the namespaces made here: nothing leaves
this machine's own sandbox. Needs root and iproute2.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from pathlib import Path

from localdev.ephemeral import Ephemeral, ephemeral_cluster

__all__ = ["Ephemeral", "Net", "ephemeral_cluster"]

SERVER_IP, CLIENT_IP = "10.213.0.1", "10.213.0.2"


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


class Net:
    """Two network namespaces, `server` (10.213.0.1) and `client` (10.213.0.2), joined by a veth pair. Test
    files that may run in one session give each their own pair of addresses (both in 10.213.0.0/24)."""

    def __init__(self, server_ip: str = SERVER_IP, client_ip: str = CLIENT_IP):
        assert server_ip.startswith("10.213.0.") and client_ip.startswith("10.213.0."), "only 10.213.0.0/24"
        self.server_ip, self.client_ip = server_ip, client_ip
        tag = secrets.token_hex(3)
        self.server, self.client = f"ldsrv{tag}", f"ldcli{tag}"
        ip("netns", "add", self.server)
        ip("netns", "add", self.client)
        ip("link", "add", f"vs{tag}", "type", "veth", "peer", "name", f"vc{tag}")
        ip("link", "set", f"vs{tag}", "netns", self.server)
        ip("link", "set", f"vc{tag}", "netns", self.client)
        for ns, dev, addr in ((self.server, f"vs{tag}", server_ip), (self.client, f"vc{tag}", client_ip)):
            ip("-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
            ip("-n", ns, "link", "set", dev, "up")
            ip("-n", ns, "link", "set", "lo", "up")

    def run(self, ns: str, *cmd: str, env: dict, timeout: float = 300, cwd: Path | None = None,
            check: bool = False) -> subprocess.CompletedProcess:
        proc = subprocess.run(["ip", "netns", "exec", ns, *cmd], env=env, cwd=cwd, capture_output=True, text=True,
                              timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def close(self) -> None:
        for ns in (self.server, self.client):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


SQL = r"""
import json, sys
from localdev.cluster import Cluster
with Cluster().services["postgres"].connect(sys.argv[2]) as conn:
    cur = conn.execute(sys.argv[1])
    print(json.dumps([list(r) for r in cur.fetchall()] if cur.description else [], default=str))
"""


class StandIn:
    """Services someone else runs, stood in for by a native localdev cluster's servers in `net.server` (its
    config at `config`, `host` its namespace's address): started without an agent, its own registry dropped
    (the registry belongs to the agents that carve the services up), and a PostgreSQL role `admin_role` with
    CREATEROLE and CREATEDB, not superuser, for those agents. `env`: the environment its commands run in."""

    def __init__(self, net: Net, config: Path, home: Path, env: dict, admin_role: str = "localdev_admin"):
        import tomllib

        self.net, self.config, self.home = net, config, home
        self.env = {**env, "LOCALDEV_HOME": str(home), "LOCALDEV_CONFIG": str(config)}
        self.ports = {name: table["port"] for name, table in tomllib.loads(config.read_text())["services"].items()}
        self.admin_role, self.admin_password = admin_role, "admin-" + secrets.token_hex(12)

    def py(self, code: str, *args: str, timeout: float = 120) -> str:
        return self.net.run(self.net.server, sys.executable, "-c", code, *args, env=self.env,
                            cwd=self.config.parent, check=True, timeout=timeout).stdout

    def sql(self, statement: str, db: str = "postgres") -> list:
        """As the servers' own superuser."""
        return json.loads(self.py(SQL, statement, db))

    def secret(self, key: str) -> str:
        return json.loads((self.home / "secrets.json").read_text())[key]

    def start(self) -> None:
        self.py("from localdev.cluster import Cluster; Cluster().up(agent=False)", timeout=600)
        self.sql("DROP DATABASE IF EXISTS localdev WITH (FORCE)")  # made by up; the agents make their own
        self.sql(f"CREATE ROLE {self.admin_role} LOGIN CREATEROLE CREATEDB PASSWORD '{self.admin_password}'")
        # as a managed server's admin can (this stand-in's own up revoked CONNECT from PUBLIC)
        self.sql(f"GRANT CONNECT ON DATABASE postgres TO {self.admin_role}")

    def stop(self) -> None:
        self.net.run(self.net.server, sys.executable, "-c",
                     "from localdev.cluster import Cluster; Cluster().down(purge=True)", env=self.env,
                     cwd=self.config.parent, timeout=300)

    def agent_config(self, path: Path, seeds: Path, pg_role: str | None = None, mongo_user: str = "localdev",
                     redis_user: str = "localdev", extra: str = "") -> Path:
        """A localdev.toml (and its mongo password_file) for agents on runtime = "external" pointed at these."""
        ca, p, host = self.home / "tls" / "ca.pem", self.ports, self.net.server_ip
        path.mkdir(parents=True, exist_ok=True)
        (path / "mongo.password").write_text(self.secret("mongo_root_password") + "\n")
        (path / "mongo.password").chmod(0o600)
        config = path / "localdev.toml"
        config.write_text(f"""runtime = "external"

[services.postgres]
url = "postgresql://{pg_role or self.admin_role}@{host}:{p['postgres']}/postgres?sslmode=verify-full&sslrootcert={ca}"
[services.dynamodb]
url = "http://{host}:{p['dynamodb']}"
[services.aws]
url = "http://{host}:{p['aws']}"
flavor = "ministack"
[services.mongo]
url = "mongodb://{mongo_user}@{host}:{p['mongo']}/?authSource=admin&tls=true&tlsCAFile={ca}"
password_file = "mongo.password"
[services.redis]
url = "rediss://{redis_user}@{host}:{p['redis']}/0?ssl_ca_certs={ca}"

[namespaces]
seeds = "{seeds}"
{extra}""")
        return config


class ExternalAgent:
    """A localdev agent on runtime = "external" in `net.client`, with a LOCALDEV_HOME of its own (`home`)."""

    def __init__(self, services: StandIn, home: Path, config: Path, env: dict, **passwords: str):
        self.services, self.home, self.config = services, home, config
        self.env = {**env, "LOCALDEV_HOME": str(home), "LOCALDEV_CONFIG": str(config),
                    "LOCALDEV_POSTGRES_PASSWORD": passwords.get("postgres", services.admin_password),
                    "LOCALDEV_REDIS_PASSWORD": passwords.get("redis", services.secret("redis_admin_password"))}

    def cli(self, *args: str, check: bool = False, timeout: float = 300) -> subprocess.CompletedProcess:
        net = self.services.net
        return net.run(net.client, sys.executable, "-m", "localdev.cli", *args, env=self.env,
                       cwd=self.config.parent, check=check, timeout=timeout)

    def client(self):
        from localdev.agent_client import AgentClient

        return AgentClient(self.home)  # its Unix socket: reachable from any network namespace

    @property
    def pid(self) -> int:
        return json.loads((self.home / "run" / "agent" / "pid").read_text())["pid"]

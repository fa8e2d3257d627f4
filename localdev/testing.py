"""Helpers for tests: `ephemeral_cluster()`, a private cluster that dies with the process (localdev.ephemeral);
`Net`, for tests and benchmarks that need more than one machine: network namespaces made here.

Only addresses from 10.213.0.0/24, only on interfaces inside the namespaces made here: nothing leaves
this machine's own sandbox. Needs root and iproute2.
"""

from __future__ import annotations

import secrets
import subprocess
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

"""Team mode's cost, side by side in one run: a seeded `ns create --print-env shell` from another machine
(over a veth between two network namespaces, TLS and a token) against the same on the cluster's machine
(the agent's Unix socket), with --present namespaces already there. Needs root (`ip netns`).

    python bench/remote.py [--services postgres,dynamodb,aws,mongo] [--present 50] [--rounds 20]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import LOCALDEV, save, summary, temp_project  # noqa: E402

from localdev.ports import free_port  # noqa: E402
from localdev.testing import SERVER_IP, Net  # noqa: E402

SEEDS = str(Path(__file__).parent.parent / "seeds")


def timed(net: Net, ns: str, env: dict, *args: str) -> float:
    t0 = time.perf_counter()
    net.run(ns, LOCALDEV, *args, env=env, check=True)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--services", default="postgres,dynamodb,aws,mongo")
    parser.add_argument("--present", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    services = args.services.split(",")
    # every service encrypted beyond loopback, as team mode runs them (the AWS gateway's TLS included)
    home, config, env = temp_project(services, {"aws": {"flavor": "ministack"}})
    config.write_text(f'host = "{SERVER_IP}"\n' + config.read_text())
    env = {k: v for k, v in env.items() if k not in ("LOCALDEV_URL", "LOCALDEV_TOKEN", "LOCALDEV_CA")}
    port = free_port()
    net = Net()
    try:
        net.run(net.server, LOCALDEV, "up", "--serve", f"{SERVER_IP}:{port}", env=env, check=True, timeout=600)
        for i in range(args.present):
            net.run(net.server, LOCALDEV, "ns", "create", f"present-{i}", "--seeds", SEEDS, env=env, check=True)
        token = net.run(net.server, LOCALDEV, "token", "create", "bench", "--role", "ci", env=env,
                        check=True).stdout.strip()
        remote = {**{k: v for k, v in env.items() if k not in ("LOCALDEV_HOME", "LOCALDEV_CONFIG")},
                  "LOCALDEV_URL": f"https://{SERVER_IP}:{port}", "LOCALDEV_TOKEN": token,
                  "LOCALDEV_CA": str(home / "tls" / "ca.pem"), "LOCALDEV_HOME": str(home.parent / "client-home"),
                  "XDG_CONFIG_HOME": str(home.parent / "client-xdg")}
        local_times, remote_times = [], []
        for i in range(args.rounds):  # alternate, so drift (caches, disk) falls on both alike
            local_times.append(timed(net, net.server, env, "ns", "create", f"l-{i}", "--seeds", SEEDS,
                                     "--print-env", "shell"))
            remote_times.append(timed(net, net.client, remote, "ns", "create", f"r-{i}", "--seeds", SEEDS,
                                      "--print-env", "shell"))
            net.run(net.server, LOCALDEV, "ns", "delete", f"l-{i}", env=env, check=True)
            net.run(net.client, LOCALDEV, "ns", "delete", f"r-{i}", env=remote, check=True)
        local, over = summary(local_times), summary(remote_times)
        result = {"services": services, "present": args.present, "rounds": args.rounds,
                  "local_unix_socket": local, "remote_tls_veth": over,
                  "ratio_p50": over["p50"] / local["p50"], "ratio_p95": over["p95"] / local["p95"]}
        print(f"seeded ns create --print-env shell, {args.present} namespaces present, {args.rounds} rounds:")
        print(f"  local (Unix socket)      p50 {local['p50']:.3f} s  p95 {local['p95']:.3f} s")
        print(f"  remote (TLS over veth)   p50 {over['p50']:.3f} s  p95 {over['p95']:.3f} s")
        print(f"  remote / local           p50 {result['ratio_p50']:.2f}x  p95 {result['ratio_p95']:.2f}x")
        print(f"wrote {save('remote', result)}")
    finally:
        net.run(net.server, LOCALDEV, "down", "--purge", env=env)
        net.close()


if __name__ == "__main__":
    if os.geteuid() != 0:
        sys.exit("bench/remote.py needs root (it makes network namespaces)")
    main()

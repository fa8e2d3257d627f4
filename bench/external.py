"""runtime = "external"'s cost, side by side in one run: a seeded `ns create --print-env shell` through an agent
on another machine (a veth away, TLS to PostgreSQL, Mongo and Redis, a PostgreSQL role with CREATEROLE +
CREATEDB and no superuser) against the same through the services' own native agent (their machine, Unix
socket, superuser), both on one registry and the same five servers. Needs root (`ip netns`).

    python bench/external.py [--rounds 20]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import LOCALDEV, save, summary, temp_project  # noqa: E402

from localdev.testing import ExternalAgent, Net, StandIn  # noqa: E402

SEEDS = Path(__file__).parent.parent / "seeds"
SERVICES = ["postgres", "dynamodb", "aws", "mongo", "redis"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    net = Net("10.213.0.7", "10.213.0.8")
    home, config, env = temp_project(SERVICES, {"aws": {"flavor": "ministack", "allow_plaintext": True},
                                                "dynamodb": {"allow_plaintext": True}})
    config.write_text(f'host = "{net.server_ip}"\n' + config.read_text())
    base = {k: v for k, v in env.items() if not k.startswith("LOCALDEV_")}
    services = StandIn(net, config, home, base)
    external: ExternalAgent | None = None
    try:
        services.start()
        agent_config = services.agent_config(home.parent / "agent", SEEDS)
        external = ExternalAgent(services, home.parent / "agent-home", agent_config, base)
        external.cli("up", check=True)
        # The services' own agent, as superuser, on the registry the external agent made.
        net.run(net.server, LOCALDEV, "up", env=services.env, check=True, timeout=600)
        native_times, external_times = [], []
        for i in range(args.rounds):  # alternate, so drift (caches, disk) falls on both alike
            t0 = time.perf_counter()
            net.run(net.server, LOCALDEV, "ns", "create", f"n-{i}", "--seeds", str(SEEDS), "--print-env", "shell",
                    env=services.env, check=True)
            native_times.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            external.cli("ns", "create", f"e-{i}", "--print-env", "shell", check=True)
            external_times.append(time.perf_counter() - t0)
        for i in range(args.rounds):
            net.run(net.server, LOCALDEV, "ns", "delete", f"n-{i}", env=services.env, check=True)
            external.cli("ns", "delete", f"e-{i}", check=True)
        native, ext = summary(native_times), summary(external_times)
        result = {"services": SERVICES, "rounds": args.rounds, "native_agent_superuser": native,
                  "external_agent_createrole_createdb": ext,
                  "ratio_p50": ext["p50"] / native["p50"], "ratio_p95": ext["p95"] / native["p95"]}
        print(f"seeded ns create --print-env shell, five services, {args.rounds} rounds:")
        for label, fig in (("the services' own agent (superuser, Unix socket)", native),
                           ("an external agent (CREATEROLE+CREATEDB, over a veth)", ext)):
            print(f"  {label:54} p50 {fig['p50']:.3f} s  p95 {fig['p95']:.3f} s")
        print(f"  {'external / native':54} p50 {result['ratio_p50']:.2f}x  p95 {result['ratio_p95']:.2f}x")
        print(f"wrote {save('external', result)}")
    finally:
        net.run(net.server, LOCALDEV, "down", env=services.env)
        if external is not None:
            external.cli("down")
        services.stop()
        net.close()


if __name__ == "__main__":
    if os.geteuid() != 0:
        sys.exit("bench/external.py needs root (it makes network namespaces)")
    main()

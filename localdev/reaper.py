"""The reaper of an ephemeral cluster: removes it once the process that made it is gone, however it went.

    python -m localdev.reaper --home H --remove DIR [--engine URL --label KEY=VALUE]

It is started by `localdev.ephemeral` before anything of the cluster exists, in a session of its own (signals
to the test run's process group do not reach it), with a pipe as its stdin whose only writer is the test
process. It says `ready` once it could reach the engine, then blocks reading that pipe. The kernel closes the
writer's end when the test process exits for any reason, `kill -9` included, so the read returns. Then:

1. `down --purge` of the cluster in `--home`: the agent stops first (so nothing restarts what follows), then the
   services (processes or containers), their data and the cluster's network;
2. on the container runtime, every container, volume and network carrying `--label` (testcontainers'
   session-id label, which the cluster puts on everything it creates, in the create request itself) is removed,
   again until a sweep has found nothing for a few seconds, so a create that was in flight when the test process
   died is caught too; other sessions' and other clusters' things never match;
3. `--remove` (the cluster's temporary directory) is deleted.

This is what testcontainers' Ryuk does for the containers of a session (it reaps when its TCP connection from
the test process closes), done by a process of ours, since Ryuk's image is not always there, and extended to
the agent, which runs as a host process on every runtime and which Ryuk could not stop.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

SETTLE = 3.0  # seconds a sweep must find nothing before the engine counts as clean
DEADLINE = 120.0  # seconds of sweeping at most
DONE = b"done\n"


def _engine(url: str):
    import docker

    client = docker.DockerClient(base_url=url, timeout=60)
    client.ping()
    return client


def sweep(client, label: str) -> int:
    """Remove every container, then volume, then network with `label` (key=value); how many there were."""
    import docker.errors

    found = 0
    filters = {"label": [label]}
    for container in client.containers.list(all=True, filters=filters):
        found += 1
        try:
            container.remove(v=True, force=True)
        except docker.errors.NotFound:
            pass
    for volume in client.volumes.list(filters=filters):
        found += 1
        try:
            volume.remove(force=True)
        except docker.errors.NotFound:
            pass
    for network in client.networks.list(filters=filters):
        found += 1
        try:
            network.remove()
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError:  # a container still attached: the next sweep gets both
            pass
    return found


def reap(home: Path, remove: Path | None, client=None, label: str | None = None, settle: float = SETTLE) -> None:
    from localdev.cluster import Cluster

    try:
        if (home / "cluster.json").exists():
            cluster = Cluster(home=home)
            cluster.down(purge=True)
    except Exception as exc:  # the sweep below still removes the containers; say what went wrong
        print(f"reaper: down --purge of {home} failed: {exc}", file=sys.stderr, flush=True)
    if client is not None and label:
        deadline = time.monotonic() + DEADLINE
        clean_since = None
        while time.monotonic() < deadline:
            if sweep(client, label):
                clean_since = None
            elif clean_since is None:
                clean_since = time.monotonic()
            if clean_since is not None and time.monotonic() - clean_since >= settle:
                break
            time.sleep(0.5)
    if remove is not None:
        shutil.rmtree(remove, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localdev.reaper")
    parser.add_argument("--home", required=True, type=Path)
    parser.add_argument("--remove", type=Path)
    parser.add_argument("--engine")
    parser.add_argument("--label")
    args = parser.parse_args(argv)
    client = _engine(args.engine) if args.engine else None
    print("ready", flush=True)
    os.dup2(2, 1)  # the handshake pipe's reader may be gone by the time anything else is said
    said = sys.stdin.buffer.read()  # until EOF: the test process closed its end or is gone
    # DONE: the test process removed the cluster itself and can create nothing more: one sweep is enough.
    done = said == DONE
    print(f"reaper: reaping {args.home} ({'after a clean stop' if done else 'its maker is gone'})",
          file=sys.stderr, flush=True)
    reap(args.home, args.remove, client, args.label, settle=0.0 if done else SETTLE)
    return 0


if __name__ == "__main__":
    sys.exit(main())

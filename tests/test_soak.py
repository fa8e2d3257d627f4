"""No leak per namespace: seeded create + delete cycles through the agent, every process of the cluster under
RLIMIT_NOFILE 1024 (a default laptop's `ulimit -n`), every gauge back to its warm-up value.

All four services as `up` starts them by default: PostgreSQL, DynamoDB Local (through our launcher), the AWS
emulator and mongo-java-server.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

import pytest

from conftest import start_cluster
from localdev.services.dynamodb.install import HEAP_MB
from localdev.services.mongo import Mongo

sys.path.insert(0, str(Path(__file__).parent.parent / "bench"))
from soak import sample, series, soak  # noqa: E402

SERVICES = ["postgres", "dynamodb", "aws", "mongo"]
NOFILE = 1024
WARMUP = 20
# Absolute slack, where 10 % of a small count is less than the noise seen with no namespace made at all:
# Jetty's and uvicorn's thread pools grow and shrink by a few threads with load; PostgreSQL's backends come and
# go with the registry pool and the spare clones' maker; the JVM's heap and PostgreSQL's caches breathe by
# some MB between GCs; PostgreSQL's disk grows until autovacuum reclaims the dropped databases' catalog rows.
SLACK = {"fds": 12, "threads": 12, "procs": 4, "backends": 4, "pss_mb": 24.0, "rss_mb": 32.0, "disk_mb": 24.0}
# DynamoDB Local's and mongo-java-server's JVMs fill their heaps lazily up to -Xmx and keep them: their memory
# is bounded by that flag, not flat. What a served key or database used to keep (threads, fds, its files) is
# held to the slack above.
JVM_HEAP = {"dynamodb": HEAP_MB, "mongo": int(Mongo.options["heap"].default.removesuffix("m"))}


@pytest.fixture
def nofile_1024():
    """RLIMIT_NOFILE of this process before `up`: the native runtime's children (agent, services) inherit it."""
    before = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, before[1]))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, before)


def run_soak(tmp_path_factory, cycles: int) -> tuple[dict[str, list[float]], list[dict]]:
    handle = start_cluster(tmp_path_factory, SERVICES)
    try:
        for name in ["agent", *SERVICES]:
            pid = json.loads((handle.cluster.state.run(name) / "pid").read_text())["pid"]
            # /proc, not psutil's rlimit(): prlimit() on another process is refused without CAP_SYS_RESOURCE.
            soft = [line.split()[3] for line in Path(f"/proc/{pid}/limits").read_text().splitlines()
                    if line.startswith("Max open files")]
            assert soft == [str(NOFILE)], name
        samples = soak(handle.cluster, cycles, every=10)
        # A gauge back within bounds seconds after the last cycle was busy, not leaking (a spare clone being
        # made, the registry pool's extra connections before they idle out): read the last sample again
        # until every gauge settles, for at most 30 s; what stays above its bound is a leak.
        deadline = time.monotonic() + 30
        while _grown(series(samples), samples) and time.monotonic() < deadline:
            time.sleep(2)
            samples[-1] = {**samples[-1], **sample(handle.cluster, list(handle.cluster.services))}
    finally:
        handle.close()
    assert [s["cycle"] for s in samples] == [0, *range(10, cycles + 1, 10)]
    return series(samples), samples


def assert_flat(data: dict[str, list[float]], samples: list[dict]) -> None:
    assert _grown(data, samples) == {}


def _grown(data: dict[str, list[float]], samples: list[dict]) -> dict:
    base_index = [s["cycle"] for s in samples].index(WARMUP)
    grown = {}
    for key, values in data.items():
        process, gauge = key.split(".", 1)
        base = values[base_index]
        allowed = max(base * 0.10, SLACK[gauge])
        if gauge in ("pss_mb", "rss_mb") and process in JVM_HEAP:
            allowed = max(allowed, JVM_HEAP[process])
        # The end, settled, against the warm-up: what a leak leaves behind. A busy moment in between (a
        # spare clone's backend, the pool's extra connections) is load, not growth with namespaces made.
        end = values[-1]
        if end > base + allowed:
            grown[key] = (base, end, values)
    return grown


def test_sixty_cycles_give_everything_back(tmp_path_factory, nofile_1024):
    data, samples = run_soak(tmp_path_factory, 60)
    assert_flat(data, samples)


@pytest.mark.long
def test_three_hundred_cycles_give_everything_back(tmp_path_factory, nofile_1024):
    # Long enough for what a namespace leaves behind to show in every gauge.
    data, samples = run_soak(tmp_path_factory, 300)
    assert_flat(data, samples)

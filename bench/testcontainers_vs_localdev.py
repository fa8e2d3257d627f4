"""Fixture set-up time of a testcontainers test file: testcontainers itself (a container per fixture, on the
Docker Engine API at DOCKER_HOST: Podman's here) vs the same file with only its imports changed to
localdev.testcontainers (a namespace per fixture on a running cluster), with 1 and with 4 xdist workers,
side by side in one run.

    DOCKER_HOST=unix:///path/podman.sock python bench/testcontainers_vs_localdev.py [--stand-ins] [--rounds 1]

The files are tests/testcontainers_example/before.py and after.py (16 tests; module-scoped PostgreSQL, MongoDB
and LocalStack fixtures; each xdist worker sets up the fixtures of the tests it gets). Set-up time is the sum
of pytest's `setup` durations (--durations=0) over all tests and workers; wall time is the whole pytest run.
The localdev cluster (native: PostgreSQL, DynamoDB Local, MiniStack, mongo-java-server) is started once
before, as a shared cluster is; its `up` is reported apart. `--stand-ins` builds bench/images/ on the
tests' stand-in images (tests/images/, made by scripts/engine.sh) for machines that cannot pull
postgres/mongo/localstack; without it the official images are used.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import cli, save, temp_project  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "tests" / "testcontainers_example"
IMAGES = Path(__file__).parent / "images"
SERVICES = ["postgres", "dynamodb", "aws", "mongo"]
SETUP = re.compile(r"^([0-9.]+)s setup\s", re.M)


def build_stand_ins() -> dict[str, str]:
    """The images before.py reads from the environment, built on the tests' stand-ins."""
    import docker

    client = docker.DockerClient(base_url=os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock"))
    try:
        images = {}
        for name, var in (("localstack", "LOCALSTACK_IMAGE"), ("mongo", "MONGO_IMAGE")):
            tag = f"localhost/localdev-bench/{name}:latest"
            client.images.build(path=str(IMAGES / name), dockerfile="Containerfile", tag=tag, rm=True)
            images[var] = tag
        images["POSTGRES_IMAGE"] = os.environ.get("LOCALDEV_TEST_IMAGE_POSTGRES", "localhost/localdev-test/postgres")
        return images
    finally:
        client.close()


def run(path: Path, env: dict, workers: int, cwd: Path) -> dict:
    args = ["-n", str(workers)] if workers > 1 else []
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--durations=0",
                           "--durations-min=0", "-W", "ignore::DeprecationWarning", *args, str(path), "--rootdir",
                           str(cwd)], cwd=cwd, env=env, capture_output=True, text=True, timeout=1800)
    wall = time.perf_counter() - t0
    if proc.returncode != 0 or "16 passed" not in proc.stdout:
        raise SystemExit(f"{path.name} with {workers} worker(s) failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}")
    return {"setup_s": round(sum(float(m) for m in SETUP.findall(proc.stdout)), 3), "wall_s": round(wall, 3)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stand-ins", action="store_true", help="build bench/images/ on the tests' stand-ins")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    if not os.environ.get("DOCKER_HOST"):
        raise SystemExit("set DOCKER_HOST to the engine testcontainers should use (e.g. Podman's API socket)")
    images = build_stand_ins() if args.stand_ins else {}
    # testcontainers as the notes say it works on Podman: no Ryuk (its image cannot be pulled), the engine's host
    tc_env = {**os.environ, **images, "TESTCONTAINERS_RYUK_DISABLED": "true",
              "TESTCONTAINERS_CONNECTION_MODE": "docker_host"}

    home, config, env = temp_project(SERVICES, {"aws": {"flavor": "ministack"}})
    ld_env = {**env, "PYTHONPATH": str(REPO)}
    up = cli(ld_env, "up")
    rows: dict[str, dict] = {}
    try:
        for workers in (1, 4):
            for rnd in range(args.rounds):
                for label, path, e in (("testcontainers", EXAMPLE / "before.py", tc_env),
                                       ("localdev", EXAMPLE / "after.py", ld_env)):
                    result = run(path, e, workers, config.parent)
                    key = f"{label}, {workers} worker{'s' if workers > 1 else ''}"
                    rows.setdefault(key, {"runs": []})["runs"].append(result)
                    print(f"{key} (round {rnd + 1}): set-up {result['setup_s']:.2f}s, wall {result['wall_s']:.2f}s",
                          flush=True)
    finally:
        cli(ld_env, "down", "--purge")
    for row in rows.values():
        row["setup_s"] = min(r["setup_s"] for r in row["runs"])
        row["wall_s"] = min(r["wall_s"] for r in row["runs"])
    ratios = {}
    print(f"\n{'':28} {'set-up':>9} {'wall':>9}")
    for workers in (1, 4):
        suffix = f"{workers} worker{'s' if workers > 1 else ''}"
        tc_row, ld_row = rows[f"testcontainers, {suffix}"], rows[f"localdev, {suffix}"]
        ratios[suffix] = {"setup": round(tc_row["setup_s"] / ld_row["setup_s"], 1),
                          "wall": round(tc_row["wall_s"] / ld_row["wall_s"], 1)}
        for key in (f"testcontainers, {suffix}", f"localdev, {suffix}"):
            print(f"{key:28} {rows[key]['setup_s']:8.2f}s {rows[key]['wall_s']:8.2f}s")
        print(f"{'testcontainers / localdev':28} {ratios[suffix]['setup']:8.1f}x {ratios[suffix]['wall']:8.1f}x")
    print(f"(the localdev cluster's own `up`, once, before: {up:.1f}s)")
    path = save("testcontainers", {"engine": os.environ["DOCKER_HOST"], "images": images or "official",
                                   "localdev_services": SERVICES, "localdev_up_s": round(up, 2), "rows": rows,
                                   "ratios_testcontainers_over_localdev": ratios})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

"""Real S3 peer suites run through the endpoint `ns env` gives (the AWS gateway), for each emulator flavor.

- **minio-py's functional tests**, tag 7.2.20 (master sends a LocationConstraint us-east-1 refuses): the
  `tests/functional/tests.py` of minio's PyPI sdist, run by minio 7.2.20 in its own venv, every test to
  its end (bench/peers/minio_driver.py), one namespace.
- **ceph/s3-tests**, `s3tests/functional/test_s3.py` and `test_headers.py` at commit S3TESTS_COMMIT, the
  main and alt users being two throwaway namespaces (its teardown deletes every IAM role of the main user).
  It is on no package registry: see S3TESTS_MISSING for where a checkout is looked for.

Both are installed like the test suite's other tools: once, into the per-user cache (LOCALDEV_CACHE).

    python bench/aws_peers.py run minio --flavor ministack                 # a full run: outcomes and counts
    python bench/aws_peers.py run s3tests --flavor localstack [--subset]   # --subset: the default run's tests
    python bench/aws_peers.py record [--suite minio|s3tests] [--flavor F]  # full runs -> tests/data/aws_peers/
                                                                           # and the counts in docs/aws.md
    python bench/aws_peers.py subset s3tests --budget 40                   # the default run's tests, chosen
                                                                           # from the recorded durations

tests/test_aws_peers.py runs the same through `run_suite` and compares what passed with the recorded lists.
"""

from __future__ import annotations

import argparse
import configparser
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]
from localdev.services.aws.install import ensure_venv  # noqa: E402
from localdev.services.install import ProvisionError, build_lock, cache_dir, progress, run  # noqa: E402

PEERS = Path(__file__).resolve().parent / "peers"
DATA = ROOT / "tests" / "data" / "aws_peers"
DOC = ROOT / "docs" / "aws.md"
BEGIN, END = "<!-- aws-peers:begin -->", "<!-- aws-peers:end -->"
FLAVORS = ("localstack", "ministack")
SUITES = ("minio", "s3tests")

MINIO_VERSION = "7.2.20"
MINIO_REQUIREMENTS = [f"minio=={MINIO_VERSION}"]

S3TESTS_COMMIT = "8f0ae7b404a3a2fcf7038bf1e6bf29544fe9b6a3"
S3TESTS_DIR_ENV = "LOCALDEV_S3TESTS_DIR"
# What s3-tests imports from test_s3.py and test_headers.py (its requirements.txt also lists tools those
# two files never load: tox, gevent, lxml, httplib2).
S3TESTS_REQUIREMENTS = ["boto3==1.44.8", "munch==4.0.0", "isodate==0.7.2", "pytz==2025.2", "requests==2.32.5",
                        "PyYAML==6.0.3", "pytest==8.4.2"]
S3TESTS_FILES = ("s3tests/functional/test_s3.py", "s3tests/functional/test_headers.py")
# The AWS-relevant tests (ci-machine.md): what AWS itself fails, and lifecycle/cloud tiers, which wait
# minutes for a background process, are left out.
S3TESTS_MARKERS = ("not fails_on_aws and not lifecycle_expiration and not lifecycle_transition"
                   " and not cloud_transition and not cloud_restore")


def s3tests_default_dir() -> Path:
    return cache_dir("peers") / f"s3-tests-{S3TESTS_COMMIT[:12]}"


S3TESTS_MISSING = (
    "ceph/s3-tests is on no package registry this machine reaches: put a checkout of commit {commit} at {dir} "
    "(git clone https://github.com/ceph/s3-tests {dir} && git -C {dir} checkout {commit}) or name one in "
    f"${S3TESTS_DIR_ENV}")


# -- obtaining the suites ----------------------------------------------------------------------------------

def minio_suite() -> tuple[Path, Path]:
    """(python of a venv with minio 7.2.20, its sdist's tests/functional/tests.py), installed once."""
    venv = cache_dir("peers") / f"minio-py-{MINIO_VERSION}"
    python = ensure_venv(venv, sys.executable, MINIO_REQUIREMENTS, f"minio-py {MINIO_VERSION}")
    tests = venv / "functional" / "tests.py"
    if tests.exists():
        return python, tests
    with build_lock(tests):
        if not tests.exists():
            progress(f"fetching minio-py {MINIO_VERSION}'s source distribution (its functional tests)")
            with tempfile.TemporaryDirectory() as tmp:
                run([str(python), "-m", "pip", "download", "--disable-pip-version-check", "--no-input", "--no-deps",
                     "--no-binary", ":all:", "-d", tmp, f"minio=={MINIO_VERSION}"],
                    what=f"downloading minio-py {MINIO_VERSION}'s sdist")
                sdist = Path(tmp) / f"minio-{MINIO_VERSION}.tar.gz"
                member = f"minio-{MINIO_VERSION}/tests/functional/tests.py"
                with tarfile.open(sdist) as tar:
                    data = tar.extractfile(member)
                    if data is None:
                        raise ProvisionError(f"{sdist.name} has no {member}")
                    part = tests.with_suffix(".part")
                    part.parent.mkdir(parents=True, exist_ok=True)
                    part.write_bytes(data.read())
                    os.replace(part, tests)
    return python, tests


def minio_data() -> Path:
    """The 1 MB and 11 MB files minio's tests upload, made once: upstream otherwise makes them at every run
    by shuffling letters in Python, seconds of CPU (it takes ready ones from DATA_DIR, as in MinIO's mint)."""
    data = cache_dir("peers", "minio-py-data")
    for name, size in (("datafile-1-MB", 1024 * 1024), ("datafile-11-MB", 11 * 1024 * 1024)):
        path = data / name
        if not path.exists() or path.stat().st_size != size:
            part = path.with_suffix(".part")
            part.write_bytes(os.urandom(size))
            os.replace(part, path)
    return data


def s3tests_source() -> Path | None:
    """The s3-tests checkout: $LOCALDEV_S3TESTS_DIR, else the cache's; None when it is not there."""
    configured = os.environ.get(S3TESTS_DIR_ENV)
    root = Path(configured) if configured else s3tests_default_dir()
    return root if all((root / f).is_file() for f in S3TESTS_FILES) else None


def s3tests_missing() -> str:
    return S3TESTS_MISSING.format(commit=S3TESTS_COMMIT, dir=s3tests_default_dir())


def s3tests_python() -> Path:
    venv = cache_dir("peers") / "s3-tests-venv"
    return ensure_venv(venv, sys.executable, S3TESTS_REQUIREMENTS, "ceph/s3-tests' requirements")


# -- running them ------------------------------------------------------------------------------------------

@dataclass
class Result:
    suite: str
    flavor: str
    outcomes: dict[str, str]  # test id -> passed | failed | error | skipped | NA
    durations: dict[str, float]  # test id -> seconds (what the default run's subset is chosen by)
    seconds: float

    def ids(self, outcome: str) -> list[str]:
        return sorted(t for t, o in self.outcomes.items() if o == outcome)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for o in self.outcomes.values():
            out[o] = out.get(o, 0) + 1
        return dict(sorted(out.items()))


def _host_port(endpoint: str) -> tuple[str, int]:
    m = re.fullmatch(r"https?://([^:/]+):(\d+)/?", endpoint)
    if not m:
        raise ValueError(f"unexpected AWS_ENDPOINT_URL {endpoint!r}")
    return m.group(1), int(m.group(2))


def run_minio(env: dict, tests: list[str] | None = None, timeout: float = 1200) -> dict[str, tuple[str, float]]:
    """minio-py's functional tests as namespace `env` (its `ns env`); name -> (passed | failed | NA, seconds)."""
    python, tests_py = minio_suite()
    host, port = _host_port(env["AWS_ENDPOINT_URL"])
    with tempfile.TemporaryDirectory(prefix="minio-py-") as scratch:  # its downloads land in cwd
        child_env = {"PATH": os.environ.get("PATH", ""), "HOME": scratch, "MINT_MODE": "full", "ENABLE_HTTPS": "0",
                     "SERVER_ENDPOINT": f"{host}:{port}", "ACCESS_KEY": env["AWS_ACCESS_KEY_ID"],
                     "SECRET_KEY": env["AWS_SECRET_ACCESS_KEY"], "DATA_DIR": str(minio_data())}
        proc = subprocess.run([str(python), str(PEERS / "minio_driver.py"), str(tests_py), *(tests or [])],
                              cwd=scratch, env=child_env, capture_output=True, text=True, timeout=timeout)
    outcomes = {}
    for line in proc.stdout.splitlines():
        if not line.startswith("{"):
            continue
        entry = json.loads(line)
        name = entry["name"].removeprefix("minio-py:")
        outcome = {"PASS": "passed", "FAIL": "failed"}.get(entry["status"], entry["status"])
        outcomes[name] = (outcome, entry.get("duration", 0) / 1000)
    if proc.returncode != 0 or not outcomes:
        raise RuntimeError(f"minio-py's tests exited {proc.returncode}:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return outcomes


def owner(env: dict) -> tuple[str, str]:
    """(canonical id, display name) the emulator gives the namespace's account, for s3-tests' ACL checks."""
    import boto3

    s3 = boto3.session.Session(
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_REGION"]).client("s3", endpoint_url=env["AWS_ENDPOINT_URL"])
    found = s3.list_buckets().get("Owner", {})
    return found.get("ID", env["AWS_ACCESS_KEY_ID"]), found.get("DisplayName", "")


def s3tests_config(path: Path, main: dict, alt: dict) -> None:
    """S3TEST_CONF for two namespaces: main (also its IAM and tenant users) and alt."""
    host, port = _host_port(main["AWS_ENDPOINT_URL"])
    cfg = configparser.RawConfigParser()
    cfg["DEFAULT"] = {"host": host, "port": str(port), "is_secure": "False", "ssl_verify": "False"}
    cfg["fixtures"] = {"bucket prefix": "s3t-{random}-"}

    def user(env: dict, email: str) -> dict:
        user_id, display = owner(env)
        return {"user_id": user_id, "display_name": display or email.split("@")[0], "email": email,
                "access_key": env["AWS_ACCESS_KEY_ID"], "secret_key": env["AWS_SECRET_ACCESS_KEY"]}

    m, a = user(main, "main@example.com"), user(alt, "alt@example.com")
    cfg["s3 main"] = {**m, "api_name": ""}
    cfg["s3 alt"] = a
    cfg["s3 tenant"] = {**m, "tenant": "main"}
    cfg["iam"] = m
    cfg["iam root"] = m
    cfg["iam alt root"] = a
    with path.open("w") as f:
        cfg.write(f)


def run_s3tests(main: dict, alt: dict, tests: list[str] | None = None,
                timeout: float = 3600) -> dict[str, tuple[str, float]]:
    """ceph/s3-tests' test_s3.py and test_headers.py (AWS-relevant markers) as namespaces `main` and `alt`;
    `tests` narrows them to ids like "test_s3.py::test_bucket_list_empty". Test id -> (outcome, seconds)."""
    source = s3tests_source()
    if source is None:
        raise ProvisionError(s3tests_missing())
    python = s3tests_python()
    with tempfile.TemporaryDirectory(prefix="s3-tests-") as scratch:
        conf, report = Path(scratch) / "s3tests.conf", Path(scratch) / "report.xml"
        s3tests_config(conf, main, alt)
        if tests:
            selection = [f"s3tests/functional/{t}" for t in tests]
        else:
            selection = list(S3TESTS_FILES)
        argv = [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "s3tests_plugin",
                "-m", S3TESTS_MARKERS, f"--junitxml={report}", "-o", "junit_family=xunit1", *selection]
        child_env = {"PATH": os.environ.get("PATH", ""), "HOME": scratch, "S3TEST_CONF": str(conf),
                     "PYTHONPATH": str(PEERS), "PYTHONDONTWRITEBYTECODE": "1"}
        proc = subprocess.run(argv, cwd=source, env=child_env, capture_output=True, text=True, timeout=timeout)
        if not report.exists():
            raise RuntimeError(f"s3-tests wrote no report (exit {proc.returncode}):\n{proc.stdout[-3000:]}"
                               f"\n{proc.stderr[-2000:]}")
        return junit_outcomes(report.read_text())


def junit_outcomes(xml: str) -> dict[str, tuple[str, float]]:
    outcomes = {}
    for tc in ET.fromstring(xml).iter("testcase"):
        module = tc.get("classname", "").rsplit(".", 1)[-1]
        name = f"{module}.py::{tc.get('name')}"
        kinds = {child.tag for child in tc}
        # a set-up or teardown error is an <error> of the same testcase (one after a pass counts: the
        # suite's cleanup is part of what it checks)
        outcome = ("failed" if "failure" in kinds else "error" if "error" in kinds
                   else "skipped" if "skipped" in kinds else "passed")
        outcomes[name] = (outcome, float(tc.get("time", 0)))
    return outcomes


# -- a cluster for the CLI ---------------------------------------------------------------------------------

class TempCluster:
    """postgres + dynamodb + aws (flavor) with the agent, in a temporary LOCALDEV_HOME; `namespace()` makes
    throwaway namespaces and returns their `ns env`."""

    SERVICES = ["postgres", "dynamodb", "aws"]

    def __init__(self, flavor: str):
        from _common import temp_project

        from localdev.cluster import Cluster
        from localdev.config import load as load_config

        self.home, config, self.env = temp_project(self.SERVICES, {"aws": {"flavor": flavor}})
        os.environ.pop("LOCALDEV_CONFIG", None)  # the temporary project's file, not a user's
        self.cluster = Cluster(home=self.home, config=load_config(start=config.parent, environ=self.env))
        self.cluster.up(services=self.SERVICES, agent=True)
        self._n = 0

    def namespace(self, stem: str) -> dict:
        self._n += 1
        name = f"{stem}-{self._n}"
        self.cluster.namespaces.create(name, seed=False)
        return self.cluster.namespaces.env(name)

    def close(self) -> None:
        self.cluster.namespaces.close()
        self.cluster.down(purge=True)
        shutil.rmtree(self.home.parent, ignore_errors=True)


def run_suite(suite: str, flavor: str, namespace, tests: list[str] | None = None) -> Result:
    """Run `suite` through fresh namespaces made by `namespace(stem) -> env`."""
    t0 = time.monotonic()
    if suite == "minio":
        outcomes = run_minio(namespace("minio"), tests)
    else:
        outcomes = run_s3tests(namespace("s3t-main"), namespace("s3t-alt"), tests)
    return Result(suite, flavor, {t: o for t, (o, _) in outcomes.items()},
                  {t: round(d, 3) for t, (_, d) in outcomes.items()}, time.monotonic() - t0)


# -- records: tests/data/aws_peers/<suite>-<flavor>.json, and the counts in docs/aws.md -------------------

def record_path(suite: str, flavor: str) -> Path:
    return DATA / f"{suite}-{flavor}.json"


def load_record(suite: str, flavor: str) -> dict:
    return json.loads(record_path(suite, flavor).read_text())


def subset(suite: str) -> list[str]:
    """The tests the default run runs (chosen by measurement; tests/data/aws_peers/<suite>-subset.txt)."""
    lines = (DATA / f"{suite}-subset.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


# Left out of the default run's subsets: tests whose outcome depends on timing (expiry, concurrency, clocks),
# which a loaded 2-core machine turns into noise. The subsets favour what the gateway is about.
TIME_SENSITIVE = re.compile(r"(?<!default_)expir|concurrent|thread|mtime|retention|lock|modified|since|_time|timeout")
FOCUS = re.compile(r"_alt|cross|acl|grant|polic|access|auth|anon|public|private|presign|owner")


def choose_subset(suite: str, budget: float) -> list[str]:
    """Tests for the default run, within `budget` seconds of the slower flavor's recorded durations, cheapest
    first in each tier: gateway-related (FOCUS) tests that pass somewhere, the other FOCUS tests, the other
    passing tests, the rest. Passes catch regressions; failures report what starts to work."""
    records = [load_record(suite, f) for f in FLAVORS]
    tests = set.intersection(*(set(r["durations"]) for r in records))
    cost = {t: max(r["durations"][t] for r in records) for t in tests}
    passing = set().union(*(r["passed"] for r in records))
    order = sorted((t for t in tests if not TIME_SENSITIVE.search(t)),
                   key=lambda t: (not FOCUS.search(t), t not in passing, cost[t], t))
    chosen, used = [], 0.0
    for test in order:
        if used + cost[test] <= budget:
            chosen.append(test)
            used += cost[test]
    return sorted(chosen)


def save_subset(suite: str, budget: float) -> Path:
    chosen = choose_subset(suite, budget)
    path = DATA / f"{suite}-subset.txt"
    path.write_text(f"# the default run's {suite} tests: `python bench/aws_peers.py subset {suite} --budget {budget:g}`"
                    "\n# chose them from the recorded durations (gateway-related first, then the cheapest)\n"
                    + "\n".join(chosen) + "\n")
    return path


def save_record(result: Result) -> Path:
    DATA.mkdir(parents=True, exist_ok=True)
    path = record_path(result.suite, result.flavor)
    path.write_text(json.dumps({
        "suite": result.suite, "flavor": result.flavor,
        "source": f"minio-py {MINIO_VERSION}" if result.suite == "minio" else f"ceph/s3-tests {S3TESTS_COMMIT}",
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "seconds": round(result.seconds, 1),
        "counts": result.counts(), "passed": result.ids("passed"),
        "not_passed": {t: o for t, o in sorted(result.outcomes.items()) if o != "passed"},
        "durations": dict(sorted(result.durations.items())),
    }, indent=1) + "\n")
    return path


def render_counts() -> str:
    names = {"minio": f"minio-py {MINIO_VERSION} functional tests",
             "s3tests": f"ceph/s3-tests `test_s3.py` + `test_headers.py` at {S3TESTS_COMMIT[:12]} (the markers above)"}
    lines = ["| suite | " + " | ".join(f"`{f}`" for f in FLAVORS) + " |", "| --- | --- | --- |"]
    for suite in SUITES:
        cells = []
        for flavor in FLAVORS:
            path = record_path(suite, flavor)
            if not path.exists():
                cells.append("not recorded")
                continue
            rec = json.loads(path.read_text())
            total = sum(rec["counts"].values())
            rest = ", ".join(f"{n} {o}" for o, n in rec["counts"].items() if o != "passed")
            cells.append(f"**{len(rec['passed'])}** of {total} pass ({rest}; {rec['seconds']:.0f} s)")
        lines.append(f"| {names[suite]} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_doc() -> None:
    from _common import fill_block

    fill_block(DOC, BEGIN, END, render_counts())


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run one suite against one flavor and print the outcomes")
    r.add_argument("suite", choices=SUITES)
    r.add_argument("--flavor", choices=FLAVORS, default="localstack")
    r.add_argument("--subset", action="store_true", help="only the default test run's subset")
    r.add_argument("--json", help="write the outcomes to this file")
    rec = sub.add_parser("record", help="full runs, saved as the lists tests/test_aws_peers.py checks")
    rec.add_argument("--suite", choices=SUITES, action="append")
    rec.add_argument("--flavor", choices=FLAVORS, action="append")
    sub.add_parser("render", help="only rewrite the counts in docs/aws.md from the saved records")
    sb = sub.add_parser("subset", help="choose the default run's tests from the recorded durations")
    sb.add_argument("suite", choices=SUITES)
    sb.add_argument("--budget", type=float, required=True, help="seconds of recorded test time per flavor")
    args = p.parse_args(argv)
    if args.cmd == "render":
        write_doc()
        return
    if args.cmd == "subset":
        path = save_subset(args.suite, args.budget)
        print(f"{len(subset(args.suite))} tests written to {path}")
        return
    if args.cmd == "run":
        plan = [(args.suite, args.flavor)]
    else:
        plan = [(s, f) for f in (args.flavor or FLAVORS) for s in (args.suite or SUITES)]
    for suite, flavor in plan:
        if suite == "s3tests" and s3tests_source() is None:
            print(f"skipping s3tests: {s3tests_missing()}", file=sys.stderr)
            continue
        cluster = TempCluster(flavor)
        try:
            result = run_suite(suite, flavor, cluster.namespace,
                               subset(suite) if args.cmd == "run" and args.subset else None)
        finally:
            cluster.close()
        print(f"{suite} on {flavor}: {result.counts()} in {result.seconds:.0f} s")
        if args.cmd == "run":
            for test, outcome in sorted(result.outcomes.items()):
                print(f"  {outcome:8} {result.durations[test]:7.2f} s  {test}")
            if args.json:
                Path(args.json).write_text(json.dumps(result.outcomes, indent=1, sort_keys=True))
        else:
            print(f"  saved {save_record(result)}")
    if args.cmd == "record":
        write_doc()


if __name__ == "__main__":
    main()

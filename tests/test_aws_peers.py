"""Real S3 peer suites, run through the endpoints `ns env` gives (the AWS gateway), for both flavors:
minio-py's functional tests (7.2.20) and ceph/s3-tests (test_s3.py, test_headers.py; main and alt users
are two throwaway namespaces). bench/aws_peers.py obtains and runs them; this checks what passed against
the lists recorded per flavor in tests/data/aws_peers/ (`python bench/aws_peers.py record` writes them):
a recorded pass that no longer passes fails the test, a new pass is reported (a warning naming it).

The default run runs a subset of each suite chosen by measurement (tests/data/aws_peers/<suite>-subset.txt);
the full runs are marked long (`bash scripts/test.sh -m long -k peers`).
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import aws_peers  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster(aws_cluster):
    return aws_cluster


@pytest.fixture
def throwaway(cluster):
    """`make(stem) -> env` of a new namespace; all of them deleted afterwards (s3-tests' teardown deletes
    every IAM role of its main user, and the suites leave buckets behind when a test fails)."""
    made: list[str] = []

    def make(stem: str) -> dict:
        name = f"{stem}-{len(made) + 1}"
        cluster.cli("ns", "create", name, "--no-seed", check=True)
        made.append(name)
        return cluster.ns_env(name)

    yield make
    for name in made:
        cluster.cli("ns", "delete", name, "--missing-ok", check=True)


def check_against_record(result: aws_peers.Result, selection: list[str] | None) -> None:
    recorded = aws_peers.load_record(result.suite, result.flavor)
    chosen = set(selection) if selection else set(recorded["passed"]) | set(result.outcomes)
    missing = chosen - set(result.outcomes)
    assert not missing, f"{result.suite} did not run {sorted(missing)} (renamed or deselected upstream?)"
    expected = set(recorded["passed"]) & chosen
    passed = set(result.ids("passed"))
    lost = sorted(expected - passed)
    assert not lost, (f"{result.suite} on {result.flavor}: {len(lost)} recorded passes no longer pass: "
                      + ", ".join(f"{t} ({result.outcomes[t]})" for t in lost))
    new = sorted(passed - expected)
    if new:
        warnings.warn(f"{result.suite} on {result.flavor}: {len(new)} tests now pass that the record says do not "
                      f"({', '.join(new)}): record them with `python bench/aws_peers.py record --suite "
                      f"{result.suite} --flavor {result.flavor}`", stacklevel=1)


def s3tests_or_skip() -> None:
    if aws_peers.s3tests_source() is None:
        pytest.skip(aws_peers.s3tests_missing())


def test_minio_functional_subset(cluster, throwaway):
    selection = aws_peers.subset("minio")
    check_against_record(aws_peers.run_suite("minio", cluster.flavor, throwaway, selection), selection)


def test_s3tests_subset(cluster, throwaway):
    s3tests_or_skip()
    selection = aws_peers.subset("s3tests")
    check_against_record(aws_peers.run_suite("s3tests", cluster.flavor, throwaway, selection), selection)


@pytest.mark.long
def test_minio_functional_full(cluster, throwaway):
    check_against_record(aws_peers.run_suite("minio", cluster.flavor, throwaway), None)


@pytest.mark.long
def test_s3tests_full(cluster, throwaway):
    s3tests_or_skip()
    check_against_record(aws_peers.run_suite("s3tests", cluster.flavor, throwaway), None)


def test_junit_report_is_read_per_test_with_set_up_errors_counted():
    xml = """<testsuites><testsuite>
      <testcase classname="s3tests.functional.test_s3" name="test_ok" time="0.5"/>
      <testcase classname="s3tests.functional.test_s3" name="test_bad" time="1.25"><failure message="x"/></testcase>
      <testcase classname="s3tests.functional.test_headers" name="test_setup" time="0.1"><error message="y"/></testcase>
      <testcase classname="s3tests.functional.test_s3" name="test_torn" time="2"><failure/><error/></testcase>
      <testcase classname="s3tests.functional.test_s3" name="test_skip" time="0"><skipped/></testcase>
    </testsuite></testsuites>"""
    assert aws_peers.junit_outcomes(xml) == {
        "test_s3.py::test_ok": ("passed", 0.5), "test_s3.py::test_bad": ("failed", 1.25),
        "test_headers.py::test_setup": ("error", 0.1), "test_s3.py::test_torn": ("failed", 2.0),
        "test_s3.py::test_skip": ("skipped", 0.0)}

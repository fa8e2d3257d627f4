"""A user's test file: no conftest, only the localdev plugin's fixtures. Run by tests/test_pytest_plugin.py."""

import os
import time
from pathlib import Path

import pytest

WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")


def _report(name: str) -> None:
    out = os.environ.get("SAMPLE_OUT")
    if out:
        Path(out, f"{name}-{WORKER}-{os.getpid()}").write_text(name)


@pytest.fixture(autouse=True)
def report_namespace(localdev_namespace):
    _report(localdev_namespace)


def test_env_points_at_own_namespace(localdev_env, localdev_namespace):
    assert localdev_env["LOCALDEV_NAMESPACE"] == localdev_namespace
    assert localdev_namespace.startswith("pytest-") and localdev_namespace.endswith(WORKER)
    assert os.environ["DATABASE_URL"] == localdev_env["DATABASE_URL"]


def test_seeded_orders_are_there(pg):
    assert pg.execute("select count(*) from orders").fetchone()[0] == 3


def test_writes_stay_in_own_namespace(pg, localdev_namespace):
    pg.execute("create table if not exists mine (who text)")
    pg.execute("insert into mine values (%s)", (localdev_namespace,))
    pg.commit()
    assert {r[0] for r in pg.execute("select who from mine")} == {localdev_namespace}


@pytest.mark.parametrize("i", range(12))
def test_more_work_for_other_workers(pg, localdev_namespace, i):
    pg.execute("create table if not exists mine (who text)")
    pg.execute("insert into mine values (%s)", (localdev_namespace,))
    pg.commit()
    assert {r[0] for r in pg.execute("select who from mine")} == {localdev_namespace}


def test_slow_when_asked():
    time.sleep(float(os.environ.get("SAMPLE_SLEEP", "0")))

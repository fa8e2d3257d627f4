"""The mechanism services plug into: discovery by entry point, declarations, the wave runner, secrets.

A made-up service is installed the way a third-party package installs one (a distribution whose metadata
registers it under the localdev.services entry points); nothing looks it up by monkeypatching.
"""

from __future__ import annotations

import json
import threading
from types import SimpleNamespace

import psycopg
import pytest

from localdev.config import validate
from localdev.errors import LocalDevError
from localdev.names import Namespace
from localdev.namespaces import REGISTRY_DB, Namespaces
from localdev.services import ServiceErrors, in_waves, service_classes
from localdev.services.base import Option, PytestClient, Secret, Service


def _made(env):
    yield {"made-from": env["WIDGET_URL"]}


class Widget(Service):
    """A service as a third party would write one (nothing of it runs here)."""

    name = "widget"
    default_port = 7200
    options = {"colour": Option("blue", str, ("blue", "red"))}
    env_keys = ("WIDGET_URL",)
    secrets = (Secret("widget", "token", lambda: "t0ken"),)

    def namespace_env(self, ns):
        return {"WIDGET_URL": f"widget://{ns.secret('widget', 'token')}@{self.host}:{self.port}/{ns.name}"}

    @classmethod
    def pytest_clients(cls):
        return [PytestClient("widget", _made, doc="a widget client")]


class Leaky(Widget):
    """Returns a key it does not declare: a bug `ns env` must not hide by dropping the key."""

    name = "leaky"

    def namespace_env(self, ns):
        return {**super().namespace_env(ns), "LEAKY_SECRET": "x"}


class NotAService:
    name = "imposter"


def test_a_third_party_service_is_found_and_configured(installed_service):
    installed_service("widget", f"{__name__}:Widget")
    classes = service_classes()
    assert classes["widget"] is Widget
    assert list(classes)[:4] == ["postgres", "dynamodb", "aws", "mongo"]  # ours first, in their order
    cfg = validate({"services": {"widget": {"colour": "red", "port": 7201}}}, "test", None, {})
    # every service has the common options (url and password_file: where it runs on runtime = "external")
    assert cfg.services["widget"] == {"enabled": True, "allow_plaintext": False, "port": 7201, "colour": "red",
                                      "url": "", "password_file": ""}
    with pytest.raises(LocalDevError, match="services.widget.colour"):
        validate({"services": {"widget": {"colour": "green"}}}, "test", None, {})


def test_an_entry_point_that_is_no_service_is_refused_with_its_name(installed_service):
    installed_service("imposter", f"{__name__}:NotAService")
    with pytest.raises(LocalDevError, match=r"imposter = .*NotAService.* is not a Service named 'imposter'"):
        service_classes()


def test_an_entry_point_that_cannot_load_says_which(installed_service):
    installed_service("ghost", "no_such_module_here:Ghost")
    with pytest.raises(LocalDevError, match="ghost = 'no_such_module_here:Ghost' cannot be loaded"):
        service_classes()


def test_ns_env_is_the_union_of_declared_keys_and_an_undeclared_one_is_an_error(tmp_path):
    services = {"widget": Widget(_ctx(tmp_path)), "leaky": Leaky(_ctx(tmp_path))}
    api = Namespaces(SimpleNamespace(services=services))
    ns = Namespace.new("pr-1", "us-east-1", Widget.secrets)
    assert api._env(ns, ["widget"]) == {"LOCALDEV_NAMESPACE": "pr-1", "WIDGET_URL": "widget://t0ken@127.0.0.1:7200/pr-1"}
    with pytest.raises(LocalDevError, match="leaky service returned env keys it does not declare.*LEAKY_SECRET"):
        api._env(ns, ["widget", "leaky"])


def test_the_plugin_makes_a_fixture_per_declared_client(installed_service):
    from localdev import pytest_plugin

    installed_service("widget", f"{__name__}:Widget")
    made: dict = {}
    pytest_plugin._declare_client_fixtures(made)
    assert {"pg", "dynamodb", "s3", "sqs", "mongo", "widget"} <= set(made)
    with pytest.raises(LocalDevError, match="widget service declares a pytest fixture 'widget' that another"):
        pytest_plugin._declare_client_fixtures({"widget": None})  # the name is taken already


def test_secrets_shared_by_a_group_are_made_once():
    calls = []
    declared = [Secret("aws", "key", lambda: calls.append(1) or "k1"), Secret("aws", "key", lambda: "k2"),
                Secret("pg", "password", lambda: "p")]
    ns = Namespace.new("x", "eu-west-1", declared)
    assert ns.secrets == {"aws": {"key": "k1"}, "pg": {"password": "p"}} and ns.region == "eu-west-1"
    with pytest.raises(LocalDevError, match="no secret redis.password"):
        ns.secret("redis", "password")


def test_in_waves_runs_dependencies_first_and_follows_its_error_policy():
    # mongo depends on postgres: two waves; dynamodb and aws share the first with postgres
    order: list[str] = []
    lock = threading.Lock()

    def record(name):
        with lock:
            order.append(name)
        return name.upper()

    names = ["postgres", "dynamodb", "aws", "mongo"]
    assert in_waves(names, record) == {n: n.upper() for n in names}
    assert order[-1] == "mongo" and set(order[:3]) == {"postgres", "dynamodb", "aws"}
    order.clear()
    assert in_waves(names, record, dependants_first=True)["mongo"] == "MONGO" and order[0] == "mongo"

    def fail_postgres(name):
        record(name)
        if name == "postgres":
            raise ValueError("postgres broke")

    order.clear()
    with pytest.raises(ValueError, match="postgres broke"):  # one failure: raised as it is
        in_waves(names, fail_postgres)
    assert "mongo" not in order  # the next wave needs what failed
    order.clear()
    with pytest.raises(ValueError):
        in_waves(names, fail_postgres, keep_going=True)
    assert "mongo" in order

    def fail_two(name):
        if name in ("dynamodb", "aws"):
            raise RuntimeError(f"{name} broke")

    with pytest.raises(ServiceErrors) as caught:
        in_waves(names, fail_two)
    assert [n for n, _ in caught.value.errors] == ["dynamodb", "aws"]
    with pytest.raises(LocalDevError, match="^2 failed$"):
        in_waves(names, fail_two, combine=lambda errors: LocalDevError(f"{len(errors)} failed"))


def test_a_registry_row_from_before_declared_secrets_migrates_and_keeps_working(shared_cluster):
    """Rows used to hold fixed fields (pg_password, the AWS key pair, region); the first start after the
    upgrade moves them into per-service groups, and the namespace's credentials stay what they were."""
    h = shared_cluster
    h.cli("ns", "create", "old-row", "--no-seed", check=True)
    before = h.ns_env("old-row")
    admin = h.cluster.services["postgres"]
    with admin.connect(REGISTRY_DB) as conn:
        conn.execute("UPDATE namespaces SET secrets = %s, region = 'us-east-1' WHERE name = 'old-row'",
                     (json.dumps({"pg_password": before["PGPASSWORD"], "aws_access_key_id": "123456789012",
                                  "aws_secret_access_key": "s", "region": "eu-west-2"}),))
    h.cluster.namespaces._ensure_registry()  # what the agent runs at its first start
    with admin.connect(REGISTRY_DB) as conn:
        secrets, region = conn.execute("SELECT secrets, region FROM namespaces WHERE name = 'old-row'").fetchone()
    assert secrets == {"postgres": {"password": before["PGPASSWORD"]}, "mongo": {"password": before["PGPASSWORD"]},
                       "aws": {"access_key_id": "123456789012", "secret_access_key": "s"}}
    assert region == "eu-west-2"
    after = h.ns_env("old-row")
    assert after == before
    with psycopg.connect(after["DATABASE_URL"]) as conn:
        assert conn.execute("select current_user").fetchone() == ("ns_old_row",)
    h.cli("ns", "delete", "old-row", check=True)


def _ctx(tmp_path):
    from localdev.services.base import ServiceContext
    from localdev.state import StateDir

    return ServiceContext(state=StateDir(tmp_path), host="127.0.0.1", runtime="native",
                          options={"enabled": True, "port": 7200, "colour": "blue"})

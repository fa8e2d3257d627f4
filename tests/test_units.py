"""Pure logic: names, TTLs, labels, CI names, config validation, env formats."""

import json
import subprocess

import pytest

from localdev.cli import format_env
from localdev.config import validate
from localdev.errors import BadInput
from localdev.names import Namespace, name_from_ci, parse_labels, parse_ttl, slug, validate_access_key, validate_name


@pytest.mark.parametrize("name", ["a", "pr-123", "x" * 40, "a1-b2"])
def test_valid_names(name):
    assert validate_name(name) == name


@pytest.mark.parametrize("name", ["", "PR-1", "a;drop", "x" * 41, "ünï", "1abc", "-a", "a_b", "a b", "a'; DROP DATABASE x"])
def test_invalid_names(name):
    with pytest.raises(BadInput, match="invalid namespace name"):
        validate_name(name)


@pytest.mark.parametrize("text,seconds", [("30m", 1800), ("2h", 7200), ("7d", 604800), ("45s", 45), ("none", None)])
def test_ttl(text, seconds):
    assert parse_ttl(text) == seconds


@pytest.mark.parametrize("text", ["", "2", "2w", "-1h", "0h", "1.5h", "h", "999d", "$(rm -rf ~)"])
def test_bad_ttl(text):
    with pytest.raises(BadInput, match="invalid TTL"):
        parse_ttl(text)


def test_labels():
    assert parse_labels(["pr=123", "team=core"]) == {"pr": "123", "team": "core"}
    for bad in ["novalue", "=x", "Bad=1", "k=\x00"]:
        with pytest.raises(BadInput):
            parse_labels([bad])


def test_slug_and_ci_names():
    assert slug("Feature/ABC_12 new thing!") == "feature-abc-12-new-thing"
    assert name_from_ci({"GITHUB_REF": "refs/pull/42/merge"}) == "pr-42"
    assert name_from_ci({"CI_MERGE_REQUEST_IID": "7"}) == "pr-7"
    assert name_from_ci({"GITHUB_REF_NAME": "Feature/Login-Page"}) == "feature-login-page"
    assert name_from_ci({"CI_COMMIT_REF_NAME": "123-fix"}) == "fix"
    with pytest.raises(BadInput, match="--from-ci"):
        name_from_ci({})


def test_namespace_credentials_are_random_and_well_formed():
    from localdev.services import service_classes

    declared = [secret for cls in service_classes().values() for secret in cls.secrets]
    a, b = Namespace.new("x", "us-east-1", declared), Namespace.new("x", "us-east-1", declared)
    key = a.secret("aws", "access_key_id")
    assert key != b.secret("aws", "access_key_id") and a.secret("postgres", "password") != b.secret("postgres", "password")
    assert validate_access_key(key) and len(key) == 12
    assert a.db_name == "ns_x" and Namespace("pr-1").db_name == "ns_pr_1"
    assert a.secret("postgres", "password") not in repr(a) and key not in repr(a)
    for bad in ["x" * 243, "12345678901/", "abc", ""]:
        with pytest.raises(BadInput):
            validate_access_key(bad)


@pytest.mark.parametrize("raw,needle", [
    ({"runtime": "podman"}, "runtime: 'podman' is not allowed; use one of: auto, native, docker"),
    ({"services": {"postgres": {"port": "abc"}}}, "services.postgres.port: expected int"),
    ({"services": {"postgres": {"port": 70000}}}, "services.postgres.port: 70000 is not a TCP port"),
    ({"services": {"memcached": {}}}, "services.memcached: unknown service"),
    ({"services": {"postgres": {"prot": 1}}}, "services.postgres.prot: unknown key"),
    ({"namespaces": {"default_ttl": "forever"}}, "namespaces.default_ttl"),
    ({"colour": "blue"}, "colour: unknown key"),
    ({"agent": {"reap_interval": -1}}, "agent.reap_interval: must be positive"),
])
def test_config_errors_name_file_key_and_allowed(raw, needle):
    with pytest.raises(BadInput) as err:
        validate(raw, "/p/localdev.toml", None, {})
    assert str(err.value).startswith("/p/localdev.toml: ") and needle in str(err.value)


def test_config_env_overrides():
    cfg = validate({}, "defaults", None, {"LOCALDEV_RUNTIME": "native", "LOCALDEV_POSTGRES_PORT": "15432"})
    assert cfg.runtime == "native" and cfg.services["postgres"]["port"] == 15432
    with pytest.raises(BadInput, match="LOCALDEV_RUNTIME"):
        validate({}, "defaults", None, {"LOCALDEV_RUNTIME": "k8s"})


def test_shell_format_is_eval_safe():
    env = {"A": "plain", "B": "it's $(touch /tmp/pwned) `x` \"q\"", "C": "a b\nc"}
    script = format_env(env, "shell") + 'printf "%s\\0" "$A" "$B" "$C"'
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.split("\0")[:3] == [env["A"], env["B"], env["C"]]
    assert json.loads(format_env(env, "json")) == env
    dotenv = format_env(env, "dotenv")
    assert "A=plain\n" in dotenv and 'B="it\'s $(touch /tmp/pwned)' in dotenv


@pytest.mark.parametrize("value", [0, -1, "20", 2.5, True])
def test_config_namespace_max_connections_must_be_a_positive_int(value):
    with pytest.raises(BadInput) as err:
        validate({"namespaces": {"max_connections": value}}, "/p/localdev.toml", None, {})
    assert str(err.value).startswith("/p/localdev.toml: namespaces.max_connections: ")


def test_config_namespace_max_connections_default_and_value():
    assert validate({}, "defaults", None, {}).namespaces["max_connections"] == 20
    assert validate({"namespaces": {"max_connections": 5}}, "d", None, {}).namespaces["max_connections"] == 5


@pytest.mark.parametrize("argv", [["ns", "create", "b", "--exist"], ["ns", "create", "--from-c"],
                                  ["ns", "delete", "x", "--missing"], ["down", "--pur"]])
def test_abbreviated_options_are_refused_not_guessed(argv):
    from localdev.cli import build_parser
    from localdev.errors import BadInput

    with pytest.raises(BadInput, match="unrecognized arguments"):
        build_parser().parse_args(argv)


@pytest.mark.parametrize("argv", [["ns", "create", "pr-1", "--print-env", "shell", "--label", "a=b"], ["up", "--json"],
                                  ["ns", "reset", "x", "--to", "s"], ["token", "create", "ci", "--role", "ci"],
                                  ["backup", "-o", "d"], ["ns", "import", "f.tar", "--as", "n"], ["ns"], ["status"]])
def test_the_parser_of_one_command_reads_it_as_the_whole_parser_does(argv):
    from localdev.cli import _selected, build_parser

    assert vars(build_parser(_selected(argv)).parse_args(argv)).keys() == vars(build_parser().parse_args(argv)).keys()
    whole, one = vars(build_parser().parse_args(argv)), vars(build_parser(_selected(argv)).parse_args(argv))
    assert {k: v for k, v in one.items() if k != "func"} == {k: v for k, v in whole.items() if k != "func"}
    assert getattr(one["func"], "__name__", "help") == getattr(whole["func"], "__name__", "help")


def test_a_home_too_long_for_the_agents_socket_is_refused_before_anything_is_made(tmp_path):
    from localdev.cluster import Cluster
    from localdev.errors import BadInput

    home = tmp_path / ("h" * 110)
    with pytest.raises(BadInput, match="too long for the agent's socket"):
        Cluster(home=home).up(services=["postgres"])
    assert not home.exists()


def test_plain_tables_pad_columns_to_their_widest_cell_and_never_wrap():
    from localdev.tables import render

    wide = "x" * 300
    assert render("namespaces", ["name", "state", "labels"], [["a", "ready", ""], ["bb-longer", "degraded", wide]]) == (
        "namespaces\n"
        "name       state     labels\n"
        "a          ready\n"
        f"bb-longer  degraded  {wide}\n")
    assert render("tokens", ["name", "role"], []) == "tokens\nname  role\n"


@pytest.mark.parametrize("xdg", [None, "/tmp/xdg-elsewhere", "   "])
def test_the_profile_dir_is_platformdirs_user_config_dir(monkeypatch, xdg):
    from platformdirs import user_config_dir

    from localdev.profile import config_dir

    if xdg is None:
        monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    else:
        monkeypatch.setenv("XDG_CONFIG_HOME", xdg)
    assert str(config_dir()) == user_config_dir("localdev", appauthor=False)


def test_an_agent_whose_registry_connections_are_all_busy_says_so_in_a_sentence():
    """psycopg_pool's own "couldn't get a connection after 30.00 sec" reached the CLI, and a traceback the
    agent's log; the client gets a sentence and a failure it can raise again (exit 1: try again)."""
    import json

    from psycopg_pool import PoolTimeout

    from localdev.agent import _error
    from localdev.errors import from_kind

    response = _error(PoolTimeout("couldn't get a connection after 30.00 sec"))
    body = json.loads(response.body)
    assert response.status_code == 500 and body["kind"] == "failed"
    assert body["error"].startswith("the cluster is busy: every connection the agent keeps to its registry ")
    assert from_kind(body["kind"], body["error"]).exit_code == 1


def test_state_secrets_are_read_once_while_the_file_stays_the_same(tmp_path, monkeypatch):
    from localdev.state import StateDir

    agent, other = StateDir(tmp_path), StateDir(tmp_path)
    password = agent.secret("postgres_admin_password")
    assert (tmp_path / "secrets.json").stat().st_mode & 0o777 == 0o600
    reads = []
    real_read = type(tmp_path).read_text
    monkeypatch.setattr(type(tmp_path), "read_text", lambda self, *a, **k: reads.append(self) or real_read(self, *a, **k))
    assert [agent.secret("postgres_admin_password") for _ in range(3)] == [password] * 3 and reads == []
    token = other.secret("redis_admin_password")  # another process adds one: the file is a new one
    assert agent.secret("redis_admin_password") == token and agent.secret("postgres_admin_password") == password
    (tmp_path / "secrets.json").unlink()  # `down --purge`: the next up makes new ones, and so must this process
    fresh = agent.secret("postgres_admin_password")
    assert fresh != password and other.secret("postgres_admin_password") == fresh

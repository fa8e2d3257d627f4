"""localdev's own image (Containerfile at the checkout's root, the agent of deploy/kubernetes): built with the
engine the container tests use (in CI Podman's Docker API, from scripts/engine.sh), on the tests' local Debian
12 base image (no image registry is reachable there; the package index is), then run against a native cluster
on this machine: the CLI in the image, as its non-root user, creates a namespace through the cluster's agent
(team mode: TLS and a token) and the namespace works."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest
import yaml

from conftest import free_port
from localdev.runtimes import docker_available, engine_url

REPO = Path(__file__).resolve().parent.parent
BASE = "localhost/base:bookworm"  # scripts/engine.sh debootstraps it
TAG = "localhost/localdev-test/localdev:latest"
BASE_WITH_CA = "localhost/localdev-test/base-pip-ca:latest"

if not docker_available():
    reason = f"no Docker Engine API answers at {engine_url()}: start one (CI: scripts/engine.sh) or set DOCKER_HOST"
    if os.environ.get("LOCALDEV_TEST_DOCKER") == "required":
        raise RuntimeError(reason)
    pytest.skip(reason, allow_module_level=True)

import docker  # noqa: E402  (only once an engine is known to be there)


def pip_ca_bundle() -> Path | None:
    """The CA bundle pip uses on this machine, if it names one (CI's egress is through its own CA): pip inside
    the build gets the same."""
    for candidate in (os.environ.get("PIP_CERT"), os.environ.get("REQUESTS_CA_BUNDLE")):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


@pytest.fixture(scope="module")
def engine():
    client = docker.DockerClient(base_url=engine_url(), timeout=600)
    try:
        client.images.get(BASE)
    except docker.errors.ImageNotFound:
        message = f"no {BASE} image: scripts/engine.sh builds it"
        if os.environ.get("LOCALDEV_TEST_DOCKER") == "required":
            raise RuntimeError(message) from None
        pytest.skip(message)
    yield client
    client.close()


@pytest.fixture(scope="module")
def image(engine, tmp_path_factory):
    """Build the Containerfile from a copy of this checkout (its .dockerignore applies); pip inside reaches the
    package index as on this machine."""
    context = tmp_path_factory.mktemp("image") / "context"
    shutil.copytree(REPO, context, ignore=shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.egg-info"))
    args = {"BASE": BASE}
    bundle = pip_ca_bundle()
    if bundle:  # the base with that bundle in it, where pip in the Containerfile's steps is told to find it
        ca_context = context.parent / "base-with-ca"
        ca_context.mkdir()
        shutil.copy(bundle, ca_context / "pip-ca.pem")
        (ca_context / "Containerfile").write_text(f"FROM {BASE}\nCOPY pip-ca.pem /etc/pip-ca.pem\n")
        build(engine, ca_context, BASE_WITH_CA, {})
        args = {"BASE": BASE_WITH_CA, "PIP_CERT": "/etc/pip-ca.pem"}
    try:
        previous = engine.images.get(TAG).id
    except docker.errors.ImageNotFound:
        previous = None
    t0 = time.monotonic()
    built = build(engine, context, TAG, args)
    seconds = time.monotonic() - t0
    print(f"agent image built in {seconds:.1f}s")
    if previous and previous != built.id:  # the last run's image, replaced by this one: ours to remove
        try:
            engine.images.remove(previous)
        except docker.errors.APIError:
            pass  # still used by a container of another run
    return built


def build(engine, context: Path, tag: str, args: dict):
    try:
        return engine.images.build(path=str(context), dockerfile="Containerfile", tag=tag, rm=True, forcerm=True,
                                   buildargs=args)[0]
    except docker.errors.BuildError as exc:
        log = "".join(chunk.get("stream", "") for chunk in exc.build_log)
        raise AssertionError(f"{tag} did not build: {exc}\n{log[-4000:]}") from None


def run(engine, image, *args: str, env: dict | None = None, volumes: dict | None = None) -> tuple[int, str]:
    container = engine.containers.run(image.id, list(args), detach=True, network_mode="host", environment=env or {},
                                      volumes=volumes or {})
    try:
        code = container.wait(timeout=120)["StatusCode"]
        return code, container.logs(stdout=True, stderr=True).decode()
    finally:
        container.remove(v=True, force=True)


def test_image_runs_as_its_non_root_user_and_has_the_cli(engine, image):
    assert image.attrs["Config"]["User"] == "10001"
    assert run(engine, image, "--version") == (0, "localdev 0.1.0\n")
    code, out = run(engine, image, "k8s", "--output", "/tmp/k8s")  # the same generator, in the image
    assert code == 0 and "wrote 6 files" in out, out


def test_cli_in_the_image_drives_a_native_cluster(engine, image, make_cluster, tmp_path):
    """The image's localdev against the services on this machine, through their agent's TLS listener."""
    import psycopg

    port = free_port()
    h = make_cluster(["postgres", "redis"], extra=f'[agent]\nlisten = "127.0.0.1:{port}"\n')
    token = h.cli("token", "create", "image", "--role", "admin", check=True).stdout.strip()
    ca = json.loads(h.cli("status", "--json", check=True).stdout)["agent"]["listener"]["ca"]
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)  # (pytest's own directories are 0700) reachable by the image's user
    shutil.copy(ca, shared / "ca.pem")
    (shared / "ca.pem").chmod(0o644)
    env = {"LOCALDEV_URL": f"https://127.0.0.1:{port}", "LOCALDEV_TOKEN": token, "LOCALDEV_CA": "/ca/ca.pem"}
    volumes = {str(shared): {"bind": "/ca", "mode": "ro"}}
    code, out = run(engine, image, "status", "--json", env=env, volumes=volumes)
    assert code == 0, out
    status = json.loads(out)
    assert {n: s["state"] for n, s in status["services"].items()} == {"postgres": "healthy", "redis": "healthy"}
    code, out = run(engine, image, "ns", "create", "from-image", "--no-seed", "--print-env", "json", env=env,
                    volumes=volumes)
    assert code == 0, out
    settings = json.loads(out)
    try:
        assert settings == h.ns_env("from-image")
        with psycopg.connect(settings["DATABASE_URL"], connect_timeout=5) as conn:
            assert conn.execute("select current_user").fetchone() == ("ns_from_image",)
        code, out = run(engine, image, "ns", "delete", "from-image", env=env, volumes=volumes)
        assert (code, out) == (0, "namespace from-image deleted\n")
    finally:
        h.cli("ns", "delete", "from-image", "--missing-ok")


def agent_container() -> dict:
    """The agent's container in the generated Deployment."""
    from localdev import kubernetes
    from localdev.config import validate

    [agent] = [d for d in yaml.safe_load_all(kubernetes.render(validate({}, "test", None, {}))["deployments.yaml"])
               if d["metadata"]["name"] == kubernetes.AGENT]
    [container] = agent["spec"]["template"]["spec"]["containers"]
    return container


def test_agent_in_the_image_serves_native_services_on_the_external_runtime(engine, image, make_cluster, tmp_path):
    """The Deployment's agent as it runs there: the image running the Deployment's command (`localdev.agent
    --up`) on runtime = "external", pointed at services it does not run (this machine's PostgreSQL and Redis),
    passwords from the environment; ready by the Deployment's own probe; it creates namespaces that work,
    serves its TLS listener, stops on SIGTERM."""
    import psycopg
    import redis

    from localdev.agent_client import AgentClient

    h = make_cluster(["postgres", "redis"], agent=False)
    services = h.cluster.services
    port = free_port()
    lines = ['runtime = "external"', "[agent]", f'listen = "127.0.0.1:{port}"']
    for name, svc in services.items():
        lines.append(f"[services.{name}]")
        lines.append(f'url = "{svc.external_admin("127.0.0.1", svc.port)[0]}"' if name in ("postgres", "redis")
                     else "enabled = false")
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o755)
    (shared / "localdev.toml").write_text("\n".join(lines) + "\n")
    from localdev import kubernetes

    spec = agent_container()
    # the Deployment's own settings (LOCALDEV_HOME, LOCALDEV_CONFIG), and the passwords its Secret would give
    env = {e["name"]: e["value"] for e in spec["env"] if "value" in e}
    env.update({"LOCALDEV_POSTGRES_PASSWORD": services["postgres"].admin_password,
                "LOCALDEV_REDIS_PASSWORD": services["redis"].admin_password})
    assert env["LOCALDEV_CONFIG"] == f"{kubernetes.AGENT_CONFIG_DIR}/localdev.toml"
    # confined as the Deployment's securityContext confines it: a read-only root, its volumes the only writable
    # places (each root's and 0777, as an emptyDir is), no capabilities, no privilege escalation
    volumes = {str(shared): {"bind": kubernetes.AGENT_CONFIG_DIR, "mode": "ro"}}
    for mount in spec["volumeMounts"]:
        if not mount.get("readOnly"):
            empty_dir = tmp_path / mount["name"]
            empty_dir.mkdir()
            empty_dir.chmod(0o777)
            volumes[str(empty_dir)] = {"bind": mount["mountPath"], "mode": "rw"}
    command = spec["command"]
    container = engine.containers.run(image.id, command[1:], entrypoint=command[:1], detach=True,
                                      network_mode="host", environment=env, volumes=volumes, read_only=True,
                                      cap_drop=["ALL"], security_opt=["no-new-privileges"])
    try:
        probe = spec["readinessProbe"]["exec"]["command"]
        deadline = time.monotonic() + 90
        while True:
            container.reload()
            assert container.status == "running", container.logs().decode()
            answer = container.exec_run(probe)
            if answer.exit_code == 0:
                break
            assert time.monotonic() < deadline, container.logs().decode() + answer.output.decode()
            time.sleep(1)

        def localdev(*args: str) -> str:
            code, out = container.exec_run(["localdev", *args])
            assert code == 0, out.decode()
            return out.decode()

        status = json.loads(localdev("status", "--json"))
        assert status["runtime"] == "external"
        assert {n: s["state"] for n, s in status["services"].items()} == {"postgres": "healthy", "redis": "healthy"}
        settings = json.loads(localdev("ns", "create", "ext-image", "--no-seed", "--print-env", "json"))
        with psycopg.connect(settings["DATABASE_URL"], connect_timeout=5) as conn:
            assert conn.execute("select current_user, current_database()").fetchone() == ("ns_ext_image",
                                                                                          "ns_ext_image")
        client = redis.Redis.from_url(settings["REDIS_URL"])
        key = settings["REDIS_KEY_PREFIX"] + "k"
        client.set(key, "v")
        assert client.get(key) == b"v"
        client.close()
        # the TLS listener, with a token the agent keeps in the registry and the CA it made
        token = localdev("token", "create", "from-host", "--role", "admin").strip().splitlines()[0]
        ca = tmp_path / "ca.pem"
        ca.write_text(localdev_file(container, f"{kubernetes.AGENT_HOME}/tls/ca.pem"))
        remote = AgentClient(url=f"https://127.0.0.1:{port}", token=token, ca=str(ca), timeout=30)
        assert [n["name"] for n in remote.list()] == ["ext-image"]
        assert localdev("ns", "delete", "ext-image") == "namespace ext-image deleted\n"
        with services["postgres"].connect() as conn:
            assert conn.execute("select count(*) from pg_roles where rolname = 'ns_ext_image'").fetchone() == (0,)
        container.stop(timeout=20)
        assert container.wait(timeout=30)["StatusCode"] == 0, container.logs().decode()
    finally:
        container.remove(v=True, force=True)


def localdev_file(container, path: str) -> str:
    code, out = container.exec_run(["cat", path])
    assert code == 0, out.decode()
    return out.decode()

"""The Kubernetes deployment `localdev k8s` generates (deploy/kubernetes/), checked offline: no cluster can run
here. The Kubernetes API's own schemas (kubernetes-validate, pinned, for Kubernetes K8S_VERSION, strict: an
unknown field is an error), then what a schema cannot see: every Service selects a pod, every probe reaches a
declared port, no secret value is written, the agent's config is what the generator was given."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from localdev import kubernetes
from localdev.config import validate
from localdev.runtimes.base import ContainerSpec
from localdev.services.base import Service

REPO = Path(__file__).resolve().parent.parent
COMMITTED = REPO / "deploy" / "kubernetes"
K8S_VERSION = "1.31"
VALIDATOR = Path(sys.executable).parent / "kubernetes-validate"


def default_config():
    return validate({}, "test", None, {})


def documents(files: dict[str, str]) -> list[dict]:
    return [doc for name, text in files.items() if name != "kustomization.yaml"
            for doc in yaml.safe_load_all(text) if doc]


def by_kind(files: dict[str, str], kind: str) -> list[dict]:
    return [d for d in documents(files) if d["kind"] == kind]


def pod_templates(files: dict[str, str]) -> list[dict]:
    return [d["spec"]["template"] for d in documents(files) if d["kind"] in ("Deployment", "StatefulSet")]


def kubernetes_validate(*paths: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(VALIDATOR), "--strict", "-k", K8S_VERSION, *map(str, paths)],
                          capture_output=True, text=True, timeout=300)


def test_committed_deployment_is_the_generated_one(tmp_path):
    out = tmp_path / "kubernetes"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCALDEV_")}
    proc = subprocess.run([sys.executable, "-m", "localdev.cli", "k8s", "--output", str(out)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    generated = {p.name: p.read_text() for p in sorted(out.iterdir())}
    committed = {p.name: p.read_text() for p in sorted(COMMITTED.iterdir())}
    assert generated == committed, \
        "deploy/kubernetes is stale: run `localdev k8s` in the repository and commit it"


def test_one_kind_per_file_and_kustomization_lists_them_all():
    files = kubernetes.render(default_config())
    assert sorted(files) == ["configmaps.yaml", "deployments.yaml", "kustomization.yaml", "networkpolicies.yaml",
                             "services.yaml", "statefulsets.yaml"]
    for name, text in files.items():
        kinds = {d["kind"] for d in yaml.safe_load_all(text) if d}
        assert len(kinds) == 1, (name, kinds)
    kustomization = yaml.safe_load(files["kustomization.yaml"])
    assert kustomization["kind"] == "Kustomization"
    assert kustomization["resources"] == sorted(n for n in files if n != "kustomization.yaml")


@pytest.mark.skipif(not VALIDATOR.exists(), reason="kubernetes-validate is not installed (the test extra has it)")
def test_committed_files_validate_against_the_kubernetes_schemas():
    resources = sorted(p for p in COMMITTED.glob("*.yaml") if p.name != "kustomization.yaml")
    proc = kubernetes_validate(*resources)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # one line per document, each named valid: a file it skipped would not be
    count = sum(1 for p in resources for d in yaml.safe_load_all(p.read_text()) if d)
    assert proc.stdout.count(" passed for resource ") == count, proc.stdout
    assert f"against version {K8S_VERSION}" in proc.stdout


@pytest.mark.skipif(not VALIDATOR.exists(), reason="kubernetes-validate is not installed (the test extra has it)")
def test_the_validator_refuses_what_kubernetes_would(tmp_path):
    """The check can fail: the same StatefulSet with a misspelt field is refused, naming it."""
    [statefulset] = [d for d in by_kind(kubernetes.render(default_config()), "StatefulSet")
                     if d["metadata"]["name"] == "postgres"]
    statefulset["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["periodSecond"] = 5
    (tmp_path / "typo.yaml").write_text(yaml.safe_dump(statefulset))
    proc = kubernetes_validate(tmp_path / "typo.yaml")
    assert proc.returncode != 0 and "periodSecond" in proc.stdout + proc.stderr


def test_kustomize_renders_it_as_kubectl_apply_k_would(tmp_path):
    """`kustomize build` (what `kubectl apply -k` runs): every resource in the namespace and labelled, and the
    result, not only the files, valid for the Kubernetes API."""
    from localdev.errors import LocalDevError
    from localdev.kustomize import binary

    try:
        kustomize = binary()
    except LocalDevError as exc:  # no Go to build it with (scripts/bootstrap.sh --test builds it)
        pytest.skip(str(exc))
    proc = subprocess.run([str(kustomize), "build", str(COMMITTED)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    built = [d for d in yaml.safe_load_all(proc.stdout) if d]
    expected = documents({p.name: p.read_text() for p in COMMITTED.glob("*.yaml")})
    assert sorted((d["kind"], d["metadata"]["name"]) for d in built) == \
        sorted((d["kind"], d["metadata"]["name"]) for d in expected)
    for doc in built:
        assert doc["metadata"]["namespace"] == "localdev", doc["metadata"]
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "localdev"
    if VALIDATOR.exists():
        (tmp_path / "built.yaml").write_text(proc.stdout)
        checked = kubernetes_validate(tmp_path / "built.yaml")
        assert checked.returncode == 0 and checked.stdout.count(" passed for resource ") == len(built), \
            checked.stdout + checked.stderr


def test_every_service_selects_a_pod_template_and_targets_its_ports():
    files = kubernetes.render(default_config())
    templates = pod_templates(files)
    services = by_kind(files, "Service")
    assert {s["metadata"]["name"] for s in services} == {"postgres", "dynamodb", "aws", "mongo", "redis",
                                                          "localdev-agent"}
    for service in services:
        selector = service["spec"]["selector"]
        [pod] = [t for t in templates if selector.items() <= t["metadata"]["labels"].items()]
        declared = {p["name"] for c in pod["spec"]["containers"] for p in c["ports"]} | \
                   {p["containerPort"] for c in pod["spec"]["containers"] for p in c["ports"]}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in declared, (service["metadata"]["name"], port)


def probe_ports(probe: dict) -> list:
    """The ports a probe reaches: a TCP or HTTP probe's port, and each 127.0.0.1:N in a command it runs."""
    if "tcpSocket" in probe:
        return [probe["tcpSocket"]["port"]]
    if "httpGet" in probe:
        return [probe["httpGet"]["port"]]
    return [int(p) for arg in probe["exec"]["command"] for p in re.findall(r"127\.0\.0\.1:(\d+)", arg)]


def test_every_probe_points_at_a_declared_container_port():
    files = kubernetes.render(default_config())
    reached = 0
    for template in pod_templates(files):
        for container in template["spec"]["containers"]:
            declared = {p["name"] for p in container["ports"]} | {p["containerPort"] for p in container["ports"]}
            assert "readinessProbe" in container and "livenessProbe" in container, container["name"]
            for kind in ("readinessProbe", "livenessProbe"):
                for port in probe_ports(container[kind]):
                    reached += 1
                    assert port in declared, (container["name"], kind, port, declared)
    assert reached >= 6  # dynamodb's and aws's commands name their port; mongo's and the agent's are TCP probes


def test_probes_are_the_services_own_healthchecks():
    from localdev.compose import container_services, PlaceholderState

    cfg = default_config()
    specs = {n: s.container_spec() for n, s in container_services(cfg, PlaceholderState()).items()}
    for template in pod_templates(kubernetes.render(cfg)):
        [container] = template["spec"]["containers"]
        if container["name"] not in specs:
            continue
        check = specs[container["name"]].healthcheck
        if check:
            assert container["readinessProbe"]["exec"]["command"] == [a.replace("$", "$$") for a in check]
        else:  # mongo-java-server's image has no client: a TCP connect to the port compose publishes
            assert container["readinessProbe"]["tcpSocket"] == {"port": "tcp-27017"}


def test_no_secret_value_is_written(tmp_path, monkeypatch):
    """The admin passwords a real cluster makes are nowhere in the files: each is a secretKeyRef."""
    from localdev.state import StateDir

    home = tmp_path / "home"
    monkeypatch.setenv("LOCALDEV_HOME", str(home))
    state = StateDir(home)
    values = [state.secret(k) for k in ("postgres_admin_password", "mongo_root_password", "redis_admin_password")]
    text = "".join(kubernetes.render(default_config()).values())
    for value in values:
        assert value not in text
    assert "LDSECRETX" not in text  # no placeholder left either
    assert by_kind(kubernetes.render(default_config()), "Secret") == []
    refs = {e["valueFrom"]["secretKeyRef"]["key"] for t in pod_templates(kubernetes.render(default_config()))
            for c in t["spec"]["containers"] for e in c.get("env", []) if "valueFrom" in e}
    assert refs == {"postgres-admin-password", "mongo-root-password", "redis-admin-password"}
    kustomization = kubernetes.render(default_config())["kustomization.yaml"]
    for key in refs:  # the install command creates each key the pods read
        assert f"--from-literal={key}=" in kustomization


def test_workload_kinds_volumes_replicas_and_resources():
    files = kubernetes.render(default_config())
    statefulsets = {d["metadata"]["name"]: d for d in by_kind(files, "StatefulSet")}
    deployments = {d["metadata"]["name"]: d for d in by_kind(files, "Deployment")}
    # data kept on a volume: a StatefulSet with its claim; LocalStack keeps none
    assert sorted(statefulsets) == ["dynamodb", "mongo", "postgres", "redis"]
    assert sorted(deployments) == ["aws", "localdev-agent"]
    pg = statefulsets["postgres"]["spec"]
    assert [c["metadata"]["name"] for c in pg["volumeClaimTemplates"]] == ["postgres-data"]
    assert pg["template"]["spec"]["containers"][0]["volumeMounts"] == [
        {"name": "postgres-data", "mountPath": "/var/lib/postgresql/data", "subPath": "pgdata"}]
    assert statefulsets["mongo"]["spec"]["template"]["spec"]["securityContext"] == {"fsGroup": 999}
    assert deployments["localdev-agent"]["spec"]["replicas"] == 2
    for template in pod_templates(files):
        for container in template["spec"]["containers"]:
            assert set(container["resources"]) == {"requests", "limits"}
            assert set(container["resources"]["limits"]) == {"cpu", "memory"}


def test_agent_runs_external_on_the_services_with_passwords_from_the_secret():
    files = kubernetes.render(default_config())
    [configmap] = by_kind(files, "ConfigMap")
    config = tomllib.loads(configmap["data"]["localdev.toml"])
    assert config["runtime"] == "external"
    assert config["agent"] == {"listen": "0.0.0.0:7443", "cert": "/etc/localdev-tls/tls.crt",
                               "key": "/etc/localdev-tls/tls.key"}
    assert {n: s["url"] for n, s in config["services"].items()} == {
        "postgres": "postgresql://postgres@postgres.localdev.svc:5432/postgres",
        "dynamodb": "http://dynamodb.localdev.svc:8000", "aws": "http://aws.localdev.svc:4566",
        "mongo": "mongodb://localdev@mongo.localdev.svc:27017/?authSource=admin",
        "redis": "redis://localdev@redis.localdev.svc:6379/0"}
    # a config localdev itself takes: the external runtime, every url parsed, no password in it
    cfg = validate(config, "configmap", None, {})
    assert cfg.runtime == "external" and cfg.enabled_services() == list(config["services"])
    [agent] = [d for d in by_kind(files, "Deployment") if d["metadata"]["name"] == "localdev-agent"]
    [container] = agent["spec"]["template"]["spec"]["containers"]
    passwords = {e["name"]: e["valueFrom"]["secretKeyRef"]["key"] for e in container["env"] if "valueFrom" in e}
    assert passwords == {"LOCALDEV_POSTGRES_PASSWORD": "postgres-admin-password",
                         "LOCALDEV_MONGO_PASSWORD": "mongo-root-password",
                         "LOCALDEV_REDIS_PASSWORD": "redis-admin-password"}
    # the same Secret keys the services' own containers start with
    [pg] = [t for t in pod_templates(files) if t["metadata"]["labels"]["app.kubernetes.io/name"] == "postgres"]
    pg_env = {e["name"]: e for e in pg["spec"]["containers"][0]["env"]}
    assert pg_env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "localdev-admin",
                                                                        "key": "postgres-admin-password"}
    [agent_service] = [s for s in by_kind(files, "Service") if s["metadata"]["name"] == "localdev-agent"]
    assert agent_service["spec"]["ports"] == [{"name": "https", "port": 7443, "targetPort": 7443, "protocol": "TCP"}]


def test_namespace_names_the_services_for_clients_anywhere_in_the_cluster():
    files = kubernetes.render(default_config(), namespace="team-db")
    assert yaml.safe_load(files["kustomization.yaml"])["namespace"] == "team-db"
    assert "kubectl create secret generic -n team-db localdev-admin" in files["kustomization.yaml"]
    config = tomllib.loads(by_kind(files, "ConfigMap")[0]["data"]["localdev.toml"])
    assert config["services"]["redis"]["url"] == "redis://localdev@redis.team-db.svc:6379/0"
    [aws] = [d for d in by_kind(files, "Deployment") if d["metadata"]["name"] == "aws"]
    env = {e["name"]: e.get("value") for e in aws["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["LOCALSTACK_HOST"] == "aws.team-db.svc:4566"  # queue URLs resolve from any namespace
    from localdev.errors import BadInput

    with pytest.raises(BadInput, match="Kubernetes namespace"):
        kubernetes.render(default_config(), namespace="Team_DB")


def test_network_policy_admits_only_the_agent_services_and_labelled_clients():
    files = kubernetes.render(default_config())
    policies = {p["metadata"]["name"]: p["spec"] for p in by_kind(files, "NetworkPolicy")}
    services = policies["localdev-services"]
    assert services["podSelector"]["matchLabels"] == {"app.kubernetes.io/component": "service",
                                                      "app.kubernetes.io/part-of": "localdev"}
    [rule] = services["ingress"]
    assert rule["from"] == [
        {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "localdev-agent",
                                         "app.kubernetes.io/component": "agent",
                                         "app.kubernetes.io/part-of": "localdev"}}},
        {"podSelector": {"matchLabels": {"app.kubernetes.io/component": "service",
                                         "app.kubernetes.io/part-of": "localdev"}}},
        {"namespaceSelector": {}, "podSelector": {"matchLabels": {"localdev.io/client": "true"}}}]
    assert sorted(p["port"] for p in rule["ports"]) == [4566, 5432, 6379, 8000, 27017]
    # every service pod is under the policy
    for template in pod_templates(files):
        labels = template["metadata"]["labels"]
        if labels["app.kubernetes.io/component"] == "service":
            assert services["podSelector"]["matchLabels"].items() <= labels.items()


def test_a_changed_spec_changes_the_output():
    base = kubernetes.render(default_config())
    moved = kubernetes.render(validate({"services": {"postgres": {"port": 6543}, "aws": {"flavor": "ministack"}}},
                                       "test", None, {}))
    [pg] = [s for s in by_kind(moved, "Service") if s["metadata"]["name"] == "postgres"]
    assert pg["spec"]["ports"] == [{"name": "tcp-5432", "port": 6543, "targetPort": 5432, "protocol": "TCP"}]
    config = tomllib.loads(by_kind(moved, "ConfigMap")[0]["data"]["localdev.toml"])
    assert config["services"]["postgres"]["url"] == "postgresql://postgres@postgres.localdev.svc:6543/postgres"
    [aws] = [d for d in by_kind(moved, "Deployment") if d["metadata"]["name"] == "aws"]
    assert aws["spec"]["template"]["spec"]["containers"][0]["image"] == "ministackorg/ministack:1.5.33"
    assert moved != base
    # a disabled service is gone from every file, the policy's ports included
    without = kubernetes.render(validate({"services": {"redis": {"enabled": False}}}, "test", None, {}))
    assert "redis" not in {d["metadata"]["name"] for d in documents(without)}
    assert "[services.redis]" not in by_kind(without, "ConfigMap")[0]["data"]["localdev.toml"]


class Sidecar(Service):
    """A made-up service: a literal `$` in its command, a secret inside a URL, a healthcheck on its port."""

    name = "sidecar"
    default_port = 7000

    def container_spec(self):
        secret = self.ctx.state.secret("sidecar_token")
        return ContainerSpec(image="example/sidecar:1", command=["run", "--price=$5"],
                             env={"URL": f"postgres://u:{secret}@postgres:5432/db", "TOKEN": secret},
                             ports={7000: self.port}, healthcheck=["curl", "-f", "http://127.0.0.1:7000/$x"])


def test_dollars_are_escaped_and_embedded_secrets_are_references(installed_service):
    """Kubernetes expands $(VAR) in env, command and args: a literal `$` is doubled, a value that is a secret
    comes from the Secret, and a secret inside a value is a reference to a variable defined before it."""
    installed_service("sidecar", f"{__name__}:Sidecar")
    files = kubernetes.render(validate({"services": {"sidecar": {"port": 7001}}}, "test", None, {}))
    [sidecar] = [d for d in by_kind(files, "Deployment") if d["metadata"]["name"] == "sidecar"]
    [container] = sidecar["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["run", "--price=$$5"]
    assert container["readinessProbe"]["exec"]["command"] == ["curl", "-f", "http://127.0.0.1:7000/$$x"]
    ref = {"secretKeyRef": {"name": "localdev-admin", "key": "sidecar-token"}}
    assert container["env"] == [{"name": "LOCALDEV_SECRET_SIDECAR_TOKEN", "valueFrom": ref},
                                {"name": "TOKEN", "valueFrom": ref},
                                {"name": "URL", "value": "postgres://u:$(LOCALDEV_SECRET_SIDECAR_TOKEN)@postgres:5432/db"}]
    [service] = [s for s in by_kind(files, "Service") if s["metadata"]["name"] == "sidecar"]
    assert service["spec"]["ports"] == [{"name": "tcp-7000", "port": 7001, "targetPort": 7000, "protocol": "TCP"}]
    assert '--from-literal=sidecar-token="$(openssl rand -hex 24)"' in files["kustomization.yaml"]
    # the Redis start script's shell `$(...)` is not read as a Kubernetes variable
    [redis] = [t for t in pod_templates(files) if t["metadata"]["labels"]["app.kubernetes.io/name"] == "redis"]
    assert "hash=$$(printf %s \"$$REDISCLI_AUTH\"" in redis["spec"]["containers"][0]["args"][2]


def test_write_removes_only_its_own_stale_files(tmp_path):
    (tmp_path / "statefulsets.yaml").write_text(kubernetes.HEADER + "stale: true\n")
    (tmp_path / "mine.yaml").write_text("kind: ConfigMap\n")
    only_aws = {n: {"enabled": n == "aws"} for n in ("postgres", "dynamodb", "aws", "mongo", "redis")}
    kubernetes.write(tmp_path, validate({"services": only_aws}, "test", None, {}))
    assert not (tmp_path / "statefulsets.yaml").exists()  # aws keeps no data: no StatefulSet any more
    assert (tmp_path / "mine.yaml").read_text() == "kind: ConfigMap\n"


def test_namespace_secret_manifest_unit():
    env = {"LOCALDEV_NAMESPACE": "pr-7", "DATABASE_URL": "postgresql://ns_pr_7:p%40ss@h:5432/ns_pr_7",
           "PGPORT": "5432"}
    doc = yaml.safe_load(kubernetes.namespace_secret(env))
    assert doc == {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                   "metadata": {"name": "localdev-pr-7", "labels": {"app.kubernetes.io/managed-by": "localdev",
                                                                     "localdev.io/namespace": "pr-7"}},
                   "stringData": env}
    from localdev.errors import BadInput

    with pytest.raises(BadInput, match="end with a letter or digit"):
        kubernetes.namespace_secret({"LOCALDEV_NAMESPACE": "pr-"})


def test_ns_env_k8s_secret_from_a_real_namespace(shared_cluster, tmp_path):
    """`ns env --format k8s-secret` of a namespace the cluster made: the same settings as `--format json`,
    valid for Kubernetes, and they work (psycopg logs in with the Secret's DATABASE_URL)."""
    import json

    import psycopg

    h = shared_cluster
    h.cli("ns", "create", "k8s-secret", "--no-seed", check=True)
    try:
        manifest = h.cli("ns", "env", "k8s-secret", "--format", "k8s-secret", check=True).stdout
        doc = yaml.safe_load(manifest)
        assert doc["kind"] == "Secret" and doc["metadata"]["name"] == "localdev-k8s-secret"
        assert doc["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "localdev",
                                             "localdev.io/namespace": "k8s-secret"}
        assert doc["stringData"] == h.ns_env("k8s-secret")
        assert all(isinstance(v, str) for v in doc["stringData"].values())  # ports stay strings
        with psycopg.connect(doc["stringData"]["DATABASE_URL"], connect_timeout=5) as conn:
            assert conn.execute("select current_user, current_database()").fetchone() == (
                "ns_k8s_secret", "ns_k8s_secret")
        if VALIDATOR.exists():
            (tmp_path / "secret.yaml").write_text(manifest)
            proc = kubernetes_validate(tmp_path / "secret.yaml")
            assert proc.returncode == 0 and "passed for resource secret/localdev-k8s-secret" in proc.stdout, \
                proc.stdout + proc.stderr
        # in the same call as the create
        created = h.cli("ns", "create", "k8s-secret-2", "--no-seed", "--print-env", "k8s-secret", check=True).stdout
        assert yaml.safe_load(created)["stringData"] == h.ns_env("k8s-secret-2")
        # a name no Kubernetes object can have: refused before anything is made
        proc = h.cli("ns", "create", "k8s-bad-", "--no-seed", "--print-env", "k8s-secret")
        assert proc.returncode == 2 and "end with a letter or digit" in proc.stderr, proc.stderr
        names = [n["name"] for n in json.loads(h.cli("ns", "list", "--json", check=True).stdout)]
        assert "k8s-bad-" not in names
    finally:
        for name in ("k8s-secret", "k8s-secret-2"):
            h.cli("ns", "delete", name, "--missing-ok")

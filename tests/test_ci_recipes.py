"""docs/ci.md's recipes, run: every `run:` step of its GitHub Actions workflows and every `script:` line of its
GitLab CI pipelines is executed in bash, with the variables those systems set, against a real cluster.

The two runners are imitated where they hand things between steps: GitHub's reads the file `$GITHUB_ENV`
after each step (a fresh file per step) into the environment of the next ones, and collects `::add-mask::`
lines; GitLab's runs each job in a fresh copy of the project with a fresh home, and gives a job the variables
of the dotenv reports of the jobs it needs. Their parsers are reproduced from their sources (the runner's
SetEnvFileCommand, GitLab's ParseDotenvArtifactService) and tested on their own first.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml
from conftest import REPO, free_port, write_config

from localdev.ci_env import github_env_entries, github_masks, gitlab_dotenv
from localdev.errors import BadInput

DOC = REPO / "docs" / "ci.md"
BIN = Path(sys.executable).parent


# -- the CI systems' own parsers ------------------------------------------------------------
def parse_github_env(text: str) -> dict[str, str]:
    """As the Actions runner reads $GITHUB_ENV: `K=V` lines, or `K<<DELIM` … `DELIM` blocks."""
    out: dict[str, str] = {}
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line:
            continue
        eq, heredoc = line.find("="), line.find("<<")
        if eq >= 0 and (heredoc < 0 or eq < heredoc):
            out[line[:eq]] = line[eq + 1:]
            continue
        assert heredoc > 0, f"invalid GITHUB_ENV line {line!r}"
        key, delimiter = line[:heredoc], line[heredoc + 2:]
        value: list[str] = []
        while lines[i] != delimiter:  # an IndexError here: the runner's "matching delimiter not found"
            value.append(lines[i])
            i += 1
        i += 1
        out[key] = "\n".join(value)
    return out


def parse_masks(stdout: str) -> list[str]:
    unescape = {"%0D": "\r", "%0A": "\n", "%25": "%"}
    return [re.sub("%0D|%0A|%25", lambda m: unescape[m.group()], line[len("::add-mask::"):])
            for line in stdout.splitlines() if line.startswith("::add-mask::")]


def parse_gitlab_dotenv(text: str) -> dict[str, str]:
    """As GitLab parses a dotenv report: each line split at its first '=', both sides stripped."""
    out = {}
    for line in text.splitlines():
        match = re.match(r"^(.*?)=(.*)$", line)
        assert match, f"GitLab: Invalid Format ({line!r})"
        key, value = match.group(1).strip(), match.group(2).strip()
        assert re.fullmatch(r"[a-zA-Z0-9_]+", key), f"GitLab refuses the key {key!r}"
        out[key] = value
    return out


def test_github_env_round_trips_any_value_through_the_runners_parser():
    env = {"PLAIN": "a=b c", "MULTI": "line one\nline two\n\nafter a blank", "EMPTY": "", "ODD": "x<<y"}
    assert parse_github_env(github_env_entries(env)) == env
    # appended to what earlier steps wrote, it still reads back
    assert parse_github_env("EARLIER=1\n" + github_env_entries(env)) == {"EARLIER": "1", **env}


def test_github_masks_cover_each_line_and_the_url_quoted_form():
    masks = parse_masks(github_masks(["p@ss%/word", "first\nsecond"]))
    assert masks == ["p@ss%/word", "p%40ss%25%2Fword", "first", "second", "first%0Asecond"]


def test_gitlab_dotenv_reads_back_exactly_or_is_refused():
    env = {"DATABASE_URL": "postgresql://u:p@h:1/db?sslmode=verify-full&sslrootcert=/x/ca.pem", "PGPORT": "5432"}
    assert parse_gitlab_dotenv(gitlab_dotenv(env)) == env
    for bad, why in (({"K": "a\nb"}, "spans lines"), ({"K": "$HOME"}, "expands"), ({"K": " x"}, "space"),
                     ({"K-1": "x"}, "ASCII letters"), ({"K": "x" * 6000}, "5120-byte")):
        with pytest.raises(BadInput, match=why):
            gitlab_dotenv(bad)


# -- the recipes ---------------------------------------------------------------------------
def recipe(name: str) -> dict:
    text = DOC.read_text()
    match = re.search(rf"<!-- ci-recipe: {name} -->\n```yaml\n(.*?)```", text, re.S)
    assert match, f"docs/ci.md has no recipe {name}"
    return yaml.safe_load(match.group(1))


def short_home(tmp: Path, name: str) -> Path:
    """A home for a runner: short, since the cluster's Unix socket lives under it (108 bytes at most)."""
    home = Path(tempfile.mkdtemp(prefix=f"ldci-{name[:8]}-"))
    (tmp / f"{name}.home").symlink_to(home)  # found and removed with the test's tmp dir by `cleanup_homes`
    return home


@pytest.fixture(autouse=True)
def cleanup_homes(tmp_path):
    yield
    for link in tmp_path.glob("*.home"):
        shutil.rmtree(link.resolve(), ignore_errors=True)


def base_env(home: Path, **ci) -> dict:
    """A runner's environment: this machine's PATH with the project's venv first, nothing of localdev's."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LOCALDEV_", "AWS_", "PG", "DATABASE_URL", "MONGODB_URI", "REDIS_", "XDG_",
                                "GITHUB_", "CI_", "PYTEST_"))}
    home.mkdir(parents=True, exist_ok=True)
    env.update({"HOME": str(home), "PATH": f"{BIN}{os.pathsep}{env['PATH']}", "CI": "true",
                "PIP_DISABLE_PIP_VERSION_CHECK": "1",
                # the steps run this checkout's code, whatever the editable install points at
                "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))})
    env.update(ci)
    return env


@pytest.fixture
def project(tmp_path):
    """A user's project: which services it runs, its development requirements, and a test of its own that
    uses the namespace through the settings it was given."""
    root = tmp_path / "project"
    write_config(root, ["postgres"])
    (root / "requirements-dev.txt").write_text("localdev\npytest\npsycopg[binary]\n")
    (root / "tests").mkdir()
    (root / "tests" / "test_app.py").write_text(
        "import os, psycopg\n\n"
        "def test_the_namespace_database():\n"
        "    with psycopg.connect(os.environ['DATABASE_URL']) as conn:\n"
        "        row = conn.execute('select current_user, current_database()').fetchone()\n"
        "    expected = 'ns_' + os.environ['LOCALDEV_NAMESPACE'].replace('-', '_')\n"
        "    assert row == (expected, expected)\n"
        "    open('namespace.txt', 'w').write(os.environ['LOCALDEV_NAMESPACE'])\n")
    return root


def run_bash(script: str, env: dict, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


class GitHubRunner:
    def __init__(self, tmp: Path, workspace: Path, secrets: dict | None = None, variables: dict | None = None,
                 **github):
        self.tmp, self.workspace = tmp, workspace
        self.contexts = {"secrets": secrets or {}, "vars": variables or {}}
        self.env = base_env(short_home(tmp, "github"), GITHUB_ACTIONS="true", GITHUB_WORKSPACE=str(workspace),
                            RUNNER_TEMP=str(tmp), **github)
        self.exported: dict[str, str] = {}
        self.masks: list[str] = []
        self.log: list[tuple[str, subprocess.CompletedProcess]] = []

    def expand(self, text: str) -> str:
        def value(match):
            context, _, key = match.group(1).partition(".")
            return self.contexts[context][key]  # a KeyError: the doc uses an expression this test does not know
        return re.sub(r"\$\{\{\s*(\w+\.\w+)\s*\}\}", value, str(text))

    def run_job(self, job: dict) -> None:
        job_env = {k: self.expand(v) for k, v in job.get("env", {}).items()}
        failed = False
        for number, step in enumerate(job["steps"]):
            if "run" not in step:
                assert "uses" in step, step  # an action: the runner's business, not the recipe's commands
                continue
            if failed and "always()" not in str(step.get("if", "")):
                continue
            env_file = self.tmp / f"github_env_{number}"  # a fresh file for each step, as the runner does
            env_file.write_text("")
            env = {**self.env, **job_env, **self.exported, "GITHUB_ENV": str(env_file)}
            proc = run_bash(self.expand(step["run"]), env, self.workspace)
            self.log.append((step["run"], proc))
            self.masks += parse_masks(proc.stdout)
            self.exported.update(parse_github_env(env_file.read_text()))
            failed = failed or proc.returncode != 0

    def assert_passed(self) -> None:
        for command, proc in self.log:
            assert proc.returncode == 0, f"step `{command}` exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"


class GitLabRunner:
    def __init__(self, tmp: Path, project: Path, variables: dict | None = None, **ci):
        self.tmp, self.project = tmp, project
        self.variables, self.ci = variables or {}, ci
        self.reports: dict[str, dict[str, str]] = {}
        self.log: list[tuple[str, subprocess.CompletedProcess]] = []
        self.dirs: list[Path] = []
        self.homes: dict[str, Path] = {}

    def run_pipeline(self, doc: dict) -> None:
        stages = doc.get("stages", ["build", "test", "deploy"])
        jobs = {name: job for name, job in doc.items() if isinstance(job, dict) and "script" in job}
        failed = False
        for name, job in sorted(jobs.items(), key=lambda item: stages.index(item[1].get("stage", "test"))):
            if failed and job.get("when") != "always":
                continue
            workdir = self.tmp / f"job-{name}"  # a fresh checkout and a fresh home for every job
            shutil.copytree(self.project, workdir)
            self.dirs.append(workdir)
            inherited = {k: v for dep in job.get("needs", list(self.reports)) for k, v in self.reports.get(dep, {}).items()}
            self.homes[name] = short_home(self.tmp, name)
            env = {**base_env(self.homes[name], GITLAB_CI="true", CI_JOB_NAME=name,
                              CI_PROJECT_DIR=str(workdir), **self.ci),
                   **doc.get("variables", {}), **self.variables, **job.get("variables", {}), **inherited}
            script = "\n".join(job.get("before_script", []) + job["script"])
            proc = run_bash(script, env, workdir)
            self.log.append((name, proc))
            if job.get("after_script"):
                self.log.append((f"{name} after_script", run_bash("\n".join(job["after_script"]), env, workdir)))
            failed = failed or proc.returncode != 0
            report = job.get("artifacts", {}).get("reports", {}).get("dotenv")
            if report and proc.returncode == 0:
                self.reports[name] = parse_gitlab_dotenv((workdir / report).read_text())

    def assert_passed(self) -> None:
        for name, proc in self.log:
            assert proc.returncode == 0, f"job {name} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"


def one_passed(pytest_output: str) -> bool:
    return re.search(r"^1 passed in ", pytest_output, re.M) is not None


def stop_runner_cluster(env: dict, cwd: Path) -> None:
    """Whatever the recipe did: its cluster must not outlive the test."""
    subprocess.run([str(BIN / "localdev"), "down", "--purge"], env=env, cwd=cwd, capture_output=True, timeout=120)


def test_github_actions_with_a_cluster_on_the_runner(tmp_path, project):
    gh = GitHubRunner(tmp_path, project, GITHUB_EVENT_NAME="pull_request", GITHUB_REF="refs/pull/42/merge",
                      GITHUB_HEAD_REF="feature/login", GITHUB_REF_NAME="42/merge")
    try:
        gh.run_job(recipe("github-runner")["jobs"]["test"])
        after = subprocess.run([str(BIN / "localdev"), "status", "--json"], env=gh.env, cwd=project,
                               capture_output=True, text=True, timeout=60)
    finally:
        stop_runner_cluster(gh.env, project)
    gh.assert_passed()
    assert gh.exported["LOCALDEV_NAMESPACE"] == "pr-42"
    assert one_passed(gh.log[-2][1].stdout)  # the project's own test, with the namespace's settings
    assert (project / "namespace.txt").read_text() == "pr-42"
    secrets = {gh.exported["PGPASSWORD"]}
    assert secrets <= set(gh.masks) and not any(s in out for s in secrets for _, p in gh.log for out in (p.stdout[
        p.stdout.rfind("::add-mask::"):].split("\n", 1)[-1], p.stderr))
    assert "localdev: namespace pr-42: " in gh.log[3][1].stderr
    assert json.loads(after.stdout)["state"] == "not initialised"  # the last step stopped what the job started


@pytest.fixture(scope="module")
def team_cluster(tmp_path_factory):
    """A team's shared cluster in team mode (TLS, tokens), on loopback."""
    from conftest import start_cluster

    port = free_port()
    handle = start_cluster(tmp_path_factory, ["postgres"],
                           extra=f'[agent]\nlisten = "127.0.0.1:{port}"\nreap_interval = 3600\n')
    status = json.loads(handle.cli("status", "--json", check=True).stdout)
    listener = status["agent"]["listener"]
    from localdev.tls import fingerprint

    handle.url, handle.ca = listener["url"], listener["ca"]
    handle.fingerprint = fingerprint(Path(listener["ca"]).read_bytes())
    yield handle
    handle.close()


def test_github_actions_with_a_team_cluster(tmp_path, project, team_cluster):
    token = team_cluster.cli("token", "create", "gh-actions", "--role", "ci", check=True).stdout.strip()
    gh = GitHubRunner(tmp_path, project, secrets={"LOCALDEV_TOKEN": token},
                      variables={"LOCALDEV_URL": team_cluster.url, "LOCALDEV_CA_FINGERPRINT": team_cluster.fingerprint},
                      GITHUB_EVENT_NAME="pull_request", GITHUB_REF="refs/pull/43/merge", GITHUB_HEAD_REF="fix/team")
    gh.run_job(recipe("github-team")["jobs"]["test"])
    gh.assert_passed()
    assert gh.exported["LOCALDEV_NAMESPACE"] == "pr-43"
    assert "as gh-actions (ci)" in gh.log[1][1].stdout  # login checked the token and pinned the CA
    assert one_passed(gh.log[3][1].stdout) and (project / "namespace.txt").read_text() == "pr-43"
    assert {gh.exported["PGPASSWORD"]} <= set(gh.masks)
    assert "namespace pr-43 deleted" in gh.log[4][1].stdout
    assert [n["name"] for n in json.loads(team_cluster.cli("ns", "list", "--json", check=True).stdout)] == []


def test_gitlab_ci_with_a_cluster_on_the_runner(tmp_path, project):
    lab = GitLabRunner(tmp_path, project, CI_PIPELINE_SOURCE="merge_request_event", CI_MERGE_REQUEST_IID="7",
                       CI_COMMIT_REF_NAME="feature/login")
    doc = recipe("gitlab-runner")
    try:
        lab.run_pipeline(doc)
    finally:
        stop_runner_cluster(base_env(lab.homes["test"]), lab.dirs[0])
    lab.assert_passed()
    assert one_passed(lab.log[0][1].stdout)
    assert (lab.dirs[0] / "namespace.txt").read_text() == "pr-7"
    assert lab.log[1][0] == "test after_script"


def test_gitlab_ci_with_a_team_cluster(tmp_path, project, team_cluster):
    token = team_cluster.cli("token", "create", "gitlab", "--role", "ci", check=True).stdout.strip()
    lab = GitLabRunner(tmp_path, project,
                       # LOCALDEV_CA: a variable of type File, which GitLab writes to a file and names by path
                       variables={"LOCALDEV_URL": team_cluster.url, "LOCALDEV_TOKEN": token,
                                  "LOCALDEV_CA": team_cluster.ca},
                       CI_PIPELINE_SOURCE="merge_request_event", CI_MERGE_REQUEST_IID="8",
                       CI_COMMIT_REF_NAME="fix/team")
    lab.run_pipeline(recipe("gitlab-team"))
    lab.assert_passed()
    assert [name for name, _ in lab.log] == ["namespace", "test", "cleanup"]
    assert lab.reports["namespace"]["LOCALDEV_NAMESPACE"] == "pr-8"
    assert one_passed(lab.log[1][1].stdout) and (lab.dirs[1] / "namespace.txt").read_text() == "pr-8"
    assert "namespace pr-8 deleted" in lab.log[2][1].stdout
    assert [n["name"] for n in json.loads(team_cluster.cli("ns", "list", "--json", check=True).stdout)] == []


def test_ns_env_github_and_gitlab_carry_exactly_the_settings(shared_cluster, tmp_path):
    shared_cluster.cli("ns", "create", "ci-formats", "--no-seed", check=True)
    try:
        env = shared_cluster.ns_env("ci-formats")
        target = tmp_path / "github_env"
        target.write_text("EARLIER=kept\n")
        proc = shared_cluster.cli("ns", "env", "ci-formats", "--format", "github", env={"GITHUB_ENV": str(target)},
                                  check=True)
        assert parse_github_env(target.read_text()) == {"EARLIER": "kept", **env}
        assert set(parse_masks(proc.stdout)) == {env["PGPASSWORD"]}  # a postgres-only cluster's one secret
        assert proc.stdout.splitlines() == [f"::add-mask::{env['PGPASSWORD']}"]  # nothing else on stdout
        gitlab = shared_cluster.cli("ns", "env", "ci-formats", "--format", "gitlab", check=True).stdout
        assert parse_gitlab_dotenv(gitlab) == env
        # outside GitHub Actions: refused, nothing written anywhere
        refused = shared_cluster.cli("ns", "env", "ci-formats", "--format", "github")
        assert refused.returncode == 2 and "$GITHUB_ENV" in refused.stderr and refused.stdout == ""
    finally:
        shared_cluster.cli("ns", "delete", "ci-formats", "--missing-ok")

"""`localdev completion bash|zsh|fish`, exercised in the real shells: bash's completion function is called on
partial command lines (COMP_WORDS/COMP_CWORD set as readline sets them) and COMPREPLY compared exactly; fish
is asked with `complete -C`; zsh loads the script under compinit. Namespace names come from the cluster."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent

BASH_COMPLETE = """
source <(localdev completion bash)
COMP_WORDS=("$@"); COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
COMP_LINE="${COMP_WORDS[*]}"; COMP_POINT=${#COMP_LINE}
$(complete -p localdev | sed -E 's/.* -F ([^ ]+) .*/\\1/') localdev "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\\n' "${COMPREPLY[@]}"
"""


def shell_env(cluster) -> dict:
    return {**cluster.env, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}


def bash_complete(cluster, *words: str) -> list[str]:
    proc = subprocess.run(["bash", "--norc", "-c", BASH_COMPLETE, "bash", "localdev", *words],
                          env=shell_env(cluster), cwd=cluster.project, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    return [line for line in proc.stdout.split("\n") if line]


@pytest.fixture(scope="module")
def named(shared_cluster):
    """Two namespaces with a prefix no other test uses."""
    for name in ("compl-alpha", "compl-beta"):
        shared_cluster.cli("ns", "create", name, "--no-seed", check=True)
    yield shared_cluster
    for name in ("compl-alpha", "compl-beta"):
        shared_cluster.cli("ns", "delete", name, "--missing-ok")


def test_bash_completes_commands_options_and_choices(named):
    assert bash_complete(named, "n") == ["ns"]
    assert bash_complete(named, "ns", "") == ["create", "list", "delete", "gc", "snapshot", "snapshots", "reset", "env",
                                              "export", "import", "checksum"]
    assert bash_complete(named, "ns", "list", "--n") == ["--names"]
    assert bash_complete(named, "ns", "create", "pr-1", "--print-env", "") == [
        "dotenv", "shell", "json", "github", "gitlab", "k8s-secret"]
    assert bash_complete(named, "ns", "env", "x", "--format", "g") == ["github", "gitlab"]
    assert bash_complete(named, "completion", "") == ["bash", "zsh", "fish"]
    assert bash_complete(named, "up", "--runtime", "d") == ["docker"]


def test_bash_completes_namespace_names_from_the_cluster(named):
    assert bash_complete(named, "ns", "delete", "compl-") == ["compl-alpha", "compl-beta"]
    assert bash_complete(named, "ns", "env", "compl-b") == ["compl-beta"]
    assert bash_complete(named, "seed", "compl-a") == ["compl-alpha"]
    named.cli("ns", "delete", "compl-beta", check=True)
    assert bash_complete(named, "ns", "delete", "compl-") == ["compl-alpha"]
    named.cli("ns", "create", "compl-beta", "--no-seed", check=True)


def test_ns_list_names_is_one_name_a_line(named):
    names = named.cli("ns", "list", "--names", check=True).stdout.split("\n")
    assert {"compl-alpha", "compl-beta"} <= set(names) and names[-1] == ""


def test_no_cluster_completes_no_names_and_prints_nothing(named, tmp_path):
    env = {**shell_env(named), "LOCALDEV_HOME": str(tmp_path / "none")}
    proc = subprocess.run(["bash", "--norc", "-c", BASH_COMPLETE, "bash", "localdev", "ns", "delete", ""],
                          env=env, capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "\n", "")


@pytest.mark.skipif(not shutil.which("fish"), reason="fish is not installed (scripts/bootstrap.sh --test installs it)")
def test_fish_completes_commands_and_namespace_names(named):
    def complete(line: str) -> list[str]:
        proc = subprocess.run(["fish", "--no-config", "-c", f"localdev completion fish | source; complete -C '{line}'"],
                              env=shell_env(named), cwd=named.project, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0 and proc.stderr == "", proc.stderr
        return sorted(line.split("\t")[0] for line in proc.stdout.splitlines())

    assert complete("localdev ns ") == ["checksum", "create", "delete", "env", "export", "gc", "import", "list", "reset",
                                        "snapshot", "snapshots"]
    assert [c for c in complete("localdev ns delete ") if c.startswith("compl-")] == ["compl-alpha", "compl-beta"]
    assert complete("localdev ns env x --format ") == ["dotenv", "github", "gitlab", "json", "k8s-secret", "shell"]


@pytest.mark.skipif(not shutil.which("zsh"), reason="zsh is not installed (scripts/bootstrap.sh --test installs it)")
def test_zsh_script_parses_and_registers_under_compinit(named, tmp_path):
    script = tmp_path / "_localdev"
    script.write_text(named.cli("completion", "zsh", check=True).stdout)
    parsed = subprocess.run(["zsh", "-n", str(script)], capture_output=True, text=True, timeout=60)
    assert parsed.returncode == 0, parsed.stderr
    def registered(setup: str) -> str:
        proc = subprocess.run(["zsh", "-f", "-c", f"{setup}; print -r -- $_comps[localdev]"], env=shell_env(named),
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0 and proc.stderr == "", proc.stderr
        return proc.stdout.strip()

    compinit = f"autoload -U compinit && compinit -u -d {tmp_path}/zcompdump"
    # in ~/.zshrc after compinit, or as a file named _localdev in $fpath before it
    assert registered(f'{compinit} && eval "$(localdev completion zsh)"') == "_shtab_localdev"
    assert registered(f"fpath=({tmp_path} $fpath) && {compinit}") == "_localdev"


def test_shtab_is_imported_by_the_completion_command_only(named):
    def imported(*args: str) -> str:
        proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "localdev.cli", *args], env=named.env,
                              cwd=named.project, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        return proc.stderr

    for args in (["--help"], ["ns", "list"], ["ns", "list", "--names"]):
        assert " shtab" not in imported(*args), args
    assert " shtab" in imported("completion", "bash")


def test_an_unknown_shell_is_bad_input(named):
    proc = named.cli("completion", "powershell")
    assert proc.returncode == 2 and "invalid choice: 'powershell'" in proc.stderr and proc.stdout == ""

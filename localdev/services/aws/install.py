"""The AWS emulators' Python environments: LocalStack (needs Python >= 3.13) and MiniStack.

Each lives in its own venv in the per-user cache, never in the user's environment: LocalStack
pins old cryptography/pyOpenSSL releases and needs a newer interpreter than localdev itself, and
keeping MiniStack apart too means one code path and no clash with the user's packages.
A venv counts as built only once its stamp file is written, so an interrupted install is redone.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from localdev.errors import BadInput
from localdev.services.install import ProvisionError, build_lock, cache_dir, progress, run, which

LOCALSTACK_VERSION = "2026.3.0"  # the last open-source (Apache-2.0) release of localstack-core
# Without these pins the runtime fails at start (bench/results/design-measurements.md).
LOCALSTACK_REQUIREMENTS = [
    f"localstack-core[runtime]=={LOCALSTACK_VERSION}",
    "cbor2<6",
    "pyopenssl<25",
    "cryptography<45",
    "service_identity",
]
LOCALSTACK_MIN_PYTHON = (3, 13)  # 3.11 fails at start despite the package metadata

MINISTACK_VERSION = "1.5.33"
MINISTACK_REQUIREMENTS = [f"ministack=={MINISTACK_VERSION}"]
MINISTACK_MIN_PYTHON = (3, 10)

PYTHON_ENV = "LOCALDEV_PYTHON313"
STAMP = ".localdev-complete"


def python_version(exe: str) -> tuple[int, int] | None:
    """(major, minor) of an interpreter, or None if it does not run (e.g. a pyenv shim of an inactive version)."""
    try:
        out = subprocess.run([exe, "-c", "import sys; print('%d %d' % sys.version_info[:2])"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    try:
        major, minor = out.stdout.split()
        return int(major), int(minor)
    except ValueError:
        return None


def _pyenv_candidates() -> list[str]:
    pyenv = which("pyenv")
    root = os.environ.get("PYENV_ROOT")
    if not root and pyenv:
        try:
            root = subprocess.run([pyenv, "root"], capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            root = None
    root = root or os.path.expanduser("~/.pyenv")
    found = []
    for minor in ("3.13", "3.14"):
        found += sorted(glob.glob(os.path.join(root, "versions", f"{minor}*", "bin", "python")), reverse=True)
    return found


def find_python(configured: str | None = None, minimum: tuple[int, int] = LOCALSTACK_MIN_PYTHON) -> str:
    """An interpreter >= `minimum`: the config option, then $LOCALDEV_PYTHON313, then PATH, then pyenv.

    An interpreter the user named explicitly must work (else BadInput): it is never silently replaced.
    """
    want = ".".join(map(str, minimum))
    explicit = [(configured, "the config option services.aws.python"), (os.environ.get(PYTHON_ENV), f"${PYTHON_ENV}")]
    for exe, origin in explicit:
        if not exe:
            continue
        path = which(exe) or exe
        version = python_version(path)
        if version is None:
            raise BadInput(f"{origin} names {exe!r}, which does not run as a Python interpreter: "
                           f"give the path of a Python >= {want}")
        if version < minimum:
            raise BadInput(f"{origin} names {exe!r}, which is Python {version[0]}.{version[1]}; "
                           f"the AWS emulator needs Python >= {want}")
        return path
    candidates = [p for p in (which(n) for n in ("python3.13", "python3.14")) if p] + _pyenv_candidates()
    if sys.version_info[:2] >= minimum:
        candidates.insert(0, sys.executable)
    for exe in candidates:
        version = python_version(exe)
        if version is not None and version >= minimum:
            return exe
    raise ProvisionError(
        f"no Python >= {want} found (looked at python3.13 and python3.14 on PATH and at pyenv's versions): "
        f"install one (e.g. `pyenv install 3.13`) and set services.aws.python in localdev.toml or ${PYTHON_ENV} "
        "to its path, or use flavor = \"ministack\" or the docker runtime"
    )


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def is_built(venv: Path) -> bool:
    return (venv / STAMP).exists() and venv_python(venv).exists()


def ensure_venv(venv: Path, python: str, requirements: list[str], what: str) -> Path:
    """Build `venv` with `requirements` once (idempotent, safe against concurrent callers); return its python."""
    if is_built(venv):
        return venv_python(venv)
    with build_lock(venv):
        if is_built(venv):  # another process finished it while we waited
            return venv_python(venv)
        if venv.exists():  # a half-built venv from an interrupted install: start again
            shutil.rmtree(venv)
        progress(f"installing {what} into {venv} (once; this can take a few minutes)")
        try:
            run([python, "-m", "venv", str(venv)], what=f"creating the venv for {what}")
            pip = [str(venv_python(venv)), "-m", "pip", "install", "--disable-pip-version-check", "--no-input"]
            run(pip + requirements, what=f"installing {what}", timeout=1800)
        except BaseException:
            shutil.rmtree(venv, ignore_errors=True)
            raise
        (venv / STAMP).write_text("\n".join(requirements) + "\n")
    return venv_python(venv)


def localstack_venv(configured: str | None = None) -> tuple[Path, str]:
    """(venv dir, base interpreter) for LocalStack, one venv per interpreter minor version; nothing built.

    Unless an interpreter is named (config or $LOCALDEV_PYTHON313), a venv already built is taken as it is,
    the newest Python's: finding an interpreter runs each candidate (pyenv's shims are shell scripts that
    start pyenv), which cost a cold `up` up to a second before LocalStack could start."""
    if not configured and not os.environ.get(PYTHON_ENV):
        built = _built_venvs(cache_dir("localstack"), LOCALSTACK_VERSION)
        if built:
            return built[-1], str(venv_python(built[-1]))
    python = find_python(configured, LOCALSTACK_MIN_PYTHON)
    major, minor = python_version(python) or LOCALSTACK_MIN_PYTHON  # find_python returns one that runs
    return cache_dir("localstack") / f"{LOCALSTACK_VERSION}-py{major}.{minor}", python


def _built_venvs(root: Path, version: str) -> list[Path]:
    """The finished venvs `<version>-py<major>.<minor>` under `root` whose interpreter is there, oldest Python
    first."""
    found = []
    for venv in root.glob(f"{version}-py*"):
        m = re.fullmatch(re.escape(version) + r"-py(\d+)\.(\d+)", venv.name)
        if m and is_built(venv):
            found.append(((int(m[1]), int(m[2])), venv))
    return [venv for _, venv in sorted(found)]


def localstack_python(configured: str | None = None) -> Path:
    """The python of a venv holding localstack-core (built on first use), its service catalog built too."""
    venv, python = localstack_venv(configured)
    venv_py = ensure_venv(venv, python, LOCALSTACK_REQUIREMENTS, f"LocalStack {LOCALSTACK_VERSION}")
    service_catalog(venv_py)
    return venv_py


def service_catalog(venv_py: Path) -> Path:
    """LocalStack's index of every AWS API spec, built once per venv (as its Docker image does at build time).

    Without it, each new cluster builds it at its first request, which costs seconds and keeps hundreds of MB
    of RSS for the emulator's lifetime (bench/results/design-measurements.md). A cluster copies it into
    its FILESYSTEM_ROOT's static-libs dir, where LocalStack looks first.
    """
    root = venv_py.parent.parent / "localdev-static"
    found = sorted(root.glob("service-catalog-*.dill"))
    if found:
        return found[-1]
    with build_lock(root):
        found = sorted(root.glob("service-catalog-*.dill"))
        if found:
            return found[-1]
        fs = root.with_name(root.name + ".build")
        shutil.rmtree(fs, ignore_errors=True)
        (fs / "usr" / "lib" / "localstack").mkdir(parents=True)
        progress("building LocalStack's service catalog (once)")
        env = {**os.environ, "FILESYSTEM_ROOT": str(fs), "OVERRIDE_IN_DOCKER": "0", "DISABLE_EVENTS": "1",
               "CONFIG_DIR": str(fs / "config"), "XDG_CACHE_HOME": str(fs / "cache")}
        run([str(venv_py), "-I", "-m", "localstack.aws.spec"], env=env, cwd=venv_py.parent,
            what="building LocalStack's service catalog")
        built = sorted(fs.glob("usr/lib/localstack/service-catalog-*.dill"))
        if not built:
            raise ProvisionError(f"LocalStack's service catalog was not written under {fs}")
        root.mkdir(parents=True, exist_ok=True)
        os.replace(built[-1], root / built[-1].name)
        shutil.rmtree(fs, ignore_errors=True)
        return root / built[-1].name


def ministack_venv(configured: str | None = None) -> tuple[Path, str]:
    """(venv dir, base interpreter) for MiniStack; localdev's own interpreter suffices. Nothing built."""
    python = find_python(configured, MINISTACK_MIN_PYTHON) if configured else sys.executable
    major, minor = (python_version(python) if configured else None) or sys.version_info[:2]
    return cache_dir("ministack") / f"{MINISTACK_VERSION}-py{major}.{minor}", python


def ministack_python(configured: str | None = None) -> Path:
    """The python of a venv holding ministack (built on first use)."""
    venv, python = ministack_venv(configured)
    return ensure_venv(venv, python, MINISTACK_REQUIREMENTS, f"MiniStack {MINISTACK_VERSION}")

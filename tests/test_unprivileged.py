"""The README's two commands as a new user would run them: not root, Debian's own python3, 1024 open files.

The tests otherwise run as root; this one makes an unprivileged user (useradd), gives it a copy of the
checkout, and runs the README's set-up and walkthrough in a login shell of that user. The default AWS
emulator (LocalStack) needs a Python >= 3.13, which Debian 12 lacks, so this uses MiniStack, as the
README tells such a user to. The service binaries already fetched into root's cache are copied into the
user's so the test measures the walkthrough, not the downloads (a fresh user fetches them the same way).
"""

from __future__ import annotations

import os
import pwd
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import REPO, write_config

USER = "ldwalk"
SYSTEM_PYTHON = Path("/usr/bin/python3")
# what pip on a CI machine needs to reach its index (certificates, proxies); nothing of root's own
PASS_ON = ("PIP_", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
           "SSL_CERT_", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")

if os.geteuid() != 0 or not shutil.which("useradd") or not SYSTEM_PYTHON.exists():
    pytest.skip("needs root (to make the user), useradd and Debian's /usr/bin/python3", allow_module_level=True)


def _user_home() -> Path:
    try:
        return Path(pwd.getpwnam(USER).pw_dir)
    except KeyError:
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", USER], check=True)
        return Path(pwd.getpwnam(USER).pw_dir)


def _as_user(script: str, timeout: float) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k.startswith(PASS_ON)}
    exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items())
    return subprocess.run(["runuser", "-l", USER, "-c", exports + script], capture_output=True, text=True,
                          timeout=timeout)


def test_readme_commands_as_an_unprivileged_user_with_debians_python(tmp_path):
    home = _user_home()
    checkout = home / "localdev-walkthrough"
    shutil.rmtree(checkout, ignore_errors=True)
    shutil.copytree(REPO, checkout, ignore=shutil.ignore_patterns(
        ".venv", ".git", "__pycache__", "*.egg-info", ".pytest_cache", ".ruff_cache", ".mypy_cache", "bench"))
    write_config(checkout, ["postgres", "dynamodb", "aws", "mongo", "redis"], {"aws": {"flavor": "ministack"}})
    root_cache = Path(os.environ.get("LOCALDEV_CACHE") or Path.home() / ".cache" / "localdev")
    user_cache = home / ".cache" / "localdev"
    for part in ("dynamodb", "mongo-java-server"):  # not a venv: it is bound to its interpreter
        if (root_cache / part).is_dir() and not (user_cache / part).exists():
            shutil.copytree(root_cache / part, user_cache / part, symlinks=True)
    subprocess.run(["chown", "-R", f"{USER}:{USER}", str(checkout), str(home / ".cache")], check=True)

    probe = ("import boto3, os, pymongo, redis\n"
             "s3 = boto3.client('s3'); s3.create_bucket(Bucket='walk-b'); print('walk-b' in [b['Name'] for b in s3.list_buckets()['Buckets']])\n"
             "db = pymongo.MongoClient(os.environ['MONGODB_URI']).get_default_database()\n"
             "db.c.insert_one({'a': 1}); print(db.c.count_documents({}))\n"
             "r = redis.Redis.from_url(os.environ['REDIS_URL']); p = os.environ['REDIS_KEY_PREFIX']\n"
             "r.set(p + 'k', 'v'); print(r.get(p + 'k').decode())\n")
    script = f"""set -eu
ulimit -n 1024
cd {checkout}
test "$(id -u)" != 0
PYTHON={SYSTEM_PYTHON} bash scripts/bootstrap.sh
.venv/bin/python -c 'import sys; print("python", "%d.%d.%d" % sys.version_info[:3])'
.venv/bin/localdev up
.venv/bin/localdev ns create walk --ttl 30m --no-seed
eval "$(.venv/bin/localdev ns env walk --format shell)"
psql -Atc 'select current_user'
.venv/bin/python -c {shlex.quote(probe)}
.venv/bin/localdev ns delete walk
.venv/bin/localdev down --purge
"""
    try:
        proc = _as_user(script, timeout=900)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        lines = proc.stdout.split()
        system = subprocess.run([str(SYSTEM_PYTHON), "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
                                capture_output=True, text=True, check=True).stdout.strip()
        assert f"python {system}".split() == lines[lines.index("python"):lines.index("python") + 2]
        at = lines.index("ns_walk")  # psql as the namespace's role, then its bucket, document and key
        assert lines[at:at + 4] == ["ns_walk", "True", "1", "v"]
        assert "Traceback" not in proc.stderr
    finally:
        _as_user(f"cd {checkout} && .venv/bin/localdev down --purge", timeout=300)
        shutil.rmtree(checkout, ignore_errors=True)

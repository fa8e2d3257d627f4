"""A new cluster's PostgreSQL data directory: a copy of one cached initdb with its own superuser password, or
initdb itself when the copy cannot be made (real PostgreSQL binaries; as root, as the server's user)."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from localdev.errors import LocalDevError
from localdev.services.postgres import initdb
from localdev.services.postgres.install import find_bin_dir
from localdev.waiting import poll_until


@pytest.fixture
def place(tmp_path):
    """(a directory the server's user can write, subprocess keywords that run as that user)."""
    if os.geteuid() != 0:
        yield tmp_path, {}
        return
    pw = pwd.getpwnam("postgres")
    Path("/var/lib/localdev").mkdir(mode=0o711, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="test-initdb-", dir="/var/lib/localdev"))
    os.chmod(root, 0o711)
    yield root, {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
    shutil.rmtree(root, ignore_errors=True)


def make(root: Path, name: str, password: str, as_user: dict) -> Path:
    home = root / name
    home.mkdir()
    if as_user:
        shutil.chown(home, as_user["user"], as_user["group"])
    pwfile = home / "pwfile"
    pwfile.write_text(password + "\n")
    if as_user:
        shutil.chown(pwfile, as_user["user"], as_user["group"])
    initdb.make(find_bin_dir(""), home / "pgdata", "localdev", password, as_user=as_user, shared=root / "shared",
                pwfile=pwfile)
    return home / "pgdata"


def stored_password(pgdata: Path, as_user: dict) -> str | None:
    out = subprocess.run([str(find_bin_dir("") / "postgres"), "--single", "-D", str(pgdata), "postgres"],
                         input="SELECT rolpassword FROM pg_authid WHERE rolname = 'localdev';\n",
                         capture_output=True, text=True, cwd=pgdata, **as_user).stdout
    return next((line.split('"')[1] for line in out.splitlines() if "rolpassword = " in line), None)  # NULL: none


def test_each_data_directory_is_a_copy_of_one_initdb_with_its_own_password(place):
    root, as_user = place
    (root / "shared").mkdir()
    a = make(root, "a", "first-secret", as_user)
    b = make(root, "b", "it's-second", as_user)  # a quote: escaped in the ALTER ROLE
    templates = sorted(p.name for p in (root / "shared").iterdir() if not p.name.endswith((".lock", ".spare")) and ".tmp." not in p.name)
    assert len(templates) == 1 and templates[0].startswith("initdb-")
    assert (a / "PG_VERSION").read_text() == (root / "shared" / templates[0] / "PG_VERSION").read_text()
    pa, pb = stored_password(a, as_user), stored_password(b, as_user)
    assert pa.startswith("SCRAM-SHA-256$4096:") and pb.startswith("SCRAM-SHA-256$4096:") and pa != pb
    (root / "t").mkdir()
    if as_user:
        shutil.chown(root / "t", as_user["user"], as_user["group"])
    copy = root / "t" / "pgdata"
    subprocess.run(["cp", "-a", str(root / "shared" / templates[0]), str(copy)], check=True, **as_user)
    assert stored_password(copy, as_user) is None  # the template has no password at all
    assert oct(a.stat().st_mode & 0o777) == "0o700"


def test_a_spare_copy_is_renamed_into_place_and_made_again_in_the_background(place):
    root, as_user = place
    shared = root / "shared"
    shared.mkdir()
    a = make(root, "a", "first-secret", as_user)
    template = next(p for p in shared.iterdir() if p.name.startswith("initdb-") and p.suffix == "")
    spare = initdb.spare_of(template)
    poll_until(lambda: (spare / "PG_VERSION").exists(), 60, "the spare copy")
    taken = spare.stat().st_ino
    b = make(root, "b", "second-secret", as_user)
    assert b.stat().st_ino == taken  # renamed, not copied
    assert stored_password(b, as_user).startswith("SCRAM-SHA-256$4096:")
    assert stored_password(a, as_user) != stored_password(b, as_user)
    poll_until(lambda: (spare / "PG_VERSION").exists(), 60, "the spare copy made again")
    assert spare.stat().st_ino != taken and stored_password(spare, as_user) is None  # the template's content
    assert (spare.stat().st_uid, oct(spare.stat().st_mode & 0o777)) == (template.stat().st_uid, "0o700")
    assert sorted(p.name for p in shared.iterdir()) == sorted([template.name, template.name + ".lock", spare.name])


def test_without_a_template_it_is_initdb_itself(place, monkeypatch):
    root, as_user = place

    def broken(*args, **kwargs):
        raise LocalDevError("no template here")

    monkeypatch.setattr(initdb, "_template", broken)
    pgdata = make(root, "c", "third", as_user)
    assert (pgdata / "PG_VERSION").exists() and (stored_password(pgdata, as_user) or "").startswith("SCRAM-SHA-256$")
    assert not (root / "shared").exists()

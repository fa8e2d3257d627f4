"""A new cluster's data directory: a copy of one initdb made once per PostgreSQL build, its superuser's
password then set offline (single-user mode), or, if that fails, initdb itself.

initdb runs PostgreSQL's bootstrap and writes ~1000 files; beside the other services' start-up it took
2.7-3.3 s of a cold `up` on 2 cores, the longest step with LocalStack's start. The copy (`cp -a`, as the
server's user) and the password take ~0.2 s quiet, but the copy's system time grew several-fold beside the
other services' start: so a spare copy is kept beside the template, renamed into place by a cold `up`
and made again in the background after it. The template has no password at all: until the copy's
ALTER ROLE, a TCP login as the superuser fails (scram-sha-256 with no password), and local socket
connections are trusted in every cluster anyway (`--auth-local=trust`, the socket in a 0700 directory).
Every copy shares the template's system identifier, which only physical replication would look at.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
from pathlib import Path

from localdev.errors import LocalDevError
from localdev.services.install import build_lock, cache_dir

log = logging.getLogger("localdev.postgres")


def args(admin: str) -> list[str]:
    return ["-N", "-U", admin, "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8"]


def make(bin_dir: Path, pgdata: Path, admin: str, password: str, *, as_user: dict, shared: Path | None,
         pwfile: Path) -> None:
    """`pgdata` made whole: from the template, else by initdb (`pwfile`, written by the caller, holds the
    password for that). `as_user`: subprocess keywords that run as the server's user; `shared`: where a
    template the server's user can read lives (None: localdev's cache)."""
    try:
        template = _template(bin_dir, admin, as_user, shared)
        if not _take_spare(template, pgdata):
            subprocess.run(["cp", "-a", str(template), str(pgdata)], check=True, capture_output=True, **as_user)
        _set_password(bin_dir, pgdata, admin, password, as_user)
    except (OSError, subprocess.SubprocessError, LocalDevError) as exc:
        log.warning("copying a prepared data directory failed (%s): running initdb", exc)
        shutil.rmtree(pgdata, ignore_errors=True)
    else:  # (outside the try: a refill that cannot start must not send a good data directory to initdb)
        _refill_spare(template)
        return
    proc = subprocess.run([str(bin_dir / "initdb"), "-D", str(pgdata), *args(admin), f"--pwfile={pwfile}"],
                          capture_output=True, text=True, cwd=pwfile.parent, **as_user)
    if proc.returncode != 0:
        shutil.rmtree(pgdata, ignore_errors=True)
        raise LocalDevError(f"initdb failed: {proc.stderr.strip() or proc.stdout.strip()}")


def _template(bin_dir: Path, admin: str, as_user: dict, shared: Path | None) -> Path:
    initdb = bin_dir / "initdb"
    st = initdb.stat()
    key = hashlib.sha256(f"{initdb.resolve()}|{st.st_size}|{st.st_mtime_ns}|{args(admin)}|{as_user.get('user')}"
                         .encode()).hexdigest()[:16]
    template = (shared or cache_dir("postgres")) / f"initdb-{key}"
    if (template / "PG_VERSION").exists():
        return template
    with build_lock(template):
        if (template / "PG_VERSION").exists():
            return template
        build = template.with_name(template.name + ".build")
        shutil.rmtree(build, ignore_errors=True)
        build.mkdir(mode=0o700)
        if as_user:
            shutil.chown(build, as_user["user"], as_user["group"])
        proc = subprocess.run([str(initdb), "-D", str(build), *args(admin)], capture_output=True, text=True,
                              cwd=build.parent, **as_user)
        if proc.returncode != 0:
            shutil.rmtree(build, ignore_errors=True)
            raise LocalDevError(f"initdb of the template failed: {proc.stderr.strip() or proc.stdout.strip()}")
        build.rename(template)
    return template


def spare_of(template: Path) -> Path:
    return template.with_name(template.name + ".spare")


def _take_spare(template: Path, pgdata: Path) -> bool:
    """Move the template's spare copy into place: one rename instead of a copy of ~1000 files, whose system
    time a cold `up` paid beside every other service's start. False if there is none (taken by another
    `up`, not refilled yet) or it lies on another file system."""
    try:
        os.rename(spare_of(template), pgdata)
        return True
    except OSError:
        return False


def _refill_spare(template: Path) -> None:
    """Copy the template to its spare in a detached process of the lowest priority, after this cluster's data
    directory is made: the next cold `up` takes it (as root, `cp -a` keeps the server's user as the owner). A
    copy is made under a name of its own and renamed when whole, so a copy that was killed is never taken; its
    leftovers older than an hour are removed by a later refill."""
    spare = spare_of(template)
    if spare.exists():
        return
    # sh puts the copy in the background and exits: nothing is left for this process to reap. The copy runs
    # at the lowest priority: it starts while the other services do, and took a share of the cores they and
    # `up` were waiting on.
    script = ('( find "$1" -maxdepth 1 -name "$2.*" -mmin +60 -exec rm -rf {} + ; '
              'nice -n 19 cp -a "$3" "$4.tmp.$$" && { mv -T "$4.tmp.$$" "$4" || rm -rf "$4.tmp.$$"; } ) '
              '>/dev/null 2>&1 &')
    try:
        subprocess.run(["sh", "-c", script, "refill", str(template.parent), spare.name + ".tmp", str(template),
                        str(spare)], stdin=subprocess.DEVNULL, capture_output=True, start_new_session=True)
    except OSError as exc:  # only the next cold `up`'s speed is lost: it copies the template
        log.warning("could not start making a spare copy of %s: %s", template, exc)


def _set_password(bin_dir: Path, pgdata: Path, admin: str, password: str, as_user: dict) -> None:
    """ALTER ROLE in a single-user backend, before the server ever starts; the password goes on stdin."""
    escaped = password.replace("'", "''")
    proc = subprocess.run([str(bin_dir / "postgres"), "--single", "-D", str(pgdata), "-c", "exit_on_error=true",
                           "postgres"], input=f"ALTER ROLE {admin} PASSWORD '{escaped}';\n", capture_output=True,
                          text=True, cwd=pgdata, timeout=60, **as_user)
    if proc.returncode != 0 or "ERROR:" in proc.stderr or "FATAL:" in proc.stderr:
        raise LocalDevError(f"setting the superuser's password failed: {proc.stderr.strip()[-300:]}")

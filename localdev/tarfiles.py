"""Extracting a tar archive someone else made (an uploaded seed set, a downloaded package), checked member by
member: regular files and folders only, every name inside the destination (no links, devices, absolute or
`..` paths).

tarfile's own `extractall(filter="data")` does this from Python 3.11.4 on; Debian 12's python3 is 3.11.2,
where that argument does not exist.
"""

from __future__ import annotations

import os
import shutil
import tarfile
from pathlib import Path


class UnsafeArchive(ValueError):
    """A member that is not a plain file or folder inside the destination; the message names it."""


def extract(tar: tarfile.TarFile, dest: Path, what: str = "the archive") -> None:
    """Extract every member of `tar` into `dest` (made if absent); raise UnsafeArchive at the first member
    that is not a regular file or folder or whose path leaves `dest` (what is before it stays written)."""
    dest.mkdir(parents=True, exist_ok=True)
    for member in tar:
        parts = Path(member.name).parts
        if member.name.startswith("/") or ".." in parts or not parts:
            raise UnsafeArchive(f"{what} holds a path outside its folder: {member.name!r}")
        target = dest.joinpath(*parts)
        if member.isdir():
            target.mkdir(parents=True, exist_ok=True)
        elif member.isfile():
            target.parent.mkdir(parents=True, exist_ok=True)
            source = tar.extractfile(member)
            assert source is not None  # a regular file always has content
            with open(target, "wb") as out:
                shutil.copyfileobj(source, out)
            # The owner's bits only as the archive has them (an executable stays one), never set-id bits.
            os.chmod(target, 0o644 | (member.mode & 0o100 and 0o111))
        else:
            raise UnsafeArchive(f"{what} holds {member.name!r}, which is not a file or a folder")

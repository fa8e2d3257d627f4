"""A namespace's settings in the forms CI systems read: GitHub Actions' `$GITHUB_ENV` file and GitLab CI's
dotenv report.

GitHub Actions: each setting is appended to the file `$GITHUB_ENV` names, in the runner's multi-line form
(`KEY<<DELIMITER`, the value, `DELIMITER`, with a random delimiter), which later steps of the job read as
environment; every secret value is first announced on stdout as `::add-mask::VALUE`, so the runner shows
`***` wherever it would appear in the log (URL-quoted too, as it appears inside connection URLs).

GitLab CI: `KEY=VALUE` lines for `artifacts: reports: dotenv:`. GitLab's parser takes a line apart at its
first `=`, strips both sides, allows no multi-line value and expands `$NAME` in values: a value it would read
differently is refused, never written.
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path
from urllib.parse import quote

from localdev.errors import BadInput

GITLAB_KEY = re.compile(r"[A-Za-z0-9_]+")
GITLAB_MAX_BYTES = 5 * 1024  # GitLab's default limit on a dotenv report's size


def github_masks(values: list[str]) -> str:
    """`::add-mask::` lines for each secret (each line of a multi-line one), escaped as workflow commands are."""
    lines: list[str] = []
    for value in values:
        for form in dict.fromkeys((value, quote(value, safe=""))):
            lines += [f"::add-mask::{_command_data(part)}\n" for part in form.splitlines() if part.strip()]
    return "".join(dict.fromkeys(lines))


def _command_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def github_env_entries(env: dict[str, str]) -> str:
    """What is appended to $GITHUB_ENV: one heredoc entry per setting (safe for any value, newlines included)."""
    delimiter = f"ghadelimiter_{secrets.token_hex(16)}"
    out = []
    for key, value in env.items():
        if delimiter in value or delimiter in key:  # never, with a random delimiter; checked all the same
            raise BadInput(f"the value of {key} contains the delimiter {delimiter}: run the command again")
        out.append(f"{key}<<{delimiter}\n{value}\n{delimiter}\n")
    return "".join(out)


def write_github_env(env: dict[str, str], masks: list[str], environ=os.environ) -> str:
    """Append the settings to $GITHUB_ENV; return the mask lines to print on stdout."""
    target = environ.get("GITHUB_ENV")
    if not target:
        raise BadInput("--format github appends to the file $GITHUB_ENV names, and it is not set: this is not a "
                       "GitHub Actions step (use --format shell or dotenv elsewhere)")
    path = Path(target)
    if not path.parent.is_dir():
        raise BadInput(f"GITHUB_ENV={target}: its directory does not exist")
    text = github_env_entries(env)
    with open(path, "a", encoding="utf-8", newline="\n") as fh:
        fh.write(text)
    return github_masks(masks)


def gitlab_dotenv(env: dict[str, str]) -> str:
    lines = []
    for key, value in env.items():
        if not GITLAB_KEY.fullmatch(key):
            raise BadInput(f"{key}: GitLab's dotenv report takes only names of ASCII letters, digits and '_'")
        if "\n" in value or "\r" in value:
            raise BadInput(f"the value of {key} spans lines, which GitLab's dotenv report cannot carry: use "
                           "--format shell in the job instead")
        if value != value.strip():
            raise BadInput(f"the value of {key} starts or ends with a space, which GitLab's dotenv report strips")
        if "$" in value:
            raise BadInput(f"the value of {key} holds '$', which GitLab expands in dotenv variables: use "
                           "--format shell in the job instead")
        lines.append(f"{key}={value}\n")
    text = "".join(lines)
    if len(text.encode()) >= GITLAB_MAX_BYTES:
        raise BadInput(f"the settings take {len(text.encode())} bytes, past GitLab's {GITLAB_MAX_BYTES}-byte limit "
                       "for a dotenv report: use --format shell in the job instead")
    return text

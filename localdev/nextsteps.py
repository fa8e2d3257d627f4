"""What `localdev ns create` tells a person on a terminal: what they have, how to use it, when it goes away.

Scripts get one line (stdout not a terminal) or `--json`; this is for eyes only.
"""

from __future__ import annotations

import time
from pathlib import Path


def _when(expires_at: float | None) -> str:
    from localdev.cli import _ago

    if expires_at is None:
        return "never (no TTL)"
    return f"{_ago(expires_at)}, at {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(expires_at))}"


def next_steps(info: dict, seeds_dir: Path | None) -> str:
    name = info["name"]
    seeded = f"; seeded from {seeds_dir}" if info.get("seed_hash") and seeds_dir else ""
    lines = [f"namespace {name} is ready: {', '.join(info['services'])}{seeded}",
             f"  expires   {_when(info['expires_at'])}"
             " (the agent deletes it then)",
             f"  use it    eval \"$(localdev ns env {name} --format shell)\"",
             f"            localdev ns env {name} --format dotenv > .env",
             f"  done      localdev ns delete {name}"]
    return "\n".join(lines)

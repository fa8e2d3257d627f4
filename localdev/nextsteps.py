"""What `localdev ns create` tells a person on a terminal: what they have, how to use it, when it goes away.

Scripts get one line (stdout not a terminal) or `--json`; this is for eyes only.
"""

from __future__ import annotations

import time
from pathlib import Path


def _when(expires_at: float | None, now: float) -> str:
    if expires_at is None:
        return "never (no TTL)"
    left = expires_at - now
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if left >= size:
            span = f"{left / size:.0f}{unit}"
            break
    else:
        span = f"{max(left, 0):.0f}s"
    return f"in {span}, at {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(expires_at))}"


def next_steps(info: dict, seeds_dir: Path | None, now: float | None = None) -> str:
    name = info["name"]
    seeded = f"; seeded from {seeds_dir}" if info.get("seed_hash") and seeds_dir else ""
    lines = [f"namespace {name} is ready: {', '.join(info['services'])}{seeded}",
             f"  expires   {_when(info['expires_at'], time.time() if now is None else now)}"
             " (the agent deletes it then)",
             f"  use it    eval \"$(localdev ns env {name} --format shell)\"",
             f"            localdev ns env {name} --format dotenv > .env",
             f"  done      localdev ns delete {name}"]
    return "\n".join(lines)

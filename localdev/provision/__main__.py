"""`python -m localdev.provision [SERVICE...]`: fetch or build every service's binaries into the cache."""

from __future__ import annotations

import sys
import tempfile
import time

from localdev import config
from localdev.cluster import Cluster
from localdev.errors import LocalDevError


def main(argv: list[str]) -> int:
    cfg = config.load()
    names = argv or cfg.enabled_services()
    failed = 0
    with tempfile.TemporaryDirectory() as home:
        cluster = Cluster(home=home, config=cfg)
        cluster._runtime = cluster._make_runtime("native")
        for name in names:
            t0 = time.monotonic()
            try:
                cluster.services[name].install()
                print(f"provision: {name}: ready ({time.monotonic() - t0:.1f}s)", file=sys.stderr)
            except LocalDevError as exc:
                failed += 1
                print(f"provision: {name}: {exc}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

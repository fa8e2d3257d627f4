"""`python -m localdev.provision [SERVICE...]`: fetch or build every service's binaries into the cache."""

from __future__ import annotations

import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

from localdev import config
from localdev.cluster import Cluster
from localdev.errors import LocalDevError


def main(argv: list[str]) -> int:
    cfg = config.load()
    names = argv or cfg.enabled_services()
    with tempfile.TemporaryDirectory() as home:
        cluster = Cluster(home=home, config=cfg)
        cluster._runtime = cluster._make_runtime("native")

        def install(name: str) -> bool:
            t0 = time.monotonic()
            try:
                cluster.services[name].install()
                print(f"provision: {name}: ready ({time.monotonic() - t0:.1f}s)", file=sys.stderr)
                return True
            except LocalDevError as exc:
                print(f"provision: {name}: {exc}", file=sys.stderr)
                return False

        # In parallel: downloads wait on the network while a build uses the CPU.
        with ThreadPoolExecutor(max_workers=len(names) or 1) as pool:
            ok = list(pool.map(install, names))
    return 0 if all(ok) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

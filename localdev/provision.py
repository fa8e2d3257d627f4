"""`python -m localdev.provision [SERVICE...]`: fetch or build every service's binaries into the cache.

`python -m localdev.provision --debian-packages` prints, one per line, the Debian packages the registered
services' native runtimes need and this machine lacks (scripts/bootstrap.sh installs them as root).
"""

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
    debian = "--debian-packages" in argv
    names = [a for a in argv if a != "--debian-packages"]
    with tempfile.TemporaryDirectory() as home:
        cluster = Cluster(home=home, config=cfg)
        cluster._runtime = cluster._make_runtime("native")
        if debian:
            wanted = names or list(cluster.services)
            missing = {pkg for name in wanted for pkg in cluster.services[name].missing_debian_packages()}
            print("\n".join(sorted(missing)))
            return 0
        names = names or cfg.enabled_services()

        def install(name: str) -> bool:
            t0 = time.monotonic()
            try:
                cluster.services[name].install()
                print(f"provision: {name}: ready ({time.monotonic() - t0:.1f}s)", file=sys.stderr)
                return True
            except LocalDevError as exc:
                print(f"provision: {name}: {exc}", file=sys.stderr)
                return False
            except OSError as exc:  # a cache file this user cannot read or write: which one, not a traceback
                where = f" ({exc.filename})" if exc.filename else ""
                print(f"provision: {name}: {exc.strerror or exc}{where}: check the permissions of the cache "
                      "(LOCALDEV_CACHE, default ~/.cache/localdev)", file=sys.stderr)
                return False

        # In parallel: downloads wait on the network while a build uses the CPU.
        with ThreadPoolExecutor(max_workers=len(names) or 1) as pool:
            ok = list(pool.map(install, names))
    return 0 if all(ok) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""`localdev doctor`: what is installed, what is missing, what to do about it."""

from __future__ import annotations

import os
import sys

from localdev.services.base import Check


def run_checks() -> list[Check]:
    from localdev import config
    from localdev.cluster import Cluster
    from localdev.runtimes import docker_available
    from localdev.state import default_home

    checks = [Check("python", sys.version_info >= (3, 11), sys.version.split()[0], "use Python 3.11 or newer")]
    cfg = config.load()
    checks.append(Check("config", True, str(cfg.path) if cfg.path else "no localdev.toml: defaults"))
    home = default_home()
    writable = os.access(home if home.exists() else home.parent, os.W_OK)
    checks.append(Check("LOCALDEV_HOME", writable, str(home),
                        "" if writable else "set LOCALDEV_HOME to a writable directory"))
    docker = docker_available()
    checks.append(Check("docker engine", True, "reachable" if docker else "none (the native runtime is used)"))
    cluster = Cluster(home=home, config=cfg)
    for name in cfg.enabled_services():
        checks += cluster.services[name].doctor()
    return checks

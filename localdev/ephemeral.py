"""Private throwaway clusters that die with the process that made them (`--localdev-ephemeral`, and
`localdev.testing.ephemeral_cluster()`), never the long-lived cluster of `localdev up`.

    from localdev.testing import ephemeral_cluster
    with ephemeral_cluster(services=["postgres"]) as eph:
        env = eph.client.create("t", with_env=True)["env"]

Every service gets a free port and the cluster a temporary LOCALDEV_HOME. On the container runtime everything
the cluster creates carries testcontainers' labels with this process's session id (`org.testcontainers.session-id`,
the one testcontainers' own containers in this process carry), and testcontainers' Ryuk is started for the
session when it can be (not disabled by TESTCONTAINERS_RYUK_DISABLED, its image at hand). Whatever the runtime,
and whether or not Ryuk runs, a reaper of ours (`localdev.reaper`) is armed before anything is created: it holds
a pipe from this process and, when that closes (normal exit or `kill -9`), removes the cluster — its agent, its
processes or containers, and every container, volume and network with the session's label — and its directory.
"""

from __future__ import annotations

import logging
import select
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localdev.errors import LocalDevError

log = logging.getLogger(__name__)
READY_TIMEOUT = 60.0
REAP_TIMEOUT = 180.0


@dataclass
class Ephemeral:
    cluster: Any  # localdev.cluster.Cluster
    client: Any  # localdev.agent_client.AgentClient
    home: Path
    session_labels: dict[str, str] = field(default_factory=dict)  # empty on the native runtime
    ryuk: bool = False  # testcontainers' Ryuk watches the session's containers too


def session_labels() -> dict[str, str]:
    """testcontainers' labels for this process's session (the package is needed on the container runtime)."""
    try:
        from testcontainers.core.labels import create_labels
    except ImportError:
        raise LocalDevError("an ephemeral cluster on the container runtime needs the testcontainers package: "
                            "pip install 'localdev[testcontainers]'") from None
    return create_labels("", None)


def _start_ryuk() -> bool:
    """testcontainers' Ryuk for this session, where it is enabled and its image is at hand."""
    from testcontainers.core.config import testcontainers_config
    from testcontainers.core.container import Reaper

    if testcontainers_config.ryuk_disabled:
        return False
    try:
        Reaper.get_instance()
        return True
    except Exception as exc:  # no image (no registry), or the engine refuses a privileged container
        log.info("testcontainers' Ryuk is not available (%s): localdev's reaper alone removes the cluster", exc)
        Reaper.delete_instance()
        return False


def _arm_reaper(home: Path, remove: Path, engine: str | None, label: str | None) -> subprocess.Popen:
    argv = [sys.executable, "-m", "localdev.reaper", "--home", str(home), "--remove", str(remove)]
    if engine and label:
        argv += ["--engine", engine, "--label", label]
    log_path = remove / "reaper.log"  # goes with the directory; stays there if the reaper fails
    with open(log_path, "ab") as log_file:
        # Its own session: a Ctrl-C or a kill of the test run's process group must not take the reaper along.
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log_file,
                                start_new_session=True)
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], READY_TIMEOUT)
    if not ready or proc.stdout.readline().strip() != b"ready":
        proc.kill()
        proc.wait(timeout=10)
        raise LocalDevError(f"the ephemeral cluster's reaper did not start: see {log_path}")
    proc.stdout.close()
    return proc


def _disarm(reaper: subprocess.Popen, stopped: bool) -> None:
    """Close the pipe (what a dead process does too) and wait until the reaper has removed everything;
    `stopped`: the cluster was removed here already, so the reaper checks once instead of watching a while."""
    from localdev.reaper import DONE

    assert reaper.stdin is not None
    try:
        if stopped:
            reaper.stdin.write(DONE)
        reaper.stdin.close()
    except BrokenPipeError:  # the reaper died: what it had to do is reported in its log
        pass
    try:
        reaper.wait(timeout=REAP_TIMEOUT)
    except subprocess.TimeoutExpired:
        log.warning("the ephemeral cluster's reaper (pid %d) is still removing it after %.0fs", reaper.pid,
                    REAP_TIMEOUT)


@contextmanager
def ephemeral_cluster(services: list[str] | None = None, config=None, runtime: str | None = None,
                      project: Path | str | None = None) -> Iterator[Ephemeral]:
    """A private cluster of `services` (default: the config's enabled ones) for the `with` block, on `runtime`
    (default: the config's); `config` defaults to the project's (localdev.toml searched from `project`, else the
    working directory). Removed at the end, and by the reaper if this process dies first."""
    from localdev import config as config_mod
    from localdev.agent_client import AgentClient
    from localdev.cluster import Cluster
    from localdev.ports import free_port

    cfg = config if config is not None else config_mod.load(start=Path(project) if project else None)
    if runtime:
        cfg.runtime = runtime
    for options in cfg.services.values():
        options["port"] = free_port()
    tmp = Path(tempfile.mkdtemp(prefix="localdev-ephemeral-"))
    home = tmp / "home"
    reaper, stopped = None, False
    try:
        cluster = Cluster(home=home, config=cfg)
        chosen = cluster._choose_runtime(cfg.runtime)
        labels: dict[str, str] = {}
        engine = label = None
        if chosen == "docker":
            from localdev.runtimes import engine_url

            labels = session_labels()  # first: says so if testcontainers is missing
            from testcontainers.core.labels import LABEL_SESSION_ID

            engine, label = engine_url(), f"{LABEL_SESSION_ID}={labels[LABEL_SESSION_ID]}"
        cluster = Cluster(home=home, config=cfg, labels=labels)
        reaper = _arm_reaper(home, tmp, engine, label)
        ryuk = chosen == "docker" and _start_ryuk()
        cluster.up(services=services, runtime=chosen)
        eph = Ephemeral(cluster=cluster, client=AgentClient(home), home=home, session_labels=labels, ryuk=ryuk)
        try:
            yield eph
        finally:
            cluster.namespaces.close()
            cluster.down(purge=True)
            stopped = True
    finally:
        if reaper is not None:
            _disarm(reaper, stopped)
        else:
            shutil.rmtree(tmp, ignore_errors=True)

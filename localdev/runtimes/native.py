"""Services as supervised native processes: detached, one pid file and one log file each.

A pid file records the process start time too, so a reused pid is never mistaken for ours.
"""

from __future__ import annotations

import json
import os
import pwd
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from localdev.errors import LocalDevError
from localdev.ports import port_in_use, port_taken
from localdev.runtimes.base import ProcessSpec, ProcessState
from localdev.state import StateDir
from localdev.waiting import TimedOut, poll_until


def _proc_stat(pid: int) -> tuple[bool, float] | None:
    """(is a zombie, start time in seconds since the epoch) of a pid, or None if there is none.

    psutil, not /proc: the native runtime also runs on macOS, which has no /proc (every server would look
    dead). The start time tells a reused pid from ours; rounded, as psutil derives it from clock ticks."""
    import psutil

    try:
        proc = psutil.Process(pid)
        with proc.oneshot():
            zombie = proc.status() == psutil.STATUS_ZOMBIE
            try:
                created = round(proc.create_time(), 2)
            except psutil.ZombieProcess:  # some systems keep no start time for a zombie
                return True, 0.0
        return zombie, created
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


class NativeRuntime:
    name = "native"

    def __init__(self, state: StateDir, host: str = "127.0.0.1"):
        self.dirs = state
        self.host = host

    def _pid_file(self, name: str) -> Path:
        return self.dirs.run(name) / "pid"

    def endpoint(self, name: str, options: dict) -> None:
        """Services run here, where their own config puts them."""

    def verify(self, service) -> None:
        """Nothing beyond the services' own checks."""

    def spec_for(self, service) -> ProcessSpec:
        return service.native_spec()

    def prepare(self, service) -> None:
        """Binaries into the cache, then the service's data initialised (initdb, directories)."""
        service.provision()

    def purge(self, service_names: list[str] | None = None) -> None:
        """Nothing of the runtime's own outlives `down`: pid files go at stop, data is the services' to remove."""

    def start(self, name: str, spec: ProcessSpec) -> int | None:
        current = self.state(name)
        if current.running:
            return current.pid
        if current.pid:
            _kill_group(current.pid)  # children orphaned by a killed server still hold its resources
            _wait_reaped(current.pid, current.start_time)
        for port in spec.ports:
            if port_in_use(self.host, port):
                raise port_taken(name, self.host, port)
        self.dirs.run(name).mkdir(parents=True, exist_ok=True)
        log_path = self.dirs.log(name)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        ids = [-1, -1]
        if spec.user and os.geteuid() == 0:
            pw = pwd.getpwnam(spec.user)
            ids = [pw.pw_uid, pw.pw_gid]
        read_end, write_end = os.pipe()
        with open(log_path, "ab", buffering=0) as log:
            log.write(f"--- localdev: starting {name} at {time.strftime('%Y-%m-%dT%H:%M:%S%z')} ---\n".encode())
            # Through a short-lived intermediate that forks the server and exits, so the server is nobody's
            # child: a killed server must not linger as our zombie (PostgreSQL then refuses to start, its
            # old pid still "running"), whichever long-lived process (agent, pytest) started it.
            spawner = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _SPAWN, json.dumps([spec.argv, *ids, write_end])],
                env={**os.environ, **spec.env}, cwd=spec.cwd, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, close_fds=True, pass_fds=(write_end,), umask=0o077)
        os.close(write_end)
        with os.fdopen(read_end) as pipe:
            answer = pipe.read()
        spawner.wait()
        if not answer.isdigit():
            raise LocalDevError(f"could not start {name} ({spec.argv[0]}): {answer or 'no answer from the spawner'}")
        pid = int(answer)
        stat = _proc_stat(pid)
        record = {"pid": pid, "created": stat[1] if stat else None, "argv0": spec.argv[0]}
        self._pid_file(name).write_text(json.dumps(record))
        return pid

    def _record(self, name: str) -> dict | None:
        try:
            return json.loads(self._pid_file(name).read_text())
        except (FileNotFoundError, ValueError):
            return None

    def state(self, name: str) -> ProcessState:
        record = self._record(name)
        if not record:
            return ProcessState(False, None, "not started")
        pid = record["pid"]
        # "created" (seconds); a record written before that has only /proc clock ticks, not comparable
        created = record.get("created")
        stat = _proc_stat(pid)
        if stat and stat[0]:
            _reap(pid)
            stat = None
        if stat is None or (created is not None and stat[1] != created):
            return ProcessState(False, pid, f"died (pid {pid} is gone)", created)
        return ProcessState(True, pid, "running", created)


    def instance(self, name: str) -> str | None:
        state = self.state(name)  # its record and /proc: no request to the server
        return f"{state.pid}@{state.start_time}" if state.running and state.start_time is not None else None

    def stop(self, name: str, spec: ProcessSpec | None = None) -> None:
        st = self.state(name)
        if st.running and st.pid:
            sig = spec.stop_signal if spec else signal.SIGTERM
            timeout = spec.stop_timeout if spec else 15.0
            try:
                os.kill(st.pid, sig)
            except ProcessLookupError:
                pass
            if not self._wait_gone(name, timeout):
                # Some servers hang on SIGTERM (a scheduler thread): escalate.
                _kill_group(st.pid)
                self._wait_gone(name, 5)
            _kill_group(st.pid)  # helpers the service left behind in its session
        self._pid_file(name).unlink(missing_ok=True)

    def _wait_gone(self, name: str, timeout: float) -> bool:
        try:
            return poll_until(lambda: not self.state(name).running, timeout, f"{name} to exit", interval=0.05)
        except TimedOut:
            return False

    def kill(self, name: str) -> None:
        """Kill without grace (tests and fault injection)."""
        st = self.state(name)
        if st.running and st.pid:
            os.kill(st.pid, signal.SIGKILL)

    def log_path(self, name: str) -> Path:
        return self.dirs.log(name)

    def logs(self, name: str, tail: int | None = None, follow: bool = False) -> Iterator[str]:
        path = self.log_path(name)
        if not path.exists():
            return
        with open(path, errors="replace") as fh:
            lines = fh.readlines()
            yield from (lines[-tail:] if tail else lines)
            while follow:
                line = fh.readline()
                if line:
                    yield line
                else:
                    time.sleep(0.2)


# Runs in the intermediate: fork; the child starts a new session, drops to the service's user and execs;
# the parent reports the child's pid (or why it failed) on the pipe and exits at once.
_SPAWN = """
import json, os, sys
argv, uid, gid, fd = json.loads(sys.argv[1])
ready_r, ready_w = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(ready_r)
    try:
        os.setsid()
        if uid >= 0:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
        os.set_inheritable(ready_w, False)
        os.close(fd)
        os.execvp(argv[0], argv)
    except OSError as exc:
        os.write(ready_w, (exc.strerror or str(exc)).encode())
    os._exit(127)
os.close(ready_w)
error = os.read(ready_r, 4096).decode()  # empty once exec succeeded (the pipe closes on exec)
os.write(fd, (error or str(pid)).encode())
os._exit(0)
"""


def _wait_reaped(pid: int, start_time: float | None, timeout: float = 10.0) -> None:
    """Until a dead server's pid is gone: while it is a zombie (init reaps orphans about once a second),
    PostgreSQL's lock file check still sees its old postmaster "running" and refuses to start."""
    def gone() -> bool:
        stat = _proc_stat(pid)
        if stat is None or (start_time is not None and stat[1] != start_time):
            return True
        _reap(pid)
        return False

    try:
        poll_until(gone, timeout, f"pid {pid} to be reaped", interval=0.05, max_interval=0.05)
    except TimedOut:
        pass  # the start that follows reports what is still in the way


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass

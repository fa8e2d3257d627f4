"""What `localdev ns create` shows a person on a terminal, and that scripts get only what they asked for.

The CLI runs with its stdout and stderr on pseudo-terminals of their own (as in an interactive shell), so
what it decides by `isatty()` is what a user sees."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys

from conftest import REPO


def on_terminal(cluster, *args: str, stdout_tty: bool = True) -> tuple[int, str, str]:
    """Run `localdev ARGS` with stderr (and, unless told otherwise, stdout) on a terminal of its own."""
    out_master, out_slave = pty.openpty() if stdout_tty else os.pipe()
    err_master, err_slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "localdev.cli", *args], cwd=cluster.project,
                            env={**cluster.env, "COLUMNS": "120", "TERM": "xterm"},
                            stdin=subprocess.DEVNULL, stdout=out_slave, stderr=err_slave)
    os.close(out_slave)
    os.close(err_slave)
    chunks: dict[int, list[bytes]] = {out_master: [], err_master: []}
    open_fds = set(chunks)
    while open_fds:
        ready, _, _ = select.select(list(open_fds), [], [], 120)
        assert ready, "the command neither wrote nor exited within 120 s"
        for fd in ready:
            try:
                data = os.read(fd, 65536)
            except OSError:  # EIO: the terminal's other side closed (the process exited)
                data = b""
            if data:
                chunks[fd].append(data)
            else:
                open_fds.discard(fd)
    code = proc.wait(timeout=60)
    for fd in chunks:
        os.close(fd)
    text = {fd: b"".join(parts).decode().replace("\r\n", "\n") for fd, parts in chunks.items()}
    return code, text[out_master], text[err_master]


def visible(terminal_output: str) -> str:
    """What is left on screen of a terminal's output without its control sequences (a transient progress bar
    that drew nothing leaves nothing)."""
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\r", "", terminal_output)


def test_ns_create_on_a_terminal_says_what_to_do_next(shared_cluster):
    code, out, err = on_terminal(shared_cluster, "ns", "create", "next-steps", "--no-seed", "--ttl", "2h")
    try:
        assert (code, visible(err)) == (0, "")
        lines = out.rstrip("\n").split("\n")
        assert lines[0] == "namespace next-steps is ready: postgres"
        assert re.fullmatch(r"  expires   in 2h, at \d{4}-\d\d-\d\d \d\d:\d\d UTC \(the agent deletes it then\)",
                            lines[1]), lines[1]
        assert lines[2:] == ['  use it    eval "$(localdev ns env next-steps --format shell)"',
                             "            localdev ns env next-steps --format dotenv > .env",
                             "  done      localdev ns delete next-steps"]
    finally:
        shared_cluster.cli("ns", "delete", "next-steps", "--missing-ok")


def test_ns_create_json_is_machine_only_even_on_a_terminal(shared_cluster):
    code, out, err = on_terminal(shared_cluster, "ns", "create", "json-only", "--seeds", str(REPO / "seeds"),
                                 "--json")
    try:
        assert (code, err) == (0, "")  # no progress bar, no advice: nothing but the JSON
        info = json.loads(out)
        assert info["name"] == "json-only" and info["state"] == "ready" and info["seed_hash"]
    finally:
        shared_cluster.cli("ns", "delete", "json-only", "--missing-ok")


def test_ns_create_piped_prints_one_line(shared_cluster):
    proc = shared_cluster.cli("ns", "create", "piped", "--no-seed", "--ttl", "30m", check=True)
    try:
        assert proc.stdout == ("namespace piped ready (expires in 30m); `localdev ns env piped` prints its "
                               "credentials\n")
    finally:
        shared_cluster.cli("ns", "delete", "piped", "--missing-ok")


def test_seeding_keeps_its_progress_bar_on_a_terminal(shared_cluster, tmp_path):
    seeds = tmp_path / "seeds" / "postgres"
    seeds.mkdir(parents=True)
    rows = "".join(f"insert into t values ({i}, 'row {i}');\n" for i in range(3000))
    (seeds / "001.sql").write_text("create table t (id int primary key, v text);\n" + rows)
    code, out, err = on_terminal(shared_cluster, "ns", "create", "with-bar", "--seeds", str(tmp_path / "seeds"),
                                 stdout_tty=False)
    try:
        assert code == 0, err
        assert "postgres: 001.sql" in err  # the bar's description, drawn on the terminal
        assert out.startswith("namespace with-bar ready")
    finally:
        shared_cluster.cli("ns", "delete", "with-bar", "--missing-ok")

"""The `localdev` command: parse, call the API (up/down/status/doctor) or the agent (ns, seed), render.

Namespace commands talk to the cluster agent over its socket and import no service client library.
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import List, Optional

import typer

from localdev.errors import BadInput, LocalDevError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="One shared local cluster of data services, carved into cheap isolated namespaces.")
ns_app = typer.Typer(no_args_is_help=True, help="Namespaces: create, list, env, delete, gc.")
app.add_typer(ns_app, name="ns")


def _home() -> Path:
    from localdev.state import default_home

    return default_home()


def _cluster():
    from localdev.cluster import Cluster

    return Cluster(home=_home())


def _agent():
    from localdev.agent_client import AgentClient

    return AgentClient(_home())


def _out(data) -> None:
    print(json.dumps(data, indent=2, sort_keys=True, default=str))


def _err(message: str) -> None:
    print(f"localdev: {message}", file=sys.stderr)


def _progress(quiet: bool):
    if quiet or not sys.stderr.isatty():
        return lambda msg: None
    return lambda msg: print(f"  {msg}", file=sys.stderr, flush=True)


@contextmanager
def _progress_bar(quiet: bool):
    """A progress bar for long namespace work on a terminal; None (no streaming) otherwise."""
    if quiet or not sys.stderr.isatty():
        yield None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), transient=True) as bar:
        task = bar.add_task("working", total=1.0)

        def update(message: str, fraction: float | None) -> None:
            bar.update(task, description=message, completed=fraction if fraction is not None else 0)

        yield update


def _ago(ts: float | None) -> str:
    if ts is None:
        return "never"
    delta = ts - time.time()
    sign = "in " if delta >= 0 else ""
    delta = abs(delta)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if delta >= size:
            text = f"{delta / size:.0f}{unit}"
            break
    else:
        text = f"{delta:.0f}s"
    return sign + text + ("" if sign else " ago")


def _table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*row)
    Console().print(table)


# -- cluster --------------------------------------------------------------------------
@app.command()
def up(runtime: Optional[str] = typer.Option(None, help="auto | native | docker"),
       service: Optional[List[str]] = typer.Option(None, "--service", help="only this service (repeatable)"),
       as_json: bool = typer.Option(False, "--json", help="print the status as JSON")):
    """Start the shared cluster (every enabled service, then the agent) and wait until all are healthy."""
    if runtime and runtime not in ("auto", "native", "docker"):
        raise BadInput(f"invalid --runtime {runtime!r}: use auto, native or docker")
    if not runtime and not service:
        status = _running_status()
        if status is not None:  # already up and healthy: the agent says so without a client import here
            _render_status(status, as_json)
            return
    cluster = _cluster()
    status = cluster.up(services=service or None, runtime=runtime, progress=_progress(as_json))
    _render_status(status, as_json)


def _running_status() -> dict | None:
    """The agent's status if the whole recorded cluster is up and healthy, else None."""
    from localdev.agent_client import AgentClient

    client = AgentClient(_home(), timeout=30)
    if not client.ping():
        return None
    status = client.status()
    healthy = all(s["state"] == "healthy" for s in status["services"].values())
    return status if status["state"] == "up" and status["services"] and healthy else None


@app.command()
def down(purge: bool = typer.Option(False, "--purge", help="also delete all data")):
    """Stop the cluster (data kept unless --purge)."""
    _cluster().down(purge=purge, progress=_progress(False))


@app.command()
def status(as_json: bool = typer.Option(False, "--json")):
    """Show the cluster's services, the agent and recent supervisor events."""
    from localdev.agent_client import AgentClient

    client = AgentClient(_home(), timeout=30)
    try:
        data = client.status()
    except LocalDevError:
        data = _cluster().status()  # no agent: check the services from here
    _render_status(data, as_json)


def _render_status(data: dict, as_json: bool) -> None:
    if as_json:
        _out(data)
        return
    rows = [[name, s["state"], f"{s['host']}:{s['port']}", str(s["pid"] or "-"), s["detail"]]
            for name, s in data["services"].items()]
    agent = data["agent"]
    rows.append(["agent", "running" if agent["running"] else "stopped", agent.get("socket", ""),
                 str(agent.get("pid") or "-"), agent.get("detail", "")])
    _table(f"localdev cluster ({data['runtime'] or 'not started'}) — {data['home']}",
           ["service", "state", "endpoint", "pid", "detail"], rows)
    for event in data.get("events", [])[-5:]:
        print(f"  {event['time']} {event['service']}: {event['event']} {event.get('detail', '')}".rstrip())
    _render_problems(data.get("problems", {}))


def _render_problems(problems: dict) -> None:
    for namespace, by_service in problems.items():
        for problem in by_service.values():
            print(f"  namespace {namespace}: {problem}")


@app.command()
def logs(service: str, follow: bool = typer.Option(False, "--follow", "-f"),
         tail: Optional[int] = typer.Option(None, "--tail", "-n", min=1)):
    """Print a service's log (or the agent's: `localdev logs agent`)."""
    try:
        for line in _cluster().logs(service, tail=tail, follow=follow):
            sys.stdout.write(line)
    except KeyboardInterrupt:
        pass


@app.command()
def doctor(as_json: bool = typer.Option(False, "--json")):
    """What is installed, what is missing, and what to do about it."""
    from localdev.doctor import run_checks

    checks = run_checks()
    if as_json:
        _out([c.__dict__ for c in checks])
    else:
        _table("localdev doctor", ["check", "ok", "detail", "fix"],
               [[c.name, "yes" if c.ok else "NO", c.detail, c.fix] for c in checks])
    if not all(c.ok for c in checks):
        raise typer.Exit(1)


# -- namespaces -------------------------------------------------------------------------
def _seeds_dir(seeds: Optional[Path]) -> Path:
    from localdev import config

    return seeds.resolve() if seeds else config.load().seeds_dir


@ns_app.command("create")
def ns_create(name: Optional[str] = typer.Argument(None),
              ttl: Optional[str] = typer.Option(None, help="e.g. 30m, 2h, 7d, none (default: config)"),
              seed: bool = typer.Option(True, "--seed/--no-seed", help="apply the seeds (default: yes, if present)"),
              seeds: Optional[Path] = typer.Option(None, help="fixtures directory (default: config's seeds)"),
              label: Optional[List[str]] = typer.Option(None, "--label", help="k=v (repeatable)"),
              from_ci: bool = typer.Option(False, "--from-ci", help="name from the CI environment"),
              exist_ok: bool = typer.Option(False, "--exist-ok", help="reuse an existing namespace"),
              as_json: bool = typer.Option(False, "--json")):
    """Create a namespace on the shared cluster (a fraction of a second)."""
    from localdev import config
    from localdev.names import name_from_ci, parse_labels, parse_ttl, validate_name

    if from_ci and name:
        raise BadInput("give a NAME or --from-ci, not both")
    name = name_from_ci() if from_ci else name
    if not name:
        raise BadInput("missing NAME (or use --from-ci)")
    validate_name(name)
    parse_labels(label)
    cfg = config.load()
    if ttl is not None:
        parse_ttl(ttl)
    ttl = ttl if ttl is not None else cfg.namespaces["default_ttl"]
    seeds_dir = (seeds.resolve() if seeds else cfg.seeds_dir) if seed else None
    if seeds is not None and not seeds.is_dir():
        raise BadInput(f"--seeds {seeds}: not a directory")
    if seeds_dir is not None and not seeds_dir.is_dir():
        seeds_dir = None  # no seeds folder in this project: nothing to apply
    with _progress_bar(as_json) as on_progress:
        info = _agent().create(name, ttl=ttl, labels=label, exist_ok=exist_ok, seed=seeds_dir is not None,
                               seeds_dir=seeds_dir, on_progress=on_progress)
    if as_json:
        _out(info)
    else:
        print(f"namespace {info['name']} ready (expires {_ago(info['expires_at'])}); "
              f"`localdev ns env {info['name']}` prints its credentials")


@ns_app.command("list")
def ns_list(as_json: bool = typer.Option(False, "--json")):
    """Namespaces with their age, expiry, labels and services (never credentials)."""
    items = _agent().list()
    if as_json:
        _out(items)
        return
    _table("namespaces", ["name", "state", "age", "expires", "labels", "services"],
           [[i["name"], i["state"], _ago(i["created_at"]), _ago(i["expires_at"]),
             ",".join(f"{k}={v}" for k, v in i["labels"].items()), ",".join(i["services"])] for i in items])
    _render_problems({i["name"]: i["problems"] for i in items if i.get("problems")})


@ns_app.command("delete")
def ns_delete(name: str, missing_ok: bool = typer.Option(False, "--missing-ok")):
    """Delete a namespace and everything it owns in every service."""
    from localdev.names import validate_name

    validate_name(name)
    deleted = _agent().delete(name, missing_ok=missing_ok)
    print(f"namespace {name} {'deleted' if deleted else 'did not exist'}")


@ns_app.command("gc")
def ns_gc(dry_run: bool = typer.Option(False, "--dry-run", help="only list what would be deleted")):
    """Delete every expired (or half-created) namespace now."""
    names = _agent().gc(dry_run=dry_run)
    verb = "would delete" if dry_run else "deleted"
    print(f"{verb} {len(names)} namespace(s)" + (": " + ", ".join(names) if names else ""))


FORMATS = ("dotenv", "shell", "json")


def format_env(env: dict[str, str], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(env, indent=2)
    if fmt == "shell":
        return "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items())
    return "".join(f"{k}={_dotenv_value(v)}\n" for k, v in env.items())


def _dotenv_value(value: str) -> str:
    """Plain when safe; else double-quoted with escapes, as dotenv readers and docker --env-file expect."""
    if value and not any(c in value for c in DOTENV_SPECIAL):
        return value
    return json.dumps(value)


DOTENV_SPECIAL = set(" #\"'\\$`\n=")


@ns_app.command("env")
def ns_env(name: str, fmt: str = typer.Option("dotenv", "--format", help="dotenv | shell | json")):
    """Print a namespace's connection settings (eval-safe with --format shell)."""
    from localdev.names import validate_name

    if fmt not in FORMATS:
        raise BadInput(f"invalid --format {fmt!r}: use dotenv, shell or json")
    validate_name(name)
    sys.stdout.write(format_env(_agent().env(name), fmt))


@app.command()
def seed(name: str, seeds: Optional[Path] = typer.Option(None, help="fixtures directory (default: config's seeds)"),
         service: Optional[List[str]] = typer.Option(None, "--service", help="only this service (repeatable)")):
    """Apply the seeds to an existing namespace again (e.g. after an emulator lost its state)."""
    from localdev.names import validate_name

    validate_name(name)
    seeds_dir = _seeds_dir(seeds)
    if not seeds_dir.is_dir():
        raise BadInput(f"seeds directory {seeds_dir} does not exist")
    with _progress_bar(False) as on_progress:
        _agent().seed(name, seeds_dir, services=service or None, on_progress=on_progress)
    print(f"namespace {name} seeded from {seeds_dir}")


@app.command()
def compose(output: Path = typer.Option(Path("compose/docker-compose.yml"), "--output", help="file to write")):
    """Write a docker-compose.yml generated from the same service specs."""
    from localdev.compose import write_compose

    write_compose(output)
    print(f"wrote {output}")


def main() -> None:
    try:
        app(standalone_mode=False)
    except LocalDevError as exc:
        _err(str(exc))
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        _err("aborted")
        sys.exit(1)
    except KeyboardInterrupt:
        _err("interrupted")
        sys.exit(130)
    except OSError as exc:  # a full disk, a permission: say which file and why, not a traceback
        where = f" ({exc.filename})" if exc.filename else ""
        _err(f"{exc.strerror or exc}{where}: check free space and permissions of LOCALDEV_HOME ({_home()})")
        sys.exit(1)
    except Exception as exc:  # click usage errors and the like
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(2 if isinstance(exc, click.UsageError) else exc.exit_code)
        raise


if __name__ == "__main__":
    main()

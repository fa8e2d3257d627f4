"""The `localdev` command: parse, call the API (up/down/status/doctor) or the agent (ns, seed), render.

argparse, not typer: every `localdev ns ...` is a new process, and typer + click's imports and dispatch
would be a large share of a per-PR namespace's budget (bench/results/design-measurements.md). Namespace
commands talk to the agent over its socket and import no service client library; rich is imported only
to draw a table or a progress bar.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from localdev.errors import AgentUnavailable, BadInput, LocalDevError


def _home() -> Path:
    from localdev.state import default_home

    return default_home()


def _cluster():
    from localdev.cluster import Cluster

    return Cluster(home=_home())


def _agent(timeout: float = 600):
    """The cluster this user is pointed at: LOCALDEV_URL or `localdev login`'s profile, else the local one."""
    from localdev.profile import connect

    return connect(_home(), timeout=timeout)


def _local_only(what: str) -> None:
    from localdev.profile import remote

    where = remote()
    if where is not None:
        raise BadInput(f"`localdev {what}` runs on the cluster's own machine; this shell points at the remote "
                       f"cluster {where.url} (LOCALDEV_URL or `localdev login`): unset LOCALDEV_URL or "
                       "`localdev logout` to manage a local cluster")


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
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

    # on stderr, which was checked: stdout may be what a script reads (`--print-env`)
    with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), transient=True,
                  console=Console(stderr=True)) as bar:
        tasks: dict[str, TaskID] = {}  # services seed in parallel: one bar each

        def update(service: str, message: str, fraction: float | None) -> None:
            if service not in tasks:
                tasks[service] = bar.add_task(message, total=1.0)
            bar.update(tasks[service], description=message, completed=fraction if fraction is not None else 0)

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
    from localdev.tables import render

    sys.stdout.write(render(title, columns, rows))


# -- cluster --------------------------------------------------------------------------
def up(args) -> None:
    _local_only("up")
    if not args.runtime and not args.service and args.serve is None:
        status = _running_status()
        if status is not None:  # already up and healthy: the agent says so without a client import here
            _render_status(status, args.json)
            return
    status = _cluster().up(services=args.service or None, runtime=args.runtime, progress=_progress(args.json),
                           serve=args.serve)
    _render_status(status, args.json)


def _running_status() -> dict | None:
    """The agent's status if the whole recorded cluster is up and healthy, else None."""
    from localdev.agent_client import AgentClient

    client = AgentClient(_home(), timeout=30)
    if not client.ping():
        return None
    status = client.status()
    healthy = all(s["state"] == "healthy" for s in status["services"].values())
    return status if status["state"] == "up" and status["services"] and healthy else None


def down(args) -> None:
    _local_only("down")
    _cluster().down(purge=args.purge, progress=_progress(False))


def status(args) -> None:
    client = _agent(timeout=30)
    try:
        data = client.status()
    except AgentUnavailable:
        if client.remote:
            raise
        data = _cluster().status()  # no agent: check the services from here
    _render_status(data, args.json)


def _render_status(data: dict, as_json: bool) -> None:
    if as_json:
        _out(data)
        return
    rows = [[name, s["state"], f"{s['host']}:{s['port']}", str(s["pid"] or "-"), s["detail"]]
            for name, s in data["services"].items()]
    agent = data["agent"]
    gateway = data.get("gateway")
    if gateway:  # the AWS gateway owns the ports of the services behind it
        rows.append(["gateway", gateway["state"], ", ".join(f"{n} :{p}" for n, p in gateway["ports"].items()),
                     str(gateway["pid"] or "-"), gateway["detail"]])
    rows.append(["agent", "running" if agent["running"] else "stopped", agent.get("socket", ""),
                 str(agent.get("pid") or "-"), agent.get("detail", "")])
    _table(f"localdev cluster ({data['runtime'] or 'not started'}) — {data['home']}",
           ["service", "state", "endpoint", "pid", "detail"], rows)
    listener = agent.get("listener")
    if listener:
        tls = f"TLS, CA {listener['ca']}" if listener["tls"] and listener.get("ca") else \
            ("TLS" if listener["tls"] else listener["warning"])
        print(f"  team mode: {listener['url']} ({tls})")
    for token in data.get("tokens", []):
        print(f"  token {token['name']} ({token['role']}): last used {_ago(token['last_used_at'])}, "
              f"expires {_ago(token['expires_at'])}")
    for event in data.get("events", [])[-5:]:
        print(f"  {event['time']} {event['service']}: {event['event']} {event.get('detail', '')}".rstrip())
    _render_problems(data.get("problems", {}))


def _render_problems(problems: dict) -> None:
    for namespace, by_service in problems.items():
        for problem in by_service.values():
            print(f"  namespace {namespace}: {problem}")


def logs(args) -> None:
    try:
        for line in _cluster().logs(args.service, tail=args.tail, follow=args.follow):
            sys.stdout.write(line)
    except KeyboardInterrupt:
        pass


def doctor(args) -> int:
    from localdev.doctor import run_checks

    checks = run_checks()
    if args.json:
        _out([c.__dict__ for c in checks])
    else:
        _table("localdev doctor", ["check", "ok", "detail", "fix"],
               [[c.name, "yes" if c.ok else "NO", c.detail, c.fix] for c in checks])
    return 0 if all(c.ok for c in checks) else 1


# -- namespaces -------------------------------------------------------------------------
def _seeds_dir(seeds: Path | None) -> Path:
    from localdev.config import load_namespace_settings

    return seeds.resolve() if seeds else load_namespace_settings().seeds_dir


def ns_create(args) -> None:
    from localdev.config import load_namespace_settings
    from localdev.names import name_from_ci, parse_labels, parse_ttl, validate_name

    if args.from_ci and args.name:
        raise BadInput("give a NAME or --from-ci, not both")
    name = name_from_ci() if args.from_ci else args.name
    if not name:
        raise BadInput("missing NAME (or use --from-ci)")
    validate_name(name)
    if args.print_env == "k8s-secret":  # refused before anything is created
        from localdev.kubernetes import secret_name

        secret_name(name)
    parse_labels(args.label)
    cfg = load_namespace_settings()
    if args.ttl is not None:
        parse_ttl(args.ttl)
    ttl = args.ttl if args.ttl is not None else cfg.namespaces["default_ttl"]
    # like the TTL: the project's default travels with the request (a remote cluster's config is not yours)
    max_connections = args.max_connections or cfg.namespaces["max_connections"]
    seeds = args.seeds
    if args.from_source and seeds is not None:
        raise BadInput("--from copies its source's data and applies no seeds: drop --seeds")
    if seeds is not None and not seeds.is_dir():
        raise BadInput(f"--seeds {seeds}: not a directory")
    seeds_dir = (seeds.resolve() if seeds else cfg.seeds_dir) if args.seed and not args.from_source else None
    if seeds_dir is not None and not seeds_dir.is_dir():
        seeds_dir = None  # no seeds folder in this project: nothing to apply
    with _progress_bar(args.json) as on_progress:
        info = _agent().create(name, ttl=ttl, labels=args.label, exist_ok=args.exist_ok, seed=seeds_dir is not None,
                               seeds_dir=seeds_dir, on_progress=on_progress, with_env=bool(args.print_env),
                               max_connections=max_connections, with_masks=args.print_env == "github",
                               from_=args.from_source)
    if args.print_env:  # one process and one request instead of `ns create` then `ns env`
        _write_env(info["name"], info["env"], args.print_env, info.get("masks"))
    elif args.json:
        _out(info)
    elif sys.stdout.isatty():
        from localdev.nextsteps import next_steps

        print(next_steps(info, seeds_dir))
    else:
        print(f"namespace {info['name']} ready (expires {_ago(info['expires_at'])}); "
              f"`localdev ns env {info['name']}` prints its credentials")


def ns_list(args) -> None:
    if args.names:  # for shell completion: a tab press must not hang on an agent that does not answer
        sys.stdout.write("".join(f"{i['name']}\n" for i in _agent(timeout=2).list()))
        return
    items = _agent().list()
    if args.json:
        _out(items)
        return
    _table("namespaces", ["name", "state", "age", "expires", "labels", "services", "max conns"],
           [[i["name"], i["state"], _ago(i["created_at"]), _ago(i["expires_at"]),
             ",".join(f"{k}={v}" for k, v in i["labels"].items()), ",".join(i["services"]),
             str(i["max_connections"]) if i.get("max_connections") else "none"] for i in items])
    _render_problems({i["name"]: i["problems"] for i in items if i.get("problems")})


def ns_delete(args) -> None:
    from localdev.names import validate_name

    validate_name(args.name)
    deleted = _agent().delete(args.name, missing_ok=args.missing_ok)
    print(f"namespace {args.name} {'deleted' if deleted else 'did not exist'}")


def ns_gc(args) -> None:
    names = _agent().gc(dry_run=args.dry_run)
    verb = "would delete" if args.dry_run else "deleted"
    print(f"{verb} {len(names)} namespace(s)" + (": " + ", ".join(names) if names else ""))


FORMATS = ("dotenv", "shell", "json", "github", "gitlab", "k8s-secret")


def _write_env(name: str, env: dict[str, str], fmt: str, masks: list[str] | None = None) -> None:
    if fmt != "github":
        sys.stdout.write(format_env(env, fmt))
        return
    from localdev.ci_env import write_github_env

    sys.stdout.write(write_github_env(env, masks or []))
    print(f"localdev: namespace {name}: {len(env)} settings added to $GITHUB_ENV for the next steps "
          f"({len(masks or [])} secrets masked in the log)", file=sys.stderr)


def ns_snapshot(args) -> None:
    from localdev.names import validate_name
    from localdev.snapshots import validate_snapshot_name

    if args.delete:
        if args.name:
            raise BadInput("`ns snapshot --delete SNAP` takes no namespace name")
        _agent().snapshot_delete(validate_snapshot_name(args.delete))
        print(f"snapshot {args.delete} deleted")
        return
    if not args.name:
        raise BadInput("missing NAME: `localdev ns snapshot NAME --as SNAP`")
    validate_name(args.name)
    info = _agent().snapshot(args.name, validate_snapshot_name(args.as_name))
    print(f"snapshot {info['name']} of {args.name} ready; `localdev ns create NEW --from {info['name']}` copies it")


def ns_snapshots(args) -> None:
    items = _agent().snapshots()
    if args.json:
        _out(items)
        return
    _table("snapshots", ["name", "source", "age", "services"],
           [[i["name"], i["source"] or "", _ago(i["created_at"]), ",".join(i["services"])] for i in items])


def ns_reset(args) -> None:
    from localdev.names import validate_name

    validate_name(args.name)
    info = _agent().reset(args.name, args.to)
    if args.json:
        _out(info)
    else:
        print(f"namespace {info['name']} reset to {args.to or 'its seeded state'}; its credentials are unchanged")


def format_env(env: dict[str, str], fmt: str) -> str:
    if fmt == "k8s-secret":
        from localdev.kubernetes import namespace_secret

        return namespace_secret(env)
    if fmt == "gitlab":
        from localdev.ci_env import gitlab_dotenv

        return gitlab_dotenv(env)
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


def ns_env(args) -> None:
    from localdev.names import validate_name

    validate_name(args.name)
    if args.format == "github":
        env, masks = _agent().env_and_masks(args.name)
        _write_env(args.name, env, "github", masks)
    else:
        _write_env(args.name, _agent().env(args.name), args.format)


def seed(args) -> None:
    from localdev.names import validate_name

    validate_name(args.name)
    seeds_dir = _seeds_dir(args.seeds)
    if not seeds_dir.is_dir():
        raise BadInput(f"seeds directory {seeds_dir} does not exist")
    with _progress_bar(False) as on_progress:
        _agent().seed(args.name, seeds_dir, services=args.service or None, on_progress=on_progress)
    print(f"namespace {args.name} seeded from {seeds_dir}")


def token_create(args) -> None:
    info = _agent().token_create(args.name, args.role, args.ttl)
    if args.json:
        _out(info)
        return
    print(info["token"])
    print(f"token {info['name']} ({info['role']}) created; it is shown only now: store it as a CI secret "
          "(LOCALDEV_TOKEN)", file=sys.stderr)


def token_list(args) -> None:
    items = _agent().token_list()
    if args.json:
        _out(items)
        return
    _table("tokens", ["name", "role", "created", "expires", "last used"],
           [[t["name"], t["role"], _ago(t["created_at"]), _ago(t["expires_at"]), _ago(t["last_used_at"])]
            for t in items])


def token_revoke(args) -> None:
    _agent().token_revoke(args.name)
    print(f"token {args.name} revoked")


def login(args) -> None:
    from localdev.profile import login as do_login

    token = args.token or _env_token()
    info = do_login(args.url, token, ca_file=args.ca, fingerprint_expected=args.fingerprint)
    print(f"logged in to {info['url']} as {info['name']} ({info['role']}); the cluster CA "
          f"(SHA-256 {info['fingerprint']}) is pinned in {info['profile']}")


def _env_token() -> str:
    import os

    token = os.environ.get("LOCALDEV_TOKEN")
    if not token:
        raise BadInput("give --token T (or set LOCALDEV_TOKEN)")
    return token


def logout(args) -> None:
    from localdev.profile import logout as do_logout

    print("logged out" if do_logout() else "not logged in")


def completion(args) -> None:
    from localdev.completion import script

    sys.stdout.write(script(build_parser(), args.shell))


def dashboard(args) -> None:
    client = _agent(timeout=30)
    if client.remote and args.port:
        raise BadInput(f"--port is for a local cluster's dashboard; {client.url} serves it on its own listener")
    url = client.request("POST", "/dashboard/sessions", {"port": args.port})["url"]
    print(url)
    print("localdev: open it in a browser; the link works once (it opens a session) and for 10 minutes",
          file=sys.stderr)


def compose(args) -> None:
    from localdev.compose import write_compose

    write_compose(args.output)
    print(f"wrote {args.output}")


def k8s(args) -> None:
    from localdev.kubernetes import write

    written = write(args.output, namespace=args.namespace)
    print(f"wrote {len(written)} files to {args.output} (kubectl apply -k {args.output})")


# -- exports, imports, backups (the work is in localdev/exports.py and localdev/backups.py) ----------------
ARCHIVE_FORMATS = {".tar.zst": True, ".tzst": True, ".tar": False}


def ns_export(args) -> None:
    from localdev.names import validate_name

    validate_name(args.name)
    suffix = next((s for s in ARCHIVE_FORMATS if args.output.endswith(s)), None)
    if args.output != "-" and suffix is None and args.format is None:
        raise BadInput(f"-o {args.output}: name the file .tar.zst (compressed) or .tar, or give --format")
    compress = (args.format or suffix or ".tar.zst") != ".tar"
    if args.output == "-":
        _agent().export(args.name, sys.stdout.buffer, compress)
        return
    import os

    path = Path(args.output)
    partial = path.with_name(path.name + ".partial")
    try:
        with open(partial, "wb") as fh:
            _agent().export(args.name, fh, compress)
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    from localdev.exports import read_manifest

    manifest = read_manifest(path)
    counts = "; ".join(f"{s}: " + ", ".join(f"{v} {k}" for k, v in i["counts"].items())
                       for s, i in manifest["services"].items())
    print(f"namespace {args.name} exported to {path} ({path.stat().st_size} bytes): {counts}")
    for service in manifest["services"].values():
        for note in service.get("notes", []):
            print(f"  note: {note}")


def ns_import(args) -> None:
    from localdev.names import parse_labels, parse_ttl, validate_name

    validate_name(args.as_name)
    parse_labels(args.label)
    if args.ttl is not None:
        parse_ttl(args.ttl)
    try:
        fh = open(args.file, "rb")
    except OSError as exc:
        raise BadInput(f"{args.file}: {exc.strerror}") from None
    with fh:
        info = _agent().import_archive(fh, args.as_name, label=args.file, ttl=args.ttl, labels=args.label)
    if args.json:
        _out(info)
        return
    counts = "; ".join(f"{s}: " + ", ".join(f"{v} {k}" for k, v in c.items()) for s, c in info["imported"].items())
    print(f"namespace {info['name']} imported from {args.file} ({counts}); `localdev ns env {info['name']}` prints "
          "its credentials")
    for note in info.get("notes", []):
        print(f"  note: {note}")


def ns_checksum(args) -> None:
    from localdev.names import validate_name

    validate_name(args.name)
    sums = _agent().checksum(args.name)
    if args.json:
        _out(sums)
        return
    _table(f"content of {args.name}", ["service", "counts", "checksum"],
           [[s, ", ".join(f"{v} {k}" for k, v in i["counts"].items()), i["checksum"]] for s, i in sums.items()])


def backup(args) -> None:
    from localdev.backups import backup as run

    done = run(_agent(), args.output, say=lambda m: print(m, file=sys.stderr))
    print(f"backed up {len(done['namespaces'])} namespace(s) and {done['tokens']} token(s) to {done['path']} "
          "(it holds their credentials: keep it private)")


def restore(args) -> None:
    from localdev.backups import restore as run

    done = run(_agent(), args.dir, skip_existing=args.skip_existing, say=lambda m: print(m, file=sys.stderr))
    print(f"restored {len(done['restored'])} namespace(s) and {done['tokens']} token(s) from {args.dir}"
          + (f"; skipped {len(done['skipped'])}" if done["skipped"] else ""))


def _archive_commands(sub, ns_sub) -> None:
    p = _command(ns_sub, "export", ns_export, "Write a namespace's data as a portable archive (a seeds/ tree and "
                                              "a manifest); SQS messages are not copied.")
    p.add_argument("name")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="FILE.tar.zst, FILE.tar, or - for stdout")
    p.add_argument("--format", choices=(".tar.zst", ".tar"), help="default: from FILE's name (stdout: .tar.zst)")
    p = _command(ns_sub, "import", ns_import, "Create a namespace from an export archive (checked first; all or "
                                              "nothing).")
    p.add_argument("file")
    p.add_argument("--as", dest="as_name", required=True, metavar="NAME", help="the new namespace's name")
    p.add_argument("--ttl", help="e.g. 30m, 2h, 7d, none (default: config)")
    p.add_argument("--label", action="append", metavar="K=V", help="a label (repeatable)")
    _json_flag(p)
    p = _command(ns_sub, "checksum", ns_checksum, "Per-service counts and content checksums of a namespace (equal "
                                                  "data, equal checksum).")
    p.add_argument("name")
    _json_flag(p)
    p = _command(sub, "backup", backup, "Back up every namespace (data, labels, TTL, owner, credentials) and the "
                                        "tokens into a new folder (0600 files).")
    p.add_argument("-o", "--output", required=True, type=Path, metavar="DIR")
    p = _command(sub, "restore", restore, "Restore a backup: every namespace with its old credentials, and the "
                                          "tokens. Refuses names the cluster has, unless --skip-existing.")
    p.add_argument("dir", type=Path)
    p.add_argument("--skip-existing", action="store_true", help="keep the cluster's namespaces of the same name")


# -- parsing ----------------------------------------------------------------------------
class _Formatter(argparse.HelpFormatter):
    """argparse makes a formatter at every add_argument (to try the metavar), and the stock one asks the
    terminal's width as it is made, importing shutil (and bz2, lzma and zlib with it) and compiling two
    regexes: a few milliseconds of every command, for help it does not print. This one is made whole only
    when something beyond trying a metavar is asked of it."""

    def __init__(self, prog, indent_increment=2, max_help_position=24, width=None):
        self._deferred = (prog, indent_increment, max_help_position, width)

    def __getattr__(self, name):  # only for what __init__ has not set yet
        deferred = self.__dict__.pop("_deferred", None)
        if deferred is None:
            raise AttributeError(name)
        super().__init__(*deferred)
        return getattr(self, name)


class _Parser(argparse.ArgumentParser):
    # No prefix matching: `ns create b --from a` must be refused, not read as `--from-ci` plus a stray name.
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message):  # a usage error is bad input: our message format, exit 2
        raise BadInput(f"{message} (see `{self.prog} --help`)")


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return int(text)


GROUPS = ("ns", "token")  # commands of commands


def _selected(argv: list[str]) -> tuple[str, ...] | None:
    """The command path `argv` names, e.g. ("ns", "create"), so that only its parser is built; None (nothing
    named, or an option first): build them all."""
    path: list[str] = []
    for token in argv[:2]:
        if token.startswith("-"):
            break
        path.append(token)
        if token not in GROUPS:
            break
    return tuple(path) or None


class _Skipped:
    """A command left out of this run's parser: the arguments added to it go nowhere."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: self


_SKIPPED = _Skipped()


def _subcommands(parser, only: str | None):
    """`parser`'s subcommands; `only`: define that one alone (each parser argparse makes costs ~0.2 ms, most
    of it gettext looking for message catalogs, and the CLI has 31 of them)."""
    # (prog given: argparse would format the parser's usage to find it, which has no positionals before)
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", prog=parser.prog)
    sub.localdev_only = only
    return sub


def _command(sub, name: str, func, help: str):
    if sub is _SKIPPED or getattr(sub, "localdev_only", None) not in (None, name):
        return _SKIPPED
    parser = sub.add_parser(name, help=help, description=help)
    parser.set_defaults(func=func)
    return parser


def _group(sub, name: str, help: str, only: str | None):
    """A command of commands (`ns`, `token`): its subcommands, or _SKIPPED when this run is not one of them."""
    group = _command(sub, name, None, help)
    if group is _SKIPPED:
        return _SKIPPED
    group.set_defaults(func=_help(group, 2))
    return _subcommands(group, only)


def _json_flag(parser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON")


def build_parser(only: tuple[str, ...] | None = None) -> argparse.ArgumentParser:
    """The CLI's parser; with `only` (a command path, `_selected`), that command's alone."""
    parser = _Parser(prog="localdev",
                     description="One shared local cluster of data services, carved into cheap isolated namespaces.")
    parser.set_defaults(func=_help(parser, 0))
    parser.add_argument("--version", action=_VersionAction)
    sub = _subcommands(parser, only[0] if only else None)
    within = only[1] if only and len(only) > 1 else None

    p = _command(sub, "up", up, "Start the shared cluster (every enabled service, then the agent) and wait until "
                                "all are healthy.")
    p.add_argument("--runtime", choices=("auto", "native", "docker", "external"))
    p.add_argument("--service", action="append", help="only this service (repeatable)")
    p.add_argument("--serve", nargs="?", const="0.0.0.0:7443", metavar="ADDR",
                   help="team mode: the agent also listens on TCP, with TLS and tokens (default 0.0.0.0:7443)")
    _json_flag(p)
    p = _command(sub, "down", down, "Stop the cluster (data kept unless --purge).")
    p.add_argument("--purge", action="store_true", help="also delete all data")
    p = _command(sub, "status", status, "Show the cluster's services, the agent and recent supervisor events.")
    _json_flag(p)
    p = _command(sub, "logs", logs, "Print a service's log (or the agent's: `localdev logs agent`).")
    p.add_argument("service")
    p.add_argument("--follow", "-f", action="store_true")
    p.add_argument("--tail", "-n", type=_positive_int, metavar="N")
    p = _command(sub, "doctor", doctor, "What is installed, what is missing, and what to do about it.")
    _json_flag(p)

    ns_sub = _group(sub, "ns", "Namespaces: create, list, env, delete, gc.", within)
    p = _command(ns_sub, "create", ns_create, "Create a namespace on the shared cluster (a fraction of a second).")
    p.add_argument("name", nargs="?")
    p.add_argument("--ttl", help="e.g. 30m, 2h, 7d, none (default: config)")
    p.add_argument("--seed", action=argparse.BooleanOptionalAction, default=True,
                   help="apply the seeds (default: yes, if present)")
    p.add_argument("--seeds", type=Path, metavar="DIR", help="fixtures directory (default: config's seeds)")
    p.add_argument("--label", action="append", metavar="K=V", help="a label (repeatable)")
    p.add_argument("--from-ci", action="store_true", help="name from the CI environment")
    p.add_argument("--exist-ok", action="store_true", help="reuse an existing namespace")
    p.add_argument("--from", dest="from_source", metavar="SOURCE",
                   help="start with a copy of a namespace's current data or of a snapshot (no seeds applied)")
    p.add_argument("--max-connections", type=_positive_int, metavar="N",
                   help="its PostgreSQL connection limit (default: [namespaces] max_connections, 20)")
    output = p.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print the namespace as JSON")
    output.add_argument("--print-env", choices=FORMATS, metavar="FORMAT",
                        help="then print its connection settings as `ns env --format FORMAT` does (dotenv, shell, "
                             "json, github, gitlab, k8s-secret), e.g. "
                             "eval \"$(localdev ns create pr-1 --print-env shell)\"")
    p = _command(ns_sub, "list", ns_list, "Namespaces with their age, expiry, labels and services (never credentials).")
    _json_flag(p)
    p.add_argument("--names", action="store_true", help="only the names, one a line (scripts, shell completion)")
    p = _command(ns_sub, "delete", ns_delete, "Delete a namespace and everything it owns in every service.")
    p.add_argument("name", metavar="NAMESPACE")
    p.add_argument("--missing-ok", action="store_true")
    p = _command(ns_sub, "gc", ns_gc, "Delete every expired (or half-created) namespace now.")
    p.add_argument("--dry-run", action="store_true", help="only list what would be deleted")
    # snapshots (localdev/snapshots.py)
    p = _command(ns_sub, "snapshot", ns_snapshot, "Snapshot a namespace inside the cluster (--as SNAP), or delete one.")
    p.add_argument("name", nargs="?", metavar="NAMESPACE")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--as", dest="as_name", metavar="SNAP", help="the snapshot's name")
    what.add_argument("--delete", metavar="SNAP", help="delete this snapshot and free its storage")
    p = _command(ns_sub, "snapshots", ns_snapshots, "The snapshots, with their source and age.")
    _json_flag(p)
    p = _command(ns_sub, "reset", ns_reset, "Reset a namespace to its seeded state (or --to SNAP), same credentials.")
    p.add_argument("name", metavar="NAMESPACE")
    p.add_argument("--to", metavar="SNAP", help="a snapshot (default: what its create made)")
    _json_flag(p)
    p = _command(ns_sub, "env", ns_env, "Print a namespace's connection settings (eval-safe with --format shell).")
    p.add_argument("name", metavar="NAMESPACE")
    p.add_argument("--format", choices=FORMATS, default="dotenv",
                   help="dotenv, shell (export lines), json; github: append to $GITHUB_ENV, masking the secrets; "
                        "gitlab: a dotenv report (docs/ci.md)")

    p = _command(sub, "seed", seed, "Apply the seeds to an existing namespace again (e.g. after an emulator lost "
                                    "its state).")
    p.add_argument("name", metavar="NAMESPACE")
    p.add_argument("--seeds", type=Path, metavar="DIR", help="fixtures directory (default: config's seeds)")
    p.add_argument("--service", action="append", help="only this service (repeatable)")
    tok_sub = _group(sub, "token", "Team mode: tokens for other machines (create, list, revoke).", within)
    p = _command(tok_sub, "create", token_create, "Make a token (printed once; stored hashed in the registry).")
    p.add_argument("name")
    p.add_argument("--role", required=True, choices=("admin", "ci", "reader"),
                   help="admin: everything; ci: its own namespaces; reader: list and status")
    p.add_argument("--ttl", help="e.g. 90d (default: never expires)")
    _json_flag(p)
    p = _command(tok_sub, "list", token_list, "Tokens: name, role, last use, expiry (never the token).")
    _json_flag(p)
    p = _command(tok_sub, "revoke", token_revoke, "Revoke a token at once.")
    p.add_argument("name")
    p = _command(sub, "login", login, "Point this machine at a shared cluster: pin its CA, check the token.")
    p.add_argument("url", help="https://HOST:PORT of the cluster's agent")
    p.add_argument("--token", help="the token (default: LOCALDEV_TOKEN)")
    p.add_argument("--ca", metavar="FILE", help="the cluster CA's certificate (default: fetched and pinned)")
    p.add_argument("--fingerprint", help="refuse unless the CA has this SHA-256 fingerprint")
    _command(sub, "logout", logout, "Forget the shared cluster `login` pointed this machine at.")

    p = _command(sub, "dashboard", dashboard, "Print a one-time URL of the cluster's read-only web page.")
    p.add_argument("--port", type=_positive_int, metavar="N", help="local listener's port (default: a free one)")
    p = _command(sub, "completion", completion, "Print a shell completion script (bash, zsh or fish).")
    p.add_argument("shell", choices=("bash", "zsh", "fish"))
    _archive_commands(sub, ns_sub)
    p = _command(sub, "compose", compose, "Write a docker-compose.yml generated from the same service specs.")
    p.add_argument("--output", type=Path, default=Path("compose/docker-compose.yml"), help="file to write")
    p = _command(sub, "k8s", k8s, "Write a Kubernetes deployment (kustomize) generated from the same service specs.")
    p.add_argument("--output", type=Path, default=Path("deploy/kubernetes"), metavar="DIR", help="folder to write")
    p.add_argument("--namespace", default="localdev", help="the Kubernetes namespace it installs into")
    return parser


def _version() -> str:
    from importlib.metadata import version

    return version("localdev")


class _VersionAction(argparse.Action):
    """argparse's "version" action, looking the version up only when asked: importlib.metadata costs every
    other command ~20 ms of start-up."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS,
                         help="show program's version number and exit")

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"localdev {_version()}")
        parser.exit()


def _help(parser, code: int):
    """A group's command: its help (`localdev` alone is a question; `localdev ns` alone a usage error)."""
    def show(_args) -> int:
        parser.print_help()
        return code
    return show


def _run(argv: list[str]) -> int:
    only = _selected(argv)
    try:
        args = build_parser(only).parse_args(argv)
    except BadInput:
        if only is None:
            raise
        args = build_parser().parse_args(argv)  # the whole parser's message (an unknown command: the known ones)
    return args.func(args) or 0


def main(argv: list[str] | None = None) -> None:
    try:
        sys.exit(_run(sys.argv[1:] if argv is None else argv))
    except LocalDevError as exc:
        _err(str(exc))
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        _err("interrupted")
        sys.exit(130)
    except OSError as exc:  # a full disk, a permission: say which file and why, not a traceback
        where = f" ({exc.filename})" if exc.filename else ""
        _err(f"{exc.strerror or exc}{where}: check free space and permissions of LOCALDEV_HOME ({_home()})")
        sys.exit(1)


if __name__ == "__main__":
    main()

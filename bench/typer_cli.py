"""localdev's command tree written with typer, for bench/cli_library.py: the same commands and options, each
calling the same function of localdev.cli, so the two differ only in the CLI library (parsing, help, dispatch).
Not shipped: `localdev` itself is argparse."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Annotated

import typer

from localdev import cli

app = typer.Typer(no_args_is_help=True, help="One shared local cluster of data services, carved into namespaces.")
ns = typer.Typer(no_args_is_help=True, help="Namespaces: create, list, env, delete, gc.")
tokens = typer.Typer(no_args_is_help=True, help="Team mode: tokens for other machines.")
app.add_typer(ns, name="ns")
app.add_typer(tokens, name="token")

Json = Annotated[bool, typer.Option("--json", help="print JSON")]


def call(fn, **kwargs):
    raise typer.Exit(fn(argparse.Namespace(**kwargs)) or 0)


@app.command(help="Start the shared cluster and wait until all are healthy.")
def up(runtime: Annotated[str | None, typer.Option()] = None,
       service: Annotated[list[str] | None, typer.Option(help="only this service (repeatable)")] = None,
       serve: Annotated[str | None, typer.Option(help="team mode: also listen on TCP")] = None, json: Json = False):
    call(cli.up, runtime=runtime, service=service, serve=serve, json=json)


@app.command(help="Stop the cluster (data kept unless --purge).")
def down(purge: Annotated[bool, typer.Option(help="also delete all data")] = False):
    call(cli.down, purge=purge)


@app.command(help="Show the cluster's services, the agent and recent supervisor events.")
def status(json: Json = False):
    call(cli.status, json=json)


@app.command(help="Print a service's log.")
def logs(service: str, follow: Annotated[bool, typer.Option("--follow", "-f")] = False,
         tail: Annotated[int | None, typer.Option("--tail", "-n")] = None):
    call(cli.logs, service=service, follow=follow, tail=tail)


@app.command(help="What is installed, what is missing, and what to do about it.")
def doctor(json: Json = False):
    call(cli.doctor, json=json)


@ns.command("create", help="Create a namespace on the shared cluster.")
def ns_create(name: Annotated[str | None, typer.Argument()] = None, ttl: Annotated[str | None, typer.Option()] = None,
              seed: Annotated[bool, typer.Option("--seed/--no-seed")] = True,
              seeds: Annotated[Path | None, typer.Option()] = None,
              label: Annotated[list[str] | None, typer.Option(help="a label (repeatable)")] = None,
              from_ci: Annotated[bool, typer.Option("--from-ci")] = False,
              exist_ok: Annotated[bool, typer.Option("--exist-ok")] = False,
              max_connections: Annotated[int | None, typer.Option()] = None, json: Json = False,
              print_env: Annotated[str | None, typer.Option()] = None):
    call(cli.ns_create, name=name, ttl=ttl, seed=seed, seeds=seeds, label=label, from_ci=from_ci, exist_ok=exist_ok,
         max_connections=max_connections, json=json, print_env=print_env)


@ns.command("list", help="Namespaces with their age, expiry, labels and services.")
def ns_list(json: Json = False, names: Annotated[bool, typer.Option("--names")] = False):
    call(cli.ns_list, json=json, names=names)


@ns.command("delete", help="Delete a namespace and everything it owns in every service.")
def ns_delete(name: str, missing_ok: Annotated[bool, typer.Option("--missing-ok")] = False):
    call(cli.ns_delete, name=name, missing_ok=missing_ok)


@ns.command("gc", help="Delete every expired (or half-created) namespace now.")
def ns_gc(dry_run: Annotated[bool, typer.Option("--dry-run")] = False):
    call(cli.ns_gc, dry_run=dry_run)


@ns.command("env", help="Print a namespace's connection settings.")
def ns_env(name: str, format: Annotated[str, typer.Option("--format")] = "dotenv"):
    call(cli.ns_env, name=name, format=format)


@app.command(help="Apply the seeds to an existing namespace again.")
def seed(name: str, seeds: Annotated[Path | None, typer.Option()] = None,
         service: Annotated[list[str] | None, typer.Option()] = None):
    call(cli.seed, name=name, seeds=seeds, service=service)


@tokens.command("create", help="Make a token.")
def token_create(name: str, role: Annotated[str, typer.Option()], ttl: Annotated[str | None, typer.Option()] = None,
                 json: Json = False):
    call(cli.token_create, name=name, role=role, ttl=ttl, json=json)


@tokens.command("list", help="Tokens: name, role, last use, expiry.")
def token_list(json: Json = False):
    call(cli.token_list, json=json)


@tokens.command("revoke", help="Revoke a token at once.")
def token_revoke(name: str):
    call(cli.token_revoke, name=name)


@app.command(help="Point this machine at a shared cluster.")
def login(url: str, token: Annotated[str | None, typer.Option()] = None, ca: Annotated[str | None, typer.Option()] = None,
          fingerprint: Annotated[str | None, typer.Option()] = None):
    call(cli.login, url=url, token=token, ca=ca, fingerprint=fingerprint)


@app.command(help="Forget the shared cluster `login` pointed this machine at.")
def logout():
    call(cli.logout)


@app.command(help="Print a one-time URL of the cluster's dashboard.")
def dashboard(port: Annotated[int | None, typer.Option()] = None):
    call(cli.dashboard, port=port)


@app.command(help="Write a docker-compose.yml generated from the same service specs.")
def compose(output: Annotated[Path, typer.Option()] = Path("compose/docker-compose.yml")):
    call(cli.compose, output=output)


def main() -> None:
    app(prog_name="localdev")


if __name__ == "__main__":
    main()

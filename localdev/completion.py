"""`localdev completion bash|zsh|fish`: shell completion generated from the CLI's own argparse parser.

shtab writes the scripts; it is imported here only, so no other command pays for it. Arguments that name a
namespace (metavar NAMESPACE) complete from the cluster: `localdev ns list --names`, which gives up after a
couple of seconds, so a tab press never hangs on an agent that does not answer. Arguments whose metavar is
DIR or FILE complete paths.
"""

from __future__ import annotations

import argparse

SHELLS = ("bash", "zsh", "fish")
NAMESPACE = "NAMESPACE"  # the metavar the CLI gives every argument that names an existing namespace
NAMES_COMMAND = "command localdev ns list --names 2>/dev/null"


def _walk(parser: argparse.ArgumentParser):
    for action in parser._actions:
        yield action
        if isinstance(action, argparse._SubParsersAction):
            for sub in set(action.choices.values()):
                yield from _walk(sub)


def script(parser: argparse.ArgumentParser, shell: str) -> str:
    import shtab

    for action in _walk(parser):
        if action.metavar == NAMESPACE:
            action.complete = shtab.cmd(NAMES_COMMAND)
        elif action.metavar == "DIR":
            action.complete = shtab.DIRECTORY
        elif action.metavar == "FILE":
            action.complete = shtab.FILE
    return shtab.complete(parser, shell=shell)

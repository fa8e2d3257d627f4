"""The first seeded `ns create` after a cold `up` against later ones: the project holds the example seeds
(`[namespaces] seeds`, as a user's does), all four services, native.

    python bench/first_create.py [--rounds 3] [--pause 1.5[,2.5...]] [--services postgres,dynamodb,aws,mongo]

Each round: a fresh cluster, `up`, then `ns create --print-env shell` sent at once (the moment `up` returns)
or after each `--pause` in seconds (a pytest session's start-up, a person typing), then five more. The agent `up`
starts makes the seed snapshot of the project's seeds by itself; a create that comes first replays instead.
A third kind of round is a laptop's next day: a cluster that has made its seed snapshot is brought `down` and
`up` again, and a create is sent at once (the snapshot survives; LocalStack's part, which keeps no state, is
taken again).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import cli, save, summary, temp_project  # noqa: E402

SEEDS = Path(__file__).parent.parent / "seeds"


def one_round(services: list[str], pause: float, restarted: bool = False) -> tuple[float, list[float]]:
    home, config, env = temp_project(services)
    shutil.copytree(SEEDS, config.parent / "seeds")
    try:
        cli(env, "up")
        time.sleep(pause)
        if restarted:  # this create waits for the seed snapshot if it is not made yet: then a new day
            cli(env, "ns", "create", "before", "--print-env", "shell")
            cli(env, "down")
            cli(env, "up")
        times = [cli(env, "ns", "create", f"first-{i}", "--print-env", "shell") for i in range(6)]
        return times[0], times[1:]
    finally:
        cli(env, "down", "--purge")
        shutil.rmtree(home.parent, ignore_errors=True)


def pauses_arg(text: str) -> list[float]:
    try:
        pauses = [float(p) for p in text.split(",")]
    except ValueError:
        pauses = []
    if not pauses or any(p < 0 for p in pauses):
        raise argparse.ArgumentTypeError(f"{text!r} is not seconds, or several separated by commas (1,2.5)")
    return pauses


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pause", default=[1.5], type=pauses_arg, help="seconds, or several: 1,2.5")
    parser.add_argument("--services", default="postgres,dynamodb,aws,mongo")
    args = parser.parse_args()
    services = args.services.split(",")
    pauses = args.pause
    kinds = (("at once", 0.0, False), *((f"after {p:g} s", p, False) for p in pauses),
             ("at once after down and up", max(pauses), True))
    firsts: dict[str, list[float]] = {label: [] for label, _, _ in kinds}
    later: list[float] = []
    for _ in range(args.rounds):
        for label, pause, restarted in kinds:
            first, rest = one_round(services, pause, restarted)
            firsts[label].append(first)
            later += rest
    rows = {f"first create {label}": summary(values) for label, values in firsts.items()}
    rows["later creates"] = summary(later)
    base = rows["later creates"]["p50"]
    print(f"seeded ns create --print-env shell after a cold up of {'+'.join(services)}; {args.rounds} rounds")
    for label, row in rows.items():
        print(f"{label:40} p50 {row['p50']:.3f} s  ({row['p50'] / base:.1f}x the later creates' p50)")
    print(f"wrote {save('first_create', {'services': services, 'pauses': pauses, 'rows': rows})}")


if __name__ == "__main__":
    main()

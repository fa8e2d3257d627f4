"""Draw bench/results/summary.png from the JSON the benchmarks wrote (run them first).

    python bench/chart.py
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def load(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def bars(ax, title: str, rows: dict, unit: str = "s") -> None:
    labels = list(rows)
    p50 = [rows[k]["p50"] for k in labels]
    p95 = [rows[k]["p95"] for k in labels]
    x = range(len(labels))
    ax.bar([i - 0.2 for i in x], p50, width=0.4, label="p50")
    ax.bar([i + 0.2 for i in x], p95, width=0.4, label="p95")
    ax.set_xticks(list(x), [textwrap.fill(label, 14) for label in labels], fontsize=7)
    ax.set_ylabel(unit)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)


def main() -> None:
    panels = []
    if (ns := load("per_pr") or load("namespaces")):
        panels.append(("bars", f"per-PR environment ({', '.join(ns['services'])})", ns["rows"]))
    if (mem := load("memory")):
        panels.append(("memory", "memory vs namespaces", mem))
    if (seed := load("seeding")):
        panels.append(("bars", "seeded ns create: template vs replay", seed["rows"]))
    if (up := load("up")):
        panels.append(("bars", "localdev up", up["rows"]))
    if not panels:
        sys.exit("no results yet: run the benchmarks first")
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2), squeeze=False)
    for ax, (kind, title, data) in zip(axes[0], panels):
        if kind == "bars":
            bars(ax, title, data)
            ax.set_yscale("log")
        else:
            steps = [r["namespaces"] for r in data["rows"]]
            ax.plot(steps, [r["shared_mb"] for r in data["rows"]], marker="o", label="one shared cluster")
            ax.plot(steps, [r["private_mb"] for r in data["rows"]], marker="s", label="a private cluster each")
            ax.set_xlabel("namespaces")
            ax.set_ylabel("MB (PSS)")
            ax.set_yscale("log")
            ax.set_title(f"{title} (+{data['per_namespace_mb']:.2f} MB each)", fontsize=10)
            ax.legend(fontsize=8)
    fig.tight_layout()
    out = RESULTS / "summary.png"
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

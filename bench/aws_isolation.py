"""Run the cross-namespace AWS matrix on both flavors and write what it measured into docs/aws.md.

    python bench/aws_isolation.py            # run tests/test_aws_isolation.py, then render
    python bench/aws_isolation.py --render   # render bench/results/aws_isolation.json only

The table sits between the `<!-- aws-isolation:begin -->` and `<!-- aws-isolation:end -->` lines of
docs/aws.md; nothing else there is touched. Cases are listed in the suite's order.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from _common import fill_block, run_suite_for_results  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "aws_isolation.json"
DOC = ROOT / "docs" / "aws.md"
BEGIN, END = "<!-- aws-isolation:begin -->", "<!-- aws-isolation:end -->"
FLAVORS = ("localstack", "ministack")


def run() -> None:
    run_suite_for_results("tests/test_aws_isolation.py", "LOCALDEV_AWS_ISOLATION_JSON", RESULTS)


def table(results: dict) -> str:
    sys.path.insert(0, str(ROOT / "tests"))
    from test_aws_isolation import CASES, OWN_CHECKS  # the matrix's order, wording and expected answers

    lines = ["| API | what is tried | AWS answers | " + " | ".join(f"`{f}`" for f in FLAVORS) + " |",
             "| --- | --- | --- | " + " | ".join("---" for _ in FLAVORS) + " |"]
    for name, (api, what, expected, _) in CASES.items():
        cells = [results.get(name, {}).get(f, "not run").replace("|", "\\|") for f in FLAVORS]
        lines.append(f"| {api} | {what} | `{expected}` | " + " | ".join(cells) + " |")
    for name, what in OWN_CHECKS.items():
        cells = [results.get(name, {}).get(f, "**failed**") for f in FLAVORS]
        lines.append(f"| own | {what} | works | " + " | ".join(cells) + " |")
    totals = []
    for f in FLAVORS:
        outcomes = [results.get(name, {}).get(f) for name in CASES]
        totals.append(f"`{f}`: {outcomes.count('denied as AWS')} of {len(CASES)} denied as AWS does")
    return "\n".join(lines) + "\n\n" + "; ".join(totals) + ".\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--render", action="store_true", help="only render the saved results")
    args = p.parse_args()
    if not args.render:
        run()
    fill_block(DOC, BEGIN, END, table(json.loads(RESULTS.read_text())))
    print(f"wrote the matrix into {DOC}")


if __name__ == "__main__":
    main()

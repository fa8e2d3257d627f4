"""Plain text tables for the CLI: a title, a header and one line per row, columns padded to their widest cell.

Not rich's Table: measuring and wrapping every cell made `ns list` of 500 namespaces take ~0.2 s of rendering
(bench/scale.py prints `ns list`), and a line per row that is never wrapped is what `grep` and `awk` expect.
"""

from __future__ import annotations


def render(title: str, columns: list[str], rows: list[list[str]]) -> str:
    widths = [max([len(c), *(len(r[i]) for r in rows)]) for i, c in enumerate(columns)]

    def line(cells: list[str]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip() + "\n"

    return title + "\n" + line(columns) + "".join(line(r) for r in rows)

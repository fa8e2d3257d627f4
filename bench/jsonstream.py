"""localdev.jsonstream against ijson's C backend on the 50k-item seed fixtures of bench/large_seeds.py:
wall time and peak memory of a fresh interpreter per run, side by side, and what each says about a
truncated file and a bad value.

    python bench/jsonstream.py [--items 50000] [--runs 5]

Each run is a subprocess that imports both readers, then reads the fixture the way the seed loaders do
(the DynamoDB file's members, its "items" array streamed; the Mongo file's top-level array), numbers as
Decimal for non-integers on both sides. Memory is the growth of the child's peak RSS while it reads: the
peak is reset after the imports (Linux: /proc/self/clear_refs), since the imports' own peak would hide
it, and RSS counts yajl's C allocations, which tracemalloc does not see. The tracemalloc peak (Python
objects only) is in the results too, from separate runs, since tracing slows pure-Python code.
"""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def read(reader: str, fixture: str, path: Path) -> int:
    """Items read; the values are built and dropped one at a time, as the seed loaders do."""
    if reader == "ours":
        from decimal import Decimal

        from localdev.jsonstream import JsonStream, iter_array

        decoder = json.JSONDecoder(parse_float=Decimal)
        if fixture == "mongo":
            return sum(1 for _ in iter_array(path, decoder))
        count = 0
        with JsonStream(path, decoder) as stream:
            for key, _line in stream.members():
                if key == "items":
                    count = sum(1 for _ in stream.array())
                else:
                    stream.value()
            stream.end()
        return count
    if reader == "ijson":
        import ijson

        assert ijson.backend == "yajl2_c", ijson.backend
        with open(path, "rb") as fh:
            return sum(1 for _ in ijson.items(fh, "item" if fixture == "mongo" else "items.item"))
    raise ValueError(reader)


def status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def child(reader: str, fixture: str, path: Path, trace: bool) -> None:
    from decimal import Decimal  # noqa: F401  (everything either reader imports, before the peak is reset)

    import ijson  # noqa: F401

    import localdev.jsonstream  # noqa: F401

    if trace:
        import tracemalloc

        tracemalloc.start()
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # peak RSS := current RSS
    rss_before = status_kb("VmRSS")
    t0 = time.perf_counter()
    count = read(reader, fixture, path)
    seconds = time.perf_counter() - t0
    out = {"count": count, "seconds": seconds, "rss_growth_kb": status_kb("VmHWM") - rss_before}
    if trace:
        out["traced_peak"] = tracemalloc.get_traced_memory()[1]
    print(json.dumps(out))


def run_child(reader: str, fixture: str, path: Path, trace: bool = False) -> dict:
    args = [sys.executable, __file__, "--child", reader, fixture, str(path)] + (["--trace"] if trace else [])
    proc = subprocess.run(args, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout)


def errors(root: Path) -> dict:
    """The message each reader gives for a DynamoDB fixture cut short, and for a bad value on line 3."""
    import ijson

    from localdev.errors import BadInput
    from localdev.jsonstream import JsonStream

    cases = {"truncated": '{"table": {},\n "items": [\n{"pk": "a"},\n{"pk": "b", "n": 1',
             "bad value": '{"table": {},\n "items": [\n{"pk": "a"}, {"pk": "b", "n": ]\n]}'}
    out = {}
    for name, text in cases.items():
        path = root / f"{name.replace(' ', '_')}.json"
        path.write_text(text)
        row = {}
        try:
            with JsonStream(path) as stream:
                for key, _ in stream.members():
                    list(stream.array()) if key == "items" else stream.value()
        except BadInput as exc:
            row["ours"] = str(exc).replace(str(root) + "/", "")
        try:
            with open(path, "rb") as fh:
                list(ijson.items(fh, "items.item"))
        except ijson.JSONError as exc:
            row["ijson"] = f"{type(exc).__name__}: {exc}"
        out[name] = row
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    import ijson
    from _common import save
    from large_seeds import write_fixtures

    work = Path(tempfile.mkdtemp(prefix="localdev-bench-jsonstream-"))
    try:
        files = write_fixtures(work, args.items)
        rows = {}
        for fixture in ("dynamodb", "mongo"):
            path = files[fixture]
            runs: dict[str, list[dict]] = {"ours": [], "ijson": []}
            for _ in range(args.runs):  # interleaved, so drift on the machine hits both alike
                for reader, results in runs.items():
                    results.append(run_child(reader, fixture, path))
            traced = {reader: statistics.median(run_child(reader, fixture, path, trace=True)["traced_peak"]
                                                for _ in range(3)) for reader in ("ours", "ijson")}
            row = {"file_mb": path.stat().st_size / 2**20, "items": args.items, "runs": args.runs}
            for reader in ("ours", "ijson"):
                assert {r["count"] for r in runs[reader]} == {args.items}, (reader, runs[reader])
                secs = [r["seconds"] for r in runs[reader]]
                row[reader] = {"seconds_median": statistics.median(secs), "seconds_min": min(secs),
                               "seconds_max": max(secs),
                               "rss_growth_kb_median": statistics.median(r["rss_growth_kb"] for r in runs[reader]),
                               "rss_growth_kb_max": max(r["rss_growth_kb"] for r in runs[reader]),
                               "traced_peak_kb": traced[reader] / 1024}
            row["time_ratio_ours_over_ijson"] = row["ours"]["seconds_median"] / row["ijson"]["seconds_median"]
            row["rss_ratio_ours_over_ijson"] = (row["ours"]["rss_growth_kb_median"]
                                                / max(row["ijson"]["rss_growth_kb_median"], 1))
            row["traced_ratio_ours_over_ijson"] = row["ours"]["traced_peak_kb"] / row["ijson"]["traced_peak_kb"]
            rows[fixture] = row
        errs = errors(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"ijson {ijson.__version__}, backend {ijson.backend}; median of {args.runs} fresh interpreters")
    print("seconds to read; peak RSS growth while reading (KiB); tracemalloc peak (KiB); ratio = ours / ijson")
    print(f"{'fixture':9} {'MiB':>4} | {'ours s':>6} {'ijson s':>7} {'ratio':>5} | {'ours RSS+':>9} {'ijson RSS+':>10} "
          f"{'ratio':>5} | {'ours traced':>11} {'ijson traced':>12} {'ratio':>5}")
    for fixture, row in rows.items():
        o, i = row["ours"], row["ijson"]
        print(f"{fixture:9} {row['file_mb']:4.1f} | {o['seconds_median']:6.3f} {i['seconds_median']:7.3f} "
              f"{row['time_ratio_ours_over_ijson']:5.2f} | {o['rss_growth_kb_median']:9.0f} "
              f"{i['rss_growth_kb_median']:10.0f} {row['rss_ratio_ours_over_ijson']:5.2f} | {o['traced_peak_kb']:11.0f} {i['traced_peak_kb']:12.0f} {row['traced_ratio_ours_over_ijson']:5.2f}")
    for case, row in errs.items():
        print(f"\n{case}:\n  ours : {row.get('ours')}\n  ijson: {row.get('ijson')!r}")
    path = save("jsonstream", {"ijson": {"version": ijson.__version__, "backend": ijson.backend},
                               "fixtures": rows, "errors": errs})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2], sys.argv[3], Path(sys.argv[4]), "--trace" in sys.argv[5:])
    else:
        main()

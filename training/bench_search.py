#!/usr/bin/env python3
"""Compare the search throughput of two qdse builds on the same explorations, and check that they
choose the same thing. Run from the repository root:

    python3 training/bench_search.py OLD_QDSE NEW_QDSE [--out DIR] [--runs default,seq14-descent]

e.g. `python3 training/bench_search.py /tmp/qdse-before target/release/qdse` (copy the old binary
aside before rebuilding). For each run below, OLD then NEW are run back to back, each into its own
folder under --out (default: a fresh temporary folder, removed at the end unless --keep):

    default        qdse explore --out DIR                     (no config: configs/default.toml)
    seq14-descent  qdse explore configs/seq14-fashion.toml --strategy descent --out DIR

From each run folder's summary.json (src/run_folder.rs, RunSummary) it reads `evaluations` (rows
of evaluations.csv), `evaluations_run` (evaluations the engine ran to the end),
`evaluations_stopped_early` (ones cut short by early stopping) and `wall_seconds` (the whole
explore: search, confirmation, reports), and prints per build:

    rows/s    = evaluations / wall_seconds
    engine/s  = (evaluations_run + evaluations_stopped_early) / wall_seconds

with the NEW/OLD ratio of each (above 1: NEW is faster). It then compares the two folders'
chosen.toml and pareto.csv byte for byte and prints `identical` or `DIFFERENT` for each;
the exit status is 1 if any differs (or a file is missing), 0 otherwise.

The machine should be otherwise idle: the times are wall-clock. The default explore takes ~20 s,
the 14-conv descent several minutes, per build.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

RUNS = {
    "default": [],
    "seq14-descent": ["configs/seq14-fashion.toml", "--strategy", "descent"],
}
COMPARED = ["chosen.toml", "pareto.csv"]


def explore(qdse, args, out):
    """Run one exploration into `out`; return its summary.json."""
    cmd = [qdse, "explore", *args, "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"error: `{' '.join(cmd)}` exited with {proc.returncode}:\n{proc.stderr.strip()}")
    summary_path = out / "summary.json"
    if not summary_path.is_file():
        sys.exit(f"error: `{' '.join(cmd)}` wrote no {summary_path}")
    summary = json.loads(summary_path.read_text())
    if not summary.get("wall_seconds") or summary.get("evaluations") is None:
        sys.exit(f"error: {summary_path} has no wall_seconds or evaluations")
    return summary


def rates(s):
    wall = s["wall_seconds"]
    engine = (s.get("evaluations_run") or 0) + (s.get("evaluations_stopped_early") or 0)
    return s["evaluations"] / wall, engine / wall, engine


def same_file(a, b):
    if not a.is_file() or not b.is_file():
        return "MISSING"
    return "identical" if a.read_bytes() == b.read_bytes() else "DIFFERENT"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("old", help="the old qdse binary")
    ap.add_argument("new", help="the new qdse binary")
    ap.add_argument("--out", type=Path, default=None, help="folder for the run folders (kept)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary run folders")
    ap.add_argument("--runs", default=",".join(RUNS), help=f"comma-separated, of: {', '.join(RUNS)}")
    a = ap.parse_args()

    builds = {"old": a.old, "new": a.new}
    for label, path in builds.items():
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            sys.exit(f"error: {label} qdse `{path}` is not an executable file")
    runs = [r.strip() for r in a.runs.split(",") if r.strip()]
    for r in runs:
        if r not in RUNS:
            sys.exit(f"error: unknown run `{r}` (known: {', '.join(RUNS)})")

    root = a.out or Path(tempfile.mkdtemp(prefix="bench-search-"))
    root.mkdir(parents=True, exist_ok=True)
    print(f"old: {a.old}\nnew: {a.new}\nrun folders: {root}\n")
    print("| run | build | rows | engine evaluations | wall s | rows/s | engine evals/s |")
    print("|---|---|---|---|---|---|---|")
    results, all_same = [], True
    for run in runs:
        got = {}
        for label, qdse in builds.items():
            out = root / f"{run}-{label}"
            if out.exists():
                shutil.rmtree(out)
            summary = explore(qdse, RUNS[run], out)
            rows_s, engine_s, engine = rates(summary)
            got[label] = (rows_s, engine_s, out)
            print(f"| {run} | {label} | {summary['evaluations']} | {engine} | {summary['wall_seconds']:.1f} "
                  f"| {rows_s:.2f} | {engine_s:.2f} |", flush=True)
        checks = {f: same_file(got["old"][2] / f, got["new"][2] / f) for f in COMPARED}
        all_same &= all(v == "identical" for v in checks.values())
        results.append((run, got["new"][0] / got["old"][0], got["new"][1] / got["old"][1], checks))
    print("\n| run | new/old rows/s | new/old engine evals/s | " + " | ".join(COMPARED) + " |")
    print("|---|---|---|" + "---|" * len(COMPARED))
    for run, r_rows, r_engine, checks in results:
        print(f"| {run} | {r_rows:.2f} | {r_engine:.2f} | " + " | ".join(checks[f] for f in COMPARED) + " |")
    if a.out is None and not a.keep:
        shutil.rmtree(root)
    sys.exit(0 if all_same else 1)


if __name__ == "__main__":
    main()

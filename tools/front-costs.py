#!/usr/bin/env python3
"""Price a run's Pareto front under two cost profiles and say how far the rankings agree.

For docs/cost-models.md, "Synthesized profiles": every point of RUN/pareto.csv is written as a
point file and priced with `qdse cost --json` under profile A and profile B (a formula profile
and its synthesized counterpart). Prints, in Markdown, each front point's primary cost under
both, its rank under each, and how many pairs of front points keep or swap their cost order
(Kendall's tau-a: 1 when every pair keeps it).

    tools/front-costs.py RUN_DIR CONFIG PRIMARY PROFILE_A PROFILE_B [--qdse BIN]

The pricing is qdse's own (`qdse cost`); this script only converts the front's keys (the
`key` column, see src/search/score.rs `key`) into point files and compares ranks.
"""
import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile

ROUNDING = {"HalfEven": "half-even", "HalfUp": "half-up", "Floor": "floor", "HalfAway": "half-away"}
OVERFLOW = {"Saturate": "saturate", "Wrap": "wrap"}
RANGE = {"TwosComplement": "twos-complement", "Symmetric": "symmetric"}


def fmt(code, param):
    """`s8.5` -> TOML inline table (weights and biases are always signed: no `signed` key;
    `s8.5/c`: weights with per-channel offsets)."""
    per_channel = code.endswith("/c")
    code = code.removesuffix("/c")
    signed, rest = code[0] == "s", code[1:]
    bits, frac = rest.split(".", 1)
    if param:
        pc = ", per_channel = true" if per_channel else ""
        return f"{{ bits = {bits}, frac = {frac}{pc} }}"
    return f"{{ bits = {bits}, frac = {frac}, signed = {'true' if signed else 'false'} }}"


def point_file(key, names):
    parts = key.split(";")
    rnd, ovf, rng = parts[0].split("/")
    out = [f'rounding = "{ROUNDING[rnd]}"', f'overflow = "{OVERFLOW[ovf]}"', f'range = "{RANGE[rng]}"']
    out.append(f"input = {fmt(parts[1].split('=', 1)[1], False)}")
    for part in parts[2:]:
        idx, spec = part.split("=", 1)
        out.append("[[layer]]")
        out.append(f'name = "{names[int(idx[1:])]}"')
        for item in spec.split(","):
            kind, code = item[0], item[1:]
            if kind == "w":
                out.append(f"weights = {fmt(code, True)}")
            elif kind == "b":
                out.append(f"bias = {fmt(code, True)}")
            elif kind == "o":
                out.append(f"output = {fmt(code, False)}")
            elif kind == "a":
                out.append(f"accumulator = {code}")
    return "\n".join(out) + "\n"


def layer_names(run):
    """Layer names in key order: the run's chosen.toml lists every quantized layer in order."""
    names = []
    with open(os.path.join(run, "chosen.toml")) as f:
        for line in f:
            if line.startswith("name = "):
                names.append(line.split("=", 1)[1].strip().strip('"'))
    return names


def pair_counts(xs, ys):
    """Pairs of front points that keep their cost order under both profiles, swap it, or tie
    under one or both (Kendall's tau-a is (kept - swapped) / pairs)."""
    kept = swapped = tied = 0
    for i in range(len(xs)):
        for j in range(i + 1, len(xs)):
            a, b = xs[i] - xs[j], ys[i] - ys[j]
            if a == 0 or b == 0:
                tied += 1
            elif (a > 0) == (b > 0):
                kept += 1
            else:
                swapped += 1
    return kept, swapped, tied


def ranks(xs):
    """1 + how many points cost strictly less (tied points share a rank)."""
    return [1 + sum(1 for y in xs if y < x) for x in xs]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run")
    ap.add_argument("config")
    ap.add_argument("primary", help="objective to rank by, e.g. area_um2")
    ap.add_argument("profile_a")
    ap.add_argument("profile_b")
    ap.add_argument("--qdse", default="target/release/qdse")
    args = ap.parse_args()
    names = layer_names(args.run)
    with open(os.path.join(args.run, "pareto.csv")) as f:
        front = list(csv.DictReader(f))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in front:
            p = os.path.join(tmp, f"{r['id']}.toml")
            with open(p, "w") as f:
                f.write(point_file(r["key"], names))
            cost = []
            for prof in (args.profile_a, args.profile_b):
                out = subprocess.run(
                    [args.qdse, "cost", args.config, "--point", p, "--profile", prof, "--json"],
                    check=True, capture_output=True, text=True,
                ).stdout
                d = json.loads(out)
                cost.append(next(iter(d.values()))["totals"]["chosen"][args.primary])
            rows.append((r["id"], float(r["loss_search"]), r["chosen"], cost[0], cost[1]))
    a, b = [r[3] for r in rows], [r[4] for r in rows]
    ra, rb = ranks(a), ranks(b)
    print(f"| id | search loss | chosen | {args.primary} ({args.profile_a}) | rank | {args.primary} ({args.profile_b}) | rank |")
    print("|---|---|---|---|---|---|---|")
    for (i, loss, chosen, x, y), p, q in zip(rows, ra, rb):
        print(f"| {i} | {100 * loss:.2f}% | {chosen} | {x:.0f} | {p} | {y:.0f} | {q} |")
    kept, swapped, tied = pair_counts(a, b)
    pairs = kept + swapped + tied
    tau = (kept - swapped) / pairs if pairs else 1.0
    print(f"\n{len(rows)} front points, {pairs} pairs: {kept} keep their cost order under both profiles, "
          f"{swapped} swap it, {tied} tie under one or both; Kendall's tau-a {tau:.3f}.")

if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env bash
# Which paired measure should a search decide by? Runs a search deciding by top-1 loss (the old
# signal) with `--measure-signals`, which scores every evaluation on the search and the holdout
# images with each measure (top-1 loss, flip rate, KL divergence, soft loss), then prints for each:
#   - its rank correlation (Spearman) with the holdout top-1 loss over the run's evaluations;
#   - its test-retest rank correlation (the same measure on search vs holdout images), which is
#     1 for a noiseless measure and falls as image sampling noise grows.
# Usage: reports/signal-study.sh CONFIG [STRATEGY]   (default strategy: descent). See reports/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
config=$1
strategy=${2:-descent}
cargo build --release --quiet
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# The same config, deciding by top-1 loss; relative paths keep pointing at the repository.
sed -E 's/^signal *=.*//; s/^\[search\]$/[search]\nsignal = "top1"/' "$config" |
  sed "s#\"\.\./#\"$PWD/#g" > "$tmp/top1.toml"
target/release/qdse explore "$tmp/top1.toml" --strategy "$strategy" --out "$tmp/run" --measure-signals > /dev/null
python3 - "$tmp/run/signals.csv" "$config" <<'PY'
import csv, math, sys
rows = list(csv.DictReader(open(sys.argv[1])))
def ranks(v):
    order = sorted(range(len(v)), key=v.__getitem__)
    r = [0.0] * len(v)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and v[order[j + 1]] == v[order[i]]:
            j += 1
        for k in range(i, j + 1):
            r[order[k]] = (i + j) / 2
        i = j + 1
    return r
def spearman(a, b):
    a, b = ranks(a), ranks(b)
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    cov = sum((x - ma) * (y - mb) for x, y in zip(a, b))
    return cov / math.sqrt(sum((x - ma) ** 2 for x in a) * sum((y - mb) ** 2 for y in b))
holdout = [float(r["loss_holdout"]) for r in rows]
print(f"{sys.argv[2]}: {len(rows)} evaluations")
print("measure     vs holdout loss   test-retest")
for m, name in [("loss", "top-1 loss"), ("flip", "flip rate"), ("kl", "KL"), ("soft", "soft loss")]:
    s = [float(r[m + "_search"]) for r in rows]
    h = [float(r[m + "_holdout"]) for r in rows]
    print(f"{name:<11} {spearman(s, holdout):>15.3f} {spearman(s, h):>13.3f}")
PY

#!/usr/bin/env bash
# How noisy is the search split? Re-narrow one over-wide tensor of the seq14-fashion nsga2 point
# (the second conv's 11-bit weights, 40 % of its multiplication cost) step by step, keeping its
# range, and measure search and holdout accuracy with `qdse eval`. See reports/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
point=reports/seq14-fashion-nsga2/chosen.toml
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "weights bits/frac   search    holdout"
for bf in "11 12" "10 11" "9 10" "8 9" "7 8" "6 7"; do
  read -r b f <<<"$bf"
  # The first [layer.weights] block with 11 bits / frac 12 is that layer's.
  awk -v b="$b" -v f="$f" '
    /^\[layer.weights\]/ { w = 1 }
    w && /^bits = 11$/ && !done { pending = 1; next }
    pending && /^frac = 12$/ { print "bits = " b; print "frac = " f; pending = 0; done = 1; w = 0; next }
    pending { print "bits = 11"; pending = 0 }
    /^\[/ && !/^\[layer.weights\]/ { w = 0 }
    { print }
    END { exit !done }' "$point" > "$tmp/p.toml" || { echo "$point has no 11-bit / frac 12 weights" >&2; exit 1; }
  fixed=$(cargo run --release --quiet -- eval configs/seq14-fashion.toml --point "$tmp/p.toml" | grep -E '^fixed +[0-9]')
  printf '%17s %s\n' "$b / $f" "${fixed#fixed}"
done

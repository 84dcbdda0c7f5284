#!/usr/bin/env bash
# Where does the search-vs-holdout gap come from? For each shipped config, pre-declared uniform
# b-bit no-clip points (no search chose them) are scored on the search and the holdout images
# (a gap here is split difference or noise, not selection), and the same points are rebuilt from
# ranges calibrated on every image (a change in holdout loss is what calibration on more data
# buys). See reports/README.md, "Where the gap came from".
# Usage: reports/gap-decomposition.sh [CONFIG ...]   (default: every shipped config but default.toml)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
q=target/release/qdse
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
configs=("$@")
[ ${#configs[@]} -gt 0 ] || configs=(configs/lenet5-*.toml configs/seq14-*.toml configs/branched-*.toml)
loss() { python3 -c "import sys; f, q = map(float, sys.argv[1:]); print(f'{100 * (f - q) / f:.2f}%')" "$@"; }
acc() { "$q" eval "$1" --point "$2" --json | python3 -c "import json, sys; d = json.load(sys.stdin); print(d['float']['$3'], d['fixed']['$3'])"; }
echo "config bits | search loss | holdout loss | holdout loss, calibrated on all images | offsets changed"
for c in "${configs[@]}"; do
  n=$("$q" eval "$c" --json | python3 -c "import json, sys; s = json.load(sys.stdin)['samples']; print(s['search'] + s.get('confirm', 0) + s['holdout'])")
  # The same data, calibrated on every image (legacy split keeping one image for the holdout).
  sed -E '/^(validation|holdout|confirm_samples|search_samples) *=/d; s/^\[data\]$/[data]\nsearch_samples = '"$((n - 1))"'/' "$c" > "$tmp/all.toml"
  sed -i "s#\"\.\./#\"$PWD/#g" "$tmp/all.toml"
  for b in 5 6 8; do
    "$q" uniform "$c" --bits "$b" > "$tmp/p.toml"
    "$q" uniform "$tmp/all.toml" --bits "$b" > "$tmp/p-all.toml"
    read -r fs qs <<<"$(acc "$c" "$tmp/p.toml" search)"
    read -r fh qh <<<"$(acc "$c" "$tmp/p.toml" holdout)"
    read -r _ qa <<<"$(acc "$c" "$tmp/p-all.toml" holdout)"
    changed=$(diff "$tmp/p.toml" "$tmp/p-all.toml" | grep -c '^<.*frac' || true)
    echo "$(basename "$c" .toml) $b | $(loss "$fs" "$qs") | $(loss "$fh" "$qh") | $(loss "$fh" "$qa") | $changed"
  done
done

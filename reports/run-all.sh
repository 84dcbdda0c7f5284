#!/usr/bin/env bash
# Regenerate the run folder of every shipped config (except default, which is lenet5-fashion)
# and the results table in reports/table.md. Usage: reports/run-all.sh [config ...]
set -euo pipefail
cd "$(dirname "$0")/.."
configs=("$@")
[ ${#configs[@]} -gt 0 ] || configs=(configs/lenet5-fashion.toml configs/lenet5-mnist.toml configs/seq14-fashion.toml configs/seq14-mnist.toml configs/branched-fashion.toml configs/branched-mnist.toml)
for c in "${configs[@]}"; do
  name=$(basename "$c" .toml)
  cargo run --release --quiet -- explore "$c" --out "reports/$name"
done
dirs=()
for d in reports/*/; do [ -f "$d/summary.json" ] && dirs+=("$d"); done
cargo run --release --quiet -- report --table "${dirs[@]}" > reports/table.md
echo "wrote reports/table.md"

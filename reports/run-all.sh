#!/usr/bin/env bash
# Regenerate the run folders of reports/ and the results table in reports/table.md.
# Usage: reports/run-all.sh [RUN ...]   (RUN = a folder name below; default: all of them)
set -euo pipefail
cd "$(dirname "$0")/.."
# folder  config  strategy  [extra explore flags]
runs=(
  "lenet5-fashion          configs/lenet5-fashion.toml   paper"
  "lenet5-fashion-descent  configs/lenet5-fashion.toml   descent"
  "lenet5-fashion-nsga2    configs/lenet5-fashion.toml   nsga2   --budget 1500"
  "lenet5-mnist            configs/lenet5-mnist.toml     paper"
  "lenet5-mnist-descent    configs/lenet5-mnist.toml     descent"
  "seq14-fashion-descent   configs/seq14-fashion.toml    descent"
  "seq14-mnist             configs/seq14-mnist.toml      paper"
  "seq14-mnist-descent     configs/seq14-mnist.toml      descent"
  "branched-mnist          configs/branched-mnist.toml   paper"
  "branched-mnist-descent  configs/branched-mnist.toml   descent"
  "branched-fashion-descent configs/branched-fashion.toml descent"
  "mbv2-fashion-descent    configs/mbv2-fashion.toml     descent"
  "mbv2-fashion-pc-descent configs/mbv2-fashion-pc.toml  descent"
  "mbv2-fashion-nsga2      configs/mbv2-fashion.toml     nsga2   --budget 1500"
  "mbv2-fashion-pc-nsga2   configs/mbv2-fashion-pc.toml  nsga2   --budget 1500"
  "mbv2-fashion-mem-descent    configs/mbv2-fashion-mem.toml     descent"
  "mbv2-fashion-pc-mem-descent configs/mbv2-fashion-pc-mem.toml  descent"
  "mbv2-fashion-mem-nsga2      configs/mbv2-fashion-mem.toml     nsga2   --budget 1500"
  "mbv2-fashion-pc-mem-nsga2   configs/mbv2-fashion-pc-mem.toml  nsga2   --budget 1500"
  "resnet-fashion-descent  configs/resnet-fashion.toml   descent"
  "resnet-fashion-pc-descent configs/resnet-fashion-pc.toml descent"
)
for r in "${runs[@]}"; do
  read -r name config strategy extra <<<"$r"
  if [ $# -gt 0 ] && [[ " $* " != *" $name "* ]]; then continue; fi
  # shellcheck disable=SC2086
  cargo run --release --quiet -- explore "$config" --strategy "$strategy" --out "reports/$name" $extra
done
dirs=()
for d in reports/*/; do [ -f "$d/summary.json" ] && dirs+=("$d"); done
cargo run --release --quiet -- report --table "${dirs[@]}" > reports/table.md
echo "wrote reports/table.md"

#!/usr/bin/env bash
# Does the chosen point hold on the holdout split across strategies and seeds? Runs LeNet-5 on
# both data sets with nsga2 under seeds 1-3 (paper and descent use no random numbers: their
# shipped runs are their only outcome) into a scratch folder and writes reports/coverage.md, the
# results table over those runs and the shipped ones (run reports/run-all.sh first), with how
# many keep the holdout loss within budget. See reports/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
dirs=()
for data in fashion mnist; do
  for seed in 1 2 3; do
    out="$tmp/lenet5-$data-nsga2-seed$seed"
    target/release/qdse explore "configs/lenet5-$data.toml" --strategy nsga2 --budget 1500 --seed "$seed" --out "$out" > /dev/null
    dirs+=("$out")
  done
done
# The shipped runs: paper and descent on LeNet-5 (deterministic: any seed gives the same run),
# and every seq14 / branched config.
for d in reports/*/; do [ -f "$d/summary.json" ] && dirs+=("${d%/}"); done
table=$(target/release/qdse report --table "${dirs[@]}")
runs=$(tail -n +3 <<<"$table" | grep -c '^|')
held=$(grep -c '| yes |' <<<"$table" || true)
{
  echo "# Coverage: chosen points on the holdout split"
  echo
  echo "Made by \`reports/coverage.sh\`: LeNet-5 nsga2 (budget 1500) under seeds 1-3 on both data sets, and the shipped runs of reports/ (LeNet-5 paper and descent use no random numbers: a seed does not change them)."
  echo
  echo "**$held of $runs runs keep the chosen point's holdout loss within the budget.**"
  echo
  echo "$table"
} > reports/coverage.md
echo "wrote reports/coverage.md"

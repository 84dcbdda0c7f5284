#!/usr/bin/env bash
# How noisy is each paired measure? Narrow one tensor of a point step by step (the first layer's
# weights by default, keeping their range: bits and offset drop together) and print every paired
# measure against the float network on the search and the holdout images (`qdse eval --json`).
# A measure whose search value jumps about while its holdout value moves smoothly is noise the
# search would chase. See reports/README.md.
# Usage: reports/noise-probe.sh CONFIG POINT [LAYER_INDEX]
set -euo pipefail
cd "$(dirname "$0")/.."
config=$1
point=$2
layer=${3:-0}
cargo build --release --quiet
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 - "$point" "$layer" "$tmp" > "$tmp/list" <<'PY'
import re, sys
text, layer, tmp = open(sys.argv[1]).read(), int(sys.argv[2]), sys.argv[3]
# The [layer.weights] block of the chosen [[layer]]: its bits and frac lines.
blocks = [m.start() for m in re.finditer(r"^\[\[layer\]\]", text, re.M)]
start = blocks[layer]
end = blocks[layer + 1] if layer + 1 < len(blocks) else len(text)
part = text[start:end]
m = re.search(r"\[layer\.weights\]\nbits = (\d+)\nfrac = (-?\d+)", part)
if not m:
    sys.exit(f"layer {layer} of {sys.argv[1]} has no [layer.weights] bits/frac block")
bits, frac = int(m.group(1)), int(m.group(2))
for k in range(0, min(bits - 2, 6)):
    new = part[: m.start()] + f"[layer.weights]\nbits = {bits - k}\nfrac = {frac - k}" + part[m.end():]
    open(f"{tmp}/p{k}.toml", "w").write(text[:start] + new + text[end:])
    print(f"{tmp}/p{k}.toml {bits - k}/{frac - k}")
PY
echo "weights      | top-1 loss        | soft loss         | flip rate         | KL (mnat)"
echo "bits / frac  | search   holdout  | search   holdout  | search   holdout  | search  holdout"
while read -r f label; do
  target/release/qdse eval "$config" --point "$f" --json > "$tmp/e.json"
  python3 - "$tmp/e.json" "$label" <<'PY'
import json, re, sys
d = json.load(open(sys.argv[1]))["paired"]
s, h = d["search"], d["holdout"]
row = lambda k, scale: f"{100 * s[k] if scale else 1000 * s[k]:7.3f}  {100 * h[k] if scale else 1000 * h[k]:7.3f}"
print(f"{sys.argv[2]:<12} | {row('loss', 1)}  | {row('soft_loss', 1)}  | {row('flip_rate', 1)}  | {row('kl', 0)}")
PY
done < "$tmp/list"

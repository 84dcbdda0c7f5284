#!/usr/bin/env python3
"""Time qdse's two engines and ONNX Runtime on the same models, back to back, and print the
ratio of qdse's bit-true fixed-point rate to ONNX Runtime's float rate (the foundation issue's
benchmark). Run from the repository root after `cargo build --release`:

    python3 training/bench_compare.py [configs/lenet5-fashion.toml configs/seq14-fashion.toml ...]

Each side is the best of --repeats runs over the config's whole data set (the 10k Fashion-MNIST
test set for the shipped *-fashion configs). ONNX Runtime: training/bench_ort.py (2 threads,
batches of 100, inference only). qdse: `qdse bench CONFIG --json` (rayon over the machine's
cores; preprocessing and input quantization included in its time).
"""
import argparse
import json
import subprocess
import sys
import tomllib
from pathlib import Path

DEFAULT = ["configs/lenet5-fashion.toml", "configs/seq14-fashion.toml", "configs/branched-fashion.toml",
           "configs/mbv2-fashion.toml", "configs/resnet-fashion.toml"]


def ort_rate(model, images, labels, repeats):
    best = 0.0
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "training/bench_ort.py", model, "--images", images, "--labels", labels],
                             check=True, capture_output=True, text=True).stdout
        best = max(best, json.loads(out)["images_per_s"])
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("configs", nargs="*", default=DEFAULT)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--qdse", default="target/release/qdse")
    a = ap.parse_args()
    print("| model | images | ONNX Runtime float | qdse float | qdse fixed 8-bit | fixed / ORT |")
    print("|---|---|---|---|---|---|")
    for cfg in a.configs:
        settings = tomllib.loads(Path(cfg).read_text())
        base = Path(cfg).parent
        model = str(base / settings["model"]["path"])
        images = str(base / settings["data"]["images"])
        labels = str(base / settings["data"]["labels"])
        ort = ort_rate(model, images, labels, a.repeats)
        out = subprocess.run([a.qdse, "bench", cfg, "--json", "--repeats", str(a.repeats)],
                             check=True, capture_output=True, text=True).stdout
        t = json.loads(out)["throughput"]
        print(f"| {Path(model).stem} | {t['images']} | {ort:,.0f} img/s | {t['float_images_per_s']:,.0f} img/s "
              f"| {t['fixed_images_per_s']:,.0f} img/s | {t['fixed_images_per_s'] / ort:.2f} |")


if __name__ == "__main__":
    main()

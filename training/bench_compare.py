#!/usr/bin/env python3
"""Time qdse's two engines and ONNX Runtime on the same models, back to back, and print the
ratio of qdse's bit-true fixed-point rate to ONNX Runtime's float rate (the foundation issue's
benchmark). Run from the repository root after `cargo build --release`:

    python3 training/bench_compare.py [configs/lenet5-fashion.toml configs/seq14-fashion.toml ...]
    python3 training/bench_compare.py --threads 1,2 [CONFIGS ...]   # thread scaling

Each side is the best of --repeats runs over the config's whole data set (the 10k Fashion-MNIST
test set for the shipped *-fashion configs). ONNX Runtime: training/bench_ort.py (batches of 100,
inference only; 2 intra-op threads unless --threads). qdse: `qdse bench CONFIG --json` (rayon over
the machine's cores unless --threads; preprocessing and input quantization included in its time).

--threads N1,N2,...: every model is timed once per thread count N, ONNX Runtime with
intra_op_num_threads=N and qdse with RAYON_NUM_THREADS=N; the first table then has one row per
model and N, and a second table gives, for each engine, its rate at each later N divided by its
rate at the first N (the scaling; 2.00 from 1 to 2 threads is perfect).
"""
import argparse
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

DEFAULT = ["configs/lenet5-fashion.toml", "configs/seq14-fashion.toml", "configs/branched-fashion.toml",
           "configs/mbv2-fashion.toml", "configs/resnet-fashion.toml", "configs/strided-fashion.toml",
           "configs/bnrelu-fashion.toml"]


def run_json(cmd, env=None):
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        sys.exit(f"error: `{' '.join(cmd)}` exited with {proc.returncode}:\n{proc.stderr.strip()}")
    return json.loads(proc.stdout)


def ort_rate(model, images, labels, repeats, threads):
    cmd = [sys.executable, "training/bench_ort.py", model, "--images", images, "--labels", labels]
    if threads is not None:
        cmd += ["--threads", str(threads)]
    return max(run_json(cmd)["images_per_s"] for _ in range(repeats))


def qdse_rates(qdse, cfg, repeats, threads):
    env = dict(os.environ)
    if threads is not None:
        env["RAYON_NUM_THREADS"] = str(threads)
    t = run_json([qdse, "bench", cfg, "--json", "--repeats", str(repeats)], env)["throughput"]
    return t["images"], t["float_images_per_s"], t["fixed_images_per_s"]


def thread_list(text):
    try:
        ns = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"`{text}` is not a comma-separated list of thread counts")
    if not ns or any(n < 1 for n in ns):
        raise argparse.ArgumentTypeError(f"`{text}`: thread counts must be at least 1")
    return ns


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("configs", nargs="*", default=DEFAULT)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--qdse", default="target/release/qdse")
    ap.add_argument("--threads", type=thread_list, default=None,
                    help="comma-separated thread counts, e.g. 1,2 (default: ORT 2, qdse rayon's default)")
    a = ap.parse_args()
    if not (os.path.isfile(a.qdse) and os.access(a.qdse, os.X_OK)):
        sys.exit(f"error: `{a.qdse}` is not an executable file (run `cargo build --release` first)")
    threads = a.threads or [None]

    print("| model | threads | images | ONNX Runtime float | qdse float | qdse fixed 8-bit | fixed / ORT |")
    print("|---|---|---|---|---|---|---|")
    scaling = []
    for cfg in a.configs:
        if not Path(cfg).is_file():
            sys.exit(f"error: no config `{cfg}`")
        settings = tomllib.loads(Path(cfg).read_text())
        base = Path(cfg).parent
        model = str(base / settings["model"]["path"])
        images = str(base / settings["data"]["images"])
        labels = str(base / settings["data"]["labels"])
        per_n = []
        for n in threads:
            ort = ort_rate(model, images, labels, a.repeats, n)
            count, flt, fixed = qdse_rates(a.qdse, cfg, a.repeats, n)
            per_n.append((ort, flt, fixed))
            shown = "default" if n is None else str(n)
            print(f"| {Path(model).stem} | {shown} | {count} | {ort:,.0f} img/s | {flt:,.0f} img/s "
                  f"| {fixed:,.0f} img/s | {fixed / ort:.2f} |", flush=True)
        scaling.append((Path(model).stem, per_n))

    if len(threads) > 1:
        first = threads[0]
        steps = [f"{first} -> {n}" for n in threads[1:]]
        print(f"\nScaling (rate at N threads / rate at {first}):\n")
        print("| model | threads | ONNX Runtime float | qdse float | qdse fixed 8-bit |")
        print("|---|---|---|---|---|")
        for stem, per_n in scaling:
            base_rates = per_n[0]
            for step, rates in zip(steps, per_n[1:]):
                print(f"| {stem} | {step} | " + " | ".join(f"{r / b:.2f}" for r, b in zip(rates, base_rates)) + " |")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Check that qdse imports what both PyTorch exporters write for embedded-class nets.

Usage (from the repository root, after `cargo build --release`):

    python3 training/check_exports.py [--qdse target/release/qdse] [--images 2000]

The shipped mbv2 and resnet nets, and small nets written each of the ways a
PyTorch user spells ReLU6 (nn.ReLU6, F.hardtanh(0, 6), clamp(0, 6)), global average pooling
(AdaptiveAvgPool2d(1), mean over (2, 3) with and without keepdim) and the flatten head
(view, torch.flatten, nn.Flatten, reshape), each around a depthwise conv (group = channels)
and an Add of two conv branches, are exported with the legacy TorchScript exporter
(dynamo=False, opset 13, BN kept) and with torch.onnx.export's defaults (dynamo=True, weights
in <model>.onnx.data). Every file is run through `qdse inspect` and `qdse eval --json` on the
first --images Fashion-MNIST validation images; qdse's float accuracy must equal onnxruntime's on
the same file and images. The small nets are trained for 300 batches on the other validation
images (so that their classes vary from image to image; a few seconds each). The shipped nets are retrained for this (about 2 + 1.5 minutes on
one thread) unless --skip-shipped. Prints one line per file; exits 1 if any check fails.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import train  # noqa: E402  (the shipped architectures and the exporters' settings)

VAL_IMAGES = os.path.join(REPO, "data", "fashion-mnist", "val-images-idx3-ubyte.gz")
VAL_LABELS = os.path.join(REPO, "data", "fashion-mnist", "val-labels-idx1-ubyte.gz")


class Variant(nn.Module):
    """stem conv s2 -> BN -> act; depthwise 3x3 (group = channels) -> BN -> act; two 1x1 branches
    (conv -> BN each) added; act; global average pool; flatten; fc."""

    def __init__(self, act, pool, flat):
        super().__init__()
        self.act, self.pool, self.flat = act, pool, flat
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(8))
        self.dw = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False), nn.BatchNorm2d(8))
        self.a = nn.Sequential(nn.Conv2d(8, 16, 1, bias=False), nn.BatchNorm2d(16))
        self.b = nn.Sequential(nn.Conv2d(8, 16, 1, stride=1, bias=False), nn.BatchNorm2d(16))
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(16, 10)

    def relu6(self, x):
        if self.act == "ReLU6":
            return F.relu6(x)
        if self.act == "hardtanh":
            return F.hardtanh(x, 0.0, 6.0)
        return torch.clamp(x, 0.0, 6.0)

    def forward(self, x):
        x = self.relu6(self.stem(x))
        x = self.relu6(self.dw(x))
        x = self.relu6(self.a(x) + self.b(x))
        if self.pool == "adaptive":
            x = F.adaptive_avg_pool2d(x, 1)
        elif self.pool == "mean-keepdim":
            x = x.mean((2, 3), keepdim=True)
        else:
            x = x.mean((2, 3))
        if self.flat == "view":
            x = x.view(x.size(0), -1)
        elif self.flat == "flatten":
            x = torch.flatten(x, 1)
        elif self.flat == "nn.Flatten":
            x = self.flatten(x)
        else:
            x = x.reshape(x.shape[0], -1)
        return self.fc(x)


VARIANTS = [
    ("ReLU6", "adaptive", "view"),
    ("hardtanh", "mean-keepdim", "flatten"),
    ("clamp", "mean", "nn.Flatten"),
    ("ReLU6", "mean", "reshape"),
]


def fitted_variant(spec, seed, x, y, steps=300, batch=64):
    """A variant trained briefly (Adam, `steps` batches) on images the check does not use, so that
    its predictions vary from image to image and agreeing classes mean something."""
    torch.manual_seed(seed)
    m = Variant(*spec)
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    gen = torch.Generator().manual_seed(seed)
    m.train()
    for _ in range(steps):
        idx = torch.randint(len(xt), (batch,), generator=gen)
        loss = F.cross_entropy(m(xt[idx]), yt[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return m.eval()


def export_both(model, folder, name):
    legacy = os.path.join(folder, name + "-legacy.onnx")
    train.export_onnx(model, legacy)
    dynamo = os.path.join(folder, name + "-dynamo.onnx")
    train.export_dynamo(model, dynamo)
    return [("legacy", legacy), ("dynamo", dynamo)]


def ops(path):
    import onnx
    m = onnx.load(path, load_external_data=False)
    return sorted({n.op_type for n in m.graph.node})


def check(qdse, path, n, x, y, folder):
    name = os.path.basename(path)
    r = subprocess.run([qdse, "inspect", path], capture_output=True, text=True)
    if r.returncode != 0:
        return False, f"inspect failed: {r.stderr.strip()}"
    cfg = os.path.join(folder, name + ".toml")
    with open(cfg, "w") as f:
        f.write(f'name = "check"\n[model]\npath = {json.dumps(path)}\n[data]\nimages = {json.dumps(VAL_IMAGES)}\n'
                f'labels = {json.dumps(VAL_LABELS)}\nscale = 0.00392156862745098\nvalidation = [0, {n // 2}]\n'
                f'holdout = [{n // 2}, {n}]\n')
    r = subprocess.run([qdse, "eval", cfg, "--json"], capture_output=True, text=True)
    if r.returncode != 0:
        return False, f"eval failed: {r.stderr.strip()}"
    out = json.loads(r.stdout)
    # Correct predictions on the search split ([0, search)) and the holdout ([n // 2, n)).
    search, holdout = out["samples"]["search"], out["samples"]["holdout"]
    ours = out["float"]["search"] * search + out["float"]["holdout"] * holdout
    theirs = (train.ort_accuracy(path, x[:search], y[:search]) * search
              + train.ort_accuracy(path, x[n // 2:n], y[n // 2:n]) * holdout)
    ok = round(ours) == round(theirs)
    return ok, (f"float accuracy {out['float']['search']:.4f} / {out['float']['holdout']:.4f} (search / holdout), "
                f"onnxruntime {'the same' if ok else f'DIFFERS ({theirs:.0f} vs {ours:.0f} correct)'}; "
                f"uniform 8-bit {out['fixed']['search']:.4f} / {out['fixed']['holdout']:.4f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--qdse", default=os.path.join(REPO, "target", "release", "qdse"))
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--skip-shipped", action="store_true")
    ap.add_argument("--fashion-dir", default=None, help="Fashion-MNIST training files, to retrain the shipped nets")
    a = ap.parse_args()
    torch.set_num_threads(1)
    n = a.images
    x_all = train.to_float(train.read_idx(VAL_IMAGES))
    y_all = train.read_idx(VAL_LABELS).astype(np.int64)
    x, y = x_all[:n], y_all[:n]
    failed = 0
    with tempfile.TemporaryDirectory() as folder:
        files = []
        for i, spec in enumerate(VARIANTS):
            name = "variant-" + "-".join(spec).replace(".", "")
            model = fitted_variant(spec, 1000 + i, x_all[n:], y_all[n:])
            files += [(name, e, p) for e, p in export_both(model, folder, name)]
        if not a.skip_shipped:
            for arch in ("mbv2", "resnet"):
                cmd = [sys.executable, os.path.join(HERE, "train.py"), "--model", arch, "--dataset", "fashion",
                       "--out", folder, "--dynamo-out", folder, "--results", folder]
                if a.fashion_dir:
                    cmd += ["--fashion-dir", a.fashion_dir]
                subprocess.run(cmd, check=True, capture_output=True)
                files += [(f"{arch}-fashion", "legacy", os.path.join(folder, f"{arch}-fashion.onnx")),
                          (f"{arch}-fashion", "dynamo", os.path.join(folder, f"{arch}-fashion-dynamo.onnx"))]
        for name, exporter, path in files:
            ok, msg = check(a.qdse, path, n, x, y, folder)
            failed += not ok
            print(f"{'ok  ' if ok else 'FAIL'} {name} ({exporter}; {', '.join(ops(path))}): {msg}", flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()

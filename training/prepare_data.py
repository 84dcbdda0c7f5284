#!/usr/bin/env python3
"""Copy the shipped validation / test splits into data/ (standard library only).

Usage (from the repository root):

    python3 training/prepare_data.py [--raw raw-data] [--out data]

* data/fashion-mnist/t10k-{images-idx3,labels-idx1}-ubyte.gz: byte-for-byte copies
  of the Fashion-MNIST test set (10,000 images; the holdout).
* data/fashion-mnist/val-{images-idx3,labels-idx1}-ubyte.gz: the LAST 10,000 images of
  the Fashion-MNIST training set (indices 50000..59999) with their labels, written as
  IDX, gzip (mtime 0, so the output is reproducible); the validation split. The first
  50,000 training images are the training split used by training/train.py and are not
  shipped.
* data/mnist-10k/test-{images-idx3,labels-idx1}-ubyte.gz: the LAST 4,000 digits of
  the 10,000-digit MNIST subset (indices 6000..9999), written as IDX, gzip
  (mtime 0, so the output is reproducible). The first 6,000 are the training split
  used by training/train.py and are not shipped. Of the 4,000 shipped (unseen)
  digits, the first 2,000 (indices 6000..7999) are meant for validation and the
  last 2,000 (indices 8000..9999) for holdout.
"""
import argparse
import gzip
import os
import shutil
import struct

MNIST_TRAIN = 6000  # fixed split: [0, 6000) train, [6000, 10000) test (unseen)
FASHION_TRAIN = 50000  # fixed split: [0, 50000) train, [50000, 60000) validation (unseen)


def read_idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
    assert zero == 0 and dtype == 0x08, path
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    return dims, raw[4 + 4 * ndim:]


def write_idx(path, dims, payload):
    header = struct.pack(">HBB", 0, 0x08, len(dims)) + struct.pack(">" + "I" * len(dims), *dims)
    with open(path, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as f:
            f.write(header + payload)


def write_tail(src, stem, n_expected, start, out_dir, out_stem):
    """Write images and labels [start, n) of the IDX pair `{stem}-images/labels` in `src` (the
    images the models never trained on) to `{out_stem}-images/labels` in `out_dir`; returns
    their count."""
    prefix = f"{stem}-" if stem else ""
    dims, px = read_idx(os.path.join(src, f"{prefix}images-idx3-ubyte.gz"))
    ldims, lb = read_idx(os.path.join(src, f"{prefix}labels-idx1-ubyte.gz"))
    n, h, w = dims
    assert n == n_expected and ldims == (n_expected,), (dims, ldims)
    write_idx(os.path.join(out_dir, f"{out_stem}-images-idx3-ubyte.gz"), (n - start, h, w), px[start * h * w:])
    write_idx(os.path.join(out_dir, f"{out_stem}-labels-idx1-ubyte.gz"), (n - start,), lb[start:])
    return n - start


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--raw", default="raw-data")
    ap.add_argument("--out", default="data")
    a = ap.parse_args()

    fdir = os.path.join(a.out, "fashion-mnist")
    os.makedirs(fdir, exist_ok=True)
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copyfile(os.path.join(a.raw, "fashion-mnist", name), os.path.join(fdir, name))
    kf = write_tail(os.path.join(a.raw, "fashion-mnist"), "train", 60000, FASHION_TRAIN, fdir, "val")

    mdir = os.path.join(a.out, "mnist-10k")
    os.makedirs(mdir, exist_ok=True)
    k = write_tail(os.path.join(a.raw, "mnist-10k"), "", 10000, MNIST_TRAIN, mdir, "test")
    print(f"wrote {fdir}/ (10000 test, {kf} val = train[{FASHION_TRAIN}:]) and "
          f"{mdir}/ ({k} test = mnist-10k[{MNIST_TRAIN}:])")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Time onnxruntime (CPU) on an ONNX classifier over an IDX image set; print one JSON line.

Usage (from the repository root):

    python3 training/bench_ort.py models/seq14-fashion.onnx \
        --images data/fashion-mnist/t10k-images-idx3-ubyte.gz \
        --labels data/fashion-mnist/t10k-labels-idx1-ubyte.gz [--batch-size 100] [--threads 2]

Session: CPUExecutionProvider, intra_op_num_threads=--threads (default 2), inter_op_num_threads=1,
ExecutionMode.ORT_SEQUENTIAL, default graph optimisations. Inputs are pixel/255 (float32,
[B,1,H,W]); the model's first input/output are used. One untimed warm-up batch, then every image
is run once in batches of --batch-size (the last batch may be smaller); "seconds" is the wall time
of those runs only (no file reading or preprocessing).

Output: {"model": ..., "images": N, "seconds": s, "images_per_s": r, "accuracy": a}
"""
import argparse
import gzip
import json
import struct
import time

import numpy as np
import onnxruntime as ort


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--images", default="data/fashion-mnist/t10k-images-idx3-ubyte.gz")
    ap.add_argument("--labels", default="data/fashion-mnist/t10k-labels-idx1-ubyte.gz")
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2, help="intra-op threads (default 2)")
    a = ap.parse_args()

    x = (read_idx(a.images).astype(np.float32) / np.float32(255.0))[:, None, :, :]
    y = read_idx(a.labels).astype(np.int64)
    assert len(x) == len(y), (len(x), len(y))

    so = ort.SessionOptions()
    if a.threads < 1:
        ap.error("--threads must be at least 1")
    so.intra_op_num_threads = a.threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(a.model, so, providers=["CPUExecutionProvider"])
    iname = sess.get_inputs()[0].name
    oname = sess.get_outputs()[0].name
    bs = a.batch_size
    batches = [np.ascontiguousarray(x[i:i + bs]) for i in range(0, len(x), bs)]

    sess.run([oname], {iname: batches[0]})  # warm-up, untimed
    preds = []
    t0 = time.perf_counter()
    for b in batches:
        preds.append(sess.run([oname], {iname: b})[0].argmax(1))
    dt = time.perf_counter() - t0
    acc = float((np.concatenate(preds) == y).mean())
    print(json.dumps({"model": a.model, "threads": a.threads, "images": int(len(x)), "seconds": round(dt, 4),
                      "images_per_s": round(len(x) / dt, 1), "accuracy": acc}))


if __name__ == "__main__":
    main()

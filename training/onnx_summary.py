#!/usr/bin/env python3
"""Print a Markdown table of the weighted layers (Conv, Gemm, MatMul) of ONNX models.

Usage: python3 training/onnx_summary.py models/lenet5-fashion.onnx [more.onnx ...]

Columns: node name (as written by the exporter), op type, weight initializer and its shape,
kernel/stride/pad/group attributes for Conv. Also prints the op-type histogram of each graph.
"""
import collections
import sys

import onnx
from onnx import helper


def summary(path):
    m = onnx.load(path)
    g = m.graph
    inits = {i.name: list(i.dims) for i in g.initializer}
    print(f"### {path}\n")
    hist = collections.Counter(n.op_type for n in g.node)
    print("ops: " + ", ".join(f"{k} x{v}" for k, v in sorted(hist.items())) + "\n")
    print("| # | node name | op | weight | shape | attributes |")
    print("|---|---|---|---|---|---|")
    k = 0
    for n in g.node:
        if n.op_type not in ("Conv", "Gemm", "MatMul"):
            continue
        k += 1
        w = n.input[1]
        attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
        if n.op_type == "Conv":
            at = (f"k={'x'.join(map(str, attrs.get('kernel_shape', [])))} "
                  f"s={attrs.get('strides', [1, 1])[0]} p={attrs.get('pads', [0])[0]} g={attrs.get('group', 1)}")
        elif n.op_type == "Gemm":
            at = f"transB={attrs.get('transB', 0)}"
        else:
            at = ""
        print(f"| {k} | `{n.name}` | {n.op_type} | `{w}` | {inits.get(w, '?')} | {at} |")
    print()


if __name__ == "__main__":
    for p in sys.argv[1:]:
        summary(p)

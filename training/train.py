#!/usr/bin/env python3
"""Train and export the reference CNNs shipped in models/ (CPU only, deterministic).

Usage (from the repository root; one model per call):

    python3 training/train.py --model lenet5   --dataset fashion
    python3 training/train.py --model lenet5   --dataset mnist
    python3 training/train.py --model seq14    --dataset fashion
    python3 training/train.py --model seq14    --dataset mnist
    python3 training/train.py --model branched --dataset fashion
    python3 training/train.py --model branched --dataset mnist
    python3 training/train.py --model mbv2     --dataset fashion
    python3 training/train.py --model resnet   --dataset fashion
    python3 training/train.py --model strided  --dataset fashion
    python3 training/train.py --model bnrelu   --dataset fashion
    (add --dynamo-out DIR for a second export the way torch.onnx.export writes by default)

Writes models/<model>-<dataset>.onnx and prints (and writes to
training/results/<model>-<dataset>.json) the float test accuracy measured with
onnxruntime on the exported file (fashion: also the validation accuracy on the
10,000 held-out training images [50000, 60000)).

Models
  lenet5    conv 6@5x5 pad 2 -> ReLU -> maxpool 2 -> conv 16@5x5 -> ReLU -> maxpool 2
            -> flatten -> fc 120 -> ReLU -> fc 84 -> ReLU -> fc 10
  seq14     14 x (conv 3x3 pad 1 -> BN -> ReLU); 32 filters in convs 1-6, 64 in 7-14;
            conv1 @28, pool, conv2-3 @14, pool, conv4-10 @7, pool (7->3), conv11-14 @3,
            global max pool, flatten, fc 64->10
  branched  stem conv 20@3x3 stride 2 pad 1 -> BN -> ReLU (28->14), then 3 inception modules
            (16, 32, 64 filters; branches 1x1 | 1x1->3x3 | 1x1->3x3->3x3 | maxpool3 s1 -> 1x1;
            every conv -> BN -> ReLU; concat on channels), 2x2 maxpool between modules,
            global average pool, flatten, fc 256->10 (22 convs + 1 dense)
  mbv2      MobileNet-v2-style (the depthwise-separable benchmark net): stem conv 16@3x3 stride 2
            -> BN -> ReLU6 (28->14), 5 inverted residual blocks (expand 1x1 x4 -> BN -> ReLU6,
            depthwise 3x3 -> BN -> ReLU6, project 1x1 -> BN; residual Add where stride 1 and the
            widths agree): 16->16, 16->24 stride 2 (14->7), 24->24, 24->32, 32->32; head 1x1
            128 -> BN -> ReLU6, global average pool, flatten, fc 128->10
  resnet    small ResNet: stem conv 16@3x3 stride 2 -> BN -> ReLU (28->14), 3 basic blocks
            (conv 3x3 -> BN -> ReLU -> conv 3x3 -> BN, + shortcut, ReLU): 16->16 identity
            shortcut @14, 16->32 stride 2 (14->7) and 32->64 stride 2 (7->4) with 1x1 stride-2
            conv -> BN shortcuts; global average pool, flatten, fc 64->10
  strided   three stride-2 convs, no pooling, no BN: conv 16@3x3 s2 p1 -> ReLU (28->14),
            conv 32@3x3 s2 p1 -> ReLU (14->7), conv 64@3x3 s2 p1 -> ReLU (7->4), flatten
            (x.view: a Shape -> Gather -> Unsqueeze -> Concat -> Reshape subgraph), fc 1024->10
  bnrelu    five convs, each conv 3x3 pad 1 (with bias) -> ReLU -> BN: the BN follows the ReLU,
            so it cannot fold into the conv and stays a stand-alone per-channel affine layer;
            16 @28, maxpool (28->14), 32, 32 @14, maxpool (14->7), 64, 64 @7, global average
            pool, flatten, fc 64->10

Defaults (what produced the shipped files): Adam, initial lr 2e-3 cosine-annealed to 0 per step,
batch 64 (lenet5) / 128 (the others), seed 0; epochs: fashion lenet5 8, seq14 3, branched 3,
mbv2 2, resnet 3, strided 6, bnrelu 2; mnist lenet5 20, seq14 8, branched 8 (the MNIST training split has only 6,000 images).

Data
  Raw IDX files are read from --raw (default raw-data; the same Fashion-MNIST files
  come with Debian's `dataset-fashion-mnist` under /usr/share/datasets/fashion-mnist/, pass
  --fashion-dir to use them). Inputs are pixel/255 as float32 in [0, 1], no mean/std.
  fashion: train on training images [0, 50000) only; training images [50000, 60000) are the
           validation split the models never see (== data/fashion-mnist/val-*), the 10,000
           official test images the holdout (== data/fashion-mnist/t10k-*).
  mnist:   mnist-10k; train on images [0, 6000), test on the 4,000 unseen images
           [6000, 10000) (== data/mnist-10k/; [6000, 8000) validation, [8000, 10000) holdout).

Export
  ONNX opset 13, legacy TorchScript exporter (dynamo=False), input "input" [N,1,28,28]
  (dynamic batch axis "N"), output "logits" [N,10], no softmax, exporter's default node names.
  The model is in eval mode; the export uses training=TrainingMode.PRESERVE so that the legacy
  exporter does NOT fuse BatchNormalization into the preceding Conv (with the default
  TrainingMode.EVAL it would): BN nodes stay in the graph, folding them is the quantizer's job.
  Pass --fuse-bn-at-export for the exporter's default behaviour instead.

Determinism
  torch.manual_seed / numpy seed (--seed, default 0), torch.use_deterministic_algorithms(True),
  one intra-op thread (torch.set_num_threads(1)), fixed data order from a seeded torch.Generator.
"""
import argparse
import gzip
import json
import os
import struct
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MNIST_TRAIN = 6000  # mnist-10k: [0, 6000) train, [6000, 10000) test (unseen)
FASHION_TRAIN = 50000  # fashion train file: [0, 50000) train, [50000, 60000) validation (unseen)

DEFAULT_EPOCHS = {
    ("lenet5", "fashion"): 8,
    ("seq14", "fashion"): 3,
    ("branched", "fashion"): 3,
    ("mbv2", "fashion"): 2,
    ("resnet", "fashion"): 3,
    ("strided", "fashion"): 6,
    ("bnrelu", "fashion"): 2,
    ("lenet5", "mnist"): 20,
    ("seq14", "mnist"): 8,
    ("branched", "mnist"): 8,
    ("mbv2", "mnist"): 8,
    ("resnet", "mnist"): 8,
}


# ----------------------------------------------------------------------------- data
def read_idx(path):
    """Read a (gzip) IDX file of unsigned bytes into a numpy array."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def to_float(images):
    """uint8 [N,28,28] -> float32 [N,1,28,28] in [0,1] (pixel/255)."""
    return (images.astype(np.float32) / np.float32(255.0))[:, None, :, :]


def load_dataset(name, raw, fashion_dir=None):
    """-> (xtr, ytr, xval, yval, xte, yte); xval/yval are None where there is no separate
    validation split (mnist: its test split [6000, 10000) holds validation and holdout)."""
    xval = yval = None
    if name == "fashion":
        d = fashion_dir or os.path.join(raw, "fashion-mnist")
        x = read_idx(os.path.join(d, "train-images-idx3-ubyte.gz"))
        y = read_idx(os.path.join(d, "train-labels-idx1-ubyte.gz"))
        assert len(x) == 60000 and len(y) == 60000
        xtr, ytr = x[:FASHION_TRAIN], y[:FASHION_TRAIN]
        xval, yval = x[FASHION_TRAIN:], y[FASHION_TRAIN:]
        xte = read_idx(os.path.join(d, "t10k-images-idx3-ubyte.gz"))
        yte = read_idx(os.path.join(d, "t10k-labels-idx1-ubyte.gz"))
    elif name == "mnist":
        d = os.path.join(raw, "mnist-10k")
        x = read_idx(os.path.join(d, "images-idx3-ubyte.gz"))
        y = read_idx(os.path.join(d, "labels-idx1-ubyte.gz"))
        assert len(x) == 10000 and len(y) == 10000
        xtr, ytr, xte, yte = x[:MNIST_TRAIN], y[:MNIST_TRAIN], x[MNIST_TRAIN:], y[MNIST_TRAIN:]
    else:
        raise ValueError(name)
    if xval is not None:
        xval, yval = to_float(xval), yval.astype(np.int64)
    return (to_float(xtr), ytr.astype(np.int64), xval, yval,
            to_float(xte), yte.astype(np.int64))


# ----------------------------------------------------------------------------- models
class LeNet5(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = x.view(x.size(0), -1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


class ConvBNReLU(nn.Sequential):
    def __init__(self, cin, cout, k, stride=1, padding=0):
        super().__init__(
            nn.Conv2d(cin, cout, k, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=False),
        )


class Seq14(nn.Module):
    """The seed paper's 'sequential' net: 14 conv3x3+BN+ReLU, 2x2 max-pools between stages."""

    def __init__(self):
        super().__init__()
        widths = [32] * 6 + [64] * 8
        pool_after = {1, 3, 10}  # after conv1 (28->14), conv3 (14->7), conv10 (7->3)
        layers, cin = [], 1
        for i, w in enumerate(widths, start=1):
            layers.append(ConvBNReLU(cin, w, 3, padding=1))
            if i in pool_after:
                layers.append(nn.MaxPool2d(2))
            cin = w
        self.features = nn.Sequential(*layers)
        self.gpool = nn.AdaptiveMaxPool2d(1)
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        x = self.gpool(self.features(x))
        x = x.view(x.size(0), -1)
        return self.fc(x)


class Inception(nn.Module):
    """Four branches, 7 convs: 1x1 | 1x1->3x3 | 1x1->3x3->3x3 | maxpool3x3 s1 -> 1x1."""

    def __init__(self, cin, f):
        super().__init__()
        self.a = ConvBNReLU(cin, f, 1)
        self.b = nn.Sequential(ConvBNReLU(cin, f, 1), ConvBNReLU(f, f, 3, padding=1))
        self.c = nn.Sequential(ConvBNReLU(cin, f, 1), ConvBNReLU(f, f, 3, padding=1),
                               ConvBNReLU(f, f, 3, padding=1))
        self.d = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), ConvBNReLU(cin, f, 1))

    def forward(self, x):
        return torch.cat([self.a(x), self.b(x), self.c(x), self.d(x)], dim=1)


class Branched(nn.Module):
    """The seed paper's Inception-like 'branched' net, scaled to 28x28 inputs."""

    def __init__(self):
        super().__init__()
        self.stem = ConvBNReLU(1, 20, 3, stride=2, padding=1)  # 28 -> 14
        self.inc1 = Inception(20, 16)       # 14x14, 64 ch out
        self.pool1 = nn.MaxPool2d(2)        # 14 -> 7
        self.inc2 = Inception(64, 32)       # 7x7, 128 ch out
        self.pool2 = nn.MaxPool2d(2)        # 7 -> 3
        self.inc3 = Inception(128, 64)      # 3x3, 256 ch out
        self.gpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(256, 10)

    def forward(self, x):
        x = self.stem(x)
        x = self.pool1(self.inc1(x))
        x = self.pool2(self.inc2(x))
        x = self.gpool(self.inc3(x))
        x = x.view(x.size(0), -1)
        return self.fc(x)


class ConvBNReLU6(nn.Sequential):
    def __init__(self, cin, cout, k, stride=1, groups=1):
        super().__init__(
            nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU6(inplace=False),
        )


class InvertedResidual(nn.Module):
    """MobileNet-v2's block: expand 1x1, depthwise 3x3, linear project 1x1 (+ the input)."""

    def __init__(self, cin, cout, stride, expand=4):
        super().__init__()
        hidden = cin * expand
        self.residual = stride == 1 and cin == cout
        self.body = nn.Sequential(
            ConvBNReLU6(cin, hidden, 1),
            ConvBNReLU6(hidden, hidden, 3, stride=stride, groups=hidden),
            nn.Conv2d(hidden, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        )

    def forward(self, x):
        y = self.body(x)
        return x + y if self.residual else y


class MobileNetV2(nn.Module):
    """A small MobileNet-v2 for 28x28 inputs: the depthwise-separable layers embedded nets use."""

    def __init__(self):
        super().__init__()
        self.stem = ConvBNReLU6(1, 16, 3, stride=2)  # 28 -> 14
        self.blocks = nn.Sequential(
            InvertedResidual(16, 16, 1),
            InvertedResidual(16, 24, 2),  # 14 -> 7
            InvertedResidual(24, 24, 1),
            InvertedResidual(24, 32, 1),
            InvertedResidual(32, 32, 1),
        )
        self.head = ConvBNReLU6(32, 128, 1)
        self.gpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(128, 10)

    def forward(self, x):
        x = self.gpool(self.head(self.blocks(self.stem(x))))
        x = x.view(x.size(0), -1)
        return self.fc(x)


class BasicBlock(nn.Module):
    """ResNet's basic block: conv 3x3 -> BN -> ReLU -> conv 3x3 -> BN, plus the shortcut (the
    input itself, or a strided 1x1 conv -> BN where the stride or the width changes), then ReLU."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.body = nn.Sequential(
            ConvBNReLU(cin, cout, 3, stride=stride, padding=1),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.shortcut = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        return F.relu(self.body(x) + self.shortcut(x))


class ResNet(nn.Module):
    """A small ResNet for 28x28 inputs: three basic blocks, two of them downsampling."""

    def __init__(self):
        super().__init__()
        self.stem = ConvBNReLU(1, 16, 3, stride=2, padding=1)  # 28 -> 14
        self.layers = nn.Sequential(
            BasicBlock(16, 16, 1),  # 14x14, identity shortcut
            BasicBlock(16, 32, 2),  # 14 -> 7, 1x1 shortcut
            BasicBlock(32, 64, 2),  # 7 -> 4, 1x1 shortcut
        )
        self.gpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        x = self.gpool(self.layers(self.stem(x)))
        x = x.view(x.size(0), -1)
        return self.fc(x)


class Strided(nn.Module):
    """Three stride-2 convs and a flatten head, no pooling (the engine-speed issue's strided MNIST
    kind of net, whose flatten exports as a Shape/Gather/Unsqueeze/Concat/Reshape subgraph)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, stride=2, padding=1)   # 28 -> 14
        self.conv2 = nn.Conv2d(16, 32, 3, stride=2, padding=1)  # 14 -> 7
        self.conv3 = nn.Conv2d(32, 64, 3, stride=2, padding=1)  # 7 -> 4
        self.fc = nn.Linear(64 * 4 * 4, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.relu(self.conv3(x))
        x = x.view(x.size(0), -1)
        return self.fc(x)


class ConvReLUBN(nn.Sequential):
    """conv (with bias) -> ReLU -> BN: the BN after the ReLU cannot be folded into the conv."""

    def __init__(self, cin, cout):
        super().__init__(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=False), nn.BatchNorm2d(cout))


class BNReLU(nn.Module):
    """Five conv -> ReLU -> BN blocks (stand-alone BatchNorm after each ReLU), two max-pools, GAP."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            ConvReLUBN(1, 16), nn.MaxPool2d(2),                        # 28 -> 14
            ConvReLUBN(16, 32), ConvReLUBN(32, 32), nn.MaxPool2d(2),   # 14 -> 7
            ConvReLUBN(32, 64), ConvReLUBN(64, 64),
        )
        self.gpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        x = self.gpool(self.features(x))
        x = x.view(x.size(0), -1)
        return self.fc(x)


MODELS = {"lenet5": LeNet5, "seq14": Seq14, "branched": Branched, "mbv2": MobileNetV2, "resnet": ResNet,
          "strided": Strided, "bnrelu": BNReLU}


# ----------------------------------------------------------------------------- export / eval
def export_onnx(model, path, fuse_bn=False):
    model.eval()
    dummy = torch.zeros(1, 1, 28, 28)
    mode = torch.onnx.TrainingMode.EVAL if fuse_bn else torch.onnx.TrainingMode.PRESERVE
    torch.onnx.export(
        model, (dummy,), path,
        dynamo=False,
        opset_version=13,
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
        training=mode,
        do_constant_folding=True,
    )


def export_dynamo(model, path):
    """What torch.onnx.export writes by default since torch 2.9: the dynamo exporter (onnxscript,
    its default opset and optimizer, which folds BN into the Conv before it), weights in a
    separate file `<path>.data` (external_data=True)."""
    model.eval()
    batch = torch.export.Dim("N", min=1, max=1024)
    torch.onnx.export(model, (torch.zeros(1, 1, 28, 28),), path, dynamo=True,
                      input_names=["input"], output_names=["logits"], dynamic_shapes=({0: batch},))


def ort_accuracy(path, x, y, batch=500):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    correct = 0
    for i in range(0, len(x), batch):
        (logits,) = sess.run(["logits"], {"input": x[i:i + batch]})
        correct += int((logits.argmax(1) == y[i:i + batch]).sum())
    return correct / len(x)


# ----------------------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=sorted(MODELS), required=True)
    ap.add_argument("--dataset", choices=["fashion", "mnist"], required=True,
                    help=f"fashion: train on training images [0, {FASHION_TRAIN}), validate on "
                         f"[{FASHION_TRAIN}, 60000), test on the 10,000 test images; "
                         f"mnist: mnist-10k [0, {MNIST_TRAIN}) train, [{MNIST_TRAIN}, 10000) test")
    ap.add_argument("--epochs", type=int, default=None, help="default: per model/dataset table")
    ap.add_argument("--batch-size", type=int, default=None, help="default 64 (lenet5) / 128")
    ap.add_argument("--lr", type=float, default=None, help="Adam initial lr (cosine-annealed to 0 per step); default 2e-3")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--raw", default="raw-data", help="folder with fashion-mnist/ and mnist-10k/")
    ap.add_argument("--fashion-dir", default=None,
                    help="alternative Fashion-MNIST folder, e.g. /usr/share/datasets/fashion-mnist")
    ap.add_argument("--out", default=os.path.join(REPO, "models"))
    ap.add_argument("--fuse-bn-at-export", action="store_true",
                    help="let the exporter fuse BN into Conv (TrainingMode.EVAL)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--results", default=os.path.join(REPO, "training", "results"),
                    help="folder for <model>-<dataset>.json")
    ap.add_argument("--dynamo-out", default=None,
                    help="also export with the dynamo exporter's defaults to DIR/<model>-<dataset>-dynamo.onnx "
                         "(+ .onnx.data, the weights) and report its onnxruntime test accuracy")
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    np.random.seed(a.seed)
    torch.use_deterministic_algorithms(True)

    epochs = a.epochs or DEFAULT_EPOCHS[(a.model, a.dataset)]
    bs = a.batch_size or (64 if a.model == "lenet5" else 128)
    lr = a.lr or 2e-3

    xtr, ytr, xval, yval, xte, yte = load_dataset(a.dataset, a.raw, a.fashion_dir)
    xtr_t, ytr_t = torch.from_numpy(xtr), torch.from_numpy(ytr)

    model = MODELS[a.model]()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps_per_epoch = (len(xtr) + bs - 1) // bs
    # cosine decay of the lr over all steps (per step)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps_per_epoch)
    gen = torch.Generator().manual_seed(a.seed)

    t0 = time.time()
    for ep in range(epochs):
        model.train()
        perm = torch.randperm(len(xtr), generator=gen)
        tot, correct, n = 0.0, 0, 0
        for i in range(0, len(xtr), bs):
            idx = perm[i:i + bs]
            xb, yb = xtr_t[idx], ytr_t[idx]
            out = model(xb)
            loss = F.cross_entropy(out, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            tot += float(loss) * len(idx)
            correct += int((out.argmax(1) == yb).sum())
            n += len(idx)
        print(f"epoch {ep + 1}/{epochs}: loss {tot / n:.4f} train acc {correct / n:.4f} "
              f"({time.time() - t0:.0f}s)", flush=True)
    train_s = time.time() - t0

    model.eval()

    def torch_accuracy(x, y):
        with torch.no_grad():
            return float((torch.cat([model(torch.from_numpy(x[i:i + 500])) for i in range(0, len(x), 500)])
                          .argmax(1).numpy() == y).mean())

    torch_acc = torch_accuracy(xte, yte)

    os.makedirs(a.out, exist_ok=True)
    name = f"{a.model}-{a.dataset}"
    path = os.path.join(a.out, name + ".onnx")
    export_onnx(model, path, fuse_bn=a.fuse_bn_at_export)
    acc = ort_accuracy(path, xte, yte)

    res = {
        "model": name, "onnx": os.path.relpath(path, REPO), "epochs": epochs, "batch_size": bs,
        "lr": lr, "seed": a.seed, "train_images": len(xtr), "test_images": len(xte),
        "torch_test_accuracy": torch_acc, "ort_test_accuracy": acc, "train_seconds": round(train_s, 1),
        "onnx_bytes": os.path.getsize(path), "torch": torch.__version__,
    }
    if a.dynamo_out:
        os.makedirs(a.dynamo_out, exist_ok=True)
        dpath = os.path.join(a.dynamo_out, name + "-dynamo.onnx")
        export_dynamo(model, dpath)
        print(f"{dpath}: onnxruntime test accuracy {ort_accuracy(dpath, xte, yte)}", flush=True)
    if xval is not None:
        res["val_images"] = len(xval)
        res["torch_val_accuracy"] = torch_accuracy(xval, yval)
        res["ort_val_accuracy"] = ort_accuracy(path, xval, yval)
    rdir = a.results
    os.makedirs(rdir, exist_ok=True)
    with open(os.path.join(rdir, name + ".json"), "w") as f:
        json.dump(res, f, indent=2)
        f.write("\n")
    print(json.dumps(res))


if __name__ == "__main__":
    main()

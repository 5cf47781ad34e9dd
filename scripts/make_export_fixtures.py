#!/usr/bin/env python3
"""ONNX files written by the real exporters, and a fine-tuned model exported by us, each with
the logits onnxruntime computes on it (tests/it/formats.rs).

Usage (versions used: tests/fixtures/README.md, "ONNX from the real exporters"):

    python -m venv --system-site-packages /tmp/exportfx && . /tmp/exportfx/bin/activate
    pip install numpy onnx onnxruntime torch torchvision onnxscript tensorflow-cpu
    cargo build --release                      # the fine-tuned model is trained by our binary
    WGPU_BACKEND=vulkan python scripts/make_export_fixtures.py [--alexnet target/release/alexnet]

Written here (weights: the reduced-width fixtures torchvision_small.npz / keras_small.npz, so
the logits onnxruntime computed for them before, torchvision_logits.npy / keras_logits.npy,
must hold too; the script stops if a file's onnxruntime logits differ from those by more than
1e-4 x max|logit|):

  torchvision_small_legacy.onnx   torch.onnx.export(dynamo=False), the TorchScript exporter,
                                  opset 17, dynamic batch: Conv, MaxPool, AveragePool k1 for
                                  the adaptive pool at 224, Flatten, Gemm transB=1
  torchvision_small_dynamo.onnx   torch.onnx.export(dynamo=True), the default exporter since
                                  torch 2.9, opset 18+ (onnxscript's optimizer): node names
                                  node_conv2d..., Reshape to a constant [-1, 1008] instead of
                                  Flatten, Gemm
  (both of torchvision.models.AlexNet with `features` / `classifier` rebuilt at the fixture
  widths: the module layout and the AdaptiveAvgPool2d((6, 6)) are torchvision's)
  *_logits.npy                    onnxruntime's logits of each file on input_224.npy

  keras_small_export.onnx         Keras 3 `model.export(path, format="onnx")` (TensorFlow
                                  backend; it runs tf2onnx) of the Keras Sequential AlexNet of
                                  make_weight_fixtures.py: NHWC input [N, 227, 227, 3] through
                                  Transpose [0, 3, 1, 2], folded OIHW conv weights, Transpose
                                  [0, 2, 3, 1] then a Reshape whose shape comes from a Shape /
                                  Gather / Slice / Concat branch, MatMul [in, out] + Add
  keras_small_export_hwio.onnx    the same graph edited with onnx.helper to imitate an export
                                  without constant folding: each conv weight an HWIO initializer
                                  (as Keras stores it) fed through Transpose [3, 2, 0, 1]
  keras_small_export*_logits.npy  onnxruntime's logits of each on input_227_keras.npy (NHWC)

  finetuned_small.onnx            `alexnet train-head --out finetuned_small.onnx` on
                                  tests/fixtures/train_data (3 classes) from
                                  torchvision_small.npz: a trained classifier head, class names
                                  and preprocessing in metadata_props
  finetuned_small_logits.npy      onnxruntime's logits of it on input_224.npy
"""
import argparse
import os
import subprocess
import tempfile

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "tests", "fixtures")


def fx(name):
    return os.path.join(FIX, name)


def run(path, x):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    return s.run(None, {s.get_inputs()[0].name: np.ascontiguousarray(x, np.float32)})[0]


def check(what, got, want):
    scale = np.abs(want).max()
    err = np.abs(got - want).max()
    print(f"{what}: max|logit| {scale:.4g}, max|diff| {err:.3g}")
    assert err <= 1e-4 * scale, f"{what}: {err} > 1e-4 * {scale}"


def ops(path):
    return [n.op_type for n in onnx.load(path).graph.node]


def torch_exports():
    import torch
    import torch.nn as nn
    import torchvision

    torch.manual_seed(0)
    torch.set_num_threads(1)
    print("torch", torch.__version__, "torchvision", torchvision.__version__)
    m = torchvision.models.AlexNet(num_classes=7)
    m.features = nn.Sequential(
        nn.Conv2d(3, 12, 11, 4, 2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        nn.Conv2d(12, 40, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        nn.Conv2d(40, 56, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(56, 44, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(44, 28, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2))
    m.classifier = nn.Sequential(
        nn.Dropout(), nn.Linear(28 * 6 * 6, 100), nn.ReLU(inplace=True),
        nn.Dropout(), nn.Linear(100, 90), nn.ReLU(inplace=True), nn.Linear(90, 7))
    with np.load(fx("torchvision_small.npz")) as z:
        m.load_state_dict({k: torch.from_numpy(z[k]) for k in z.files})
    m.eval()
    x = np.load(fx("input_224.npy"))
    want = np.load(fx("torchvision_logits.npy"))
    with torch.no_grad():
        check("torchvision.models.AlexNet (PyTorch) vs torchvision_logits",
              m(torch.from_numpy(x)).numpy(), want)
    sample = (torch.from_numpy(x[:1]),)
    legacy = fx("torchvision_small_legacy.onnx")
    torch.onnx.export(m, sample, legacy, dynamo=False, opset_version=17,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    dynamo = fx("torchvision_small_dynamo.onnx")
    prog = torch.onnx.export(m, sample, dynamo=True, input_names=["input"],
                             output_names=["logits"],
                             dynamic_shapes=({0: torch.export.Dim("batch")},))
    prog.save(dynamo)
    for path in (legacy, dynamo):
        onnx.checker.check_model(onnx.load(path))
        got = run(path, x)
        np.save(path.replace(".onnx", "_logits.npy"), got)
        check(f"{os.path.basename(path)} (onnxruntime) vs torchvision_logits", got, want)
        print("  ops:", " ".join(sorted(set(ops(path)))))


def keras_exports():
    import keras
    import tensorflow as tf

    import make_weight_fixtures as mwf

    print("tensorflow", tf.__version__, "keras", keras.__version__)
    keras.utils.set_random_seed(0)
    keras.backend.clear_session()
    m = mwf.keras_alexnet(keras)
    mwf.set_from_npz(m, np.load(fx("keras_small.npz")))
    x = np.load(fx("input_227_keras.npy")).transpose(0, 2, 3, 1)
    want = np.load(fx("keras_logits.npy"))
    check("Keras forward vs keras_logits", m.predict(x, verbose=0), want)
    path = fx("keras_small_export.onnx")
    m.export(path, format="onnx", verbose=False)
    # Keras names the input after its internal tensor (keras_tensor_N, N counting tensors made
    # in this process): renamed so the file does not depend on what ran before.
    g = onnx.load(path)
    old = g.graph.input[0].name
    for n in g.graph.node:
        n.input[:] = ["input" if i == old else i for i in n.input]
    g.graph.input[0].name = "input"
    onnx.save_model(g, path)

    # No constant folding: HWIO initializers through Transpose [3, 2, 0, 1].
    h = onnx.ModelProto()
    h.CopyFrom(g)
    inits = {t.name: t for t in h.graph.initializer}
    nodes = []
    for n in h.graph.node:
        if n.op_type == "Conv":
            w = inits[n.input[1]]
            hwio = np.ascontiguousarray(numpy_helper.to_array(w).transpose(2, 3, 1, 0))
            w.CopyFrom(numpy_helper.from_array(hwio, n.input[1] + "_hwio"))
            nodes.append(helper.make_node("Transpose", [w.name], [n.input[1]],
                                          name=n.name + "/kernel_transpose", perm=[3, 2, 0, 1]))
        nodes.append(n)
    nodes = [onnx.NodeProto.FromString(n.SerializeToString()) for n in nodes]
    del h.graph.node[:]
    h.graph.node.extend(nodes)
    onnx.checker.check_model(h)
    onnx.save_model(h, fx("keras_small_export_hwio.onnx"))

    for p in (path, fx("keras_small_export_hwio.onnx")):
        onnx.checker.check_model(onnx.load(p))
        got = run(p, x)
        np.save(p.replace(".onnx", "_logits.npy"), got)
        check(f"{os.path.basename(p)} (onnxruntime) vs keras_logits", got, want)
        print("  ops:", " ".join(sorted(set(ops(p)))))


def finetuned(alexnet):
    out = fx("finetuned_small.onnx")
    subprocess.run([alexnet, "train-head", "--weights", fx("torchvision_small.npz"),
                    "--data", fx("train_data"), "--head", "classifier", "--optimizer", "adam",
                    "--lr", "0.001", "--dropout", "0.2", "--batch", "8", "--epochs", "6",
                    "--seed", "3", "--out", out], check=True)
    onnx.checker.check_model(onnx.load(out))
    got = run(out, np.load(fx("input_224.npy")))
    np.save(fx("finetuned_small_logits.npy"), got)
    meta = {p.key: p.value for p in onnx.load(out).metadata_props}
    print("finetuned_small.onnx: logits", got.shape, "max", np.abs(got).max(),
          "metadata", sorted(meta))
    # The head was trained: its logits are not those of the backbone's 7-class head.
    assert got.shape[1] == 3


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--alexnet", default=os.path.join(ROOT, "target", "release", "alexnet"))
    ap.add_argument("--only", choices=["torch", "keras", "finetuned"])
    args = ap.parse_args()
    import sys
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    if args.only in (None, "torch"):
        torch_exports()
    if args.only in (None, "keras"):
        keras_exports()
    if args.only in (None, "finetuned"):
        finetuned(args.alexnet)


if __name__ == "__main__":
    main()

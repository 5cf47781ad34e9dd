#!/usr/bin/env python3
"""Writes the .safetensors / .onnx fixtures of tests/it/formats.rs, with onnxruntime logits.

Usage (see tests/fixtures/README.md, "safetensors and ONNX files", for the versions used):

    python -m venv /tmp/onnxfx && . /tmp/onnxfx/bin/activate
    pip install numpy onnx onnxruntime safetensors
    cargo build --release                      # the exports are made by our own binary
    python scripts/make_format_fixtures.py [--alexnet target/release/alexnet]

The weights are those of the existing reduced-width fixtures (torchvision_small.npz,
caffe_small.npz, keras_small.npz), so the logits onnxruntime computed for them before
(torchvision_logits.npy, caffe_logits.npy, keras_logits.npy) apply unchanged; this script stops
if a file's own onnxruntime logits differ from those by more than 1e-4 x max|logit|.

Written here:
  torchvision_small.safetensors    safetensors' numpy writer, torchvision names, __metadata__
  torchvision_small_torch.onnx     laid out as torch.onnx.export (TorchScript exporter) writes
                                   torchvision's AlexNet: initializers named features.0.weight,
                                   node names /features/features.0/Conv, AveragePool k1 for the
                                   adaptive pool at 224, Flatten, Gemm transB=1, symbolic batch
  torchvision_small_ext.onnx(+.data)  the same with every tensor in an external data file
  bvlc_small.onnx                  laid out as the model zoo's bvlcalexnet-12.onnx: initializers
                                   conv1_w_0 ... fc8_b_0, input data_0 [1,3,224,224], LRN, groups,
                                   MaxPool with the asymmetric pads [0,0,1,1] the Caffe2 converter
                                   writes for Caffe's rounding-up pools, Reshape, Dropout, Softmax
                                   (prob_1)
  bvlc_small_ceil.onnx             the same pools written as ceil_mode=1 without pads
  input_224_caffe.npy              input_227_caffe.npy cropped to 224 (rows/cols 1..224)
  bvlc_small_logits.npy            onnxruntime fc8 of bvlc_small.onnx on input_224_caffe
  export_{torchvision,caffe,keras}.onnx   `alexnet export` of the three *_small.npz
  export_*_logits.npy              onnxruntime logits of those exports on each preset's input

--fuzz-seeds writes only fuzz/corpus/onnx and fuzz/corpus/safetensors: the layouts above (and
the Keras 3 export of make_export_fixtures.py) at tiny widths.

The torch-style graph here is written with onnx.helper following the exporter's layout (torch
did not import where this was first written); scripts/make_export_fixtures.py adds the files
the real torch.onnx.export and Keras exporters write.
"""
import argparse
import os
import subprocess

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from safetensors.numpy import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "tests", "fixtures")
LRN = dict(size=5, alpha=1e-4, beta=0.75, bias=1.0)


def fx(name):
    return os.path.join(FIX, name)


def load_npz(name):
    with np.load(fx(name)) as z:
        return {k: z[k] for k in z.files}


def session(model_or_path):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    src = model_or_path if isinstance(model_or_path, str) else model_or_path.SerializeToString()
    return ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])


def run(model_or_path, x, output=None):
    s = session(model_or_path)
    name = s.get_inputs()[0].name
    return s.run([output] if output else None, {name: np.ascontiguousarray(x, np.float32)})[0]


def check(what, got, want):
    scale = np.abs(want).max()
    err = np.abs(got - want).max()
    print(f"{what}: max|logit| {scale:.4g}, max|diff| {err:.3g}")
    assert err <= 1e-4 * scale, f"{what}: {err} > 1e-4 * {scale}"


def ints_tensor(name, values):
    return numpy_helper.from_array(np.asarray(values, np.int64), name)


def torch_style(tv):
    """torchvision.models.alexnet as torch.onnx.export (opset 17, dynamic batch) writes it."""
    inits = [numpy_helper.from_array(v.astype(np.float32), k) for k, v in sorted(tv.items())]
    nodes, x = [], "input"
    convs = [(0, 11, 4, 2), (3, 5, 1, 2), (6, 3, 1, 1), (8, 3, 1, 1), (10, 3, 1, 1)]
    pool_after = {0: 2, 3: 5, 10: 12}
    for idx, k, s, p in convs:
        y = f"/features/features.{idx}/Conv_output_0"
        nodes.append(helper.make_node(
            "Conv", [x, f"features.{idx}.weight", f"features.{idx}.bias"], [y],
            name=f"/features/features.{idx}/Conv", dilations=[1, 1], group=1,
            kernel_shape=[k, k], pads=[p, p, p, p], strides=[s, s]))
        r = f"/features/features.{idx + 1}/Relu_output_0"
        nodes.append(helper.make_node("Relu", [y], [r], name=f"/features/features.{idx + 1}/Relu"))
        x = r
        if idx in pool_after:
            m = pool_after[idx]
            y = f"/features/features.{m}/MaxPool_output_0"
            nodes.append(helper.make_node(
                "MaxPool", [x], [y], name=f"/features/features.{m}/MaxPool", ceil_mode=0,
                dilations=[1, 1], kernel_shape=[3, 3], pads=[0, 0, 0, 0], strides=[2, 2]))
            x = y
    nodes.append(helper.make_node("AveragePool", [x], ["/avgpool/AveragePool_output_0"],
                                  name="/avgpool/AveragePool", ceil_mode=0, count_include_pad=1,
                                  kernel_shape=[1, 1], pads=[0, 0, 0, 0], strides=[1, 1]))
    nodes.append(helper.make_node("Flatten", ["/avgpool/AveragePool_output_0"],
                                  ["/Flatten_output_0"], name="/Flatten", axis=1))
    x = "/Flatten_output_0"
    for i, idx in enumerate((1, 4, 6)):
        y = "logits" if idx == 6 else f"/classifier/classifier.{idx}/Gemm_output_0"
        nodes.append(helper.make_node(
            "Gemm", [x, f"classifier.{idx}.weight", f"classifier.{idx}.bias"], [y],
            name=f"/classifier/classifier.{idx}/Gemm", alpha=1.0, beta=1.0, transB=1))
        x = y
        if idx != 6:
            r = f"/classifier/classifier.{idx + 1}/Relu_output_0"
            nodes.append(helper.make_node("Relu", [x], [r],
                                          name=f"/classifier/classifier.{idx + 1}/Relu"))
            x = r
    ncls = tv["classifier.6.bias"].shape[0]
    g = helper.make_graph(
        nodes, "main_graph",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 224, 224])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", ncls])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)],
                          producer_name="pytorch", producer_version="2.5.1")
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def bvlc_style(cf, ceil_mode):
    """The model zoo's bvlcalexnet-12.onnx layout at reduced width (Caffe2 names and nodes)."""
    inits, nodes, x = [], [], "data_0"
    groups = [1, 2, 1, 2, 2]
    convs = [(11, 4, 0), (5, 1, 2), (3, 1, 1), (3, 1, 1), (3, 1, 1)]
    for i, ((k, s, p), g) in enumerate(zip(convs, groups)):
        n = i + 1
        inits.append(numpy_helper.from_array(cf[f"conv{n}.weight"], f"conv{n}_w_0"))
        inits.append(numpy_helper.from_array(cf[f"conv{n}.bias"], f"conv{n}_b_0"))
        nodes.append(helper.make_node("Conv", [x, f"conv{n}_w_0", f"conv{n}_b_0"], [f"conv{n}_1"],
                                      name=f"conv{n}_1", kernel_shape=[k, k], strides=[s, s],
                                      pads=[p] * 4, dilations=[1, 1], group=g))
        nodes.append(helper.make_node("Relu", [f"conv{n}_1"], [f"conv{n}_2"], name=f"conv{n}_2"))
        x = f"conv{n}_2"
        if n in (1, 2):
            nodes.append(helper.make_node("LRN", [x], [f"norm{n}_1"], name=f"norm{n}_1", **LRN))
            x = f"norm{n}_1"
        if n in (1, 2, 5):
            attrs = dict(kernel_shape=[3, 3], strides=[2, 2])
            if ceil_mode:
                attrs.update(ceil_mode=1, pads=[0, 0, 0, 0])
            else:
                attrs.update(pads=[0, 0, 1, 1])
            nodes.append(helper.make_node("MaxPool", [x], [f"pool{n}_1"], name=f"pool{n}_1",
                                          **attrs))
            x = f"pool{n}_1"
    inits.append(ints_tensor("OC2_DUMMY_1", [1, cf["fc6.weight"].shape[1]]))
    nodes.append(helper.make_node("Reshape", [x, "OC2_DUMMY_1"], ["OC2_DUMMY_0"],
                                  name="OC2_DUMMY_0"))
    x = "OC2_DUMMY_0"
    for n in (6, 7, 8):
        inits.append(numpy_helper.from_array(cf[f"fc{n}.weight"], f"fc{n}_w_0"))
        inits.append(numpy_helper.from_array(cf[f"fc{n}.bias"], f"fc{n}_b_0"))
        nodes.append(helper.make_node("Gemm", [x, f"fc{n}_w_0", f"fc{n}_b_0"], [f"fc{n}_1"],
                                      name=f"fc{n}_1", transB=1, alpha=1.0, beta=1.0))
        x = f"fc{n}_1"
        if n != 8:
            nodes.append(helper.make_node("Relu", [x], [f"fc{n}_2"], name=f"fc{n}_2"))
            nodes.append(helper.make_node("Dropout", [f"fc{n}_2"], [f"fc{n}_3", f"_fc{n}_mask"],
                                          name=f"drop{n}_1"))
            x = f"fc{n}_3"
    nodes.append(helper.make_node("Softmax", [x], ["prob_1"], name="prob_1", axis=1))
    ncls = cf["fc8.bias"].shape[0]
    g = helper.make_graph(
        nodes, "bvlc_alexnet",
        [helper.make_tensor_value_info("data_0", TensorProto.FLOAT, [1, 3, 224, 224])],
        [helper.make_tensor_value_info("prob_1", TensorProto.FLOAT, [1, ncls])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 12)],
                          producer_name="onnx-caffe2")
    m.ir_version = 7
    onnx.checker.check_model(m)
    return m


def with_output(m, name, n):
    m2 = onnx.ModelProto()
    m2.CopyFrom(m)
    m2.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [None, n]))
    return m2


def tiny_weights(names, groups, rng):
    """Reduced to widths 2 (convs) and 4, 4, 3 (dense): fuzz seeds of a few KB."""
    convs = [(11, 3), (5, 2), (3, 2), (3, 2), (3, 2)]
    out = {}
    for i, ((k, cin), g) in enumerate(zip(convs, groups)):
        out[names[i] + ".weight"] = rng.standard_normal((2, cin // g, k, k)).astype(np.float32)
        out[names[i] + ".bias"] = rng.standard_normal(2).astype(np.float32)
    for i, (o, n) in enumerate([(4, 72), (4, 4), (3, 4)]):
        out[names[5 + i] + ".weight"] = rng.standard_normal((o, n)).astype(np.float32)
        out[names[5 + i] + ".bias"] = rng.standard_normal(o).astype(np.float32)
    return out


def fuzz_seeds():
    """fuzz/corpus/{onnx,safetensors}: each layout of the fixtures above at tiny widths."""
    rng = np.random.default_rng(7)
    corpus = os.path.join(ROOT, "fuzz", "corpus")
    for d in ("onnx", "safetensors"):
        os.makedirs(os.path.join(corpus, d), exist_ok=True)
    tvn = ["features.0", "features.3", "features.6", "features.8", "features.10",
           "classifier.1", "classifier.4", "classifier.6"]
    tv = tiny_weights(tvn, [1] * 5, rng)
    onnx.save_model(torch_style(tv), os.path.join(corpus, "onnx", "torch_tiny.onnx"))
    cfn = ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"]
    cf = tiny_weights(cfn, [1, 2, 1, 2, 2], rng)
    onnx.save_model(bvlc_style(cf, ceil_mode=False), os.path.join(corpus, "onnx", "bvlc_tiny.onnx"))
    onnx.save_model(bvlc_style(cf, ceil_mode=True),
                    os.path.join(corpus, "onnx", "bvlc_ceil_tiny.onnx"))
    # The Keras 3 export's graph (make_export_fixtures.py) with tiny initializers.
    k = onnx.load(fx("keras_small_export_hwio.onnx"))
    kw = tiny_weights(cfn, [1] * 5, rng)
    conv_i = dense_i = 0
    by_name = {t.name: t for t in k.graph.initializer}
    for n in k.graph.node:
        if n.op_type == "Transpose" and n.input[0] in by_name:
            w = kw[f"conv{conv_i + 1}.weight"].transpose(2, 3, 1, 0)
            by_name[n.input[0]].CopyFrom(numpy_helper.from_array(np.ascontiguousarray(w), n.input[0]))
        elif n.op_type == "Conv":
            by_name[n.input[2]].CopyFrom(numpy_helper.from_array(kw[f"conv{conv_i + 1}.bias"], n.input[2]))
            conv_i += 1
        elif n.op_type == "MatMul":
            w = np.ascontiguousarray(kw[f"fc{dense_i + 6}.weight"].T)
            by_name[n.input[1]].CopyFrom(numpy_helper.from_array(w, n.input[1]))
        elif n.op_type == "Add" and dense_i < 3:
            by_name[n.input[1]].CopyFrom(numpy_helper.from_array(kw[f"fc{dense_i + 6}.bias"], n.input[1]))
            dense_i += 1
    for t in k.graph.initializer:
        if t.data_type == TensorProto.INT64 and list(numpy_helper.to_array(t)) == [1008]:
            t.CopyFrom(numpy_helper.from_array(np.array([72], np.int64), t.name))
    k.graph.output[0].type.tensor_type.shape.dim[1].dim_value = 3
    onnx.save_model(k, os.path.join(corpus, "onnx", "keras_hwio_tiny.onnx"))
    save_file({k: np.ascontiguousarray(v) for k, v in tv.items()},
              os.path.join(corpus, "safetensors", "torchvision_tiny.safetensors"),
              metadata={"classes": '["a", "b", "c"]', "arch": "torchvision"})
    save_file({k: np.ascontiguousarray(v.astype(np.float16)) for k, v in cf.items()},
              os.path.join(corpus, "safetensors", "caffe_tiny_f16.safetensors"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--alexnet", default=os.path.join(ROOT, "target", "release", "alexnet"))
    ap.add_argument("--fuzz-seeds", action="store_true",
                    help="only write the fuzz seeds (fuzz/corpus/onnx, fuzz/corpus/safetensors)")
    args = ap.parse_args()
    if args.fuzz_seeds:
        fuzz_seeds()
        return

    tv = load_npz("torchvision_small.npz")
    cf = load_npz("caffe_small.npz")
    x224 = np.load(fx("input_224.npy"))
    x227c = np.load(fx("input_227_caffe.npy"))
    x227k = np.load(fx("input_227_keras.npy"))

    # safetensors, written by the library itself.
    save_file({k: np.ascontiguousarray(v) for k, v in tv.items()},
              fx("torchvision_small.safetensors"),
              metadata={"format": "pt", "source": "torchvision_small.npz"})

    # torch.onnx.export layout, inline and with external data.
    m = torch_style(tv)
    onnx.save_model(m, fx("torchvision_small_torch.onnx"))
    check("torchvision_small_torch.onnx vs torchvision_logits",
          run(fx("torchvision_small_torch.onnx"), x224), np.load(fx("torchvision_logits.npy")))
    for f in ("torchvision_small_ext.onnx", "torchvision_small_ext.onnx.data"):
        if os.path.exists(fx(f)):
            os.remove(fx(f))
    onnx.save_model(m, fx("torchvision_small_ext.onnx"), save_as_external_data=True,
                    all_tensors_to_one_file=True, location="torchvision_small_ext.onnx.data",
                    size_threshold=0)
    check("torchvision_small_ext.onnx vs torchvision_logits",
          run(fx("torchvision_small_ext.onnx"), x224), np.load(fx("torchvision_logits.npy")))

    # Zoo layout at 224 (Caffe's rounding-up pools): its own reference logits.
    x224c = np.ascontiguousarray(x227c[:, :, 1:225, 1:225])
    np.save(fx("input_224_caffe.npy"), x224c)
    ncls = cf["fc8.bias"].shape[0]
    zoo = bvlc_style(cf, ceil_mode=False)
    onnx.save_model(zoo, fx("bvlc_small.onnx"))
    logits = np.concatenate([run(with_output(zoo, "fc8_1", ncls), x224c[i:i + 1], "fc8_1")
                             for i in range(len(x224c))])
    np.save(fx("bvlc_small_logits.npy"), logits)
    prob = np.concatenate([run(zoo, x224c[i:i + 1]) for i in range(len(x224c))])
    e = np.exp(logits - logits.max(1, keepdims=True))
    check("bvlc_small softmax(fc8) vs prob_1", e / e.sum(1, keepdims=True), prob)
    zoo_ceil = bvlc_style(cf, ceil_mode=True)
    onnx.save_model(zoo_ceil, fx("bvlc_small_ceil.onnx"))
    check("bvlc_small_ceil.onnx vs bvlc_small.onnx",
          np.concatenate([run(with_output(zoo_ceil, "fc8_1", ncls), x224c[i:i + 1], "fc8_1")
                          for i in range(len(x224c))]), logits)
    # Floor pools at 224 would leave pool5 at 5x5 (fc6 wants 6x6): the rounding matters.

    # Our exports, run by onnxruntime.
    for preset, x, want in (("torchvision", x224, "torchvision_logits.npy"),
                            ("caffe", x227c, "caffe_logits.npy"),
                            ("keras", x227k, "keras_logits.npy")):
        out = fx(f"export_{preset}.onnx")
        subprocess.run([args.alexnet, "export", "--weights", fx(f"{preset}_small.npz"), out],
                       check=True)
        onnx.checker.check_model(onnx.load(out))
        got = run(out, x)
        np.save(fx(f"export_{preset}_logits.npy"), got)
        check(f"export_{preset}.onnx (onnxruntime) vs {want}", got, np.load(fx(want)))


if __name__ == "__main__":
    main()

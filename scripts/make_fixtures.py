#!/usr/bin/env python3
"""Regenerate tests/fixtures/: small AlexNet-shaped nets, inputs and reference outputs.

Usage:
    pip install numpy onnx onnxruntime pillow
    python scripts/make_fixtures.py

torchvision_taps.npz (fc6/fc7 of torchvision_small by PyTorch) comes from
scripts/make_tap_fixtures.py, run after this one.

Reference outputs come from onnxruntime (CPUExecutionProvider, float32) running ONNX
graphs built here with onnx.helper. Every graph is also checked against a plain float64
numpy implementation of the same net; the script fails if they disagree by more than
1e-4 * max|logit|. Inputs are preprocessed with Pillow from the photos in assets/images/
(see tests/fixtures/README.md for the exact recipes). Weights are deterministic
(numpy default_rng with fixed seeds). Takes a few seconds on one core.
"""
import io
import os

# Keep CPU use modest (single-threaded BLAS / onnxruntime).
for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "tests", "fixtures")
IMG = os.path.join(ROOT, "assets", "images")

# ----------------------------------------------------------------------------- config
C = [12, 40, 56, 44, 28]          # conv channels c1..c5
H6, H7, NCLS = 100, 90, 7         # fc widths
FC6_IN = C[4] * 6 * 6             # 1008
SEEDS = {"torchvision": 20240601, "caffe": 20240602, "keras": 20240603, "lrn": 20240604}
LRN_DEFAULT = dict(size=5, alpha=1e-4, beta=0.75, bias=1.0)

# per conv layer: (kernel, stride, pad, groups); pool after conv index in POOL_AFTER
ARCH = {
    "torchvision": dict(
        input=224,
        convs=[(11, 4, 2, 1), (5, 1, 2, 1), (3, 1, 1, 1), (3, 1, 1, 1), (3, 1, 1, 1)],
        lrn_after=(), avgpool=True),
    "caffe": dict(
        input=227,
        convs=[(11, 4, 0, 1), (5, 1, 2, 2), (3, 1, 1, 1), (3, 1, 1, 2), (3, 1, 1, 2)],
        lrn_after=(0, 1), avgpool=False),
    "keras": dict(
        input=227,
        convs=[(11, 4, 0, 1), (5, 1, 2, 1), (3, 1, 1, 1), (3, 1, 1, 1), (3, 1, 1, 1)],
        lrn_after=(), avgpool=False),
}
POOL_AFTER = (0, 1, 4)

# key names per naming scheme
NAMES = {
    "torchvision": dict(conv=["features.0", "features.3", "features.6", "features.8", "features.10"],
                        fc=["classifier.1", "classifier.4", "classifier.6"]),
    "caffe": dict(conv=["conv1", "conv2", "conv3", "conv4", "conv5"], fc=["fc6", "fc7", "fc8"]),
    "keras": dict(conv=["conv2d", "conv2d_1", "conv2d_2", "conv2d_3", "conv2d_4"],
                  fc=["dense", "dense_1", "dense_2"]),
}


# ----------------------------------------------------------------------------- weights
# Canonical in-memory form ("pt"): lists conv_w (OIHW), conv_b, fc_w ([out,in], fc6
# columns in NCHW flatten order), fc_b.  Keras-layout files store HWIO / [in,out] with
# fc6 rows in NHWC flatten order.

def gen_pt(arch, rng):
    """Random net in PyTorch layout. N(0, sqrt(2/fan_in)) weights, N(0, 0.05) biases."""
    conv_w, conv_b, cin = [], [], 3
    for (k, _, _, g), cout in zip(arch["convs"], C):
        fan_in = cin // g * k * k
        conv_w.append(rng.normal(0, np.sqrt(2 / fan_in), (cout, cin // g, k, k)).astype(np.float32))
        conv_b.append(rng.normal(0, 0.05, (cout,)).astype(np.float32))
        cin = cout
    fc_w, fc_b, fin = [], [], FC6_IN
    for fout in (H6, H7, NCLS):
        fc_w.append(rng.normal(0, np.sqrt(2 / fin), (fout, fin)).astype(np.float32))
        fc_b.append(rng.normal(0, 0.05, (fout,)).astype(np.float32))
        fin = fout
    return dict(conv_w=conv_w, conv_b=conv_b, fc_w=fc_w, fc_b=fc_b)


def gen_keras(arch, rng):
    """Random net generated directly in Keras layout (HWIO, [in,out], fc6 rows NHWC)."""
    conv_k, conv_b, cin = [], [], 3
    for (k, _, _, g), cout in zip(arch["convs"], C):
        assert g == 1
        conv_k.append(rng.normal(0, np.sqrt(2 / (k * k * cin)), (k, k, cin, cout)).astype(np.float32))
        conv_b.append(rng.normal(0, 0.05, (cout,)).astype(np.float32))
        cin = cout
    fc_k, fc_b, fin = [], [], FC6_IN
    for fout in (H6, H7, NCLS):
        fc_k.append(rng.normal(0, np.sqrt(2 / fin), (fin, fout)).astype(np.float32))
        fc_b.append(rng.normal(0, 0.05, (fout,)).astype(np.float32))
        fin = fout
    return dict(conv_k=conv_k, conv_b=conv_b, fc_k=fc_k, fc_b=fc_b)


def fc6_nhwc_rows_to_nchw_cols(k):
    """Keras fc6 kernel [1008(h,w,c), out] -> PyTorch weight [out, 1008(c,h,w)]."""
    out = k.shape[1]
    return np.ascontiguousarray(k.reshape(6, 6, C[4], out).transpose(3, 2, 0, 1).reshape(out, FC6_IN))


def fc6_nchw_cols_to_nhwc_rows(w):
    """PyTorch fc6 weight [out, 1008(c,h,w)] -> Keras kernel [1008(h,w,c), out]."""
    out = w.shape[0]
    return np.ascontiguousarray(w.reshape(out, C[4], 6, 6).transpose(2, 3, 1, 0).reshape(FC6_IN, out))


def keras_to_pt(kw):
    return dict(
        conv_w=[np.ascontiguousarray(k.transpose(3, 2, 0, 1)) for k in kw["conv_k"]],
        conv_b=list(kw["conv_b"]),
        fc_w=[fc6_nhwc_rows_to_nchw_cols(kw["fc_k"][0])] + [np.ascontiguousarray(k.T) for k in kw["fc_k"][1:]],
        fc_b=list(kw["fc_b"]))


def pt_to_keras(pw):
    return dict(
        conv_k=[np.ascontiguousarray(w.transpose(2, 3, 1, 0)) for w in pw["conv_w"]],
        conv_b=list(pw["conv_b"]),
        fc_k=[fc6_nchw_cols_to_nhwc_rows(pw["fc_w"][0])] + [np.ascontiguousarray(w.T) for w in pw["fc_w"][1:]],
        fc_b=list(pw["fc_b"]))


def pt_dict(pw, scheme):
    n = NAMES[scheme]
    d = {}
    for name, w, b in zip(n["conv"], pw["conv_w"], pw["conv_b"]):
        d[name + ".weight"], d[name + ".bias"] = w, b
    for name, w, b in zip(n["fc"], pw["fc_w"], pw["fc_b"]):
        d[name + ".weight"], d[name + ".bias"] = w, b
    return d


def keras_dict(kw):
    n = NAMES["keras"]
    d = {}
    for name, k, b in zip(n["conv"], kw["conv_k"], kw["conv_b"]):
        d[name + "/kernel"], d[name + "/bias"] = k, b
    for name, k, b in zip(n["fc"], kw["fc_k"], kw["fc_b"]):
        d[name + "/kernel"], d[name + "/bias"] = k, b
    return d


def savez(path, d):
    # np.savez into a buffer (uncompressed; writing to a file object avoids the
    # automatic ".npz" suffix). Object arrays are pickled, as bad_object.npz needs.
    buf = io.BytesIO()
    np.savez(buf, **d)
    with open(path, "wb") as f:
        f.write(buf.getvalue())


# ----------------------------------------------------------------------------- ONNX graphs
def adaptive_windows(n_in, n_out):
    """PyTorch AdaptiveAvgPool rule: [floor(i*in/out), ceil((i+1)*in/out))."""
    return [((i * n_in) // n_out, -((-(i + 1) * n_in) // n_out)) for i in range(n_out)]


def build_graph(arch, weights, layout, dtype_note=""):
    """ONNX model for one net.

    layout "pt":    weights dict of canonical lists (OIHW, [out,in]); Flatten(NCHW) + Gemm(transB).
    layout "keras": weights dict of keras lists (HWIO, [in,out]); pool5 -> Transpose to NHWC ->
                    Flatten -> MatMul + Add, exactly as a Keras Sequential model computes it.
    Outputs: "logits" [N, classes] and "pool5" [N, 1008] (NCHW flatten, after avgpool if any).
    """
    nodes, inits = [], []

    def init(name, arr):
        inits.append(numpy_helper.from_array(np.asarray(arr, dtype=np.float32), name))
        return name

    x = "input"
    s = arch["input"]
    for i, (k, st, p, g) in enumerate(arch["convs"]):
        if layout == "pt":
            w = weights["conv_w"][i]
        else:
            w = weights["conv_k"][i].transpose(3, 2, 0, 1)  # HWIO -> OIHW for ONNX Conv
        wn, bn = init(f"conv{i+1}_w", w), init(f"conv{i+1}_b", weights["conv_b"][i])
        nodes.append(helper.make_node("Conv", [x, wn, bn], [f"conv{i+1}"], kernel_shape=[k, k],
                                      strides=[st, st], pads=[p, p, p, p], group=g))
        nodes.append(helper.make_node("Relu", [f"conv{i+1}"], [f"relu{i+1}"]))
        x = f"relu{i+1}"
        s = (s + 2 * p - k) // st + 1
        if i in arch["lrn_after"]:
            nodes.append(helper.make_node("LRN", [x], [f"norm{i+1}"], **LRN_DEFAULT))
            x = f"norm{i+1}"
        if i in POOL_AFTER:
            nodes.append(helper.make_node("MaxPool", [x], [f"maxpool{i+1}"], kernel_shape=[3, 3],
                                          strides=[2, 2]))
            x = f"maxpool{i+1}"
            s = (s - 3) // 2 + 1
    if arch["avgpool"]:
        # AdaptiveAvgPool2d((6,6)) as Slice + ReduceMean per window, rows then columns
        # (the mean over a rectangle is the mean of the row-means).
        wins = adaptive_windows(s, 6)
        for axis, tag in ((2, "h"), (3, "w")):
            parts = []
            for j, (a, b) in enumerate(wins):
                names = [f"ap{tag}{j}_start", f"ap{tag}{j}_end", f"ap{tag}{j}_axes"]
                for nm, val in zip(names, ([a], [b], [axis])):
                    inits.append(numpy_helper.from_array(np.array(val, dtype=np.int64), nm))
                nodes.append(helper.make_node("Slice", [x] + names, [f"ap{tag}{j}_sl"]))
                nodes.append(helper.make_node("ReduceMean", [f"ap{tag}{j}_sl"], [f"ap{tag}{j}_m"],
                                              axes=[axis], keepdims=1))
                parts.append(f"ap{tag}{j}_m")
            nodes.append(helper.make_node("Concat", parts, [f"avgpool_{tag}"], axis=axis))
            x = f"avgpool_{tag}"
    nodes.append(helper.make_node("Flatten", [x], ["pool5"], axis=1))
    if layout == "pt":
        h = "pool5"
        for i in range(3):
            wn, bn = init(f"fc{i+6}_w", weights["fc_w"][i]), init(f"fc{i+6}_b", weights["fc_b"][i])
            out = "logits" if i == 2 else f"fc{i+6}"
            nodes.append(helper.make_node("Gemm", [h, wn, bn], [out], transB=1))
            if i < 2:
                nodes.append(helper.make_node("Relu", [out], [f"relu{i+6}"]))
                h = f"relu{i+6}"
    else:
        nodes.append(helper.make_node("Transpose", [x], ["pool5_nhwc"], perm=[0, 2, 3, 1]))
        nodes.append(helper.make_node("Flatten", ["pool5_nhwc"], ["flat_nhwc"], axis=1))
        h = "flat_nhwc"
        for i in range(3):
            wn, bn = init(f"fc{i+6}_k", weights["fc_k"][i]), init(f"fc{i+6}_b", weights["fc_b"][i])
            out = "logits" if i == 2 else f"fc{i+6}"
            nodes.append(helper.make_node("MatMul", [h, wn], [f"fc{i+6}_mm"]))
            nodes.append(helper.make_node("Add", [f"fc{i+6}_mm", bn], [out]))
            if i < 2:
                nodes.append(helper.make_node("Relu", [out], [f"relu{i+6}"]))
                h = f"relu{i+6}"
    n_in = arch["input"]
    graph = helper.make_graph(
        nodes, "alexnet_small",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, n_in, n_in])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", NCLS]),
         helper.make_tensor_value_info("pool5", TensorProto.FLOAT, ["N", FC6_IN])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    return model


def run_onnx(model, x):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    logits, pool5 = sess.run(["logits", "pool5"], {"input": np.ascontiguousarray(x, dtype=np.float32)})
    return logits, pool5


def onnx_lrn(x, size, alpha, beta, bias):
    node = helper.make_node("LRN", ["x"], ["y"], size=int(size), alpha=float(alpha), beta=float(beta),
                            bias=float(bias))
    g = helper.make_graph([node], "lrn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(x.shape))])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(m)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(["y"], {"x": x})[0]


# ----------------------------------------------------------------------------- numpy float64
def np_conv(x, w, b, stride, pad, groups):
    n, cin, _, _ = x.shape
    cout, cin_g, k, _ = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(2, 3))[:, :, ::stride, ::stride]
    og = cout // groups
    outs = []
    for g in range(groups):
        wg = w[g * og:(g + 1) * og]
        xg = win[:, g * cin_g:(g + 1) * cin_g]
        outs.append(np.tensordot(xg, wg, axes=([1, 4, 5], [1, 2, 3])).transpose(0, 3, 1, 2))
    return np.concatenate(outs, axis=1) + b[None, :, None, None]


def np_maxpool(x):
    win = np.lib.stride_tricks.sliding_window_view(x, (3, 3), axis=(2, 3))[:, :, ::2, ::2]
    return win.max(axis=(4, 5))


def np_lrn(x, size, alpha, beta, bias):
    c = x.shape[1]
    lo, hi = (size - 1) // 2, size - 1 - (size - 1) // 2  # floor before, ceil after
    sq = np.pad(x * x, ((0, 0), (lo, hi), (0, 0), (0, 0)))
    s = sum(sq[:, i:i + c] for i in range(size))
    return x / (bias + alpha / size * s) ** beta


def np_adaptive_avg(x, out=6):
    hw = adaptive_windows(x.shape[2], out)
    ww = adaptive_windows(x.shape[3], out)
    y = np.empty(x.shape[:2] + (out, out))
    for i, (a, b) in enumerate(hw):
        for j, (c, d) in enumerate(ww):
            y[:, :, i, j] = x[:, :, a:b, c:d].mean(axis=(2, 3))
    return y


def np_forward(arch, weights, layout, x):
    """Float64 reference. layout as in build_graph."""
    relu = lambda t: np.maximum(t, 0)
    h = x.astype(np.float64)
    for i, (k, st, p, g) in enumerate(arch["convs"]):
        if layout == "pt":
            w = weights["conv_w"][i]
        else:
            w = weights["conv_k"][i].transpose(3, 2, 0, 1)
        h = relu(np_conv(h, w.astype(np.float64), weights["conv_b"][i].astype(np.float64), st, p, g))
        if i in arch["lrn_after"]:
            h = np_lrn(h, **LRN_DEFAULT)
        if i in POOL_AFTER:
            h = np_maxpool(h)
    if arch["avgpool"]:
        h = np_adaptive_avg(h)
    pool5 = h.reshape(h.shape[0], -1)
    if layout == "pt":
        f = pool5
        for i in range(3):
            f = f @ weights["fc_w"][i].astype(np.float64).T + weights["fc_b"][i]
            if i < 2:
                f = relu(f)
    else:
        f = h.transpose(0, 2, 3, 1).reshape(h.shape[0], -1)
        for i in range(3):
            f = f @ weights["fc_k"][i].astype(np.float64) + weights["fc_b"][i]
            if i < 2:
                f = relu(f)
    return f, pool5


def check_and_run(tag, arch, weights, layout, x, ref=None):
    """Run onnxruntime, compare with numpy float64 (and optionally with earlier logits)."""
    logits, pool5 = run_onnx(build_graph(arch, weights, layout), x)
    nl, npool = np_forward(arch, weights, layout, x)
    m = float(np.abs(nl).max())
    d = float(np.abs(logits - nl).max())
    dp = float(np.abs(pool5 - npool).max())
    frac = float((npool > 0).mean())
    line = (f"{tag:32s} max|logit| {m:10.4f}  ort-vs-numpy max diff {d:.3e} (rel {d / m:.2e})"
            f"  pool5 diff {dp:.2e} (max {np.abs(npool).max():.3g}, {frac:.0%} > 0)")
    print(line)
    assert d <= 1e-4 * m, f"{tag}: onnxruntime and numpy disagree: {d} > 1e-4*{m}"
    assert dp <= 1e-4 * float(np.abs(npool).max()), f"{tag}: pool5 disagrees"
    if ref is not None:
        dr = float(np.abs(logits - ref).max())
        print(f"{'':32s} vs original layout: max diff {dr:.3e}")
        assert dr <= 1e-4 * m, f"{tag}: cross-layout logits differ by {dr}"
    return logits.astype(np.float32), pool5.astype(np.float32)


# ----------------------------------------------------------------------------- preprocessing
def load_rgb(name):
    return Image.open(os.path.join(IMG, name)).convert("RGB")


def resize_shorter(img, size):
    # torchvision.transforms.functional.resize rule for an int size: shorter side -> size,
    # longer side -> int(size * long / short) (truncated).
    w, h = img.size
    if w <= h:
        nw, nh = size, int(size * h / w)
    else:
        nh, nw = size, int(size * w / h)
    return img.resize((nw, nh), Image.BILINEAR)


def center_crop(img, size):
    # torchvision.transforms.functional.center_crop: top = int(round((h - size) / 2.0)),
    # left likewise (Python round: halves to even).
    w, h = img.size
    top = int(round((h - size) / 2.0))
    left = int(round((w - size) / 2.0))
    return img.crop((left, top, left + size, top + size))


def to_chw(img):
    return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1).astype(np.float32)


def prep_torchvision(name, crop=224):
    x = to_chw(center_crop(resize_shorter(load_rgb(name), 256), crop))
    mean = np.array([0.485, 0.456, 0.406], dtype=np.float32)[:, None, None]
    std = np.array([0.229, 0.224, 0.225], dtype=np.float32)[:, None, None]
    return ((x / np.float32(255)) - mean) / std  # float32 ops, as ToTensor + Normalize


def prep_caffe(name):
    img = load_rgb(name).resize((256, 256), Image.BILINEAR)
    x = to_chw(center_crop(img, 227))[::-1]  # RGB -> BGR
    mean_bgr = np.array([104, 117, 123], dtype=np.float32)[:, None, None]
    return np.ascontiguousarray(x - mean_bgr)


def prep_keras(name):
    x = to_chw(center_crop(resize_shorter(load_rgb(name), 256), 227))
    return x / np.float32(255)


# ----------------------------------------------------------------------------- main
def main():
    os.makedirs(FIX, exist_ok=True)

    def save_npy(name, arr):
        np.save(os.path.join(FIX, name), np.ascontiguousarray(arr))

    photos = ["chelsea.jpg", "coffee.jpg", "astronaut.jpg"]
    x224 = np.stack([prep_torchvision(p) for p in photos]).astype(np.float32)
    x227c = np.stack([prep_caffe(p) for p in photos]).astype(np.float32)
    x227k = np.stack([prep_keras(p) for p in photos]).astype(np.float32)
    x256 = np.stack([prep_torchvision(p, crop=256) for p in ["rocket.jpg", "camera.png"]]).astype(np.float32)
    assert x224.shape == (3, 3, 224, 224) and x227c.shape == (3, 3, 227, 227)
    assert x227k.shape == (3, 3, 227, 227) and x256.shape == (2, 3, 256, 256)
    save_npy("input_224.npy", x224)
    save_npy("input_227_caffe.npy", x227c)
    save_npy("input_227_keras.npy", x227k)
    save_npy("input_256.npy", x256)
    save_npy("preprocess_torchvision.npy", x224[:1])
    save_npy("preprocess_caffe.npy", x227c[:1])
    save_npy("preprocess_keras.npy", x227k[:1])

    # --- torchvision preset
    tv = gen_pt(ARCH["torchvision"], np.random.default_rng(SEEDS["torchvision"]))
    tv_d = pt_dict(tv, "torchvision")
    savez(os.path.join(FIX, "torchvision_small.npz"), tv_d)
    tv_logits, tv_pool5 = check_and_run("torchvision 224", ARCH["torchvision"], tv, "pt", x224)
    save_npy("torchvision_logits.npy", tv_logits)
    save_npy("torchvision_pool5.npy", tv_pool5)
    tv256_logits, tv256_pool5 = check_and_run(
        "torchvision 256 (adaptive avgpool)", dict(ARCH["torchvision"], input=256), tv, "pt", x256)
    save_npy("torchvision_256_logits.npy", tv256_logits)
    save_npy("torchvision_256_pool5.npy", tv256_pool5)
    tvk = pt_to_keras(tv)
    savez(os.path.join(FIX, "torchvision_small_keras.npz"), keras_dict(tvk))
    check_and_run("torchvision_small_keras 224", ARCH["torchvision"], tvk, "keras", x224, ref=tv_logits)

    # f16 / f64 variants of the torchvision net
    savez(os.path.join(FIX, "torchvision_small_f64.npz"), {k: v.astype(np.float64) for k, v in tv_d.items()})
    savez(os.path.join(FIX, "torchvision_small_f16.npz"), {k: v.astype(np.float16) for k, v in tv_d.items()})
    tv16 = {k: [a.astype(np.float16).astype(np.float32) for a in v] for k, v in tv.items()}
    tv16_logits, _ = check_and_run("torchvision f16-rounded weights", ARCH["torchvision"], tv16, "pt", x224)
    save_npy("torchvision_f16_logits.npy", tv16_logits)
    print(f"{'':32s} f16 vs f32 logits: max diff {np.abs(tv16_logits - tv_logits).max():.3e}")

    # --- caffe preset
    cf = gen_pt(ARCH["caffe"], np.random.default_rng(SEEDS["caffe"]))
    cf_d = pt_dict(cf, "caffe")
    assert cf_d["conv2.weight"].shape == (40, 6, 5, 5)
    savez(os.path.join(FIX, "caffe_small.npz"), cf_d)
    cf_logits, cf_pool5 = check_and_run("caffe 227", ARCH["caffe"], cf, "pt", x227c)
    save_npy("caffe_logits.npy", cf_logits)
    save_npy("caffe_pool5.npy", cf_pool5)
    # how much does LRN (alpha=1e-4) change this net? (informational)
    no_lrn = dict(ARCH["caffe"], lrn_after=())
    nl, _ = np_forward(no_lrn, cf, "pt", x227c)
    print(f"{'':32s} caffe without LRN: logits change by {np.abs(nl - cf_logits).max():.3e}")

    # --- keras preset
    kr = gen_keras(ARCH["keras"], np.random.default_rng(SEEDS["keras"]))
    savez(os.path.join(FIX, "keras_small.npz"), keras_dict(kr))
    kr_logits, kr_pool5 = check_and_run("keras 227", ARCH["keras"], kr, "keras", x227k)
    save_npy("keras_logits.npy", kr_logits)
    save_npy("keras_pool5.npy", kr_pool5)
    krp = keras_to_pt(kr)
    savez(os.path.join(FIX, "keras_small_pt.npz"), pt_dict(krp, "caffe"))
    check_and_run("keras_small_pt 227", ARCH["keras"], krp, "pt", x227k, ref=kr_logits)
    # the NHWC flatten order matters: reading keras_small.npz with a plain transpose
    # (no fc6 row permutation) must give different logits
    naive = keras_to_pt(kr)
    naive["fc_w"][0] = np.ascontiguousarray(kr["fc_k"][0].T)
    nv, _ = np_forward(ARCH["keras"], naive, "pt", x227k)
    print(f"{'':32s} keras fc6 without NHWC->NCHW permutation: logits change by {np.abs(nv - kr_logits).max():.3e}")

    # --- LRN-sensitive case
    rng = np.random.default_rng(SEEDS["lrn"])
    x1 = rng.normal(0, 30, (2, 13, 5, 7)).astype(np.float32)
    x2 = rng.normal(0, 30, (2, 13, 5, 7)).astype(np.float32)
    p1 = np.array([5, 1e-4, 0.75, 1.0], dtype=np.float32)
    p2 = np.array([3, 0.5, 0.75, 2.0], dtype=np.float32)
    y1 = onnx_lrn(x1, 5, 1e-4, 0.75, 1.0)
    y2 = onnx_lrn(x2, 3, 0.5, 0.75, 2.0)
    for tag, x, y, p in (("lrn size5 a1e-4", x1, y1, p1), ("lrn size3 a0.5 k2", x2, y2, p2)):
        ny = np_lrn(x.astype(np.float64), int(p[0]), float(p[1]), float(p[2]), float(p[3]))
        d = np.abs(y - ny).max()
        rel = np.abs(y / x - 1).max()
        print(f"{tag:32s} max|y| {np.abs(ny).max():8.4f}  ort-vs-numpy {d:.3e}  max |y/x-1| {rel:.3f}")
        assert d <= 1e-5 * np.abs(ny).max()
    savez(os.path.join(FIX, "lrn_case.npz"), dict(x=x1, y=y1, params=p1, x2=x2, y2=y2, params2=p2))

    # --- bad files
    d = dict(tv_d)
    d["features.0.weight"] = d["features.0.weight"].astype(np.int32)
    savez(os.path.join(FIX, "bad_int.npz"), d)

    d = dict(tv_d)
    d["classifier.1.weight"] = np.array([{"not": "an array"}, "x", 1.5], dtype=object)
    savez(os.path.join(FIX, "bad_object.npz"), d)  # np.savez pickles object arrays

    with open(os.path.join(FIX, "torchvision_small.npz"), "rb") as f:
        data = f.read()
    with open(os.path.join(FIX, "bad_truncated.npz"), "wb") as f:
        f.write(data[: len(data) // 2])

    d = dict(tv_d)
    d["features.3.weight"] = np.random.default_rng(7).normal(0, 0.1, (40, 11, 5, 5)).astype(np.float32)
    del d["classifier.1.bias"]
    d["extra.weight"] = np.zeros((4, 4), dtype=np.float32)
    savez(os.path.join(FIX, "bad_shapes.npz"), d)

    # --- self-checks of what was written
    with np.load(os.path.join(FIX, "bad_object.npz"), allow_pickle=True) as z:
        assert z["classifier.1.weight"].dtype == object
    try:
        np.load(os.path.join(FIX, "bad_object.npz"))["classifier.1.weight"]
        raise AssertionError("bad_object.npz loaded without pickle")
    except ValueError:
        pass
    for f in ("torchvision_small.npz", "caffe_small.npz", "keras_small.npz"):
        with np.load(os.path.join(FIX, f)) as z:
            assert all(z[k].dtype == np.float32 for k in z.files)

    total = 0
    for f in sorted(os.listdir(FIX)):
        total += os.path.getsize(os.path.join(FIX, f))
    print(f"fixtures total: {total / 1e6:.2f} MB")
    print("versions: numpy", np.__version__, "onnx", onnx.__version__, "onnxruntime", ort.__version__,
          "pillow", Image.__version__)


if __name__ == "__main__":
    main()

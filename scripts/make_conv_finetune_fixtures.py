"""PyTorch references for `train-head --train-from conv4` (issue 11) and `--train-from conv1`:
the reduced-width net of each preset (tests/fixtures/{torchvision,caffe,keras_small_pt}.npz,
made by make_fixtures.py) fine-tuned from conv4 (every preset) or from conv1 (torchvision,
Caffe, and the zoo-style BVLC ONNX bvlc_small.onnx: conv1's K = 363 is not a multiple of 4,
Caffe adds LRN and groups to the backward, the ONNX file max pools that round up)
with `requires_grad`, step by step, in float64. CI never runs this; tests/it/finetune_conv.rs
reads what it writes:

    python scripts/make_conv_finetune_fixtures.py   # tests/fixtures/finetune_<first>_<preset>.npz

Protocol (the Rust test runs the same): inputs = the three preprocessed fixture images
(input_224.npy / input_227_caffe.npy / input_227_keras.npy) with labels 0, 1, 2; a new fc8
with 3 classes (uniform +-1/sqrt(fan_in) from numpy seed 11, stored as `init/fc8.*`); conv1..conv3
frozen (from conv4; none from conv1); conv4 (conv1), conv5, fc6, fc7, fc8 trained by torch.optim.SGD(lr 1e-3 (Caffe 1e-6), momentum 0.9,
weight_decay 5e-4) on the mean cross-entropy; no dropout; batches of 2 in order (images
[0, 1], then [2], as `--no-shuffle --batch 2`), 4 steps. Stored: `loss` (each step's batch
loss before its update) and `delta/<layer>.weight|bias` (final minus initial values) of every
trained layer. Weights: the fixture files' own (random, made by make_fixtures.py; MIT like the
repository).
"""
import pathlib

import numpy as np
import torch
import torch.nn.functional as F

FIX = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures"
PRESETS = {
    # file, input, key prefixes of conv1..conv5 and fc6..fc8, conv (k, s, p, groups), lrn, avgpool
    "torchvision": ("torchvision_small.npz", "input_224.npy",
                    ["features.0", "features.3", "features.6", "features.8", "features.10",
                     "classifier.1", "classifier.4", "classifier.6"],
                    [(4, 2, 1), (1, 2, 1), (1, 1, 1), (1, 1, 1), (1, 1, 1)], False, True),
    "caffe": ("caffe_small.npz", "input_227_caffe.npy",
              ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"],
              [(4, 0, 1), (1, 2, 2), (1, 1, 1), (1, 1, 2), (1, 1, 2)], True, False),
    "keras": ("keras_small_pt.npz", "input_227_keras.npy",
              ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"],
              [(4, 0, 1), (1, 2, 1), (1, 1, 1), (1, 1, 1), (1, 1, 1)], False, False),
    # The zoo-style BVLC ONNX (make_format_fixtures.py): Caffe's layers, max pools rounding up
    # (ONNX pads [0, 0, 1, 1], i.e. ceil_mode), initializers conv1_w_0... Trained at Caffe's
    # 227 crop (what train-head feeds it; there the rounding changes no size, the kernels'
    # rounded-up windows are tested in tests/it/backward.rs), on input_227_caffe.npy / 64.
    "bvlc": ("bvlc_small.onnx", None,
             ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"],
             [(4, 0, 1), (1, 2, 2), (1, 1, 1), (1, 1, 2), (1, 1, 2)], True, False),
}
CEIL = {"bvlc"}
NAMES = ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"]
# First trained layer -> presets fine-tuned from it.
FIRSTS = {"conv4": ["torchvision", "caffe", "keras"], "conv1": ["torchvision", "caffe", "bvlc"]}
MOMENTUM, WD, BATCH, STEPS, CLASSES = 0.9, 5e-4, 2, 4, 3
# Rates that train without diverging in 4 steps: Caffe's inputs are 0..255, its logits large.
LR = {"torchvision": 1e-3, "caffe": 1e-6, "keras": 1e-3, "bvlc": 1e-3}


def load(wfile):
    """The fixture's weights by `<layer>.weight|bias` (.npz keys as stored; the ONNX file's
    initializers `conv1_w_0`, `conv1_b_0`, ... renamed)."""
    if wfile.endswith(".onnx"):
        import onnx
        from onnx import numpy_helper
        out = {}
        for t in onnx.load(FIX / wfile).graph.initializer:
            if t.name.endswith(("_w_0", "_b_0")):
                layer, kind = t.name[:-4], t.name[-3]
                out[layer + (".weight" if kind == "w" else ".bias")] = numpy_helper.to_array(t)
        return out
    return np.load(FIX / wfile)


def main():
    torch.set_default_dtype(torch.float64)
    for first, presets in FIRSTS.items():
        for preset in presets:
            run(first, preset)


def run(first, preset):
    if True:
        wfile, xfile, keys, convs, lrn, avgpool = PRESETS[preset]
        w = load(wfile)
        if xfile is None:
            # Caffe's fixture input scaled by 1/64 (exact in float32) to about +-2.
            x_np = np.load(FIX / "input_227_caffe.npy") / np.float32(64)
        else:
            x_np = np.load(FIX / xfile)
        x = torch.tensor(x_np, dtype=torch.float64)
        labels = torch.tensor([0, 1, 2])
        p = {}
        for name, key in zip(NAMES[:7], keys[:7]):
            p[name + ".weight"] = torch.tensor(w[key + ".weight"].astype(np.float64))
            p[name + ".bias"] = torch.tensor(w[key + ".bias"].astype(np.float64))
        rng = np.random.default_rng(11)
        fan_in = p["fc7.weight"].shape[0]
        bound = 1.0 / np.sqrt(fan_in)
        init8 = {
            "fc8.weight": rng.uniform(-bound, bound, (CLASSES, fan_in)).astype(np.float32),
            "fc8.bias": rng.uniform(-bound, bound, CLASSES).astype(np.float32),
        }
        for k, v in init8.items():
            p[k] = torch.tensor(v.astype(np.float64))
        trained = NAMES[NAMES.index(first):]
        for n in trained:
            p[n + ".weight"].requires_grad_()
            p[n + ".bias"].requires_grad_()
        init = {k: v.detach().clone() for k, v in p.items()}

        def forward(x):
            for i, (s, pad, g) in enumerate(convs):
                x = F.relu(F.conv2d(x, p[NAMES[i] + ".weight"], p[NAMES[i] + ".bias"],
                                    stride=s, padding=pad, groups=g))
                if lrn and i < 2:
                    x = F.local_response_norm(x, 5, alpha=1e-4, beta=0.75, k=1.0)
                if i in (0, 1, 4):
                    x = F.max_pool2d(x, 3, 2, ceil_mode=preset in CEIL)
            if avgpool:
                x = F.adaptive_avg_pool2d(x, 6)
            x = x.flatten(1)
            x = F.relu(F.linear(x, p["fc6.weight"], p["fc6.bias"]))
            x = F.relu(F.linear(x, p["fc7.weight"], p["fc7.bias"]))
            return F.linear(x, p["fc8.weight"], p["fc8.bias"])

        params = [p[n + s] for n in trained for s in (".weight", ".bias")]
        opt = torch.optim.SGD(params, lr=LR[preset], momentum=MOMENTUM, weight_decay=WD)
        order = [[0, 1], [2]]
        losses = []
        for step in range(STEPS):
            idx = order[step % len(order)]
            opt.zero_grad()
            loss = F.cross_entropy(forward(x[idx]), labels[idx])
            losses.append(loss.item())
            loss.backward()
            opt.step()
        out = {"loss": np.array(losses, dtype=np.float64), "lr": np.array(LR[preset])}
        for k, v in init8.items():
            out["init/" + k] = v
        for n in trained:
            for s in (".weight", ".bias"):
                out["delta/" + n + s] = (p[n + s] - init[n + s]).detach().numpy().astype(np.float32)
        path = FIX / f"finetune_{first}_{preset}.npz"
        np.savez(path, **out)
        print("wrote", path, "losses", losses, "with torch", torch.__version__)


main()

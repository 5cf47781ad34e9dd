#!/usr/bin/env python3
"""Writes the PyTorch and Keras weight-file fixtures of tests/it/pth.rs, tests/it/h5.rs,
tests/it/fetch.rs.

Every file is written by the real library (torch.save, Keras' own save functions), from the
weights of the existing fixtures, so the logits that onnxruntime computed for those
(`torchvision_logits.npy`, `keras_logits.npy`) apply unchanged. Each part also runs the network
in its own framework and stops if the logits differ from the onnxruntime ones by more than
1e-4 x max|logit|.

Three parts, each in its own environment (see tests/fixtures/README.md, "PyTorch and Keras
weight files", for the exact versions used):

    # torch (+ torchvision for the AlexNet module); Keras 3 on its torch backend
    python -m venv /tmp/wfx && . /tmp/wfx/bin/activate
    pip install numpy h5py keras scipy torch torchvision
    python scripts/make_weight_fixtures.py torch
    KERAS_BACKEND=torch python scripts/make_weight_fixtures.py keras3

    # Keras 2 (tf.keras of TensorFlow 2.15) for the Keras 2 .h5 layouts
    python -m venv /tmp/tf2 && . /tmp/tf2/bin/activate
    pip install tensorflow-cpu==2.15.1 h5py
    python scripts/make_weight_fixtures.py keras2
"""
import argparse
import collections
import io
import os
import pickle
import zipfile

import numpy as np

FIX = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")
FIX = os.path.normpath(FIX)
TOL = 1e-4


def fx(name):
    return os.path.join(FIX, name)


def check(what, got, want):
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    scale = np.abs(want).max()
    diff = np.abs(got - want).max()
    print(f"{what}: max|diff| {diff:.3g} (max|logit| {scale:.4g})")
    if diff > TOL * scale:
        raise SystemExit(f"{what}: logits differ from the onnxruntime reference")


# ---------------------------------------------------------------------------------------------
# PyTorch


def part_torch():
    import torch
    import torchvision
    from torch import nn

    print("torch", torch.__version__, "torchvision", torchvision.__version__)
    torch.manual_seed(0)

    # Reduced-width torchvision AlexNet: torchvision's own module (so the state_dict keys are
    # torchvision's), its conv/linear layers swapped for the fixture widths.
    m = torchvision.models.AlexNet(num_classes=7)
    m.features[0] = nn.Conv2d(3, 12, 11, stride=4, padding=2)
    m.features[3] = nn.Conv2d(12, 40, 5, padding=2)
    m.features[6] = nn.Conv2d(40, 56, 3, padding=1)
    m.features[8] = nn.Conv2d(56, 44, 3, padding=1)
    m.features[10] = nn.Conv2d(44, 28, 3, padding=1)
    m.classifier[1] = nn.Linear(28 * 6 * 6, 100)
    m.classifier[4] = nn.Linear(100, 90)
    m.classifier[6] = nn.Linear(90, 7)
    npz = np.load(fx("torchvision_small.npz"))
    m.load_state_dict({k: torch.from_numpy(npz[k]) for k in npz.files}, strict=True)
    m.eval()
    with torch.no_grad():
        logits = m(torch.from_numpy(np.load(fx("input_224.npy")))).numpy()
    check("torchvision_small.pth (torch forward)", logits, np.load(fx("torchvision_logits.npy")))
    torch.save(m.state_dict(), fx("torchvision_small.pth"))

    # Layout and dtype cases: strided views, storage offsets, shared storages, every float
    # dtype, a Parameter, an int64 counter (which must be refused by dtype, by key).
    base = torch.arange(12, dtype=torch.float32).reshape(3, 4) / 7
    shared = torch.linspace(-1, 1, 24, dtype=torch.float32)
    sd = collections.OrderedDict()
    sd["contiguous"] = base
    sd["transposed"] = base.t()  # stride (1, 4)
    sd["offset_view"] = shared[5:17].view(3, 4)  # storage offset 5, shared storage
    sd["strided_view"] = shared.view(4, 6)[:, ::2]  # stride (6, 2), shares the storage too
    sd["conv_permuted"] = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).reshape(2, 2, 2, 3).permute(3, 2, 0, 1)
    sd["float16"] = torch.tensor([[1.5, -2.25], [0.1, 65504.0]], dtype=torch.float16)
    sd["bfloat16"] = torch.tensor([1.5, -2.25, 3.0e38], dtype=torch.bfloat16)
    sd["float64"] = torch.tensor([[1.0 / 3, -1e-3]], dtype=torch.float64)
    sd["scalar"] = torch.tensor(0.25)
    sd["param"] = nn.Parameter(torch.full((2, 2), 0.5))
    sd["num_batches_tracked"] = torch.tensor(5)
    torch.save(sd, fx("pth_cases.pth"))
    torch.save(sd, fx("pth_cases_legacy.pth"), _use_new_zipfile_serialization=False)
    torch.save({"epoch": 3, "state_dict": sd}, fx("pth_cases_checkpoint.pt"))
    expected = {k: v.detach().float().contiguous().numpy() for k, v in sd.items() if v.is_floating_point()}
    np.savez(fx("pth_cases_expected.npz"), **expected)
    for k, v in sd.items():
        print(f"  pth_cases {k:20s} {str(v.dtype):15s} size {list(v.shape)} stride {v.stride()} offset {v.storage_offset()}")

    # Hostile: a zip in torch.save's layout whose data.pkl calls os.system when unpickled.
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo alexnet-wgpu-fixture-was-executed",))

    payload = pickle.dumps(Evil(), protocol=2)
    assert b"system" in payload
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr("evil/data.pkl", payload)
        z.writestr("evil/version", "3\n")
        z.writestr("evil/byteorder", "little")
    with open(fx("evil_os_system.pth"), "wb") as f:
        f.write(buf.getvalue())
    print("evil_os_system.pth globals:", [ln for ln in payload.split(b"\n")[:2]])


# ---------------------------------------------------------------------------------------------
# Keras


def keras_alexnet(keras):
    """The keras preset at the fixture widths (names conv2d, conv2d_1.., dense, dense_1, dense_2
    in a fresh session)."""
    L = keras.layers
    return keras.Sequential(
        [
            keras.Input((227, 227, 3)),
            L.Conv2D(12, 11, strides=4, padding="valid", activation="relu"),
            L.MaxPooling2D(3, 2),
            L.Conv2D(40, 5, padding="same", activation="relu"),
            L.MaxPooling2D(3, 2),
            L.Conv2D(56, 3, padding="same", activation="relu"),
            L.Conv2D(44, 3, padding="same", activation="relu"),
            L.Conv2D(28, 3, padding="same", activation="relu"),
            L.MaxPooling2D(3, 2),
            L.Flatten(),
            L.Dense(100, activation="relu"),
            L.Dense(90, activation="relu"),
            L.Dense(7),
        ]
    )


def keras_tiny(keras):
    L = keras.layers
    return keras.Sequential([keras.Input((6, 6, 3)), L.Conv2D(4, 3), L.Flatten(), L.Dense(5)])


def set_from_npz(model, npz):
    for layer in model.layers:
        if layer.weights:
            layer.set_weights([npz[f"{layer.name}/kernel"], npz[f"{layer.name}/bias"]])


def tiny_weights():
    rng = np.random.default_rng(20240610)
    return {
        "conv2d/kernel": rng.normal(size=(3, 3, 3, 4)).astype(np.float32),
        "conv2d/bias": rng.normal(size=(4,)).astype(np.float32),
        "dense/kernel": rng.normal(size=(64, 5)).astype(np.float32),
        "dense/bias": rng.normal(size=(5,)).astype(np.float32),
    }


def alexnet_checked(keras, what):
    keras.backend.clear_session()
    m = keras_alexnet(keras)
    names = [l.name for l in m.layers if l.weights]
    assert names == ["conv2d", "conv2d_1", "conv2d_2", "conv2d_3", "conv2d_4", "dense", "dense_1", "dense_2"], names
    set_from_npz(m, np.load(fx("keras_small.npz")))
    x = np.load(fx("input_227_keras.npy")).transpose(0, 2, 3, 1)
    check(f"{what} (Keras forward)", m.predict(x, verbose=0), np.load(fx("keras_logits.npy")))
    return m


def tiny(keras):
    keras.backend.clear_session()
    t = keras_tiny(keras)
    assert [l.name for l in t.layers if l.weights] == ["conv2d", "dense"]
    set_from_npz(t, tiny_weights())
    return t


def part_keras3():
    import keras

    print("keras", keras.__version__, "backend", keras.backend.backend())
    m = alexnet_checked(keras, "keras_small.weights.h5")
    m.save_weights(fx("keras_small.weights.h5"))

    np.savez(fx("keras_tiny_expected.npz"), **tiny_weights())
    t = tiny(keras)
    t.save_weights(fx("keras_tiny.weights.h5"))  # Keras 3 layout: layers/<name>/vars/<i>
    t.save(fx("keras_tiny.keras"))  # zip: config.json, metadata.json, model.weights.h5
    t.save(fx("keras_tiny_k3_model.h5"))  # Keras 3's writer of the legacy full-model .h5


def part_keras2():
    import tensorflow as tf

    keras = tf.keras
    import keras as keras_pkg  # the Keras 2 package behind tf.keras

    print("tensorflow", tf.__version__, "keras", keras_pkg.__version__)
    m = alexnet_checked(keras, "keras_small_k2.h5")
    m.save_weights(fx("keras_small_k2.h5"))  # Keras 2 save_weights: layer_names / weight_names
    m.save(fx("keras_small_k2_model.h5"), save_format="h5")  # full model: model_weights/...

    t = tiny(keras)
    t.save_weights(fx("keras_tiny_k2.h5"))
    t.save(fx("keras_tiny_k2_model.h5"), save_format="h5")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("part", choices=["torch", "keras3", "keras2"])
    args = ap.parse_args()
    {"torch": part_torch, "keras3": part_keras3, "keras2": part_keras2}[args.part]()
    print("done:", args.part)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Export the weights of a Keras AlexNet to an .npz for alexnet-wgpu.

Usage (needs keras / tensorflow):
    # a saved model (.keras / .h5 / SavedModel), any layer names:
    python scripts/export_keras_weights.py --model alexnet.keras --out alexnet_keras.npz
    # a weights-only file for the plain AlexNet Sequential built below:
    python scripts/export_keras_weights.py --weights alexnet.weights.h5 --out alexnet_keras.npz

For every Conv2D / Dense layer the file gets `<layer.name>/kernel` (conv HWIO
[kh, kw, in, out], dense [in, out]) and `<layer.name>/bias`, as float32. Layers without
weights (pooling, dropout, flatten, activations) are skipped; any other layer with
weights (e.g. BatchNormalization) is an error, since alexnet-wgpu does not run it.
Note that a Keras model flattens pool5 in NHWC order, so the rows of the first dense
kernel are in (h, w, c) order. The file is written to a temporary file next to --out
and then renamed into place.
"""
import argparse
import os
import tempfile

import numpy as np


def plain_alexnet(keras, classes):
    """The usual Keras AlexNet (227x227 input, no LRN, no groups), named like a fresh session."""
    L = keras.layers
    return keras.Sequential([
        keras.Input((227, 227, 3)),
        L.Conv2D(96, 11, strides=4, padding="valid", activation="relu", name="conv2d"),
        L.MaxPooling2D(3, 2, name="max_pooling2d"),
        L.Conv2D(256, 5, padding="same", activation="relu", name="conv2d_1"),
        L.MaxPooling2D(3, 2, name="max_pooling2d_1"),
        L.Conv2D(384, 3, padding="same", activation="relu", name="conv2d_2"),
        L.Conv2D(384, 3, padding="same", activation="relu", name="conv2d_3"),
        L.Conv2D(256, 3, padding="same", activation="relu", name="conv2d_4"),
        L.MaxPooling2D(3, 2, name="max_pooling2d_2"),
        L.Flatten(name="flatten"),
        L.Dense(4096, activation="relu", name="dense"),
        L.Dropout(0.5, name="dropout"),
        L.Dense(4096, activation="relu", name="dense_1"),
        L.Dropout(0.5, name="dropout_1"),
        L.Dense(classes, activation="softmax", name="dense_2"),
    ])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="saved Keras model, loaded with keras.models.load_model")
    src.add_argument("--weights", help="weights file for the plain AlexNet built by this script")
    ap.add_argument("--classes", type=int, default=1000, help="classes of the plain AlexNet (with --weights)")
    ap.add_argument("--out", required=True, help="output .npz path")
    args = ap.parse_args()

    try:
        import keras
    except ImportError:
        from tensorflow import keras

    if args.model:
        model = keras.models.load_model(args.model, compile=False)
    else:
        model = plain_alexnet(keras, args.classes)
        model.load_weights(args.weights)

    arrays = {}
    for layer in model.layers:
        w = layer.get_weights()
        if not w:
            continue
        kind = type(layer).__name__
        if kind not in ("Conv2D", "Dense") or len(w) != 2:
            raise SystemExit(f"layer {layer.name!r} ({kind}) has {len(w)} weight arrays; "
                             "only Conv2D / Dense with a bias are supported")
        arrays[f"{layer.name}/kernel"] = np.asarray(w[0], dtype=np.float32)
        arrays[f"{layer.name}/bias"] = np.asarray(w[1], dtype=np.float32)

    out = os.path.abspath(args.out)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=os.path.dirname(out))
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600
        os.replace(tmp, out)
    except BaseException:
        os.unlink(tmp)
        raise
    for k, v in arrays.items():
        print(f"{k:20s} {list(v.shape)}")
    print(f"wrote {out} ({os.path.getsize(out)} bytes)")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""tests/fixtures/torchvision_taps.npz: fc6 [3, 100] and fc7 [3, 90] of torchvision_small on
input_224, by PyTorch.

Usage (after scripts/make_fixtures.py, whose committed outputs it reads):
    pip install numpy torch
    python scripts/make_tap_fixtures.py

The net is built as torchvision's AlexNet (features / avgpool / classifier with the same
indices, so the committed state dict loads as is; only the widths are the fixture's): fc6 is
classifier[2]'s output (the ReLU after the first Linear), fc7 classifier[5]'s (the ReLU after
the second), what `alexnet features --layer fc6|fc7` and `AlexNet::embed` return. The script
first checks PyTorch's logits and pool5 against the committed onnxruntime ones.
"""
import io
import os

import numpy as np
import torch
from torch import nn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "tests", "fixtures")
C = [12, 40, 56, 44, 28]  # as scripts/make_fixtures.py
H6, H7, NCLS = 100, 90, 7
FC6_IN = C[4] * 6 * 6


def main():
    torch.set_num_threads(1)
    with np.load(os.path.join(FIX, "torchvision_small.npz")) as z:
        sd = {k: torch.from_numpy(z[k]) for k in z.files}
    x = torch.from_numpy(np.load(os.path.join(FIX, "input_224.npy")))
    features = nn.Sequential(
        nn.Conv2d(3, C[0], 11, 4, 2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(C[0], C[1], 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(C[1], C[2], 3, padding=1), nn.ReLU(),
        nn.Conv2d(C[2], C[3], 3, padding=1), nn.ReLU(),
        nn.Conv2d(C[3], C[4], 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2))
    classifier = nn.Sequential(
        nn.Dropout(), nn.Linear(FC6_IN, H6), nn.ReLU(),
        nn.Dropout(), nn.Linear(H6, H7), nn.ReLU(), nn.Linear(H7, NCLS))
    net = nn.Module()
    net.features, net.avgpool, net.classifier = features, nn.AdaptiveAvgPool2d(6), classifier
    net.load_state_dict(sd)
    net.eval()
    with torch.no_grad():
        pool5 = torch.flatten(net.avgpool(net.features(x)), 1)
        fc6 = classifier[:3](pool5).numpy()
        fc7 = classifier[:6](pool5).numpy()
        logits = classifier(pool5).numpy()
    for tag, got, name in (("logits", logits, "torchvision_logits.npy"),
                           ("pool5", pool5.numpy(), "torchvision_pool5.npy")):
        want = np.load(os.path.join(FIX, name))
        d = np.abs(got - want).max()
        print(f"torch vs onnxruntime {tag:6s}: max diff {d:.3e} (max |value| {np.abs(want).max():.3f})")
        assert d <= 1e-4 * np.abs(want).max()
    assert fc6.shape == (3, H6) and fc7.shape == (3, H7) and fc7.min() >= 0
    print(f"fc6: {(fc6 > 0).mean():.0%} positive, max {fc6.max():.3f}; "
          f"fc7: {(fc7 > 0).mean():.0%} positive, max {fc7.max():.3f}; torch {torch.__version__}")
    buf = io.BytesIO()
    np.savez(buf, fc6=fc6, fc7=fc7)
    with open(os.path.join(FIX, "torchvision_taps.npz"), "wb") as f:
        f.write(buf.getvalue())


if __name__ == "__main__":
    main()

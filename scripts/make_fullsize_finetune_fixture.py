"""PyTorch reference for issue 11's "Done when": the FULL-SIZE torchvision AlexNet fine-tuned
from conv4 with `requires_grad` (conv1..conv3 frozen), step by step, against `alexnet train-head
--train-from conv4` (tests/it/finetune_fullsize.rs). CI never runs this; it writes the small
fixture tests/fixtures/finetune_fullsize_conv4.npz:

    python scripts/make_fullsize_finetune_fixture.py

Real weights (233 MB) cannot be committed, so the weights, the init head and the images come
from an integer formula that gives the same f32 bits in numpy and in Rust (the test generates
them again): `hash(i, seed)` is a u32 multiply-xorshift of the element's flat index, and
`value = ((hash >> 8) / 2**24 - 0.5) * scale` with `scale` a power of two, so every step is exact
in f32 (24-bit integer, division by 2**24, subtraction of 0.5, multiplication by 2**k). Scales
are He-like (uniform variance scale**2/12 near 2/fan_in) so activations stay near 1.
Images: 2 classes (`a`, `b`) x 3 RGB 256x256 PNGs (`0.png`..`2.png`), pixel = hash >> 24 of
its flat (image, y, x, channel) index: at 256x256 torchvision's Resize(256) is the identity and
CenterCrop(224) takes rows/cols 16..240, so both preprocessings are exact; the normalisation is
done in float32 as the Rust LUT does ((v * f32(1/255) - mean) / std).

Protocol (the Rust test passes the same flags): torch.optim.SGD(lr 0.001, momentum 0.9,
weight_decay 0.5: large on purpose, so that the decay's share of each update is well above the
test's 1e-2 tolerance; 5e-4 would move these 3-step updates by ~2e-4 only, unseen) on the
`requires_grad` parameters (conv4, conv5, fc6, fc7, the new fc8), mean cross-entropy, dropout 0, batches of 2 in sorted (class, file) order as `--no-shuffle
--batch 2`, 3 steps. Float64: the reference is then free of rounding (f64 on f32-exact
weights and inputs), so what the test measures is our f32 GPU error alone, as in
make_conv_finetune_fixtures.py.

Stored (small): `loss` (each step's batch loss before its update); per trained tensor (torchvision
key names) of the update d = final - initial: `sumsq/K` (sum of d**2), `proj/K` (16 dot products
of d with +-1 vectors r_k[i] = sign bit of hash(i, 7000 + k): E[<e, r>^2] = |e|^2, so they
estimate the L2 error of a whole tensor), `sample/K` (d at 8 indices (k * 0x9E3779B1) % n) and,
for tensors of at most 8192 elements, `delta/K` (all of d).
"""
import pathlib

import numpy as np
import torch
import torch.nn.functional as F
import torchvision

FIX = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures"
M32 = np.uint64(0xFFFFFFFF)

# (key, shape, scale): the generated backbone, in this order (seed = position + 1).
TENSORS = [
    ("features.0.weight", (64, 3, 11, 11), 2.0**-4), ("features.0.bias", (64,), 2.0**-4),
    ("features.3.weight", (192, 64, 5, 5), 2.0**-3), ("features.3.bias", (192,), 2.0**-4),
    ("features.6.weight", (384, 192, 3, 3), 2.0**-3), ("features.6.bias", (384,), 2.0**-4),
    ("features.8.weight", (256, 384, 3, 3), 2.0**-4), ("features.8.bias", (256,), 2.0**-4),
    ("features.10.weight", (256, 256, 3, 3), 2.0**-3), ("features.10.bias", (256,), 2.0**-4),
    ("classifier.1.weight", (4096, 9216), 2.0**-4), ("classifier.1.bias", (4096,), 2.0**-4),
    ("classifier.4.weight", (4096, 4096), 2.0**-4), ("classifier.4.bias", (4096,), 2.0**-4),
    ("classifier.6.weight", (1000, 4096), 2.0**-4), ("classifier.6.bias", (1000,), 2.0**-4),
]
# The init head (--init-head): 2 classes.
HEAD = [("classifier.6.weight", (2, 4096), 2.0**-5, 101), ("classifier.6.bias", (2,), 2.0**-5, 102)]
TRAINED = ["features.8", "features.10", "classifier.1", "classifier.4", "classifier.6"]
CLASSES, PER_CLASS, SIZE, CROP = ["a", "b"], 3, 256, 224
LR, MOMENTUM, WD, BATCH, STEPS = 0.001, 0.9, 0.5, 2, 3
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
PROJ, SAMPLES, FULL = 16, 8, 8192


def hash32(i, seed):
    """The u32 hash of flat indices `i` (uint64 array) under `seed`; the Rust test's `hash`."""
    h = ((i * np.uint64(0x9E3779B1)) & M32) ^ np.uint64((seed * 0x85EBCA77) & 0xFFFFFFFF)
    h ^= h >> np.uint64(15)
    h = (h * np.uint64(0x2C1B3C6D)) & M32
    h ^= h >> np.uint64(12)
    h = (h * np.uint64(0x297A2D39)) & M32
    h ^= h >> np.uint64(15)
    return h


def values(shape, seed, scale):
    n = int(np.prod(shape))
    h = hash32(np.arange(n, dtype=np.uint64), seed)
    u = (h >> np.uint64(8)).astype(np.float32) / np.float32(2**24) - np.float32(0.5)
    return (u * np.float32(scale)).reshape(shape)


def image(index):
    """Image `index` (class-major, sorted order) as uint8 [H, W, 3]."""
    n = SIZE * SIZE * 3
    i = np.arange(n, dtype=np.uint64) + np.uint64(index * n)
    return (hash32(i, 77) >> np.uint64(24)).astype(np.uint8).reshape(SIZE, SIZE, 3)


def preprocess(img):
    top = (SIZE - CROP) // 2
    v = img[top:top + CROP, top:top + CROP].astype(np.float32)
    scale = np.float32(1.0) / np.float32(255.0)
    out = [(v[..., c] * scale - np.float32(MEAN[c])) / np.float32(STD[c]) for c in range(3)]
    return np.stack(out).astype(np.float32)


def main():
    torch.set_default_dtype(torch.float64)
    model = torchvision.models.alexnet(weights=None, dropout=0.0).double()
    state = {k: torch.tensor(values(s, t + 1, sc).astype(np.float64))
             for t, (k, s, sc) in enumerate(TENSORS)}
    model.load_state_dict(state)
    model.classifier[6] = torch.nn.Linear(4096, len(CLASSES)).double()
    head = {k: values(s, seed, sc) for k, s, sc, seed in HEAD}
    with torch.no_grad():
        model.classifier[6].weight.copy_(torch.tensor(head["classifier.6.weight"].astype(np.float64)))
        model.classifier[6].bias.copy_(torch.tensor(head["classifier.6.bias"].astype(np.float64)))
    named = dict(model.named_parameters())
    for k, p in named.items():
        p.requires_grad_(any(k.startswith(t + ".") for t in TRAINED))
    init = {k: p.detach().clone() for k, p in named.items()}
    x = torch.tensor(np.stack([preprocess(image(i)) for i in range(len(CLASSES) * PER_CLASS)])
                     .astype(np.float64))
    labels = torch.tensor([c for c in range(len(CLASSES)) for _ in range(PER_CLASS)])
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=LR, momentum=MOMENTUM, weight_decay=WD)
    model.train()
    losses = []
    for step in range(STEPS):
        idx = list(range(step * BATCH, step * BATCH + BATCH))
        opt.zero_grad()
        loss = F.cross_entropy(model(x[idx]), labels[idx])
        losses.append(loss.item())
        loss.backward()
        opt.step()
    out = {"loss": np.array(losses, dtype=np.float64),
           "lr": np.array(LR), "momentum": np.array(MOMENTUM), "weight_decay": np.array(WD)}
    for k, p in named.items():
        if not p.requires_grad:
            assert torch.equal(p, init[k]), k
            continue
        d = (p - init[k]).detach().numpy().ravel()
        n = d.size
        idx = np.arange(n, dtype=np.uint64)
        out["sumsq/" + k] = np.array(float(np.dot(d, d)))
        proj = []
        for j in range(PROJ):
            r = np.where(hash32(idx, 7000 + j) >> np.uint64(31), 1.0, -1.0)
            proj.append(float(np.dot(d, r)))
        out["proj/" + k] = np.array(proj)
        out["sample/" + k] = np.array([d[(j * 0x9E3779B1) % n] for j in range(SAMPLES)])
        if n <= FULL:
            out["delta/" + k] = d.copy()
        print(k, "update L2", np.sqrt(out["sumsq/" + k]), "weights L2",
              float(init[k].norm()))
    path = FIX / "finetune_fullsize_conv4.npz"
    np.savez(path, **out)
    print("wrote", path, "losses", losses, "with torch", torch.__version__)


main()

"""Fixtures for fine-tuning (issue 11): a features file as numpy writes it, with only
`features` and `labels` (no `classes`, no `paths`). CI never runs this; it reads the output.

    python scripts/make_finetune_fixtures.py   # writes tests/fixtures/numpy_features.npz
"""
import pathlib

import numpy as np

out = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures"
rng = np.random.default_rng(11)
labels = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2], dtype=np.int64)
centres = np.array([[2.0, 0, 0, 0], [0, 2.0, 0, 0], [0, 0, 2.0, 0]], dtype=np.float32)
features = (centres[labels] + 0.1 * rng.standard_normal((12, 4))).astype(np.float32)
np.savez(out / "numpy_features.npz", features=features, labels=labels)
print("wrote", out / "numpy_features.npz")


def backward_chain():
    """Gradients by torch autograd (float64) through a reduced-width conv4-conv5-pool5 tail
    (conv 3x3 pad 1 -> ReLU -> conv 3x3 pad 1, 2 groups -> ReLU -> max pool 3/2 -> adaptive
    average pool 2x2) of f = sum(r * out), and through Caffe's LRN (torch's
    LocalResponseNorm has the same alpha / size convention). tests/it/backward.rs chains the
    GPU kernels and compares."""
    import torch

    torch.manual_seed(11)
    d = torch.float64
    x = torch.randn(2, 4, 9, 9, dtype=d, requires_grad=True)
    w1 = (0.3 * torch.randn(6, 4, 3, 3, dtype=d)).requires_grad_()
    b1 = (0.1 * torch.randn(6, dtype=d)).requires_grad_()
    w2 = (0.3 * torch.randn(4, 3, 3, 3, dtype=d)).requires_grad_()
    b2 = (0.1 * torch.randn(4, dtype=d)).requires_grad_()
    a1 = torch.relu(torch.nn.functional.conv2d(x, w1, b1, padding=1))
    a2 = torch.relu(torch.nn.functional.conv2d(a1, w2, b2, padding=1, groups=2))
    p = torch.nn.functional.max_pool2d(a2, 3, 2)
    out = torch.nn.functional.adaptive_avg_pool2d(p, 2)
    r = torch.randn(out.shape, dtype=d)
    (out * r).sum().backward()
    lx = (20 * torch.randn(2, 7, 5, 5, dtype=d)).requires_grad_()
    ly = torch.nn.functional.local_response_norm(lx, 5, alpha=1e-4, beta=0.75, k=1.0)
    lr = torch.randn(ly.shape, dtype=d)
    (ly * lr).sum().backward()
    f = lambda t: t.detach().numpy().astype(np.float32)
    np.savez(
        out_dir / "backward_chain.npz",
        x=f(x), w1=f(w1), b1=f(b1), w2=f(w2), b2=f(b2), r=f(r), out=f(out),
        dx=f(x.grad), dw1=f(w1.grad), db1=f(b1.grad), dw2=f(w2.grad), db2=f(b2.grad),
        lrn_x=f(lx), lrn_r=f(lr), lrn_dx=f(lx.grad),
    )
    print("wrote", out_dir / "backward_chain.npz", "with torch", torch.__version__)


out_dir = out
backward_chain()

#!/usr/bin/env python3
"""Export torchvision's pretrained AlexNet (IMAGENET1K_V1) to an .npz for alexnet-wgpu.

Usage (needs torch + torchvision and internet access for the first weight download):
    pip install torch torchvision numpy
    python scripts/export_torchvision_weights.py --out alexnet_torchvision.npz

Keys are the state_dict names (features.0.weight, ..., classifier.6.bias), values are
float32 arrays in PyTorch layout (conv OIHW, linear [out, in]). The file is written
uncompressed to a temporary file next to --out and then renamed into place.
The weights are under torchvision's licence terms (BSD-3-Clause code; see the
torchvision docs for the pretrained weights).
"""
import argparse
import os
import tempfile

import numpy as np


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="output .npz path")
    args = ap.parse_args()

    import torch  # noqa: F401  (imported here so --help works without torch)
    from torchvision.models import AlexNet_Weights, alexnet

    model = alexnet(weights=AlexNet_Weights.IMAGENET1K_V1).eval()
    arrays = {k: v.detach().cpu().float().numpy() for k, v in model.state_dict().items()}

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
        print(f"{k:24s} {str(v.dtype):8s} {list(v.shape)}")
    print(f"wrote {out} ({os.path.getsize(out)} bytes)")


if __name__ == "__main__":
    main()

"""Fit TinyDCT's entropy model: the Laplacian scale of each of the 3 × 64 DCT coefficients.

    python make_weights.py ../../../shared/data/bsds_train weights/v2.pt            # every image
    python make_weights.py ../../../shared/data/bsds_train weights/v1.pt --images 20

The maximum-likelihood scale of a Laplacian is the mean absolute value. Fit on training images
only (never on the images a suite evaluates on). The file holds tensors only, so it loads with
``torch.load(..., weights_only=True)``.
"""

import argparse

import torch
from tinydct.codec import TinyDCT

from pytest_nicrobust.datasets import load_dataset, to_tensor


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder")
    ap.add_argument("out")
    ap.add_argument("--images", type=int, default=None)
    ap.add_argument("--crop", type=int, default=256)
    args = ap.parse_args()
    x = to_tensor(load_dataset("train", args.folder, args.images, args.crop))
    net = TinyDCT(torch.ones(3, 64), step=1.0)
    coef = net.analysis(x) * net.steps.view(1, 3, 64, 1, 1)  # in coefficient units
    scales = coef.abs().mean(dim=(0, 3, 4))
    torch.save({"scales": scales.contiguous()}, args.out)
    print(f"{args.out}: scales from {len(x)} images, DC {scales[:, 0].tolist()}, highest AC {scales[:, -1].tolist()}")


if __name__ == "__main__":
    main()

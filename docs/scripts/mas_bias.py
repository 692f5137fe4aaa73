"""Where the Mask-as-Supervision skeleton term puts the joints (docs/benchmark.md, bench unsup).

Start from the ground-truth 2D joints of a labelled dataset, minimise the skeleton term
``‖G ⊙ (M − M_skel)‖²`` over the joints alone (Adam, lr 0.1, 200 steps) and print how far its
minimum lies from the truth, in pixels, with and without the geodesic weights G (the dataset's
stored ones, the paper's form).

    python docs/scripts/mas_bias.py DATASET [SIGMA] [--style paper|released]
        [--skeleton-term two_sided|one_sided|released] [--threshold 0.1]

``--style released`` draws the released code's mask (max over the bones and its extension lines,
arms at σ/√2); ``--skeleton-term one_sided`` gates the squared error by ``M_skel > threshold``;
``released`` is the released code's arithmetic (without G: the two-sided error times the support
fraction; ``maskpose.masks.loss``). SIGMA defaults to 2.0 px (``released`` gives σ ≈ 1.75 px at
64 px). A second line per run gives the mean drift of each joint.
"""
import argparse

import torch

from maskpose.conventions import H36M_BONES, H36M_JOINTS
from maskpose.data.batching import load_batch
from maskpose.data.dataset import MaskposeDataset
from maskpose.masks.loss import SKELETON_THRESHOLD, JointMaskSupervision
from maskpose.masks.skeleton import RELEASED_SIGMA_64
from maskpose.typing import SKELETON_TERMS

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("dataset")
parser.add_argument("sigma", nargs="?", default="2.0", help="line width in px, or 'released' (≈ 1.75 px at 64 px)")
parser.add_argument("--style", choices=("paper", "released"), default="paper")
parser.add_argument("--skeleton-term", choices=SKELETON_TERMS, default="two_sided")
parser.add_argument("--threshold", type=float, default=SKELETON_THRESHOLD)
args = parser.parse_args()

torch.set_num_threads(1)
data = MaskposeDataset(args.dataset)
res = data.resolution[0]  # square crops
sigma = RELEASED_SIGMA_64 * res / 64 if args.sigma == "released" else float(args.sigma)
batch = load_batch(data, torch.arange(min(32, len(data))), res, "cpu")
truth = batch["joints2d"][:, :17]
for geodesic in (True, False):
    supervision = JointMaskSupervision(
        size=(res, res), sigma=sigma, bones=H36M_BONES, style=args.style, physique=None,
        skeleton_term=args.skeleton_term, skeleton_threshold=args.threshold,
    )
    joints = truth.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([joints], lr=0.1)
    for _ in range(200):
        loss = supervision(joints, batch["mask"], batch.get("geodesic") if geodesic else None)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    drift = (joints.detach() - truth).norm(dim=-1)
    print(f"{args.style} style, {args.skeleton_term}, sigma {sigma:.3g} px, G {'on' if geodesic else 'off'}: "
          f"the minimum lies {float(drift.mean()):.2f} px (median {float(drift.median()):.2f}, "
          f"max {float(drift.max()):.2f}) from the true joints")
    print("  per joint (px): " + ", ".join(f"{name} {float(d):.1f}" for name, d in zip(H36M_JOINTS, drift.mean(0))))

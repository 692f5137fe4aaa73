"""Where the Mask-as-Supervision skeleton term puts the joints (docs/benchmark.md, bench unsup).

Start from the ground-truth 2D joints of a labelled dataset, minimise the skeleton term
``‖G ⊙ (M − M_skel)‖²`` over the joints alone (Adam, lr 0.1, 200 steps) and print how far its
minimum lies from the truth, in pixels, with and without the geodesic weights G.

    python docs/scripts/mas_bias.py DATASET [SIGMA]
"""
import sys

import torch

from maskpose.conventions import H36M_BONES
from maskpose.data.batching import load_batch
from maskpose.data.dataset import MaskposeDataset
from maskpose.masks.loss import JointMaskSupervision

torch.set_num_threads(1)
data = MaskposeDataset(sys.argv[1])
sigma = float(sys.argv[2]) if len(sys.argv) > 2 else 2.0
res = data.resolution[0]  # square crops
batch = load_batch(data, torch.arange(min(32, len(data))), res, "cpu")
truth = batch["joints2d"][:, :17]
for geodesic in (True, False):
    supervision = JointMaskSupervision(size=(res, res), sigma=sigma, bones=H36M_BONES, physique=None)
    joints = truth.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([joints], lr=0.1)
    for _ in range(200):
        loss = supervision(joints, batch["mask"], batch.get("geodesic") if geodesic else None)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    drift = (joints.detach() - truth).norm(dim=-1)
    print(f"sigma {sigma} px, G {'on' if geodesic else 'off'}: the minimum lies {float(drift.mean()):.2f} px "
          f"(median {float(drift.median()):.2f}, max {float(drift.max()):.2f}) from the true joints")

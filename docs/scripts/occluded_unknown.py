"""Mask-only adaptation on the synthetic ``occluded`` target, with and without the occluders'
footprint marked unknown (``valid`` 0, as ``maskpose data import coco --occlusion-aware`` marks the
other people of a photo). The images and masks are the same; only ``valid`` differs.

    OMP_NUM_THREADS=1 python docs/scripts/occluded_unknown.py ROOT SEEDS ls_lt|l2

ROOT gets the target's 400 training samples (``train``, and ``train_valid`` with the occluders'
footprint, captured from the generator, as ``valid``) and 200 labelled test samples. Each seed adapts
the shipped studio model for 150 steps of batch 16 at lr 1e-4 with fitting every 4th step (the
benchmark's full configuration) on each training set, and prints PA-MPJPE, MPJPE and IoU on the
test split beside the source's (docs/benchmark.md, issue 14).
"""
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

from maskpose.body.sampler import PoseDistribution
from maskpose.data.dataset import MaskposeDataset, write_dataset
from maskpose.synth import targets
from maskpose.synth.generator import SynthesisConfig, generate
from maskpose.train.config import TrainConfig
from maskpose.train.evaluate import evaluate_checkpoint
from maskpose.train.loop import train

torch.set_num_threads(1)
root, variant = Path(sys.argv[1]), sys.argv[3]
seeds = [int(s) for s in sys.argv[2].split(",")]
src = str(Path(__file__).resolve().parents[2] / "src" / "maskpose" / "assets" / "source_studio_64.pt")
captured = []
orig = targets.Occluders.apply
def apply(self, images, masks, rngs):
    """The generator's occluders, their footprint kept (the stored mask is 0 under them)."""
    out, occ = orig(self, images, masks, rngs)
    captured.append(occ.copy())
    return out, occ
targets.Occluders.apply = apply
cfg = SynthesisConfig(batch_size=32, device="cpu", geodesic=False)
if not (root / "train").exists():
    generate(root / "train", "occluded", 400, 64, 0, "train", False, cfg, pose_source=PoseDistribution().sampler(1))
    occ = np.concatenate(captured)
    captured.clear()
    d = MaskposeDataset(root / "train")
    arrays = {k: np.asarray(d.arrays[k]) for k in d.arrays}
    arrays["valid"] = (~occ).astype(np.uint8)
    assert not (arrays["mask"].astype(bool) & occ).any()
    write_dataset(root / "train_valid", arrays, domain="occluded", split="train")
    generate(root / "test", "occluded", 200, 64, 0, "test", True, cfg, pose_source=PoseDistribution().sampler(2))
losses = {"ls_lt": {"ls": 1.0, "lt": 1.0, "prior": 0.1}, "l2": {"l2": 1.0, "prior": 0.1}}[variant]
res = {"source": evaluate_checkpoint(src, root / "test")}
for data in ("train", "train_valid"):
    for seed in seeds:
        out = root / f"run_{variant}_{data}_{seed}"
        shutil.rmtree(out, ignore_errors=True)
        t = time.time()
        ck = train(TrainConfig(mode="adapt", data=str(root / data), init_checkpoint=src, out=str(out), steps=150,
                               batch_size=16, lr=1e-4, fit_every=4, fit_iterations=8, losses=losses, seed=seed,
                               log_every=50, checkpoint_every=10**9), progress=False).checkpoint
        m = evaluate_checkpoint(ck, root / "test")
        res[f"{data}/{seed}"] = m
        print(variant, data, seed, {k: round(m[k], 1) for k in ("pa_mpjpe", "mpjpe", "silhouette_iou")}, f"{time.time()-t:.0f}s", flush=True)
print("source", {k: round(res["source"][k], 1) for k in ("pa_mpjpe", "mpjpe", "silhouette_iou")})
json.dump({k: {kk: v[kk] for kk in ("pa_mpjpe", "mpjpe", "silhouette_iou")} for k, v in res.items()}, open(root / f"res_{variant}.json", "w"), indent=1)

"""The shipped real-photo model (``source_realistic_64.pt``, masked input) against the shipped
studio model, on synthetic test splits and on real person crops (docs/benchmark.md, "Real
photographs").

    python docs/scripts/photo_source_eval.py OUT_DIR [--real NAME=DATASET ...] [--model NAME=CKPT ...]
        [--n 500] [--json PATH]

Renders two test splits at each model's resolution (seed 0, split ``test``; never the training
seeds; the same people at every resolution): ``studio`` with the demo's pose distribution (as
docs/scripts/source_models.py does) and ``realistic`` with the photo model's pose distribution
(another sampler seed than its training split's), then evaluates each model (``maskpose evaluate``'s metrics: a masked-input model is fed the image times
the mask) on them and on every real dataset given (COCO imports: 2D keypoints and masks, floors
2-fold). ``--model`` adds checkpoints (e.g. the variants the recipe was chosen from).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from maskpose.apps.demo import SHIPPED_SOURCE, shipped_checkpoint
from maskpose.apps.photo_source import PHOTO_SOURCE, PhotoSourceRecipe
from maskpose.body.sampler import PoseDistribution
from maskpose.synth.generator import SynthesisConfig, generate
from maskpose.train.checkpoint import load_checkpoint
from maskpose.train.evaluate import evaluate_checkpoint

KEYS = ("mpjpe", "pa_mpjpe", "silhouette_iou", "pck2d@0.05", "pck2d@0.1", "pck2d@0.2", "pck2d_flip@0.1",
        "error2d_px", "floor_mean_pose_pck2d@0.1", "floor_mean_mask_iou", "num_keypoints")


def resolution_of(checkpoint: Path) -> int:
    """The input resolution of a checkpoint's model."""
    return int(load_checkpoint(checkpoint)["config"]["model"]["resolution"])


def synthetic_splits(out: Path, n: int, resolution: int) -> dict[str, Path]:
    """The ``studio`` and ``realistic`` test splits at ``resolution`` (rendered once under ``out``)."""
    config = SynthesisConfig(geodesic=False)
    splits = {}
    for domain, poses in (("studio", PoseDistribution().sampler(7)), ("realistic", PhotoSourceRecipe().poses.sampler(8))):
        folder = out / f"{domain}_test_{resolution}"
        if not (folder / "meta.json").exists():
            generate(folder, domain, n, resolution, seed=0, split="test", config=config, pose_source=poses)
        splits[f"{domain}@{resolution}"] = folder
    return splits


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--real", action="append", default=[], help="NAME=DATASET (a COCO import)")
    parser.add_argument("--model", action="append", default=[], help="NAME=CHECKPOINT (any resolution)")
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    real = {}
    for item in args.real:
        name, _, folder = item.partition("=")
        real[name] = Path(folder)
    models = {"studio-64 (shipped)": shipped_checkpoint(SHIPPED_SOURCE),
              "photo-64 (shipped)": shipped_checkpoint(PHOTO_SOURCE)}
    for item in args.model:
        name, _, path = item.partition("=")
        models[name] = Path(path)
    results: dict = {}
    for model_name, checkpoint in models.items():
        if checkpoint is None:
            print(f"{model_name}: not in the package")
            continue
        splits = {**synthetic_splits(args.out, args.n, resolution_of(checkpoint)), **real}
        for split_name, path in splits.items():
            metrics = evaluate_checkpoint(checkpoint, path)
            results.setdefault(model_name, {})[split_name] = metrics
            shown = "  ".join(f"{k} {metrics[k]:.1f}" for k in KEYS if isinstance(metrics.get(k), (int, float)))
            print(f"{model_name:22s} {split_name:14s} {shown}", flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

"""The shipped source models on synthetic test splits and on real person crops (docs/benchmark.md,
"Real photographs").

    python docs/scripts/source_models.py OUT_DIR [--realistic CKPT] [--real NAME=DATASET ...] [--json PATH]

Renders the studio test split at 64 and 128 px (the same people: one seed, one pose sampler) and
the realistic test split at 128 px, then evaluates the shipped 64 px studio model and, when given,
the 128 px realistic model (``--realistic``: not shipped; docs/configs/source_realistic_128_scratch.yaml
trains it) on each (each model at its own resolution; the 64 px model reads the 64 px studio
split), and on every real dataset given (COCO imports: 2D keypoints and masks, floors 2-fold).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from maskpose.apps.demo import shipped_checkpoint
from maskpose.body.sampler import PoseDistribution
from maskpose.synth.generator import SynthesisConfig, generate
from maskpose.train.evaluate import evaluate_checkpoint

KEYS = ("mpjpe", "pa_mpjpe", "pck", "silhouette_iou", "pck2d@0.05", "pck2d@0.1", "pck2d@0.2", "pck2d_flip@0.1",
        "error2d_px", "floor_mean_pose_pck2d@0.1", "floor_mean_mask_iou")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--realistic", type=Path, help="checkpoint of the 128 px realistic model")
    parser.add_argument("--real", action="append", default=[], help="NAME=DATASET (a COCO import)")
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    config = SynthesisConfig(geodesic=False)
    splits = {}
    for res in (64, 128):  # same seed and pose sampler: the same people at two resolutions
        path = args.out / f"studio_test_{res}"
        if not (path / "meta.json").exists():
            generate(path, "studio", args.n, res, seed=0, split="test", config=config,
                     pose_source=PoseDistribution().sampler(7))
        splits[f"studio@{res}"] = path
    path = args.out / "realistic_test_128"
    if not (path / "meta.json").exists():
        generate(path, "realistic", args.n, 128, seed=0, split="test", config=config)
    splits["realistic@128"] = path
    for item in args.real:
        name, _, folder = item.partition("=")
        splits[name] = Path(folder)
    models = {"studio-64 (shipped)": shipped_checkpoint(), "realistic-128": args.realistic}
    results: dict = {}
    for model_name, checkpoint in models.items():
        if checkpoint is None:
            print(f"{model_name}: no checkpoint (give --realistic CKPT)")
            continue
        for split_name, path in splits.items():
            if split_name.startswith("studio@") and (split_name == "studio@64") != model_name.startswith("studio-64"):
                continue  # each model reads the studio split at its own resolution
            metrics = evaluate_checkpoint(checkpoint, path)
            results.setdefault(model_name, {})[split_name] = metrics
            shown = "  ".join(f"{k} {metrics[k]:.1f}" for k in KEYS if isinstance(metrics.get(k), (int, float)))
            print(f"{model_name:24s} {split_name:14s} {shown}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

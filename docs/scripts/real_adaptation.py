"""Mask-only adaptation on real photographs, scored on held-out photographs.

For each real dataset (a COCO import: ``maskpose data import coco``, which records each crop's
photo as ``image_index`` and the crop's padding as ``valid``; a COCO keypoints JSON, imported
here; or a video's crops, ``maskpose masks extract``, which records ``frame_index`` and ``valid``),
the script splits it by photo, or in time for a video (``maskpose.data.split``: the people of one
photo stay on one side; a video's earlier frames in A, its later ones in B), adapts the source checkpoint on half A with several recipes, and evaluates the source and
every adapted model on half B (held out) and on A (adapted on) with ``evaluate_checkpoint``; the
floors are the means of half A (``floor_data=A``: on B, the constant prediction a model must beat;
on A, in-sample). It prints one markdown table per dataset: ``pck2d@0.1``, ``error2d_px`` and
``silhouette_iou`` on B and A.

Recipes: losses ``ls+lt+prior`` (method 1, the adapt default) and ``l2+prior`` (the pixel
baseline), each without and with the ``anchor`` to the source prediction (shape + camera
distance), each with the plain losses and with the occlusion-aware weight of false positives
(``--fp-weight``), each on two schedules: ``demo`` (lr 1e-4, fitting in the loop every 4th step:
``maskpose.apps.demo.demo_adapt_run()``) and ``fast`` (lr 1e-3, no fitting). ``--only`` keeps the
recipes whose name contains every given word. With ``--source-data S``, every recipe also
takes a supervised batch of the labelled synthetic split ``S`` on a ``--source-ratio`` share of
its steps (``TrainConfig.source_data``; the recipes' names gain ``+mix``): the source domain
keeps the model from fitting the few real people of A alone.

    python docs/scripts/real_adaptation.py DATASET_OR_JSON [...] [--checkpoint CKPT] [--steps 40]
        [--fp-weight 0.25] [--anchor-scale 1.0] [--out /tmp/maskpose_real_adaptation] [--only ls anchor]
        [--source-data S --source-ratio 0.5]

The source checkpoint defaults to the shipped default model, or the small 64 px studio model when
the default is not shipped. Runs are small (tiny real sets: a smoke measurement); the run folders
are replaced on every call.
"""
from __future__ import annotations

import argparse
import itertools
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from maskpose.apps.demo import SMALL_SOURCE, demo_adapt_run, shipped_checkpoint
from maskpose.data.adapters import import_coco
from maskpose.data.dataset import MaskposeDataset
from maskpose.data.split import split_dataset
from maskpose.train.evaluate import evaluate_checkpoint
from maskpose.train.loop import train

LOSSES = {"ls+lt+prior": {"ls": 1.0, "lt": 1.0, "prior": 0.1}, "l2+prior": {"l2": 1.0, "prior": 0.1}}
#: The anchor's weight beside each mask loss (times ``--anchor-scale``): ls and lt are distances in
#: pixels (a few px on these crops; a 10 % change of the camera scale moves them by about 1 px), l2 a
#: mean over pixels (about 0.05; the same change moves it by about 0.01), so the anchor's weight
#: follows the scale of the mask loss it balances: an anchor of 0.01 (a 10 % scale change) weighs
#: about as much as that change's effect on the mask loss.
ANCHOR_WEIGHTS = {"ls+lt+prior": 10.0, "l2+prior": 1.0}
SCHEDULES = {"demo": {"lr": 1e-4, "fit_every": 4}, "fast": {"lr": 1e-3, "fit_every": 0}}
COLUMNS = ("pck2d@0.1", "error2d_px", "silhouette_iou")
FLOORS = ("floor_mean_pose_pck2d@0.1", "floor_mean_pose_error2d_px", "floor_mean_mask_iou")


def default_checkpoint() -> Path:
    path = shipped_checkpoint() or shipped_checkpoint(SMALL_SOURCE)
    if path is None:
        sys.exit("no shipped source checkpoint; pass --checkpoint")
    return path


def recipes(fp_weight: float, anchor_scale: float, source_data: str = "",
            source_ratio: float = 0.5) -> list[tuple[str, dict]]:
    """``(name, TrainConfig changes)`` of every recipe (with ``source_data``: each mixed with it)."""
    mix = {"source_data": source_data, "source_ratio": source_ratio} if source_data else {}
    out = []
    for (loss_name, losses), anchored, fp, (schedule, changes) in itertools.product(
            LOSSES.items(), (False, True), (1.0, fp_weight), SCHEDULES.items()):
        name = " ".join([loss_name, "+anchor" if anchored else "", f"fp{fp:g}" if fp != 1.0 else "",
                         "+mix" if mix else "", schedule]).split()
        anchor = {"anchor": ANCHOR_WEIGHTS[loss_name] * anchor_scale} if anchored else {}
        out.append((" ".join(name), {"losses": {**losses, **anchor},
                                     "false_positive_weight": fp, **changes, **mix}))
    return out


def prepared(source: Path, work: Path, res: int) -> Path:
    """A dataset folder: ``source`` itself, or the import of a COCO JSON (images beside it)."""
    if source.suffix == ".json":
        return import_coco(source, source.parent, work / "data" / source.stem, res=res)
    return source


def scores(checkpoint, half_a: Path, half_b: Path, device: str) -> tuple[dict, dict]:
    """The metrics on B (held out) and on A (adapted on), both with the floors of A's means."""
    return (evaluate_checkpoint(checkpoint, half_b, device, floor_data=half_a),
            evaluate_checkpoint(checkpoint, half_a, device, floor_data=half_a))


def _cell(metrics: dict, key: str) -> str:
    value = metrics.get(key)
    return "—" if value is None else f"{value:.1f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="+", type=Path, help="dataset folders (COCO imports) or COCO JSON files")
    parser.add_argument("--checkpoint", type=Path, default=None, help="source checkpoint (default: shipped)")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--fit-iterations", type=int, default=8)
    parser.add_argument("--fp-weight", type=float, default=0.25, help="the occlusion-aware false_positive_weight")
    parser.add_argument("--anchor-scale", type=float, default=1.0, help="factor on ANCHOR_WEIGHTS")
    parser.add_argument("--fraction", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--res", type=int, default=128, help="crop size of JSON inputs")
    parser.add_argument("--only", nargs="*", default=(), help="keep recipes whose name contains every word")
    parser.add_argument("--source-data", default="", help="labelled synthetic split mixed into every recipe")
    parser.add_argument("--source-ratio", type=float, default=0.5, help="share of steps with a source batch")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("/tmp/maskpose_real_adaptation"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    checkpoint = args.checkpoint or default_checkpoint()
    chosen = [(n, c) for n, c in recipes(args.fp_weight, args.anchor_scale, args.source_data, args.source_ratio)
              if all(w in n.split() for w in args.only)]
    print(f"source {checkpoint}; {len(chosen)} recipes, {args.steps} steps at batch {args.batch_size}", flush=True)
    tables = []
    for source in args.inputs:
        data = prepared(source, args.out, args.res)
        name = data.name
        half_a, half_b = args.out / "split" / name / "a", args.out / "split" / name / "b"
        split = split_dataset(data, half_a, half_b, args.fraction, args.seed)
        has_valid = MaskposeDataset(half_a).has("valid")
        header = (f"### {name}: A {split['a']['num_samples']} people / B {split['b']['num_samples']} people, "
                  f"split by {split['by']}{'' if has_valid else ' (no valid field: padding counts)'}")
        print(header, flush=True)

        rows = []
        on_b, on_a = scores(checkpoint, half_a, half_b, args.device)
        rows.append(("floor (means of A)", [_cell(on_b, k) for k in FLOORS] + [_cell(on_a, k) for k in FLOORS]))
        rows.append(("source", [_cell(on_b, k) for k in COLUMNS] + [_cell(on_a, k) for k in COLUMNS]))
        for recipe, changes in chosen:
            run = args.out / "runs" / name / recipe.replace(" ", "_").replace("+", "p")
            shutil.rmtree(run, ignore_errors=True)
            config = replace(demo_adapt_run(), data=str(half_a), out=str(run), init_checkpoint=str(checkpoint),
                             steps=args.steps, batch_size=args.batch_size, fit_iterations=args.fit_iterations,
                             log_every=max(1, args.steps // 4), checkpoint_every=args.steps, seed=args.seed,
                             device=args.device, **changes)
            start = time.time()
            result = train(config, progress=False)
            on_b, on_a = scores(result.checkpoint, half_a, half_b, args.device)
            last = {k: round(v, 4) for k, v in result.history[-1].items() if k not in ("step", "time_s")}
            print(f"  {recipe}: {time.time() - start:.0f} s, last step {last}", flush=True)
            rows.append((recipe, [_cell(on_b, k) for k in COLUMNS] + [_cell(on_a, k) for k in COLUMNS]))
        lines = [header, "",
                 "| recipe | B pck2d@0.1 | B error2d_px | B silhouette_iou | A pck2d@0.1 | A error2d_px | A silhouette_iou |",
                 "|---|---|---|---|---|---|---|"]
        lines += [f"| {recipe} | " + " | ".join(cells) + " |" for recipe, cells in rows]
        tables.append("\n".join(lines))
    print("\n\n".join(tables))


if __name__ == "__main__":
    main()

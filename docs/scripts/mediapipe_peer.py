"""Measure the peer MediaPipe Pose (``mediapipe==0.10.14``) on a maskpose dataset folder.

A stand-alone script: it reads the dataset with numpy alone (``meta.json`` plus one ``.npy`` per
field, opened memory-mapped) and does not import maskpose, so it runs in a separate venv that has
mediapipe, e.g.::

    python3.11 -m venv /tmp/mpvenv
    /tmp/mpvenv/bin/pip install mediapipe==0.10.14
    /tmp/mpvenv/bin/python docs/scripts/mediapipe_peer.py /tmp/real/coco --json coco.json

Fields used: ``image`` (N, H, W, 3) uint8 RGB, ``joints2d`` (N, 17, 2) pixels in the H36M-17 order
(NaN where unlabelled, pixel centres at integer coordinates) and, with ``--segmentation``,
``mask`` (N, H, W) in {0, 1} (or {0, 255}).

Each crop is resized to ``--size`` px (bilinear) and run through MediaPipe Pose in static-image
mode by the benchmark's worker (``src/maskpose/bench/mediapipe_worker.py``, which ``maskpose bench
peers`` runs the same way; docs/peers.md). Its normalised landmarks (0 and 1 the image edges) map back to crop pixels as
``x * W - 0.5`` (pixel centres at integers). The 12 limb joints that COCO labels (hips, knees,
ankles, shoulders, elbows, wrists) are scored; MediaPipe's "left" is the person's left, as is
H36M-17's ``l_*``.

Metrics, over the labelled limb keypoints of all people:

- ``pck@t``: fraction of keypoints within ``t`` times the crop side; a person MediaPipe does not
  detect counts as a miss for every labelled keypoint;
- ``pck_flip@t``: the same where, per detected person, the landmarks or their left-right swap is
  used, whichever has the smaller mean error over that person's labelled limb keypoints;
- ``detection_rate``: people with landmarks / people;
- ``mean_error_px`` (and ``median_error_px``): 2D error over the keypoints of detected people, in
  crop pixels (also for the flip-aware choice);
- ``iou`` (``--segmentation``): silhouette IoU of MediaPipe's segmentation mask (resized back to
  the crop, threshold 0.5) against the dataset mask, a miss counting as 0.

The ``pose_landmark_full`` model (``--complexity 1``) ships in the wheel; ``0`` (lite) and ``2``
(heavy) are downloaded by mediapipe on first use, which fails offline.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

#: H36M-17 names (maskpose.conventions.H36M_JOINTS).
H36M_JOINTS = (
    "pelvis",
    "r_hip",
    "r_knee",
    "r_ankle",
    "l_hip",
    "l_knee",
    "l_ankle",
    "spine",
    "thorax",
    "neck",
    "head",
    "l_shoulder",
    "l_elbow",
    "l_wrist",
    "r_shoulder",
    "r_elbow",
    "r_wrist",
)

#: H36M-17 limb joint -> MediaPipe Pose landmark index (both "left" = the person's left).
H36M_TO_MEDIAPIPE = {
    "r_hip": 24,
    "r_knee": 26,
    "r_ankle": 28,
    "l_hip": 23,
    "l_knee": 25,
    "l_ankle": 27,
    "l_shoulder": 11,
    "l_elbow": 13,
    "l_wrist": 15,
    "r_shoulder": 12,
    "r_elbow": 14,
    "r_wrist": 16,
}
LIMB_NAMES = tuple(H36M_TO_MEDIAPIPE)
LIMB_H36M = np.array([H36M_JOINTS.index(n) for n in LIMB_NAMES])
LIMB_MP = np.array([H36M_TO_MEDIAPIPE[n] for n in LIMB_NAMES])
#: Permutation of LIMB_NAMES that swaps left and right.
LIMB_FLIP = np.array([LIMB_NAMES.index(("r_" if n.startswith("l_") else "l_") + n[2:]) for n in LIMB_NAMES])

THRESHOLDS = (0.05, 0.1, 0.2)


def load_dataset(path: Path, fields: tuple[str, ...]) -> tuple[dict, dict[str, np.ndarray]]:
    """``meta.json`` and the requested fields (memory-mapped ``DIR/<field>.npy``)."""
    meta_path = path / "meta.json"
    if not meta_path.is_file():
        sys.exit(f"{path}: no meta.json (not a maskpose dataset, or an unfinished write)")
    meta = json.loads(meta_path.read_text())
    arrays = {}
    for name in fields:
        if name not in meta.get("fields", {}):
            sys.exit(f"{path}: the dataset has no field {name!r} (fields: {sorted(meta.get('fields', {}))})")
        arr = np.load(path / f"{name}.npy", mmap_mode="r")
        if len(arr) != meta["num_samples"]:
            sys.exit(f"{path}/{name}.npy: {len(arr)} samples, meta.json says {meta['num_samples']}")
        arrays[name] = arr
    return meta, arrays


def _worker():
    """The benchmark's MediaPipe worker (src/maskpose/bench/mediapipe_worker.py), imported by path:
    it needs only numpy, cv2 and mediapipe, as this script does."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src" / "maskpose" / "bench"))
    import mediapipe_worker

    return mediapipe_worker


def run_mediapipe(images: np.ndarray, size: int, complexity: int, segmentation: bool):
    """Per crop: (12, 2) limb landmarks in crop pixels (or None), (H, W) bool mask (or None),
    and the (12,) landmark visibilities (``mediapipe_worker.run_pose`` on the 33 landmarks)."""
    worker = _worker()
    try:
        out = worker.run_pose(images, size, complexity, segmentation)
    except worker.WorkerError as exc:
        sys.exit(f"error: {exc}")
    results = []
    for i, found in enumerate(out["detected"]):
        if not found:
            results.append((None, None, None))
            continue
        xy = out["landmarks2d"][i, LIMB_MP].astype(np.float64)
        vis = out["visibility"][i, LIMB_MP].astype(np.float64)
        seg = out["segmentation"][i].astype(bool) if segmentation else None
        results.append((xy, seg, vis))
    return results


def score(joints2d: np.ndarray, preds, side: float, masks: np.ndarray | None) -> dict:
    gt = np.asarray(joints2d, np.float64)[:, LIMB_H36M]  # (N, 12, 2)
    labelled = ~np.isnan(gt).any(-1)  # (N, 12)
    n = len(gt)
    err = np.full(labelled.shape, np.inf)
    err_flip = np.full(labelled.shape, np.inf)
    detected = np.zeros(n, bool)
    flipped = np.zeros(n, bool)
    per_sample = []
    for i, (xy, _seg, vis) in enumerate(preds):
        entry = {"index": i, "labelled": int(labelled[i].sum()), "detected": xy is not None}
        if xy is not None:
            detected[i] = True
            e = np.linalg.norm(xy - gt[i], axis=-1)
            ef = np.linalg.norm(xy[LIMB_FLIP] - gt[i], axis=-1)
            err[i] = e
            lab = labelled[i]
            if lab.any():
                flipped[i] = ef[lab].mean() < e[lab].mean()
                entry["mean_error_px"] = float(e[lab].mean())
                entry["mean_error_flipped_px"] = float(ef[lab].mean())
            err_flip[i] = ef if flipped[i] else e
            entry["flip_better"] = bool(flipped[i])
            entry["landmarks_px"] = {name: [round(float(v), 2) for v in xy[j]] for j, name in enumerate(LIMB_NAMES)}
            entry["visibility"] = {name: round(float(vis[j]), 3) for j, name in enumerate(LIMB_NAMES)}
        per_sample.append(entry)

    total = int(labelled.sum())
    out = {
        "people": n,
        "labelled_keypoints": total,
        "detected": int(detected.sum()),
        "detection_rate": float(detected.mean()) if n else float("nan"),
        "flip_better_people": int(flipped.sum()),
    }
    for t in THRESHOLDS:
        thr = t * side
        out[f"pck@{t}"] = float(((err < thr) & labelled).sum() / total) if total else float("nan")
        out[f"pck_flip@{t}"] = float(((err_flip < thr) & labelled).sum() / total) if total else float("nan")
    det_lab = labelled & detected[:, None]
    out["detected_keypoints"] = int(det_lab.sum())
    for key, e in (("", err), ("_flip", err_flip)):
        vals = e[det_lab]
        out[f"mean_error{key}_px"] = float(vals.mean()) if vals.size else float("nan")
        out[f"median_error{key}_px"] = float(np.median(vals)) if vals.size else float("nan")
    # PCK over the keypoints of the detected people only (the landmarks' quality when found)
    for t in THRESHOLDS:
        cnt = int(det_lab.sum())
        out[f"pck_detected@{t}"] = float(((err < t * side) & det_lab).sum() / cnt) if cnt else float("nan")
    # per joint PCK@0.1 over all people
    out["pck@0.1_per_joint"] = {
        name: (
            float(((err[:, j] < 0.1 * side) & labelled[:, j]).sum() / labelled[:, j].sum())
            if labelled[:, j].any()
            else None
        )
        for j, name in enumerate(LIMB_NAMES)
    }
    if masks is not None:
        ious = []
        for i, (_xy, seg, _) in enumerate(preds):
            gt_m = np.asarray(masks[i]) > 0
            if seg is None:
                iou = 0.0
            else:
                union = (seg | gt_m).sum()
                iou = float((seg & gt_m).sum() / union) if union else 1.0
            ious.append(iou)
            per_sample[i]["iou"] = iou
        out["iou"] = float(np.mean(ious)) if ious else float("nan")
        det_ious = [v for v, (xy, _, _) in zip(ious, preds) if xy is not None]
        out["iou_detected"] = float(np.mean(det_ious)) if det_ious else float("nan")
    out["per_sample"] = per_sample
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dataset", type=Path, help="maskpose dataset folder (meta.json + .npy fields)")
    ap.add_argument(
        "--size", type=int, default=256, help="upscale the crop to this many px before running (default 256)"
    )
    ap.add_argument(
        "--complexity",
        type=int,
        choices=(0, 1, 2),
        default=1,
        help="MediaPipe model_complexity (default 1, the model the wheel ships)",
    )
    ap.add_argument("--segmentation", action="store_true", help="also score MediaPipe's segmentation mask (IoU)")
    ap.add_argument("--limit", type=int, default=None, help="only the first N samples")
    ap.add_argument("--json", type=Path, default=None, help="write the metrics here")
    args = ap.parse_args(argv)

    fields = ("image", "joints2d") + (("mask",) if args.segmentation else ())
    meta, arrays = load_dataset(args.dataset, fields)
    n = meta["num_samples"] if args.limit is None else min(args.limit, meta["num_samples"])
    images = arrays["image"][:n]
    h, w = images.shape[1:3]
    if h != w:
        print(f"note: crops are {h}x{w}; PCK uses the longer side", file=sys.stderr)
    side = float(max(h, w))

    t0 = time.perf_counter()
    preds = run_mediapipe(images, args.size, args.complexity, args.segmentation)
    elapsed = time.perf_counter() - t0
    res = score(arrays["joints2d"][:n], preds, side, arrays["mask"][:n] if args.segmentation else None)

    import mediapipe as mp

    report = {
        "dataset": str(args.dataset),
        "domain": meta.get("domain"),
        "split": meta.get("split"),
        "resolution": [int(h), int(w)],
        "size": args.size,
        "model_complexity": args.complexity,
        "segmentation": args.segmentation,
        "mediapipe": mp.__version__,
        "seconds": round(elapsed, 2),
        **res,
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")

    print(
        f"{args.dataset}  ({n} people, {h}x{w} crops, run at {args.size}px, "
        f"complexity {args.complexity}, {elapsed:.1f}s)"
    )
    print(
        f"  detected {res['detected']}/{n} ({res['detection_rate']:.1%}); "
        f"{res['labelled_keypoints']} labelled limb keypoints; "
        f"flip better for {res['flip_better_people']} of the detected"
    )
    print(f"  {'':14s}" + "".join(f"PCK@{t:<6}" for t in THRESHOLDS) + "mean err px")
    print(
        f"  {'as given':14s}" + "".join(f"{res[f'pck@{t}']:<10.3f}" for t in THRESHOLDS) + f"{res['mean_error_px']:.2f}"
    )
    print(
        f"  {'flip-aware':14s}"
        + "".join(f"{res[f'pck_flip@{t}']:<10.3f}" for t in THRESHOLDS)
        + f"{res['mean_error_flip_px']:.2f}"
    )
    print(f"  {'detected only':14s}" + "".join(f"{res[f'pck_detected@{t}']:<10.3f}" for t in THRESHOLDS))
    if args.segmentation:
        print(f"  silhouette IoU {res['iou']:.3f} (misses as 0); {res['iou_detected']:.3f} over the detected")
    return 0


if __name__ == "__main__":
    sys.exit(main())

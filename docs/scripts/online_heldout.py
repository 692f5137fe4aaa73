"""Online mode's error against frames on a fixed held-out test set (issue 16).

``static_camera_eval.py`` scores online mode's own per-frame predictions, window by window of the
stream; the later windows of its clip are harder (the frozen model's error rises too), so that
curve mixes learning with the stream's difficulty. This script holds the test fixed: the same
camera and clips as ``static_camera_eval.py`` (clip A, ``--seed``, is the stream; clip B,
``--seed + 1``, its labelled test crops), online mode (``apps.online``, default ``OnlineConfig``)
adapts on clip A, its model is saved every ``--snapshot-every`` frames, and every snapshot is
evaluated on clip B (``evaluate_checkpoint``, as ``maskpose evaluate``): MPJPE, PA-MPJPE and
silhouette IoU against frames seen. Frame 0 is the source model.

Run with one thread: ``OMP_NUM_THREADS=1 python docs/scripts/online_heldout.py --out /tmp/oh``
(about a minute).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import cv2
import matplotlib
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from static_camera_eval import KEYS, SOURCE, clip_parser, render_clip, write_samples  # noqa: E402

from maskpose.apps.online import CHECKPOINT_NAME, OnlineAdapter, OnlineConfig  # noqa: E402
from maskpose.synth.bgsub import BgsubConfig, clip_samples  # noqa: E402
from maskpose.train.evaluate import evaluate_checkpoint  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)

ROOT = Path(__file__).resolve().parents[2]


def parse() -> argparse.Namespace:
    p = clip_parser(__doc__.split("\n")[0], "work folder (clips, test set, run, snapshots)",
                    ROOT / "docs/results/online_heldout.json", ROOT / "docs/images/online_heldout.png")
    p.add_argument("--snapshot-every", type=int, default=25, help="frames between evaluated snapshots")
    p.add_argument("--update-steps", type=int, default=OnlineConfig().update_steps,
                   help="optimisation steps per adaptation round (OnlineConfig's default)")
    return p.parse_args()


def metrics_of(checkpoint: Path, test: Path) -> dict:
    m = evaluate_checkpoint(checkpoint, test)
    return {k: (round(float(m[k]), 4) if isinstance(m.get(k), float) else m.get(k)) for k in KEYS}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def main() -> None:
    args = parse()
    if args.snapshot_every < 1:
        raise SystemExit("--snapshot-every must be >= 1")
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    settings = BgsubConfig(frame_stride=2, mocap_share=0.0)   # static_camera_eval.py's crops
    clip_a, _, _, _ = render_clip(out / "clip_a", args.frames, args.seed, args, settings)
    clip_b, gt_b, truth_b, _ = render_clip(out / "clip_b", args.test_frames, args.seed + 1, args, settings)
    samples_b, summary_b = clip_samples(clip_b, gt_b, truth_b, settings, args.res, labels=True,
                                        summary={"seed": args.seed + 1, "people": args.people})
    test = write_samples(out / "test", samples_b, args.res, True, "test", {"videos": [summary_b]})
    log(f"test set: {len(samples_b)} crops")

    config = replace(OnlineConfig(), update_steps=args.update_steps, seed=args.seed)
    run = out / "online"
    shutil.rmtree(run, ignore_errors=True)
    snapshots = out / "snapshots"
    shutil.rmtree(snapshots, ignore_errors=True)
    snapshots.mkdir(parents=True)
    adapter = OnlineAdapter(SOURCE, run, config)
    kept: list[tuple[int, Path]] = [(0, SOURCE)]

    def keep(index: int, fps: float) -> None:  # after frame `index`: a snapshot of the model so far
        if adapter.frames_done % args.snapshot_every == 0:
            path = snapshots / f"frame_{adapter.frames_done:05d}.pt"
            adapter.save()
            shutil.copyfile(run / CHECKPOINT_NAME, path)
            kept.append((adapter.frames_done, path))

    t0 = time.perf_counter()
    result = adapter.run(clip_a, progress=keep)
    log(f"online: {result.frames} frames, {result.updates} updates, {result.fps} frames/s "
        f"(snapshots saved inside the timing) in {time.perf_counter() - t0:.0f} s")

    if kept[-1][0] != adapter.frames_done:  # the model at the end of the stream
        kept.append((adapter.frames_done, result.checkpoint))
    rows = []
    for frames, path in kept:
        m = metrics_of(path, test)
        rows.append({"frames_seen": frames, **m})
        log(f"after {frames} frames: {m}")
    updates_by_frame = [h["frame"] for h in adapter.history]
    for row in rows:
        row["updates"] = sum(1 for f in updates_by_frame if f < row["frames_seen"])
    first, last = rows[0], rows[-1]
    results = {
        "issue": 16,
        "command": "OMP_NUM_THREADS=1 python docs/scripts/online_heldout.py "
                   + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()
                              if k not in ("json", "plot", "out")),
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k != "out"},
        "online_config": {k: v for k, v in asdict(config).items() if k != "losses"},
        "test_crops": len(samples_b), "stream_frames": result.frames, "updates": result.updates,
        "fps_with_snapshots": result.fps,
        "snapshots": rows,
        "change_pct": {k: round(100.0 * (last[k] - first[k]) / first[k], 2) for k in ("mpjpe", "pa_mpjpe")},
        "iou_change_points": round(last["silhouette_iou"] - first["silhouette_iou"], 2),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1))
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    x = [r["frames_seen"] for r in rows]
    axes[0].plot(x, [r["mpjpe"] for r in rows], "o-", label="MPJPE")
    axes[0].plot(x, [r["pa_mpjpe"] for r in rows], "s-", label="PA-MPJPE")
    axes[0].set_xlabel("stream frames seen (clip A)")
    axes[0].set_ylabel("mm on clip B")
    axes[0].legend()
    axes[1].plot(x, [r["silhouette_iou"] for r in rows], "o-", color="C2")
    axes[1].set_xlabel("stream frames seen (clip A)")
    axes[1].set_ylabel("silhouette IoU on clip B (%)")
    fig.suptitle(f"online mode, held-out clip B ({len(samples_b)} crops): {args.pitch:g} deg camera, "
                 f"{args.people} people")
    fig.tight_layout()
    args.plot.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.plot, dpi=110)
    log(f"wrote {args.json} and {args.plot}: {results['change_pct']}, IoU {results['iou_change_points']} points")


if __name__ == "__main__":
    main()

"""Run MediaPipe Pose over a maskpose dataset folder and save its raw outputs (``maskpose bench peers``).

A stand-alone script, run by the *peer's* interpreter (a venv with ``mediapipe==0.10.14``, see
docs/peers.md): it imports only the standard library, numpy, cv2 and mediapipe, never maskpose, so
mediapipe's own opencv-contrib-python and protobuf 4 stay out of the project's environment::

    .venv-peers/bin/python src/maskpose/bench/mediapipe_worker.py DATASET OUT.npz [--segmentation] [--size S]

Input: the dataset's ``meta.json`` and ``image.npy`` ((N, H, W, 3) uint8 RGB), opened memory-mapped.
Each crop is resized to ``--size`` px square (bilinear; default: the crop as it is) and run through
MediaPipe Pose in static-image mode (``model_complexity`` 1, ``pose_landmark_full``, the one model
the wheel ships; 0 and 2 are downloaded on first use, which fails offline).

Output ``OUT.npz`` (written atomically), per sample ``i``:

* ``detected (N,) bool`` — MediaPipe found a person;
* ``landmarks2d (N, 33, 2) float32`` — the 33 landmarks in crop pixels of the original ``H x W``
  crop, pixel centres at integer coordinates (MediaPipe's normalised ``x`` maps to ``x * W - 0.5``);
  NaN where not detected;
* ``visibility (N, 33) float32`` — MediaPipe's landmark visibility (NaN where not detected);
* ``world (N, 33, 3) float32`` — ``pose_world_landmarks``: metres, origin at the centre between the
  hips, x right, y down, z away from the camera (NaN where not detected);
* ``segmentation (N, H, W) uint8`` in {0, 1} (with ``--segmentation``) — the segmentation mask
  resized back to the crop, threshold 0.5 (zeros where not detected);
* ``mediapipe_version``, ``size``, ``model_complexity``, ``seconds`` (scalars).

Errors (no mediapipe, a model that cannot load offline, a folder that is not a dataset) are one line
on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

try:
    import cv2
except Exception as exc:  # reported as one line when the worker runs
    cv2 = None
    _CV2_ERROR = f"{type(exc).__name__}: {exc}"
try:
    import mediapipe as mp
except Exception as exc:  # ImportError, or a protobuf/numpy clash (TypeError, AttributeError)
    mp = None
    _MEDIAPIPE_ERROR = f"{type(exc).__name__}: {exc}"

#: Number of MediaPipe Pose landmarks.
NUM_LANDMARKS = 33


class WorkerError(Exception):
    """A failure reported as one line on stderr (exit code 2)."""


def load_images(path: Path) -> np.ndarray:
    """The dataset's ``image`` field (memory-mapped), checked against ``meta.json``."""
    meta_path = path / "meta.json"
    if not meta_path.is_file():
        raise WorkerError(f"{path}: no meta.json (not a maskpose dataset, or an unfinished write)")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as exc:
        raise WorkerError(f"{meta_path}: unreadable ({exc})") from None
    if "image" not in meta.get("fields", {}):
        raise WorkerError(f"{path}: the dataset has no field 'image' (fields: {sorted(meta.get('fields', {}))})")
    try:
        images = np.load(path / "image.npy", mmap_mode="r")
    except (OSError, ValueError) as exc:
        raise WorkerError(f"{path / 'image.npy'}: unreadable ({exc})") from None
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise WorkerError(f"{path / 'image.npy'}: expected (N, H, W, 3) uint8, got {images.shape} {images.dtype}")
    if len(images) != meta.get("num_samples"):
        raise WorkerError(f"{path / 'image.npy'}: {len(images)} samples, meta.json says {meta.get('num_samples')}")
    return images


def _check_imports() -> None:
    if cv2 is None:
        raise WorkerError(f"{sys.executable}: cannot import cv2 ({_CV2_ERROR}); "
                          "install mediapipe==0.10.14 in this interpreter's venv (it brings opencv-contrib-python)")
    if mp is None:
        raise WorkerError(f"{sys.executable}: cannot import mediapipe ({_MEDIAPIPE_ERROR}); make a peer venv: "
                          "python3.11 -m venv .venv-peers && .venv-peers/bin/pip install mediapipe==0.10.14")


def run_pose(images: np.ndarray, size: int | None = None, complexity: int = 1,
             segmentation: bool = False) -> dict[str, np.ndarray]:
    """MediaPipe Pose on every crop; returns the arrays of the module docstring (without the scalars)."""
    _check_imports()
    n, h, w = images.shape[:3]
    out = {
        "detected": np.zeros(n, bool),
        "landmarks2d": np.full((n, NUM_LANDMARKS, 2), np.nan, np.float32),
        "visibility": np.full((n, NUM_LANDMARKS), np.nan, np.float32),
        "world": np.full((n, NUM_LANDMARKS, 3), np.nan, np.float32),
    }
    if segmentation:
        out["segmentation"] = np.zeros((n, h, w), np.uint8)
    try:
        pose = mp.solutions.pose.Pose(static_image_mode=True, model_complexity=complexity,
                                      enable_segmentation=segmentation)
    except Exception as exc:  # URLError (an OSError) offline, RuntimeError for a bad graph
        raise WorkerError(f"mediapipe Pose (model_complexity={complexity}) could not load its model: "
                          f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}; "
                          "only complexity 1 (pose_landmark_full) ships in the wheel, 0 and 2 are downloaded") from None
    with pose:
        for i in range(n):
            img = np.ascontiguousarray(images[i])
            if size and (h, w) != (size, size):
                img = cv2.resize(img, (size, size), interpolation=cv2.INTER_LINEAR)
            res = pose.process(img)
            if res.pose_landmarks is None:
                continue
            out["detected"][i] = True
            lms = res.pose_landmarks.landmark
            out["landmarks2d"][i] = [[p.x * w - 0.5, p.y * h - 0.5] for p in lms]
            out["visibility"][i] = [p.visibility for p in lms]
            if res.pose_world_landmarks is not None:
                out["world"][i] = [[p.x, p.y, p.z] for p in res.pose_world_landmarks.landmark]
            if segmentation and res.segmentation_mask is not None:
                m = np.asarray(res.segmentation_mask, np.float32)
                if m.shape != (h, w):
                    m = cv2.resize(m, (w, h), interpolation=cv2.INTER_LINEAR)
                out["segmentation"][i] = m > 0.5
    return out


def save_npz(path: Path, arrays: dict) -> None:
    """``np.savez`` to a temporary file beside ``path``, then renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="MediaPipe Pose on a maskpose dataset folder -> .npz")
    ap.add_argument("dataset", type=Path, help="maskpose dataset folder (meta.json + image.npy)")
    ap.add_argument("out", type=Path, help="the .npz to write")
    ap.add_argument("--segmentation", action="store_true", help="also save MediaPipe's segmentation masks")
    ap.add_argument("--size", type=int, default=None,
                    help="resize each crop to SIZE x SIZE px before running (default: as it is)")
    ap.add_argument("--complexity", type=int, choices=(0, 1, 2), default=1,
                    help="model_complexity (default 1, the model the wheel ships)")
    args = ap.parse_args(argv)
    try:
        if args.size is not None and args.size < 16:
            raise WorkerError(f"--size must be at least 16 px, got {args.size}")
        _check_imports()
        images = load_images(args.dataset)
        start = time.perf_counter()
        arrays = run_pose(images, args.size, args.complexity, args.segmentation)
        arrays.update(mediapipe_version=np.array(str(mp.__version__)), size=np.array(args.size or 0),
                      model_complexity=np.array(args.complexity),
                      seconds=np.array(round(time.perf_counter() - start, 3)))
        save_npz(args.out, arrays)
    except WorkerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    n, det = len(arrays["detected"]), int(arrays["detected"].sum())
    print(f"{args.dataset}: {det}/{n} detected, {float(arrays['seconds']):.1f} s -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

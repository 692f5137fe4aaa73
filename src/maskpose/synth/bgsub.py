"""The ``bgsub`` adaptation target (issue 14): person masks from the project's own background
subtraction on synthetic static-camera videos, with all its errors, and 3D truth from the renderer.

A split is made of one or more short videos, each from its own seed
(``seed_sequence(seed, domain, split, BGSUB_STREAM, v)``, so the train and test splits never share
a video), video ``v`` rendered and written exactly as ``maskpose masks synth-video`` does
(:func:`maskpose.synth.video.render_frames`, written with
:func:`maskpose.data.video.write_video`: a level camera 1.2 m above a tiled
floor, people walking across the frame, flicker, sensor noise, the video codec), then extracted as
``maskpose masks extract`` does (:func:`maskpose.data.video.extract_video`: MOG2 background
subtraction, morphology, connected components, greedy tracking, smoothed square crop boxes). Videos
are added until the split has ``n`` samples; the first ``n`` are kept (so the first ``k`` samples of
a split do not depend on ``n``). Per video (:class:`BgsubConfig`): 1 or 2 people, each walking with
the procedural walk or, on a share of the videos, playing the shipped mocap clips.

**The masks** are the extractor's, errors included: boundaries eaten or swollen by the opening and
closing, holes and filled gaps, codec and noise speckle, two people merged into one blob when they
cross (``merged`` = 1; the crop is labelled with the person who covers most of the blob), the crop
box smoothed over time (so the person is not always centred). A detection that is mostly
background (less than :attr:`BgsubConfig.min_person_share` of its pixels on one person: a ghost,
a fragment) has no person to label and is left out of both splits.

**Off-centre crops and the camera.** The extractor cuts axis-aligned square windows of the frame,
i.e. an off-centre pinhole whose principal point is wherever the frame centre falls, while the
training stack assumes a centred crop camera (``weak_perspective_to_translation``, the crop
intrinsics of every other target). Each sample is therefore re-projected to the *perspective crop*
of its box, as ``maskpose synth --scene`` crops are (:func:`maskpose.data.scene.crop_camera`): a
virtual camera rotated by ``R`` to look at the box centre, with a centred principal point and focal
``f res / side``, stored per sample in ``intrinsics``; the image is the decoded video frame seen by
that camera (the homography ``K R^T K_crop^-1``, area-averaged first when it shrinks) and the mask
is the extractor's own crop mask (cut at twice the crop resolution) warped by the same rotation and
thresholded at one half. The labels are in the crop camera's frame: ``joints3d = R J`` for the
camera-frame joints ``J`` of the renderer, ``translation = R t``, ``pose`` with its global
orientation turned by ``R`` (:func:`maskpose.synth.scene.rotate_root`), ``joints2d`` their
projection by the crop intrinsics, so ``joints2d`` lies on the crop exactly where the person is.
``R`` is a rotation about the camera centre, so root-relative MPJPE (and PA-MPJPE) compare poses
in the same frame the model predicts in. ``crop_box`` keeps the extractor's box (source pixels),
``valid`` marks the crop pixels inside the frame (the rest is black, and never mask).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from maskpose.body.anny_body import AnnyBody
from maskpose.conventions import seed_sequence
from maskpose.data.dataset import DatasetWriter, MaskposeDataset
from maskpose.data.scene import crop_camera, crop_homography
from maskpose.data.video import ExtractionConfig, FrameSource, crop_square, extract_video, write_video
from maskpose.errors import ConfigError, DataError
from maskpose.masks import geodesic_weights
from maskpose.synth.scene import rotate_root
from maskpose.synth.targets import default_motion_library
from maskpose.synth.video import DEFAULT_FLICKER, DEFAULT_FPS, DEFAULT_NOISE, render_frames

#: Random stream of the videos of a split (the generator's are 1-9).
BGSUB_STREAM = 10
#: Labels of a labelled split (as :data:`maskpose.synth.generator.LABELS`).
LABELS = ("joints3d", "joints2d", "pose", "phenotypes", "translation")


@dataclass(frozen=True)
class BgsubConfig:
    """The videos and the extraction of the ``bgsub`` target, with their defaults in one place.

    Attributes:
        frames: frames per video.
        people: the least and most people per video (drawn per video, 1 to 4).
        frame_size: video frame ``(W, H)`` in pixels.
        mocap_share: share of the videos whose people play the shipped mocap clips (the others walk
            with the procedural walk).
        flicker, noise: global gain amplitude and sensor noise (grey levels) of the videos.
        suffix: the video container (``.avi``: FMP4, ``.mp4``: mp4v); the codec is part of what
            extraction sees.
        frame_stride: keep the crops of every ``frame_stride``-th frame (consecutive frames are
            near duplicates).
        min_person_share: a crop whose mask has less than this share of its pixels on one person
            is left out (no person to label).
        extraction: the extractor's settings (``maskpose masks extract``'s defaults; its
            ``resolution`` is replaced by twice the crop resolution).
        max_videos: the most videos a split may render before it gives up (``DataError``).
    """

    frames: int = 64
    people: tuple[int, int] = (1, 2)
    frame_size: tuple[int, int] = (320, 240)
    mocap_share: float = 0.5
    flicker: float = DEFAULT_FLICKER
    noise: float = DEFAULT_NOISE
    suffix: str = ".avi"
    frame_stride: int = 2
    min_person_share: float = 0.4
    extraction: ExtractionConfig = field(default_factory=ExtractionConfig)
    max_videos: int = 200

    def __post_init__(self) -> None:
        lo, hi = self.people
        if not 1 <= lo <= hi <= 4:
            raise ConfigError(f"BgsubConfig: people must satisfy 1 <= low <= high <= 4, got {self.people}")
        if self.frames < 2 * max(1, self.extraction.min_track_length):
            raise ConfigError(f"BgsubConfig: frames must be at least {2 * self.extraction.min_track_length} "
                              f"(twice the extractor's min_track_length), got {self.frames}")
        if not 0.0 <= self.mocap_share <= 1.0 or not 0.0 < self.min_person_share <= 1.0:
            raise ConfigError("BgsubConfig: mocap_share must lie in [0, 1] and min_person_share in (0, 1]")
        if self.frame_stride < 1 or self.max_videos < 1:
            raise ConfigError("BgsubConfig: frame_stride and max_videos must be >= 1")
        if self.suffix not in (".avi", ".mp4"):
            raise ConfigError(f"BgsubConfig: suffix must be .avi or .mp4, got {self.suffix!r}")

    def params(self) -> dict:
        d = asdict(self)
        d["people"], d["frame_size"] = list(self.people), list(self.frame_size)
        return d


def warp_crop(image: np.ndarray, M: np.ndarray, res: int, scale: float, interpolation: int = cv2.INTER_LINEAR
              ) -> np.ndarray:
    """``image`` seen through the homography ``M`` (crop pixels -> image pixels) as a ``res``
    square; ``scale`` (image pixels per crop pixel) above 1.25 shrinks the image by area averaging
    first, so the crop does not alias. Outside the image: 0."""
    height, width = image.shape[:2]
    M = np.asarray(M, np.float64)
    if scale > 1.25:
        w2, h2 = max(1, round(width / scale)), max(1, round(height / scale))
        sx, sy = w2 / width, h2 / height
        image = cv2.resize(image, (w2, h2), interpolation=cv2.INTER_AREA)
        M = np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1]]) @ M
    return cv2.warpPerspective(image, M, (res, res), flags=interpolation | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def crop_to_source(box, size: int) -> np.ndarray:
    """``(3, 3)`` map from source pixels to the pixels of :func:`~maskpose.data.video.crop_square`'s
    ``size`` crop of ``box`` (pixel centres: ``u' = (u - x0 + 0.5) size / side - 0.5``)."""
    x0, y0, x1, _ = (float(v) for v in box)
    s = size / (x1 - x0)
    return np.array([[s, 0.0, (0.5 - x0) * s - 0.5], [0.0, s, (0.5 - y0) * s - 0.5], [0.0, 0.0, 1.0]])


def _video_seed(seed: int, domain: str, split: str, v: int) -> tuple[int, np.random.Generator]:
    ss = seed_sequence(seed, domain, split, BGSUB_STREAM, v)
    video_seed = int(ss.generate_state(1, np.uint32)[0])
    return video_seed, np.random.default_rng(ss.spawn(1)[0])


def video_samples(folder: Path, settings: BgsubConfig, video_seed: int, rng: np.random.Generator, res: int,
                  body, device, labels: bool) -> tuple[list[dict], dict]:
    """Render one video in ``folder``, extract it and turn its crops into samples (the module
    docstring); returns the samples (dicts of per-sample arrays; ``exact`` is the renderer's
    visible mask of the labelled person in the same crop, for diagnostics, not written) and the
    video's summary (with the mean IoU of the extracted masks against the exact ones)."""
    people = int(rng.integers(settings.people[0], settings.people[1] + 1))
    mocap = bool(rng.random() < settings.mocap_share)
    clips = default_motion_library() if mocap else None
    frames_rgb, gt, truth = render_frames(
        settings.frames, people, clips, settings.frame_size, video_seed, settings.flicker, settings.noise,
        body=body, device=device)
    video = folder / f"video{settings.suffix}"
    write_video(video, frames_rgb, DEFAULT_FPS)  # as `masks synth-video` writes it: the codec is part of the input
    return clip_samples(video, gt, truth, settings, res, labels, {"seed": video_seed, "people": people, "mocap": mocap})


def clip_samples(video: Path, gt: np.ndarray, truth: dict, settings: BgsubConfig, res: int, labels: bool,
                 summary: dict | None = None) -> tuple[list[dict], dict]:
    """The samples of a rendered and written ``video`` (:func:`video_samples` after the render):
    extracted into ``video``'s folder (``extracted/``), every ``settings.frame_stride``-th frame's
    crops turned into perspective crops of ``res`` pixels, labelled from ``truth`` (the meta of
    :func:`~maskpose.synth.video.render_frames`, ``gt`` its masks) when ``labels``; returns the
    samples and the video's ``summary`` (updated)."""
    summary = dict(summary or {})
    people = int(np.asarray(truth["joints3d"]).shape[1])
    folder = Path(video).parent
    K = np.asarray(truth["K"], np.float64)
    aa = 2 * res
    extraction = replace(settings.extraction, resolution=aa)
    try:
        result = extract_video(video, folder / "extracted", extraction)
    except DataError:  # nobody tracked (e.g. a person hidden behind another all along): no samples
        return [], {**summary, "extracted": 0, "kept": 0}
    ds = MaskposeDataset(result.path)
    arrays = {k: np.asarray(ds.arrays[k]) for k in ("mask", "frame_index", "track_id", "crop_box", "merged")}
    frames = {i: f for i, f in FrameSource(video)}
    height, width = gt.shape[1:]
    inside = np.ones((height, width), np.float32)
    samples = []
    for j in range(len(arrays["mask"])):
        t = int(arrays["frame_index"][j])
        if t % settings.frame_stride:
            continue
        box = arrays["crop_box"][j].astype(np.float64)
        mask_aa = arrays["mask"][j]
        area = int(mask_aa.sum())
        if area == 0:
            continue
        owners = crop_square(gt[t], box, aa, cv2.INTER_NEAREST)[mask_aa > 0]
        counts = np.bincount(owners, minlength=people + 1)[1:]
        k = int(np.argmax(counts))
        if counts[k] < settings.min_person_share * area:
            continue
        R, K_crop = crop_camera(K, box, res)
        M = crop_homography(K, R, K_crop)
        scale = float(K[0, 0] / K_crop[0, 0])
        image = warp_crop(frames[t], M, res, scale)
        valid = warp_crop(inside, M, res, scale) >= 0.5
        mask = warp_crop(mask_aa.astype(np.float32), crop_to_source(box, aa) @ M, res, scale * aa / (box[2] - box[0]))
        mask = ((mask >= 0.5) & valid).astype(np.uint8)
        exact = (warp_crop((gt[t] == k + 1).astype(np.float32), M, res, scale) >= 0.5) & valid
        sample = {"image": image, "mask": mask, "intrinsics": K_crop.astype(np.float32),
                  "crop_box": box.astype(np.float32), "valid": valid.astype(np.uint8),
                  "frame_index": np.int32(t), "track_id": np.int32(arrays["track_id"][j]),
                  "merged": np.uint8(arrays["merged"][j]), "exact": exact.astype(np.uint8)}
        if labels:
            sample.update(_labels(truth, t, k, R, K_crop))
        samples.append(sample)
    ious = [float((s["mask"] & s["exact"]).sum() / max(1, (s["mask"] | s["exact"]).sum())) for s in samples]
    summary.update({"extracted": int(result.num_samples), "merged": int(result.merged_samples), "kept": len(samples),
                    "mask_iou_mean": round(float(np.mean(ious)), 4) if ious else None})
    return samples, summary


def _labels(truth: dict, t: int, k: int, R: np.ndarray, K_crop: np.ndarray) -> dict[str, np.ndarray]:
    J = truth["joints3d"][t, k].astype(np.float64) @ R.T
    uv = J[:, :2] / J[:, 2:] * K_crop[0, 0] + K_crop[:2, 2]
    pose = rotate_root(torch.from_numpy(truth["pose"][t, k][None]), R)[0].numpy()
    return {"joints3d": J.astype(np.float32), "joints2d": uv.astype(np.float32), "pose": pose.astype(np.float32),
            "phenotypes": truth["phenotypes"][k].astype(np.float32),
            "translation": (R @ truth["translation"][t, k].astype(np.float64)).astype(np.float32)}


def _fields(config, labels: bool) -> list[str]:
    fields = ["image", "mask", "intrinsics"]
    if getattr(config, "geodesic", True):
        fields.append("geodesic")
    fields += ["crop_box", "valid", "frame_index", "track_id", "merged"]
    return fields + (list(LABELS) if labels else [])


def generate_bgsub(out_dir, domain: str, n: int, res: int, seed: int, split: str, labels: bool, config, *,
                   body=None, progress: Callable[[int, int], Any] | None = None,
                   settings: BgsubConfig | None = None, description: str = "") -> Path:
    """Write ``n`` ``bgsub`` samples of ``split`` to ``out_dir`` (the module docstring): the
    generator of the ``bgsub`` domain, called by :func:`maskpose.synth.generator.generate`
    (``config`` is its :class:`~maskpose.synth.generator.SynthesisConfig`: device, geodesic
    weights; depth / parts extras and scenes do not apply). Same arguments, same bytes."""
    settings = settings if settings is not None else BgsubConfig()
    if getattr(config, "extras", False):
        raise ConfigError(f"domain {domain!r}: no depth or parts extras (its masks come from background "
                          "subtraction, not from the renderer)")
    if getattr(config, "scene", None) is not None:
        raise ConfigError(f"domain {domain!r} renders its own static-camera videos; it takes no scene")
    device = getattr(config, "device", "cpu")
    if body is None:
        body = AnnyBody(device=device)
    samples: list[dict] = []
    videos: list[dict] = []
    tracks = 0
    with tempfile.TemporaryDirectory(prefix="maskpose-bgsub-") as tmp:
        for v in range(settings.max_videos):
            if len(samples) >= n:
                break
            video_seed, rng = _video_seed(seed, domain, split, v)
            folder = Path(tmp) / f"v{v}"
            folder.mkdir()
            found, summary = video_samples(folder, settings, video_seed, rng, res, body, device, labels)
            for sample in found:
                sample["track_id"] = np.int32(sample["track_id"] + tracks)
            tracks += 1 + max((int(s["track_id"]) - tracks for s in found), default=-1)
            summary.update(video=v, first_sample=len(samples))
            samples += found[: n - len(samples)]
            videos.append(summary)
            if progress is not None:
                progress(min(len(samples), n), n)
    if len(samples) < n:
        raise DataError(f"domain {domain!r}: {settings.max_videos} videos gave only {len(samples)} of {n} samples")
    fields = _fields(config, labels)
    attrs = {
        "generator": "maskpose.synth.bgsub.generate_bgsub", "domain_description": description,
        "domain_params": {"bgsub": settings.params()}, "seed": int(seed), "labels": bool(labels),
        "videos": videos, "joints": "H36M-17", "geodesic_mode": "paper" if "geodesic" in fields else None,
        "labels_frame": "perspective crop camera (R @ video camera frame), see maskpose.synth.bgsub",
        "mask": "background subtraction (maskpose.data.video.extract_video), warped to the crop camera",
    }
    json.dumps(attrs)  # JSON-ready before anything is written
    with DatasetWriter(out_dir, n, (res, res), fields, domain=domain, split=split, attrs=attrs) as writer:
        for start in range(0, n, 64):
            chunk = samples[start:start + 64]
            batch = {k: np.stack([s[k] for s in chunk]) for k in fields if k != "geodesic"}
            if "geodesic" in fields:
                batch["geodesic"] = np.stack([geodesic_weights(m) if m.any() else np.ones(m.shape, np.float32)
                                              for m in batch["mask"]])
            writer.write(start, batch)
    return Path(out_dir)


__all__ = ["BGSUB_STREAM", "BgsubConfig", "clip_samples", "crop_to_source", "generate_bgsub", "video_samples", "warp_crop"]

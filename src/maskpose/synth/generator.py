"""Synthetic dataset generator: Anny bodies, random poses, a detector-like crop camera, a domain.

:func:`generate` writes one dataset folder in the maskpose format
(:mod:`maskpose.data.dataset`); :func:`generate_domain_splits` writes a domain's ``train`` split
(images and masks only, the target-domain supervision) and ``test`` split (with 3D ground truth).

Pipeline per batch: poses and phenotypes from the pose source (the domain's own source, e.g.
mocap, when it has one and none is given; then, for a domain with a ``view``, the global
orientation turned by the camera's elevation), Anny (decimated render topology;
joints do not depend on it), a pinhole camera of focal ``focal_ratio * res`` centred on the crop,
a translation that makes the body's 2D box span a random fraction ``fill`` of the crop (as a
person detector's crop would) plus a random offset that keeps the whole body inside (and, for a
domain with a ``view``, a per-sample focal ratio and truncation), the synthesis renderer in the
domain's setting, the domain's occluders (the mask becomes the visible part), then the domain's
image transform. Domains without these hooks are unchanged by them (the same bytes).

With ``SynthesisConfig.scene`` (``maskpose synth --scene scene.json``) the camera and the
background come from a fitted static-camera scene instead (:mod:`maskpose.synth.scene`): the body
stands on the scene's floor at one of its foot points, seen from its pitch, in a perspective crop
of its background plate; the domain keeps its poses, appearance, occluders and image transform.

Determinism: every random choice comes from seeds derived from ``(seed, domain, split)`` and the
sample index: per sample for the camera jitter and the appearance, per fixed chunk of
:data:`POSE_CHUNK` samples for the poses. The same arguments (batch size included) give
identical bytes; another batch size gives the same bodies, cameras and appearances, with labels
equal up to float rounding (BLAS kernels differ with the batch shape), so a rare edge pixel may
differ.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from maskpose.body.anny_body import AnnyBody
from maskpose.body.sampler import PoseSampler
from maskpose.conventions import FOCAL_RATIO, seed_sequence
from maskpose.data.dataset import DatasetWriter
from maskpose.device import resolve_device
from maskpose.errors import ConfigError, MaskposeError
from maskpose.io import check_output_folder
from maskpose.masks import geodesic_weights
from maskpose.render.camera import fit_translation, intrinsics, point_bounds, project
from maskpose.synth.appearance import PART_NAMES
from maskpose.synth.domains import get_domain
from maskpose.synth.realistic import BACKGROUND_STREAM, DISTRACTOR_STREAM, photo_backgrounds
from maskpose.synth.renderer import SynthesisRenderer
from maskpose.synth.scene import SCENE_STREAM, SceneStage, rotate_root, scene_labels, scene_stage
from maskpose.synth.targets import OCCLUDER_STREAM, VIEW_STREAM, elevate, truncate

log = logging.getLogger(__name__)

#: Poses are drawn in chunks of this many samples, each chunk from its own seeded sampler.
POSE_CHUNK = 256
#: Default range of the fraction of the crop spanned by the body's bounding box (larger side).
FILL = (0.7, 0.9)
#: Default maximal offset of the body's box centre, as a fraction of the crop.
OFFSET = 0.05
#: Fields written for a labelled split (besides image and mask).
LABELS = ("joints3d", "joints2d", "pose", "phenotypes", "translation")

#: Random streams (see :func:`sample_rngs`): camera jitter, appearance (renderer), poses, domain;
#: the target hooks add ``VIEW_STREAM`` (5) and ``OCCLUDER_STREAM`` (6), see :mod:`maskpose.synth.targets`.
CAMERA_STREAM, APPEARANCE_STREAM, POSE_STREAM, DOMAIN_STREAM = 1, 2, 3, 4
#: The source domains: their train splits are labelled by default (targets get masks only).
SOURCE_DOMAINS = ("studio", "realistic")


def sample_rngs(seed: int, domain: str, split: str, stream: int, indices: Sequence[int]) -> list[np.random.Generator]:
    """One independent ``numpy.random.Generator`` per sample index."""
    return [np.random.default_rng(seed_sequence(seed, domain, split, stream, i)) for i in indices]


class _PoseStream:
    """Serves poses for sample ranges, drawing fixed chunks so batching does not matter."""

    def __init__(self, source, seed: int, domain: str, split: str, n: int | None = None):
        self.source, self.seed, self.domain, self.split = source, seed, domain, split
        self.cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        # The built-in sampler always draws full chunks (so a dataset's first k samples do not
        # depend on n); an external source is asked for at most n at a time (a small motion
        # library may not hold POSE_CHUNK distinct frames).
        self.chunk = POSE_CHUNK if source is None or n is None else max(1, min(POSE_CHUNK, n))
        self.takes_seed = False
        if source is not None:
            try:
                self.takes_seed = "seed" in inspect.signature(source.sample).parameters
            except (TypeError, ValueError):
                self.takes_seed = False

    def _chunk(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if index not in self.cache:
            self.cache = {k: v for k, v in self.cache.items() if k >= index - 1}
            if self.source is None:
                state = seed_sequence(self.seed, self.domain, self.split, POSE_STREAM, index).generate_state(1)
                pose, phen = PoseSampler(seed=int(state[0])).sample(POSE_CHUNK)
            else:  # an external source (e.g. a motion library)
                state = seed_sequence(self.seed, self.domain, self.split, POSE_STREAM, index).generate_state(1)
                # A source with a ``seed`` argument gets one per chunk; others are consumed in order.
                drawn = self.source.sample(self.chunk, seed=int(state[0])) if self.takes_seed \
                    else self.source.sample(self.chunk)
                if isinstance(drawn, tuple):
                    pose, phen = drawn
                else:
                    pose, phen = drawn, PoseSampler(seed=int(state[0])).sample_phenotypes(self.chunk)
            pose, phen = torch.as_tensor(pose, dtype=torch.float32), torch.as_tensor(phen, dtype=torch.float32)
            size = POSE_CHUNK if self.source is None else self.chunk
            if pose.shape != (size, 18, 6) or phen.shape != (size, 6):
                raise MaskposeError(
                    f"pose source returned pose {tuple(pose.shape)} and phenotypes {tuple(phen.shape)}; "
                    f"expected ({size}, 18, 6) and ({size}, 6)"
                )
            self.cache[index] = (pose, phen)
        return self.cache[index]

    def get(self, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        poses, phens = [], []
        i = start
        while i < stop:
            chunk, offset = divmod(i, self.chunk)
            take = min(stop - i, self.chunk - offset)
            pose, phen = self._chunk(chunk)
            poses.append(pose[offset:offset + take])
            phens.append(phen[offset:offset + take])
            i += take
        return torch.cat(poses), torch.cat(phens)


def place_camera(vertices: torch.Tensor, res: int, rngs: Sequence[np.random.Generator],
                 focal_ratio: float | torch.Tensor = FOCAL_RATIO, fill: tuple[float, float] = FILL,
                 offset: float = OFFSET, margin: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Intrinsics and translation that frame bodies as a person detector's square crop would.

    Args:
        vertices: ``(B, V, 3)`` camera-frame vertices with zero translation (pelvis at the origin).
        res: crop size in pixels.
        rngs: one generator per sample (draws ``fill`` and the offset).
        focal_ratio: focal length in units of ``res`` (a float, or a ``(B,)`` tensor for one per
            sample); the principal point is the crop centre.
        fill: range of the fraction of the crop spanned by the body's box (its larger side).
        offset: maximal shift of the box centre, as a fraction of ``res``; shifts are limited so
            the whole body stays at least ``margin`` px inside the crop.

    Returns:
        ``K (B, 3, 3)`` and ``translation (B, 3)``.
    """
    if not 0.0 < fill[0] <= fill[1] <= 1.0:
        raise ConfigError(f"fill must satisfy 0 < low <= high <= 1, got {fill}")
    batch = vertices.shape[0]
    draws = np.array([[rng.uniform(*fill), rng.uniform(-1, 1), rng.uniform(-1, 1)] for rng in rngs],
                     dtype=np.float32).reshape(batch, 3)
    v = vertices.detach().float()
    draws_t = torch.from_numpy(draws).to(v.device)
    K = intrinsics(focal_ratio * res, res, batch=batch, device=v.device)
    t = fit_translation(v, K, res, fill=draws_t[:, 0])
    uv = project(v + t[:, None], K)
    lo, hi = point_bounds(uv)
    room_lo = (lo - margin).clamp_min(0.0)           # how far the box may move left / up
    room_hi = (res - 1 - margin - hi).clamp_min(0.0)  # right / down
    want = draws_t[:, 1:] * offset * res
    shift = torch.where(want < 0, torch.maximum(want, -room_lo), torch.minimum(want, room_hi))
    t = t.clone()
    t[:, :2] = t[:, :2] + shift * t[:, 2:3] / K[:, [0, 1], [0, 1]]
    # Perspective makes the shift slightly non-uniform: undo it where the body would leave the crop.
    uv = project(v + t[:, None], K)
    lo, hi = point_bounds(uv)
    outside = (lo < 0).any(1) | (hi > res - 1).any(1)
    if bool(outside.any()):
        t[outside, :2] = t[outside, :2] - shift[outside] * t[outside, 2:3] / K[outside][:, [0, 1], [0, 1]]
    return K, t


def _geodesic(masks: np.ndarray) -> np.ndarray:
    out = np.ones(masks.shape, dtype=np.float32)
    for i, mask in enumerate(masks):
        if mask.any():
            out[i] = geodesic_weights(mask)
    return out


@dataclass(frozen=True)
class SynthesisConfig:
    """How :func:`generate` renders and stores samples (not which samples: those follow from
    ``(seed, domain, split)`` and the index).

    Attributes:
        batch_size: bodies rendered at once (memory/speed; the samples stay the same up to float
            rounding, see the module docstring).
        device: torch device for Anny and the renderer.
        geodesic: store the Mask-as-Supervision geodesic weights of every mask
            (:func:`maskpose.masks.geodesic_weights`, ``mode="paper"``).
        extras: also store ``depth`` (metres, 0 on the background) and ``parts`` labels.
        focal_ratio, fill, offset: the crop camera (see :func:`place_camera`; a domain may set
            its own fill and offset).
        backgrounds: a folder of the user's photographs to crop backgrounds from, for the
            domains that draw their own backgrounds (``realistic``); ``None``: built-in ones only.
        scene: a scene file (``maskpose scene fit``) to synthesise for
            (:mod:`maskpose.synth.scene`): people on its floor, seen by its camera, in perspective
            crops of its background plate; the domain keeps its appearance, poses, occluders and
            image transform, its camera view, backgrounds and other people give way to the
            scene. Adds the fields ``crop_box`` and ``valid``. ``None``: the domain's own camera.
    """

    batch_size: int = 32
    device: str | torch.device = "cpu"
    geodesic: bool = True
    extras: bool = False
    focal_ratio: float = FOCAL_RATIO
    fill: tuple[float, float] = FILL
    offset: float = OFFSET
    backgrounds: str | None = None
    scene: str | None = None

    def __post_init__(self) -> None:
        if self.batch_size <= 0:
            raise ConfigError(f"batch_size must be positive, got {self.batch_size}")


def generate(
    out_dir,
    domain: str = "studio",
    n: int = 1000,
    res: int = 128,
    seed: int = 0,
    split: str = "train",
    labels: bool = True,
    config: SynthesisConfig | None = None,
    *,
    pose_source=None,
    body=None,
    perturbation: np.ndarray | None = None,
    progress: Callable[[int, int], Any] | None = None,
    timings: dict[str, float] | None = None,
) -> Path:
    """Render ``n`` synthetic samples of a domain and write them as a maskpose dataset.

    Args:
        out_dir: output folder (created; an existing dataset there is overwritten).
        domain: a name from :data:`maskpose.synth.domains.DOMAINS`.
        n: number of samples.
        res: square crop size in pixels.
        seed: base seed; with ``domain`` and ``split`` it determines every sample.
        split: recorded in ``meta.json`` and part of the seed (train and test never coincide).
        labels: write the labels ``joints3d, joints2d, pose, phenotypes, translation``; without
            them the split holds images, masks, intrinsics (and geodesic weights) only.
        config: batch size, device, stored extras and the crop camera (default
            :class:`SynthesisConfig()`).
        pose_source: ``None`` for the domain's own source (``motion``) or else the built-in
            :class:`~maskpose.body.sampler.PoseSampler`, or
            any object whose ``sample(n)`` returns ``(pose (n, 18, 6), phenotypes (n, 6))`` (or
            poses only; phenotypes are then sampled), e.g. a
            :class:`~maskpose.body.motion.MotionLibrary`. It is asked for chunks of
            ``min(POSE_CHUNK, n)`` samples; if its ``sample`` takes a ``seed`` argument, each chunk
            gets its own seed derived from ``(seed, domain, split, chunk)``, otherwise the source
            is consumed in order.
        body: an :class:`~maskpose.body.anny_body.AnnyBody` to reuse (default: a new one with the
            decimated render topology on ``config.device``).
        perturbation: array passed to the domain's transform (UAP domains).
        progress: optional ``callback(done, total)``.
        timings: optional dict that receives the seconds spent per stage (``poses``, ``anny``,
            ``camera``, ``backgrounds`` (a domain's or scene's own backgrounds, drawn before
            rendering), ``rasterize``, ``appearance``, ``shading``, ``domain``, ``geodesic``,
            ``write``).

    Returns:
        The dataset folder.
    """
    config = config if config is not None else SynthesisConfig()
    spec = get_domain(domain)
    _check_request(spec, n, res, perturbation, out_dir, config.backgrounds, config.scene)
    if spec.generator is not None:  # a domain that writes its datasets itself (bgsub: videos)
        if pose_source is not None:
            raise ConfigError(f"domain {domain!r} takes its motion from its own videos; it takes no pose source")
        return Path(spec.generator(out_dir, domain, n, res, seed, split, labels, config, body=body,
                                   progress=progress))
    stage = scene_stage(config.scene) if config.scene is not None else None  # a bad scene fails before any work
    device = resolve_device(config.device)
    body = body if body is not None else AnnyBody(device=device)
    renderer = SynthesisRenderer(body, device=device)
    if pose_source is None and spec.pose_source is not None:
        pose_source = spec.pose_source()
    poses = _PoseStream(pose_source, seed, domain, split, n)
    fields = _dataset_fields(config, labels)
    attrs = _dataset_attrs(spec, config, seed, labels, pose_source, body, stage)
    with DatasetWriter(out_dir, n, (res, res), fields, domain=domain, split=split, attrs=attrs) as writer:
        for start in range(0, n, config.batch_size):
            stop = min(n, start + config.batch_size)
            batch = render_batch(body, renderer, poses, spec, seed, split, range(start, stop), res,
                                 config, perturbation, timings, stage=stage)
            clock = _Clock(timings)
            if config.geodesic:
                batch["geodesic"] = _geodesic(batch["mask"])
                clock("geodesic")
            writer.write(start, {k: batch[k] for k in fields})
            clock("write")
            if progress is not None:
                progress(stop, n)
    return Path(out_dir)


def _check_request(spec, n: int, res: int, perturbation, out_dir, backgrounds=None, scene=None) -> None:
    """Refuse a request :func:`generate` cannot honour before anything is built or written."""
    check_output_folder(out_dir, "output folder")
    if n <= 0:
        raise ConfigError(f"n must be positive, got {n}")
    if res < 16:
        raise ConfigError(f"res must be at least 16 px, got {res}")
    if spec.needs_perturbation and perturbation is None:
        raise ConfigError(f"domain {spec.name!r} needs a perturbation array")
    if backgrounds is not None and scene is not None:
        raise ConfigError("backgrounds and scene: a scene's crops show its own background plate; drop one")
    if backgrounds is not None:
        if spec.backgrounds is None:
            raise ConfigError(f"backgrounds: domain {spec.name!r} draws built-in backgrounds only; a photo folder "
                              "applies to the domains that take one (realistic)")
        photo_backgrounds(backgrounds)  # refuses a missing or empty folder before anything is written


def _dataset_fields(config: SynthesisConfig, labels: bool) -> list[str]:
    """The fields a dataset stores, in the order they are written."""
    fields = ["image", "mask", "intrinsics"]
    if config.geodesic:
        fields.append("geodesic")
    if config.extras:
        fields += ["depth", "parts"]
    if config.scene is not None:
        fields += ["crop_box", "valid"]
    if labels:
        fields += list(LABELS)
    return fields


def _dataset_attrs(spec, config: SynthesisConfig, seed: int, labels: bool, pose_source, body,
                   stage: SceneStage | None = None) -> dict:
    """The generator settings recorded in ``meta.json``."""
    if stage is not None:
        return _dataset_attrs(spec, dataclasses.replace(config, scene=None), seed, labels, pose_source, body) | {
            "scene": stage.params(), "focal_ratio": "per sample (scene crop cameras)",
            "fill": [1 / (1 + 2 * stage.margin)], "offset": stage.centre_jitter}
    return {
        "generator": "maskpose.synth.generator.generate",
        "domain_description": spec.description,
        "domain_render": spec.render,
        "domain_params": spec.params,
        "seed": int(seed),
        "labels": bool(labels),
        "pose_source": "PoseSampler" if pose_source is None else type(pose_source).__name__,
        "anny_topology": body.topology,
        "focal_ratio": list(spec.view.focal_ratio) if spec.view is not None and spec.view.focal_ratio is not None
        else float(config.focal_ratio),
        "fill": list(spec.fill if spec.fill is not None else config.fill),
        "offset": float(spec.offset if spec.offset is not None else config.offset),
        "geodesic_mode": "paper" if config.geodesic else None,
        "part_names": list(PART_NAMES) if config.extras else None,
        "joints": "H36M-17",
    } | ({"backgrounds": str(config.backgrounds)} if config.backgrounds is not None else {}) | ({"pose_source_description": pose_source.description} if hasattr(pose_source, "description") else {})


class _Clock:
    """Accumulates seconds per stage into a dict (no-op without one)."""

    def __init__(self, timings: dict | None):
        self.timings, self.last = timings, time.perf_counter()

    def __call__(self, stage: str) -> None:
        if self.timings is not None:
            now = time.perf_counter()
            self.timings[stage] = self.timings.get(stage, 0.0) + now - self.last
            self.last = now


def render_batch(body, renderer, poses: _PoseStream, spec, seed: int, split: str, indices: range, res: int,
                 config: SynthesisConfig, perturbation=None, timings: dict | None = None,
                 stage: SceneStage | None = None) -> dict[str, np.ndarray]:
    """Render samples ``indices`` (a contiguous range); returns numpy arrays of every field.

    ``stage``: the :class:`~maskpose.synth.scene.SceneStage` of ``config.scene`` (loaded from it
    when not given)."""
    clock = _Clock(timings)
    pose, phen = poses.get(indices.start, indices.stop)
    device = torch.device(config.device)
    pose, phen = pose.to(device), phen.to(device)
    if stage is None and config.scene is not None:
        stage = scene_stage(config.scene)
    draws = None
    if stage is not None:  # upright in the scene's world: its camera's pitch turns the body
        pose = elevate(pose, [stage.scene.pitch_deg] * len(indices))
    elif spec.view is not None:  # per-sample camera: elevation turns the body before it is placed
        draws = [spec.view.draw(rng) for rng in sample_rngs(seed, spec.name, split, VIEW_STREAM, indices)]
        if spec.view.elevation is not None or spec.view.roll is not None:
            pose = elevate(pose, [d.elevation for d in draws],
                           None if spec.view.roll is None else [d.roll for d in draws])
    clock("poses")
    with torch.no_grad():
        out = body(pose, phen)
        clock("anny")
        if stage is not None:  # on the scene's floor, in perspective crops of its camera
            placement = stage.place(out.vertices, [stage.draw(rng) for rng in sample_rngs(
                seed, spec.name, split, SCENE_STREAM, indices)], res)
            vertices, joints3d, t = scene_labels(placement, out.vertices, out.joints)
            pose = rotate_root(pose, placement.R)
            K = torch.as_tensor(placement.K, dtype=torch.float32, device=device)
        else:
            cam_rngs = sample_rngs(seed, spec.name, split, CAMERA_STREAM, indices)
            focal = config.focal_ratio
            if draws is not None and spec.view.focal_ratio is not None:
                focal = torch.tensor([d.focal_ratio for d in draws], dtype=torch.float32)
            fill = spec.fill if spec.fill is not None else config.fill
            offset = spec.offset if spec.offset is not None else config.offset
            K, t = place_camera(out.vertices, res, cam_rngs, focal, fill, offset)
            if draws is not None:
                t = truncate(out.vertices, K, t, draws, res)
            K, t = K.to(device), t.to(device)
            vertices = out.vertices + t[:, None]
            joints3d = out.joints + t[:, None]
        joints2d = project(joints3d, K)
    clock("camera")
    app_rngs = sample_rngs(seed, spec.name, split, APPEARANCE_STREAM, indices)
    backgrounds = valid = None
    if stage is not None:
        backgrounds, valid = stage.backgrounds(placement.R, placement.K, res)
    elif spec.backgrounds is not None:
        photos = photo_backgrounds(config.backgrounds)
        backgrounds = np.stack([spec.backgrounds(rng, res, photos)
                                for rng in sample_rngs(seed, spec.name, split, BACKGROUND_STREAM, indices)])
    clock("backgrounds")
    rendered = renderer.render(vertices, K, app_rngs, setting=spec.render, size=res, backgrounds=backgrounds,
                               noise=spec.noise, timings=timings)
    clock.last = time.perf_counter()
    image, mask, depth, parts = rendered.image, rendered.mask, rendered.depth, rendered.parts
    if valid is not None:  # the crop's part outside the frame: black, and no person there (extraction's padding)
        image = np.where(valid[..., None] > 0, image, 0).astype(np.uint8)
        mask, depth, parts = mask * valid, np.where(valid > 0, depth, 0).astype(depth.dtype), parts * valid
    if spec.distractors is not None and stage is None:  # other people, composited by depth: the mask stays the visible target
        image, mask, depth, parts = spec.distractors.apply(
            body, renderer, t, K, image, mask, depth, parts,
            sample_rngs(seed, spec.name, split, DISTRACTOR_STREAM, indices), spec.render, res,
            elevation=None if draws is None else [d.elevation for d in draws],
            roll=None if draws is None else [d.roll for d in draws])
    if spec.occluders is not None:  # in front of the person: the mask becomes the visible part
        occ_rngs = sample_rngs(seed, spec.name, split, OCCLUDER_STREAM, indices)
        image, hidden = spec.occluders.apply(image, mask, occ_rngs)
        mask = np.where(hidden, 0, mask).astype(np.uint8)
        depth, parts = np.where(hidden, 0, depth).astype(depth.dtype), np.where(hidden, 0, parts).astype(parts.dtype)
    if spec.transform is not None:
        if spec.per_sample_rng:
            dom_rng = sample_rngs(seed, spec.name, split, DOMAIN_STREAM, indices)
        else:
            dom_rng = np.random.default_rng(seed_sequence(seed, spec.name, split, DOMAIN_STREAM, indices.start))
        image = spec.transform(image, mask, dom_rng, perturbation=perturbation)
    clock("domain")
    batch = {
        "image": image, "mask": mask, "depth": depth, "parts": parts,
        "intrinsics": K.cpu().numpy(), "joints3d": joints3d.cpu().numpy(), "joints2d": joints2d.cpu().numpy(),
        "pose": pose.cpu().numpy(), "phenotypes": phen.cpu().numpy(), "translation": t.cpu().numpy(),
    }
    if stage is not None:
        batch.update(crop_box=placement.boxes.astype(np.float32), valid=valid)
    return batch


def generate_domain_splits(
    root,
    domain: str,
    n_train: int,
    n_test: int,
    res: int = 128,
    seed: int = 0,
    config: SynthesisConfig | None = None,
    *,
    train_labels: bool | None = None,
    body=None,
    **kwargs,
) -> dict[str, Path]:
    """Write ``root/<domain>/train`` and ``root/<domain>/test``.

    The train split holds images, masks, intrinsics and geodesic weights only (the target-domain
    supervision) — except for the source domains (:data:`SOURCE_DOMAINS`), whose train split is labelled (set
    ``train_labels`` to override). The test split always carries the 3D ground truth. ``config``
    and the other keyword arguments go to :func:`generate` (``pose_source``, ``perturbation``,
    ``progress``, ...); one ``body`` serves both splits.

    Returns:
        ``{"train": path, "test": path}``.
    """
    if train_labels is None:
        train_labels = domain in SOURCE_DOMAINS
    config = config if config is not None else SynthesisConfig()
    base = Path(root) / domain
    if body is None:
        body = AnnyBody(device=config.device)
    return {
        "train": generate(base / "train", domain, n_train, res, seed, "train", train_labels, config, body=body,
                          **kwargs),
        "test": generate(base / "test", domain, n_test, res, seed, "test", True, config, body=body, **kwargs),
    }


__all__ = ["FILL", "FOCAL_RATIO", "OFFSET", "POSE_CHUNK", "SynthesisConfig", "generate",
           "generate_domain_splits", "place_camera", "sample_rngs"]

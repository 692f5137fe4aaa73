"""Adaptation targets as synthetic domains (issue 14): ``cctv``, ``occluded``, ``motion``.

The pieces here plug into the generator through three opt-in fields of
:class:`maskpose.synth.domains.Domain` (existing domains set none of them, so their bytes do not
change):

``view`` (:class:`View`)
    A per-sample camera drawn from its own stream (:data:`VIEW_STREAM`): an **elevation** (the
    camera pitched down by ``θ``; exactly equivalent to rotating the body's global orientation by
    ``R_x(θ)`` about the camera's x axis before the camera is placed, which is what the generator
    does, so the stored ``pose``, ``joints3d`` and ``joints2d`` all follow from the same geometry),
    a **focal ratio** (focal length in units of the crop, stored per sample in ``intrinsics``), and
    **truncation** (on some samples the body is shifted after placement so that a fraction of its
    2D box lies outside one side of the crop; the labels stay the full-body truth, so some
    ``joints2d`` lie outside the image).
``occluders`` (:class:`Occluders`)
    Random rectangles, ellipses and star-shaped blobs, in solid colours, stripes or photo/backdrop
    textures, drawn *in front of* the person after rendering, from their own stream
    (:data:`OCCLUDER_STREAM`). Their size is solved (bisection on a common scale) so that they hide
    a drawn fraction of the person's in-frame pixels. The stored ``mask`` (and ``depth``,
    ``parts`` when written) is the **visible** part of the person: the z-buffer mask minus the
    occluders, cropped by the frame. ``joints2d``/``joints3d`` remain the full-body truth.
``pose_source`` (a factory)
    The domain's default pose source when :func:`~maskpose.synth.generator.generate` gets none,
    e.g. :func:`motion_pose_source` over the shipped mocap (:func:`default_motion_library`).

Shipped mocap (``maskpose/assets/mocap``, licences in ``LICENSE.md`` there): CMU subject 131
trials 01-03 (BVH, 120 fps; CMU: free for research and commercial use, may be included in products
but not resold as such) and the 15 DeepMimic humanoid clips with ``humanoid.urdf`` (zlib licence,
Bullet Physics).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import cv2
import numpy as np
import torch

from maskpose.body.motion import MotionLibrary
from maskpose.body.rotations import rotmat_to_sixd, sixd_to_rotmat
from maskpose.errors import ConfigError, MaskposeError
from maskpose.render.camera import point_bounds, project
from maskpose.synth.appearance import background

#: Random streams of the target hooks (the generator's are 1-4): view draws, occluders.
VIEW_STREAM, OCCLUDER_STREAM = 5, 6
#: Sides a truncated body leaves the crop by (index of :attr:`ViewDraw.side`).
SIDES = ("left", "right", "top", "bottom")


# ------------------------------------------------------------------------------------ camera
@dataclass(frozen=True)
class ViewDraw:
    """One sample's camera draw: elevation (degrees, camera pitched down), focal ratio (``None``
    keeps the generator's), truncation side (index into :data:`SIDES`, -1 for none) and amount
    (fraction of the 2D box outside the crop)."""

    elevation: float
    focal_ratio: float | None
    side: int
    amount: float
    roll: float = 0.0


@dataclass(frozen=True)
class View:
    """Per-sample camera variation of a domain (see the module docstring).

    Attributes:
        elevation: range of the camera's downward pitch in degrees, or ``None`` (level camera).
        focal_ratio: range of the focal length in units of the crop size, or ``None`` (the
            generator's ``SynthesisConfig.focal_ratio``).
        truncation: probability that a sample is truncated.
        truncation_amount: range of the fraction of the body's 2D box (along the side's axis)
            pushed outside the crop.
        roll: range of the camera's roll about its optical axis in degrees, or ``None`` (none).
    """

    elevation: tuple[float, float] | None = None
    focal_ratio: tuple[float, float] | None = None
    truncation: float = 0.0
    truncation_amount: tuple[float, float] = (0.1, 0.35)
    roll: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        for name in ("elevation", "focal_ratio", "truncation_amount", "roll"):
            value = getattr(self, name)
            if value is not None and not value[0] <= value[1]:
                raise ConfigError(f"View.{name} must be a (low, high) range, got {value}")
        if self.elevation is not None and not -90.0 < self.elevation[0] <= self.elevation[1] < 90.0:
            raise ConfigError(f"View.elevation must lie in (-90, 90) degrees, got {self.elevation}")
        if self.focal_ratio is not None and self.focal_ratio[0] <= 0:
            raise ConfigError(f"View.focal_ratio must be positive, got {self.focal_ratio}")
        if not 0.0 <= self.truncation <= 1.0 or not 0.0 <= self.truncation_amount[0] <= self.truncation_amount[1] < 1:
            raise ConfigError(f"View.truncation {self.truncation} / amount {self.truncation_amount} out of range")

    def draw(self, rng: np.random.Generator) -> ViewDraw:
        """One sample's draw; always consumes five uniforms in the order elevation, focal,
        truncation flag, side, amount (so a test can reproduce it), and a sixth for the roll when
        the view has one."""
        u = rng.random(5)
        elevation = 0.0 if self.elevation is None else float(self.elevation[0] + u[0] * (self.elevation[1]
                                                                                          - self.elevation[0]))
        focal = None if self.focal_ratio is None else float(self.focal_ratio[0] + u[1] * (self.focal_ratio[1]
                                                                                           - self.focal_ratio[0]))
        side = int(u[3] * len(SIDES)) if u[2] < self.truncation else -1
        lo, hi = self.truncation_amount
        roll = 0.0 if self.roll is None else float(self.roll[0] + rng.random() * (self.roll[1] - self.roll[0]))
        return ViewDraw(elevation, focal, side, float(lo + u[4] * (hi - lo)), roll)

    def params(self) -> dict:
        """JSON-serialisable description (recorded in ``meta.json``)."""
        return {"elevation_deg": None if self.elevation is None else list(self.elevation),
                "focal_ratio": None if self.focal_ratio is None else list(self.focal_ratio),
                "truncation": self.truncation, "truncation_amount": list(self.truncation_amount),
                **({} if self.roll is None else {"roll_deg": list(self.roll)})}


def rotation_x(angles_deg) -> torch.Tensor:
    """``(B, 3, 3)`` rotations about the camera x axis by ``angles_deg``: ``R_x(θ)`` maps a
    level camera's frame to that of a camera pitched *down* by ``θ`` (the world's up ``-y`` goes
    to ``(0, -cos θ, -sin θ)``: the top of the body moves toward the camera)."""
    a = torch.as_tensor(np.radians(np.asarray(angles_deg, dtype=np.float64)), dtype=torch.float64)
    c, s, z, o = torch.cos(a), torch.sin(a), torch.zeros_like(a), torch.ones_like(a)
    return torch.stack([torch.stack([o, z, z], -1), torch.stack([z, c, -s], -1), torch.stack([z, s, c], -1)], -2)


def rotation_z(angles_deg) -> torch.Tensor:
    """``(B, 3, 3)`` rotations about the optical (z) axis by ``angles_deg``: the image of a camera
    rolled by ``-θ`` (x toward y: clockwise on the screen, whose y points down)."""
    a = torch.as_tensor(np.radians(np.asarray(angles_deg, dtype=np.float64)), dtype=torch.float64)
    c, s, z, o = torch.cos(a), torch.sin(a), torch.zeros_like(a), torch.ones_like(a)
    return torch.stack([torch.stack([c, -s, z], -1), torch.stack([s, c, z], -1), torch.stack([z, z, o], -1)], -2)


def elevate(pose: torch.Tensor, angles_deg, roll_deg=None) -> torch.Tensor:
    """Poses ``(B, 18, 6)`` seen from cameras pitched down by ``angles_deg`` (``(B,)``) and, when
    given, rolled by ``roll_deg``: the global orientation (index 0, camera frame, about the
    pelvis) is left-multiplied by ``R_x(θ)``, then by ``R_z(ρ)``."""
    out = pose.clone()
    rot = rotation_x(angles_deg).to(pose.device)
    if roll_deg is not None:
        rot = rotation_z(roll_deg).to(pose.device) @ rot
    out[:, 0] = rotmat_to_sixd((rot @ sixd_to_rotmat(pose[:, 0]).double()).to(pose.dtype))
    return out


def truncate(vertices: torch.Tensor, K: torch.Tensor, t: torch.Tensor, draws: Sequence[ViewDraw],
             res: int) -> torch.Tensor:
    """Shift the translations ``t (B, 3)`` of the samples whose draw has a side so that the
    fraction ``amount`` of the body's 2D box (along that side's axis) lies outside the crop."""
    sides = [d.side for d in draws]
    if all(side < 0 for side in sides):
        return t
    uv = project(vertices.detach().float() + t[:, None], K)
    lo, hi = point_bounds(uv)
    t = t.clone()
    for i, draw in enumerate(draws):
        if draw.side < 0:
            continue
        axis = 0 if SIDES[draw.side] in ("left", "right") else 1
        extent = float(hi[i, axis] - lo[i, axis])
        if SIDES[draw.side] in ("left", "top"):
            shift = -draw.amount * extent - float(lo[i, axis])
        else:
            shift = (res - 1) + draw.amount * extent - float(hi[i, axis])
        t[i, axis] = t[i, axis] + shift * t[i, 2] / K[i, axis, axis]
    return t


# ------------------------------------------------------------------------------------ occluders
#: Occluder shapes and textures.
SHAPES = ("rectangle", "ellipse", "blob")
TEXTURES = ("solid", "stripes", "photo")


@dataclass(frozen=True)
class Occluders:
    """Random occluders in front of the person (see the module docstring).

    Attributes:
        fraction: range of the fraction of the person's in-frame pixels hidden (the target of the
            size search; reached within a pixel or two unless the shapes hit their size cap).
        count: range (inclusive) of the number of shapes per sample.
        max_scale: cap on a shape's half-size in units of the person's 2D box (larger side).
        probability: share of the samples that get occluders (below 1, each sample draws one
            more uniform first).
    """

    fraction: tuple[float, float] = (0.1, 0.4)
    count: tuple[int, int] = (1, 2)
    max_scale: float = 1.5
    probability: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.fraction[0] <= self.fraction[1] < 1.0:
            raise ConfigError(f"Occluders.fraction must satisfy 0 <= low <= high < 1, got {self.fraction}")
        if not 1 <= self.count[0] <= self.count[1]:
            raise ConfigError(f"Occluders.count must satisfy 1 <= low <= high, got {self.count}")
        if not 0.0 <= self.probability <= 1.0:
            raise ConfigError(f"Occluders.probability must lie in [0, 1], got {self.probability}")

    def params(self) -> dict:
        return {"fraction": list(self.fraction), "count": list(self.count), "max_scale": self.max_scale,
                "shapes": list(SHAPES), "textures": list(TEXTURES),
                **({} if self.probability == 1.0 else {"probability": self.probability})}

    def apply(self, images: np.ndarray, masks: np.ndarray,
              rngs: Sequence[np.random.Generator]) -> tuple[np.ndarray, np.ndarray]:
        """Draw occluders onto ``images (B, H, W, 3)`` uint8 around ``masks (B, H, W)``.

        Returns:
            ``(images, occluder masks (B, H, W) bool)``; the images are a new array.
        """
        images = np.array(images, copy=True)
        occluded = np.zeros(masks.shape, dtype=bool)
        for i, rng in enumerate(rngs):
            if self.probability < 1.0 and rng.random() >= self.probability:
                continue
            occ, texture = self._one(np.asarray(masks[i]).astype(bool), rng)
            images[i][occ] = texture[occ]
            occluded[i] = occ
        return images, occluded

    def _one(self, mask: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        res_h, res_w = mask.shape
        target = float(rng.uniform(*self.fraction))
        count = int(rng.integers(self.count[0], self.count[1] + 1))
        shapes = [_random_shape(rng) for _ in range(count)]
        ys, xs = np.nonzero(mask)
        texture = _random_texture(rng, res_h, res_w)
        if len(ys) == 0:
            return np.zeros_like(mask), texture
        size = float(max(ys.max() - ys.min(), xs.max() - xs.min()) + 1)
        centres = [(float(xs[k]), float(ys[k])) for k in rng.integers(0, len(ys), size=count)]

        def drawn(scale: float) -> np.ndarray:
            out = np.zeros(mask.shape, np.uint8)
            for shape, (cx, cy) in zip(shapes, centres, strict=True):
                _fill(out, shape * (scale * size / 2.0) + np.array([cx, cy]))
            return out

        mask_bytes = mask.view(np.uint8)

        def covered(scale: float) -> int:
            # the mask's pixels under the occluder (a byte AND and count: several times faster
            # than the bool array's AND and sum, the same count)
            return int(np.count_nonzero(np.bitwise_and(drawn(scale), mask_bytes)))

        total = float(mask.sum())
        lo, hi = 0.0, self.max_scale
        if covered(hi) / total > target:
            for _ in range(18):  # bisection: a star-shaped shape grown about its centre only gains pixels
                mid = 0.5 * (lo + hi)
                if covered(mid) / total < target:
                    lo = mid
                else:
                    hi = mid
            # the closer of the two bracketing scales
            lo_err = abs(covered(lo) / total - target)
            hi_err = abs(covered(hi) / total - target)
            return drawn(lo if lo_err < hi_err else hi).astype(bool), texture
        return drawn(hi).astype(bool), texture


def _random_shape(rng: np.random.Generator) -> np.ndarray:
    """A unit-size star-shaped polygon ``(P, 2)`` about the origin (half-size about 1)."""
    kind = SHAPES[int(rng.integers(len(SHAPES)))]
    aspect = float(rng.uniform(0.35, 1.0))
    angle = float(rng.uniform(0.0, math.pi))
    if kind == "rectangle":
        points = np.array([[-1, -aspect], [1, -aspect], [1, aspect], [-1, aspect]], np.float64)
    elif kind == "ellipse":
        a = np.linspace(0.0, 2 * math.pi, 40, endpoint=False)
        points = np.stack([np.cos(a), aspect * np.sin(a)], -1)
    else:
        a = np.linspace(0.0, 2 * math.pi, 12, endpoint=False)
        radius = rng.uniform(0.55, 1.0, size=12)
        points = np.stack([radius * np.cos(a), aspect * radius * np.sin(a)], -1)
    c, s = math.cos(angle), math.sin(angle)
    return points @ np.array([[c, s], [-s, c]])


def _fill(out: np.ndarray, polygon: np.ndarray) -> None:
    """Fill ``polygon (P, 2)`` (pixel coordinates, pixel centres at integers) into ``out``."""
    shift = 4
    pts = np.round(polygon * (1 << shift)).astype(np.int32)[None]
    cv2.fillPoly(out, pts, 1, lineType=cv2.LINE_8, shift=shift)


def _random_texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """``(H, W, 3)`` uint8 occluder texture: a solid colour with a soft gradient, two-colour
    stripes, or a (scene-setting) photo or backdrop."""
    kind = TEXTURES[int(rng.integers(len(TEXTURES)))]
    if kind == "photo":
        image = background(rng, max(height, width), "scene")[:height, :width]
    else:
        a, b = rng.uniform(0.05, 0.95, size=(2, 3)).astype(np.float32)
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        if kind == "solid":
            image = a * (0.85 + 0.3 * (yy / max(1, height - 1)))[..., None]
        else:
            angle, period = rng.uniform(0.0, math.pi), rng.uniform(3.0, 10.0) * max(height, width) / 64
            phase = (xx * math.cos(angle) + yy * math.sin(angle)) / period
            image = np.where((np.floor(phase) % 2 == 0)[..., None], a, b)
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


# ------------------------------------------------------------------------------------ cctv images
#: Effective sensor resolution of the cctv domain (px) and its noise range (std, 1/255 units).
CCTV_SENSOR = 48
CCTV_NOISE = (2.0, 6.0)


def cctv_images(images: np.ndarray, rngs: Sequence[np.random.Generator], sensor: int = CCTV_SENSOR,
                noise: tuple[float, float] = CCTV_NOISE) -> np.ndarray:
    """Grey CCTV frames from rendered ``(B, H, W, 3)`` uint8 images.

    Per sample: luma (ITU-R BT.601) grey; area down-sampling to ``sensor`` px (skipped when the
    crop is not larger); white Gaussian sensor noise of a std drawn in ``noise`` (pixel units)
    *at the sensor resolution*, rounded to uint8 there; bilinear up-sampling back to the crop;
    the grey value copied to the three channels (R = G = B).
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise MaskposeError(f"images must have shape (B, H, W, 3), got {images.shape}")
    if len(rngs) != len(images):
        raise MaskposeError(f"cctv: need one generator per image ({len(images)}), got {len(rngs)}")
    height, width = images.shape[1:3]
    out = np.empty_like(images)
    for i, (image, rng) in enumerate(zip(images, rngs, strict=True)):
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        small = grey if sensor >= min(height, width) else cv2.resize(grey, (sensor, sensor),
                                                                     interpolation=cv2.INTER_AREA)
        std = rng.uniform(*noise)
        small = np.clip(np.rint(small + rng.normal(0.0, std, size=small.shape)), 0, 255).astype(np.uint8)
        if small.shape != grey.shape:
            small = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
        out[i] = small[..., None]
    return out


def cctv_transform(images, masks=None, rng=None, perturbation=None):
    rngs = rng if isinstance(rng, (list, tuple)) else [rng] * len(images)
    return cctv_images(images, rngs)


# ------------------------------------------------------------------------------------ motion
def mocap_folder() -> Path:
    """The shipped mocap folder (``cmu/`` and ``deepmimic/``, licences in ``LICENSE.md``)."""
    return Path(str(resources.files("maskpose") / "assets" / "mocap"))


#: Frame stride of the shipped clips (CMU 120 -> 60 fps, most DeepMimic clips 60 -> 30 fps): consecutive
#: frames are near duplicates under ``min_pose_difference`` anyway, and loading takes half the time.
DEFAULT_MOTION_STRIDE = 2


@functools.lru_cache(maxsize=4)
def _library(paths: tuple[str, ...], stride: int) -> MotionLibrary:
    return MotionLibrary(list(paths), stride=stride)


def default_motion_library(stride: int = DEFAULT_MOTION_STRIDE) -> MotionLibrary:
    """The shipped clips (3 CMU BVH trials and 15 DeepMimic clips) as a
    :class:`~maskpose.body.motion.MotionLibrary` (cached per ``stride``; loading and retargeting
    takes a few seconds)."""
    root = mocap_folder()
    return _library((str(root / "cmu"), str(root / "deepmimic")), int(stride))


class MotionPoses:
    """A seeded pose source over a motion library for :func:`~maskpose.synth.generator.generate`.

    ``sample(n, seed)`` draws ``n`` distinct frames (at least ``min_pose_difference`` m apart,
    :meth:`MotionLibrary.sample_frames`) in the seeded order, each turned by a random yaw about the
    vertical when ``randomize_yaw``, with phenotypes from the adult ranges; the same seed gives the
    same poses.
    """

    def __init__(self, library: MotionLibrary, randomize_yaw: bool = True, min_pose_difference: float = 0.05):
        self.library, self.randomize_yaw, self.min_pose_difference = library, randomize_yaw, min_pose_difference

    def sample(self, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        return self.library.sample(n, seed=seed, min_pose_difference=self.min_pose_difference,
                                   randomize_yaw=self.randomize_yaw)

    @property
    def description(self) -> dict:
        """What the source holds (recorded in ``meta.json``)."""
        return {"clips": [c.name for c in self.library], "frames": self.library.num_frames,
                "randomize_yaw": self.randomize_yaw, "min_pose_difference": self.min_pose_difference}


def motion_pose_source(motions: str | Path | Sequence[str | Path] | None = None, stride: int | None = None,
                       randomize_yaw: bool = True, min_pose_difference: float = 0.05) -> MotionPoses:
    """:class:`MotionPoses` over ``motions`` (a BVH/DeepMimic file or folder, or a list of them;
    default the shipped clips). ``stride`` defaults to :data:`DEFAULT_MOTION_STRIDE` for the
    shipped clips and 1 for a user's."""
    if motions is None:
        library = default_motion_library(DEFAULT_MOTION_STRIDE if stride is None else stride)
    else:
        paths = [motions] if isinstance(motions, (str, Path)) else list(motions)
        library = _library(tuple(str(p) for p in paths), 1 if stride is None else int(stride))
    return MotionPoses(library, randomize_yaw=randomize_yaw, min_pose_difference=min_pose_difference)


__all__ = ["CCTV_NOISE", "CCTV_SENSOR", "DEFAULT_MOTION_STRIDE", "OCCLUDER_STREAM", "SHAPES", "SIDES", "TEXTURES", "VIEW_STREAM",
           "MotionPoses", "Occluders", "View", "ViewDraw", "cctv_images", "cctv_transform", "default_motion_library", "elevate",
           "mocap_folder", "motion_pose_source", "rotation_x", "rotation_z", "truncate"]

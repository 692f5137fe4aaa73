"""The scene of a static camera (``maskpose scene fit``): background plate, camera pitch and height
above the ground plane, a focal length, and where and how large its people appear.

What :func:`fit_scene` measures, from one pass of background subtraction and tracking
(:mod:`maskpose.data.video`, the same settings as ``maskpose masks extract``):

* the **background plate**: the per-pixel median of up to ``plate_frames`` frames spread over the
  video, each pixel taken only from frames where it is background (the cleaned foreground mask,
  dilated by ``plate_dilate`` pixels, is left out); a pixel that is foreground in every sampled
  frame takes the plain median. Saved as a PNG beside the JSON;
* the **camera** (pitch and height above the floor) and so the **ground plane**, from the feet
  and heads of the tracked people against an average human height (below);
* the **scale range** of people: box heights in pixels (min, 5th percentile, median, 95th, max),
  and a sample of **foot points** (where people stood), which
  :mod:`maskpose.synth.scene` draws positions from.

Geometry (pinhole camera, no roll, OpenCV axes: x right, y down, z forward). The camera has focal
length ``f`` pixels and principal point ``(cx, cy)`` (the frame centre), is pitched *down* by ``θ``
(camera frame ``= R_x(θ)`` times the level frame, as :func:`maskpose.synth.targets.rotation_x`)
and stands ``h`` metres above a flat floor. A level-frame point ``(X, Y, Z)`` (``Y`` down, ``Z``
forward and horizontal) has camera coordinates ``y = Y cos θ - Z sin θ``, ``z = Y sin θ + Z cos θ``
and image row ``v = cy + f y / z``. The ray through row ``v`` makes the angle
``a(v) = atan((v - cy) / f)`` with the optical axis, so ``θ + a(v)`` with the horizontal. A person
of height ``H`` standing at horizontal distance ``D`` has the feet on the floor (``Y = h``) and
the head at ``Y = h - H``::

    tan(θ + a_f) = h / D,    tan(θ + a_h) = (h - H) / D

    =>  H = h (1 - tan(θ + a_h) / tan(θ + a_f)),    D = h / tan(θ + a_f)                 (1)

with ``a_f = a(bottom of the box)``, ``a_h = a(top of the box)``. The horizon (rays parallel to
the floor) is the row ``v_0 = cy - f tan θ``; in camera coordinates the floor is the plane
``n · X = h`` with the downward normal ``n = (0, cos θ, sin θ)``.

Fit: every usable detection (a box of a kept track, not ``merged``, away from the frame border,
taller than wide) gives its top and bottom rows ``(t, b)``. A person ``H`` tall with the feet at
row ``b`` has the head at the row::

    t̂(b; θ, h, H) = cy + f tan(atan((1 - H / h) tan(θ + a(b))) - θ)                       (2)

(from (1): the head's depression below the horizontal is ``atan((h - H) / D)`` with
``D = h / tan(θ + a(b))``). The boxes are reduced to one point per track and band of foot rows
(:func:`aggregate_boxes`; 5 % of the frame height): consecutive frames of one person are not
independent measurements, and a person who keeps their distance is one point, one walking towards
the camera several. Each track ``k`` has its own height ``H_k``, and ``(θ, h, H_1..H_K)``
minimise::

    S = Σ_points ((t̂ - t) / (b - t) / σ)² + Σ_k ((H_k / H̄ - 1) / σ_r)² + (θ / 30°)²

with ``H̄`` the assumed average height (``person_height``, 1.7 m), ``σ_r = 0.06`` the relative
spread of adult heights, ``σ`` the points' own residual scale (:func:`_residual_scale`) and a weak
prior that keeps the pitch near level when the data cannot tell. A person walking in depth fixes
the horizon by themselves; people who keep their distances fix it only through being alike, and
the standard error says so. Without tracks (:func:`fit_ground` with ``tracks=None``) every box is
a person of exactly ``H̄`` (no ``H_k``, ``σ`` the boxes' robust scale). Residuals are in rows, not
in implied heights: a steep camera can make the implied height insensitive to the rows and so
shrink a height residual, never a row residual. The search: ``θ`` on a 1° grid over
``(-min a(b), 85°)`` (every foot below the horizon), the best ``h`` for each (every ``H_k = H̄``),
then joint least squares over every parameter; points with a residual above
``max(3 × 1.4826 MAD, 0.05)`` after the first pass are dropped and the fit repeated (boxes cut by
an obstacle, a shadow, a child). Then whole tracks: a track whose presence raises the other tracks'
rms row residual :data:`TRACK_OUTLIER` times or more is dropped and the fit repeated (a fragment of a
person or a ghost that lives a few frames can pull the pitch tens of degrees while its own fitted
height stays plausible, since a free per-track height absorbs it). Uncertainties: Gauss-Newton ``(JᵀJ)⁻¹`` of the scaled residuals,
the priors' rows included, so a pitch the data leave open shows a large standard error.

The camera height scales with ``H̄`` (people 10 % taller than assumed give a camera 10 % higher);
the pitch does not. A wrong focal length moves the pitch (``θ = atan((cy - v_0) / f)``: the
horizon row itself is what the boxes fix) and hardly the height; a level camera is level whatever
the focal. The default focal is a guess, the frame diagonal ``f = √(W² + H²)`` (a 53° diagonal
field of view, CLIFF's assumption for images of unknown focal); pass the real one when known.

Perspective crops: :func:`look_at` and :func:`crop_camera` give the virtual camera of a crop,
rotated to look at the crop's centre (``R``) with a centred principal point; scene-specific
synthesis renders its crops with it, so their labels (joints, pose) are in that crop camera's
frame. ``R.T @ X`` brings a crop-frame point ``X`` back to the scene camera's frame.
"""

from __future__ import annotations

import json
import math
import os
import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image
from scipy.optimize import least_squares, minimize_scalar
from scipy.sparse import lil_matrix

from maskpose.data.video import (
    ExtractionConfig,
    FrameSource,
    GreedyTracker,
    foreground_frames,
    touches_border,
)
from maskpose.errors import ConfigError, DataError
from maskpose.io import atomic_write_text

FORMAT_NAME = "maskpose-scene"
SCHEMA_VERSION = 1
#: Average adult height the fit assumes (metres).
PERSON_HEIGHT = 1.7
#: Relative spread of adult heights (the residual scale of the prior) and the prior's pitch scale.
HEIGHT_SPREAD, PITCH_PRIOR_DEG = 0.06, 30.0
#: A track is dropped (and the fit repeated) when its presence raises the rms row residual of the other
#: tracks' points this many times or more: a fragment of a person, a ghost of the background model, a child.
TRACK_OUTLIER = 3.0
#: Highest pitch searched (degrees).
MAX_PITCH_DEG = 85.0
#: Residual scale (relative to the box height) assumed for a per-track fit too small to measure its own.
BOX_NOISE = 0.02
#: A pitch standard error above this (degrees) is reported as poorly determined.
WELL_DETERMINED_DEG = 5.0


def default_focal(width: int, height: int) -> float:
    """The focal-length guess for a frame of unknown camera: its diagonal ``√(W² + H²)`` pixels."""
    return float(math.hypot(width, height))


def ray_angle(rows, focal: float, cy: float) -> np.ndarray:
    """Angle (radians) below the optical axis of the rays through image ``rows``: ``atan((v - cy) / f)``."""
    return np.arctan((np.asarray(rows, dtype=np.float64) - cy) / focal)


def person_height(top, bottom, pitch_deg: float, camera_height: float, focal: float, cy: float) -> np.ndarray:
    """Height (metres) of people whose box spans rows ``top`` to ``bottom`` (pixel edges), standing
    on the floor: formula (1) of the module docstring; NaN where the feet are not below the horizon."""
    theta = math.radians(pitch_deg)
    af, ah = theta + ray_angle(bottom, focal, cy), theta + ray_angle(top, focal, cy)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = camera_height * (1.0 - np.tan(ah) / np.tan(af))
    return np.where(af > 0, out, np.nan)


def person_rows(distance, height, pitch_deg: float, camera_height: float, focal: float,
                cy: float) -> tuple[np.ndarray, np.ndarray]:
    """Image rows ``(top, bottom)`` of people ``height`` metres tall standing at horizontal
    ``distance`` metres from the camera (the forward model of formula (1))."""
    theta = math.radians(pitch_deg)
    d = np.asarray(distance, dtype=np.float64)
    hh = np.asarray(height, dtype=np.float64)
    bottom = cy + focal * np.tan(np.arctan2(camera_height, d) - theta)
    top = cy + focal * np.tan(np.arctan2(camera_height - hh, d) - theta)
    return top, bottom


@dataclass(frozen=True)
class GroundFit:
    """The result of :func:`fit_ground`: pitch (degrees, down), camera height (metres), their
    standard errors, the rms relative row residual, the points used after outlier removal (the
    boxes, or with tracks their track and foot-row band points), the boxes given, the horizon row,
    and the fitted height of each track (metres, in the order of their sorted ids; empty without
    tracks)."""

    pitch_deg: float
    camera_height: float
    pitch_std_deg: float
    height_std_m: float
    rms: float
    used: int
    total: int
    horizon_row: float
    track_heights: tuple[float, ...] = ()

    @property
    def well_determined(self) -> bool:
        return self.pitch_std_deg <= WELL_DETERMINED_DEG


def predicted_top(bottom, pitch_deg: float, camera_height: float, height: float, focal: float,
                  cy: float) -> np.ndarray:
    """Top rows of people ``height`` metres tall whose feet are at rows ``bottom`` (formula (2) of
    the module docstring); NaN where the feet are not below the horizon."""
    theta = math.radians(pitch_deg)
    beta = theta + ray_angle(bottom, focal, cy)
    with np.errstate(invalid="ignore"):
        top = cy + focal * np.tan(np.arctan((1.0 - height / camera_height) * np.tan(beta)) - theta)
    return np.where(beta > 0, top, np.nan)


_LOG_H = (math.log(0.05), math.log(500.0))  # camera heights searched (metres)
_LOG_PERSON = (math.log(0.5), math.log(2.6))  # person heights allowed (metres)


class _Ground:
    """The fit's model and residuals (module docstring, "Fit"): parameters ``x = (θ, log h)``, plus
    ``log H_k`` per track when ``tracks`` are given; residuals scaled by ``sigma`` (boxes) and
    :data:`HEIGHT_SPREAD` (track heights)."""

    def __init__(self, top, bottom, focal: float, cy: float, height: float, tracks=None, sigma: float = HEIGHT_SPREAD):
        self.top, self.bottom, self.focal, self.cy, self.height, self.sigma = top, bottom, focal, cy, height, sigma
        self.af = ray_angle(bottom, focal, cy)
        self.size = bottom - top
        self.index = None if tracks is None else np.unique(np.asarray(tracks), return_inverse=True)[1]
        self.tracks = 0 if self.index is None else int(self.index.max()) + 1
        self.lo = -float(self.af.min()) + math.radians(0.05)
        self.hi = math.radians(MAX_PITCH_DEG)
        if self.lo >= self.hi:
            raise DataError("the person boxes put the feet above any horizon a pitch below 85 degrees allows")

    def rows(self, x) -> np.ndarray:
        """Relative row residuals ``(t̂_i - t_i) / (b_i - t_i)`` of the boxes (unscaled)."""
        theta, log_h = x[0], x[1]
        ratio = self.height / math.exp(log_h) if self.index is None else np.exp(np.asarray(x[2:])[self.index] - log_h)
        gamma = np.arctan((1.0 - ratio) * np.tan(theta + self.af))
        return (self.cy + self.focal * np.tan(gamma - theta) - self.top) / self.size

    def residuals(self, x) -> np.ndarray:
        parts = [self.rows(x) / self.sigma]
        if self.index is not None:
            parts.append((np.exp(np.asarray(x[2:])) / self.height - 1.0) / HEIGHT_SPREAD)
        parts.append([x[0] / math.radians(PITCH_PRIOR_DEG)])
        return np.concatenate(parts)

    def start(self) -> np.ndarray:
        """The pooled model's best ``(θ, log h)`` on a 1° pitch grid (each with its best height),
        every track at the assumed height."""
        best = None
        for theta in np.arange(self.lo, self.hi, math.radians(1.0)):
            def cost(u, theta=theta):
                x = [theta, u] + [math.log(self.height)] * self.tracks
                r = self.residuals(x)
                return float(r @ r)
            res = minimize_scalar(cost, bounds=_LOG_H, method="bounded", options={"xatol": 1e-6})
            if best is None or res.fun < best[2]:
                best = (theta, float(res.x), float(res.fun))
        return np.array([best[0], best[1]] + [math.log(self.height)] * self.tracks)

    def refine(self, x0: np.ndarray) -> np.ndarray:
        """Joint least squares over every parameter from ``x0``."""
        lower = [self.lo, _LOG_H[0]] + [_LOG_PERSON[0]] * self.tracks
        upper = [self.hi, _LOG_H[1]] + [_LOG_PERSON[1]] * self.tracks
        x0 = np.clip(x0, np.array(lower) + 1e-9, np.array(upper) - 1e-9)
        sparsity = None
        if self.tracks:
            n = len(self.top)
            sparsity = lil_matrix((n + self.tracks + 1, self.tracks + 2), dtype=np.int8)
            sparsity[:n, :2] = 1
            sparsity[np.arange(n), 2 + self.index] = 1
            sparsity[n + np.arange(self.tracks), 2 + np.arange(self.tracks)] = 1
            sparsity[n + self.tracks, 0] = 1
        res = least_squares(self.residuals, x0, bounds=(lower, upper), jac_sparsity=sparsity,
                            x_scale=np.array([0.01, 0.1] + [0.05] * self.tracks))
        r0 = self.residuals(x0)
        return res.x if 2 * res.cost <= float(r0 @ r0) else x0

    def covariance(self, x: np.ndarray) -> np.ndarray:
        """Gauss-Newton ``(JᵀJ)⁻¹`` of the scaled residuals (central differences)."""
        eps = 1e-6
        jac = np.stack([(self.residuals(x + eps * e) - self.residuals(x - eps * e)) / (2 * eps)
                        for e in np.eye(len(x))], 1)
        return np.linalg.inv(jac.T @ jac)


def _residual_scale(r: np.ndarray, tracks: int) -> float:
    """The scale of the relative row residuals ``r`` after a fit with ``tracks`` per-track heights
    (they absorb one point per track): ``√(Σ r² / (n - tracks - 2))``, at least 0.003; with fewer
    than 3 degrees of freedom the a-priori :data:`BOX_NOISE`. Without tracks, the robust
    ``1.4826 MAD``."""
    if not tracks:
        return max(1.4826 * float(np.median(np.abs(r - np.median(r)))), 0.003)
    dof = len(r) - tracks - 2
    return max(math.sqrt(float(r @ r) / dof), 0.003) if dof >= 3 else BOX_NOISE


def aggregate_boxes(top, bottom, tracks, bin_px: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One point per track and band of foot rows ``bin_px`` high (from the track's 5th-percentile
    foot row down): the median top and bottom rows of the track's boxes whose bottom lies in it. Consecutive frames of one person are not
    independent measurements (the same gait, the same segmentation errors); a track that walks
    towards or away from the camera spans several bands, one that keeps its distance gives one.
    Returns ``(top, bottom, track)`` of the points."""
    top, bottom, tracks = np.asarray(top, float), np.asarray(bottom, float), np.asarray(tracks)
    ids = np.unique(tracks, return_inverse=True)[1].ravel()
    # bands from each track's own 5th-percentile foot row: a track that keeps its distance (its
    # feet within one band height, the gait's jitter included) is one point, never split by a boundary
    start = np.array([np.percentile(bottom[ids == k], 5) for k in range(ids.max() + 1)])
    band = np.maximum(np.floor((bottom - start[ids]) / bin_px), 0).astype(np.int64)
    keys = np.stack([ids, band], 1)
    groups, inverse = np.unique(keys, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    out_top = np.array([np.median(top[inverse == g]) for g in range(len(groups))])
    out_bottom = np.array([np.median(bottom[inverse == g]) for g in range(len(groups))])
    return out_top, out_bottom, groups[:, 0]


def _fit_points(top, bottom, tracks, keep, focal: float, cy: float, height: float):
    """The fit of :func:`fit_ground` on the points ``keep``: a pooled grid start, joint least
    squares, the points with a residual above ``max(3 x 1.4826 MAD, 0.05)`` dropped and the fit
    repeated, then a refit with the residual scale found. Returns ``(model, x, keep)``."""
    keep = keep.copy()
    pooled = _Ground(top[keep], bottom[keep], focal, cy, height)
    start = pooled.start()
    sigma = max(float(np.sqrt(np.mean(pooled.rows(start) ** 2))), 0.003)
    for first in (True, False):  # fit, drop the outliers, fit again with the points' own residual scale
        model = _Ground(top[keep], bottom[keep], focal, cy, height, None if tracks is None else tracks[keep], sigma)
        x = model.refine(np.concatenate([start[:2], np.full(model.tracks, math.log(height))]))
        r = model.rows(x)
        sigma = _residual_scale(r, model.tracks)
        inliers = np.abs(r) <= max(3.0 * 1.4826 * float(np.median(np.abs(r - np.median(r)))), 0.05)
        if not first or inliers.all() or inliers.sum() < 3:
            break
        keep[np.flatnonzero(keep)[~inliers]] = False
        start = x[:2]
    if abs(model.sigma - sigma) > 0.2 * sigma:  # refit with the residual scale the fit found
        model.sigma = sigma
        x = model.refine(x)
        model.sigma = _residual_scale(model.rows(x), model.tracks)
    return model, x, keep


def fit_ground(top, bottom, focal: float, cy: float, height: float = PERSON_HEIGHT, tracks=None,
               bin_px: float | None = None) -> GroundFit:
    """Fit the camera pitch and height to person boxes (module docstring, "Fit").

    Args:
        top, bottom: ``(n,)`` top and bottom image rows of the boxes, at the pixel edges
            (``y0 - 0.5`` and ``y1 - 0.5`` for a box of rows ``y0 .. y1 - 1``).
        focal: focal length in pixels; cy: principal point row.
        height: the average height of the people (metres).
        tracks: ``(n,)`` track id of each box: the boxes are first reduced to one point per track
            and band of foot rows (:func:`aggregate_boxes`), and each track (one person) gets its
            own height, drawn around ``height``; ``None``: every box is a person of exactly
            ``height``.
        bin_px: height of the foot-row bands (default 5 % of the frame height ``2 cy + 1``).
    """
    top, bottom = np.asarray(top, np.float64).ravel(), np.asarray(bottom, np.float64).ravel()
    if top.shape != bottom.shape or (tracks is not None and np.shape(tracks) != top.shape):
        raise DataError(f"fit_ground: {top.shape[0]} tops, {bottom.shape[0]} bottoms"
                        + ("" if tracks is None else f" and {np.size(tracks)} track ids"))
    if len(top) < 3:
        raise DataError(f"fit_ground: need at least 3 person boxes, got {len(top)}")
    if focal <= 0 or height <= 0:
        raise ConfigError(f"fit_ground: focal and height must be positive, got {focal} and {height}")
    if not (bottom > top).all():
        raise DataError("fit_ground: every box needs its bottom below its top")
    total = len(top)
    if tracks is not None:
        top, bottom, tracks = aggregate_boxes(top, bottom, tracks, bin_px or 0.05 * (2 * cy + 1))
    keep = np.ones(len(top), bool)
    model, x, keep = _fit_points(top, bottom, tracks, keep, focal, cy, height)
    # A track that does not fit the others (a fragment of a person, a ghost of the background model, a
    # child) can pull the pitch far off while its own height stays plausible: drop the track whose
    # presence raises the other points' rms row residual most, while it raises it TRACK_OUTLIER-fold.
    while tracks is not None and len(np.unique(tracks[keep])) > 2:
        residual = np.full(len(top), np.nan)
        residual[keep] = model.rows(x)
        trials = []
        for k in np.unique(tracks[keep]):
            rest = keep & (tracks != k)
            if rest.sum() < 3:
                continue
            fitted = _fit_points(top, bottom, tracks, rest, focal, cy, height)
            others = fitted[2]  # the points the fit without k keeps
            without = float(np.sqrt(np.mean(fitted[0].rows(fitted[1]) ** 2)))
            with_k = float(np.sqrt(np.nanmean(residual[others] ** 2)))
            trials.append((with_k / max(without, BOX_NOISE / 4), fitted))
        if not trials:
            break
        ratio, fitted = max(trials, key=lambda t: t[0])
        if ratio < TRACK_OUTLIER:
            break
        model, x, keep = fitted
    r = model.rows(x)
    try:
        cov = model.covariance(x)
        std_theta, std_log_h = (math.sqrt(max(float(c), 0.0)) for c in np.diag(cov)[:2])
    except np.linalg.LinAlgError:
        std_theta, std_log_h = math.inf, math.inf
    theta, h = float(x[0]), math.exp(float(x[1]))
    return GroundFit(math.degrees(theta), h, math.degrees(std_theta), h * std_log_h, float(np.sqrt(np.mean(r * r))),
                     int(keep.sum()), int(len(keep)) if tracks is None else total, float(cy - focal * math.tan(theta)),
                     tuple(float(v) for v in np.exp(x[2:])))


# --------------------------------------------------------------------------------------------
# perspective crops


def look_at(direction) -> np.ndarray:
    """The rotation ``R (3, 3)`` (camera frame -> virtual camera frame) of a camera turned to look
    along ``direction`` (camera frame) with its x axis kept perpendicular to the camera's y axis
    (no roll about the image's vertical): ``R @ direction`` lies on the virtual +z axis."""
    z = np.asarray(direction, dtype=np.float64)
    z = z / np.linalg.norm(z)
    x = np.cross([0.0, 1.0, 0.0], z)
    if np.linalg.norm(x) < 1e-9:
        raise ConfigError("look_at: cannot look straight up or down the camera's y axis")
    x = x / np.linalg.norm(x)
    y = np.cross(z, x)
    return np.stack([x, y, z])


def crop_camera(K, box, res: int) -> tuple[np.ndarray, np.ndarray]:
    """The perspective crop of a square ``box`` ``(x0, y0, x1, y1)`` (source pixels, ``x1``
    exclusive) of a frame seen by intrinsics ``K``: ``(R, K_crop)``, the rotation that turns the
    camera to the box centre (:func:`look_at`) and a centred pinhole of ``res`` pixels whose focal
    keeps the source's scale at that centre (``f res / side``)."""
    K = np.asarray(K, dtype=np.float64)
    x0, y0, x1, y1 = (float(v) for v in box)
    centre = np.array([(x0 + x1) / 2 - 0.5, (y0 + y1) / 2 - 0.5, 1.0])
    R = look_at(np.linalg.solve(K, centre))
    f = K[0, 0] * res / max(x1 - x0, 1e-9)
    c = (res - 1) / 2.0
    return R, np.array([[f, 0.0, c], [0.0, f, c], [0.0, 0.0, 1.0]])


def crop_homography(K, R, K_crop) -> np.ndarray:
    """``(3, 3)`` map from crop pixels to source pixels: ``K R^T K_crop^-1`` (a rotation about the
    camera centre is a homography of the image); for ``cv2.warpPerspective`` with
    ``WARP_INVERSE_MAP``."""
    return np.asarray(K, np.float64) @ np.asarray(R, np.float64).T @ np.linalg.inv(np.asarray(K_crop, np.float64))


# --------------------------------------------------------------------------------------------
# the scene file


@dataclass
class Scene:
    """A static camera's scene (written by :func:`fit_scene`, read by :meth:`load`).

    Attributes:
        size: frame ``(W, H)``.
        focal: focal length in pixels; focal_source: ``"guess"`` (the frame diagonal) or ``"given"``.
        principal: principal point ``(cx, cy)`` in pixels.
        pitch_deg: downward pitch of the camera; camera_height: metres above the floor.
        person_height: the average person height the fit assumed (metres).
        box_heights: person box heights in pixels: ``min``, ``p5``, ``median``, ``p95``, ``max``.
        foot_points: ``(n, 3)`` rows ``(u, v, box height px)``: the bottom centre of usable person
            boxes (an even sample of at most 500), where people stood.
        fit: statistics of the fit (standard errors, rms, detections used, horizon row).
        plate: file name of the background plate PNG, relative to the JSON's folder.
        video, frames, fps: the source; warnings: what the fit could not determine well.
        extraction: the background-subtraction settings used.
        path: the JSON it was read from or written to; plate_array: the plate of an unsaved fit.
    """

    size: tuple[int, int]
    focal: float
    principal: tuple[float, float]
    pitch_deg: float
    camera_height: float
    person_height: float = PERSON_HEIGHT
    focal_source: str = "guess"
    box_heights: dict[str, float] = field(default_factory=dict)
    foot_points: list[list[float]] = field(default_factory=list)
    fit: dict[str, Any] = field(default_factory=dict)
    plate: str | None = None
    video: str | None = None
    frames: int = 0
    fps: float | None = None
    warnings: list[str] = field(default_factory=list)
    extraction: dict[str, Any] = field(default_factory=dict)
    path: Path | None = field(default=None, compare=False, repr=False)
    plate_array: np.ndarray | None = field(default=None, compare=False, repr=False)

    # geometry ----------------------------------------------------------------------------
    @property
    def K(self) -> np.ndarray:
        """``(3, 3)`` float64 intrinsics of the frame."""
        (cx, cy), f = self.principal, self.focal
        return np.array([[f, 0.0, cx], [0.0, f, cy], [0.0, 0.0, 1.0]])

    @property
    def down(self) -> np.ndarray:
        """The floor's downward unit normal in the camera frame, ``(0, cos θ, sin θ)``."""
        t = math.radians(self.pitch_deg)
        return np.array([0.0, math.cos(t), math.sin(t)])

    @property
    def forward(self) -> np.ndarray:
        """The horizontal forward direction in the camera frame, ``(0, -sin θ, cos θ)``."""
        t = math.radians(self.pitch_deg)
        return np.array([0.0, -math.sin(t), math.cos(t)])

    @property
    def horizon_row(self) -> float:
        return float(self.principal[1] - self.focal * math.tan(math.radians(self.pitch_deg)))

    def ground_point(self, u, v) -> np.ndarray:
        """Camera-frame points ``(n, 3)`` where the rays through pixels ``(u, v)`` meet the floor
        ``n · X = h``; NaN for pixels at or above the horizon."""
        u, v = np.broadcast_arrays(np.asarray(u, np.float64), np.asarray(v, np.float64))
        rays = np.linalg.solve(self.K, np.stack([u.ravel(), v.ravel(), np.ones(u.size)]))  # (3, n)
        along = self.down @ rays
        with np.errstate(divide="ignore", invalid="ignore"):
            points = (rays * (self.camera_height / along)).T
        points[along <= 1e-9] = np.nan
        return points

    def plate_image(self) -> np.ndarray:
        """The background plate ``(H, W, 3)`` uint8 RGB (the file's, or the array of an unsaved fit)."""
        if self.plate_array is not None:
            return self.plate_array
        if self.plate is None:
            raise DataError("the scene has no background plate")
        path = Path(self.plate) if self.path is None else self.path.parent / self.plate
        if not path.exists():
            raise DataError(f"{path}: the scene's background plate is missing")
        image = np.asarray(Image.open(path).convert("RGB"))
        if image.shape[:2] != (self.size[1], self.size[0]):
            raise DataError(f"{path}: the plate is {image.shape[1]}x{image.shape[0]}, the scene "
                            f"{self.size[0]}x{self.size[1]}")
        return image

    # files -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if k not in ("path", "plate_array")}
        t = math.radians(self.pitch_deg)
        return {
            "format": FORMAT_NAME, "version": SCHEMA_VERSION, **data,
            "camera": {"K": self.K.round(4).tolist(), "pitch_deg": self.pitch_deg, "roll_deg": 0.0,
                       "height_m": self.camera_height, "horizon_row": self.horizon_row},
            "ground": {"normal": [0.0, math.cos(t), math.sin(t)], "offset_m": self.camera_height,
                       "note": "camera frame (OpenCV axes): floor points X satisfy normal . X = offset_m"},
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write the JSON (the plate, if any, must already be beside it)."""
        path = Path(path)
        text = json.dumps(self.to_dict(), indent=1)
        # lists of numbers on one line each (foot points, K rows), the rest indented
        text = re.sub(r"\[\n\s*(-?[\d.eE+-]+(?:,\n\s*-?[\d.eE+-]+)*)\n\s*\]",
                      lambda m: "[" + re.sub(r",\n\s*", ", ", m.group(1)) + "]", text)
        atomic_write_text(path, text + "\n")
        self.path = path
        return path

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], path: Path | None = None) -> Scene:
        name = str(path) if path is not None else "scene"
        if not isinstance(data, Mapping) or data.get("format") != FORMAT_NAME:
            raise DataError(f"{name}: not a maskpose scene file (format {FORMAT_NAME!r} expected)")
        if data.get("version") != SCHEMA_VERSION:
            raise DataError(f"{name}: scene version {data.get('version')!r}, this maskpose reads {SCHEMA_VERSION}")
        try:
            scene = cls(
                size=tuple(int(v) for v in data["size"]), focal=float(data["focal"]),
                principal=tuple(float(v) for v in data["principal"]), pitch_deg=float(data["pitch_deg"]),
                camera_height=float(data["camera_height"]),
                person_height=float(data.get("person_height", PERSON_HEIGHT)),
                focal_source=str(data.get("focal_source", "guess")),
                box_heights={k: float(v) for k, v in data.get("box_heights", {}).items()},
                foot_points=[[float(x) for x in p] for p in data.get("foot_points", [])],
                fit=dict(data.get("fit", {})), plate=data.get("plate"), video=data.get("video"),
                frames=int(data.get("frames", 0)), fps=data.get("fps"), warnings=list(data.get("warnings", [])),
                extraction=dict(data.get("extraction", {})), path=path,
            )
        except (KeyError, TypeError, ValueError) as err:
            raise DataError(f"{name}: malformed scene file ({type(err).__name__}: {err})") from None
        if scene.focal <= 0 or scene.camera_height <= 0 or not -90 < scene.pitch_deg < 90 or len(scene.size) != 2:
            raise DataError(f"{name}: the camera is out of range (focal {scene.focal}, height "
                            f"{scene.camera_height}, pitch {scene.pitch_deg})")
        return scene

    @classmethod
    def load(cls, path: str | os.PathLike) -> Scene:
        path = Path(path)
        if not path.exists():
            raise DataError(f"{path}: scene file does not exist (make one with `maskpose scene fit VIDEO`)")
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise DataError(f"{path}: cannot read the scene file ({err})") from None
        return cls.from_dict(data, path)


# --------------------------------------------------------------------------------------------
# fitting a video


@dataclass(frozen=True)
class SceneFitConfig:
    """Settings of :func:`fit_scene` beyond the extraction's.

    Attributes:
        focal: focal length in pixels (``None``: the frame diagonal, a guess).
        person_height: the average person height assumed (metres).
        min_frames: a video with fewer frames is refused.
        min_detections: fewer usable person boxes than this is refused.
        min_aspect: a usable box is at least this many times taller than wide.
        plate_frames: frames sampled for the background plate.
        plate_dilate: pixels the foreground is grown by before it is left out of the plate.
        max_foot_points: foot points kept in the scene file.
    """

    focal: float | None = None
    person_height: float = PERSON_HEIGHT
    min_frames: int = 20
    min_detections: int = 10
    min_aspect: float = 1.2
    plate_frames: int = 32
    plate_dilate: int = 5
    max_foot_points: int = 500

    def __post_init__(self) -> None:
        if self.focal is not None and self.focal <= 0:
            raise ConfigError(f"focal must be positive, got {self.focal}")
        if not 0.5 <= self.person_height <= 2.5:
            raise ConfigError(f"person_height must lie in [0.5, 2.5] metres, got {self.person_height}")
        if self.min_frames < 2 or self.min_detections < 3 or self.plate_frames < 1 or self.plate_dilate < 0:
            raise ConfigError("min_frames >= 2, min_detections >= 3, plate_frames >= 1 and plate_dilate >= 0 needed")


class _PlateSampler:
    """Keeps about ``count`` frames (and their foreground) spread over the video, bounded memory:
    every ``stride``-th frame, the stride doubling (and every other kept frame dropped) when full."""

    def __init__(self, count: int, expected_frames: int, dilate: int):
        self.count = count
        self.stride = max(1, expected_frames // count) if expected_frames else 1
        self.kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * dilate + 1,) * 2) if dilate else None
        self.frames: list[np.ndarray] = []
        self.masks: list[np.ndarray] = []
        self.indices: list[int] = []

    def add(self, index: int, frame: np.ndarray, mask: np.ndarray) -> None:
        if index % self.stride:
            return
        if self.kernel is not None:
            mask = cv2.dilate(mask.astype(np.uint8), self.kernel)
        self.frames.append(frame.copy())
        self.masks.append(mask.astype(bool))
        self.indices.append(index)
        if len(self.frames) >= 2 * self.count:
            self.frames, self.masks, self.indices = self.frames[::2], self.masks[::2], self.indices[::2]
            self.stride *= 2

    def plate(self) -> np.ndarray:
        """Masked per-pixel median ``(H, W, 3)`` uint8 (module docstring)."""
        frames = np.stack(self.frames)
        masks = np.stack(self.masks)
        out = np.empty(frames.shape[1:], np.uint8)
        rows = max(1, (8 << 20) // max(1, frames[0, 0].size * len(frames) * 4))  # ~8 MB chunks
        for r0 in range(0, frames.shape[1], rows):
            chunk = frames[:, r0:r0 + rows].astype(np.float32)
            plain = np.median(chunk, axis=0)
            chunk[masks[:, r0:r0 + rows]] = np.nan
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels: filled below
                masked = np.nanmedian(chunk, axis=0)
            out[r0:r0 + rows] = np.clip(np.round(np.where(np.isnan(masked), plain, masked)), 0, 255)
        return out


def _track_boxes(source: FrameSource, config: ExtractionConfig, sampler: _PlateSampler,
                 progress: Callable[[int], None] | None) -> tuple[list, int]:
    tracker = GreedyTracker(config, (source.width, source.height))
    frames = 0
    for fg in foreground_frames(source, config):
        boxes = [d.box for d in fg.detections]
        tracker.update(fg.index, boxes, list(range(len(boxes))))
        sampler.add(fg.index, fg.frame, fg.mask)
        frames = fg.index + 1
        if progress is not None:
            progress(fg.index)
    return tracker.close(), frames


def _usable_boxes(tracks: list, config: ExtractionConfig, fit: SceneFitConfig,
                  size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """``(n, 4)`` boxes of the kept tracks that can measure the camera (not merged, away from the
    frame border, at least ``min_aspect`` times taller than wide) and their track ids ``(n,)``."""
    boxes, ids = [], []
    for track in tracks:
        if len(track) < config.min_track_length:
            continue
        for box, merged in zip(track.boxes, track.merged):
            w, h = box[2] - box[0], box[3] - box[1]
            if not merged and not touches_border(box, size) and h >= fit.min_aspect * w:
                boxes.append(box)
                ids.append(track.id)
    return np.asarray(boxes, np.float64).reshape(-1, 4), np.asarray(ids, np.int64)


def fit_scene(video, out: str | os.PathLike | None = None, fit: SceneFitConfig | None = None,
              extraction: ExtractionConfig | None = None,
              progress: Callable[[int], None] | None = None) -> Scene:
    """Fit the scene of a static-camera video (module docstring) and, with ``out``, write it.

    Args:
        video: a video file OpenCV can read, or RGB frames ``(T, H, W, 3)`` uint8.
        out: the scene JSON to write; the plate goes beside it as ``<stem>_plate.png``.
        fit: the fit's settings (:class:`SceneFitConfig`).
        extraction: background subtraction and tracking (:class:`~maskpose.data.video.ExtractionConfig`).
        progress: called with each processed frame index.

    Raises ``DataError`` for an unreadable or too short video, a moving camera, no person found,
    or too few usable person boxes.
    """
    fit = fit or SceneFitConfig()
    config = extraction or ExtractionConfig()
    source = FrameSource(video, config.max_frames)
    known = len(source)
    if known and known < fit.min_frames:
        raise DataError(f"{source.name}: the video has {known} frames; a scene fit needs at least {fit.min_frames}")
    sampler = _PlateSampler(fit.plate_frames, known, fit.plate_dilate)
    tracks, frames = _track_boxes(source, config, sampler, progress)
    if frames < fit.min_frames:
        raise DataError(f"{source.name}: the video has {frames} frames; a scene fit needs at least {fit.min_frames}")
    size = (int(source.width), int(source.height))
    kept = [t for t in tracks if len(t) >= config.min_track_length]
    if not kept:
        longest = max((len(t) for t in tracks), default=0)
        raise DataError(f"{source.name}: no person track of at least {config.min_track_length} frames found in "
                        f"{frames} frames (longest: {longest}); the scene fit needs people walking through a "
                        "static scene")
    boxes, box_tracks = _usable_boxes(tracks, config, fit, size)
    if len(boxes) < fit.min_detections:
        raise DataError(f"{source.name}: only {len(boxes)} usable person boxes (tracked, not merged, away from the "
                        f"frame border, taller than wide); the scene fit needs at least {fit.min_detections}")
    focal = fit.focal if fit.focal is not None else default_focal(*size)
    cx, cy = (size[0] - 1) / 2.0, (size[1] - 1) / 2.0
    ground = fit_ground(boxes[:, 1] - 0.5, boxes[:, 3] - 0.5, focal, cy, fit.person_height, box_tracks)
    heights = boxes[:, 3] - boxes[:, 1]
    pick = np.unique(np.linspace(0, len(boxes) - 1, min(len(boxes), fit.max_foot_points)).round().astype(int))
    feet = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2 - 0.5, boxes[:, 3] - 0.5, heights], 1)[pick]
    notes = []
    if not ground.well_determined:
        notes.append(f"the pitch is poorly determined (+-{ground.pitch_std_deg:.1f} deg): the people seen stand at "
                     "too similar distances from the camera; pass a longer video or check the result")
    if fit.focal is None:
        notes.append(f"the focal length is a guess (the frame diagonal, {focal:.0f} px); pass --focal when known: "
                     "the pitch depends on it")
    scene = Scene(
        size=size, focal=float(focal), principal=(cx, cy), pitch_deg=ground.pitch_deg,
        camera_height=ground.camera_height, person_height=fit.person_height,
        focal_source="guess" if fit.focal is None else "given",
        box_heights={"min": float(heights.min()), "p5": float(np.percentile(heights, 5)),
                     "median": float(np.median(heights)), "p95": float(np.percentile(heights, 95)),
                     "max": float(heights.max())},
        foot_points=np.round(feet, 2).tolist(),
        fit={"pitch_std_deg": ground.pitch_std_deg, "height_std_m": ground.height_std_m,
             "well_determined": ground.well_determined, "rms_relative": ground.rms,
             "points_used": ground.used, "detections_usable": ground.total,
             "detections_merged": int(sum(sum(t.merged) for t in kept)), "tracks": len(kept),
             "horizon_row": ground.horizon_row, "plate_frames": len(sampler.frames),
             "track_heights_m": [round(v, 3) for v in ground.track_heights]},
        video=str(Path(video).resolve()) if source.path is not None else "<array>",
        frames=int(frames), fps=source.fps, warnings=notes, extraction=asdict(config),
    )
    scene.plate_array = sampler.plate()
    if out is not None:
        out = Path(out)
        if out.suffix.lower() != ".json":
            raise ConfigError(f"{out}: the scene file must end in .json")
        out.parent.mkdir(parents=True, exist_ok=True)
        plate_path = out.with_name(out.stem + "_plate.png")
        Image.fromarray(scene.plate_array).save(plate_path)
        scene.plate = plate_path.name
        scene.save(out)
    return scene


__all__ = ["GroundFit", "PERSON_HEIGHT", "Scene", "SceneFitConfig", "crop_camera", "crop_homography",
           "default_focal", "fit_ground", "fit_scene", "look_at", "person_height", "person_rows", "predicted_top",
           "ray_angle"]

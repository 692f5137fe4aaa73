"""Scene-specific synthesis: Anny people standing on a fitted scene's floor, seen by its camera,
in perspective crops of its background plate (``maskpose synth --scene scene.json``).

A scene (:class:`maskpose.data.scene.Scene`, from ``maskpose scene fit VIDEO``) knows the camera
(focal ``f``, principal point, pitch ``θ``, height ``h`` above the floor), the empty background
(the plate) and where people walked (foot points). Per sample, from its own stream
(:data:`SCENE_STREAM`):

1. **pose** from the domain's pose source, its global orientation turned by ``R_x(θ)``
   (:func:`maskpose.synth.targets.elevate`): the body is upright in the world, so the scene
   camera sees it from its own pitch;
2. **position**: a foot point of the scene, back-projected to the floor, moved by a Gaussian step
   of ``ground_jitter`` metres along the floor; the body's pelvis goes above it and the body down
   until its lowest vertex touches the floor ``n · X = h`` (``n = (0, cos θ, sin θ)``); its size
   in the image follows from the distance (no scale is drawn);
3. **crop**: the body's 2D box in the frame, its centre moved by up to ``centre_jitter`` of the
   crop side and the crop side ``(1 + 2 margin)`` times the box's longer side (``margin`` the
   scene's extraction margin, times ``1 +- side_jitter``): the crop ``maskpose masks extract``
   would cut around this person. The crop is rendered as a *perspective crop*
   (:func:`maskpose.data.scene.crop_camera`): a virtual camera rotated by ``R`` to look at the crop
   centre, with a centred principal point and focal ``f res / side`` (stored per sample in
   ``intrinsics``, so the training stack's centred-crop assumption holds), and the stored
   ``crop_box`` gives it back exactly;
4. **background**: the plate seen by that virtual camera (the homography ``K R^T K_crop^-1``,
   :func:`maskpose.data.scene.crop_homography`; area-averaged first when the crop shrinks the
   plate); the part of the crop outside the frame is black, as extraction's zero padding is,
   and the person's mask, depth and parts are cut there too (``valid`` = 0 there); labels stay
   the full-body truth.

The labels (``joints3d``, ``joints2d``, ``pose``, ``translation``) are in the crop camera's frame:
``joints3d = R (J + t)`` for the scene-frame joints ``J + t``; ``pose`` is the domain's pose with
its global orientation turned by ``R R_x(θ)``, ``translation = R t`` (Anny rotates about the
pelvis, which sits at the translation). ``R.T`` brings them back to the scene camera's frame.

The domain still chooses the appearance (its rendering setting), the pose source, occluders and
the image transform; its own camera view, backgrounds and other people are replaced by the scene.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from maskpose.body.rotations import rotmat_to_sixd, sixd_to_rotmat
from maskpose.data.scene import Scene, crop_camera, crop_homography
from maskpose.errors import DataError

#: Random stream of the scene placement (the generator's are 1-4, the target hooks' 5-6, realistic's 7-8).
SCENE_STREAM = 9
#: Closest a body vertex may come to the camera (metres).
NEAR = 0.3


def rotate_root(pose: torch.Tensor, rotation) -> torch.Tensor:
    """Poses ``(B, 18, 6)`` whose global orientation (index 0) is left-multiplied by ``rotation``
    (``(3, 3)`` or ``(B, 3, 3)``): the body seen from a camera turned by it, about the pelvis."""
    rot = torch.as_tensor(np.asarray(rotation), dtype=torch.float64, device=pose.device)
    out = pose.clone()
    out[:, 0] = rotmat_to_sixd((rot @ sixd_to_rotmat(pose[:, 0]).double()).to(pose.dtype))
    return out


@dataclass(frozen=True)
class SceneDraw:
    """One sample's draw: foot point index, floor step (metres, across and along), centre jitter
    (fractions of the crop side) and crop-side factor."""

    foot: int
    step: tuple[float, float]
    centre: tuple[float, float]
    side: float


@dataclass(frozen=True)
class Placement:
    """Where a batch stands and how it is cropped: scene-frame translations ``t (B, 3)``,
    rotations ``R (B, 3, 3)`` and intrinsics ``K (B, 3, 3)`` of the crop cameras, the crop boxes
    ``(B, 4)`` in frame pixels."""

    t: np.ndarray
    R: np.ndarray
    K: np.ndarray
    boxes: np.ndarray


class SceneStage:
    """Places bodies in a scene and renders its plate behind them (module docstring).

    Args:
        scene: the fitted scene (its plate is loaded once).
        ground_jitter: std of the step along the floor from a foot point (metres).
        centre_jitter, side_jitter: crop jitter (the smoothing of extraction's crop boxes).
        margin: crop margin; default the scene's extraction margin (0.15).
    """

    def __init__(self, scene: Scene, ground_jitter: float = 0.3, centre_jitter: float = 0.03,
                 side_jitter: float = 0.08, margin: float | None = None):
        self.scene = scene
        self.plate = scene.plate_image()
        self.K = scene.K
        feet = np.asarray(scene.foot_points, np.float64).reshape(-1, 3)
        ground = scene.ground_point(feet[:, 0], feet[:, 1]) if len(feet) else np.zeros((0, 3))
        ground = ground[np.isfinite(ground).all(1) & (ground @ scene.forward > NEAR + 0.5)]
        if not len(ground):
            raise DataError(f"{scene.path or 'scene'}: no foot point lies on the floor in front of the camera; "
                            "fit the scene again")
        self.ground = ground
        self.ground_jitter, self.centre_jitter, self.side_jitter = ground_jitter, centre_jitter, side_jitter
        self.margin = float(scene.extraction.get("margin", 0.15)) if margin is None else margin

    def params(self) -> dict:
        s = self.scene
        return {"scene": str(s.path) if s.path is not None else None, "video": s.video, "size": list(s.size),
                "focal_px": s.focal, "focal_source": s.focal_source, "pitch_deg": s.pitch_deg,
                "camera_height_m": s.camera_height, "foot_points": len(self.ground),
                "ground_jitter_m": self.ground_jitter, "margin": self.margin, "centre_jitter": self.centre_jitter,
                "side_jitter": self.side_jitter, "labels": "crop camera frame (R @ scene frame)"}

    def draw(self, rng: np.random.Generator) -> SceneDraw:
        """One sample's draw; always six draws in this order."""
        foot = int(rng.integers(len(self.ground)))
        step = rng.normal(0.0, self.ground_jitter, 2)
        centre = rng.uniform(-self.centre_jitter, self.centre_jitter, 2)
        side = 1.0 + float(rng.uniform(-self.side_jitter, self.side_jitter))
        return SceneDraw(foot, (float(step[0]), float(step[1])), (float(centre[0]), float(centre[1])), side)

    def place(self, vertices: torch.Tensor, draws: Sequence[SceneDraw], res: int) -> Placement:
        """Stand bodies ``(B, V, 3)`` (scene-frame orientation, pelvis at the origin) on the floor
        and cut their crops (module docstring, steps 2 and 3)."""
        V = vertices.detach().double().cpu().numpy()
        down, forward = self.scene.down, self.scene.forward
        across = np.array([1.0, 0.0, 0.0])
        batch = len(V)
        t = np.zeros((batch, 3))
        R = np.zeros((batch, 3, 3))
        K = np.zeros((batch, 3, 3))
        boxes = np.zeros((batch, 4))
        f = self.K[0, 0]
        for i, draw in enumerate(draws):
            G = self.ground[draw.foot] + draw.step[0] * across + draw.step[1] * forward
            if G @ forward < NEAR + 0.5:  # a step behind the camera: back to the foot point
                G = self.ground[draw.foot]
            t[i] = G - (V[i] @ down).max() * down  # pelvis above G, lowest vertex on the floor
            nearest = float((V[i] + t[i])[:, 2].min())
            if nearest < NEAR:  # too close to the lens: step back along the floor
                t[i] += forward * (NEAR - nearest + 0.05) / max(forward[2], 1e-3)
            X = V[i] + t[i]
            uv = X[:, :2] / X[:, 2:] * f + self.K[:2, 2]
            lo, hi = uv.min(0), uv.max(0)
            side = float((hi - lo).max()) * (1 + 2 * self.margin) * draw.side
            centre = (lo + hi) / 2 + np.asarray(draw.centre) * side
            # the square box whose crop camera looks at ``centre`` (crop_camera's pixel-centre convention)
            x0, y0 = centre + 0.5 - side / 2
            boxes[i] = (x0, y0, x0 + side, y0 + side)
            R[i], K[i] = crop_camera(self.K, boxes[i], res)
        return Placement(t, R, K, boxes)

    def backgrounds(self, R: np.ndarray, K: np.ndarray, res: int) -> tuple[np.ndarray, np.ndarray]:
        """The plate seen by crop cameras ``(R, K)``: ``(B, res, res, 3)`` float32 in [0, 1] and the
        ``(B, res, res)`` uint8 map of crop pixels inside the frame (module docstring, step 4)."""
        height, width = self.plate.shape[:2]
        images = np.zeros((len(R), res, res, 3), np.float32)
        valid = np.zeros((len(R), res, res), np.uint8)
        ones = np.full((height, width), 255, np.uint8)
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        for i in range(len(R)):
            M = crop_homography(self.K, R[i], K[i])
            plate, inside = self.plate, ones
            scale = self.K[0, 0] / K[i][0, 0]  # frame pixels per crop pixel at the crop centre
            if scale > 1.25:  # shrink first: area averaging instead of aliasing
                w2, h2 = max(1, round(width / scale)), max(1, round(height / scale))
                sx, sy = w2 / width, h2 / height
                plate = cv2.resize(self.plate, (w2, h2), interpolation=cv2.INTER_AREA)
                inside = cv2.resize(ones, (w2, h2), interpolation=cv2.INTER_AREA)
                M = np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1]]) @ M
            images[i] = cv2.warpPerspective(plate, M, (res, res), flags=flags, borderMode=cv2.BORDER_CONSTANT,
                                            borderValue=0).astype(np.float32) / 255.0
            valid[i] = cv2.warpPerspective(inside, M, (res, res), flags=flags, borderMode=cv2.BORDER_CONSTANT,
                                           borderValue=0) >= 128
        return images, valid


@functools.lru_cache(maxsize=4)
def _stage(path: str, mtime_ns: int) -> SceneStage:
    return SceneStage(Scene.load(path))


def scene_stage(path: str | os.PathLike) -> SceneStage:
    """The :class:`SceneStage` of a scene file (loaded once per process while the file is unchanged)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: scene file does not exist (make one with `maskpose scene fit VIDEO`)")
    return _stage(str(path.resolve()), path.stat().st_mtime_ns)


def scene_labels(placement: Placement, vertices: torch.Tensor, joints: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Crop-frame ``vertices``, ``joints`` and ``translation`` of bodies ``(B, N, 3)`` (scene-frame
    orientation, pelvis at the origin) placed by ``placement``: ``R (X + t)`` and ``R t``."""
    R = torch.as_tensor(placement.R, dtype=vertices.dtype, device=vertices.device)
    t = torch.as_tensor(placement.t, dtype=vertices.dtype, device=vertices.device)
    verts = (vertices + t[:, None]) @ R.transpose(1, 2)
    joints = (joints + t[:, None]) @ R.transpose(1, 2)
    return verts, joints, (R @ t[:, :, None])[..., 0]


def pitch_rotation(pitch_deg: float) -> np.ndarray:
    """``R_x(θ)`` as a ``(3, 3)`` array (the convention of :func:`maskpose.synth.targets.rotation_x`)."""
    a = math.radians(pitch_deg)
    c, s = math.cos(a), math.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


__all__ = ["NEAR", "SCENE_STREAM", "Placement", "SceneDraw", "SceneStage", "pitch_rotation", "rotate_root",
           "scene_labels", "scene_stage"]

"""A synthetic static-camera video with exact person masks, to measure video mask extraction.

:func:`render_static_camera_sequence` renders one or more Anny bodies walking across a fixed
scene seen by a fixed pinhole camera, and writes

* the video (``.mp4`` as MPEG-4 part 2 ``mp4v``, or ``.avi`` as ``FMP4``; read back with OpenCV
  to check every frame is there, so codec artefacts are part of what extraction sees);
* ``<stem>_masks.npz``: ``masks`` ``(T, H, W)`` uint8 ground truth, 0 the background and ``k + 1``
  the visible pixels of person ``k`` (after occlusion), plus ``K`` and the per-frame ``gain``;
* ``<stem>_meta.json``: the camera, the people (motion, phenotypes, depth, direction), the
  flicker and noise settings.

The scene (every choice from ``seed``):

* **camera**: at ``camera_height`` metres above a flat floor, focal ``focal_ratio * W`` pixels,
  principal point at the frame centre, level by default (the camera frame is the world frame,
  OpenCV axes: x right, y down, z forward, the floor the plane ``y = camera_height``) or pitched
  down by ``pitch_deg`` (the camera frame is ``R_x(θ)`` times that level frame,
  :func:`maskpose.synth.scene.pitch_rotation`, as ``maskpose scene fit`` models it; the floor is
  ``n · X = camera_height``, ``n = (0, cos θ, sin θ)``; the wall and the tiles are ray-traced
  through the pitched camera);
* **background**: a far wall textured with a people-free scikit-image photograph (as
  :mod:`maskpose.synth.appearance` uses; smooth noise when none is available) above a tiled floor
  drawn in perspective (rendered at twice the size and averaged down, so distant tiles do not alias);
* **people**: person ``k`` walks at depth about 4.5, 6.5, 5.5 or 7.5 m, alternately left to right
  and right to left, from about 8 % to 92 % of the frame width over the sequence, so the people
  cross the frame (and, for two or more, each other); the depth is the horizontal distance, and
  in a pitched view the crossing is placed at the pelvis's camera-frame depth. With
  ``depth_walk`` ``d`` person ``k`` also walks ``d`` metres in depth while crossing (from
  ``depth - d/2`` to ``depth + d/2`` for even ``k``, the other way for odd ``k``), heading along
  the diagonal. The motion is the built-in procedural walk
  (:func:`procedural_walk`: legs swinging, knees bending in swing, arms counter-swinging), or a
  mocap clip of a :class:`~maskpose.body.motion.MotionLibrary` resampled to the video rate and
  looped (accumulating its displacement). A clip's horizontal path is turned about the vertical
  so that its net displacement points along the walking direction (its heading turns with it),
  and its progress along that direction is rescaled to cross the frame; a clip that hardly
  travels (a jump on the spot) is carried across at uniform speed; the procedural walk moves at
  the speed that crosses the frame in the sequence (brisk for short ones). Every frame the body is
  lowered or raised (along the floor's normal) so that its lowest vertex touches the floor;
* **appearance and lighting**: the clothing, skin and the Lambert-shaded directional light of
  :class:`~maskpose.synth.appearance.SynthesisRenderer`'s ``studio`` setting (one appearance per
  person, the same in every frame), composited with the exact z-buffer depth;
* **flicker and sensor noise**: each frame is multiplied by a global gain within
  ``1 +- flicker`` (a slow sine plus a random jitter), then Gaussian noise of ``noise`` grey
  levels (0-255 scale) is added per pixel and channel.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import roma
import torch

from maskpose.body.anny_body import AnnyBody
from maskpose.body.limits import (
    ADULT_PHENOTYPE_RANGE,
    ARTICULATED_JOINTS,
    NUM_POSE_ROTATIONS,
    PHENOTYPE_LABELS,
)
from maskpose.body.motion import Clip, MotionLibrary
from maskpose.body.rotations import rotmat_to_sixd, sixd_to_rotmat
from maskpose.body.sampler import hinge_axis
from maskpose.conventions import seed_sequence
from maskpose.data.video import CODECS, write_video
from maskpose.errors import ConfigError, DataError
from maskpose.render.camera import intrinsics
from maskpose.synth.appearance import photo_bank
from maskpose.synth.renderer import SynthesisRenderer
from maskpose.synth.scene import pitch_rotation, rotate_root

#: Default frame size ``(W, H)``, frame rate, flicker amplitude and noise std (grey levels).
DEFAULT_RES = (320, 240)
DEFAULT_FPS = 25.0
DEFAULT_FLICKER = 0.05
DEFAULT_NOISE = 2.0
#: Depth (metres) of person k (cycled) and the fraction of the frame width crossed.
DEPTHS = (4.5, 6.5, 5.5, 7.5)
CROSSING = (0.08, 0.92)
#: The camera's downward pitch (degrees; 0: level) and how far each person walks in depth over the
#: sequence (metres; 0: at a fixed depth): the defaults of :func:`render_frames` and the CLI.
DEFAULT_PITCH_DEG = 0.0
DEFAULT_DEPTH_WALK = 0.0
#: The nearest a walking person's path may come to the camera (horizontal metres).
NEAREST_DEPTH = 1.5
#: Height of the pelvis above the floor (metres) used to place the crossing in a pitched view.
PELVIS_HEIGHT = 0.9


# --------------------------------------------------------------------------------------------
# motion


def _joint(name: str) -> int:
    return ARTICULATED_JOINTS.index(name)


def _yaw(angle: float | torch.Tensor) -> torch.Tensor:
    """Rotation ``(..., 3, 3)`` about the camera +y axis: turns the x-z polar angle by ``-angle``."""
    a = torch.as_tensor(angle, dtype=torch.float32)
    zero = torch.zeros_like(a)
    return roma.rotvec_to_rotmat(torch.stack([zero, a, zero], -1))


def procedural_walk(frames: int, fps: float = DEFAULT_FPS, speed: float = 1.3, stride: float = 1.4,
                    phase: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """A simple walk cycle built from hinge and ball rotations, facing and moving along +x.

    Hips swing ``+-25`` degrees (flexion about Anny's X axis), knees bend up to 60 degrees during
    the swing, arms hang close to the body and counter-swing ``+-20`` degrees, elbows slightly
    bent; the cycle advances with the distance walked (one cycle per ``stride`` metres), so the
    feet do not slide much.

    Returns:
        ``pose (T, 18, 6)`` (global orientation in the camera frame) and the pelvis displacement
        ``(T, 3)`` in metres (along +x, zero height).
    """

    t = torch.arange(frames, dtype=torch.float32) / fps
    distance = speed * t
    cycle = 2 * math.pi * distance / stride + phase
    rot = torch.eye(3).repeat(frames, NUM_POSE_ROTATIONS, 1, 1)
    rot[:, 0] = _yaw(-math.pi / 2)  # identity faces the camera (-z); this faces +x
    deg = math.radians
    for side, offset, sign in (("l", 0.0, 1.0), ("r", math.pi, -1.0)):
        phi = cycle + offset
        swing = torch.sin(phi)
        zero = torch.zeros_like(phi)
        # hip: negative X is flexion (leg forward)
        rot[:, _joint(f"{side}_hip")] = roma.euler_to_rotmat("XYZ", torch.stack([-deg(25) * swing, zero, zero], -1))
        knee = deg(5) + deg(55) * torch.clamp(torch.cos(phi - 0.3), min=0.0) ** 2
        rot[:, _joint(f"{side}_knee")] = roma.rotvec_to_rotmat(knee[:, None] * hinge_axis(f"{side}_knee"))
        ankle = deg(8) * torch.cos(phi)
        rot[:, _joint(f"{side}_ankle")] = roma.euler_to_rotmat("XYZ", torch.stack([ankle, zero, zero], -1))
        # shoulder: positive X swings the arm backward (counter to the same side's leg); the Y
        # rotation brings the A-pose arm down beside the body (mirrored on the right)
        arm = torch.stack([deg(20) * swing, torch.full_like(phi, sign * deg(30)), zero], -1)
        rot[:, _joint(f"{side}_shoulder")] = roma.euler_to_rotmat("XYZ", arm)
        elbow = deg(-15) + deg(12) * torch.clamp(-swing, min=0.0)
        rot[:, _joint(f"{side}_elbow")] = roma.rotvec_to_rotmat(elbow[:, None] * hinge_axis(f"{side}_elbow"))
    spine_twist = deg(4) * torch.sin(cycle)
    zero = torch.zeros_like(cycle)
    rot[:, _joint("spine")] = roma.euler_to_rotmat("XYZ", torch.stack([zero, zero, spine_twist], -1))
    displacement = torch.stack([distance, zero, zero], -1)
    return rotmat_to_sixd(rot), displacement


def _clip_motion(clip, frames: int, fps: float, start: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A clip resampled to ``fps`` for ``frames`` frames from frame ``start``, looped with its
    displacement accumulated; returns ``pose (T, 18, 6)`` and pelvis displacement ``(T, 3)``
    (horizontal, from the first frame)."""
    length = len(clip)
    if length < 2:
        raise DataError(f"{clip.path}: the clip has fewer than 2 frames")
    step = float(clip.fps) / fps
    raw = start + np.floor(np.arange(frames) * step).astype(np.int64)
    loop, index = np.divmod(raw, length)
    trans = clip.translation.float()
    per_loop = trans[-1] - trans[0] + (trans[-1] - trans[-2])  # one step past the end
    position = trans[torch.from_numpy(index)] + torch.from_numpy(loop).float()[:, None] * per_loop
    displacement = position - position[:1]
    displacement[:, 1] = 0.0
    return clip.pose[torch.from_numpy(index)].float().clone(), displacement


def _place(pose: torch.Tensor, displacement: torch.Tensor, direction: int, depth: float,
           x_range: tuple[float, float], depth_range: tuple[float, float] | None = None
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """Turn a motion about the vertical so it travels along ``direction`` (+1 right, -1 left),
    scale its progress to cross ``x_range`` (metres, in order of travel) at ``depth``; returns the
    pose (heading turned) and the pelvis path ``(T, 3)`` with zero height (the level frame:
    x right, z forward, horizontal). With ``depth_range`` ``(z0, z1)`` the path goes from depth
    ``z0`` to ``z1`` as it crosses (walking towards or away from the camera), and the heading is
    turned to that diagonal."""
    frames = pose.shape[0]
    net = displacement[-1]
    travel = float(torch.hypot(net[0], net[2]))
    if travel > 0.2:
        angle = math.atan2(float(net[2]), float(net[0])) - (0.0 if direction > 0 else math.pi)
        turn = _yaw(angle)
        rot = sixd_to_rotmat(pose)
        rot[:, 0] = turn @ rot[:, 0]
        pose = rotmat_to_sixd(rot)
        aligned = displacement @ turn.T
        progress = aligned[:, 0] * direction
        progress = progress / max(float(progress[-1]), 1e-6)
        drift = (aligned[:, 2] - aligned[0, 2]).clamp(-0.5, 0.5)
    else:
        progress = torch.linspace(0.0, 1.0, frames)
        drift = displacement[:, 2] - displacement[0, 2]
    x0, x1 = x_range
    path = torch.zeros(frames, 3)
    path[:, 0] = x0 + (x1 - x0) * progress
    if depth_range is None:
        path[:, 2] = depth + drift
        return pose, path
    z0, z1 = depth_range
    path[:, 2] = z0 + (z1 - z0) * progress + drift
    # the heading follows the diagonal: turn the x-z polar angle by atan2(dz, |dx|) (sign of travel)
    diagonal = math.atan2(direction * (z1 - z0), direction * (x1 - x0))
    rot = sixd_to_rotmat(pose)
    rot[:, 0] = _yaw(-diagonal) @ rot[:, 0]
    return rotmat_to_sixd(rot), path


def _as_clips(clips) -> list:
    if clips is None:
        return []
    if isinstance(clips, MotionLibrary):
        return list(clips)
    if isinstance(clips, Clip):
        return [clips]
    if isinstance(clips, (str, os.PathLike)) or (
            isinstance(clips, Sequence) and all(isinstance(c, (str, os.PathLike)) for c in clips)):
        return list(MotionLibrary(clips))
    items = list(clips)
    if not all(isinstance(c, Clip) for c in items):
        raise ConfigError("clips must be a MotionLibrary, clips, or paths of BVH / DeepMimic files or folders")
    return items


# --------------------------------------------------------------------------------------------
# scene


def _floor_rays(rows: np.ndarray, cols: np.ndarray, f: float, cx: float, cy: float, camera_height: float,
                wall_depth: float, pitch_deg: float):
    """Per pixel ray of a camera pitched down by ``pitch_deg``: the horizontal distance ``z``
    ``(h, 1)`` and lateral position ``x`` ``(h, w)`` where it meets the floor, and the rows
    ``(h, 1)`` that see the floor (nearer than the wall) and the 12 cm skirting board."""
    if pitch_deg == 0.0:  # level: the closed form (kept exactly, the default's bytes)
        junction = cy + f * camera_height / wall_depth  # image row where the floor meets the wall
        below = np.maximum(rows - cy, 1e-3)
        z = f * camera_height / below
        xw = (cols - cx) * z / f
        skirting = (rows >= junction - f * 0.12 / wall_depth) & (rows < junction)
        return z, xw, rows >= junction, skirting
    c, s = math.cos(math.radians(pitch_deg)), math.sin(math.radians(pitch_deg))
    dy, dx = (rows - cy) / f, (cols - cx) / f
    up, ahead = c * dy + s, c - s * dy  # the level frame's down and forward components of the ray
    reach = np.where(up > 1e-6, camera_height / np.maximum(up, 1e-6), 0.0)
    z = np.where(up > 1e-6, reach * ahead, 1e6).astype(np.float32)  # above the horizon: far
    xw = (reach * dx).astype(np.float32)
    on_floor = (up > 1e-6) & (z < wall_depth)
    wall_y = wall_depth * up / np.maximum(ahead, 1e-6)  # height below the camera where the ray meets the wall
    skirting = ~on_floor & (wall_y >= camera_height - 0.12) & (wall_y < camera_height)
    return z, xw, on_floor, skirting


def scene_background(width: int, height: int, K: np.ndarray, camera_height: float,
                     rng: np.random.Generator, wall_depth: float = 12.0,
                     pitch_deg: float = DEFAULT_PITCH_DEG) -> np.ndarray:
    """The static scene ``(H, W, 3)`` float32 in [0, 1]: a photo-textured wall over a tiled floor,
    seen by a camera pitched down by ``pitch_deg``."""

    ss = 2  # supersampling
    w2, h2 = width * ss, height * ss
    f, cx, cy = K[0, 0] * ss, (K[0, 2] + 0.5) * ss - 0.5, (K[1, 2] + 0.5) * ss - 0.5
    rows = np.arange(h2, dtype=np.float32)[:, None]
    cols = np.arange(w2, dtype=np.float32)[None, :]
    # wall
    bank = photo_bank("studio")
    if bank:
        photo = bank[int(rng.integers(len(bank)))]
        ph, pw = photo.shape[:2]
        scale = max(w2 / pw, h2 / ph)
        big = cv2.resize(photo, (int(math.ceil(pw * scale)), int(math.ceil(ph * scale))),
                         interpolation=cv2.INTER_LINEAR)
        y = int(rng.integers(0, big.shape[0] - h2 + 1))
        x = int(rng.integers(0, big.shape[1] - w2 + 1))
        wall = big[y:y + h2, x:x + w2]
        wall = 0.25 + 0.55 * wall * rng.uniform(0.8, 1.1, size=3).astype(np.float32)
    else:
        small = rng.random((6, 8, 3), dtype=np.float32)
        wall = 0.3 + 0.4 * cv2.resize(small, (w2, h2), interpolation=cv2.INTER_CUBIC)
    # floor: checker tiles by ray-floor intersection
    z, xw, on_floor, skirting = _floor_rays(rows, cols, f, cx, cy, camera_height, wall_depth, pitch_deg)
    tile = rng.uniform(0.5, 0.8)
    checker = (np.floor(xw / tile) + np.floor(z / tile)) % 2
    tint = rng.uniform(0.93, 1.07, 3)  # neutral tiles with a slight common tint
    light, dark = rng.uniform(0.6, 0.72) * tint, rng.uniform(0.28, 0.4) * tint
    floor = np.where(checker[..., None] > 0, light, dark).astype(np.float32)
    floor = floor * (0.85 + 0.15 * np.clip(6.0 / z, 0, 1))[..., None]  # a little brighter nearby
    image = np.where(on_floor[..., None], floor, wall)
    image = np.where(skirting[..., None], np.float32(0.2), image)
    image = cv2.resize(image.astype(np.float32), (width, height), interpolation=cv2.INTER_AREA)
    return np.clip(image, 0.0, 1.0).astype(np.float32)


def _gains(frames: int, flicker: float, rng: np.random.Generator) -> np.ndarray:
    """Global light gain per frame within ``1 +- flicker``: a slow sine and a random jitter."""
    period = rng.uniform(9.0, 17.0)
    phase = rng.uniform(0, 2 * math.pi)
    t = np.arange(frames)
    wave = 0.7 * np.sin(2 * math.pi * t / period + phase) + 0.3 * rng.uniform(-1, 1, frames)
    return (1.0 + flicker * np.clip(wave, -1, 1)).astype(np.float32)


# --------------------------------------------------------------------------------------------
# the sequence


def render_frames(
    frames: int = 120,
    people: int = 1,
    clips=None,
    res: tuple[int, int] = DEFAULT_RES,
    seed: int = 0,
    flicker: float = DEFAULT_FLICKER,
    noise: float = DEFAULT_NOISE,
    fps: float = DEFAULT_FPS,
    *,
    focal_ratio: float = 0.9,
    camera_height: float = 1.2,
    pitch_deg: float = DEFAULT_PITCH_DEG,
    depth_walk: float = DEFAULT_DEPTH_WALK,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    body=None,
    progress: Callable[[int, int], Any] | None = None,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Render the frames of a static-camera sequence of Anny bodies walking through a fixed scene
    (no file written; :func:`render_static_camera_sequence` writes them as a video).

    Args:
        frames: number of frames (at least 2).
        people: number of people, 1 to 4 (see the module docstring for where they walk).
        clips: ``None`` for the procedural walk, or a
            :class:`~maskpose.body.motion.MotionLibrary`, clips, or paths of BVH / DeepMimic files or
            folders; person ``k`` plays clip ``(seed + k) mod n`` from a random start frame.
        res: frame size ``(W, H)``.
        seed: every random choice (scene, start frames, phenotypes, appearance, flicker, noise).
        flicker: global gain amplitude (0.05: +-5 %).
        noise: Gaussian sensor noise std in grey levels (0-255).
        fps: frame rate of the video (and of the motion).
        focal_ratio: focal length in units of the frame width.
        camera_height: metres above the floor.
        pitch_deg: the camera's downward pitch in degrees (0: level, the default; 0 to 80). The
            camera frame is ``R_x(θ)`` times the level frame (:func:`maskpose.synth.scene.pitch_rotation`,
            the convention of ``maskpose scene fit``): the floor is ``n · X = camera_height`` with
            ``n = (0, cos θ, sin θ)``.
        depth_walk: metres each person walks in depth while crossing (0: fixed depths, the
            default): person ``k`` goes from ``depth - d/2`` to ``depth + d/2`` (away from the
            camera) for even ``k``, the other way for odd ``k``, heading along the diagonal.
        batch_size: frames rendered at once.
        device: torch device for Anny and the renderer.
        body: an :class:`~maskpose.body.anny_body.AnnyBody` to reuse (render topology).
        progress: optional ``callback(done, total)`` after each rendered batch.

    Returns:
        ``(video, gt_masks, meta)``: RGB frames ``(T, H, W, 3)`` uint8, ``gt_masks`` ``(T, H, W)``
        uint8 (0 background, ``k + 1`` person ``k``'s visible pixels) and a dict: the settings
        (JSON-ready) plus ``K``, ``gain`` ``(T,)``, ``boxes`` ``(T, people, 4)`` arrays and the
        clean ``background`` ``(H, W, 3)`` float32 in [0, 1] (before flicker and noise), and the
        people's truth in the camera (= world) frame: ``joints3d`` ``(T, people, 17, 3)`` H36M-17
        metres, ``translation`` ``(T, people, 3)`` (Anny's root, the pelvis), ``pose``
        ``(T, people, 18, 6)`` and ``phenotypes`` ``(people, 6)``, so that
        ``body(pose, phenotypes).joints + translation == joints3d``. With a pitch, "camera frame"
        is the pitched camera's (the truth projects onto the frames through ``K``), and the
        meta's ``camera`` gains ``pitch_deg`` and the floor's ``ground_normal``.
    """
    width, height = (int(v) for v in res)
    _check_sequence(frames, people, width, height, flicker, noise, fps, focal_ratio, camera_height, batch_size)
    _check_view(pitch_deg, depth_walk, people)
    clip_list = _as_clips(clips)

    root = seed_sequence(seed, 0x5EC0)
    scene_rng, motion_rng, light_rng, noise_rng = (np.random.default_rng(s) for s in root.spawn(4))
    device = torch.device(device)
    K = intrinsics(focal_ratio * width, (height, width), batch=1)[0]
    Kn = K.numpy().astype(np.float64)
    bg = scene_background(width, height, Kn, camera_height, scene_rng, pitch_deg=pitch_deg)
    body = body if body is not None else AnnyBody(device=device)
    cast = _cast_people(people, clip_list, frames, fps, seed, width, Kn, motion_rng,
                        view=_View(camera_height, pitch_deg, depth_walk))
    appearance_seeds = [int(s) for s in light_rng.integers(0, 2**62, size=people)]
    gains = _gains(frames, flicker, light_rng)

    stage = _SquareStage(body, K, bg, device, pitch_deg)
    video = np.empty((frames, height, width, 3), np.uint8)
    masks = np.zeros((frames, height, width), np.uint8)
    boxes = np.full((frames, people, 4), -1, np.int32)
    joints3d = np.zeros((frames, people, 17, 3), np.float32)
    translation = np.zeros((frames, people, 3), np.float32)
    for start in range(0, frames, batch_size):
        stop = min(frames, start + batch_size)
        image, label, truth = stage.composite(cast, appearance_seeds, start, stop, camera_height)
        joints3d[start:stop], translation[start:stop] = truth
        noise_maps = noise_rng.normal(0.0, noise, size=image.shape).astype(np.float32) if noise > 0 else 0.0
        image = image * gains[start:stop, None, None, None] * 255.0 + noise_maps
        video[start:stop] = np.clip(np.round(image), 0, 255).astype(np.uint8)
        masks[start:stop] = label
        boxes[start:stop] = _person_boxes(label, people)
        if progress is not None:
            progress(stop, frames)

    meta = {
        "generator": "maskpose.synth.video.render_static_camera_sequence",
        "frames": int(frames),
        "size": [width, height],
        "fps": float(fps),
        "seed": int(seed),
        "flicker": float(flicker),
        "noise": float(noise),
        "camera": {"K": Kn.tolist(), "height_m": float(camera_height), "focal_ratio": float(focal_ratio),
                   "note": "level camera at the world origin, OpenCV axes; floor y = height_m"},
        **({"depth_walk_m": float(depth_walk)} if depth_walk else {}),
        "people": cast.meta,
        "anny_topology": body.topology,
    }
    arrays = {"K": Kn.astype(np.float32), "gain": gains, "boxes": boxes, "background": bg,
              "joints3d": joints3d, "translation": translation,
              "pose": torch.stack(cast.poses, 1).numpy().astype(np.float32),
              "phenotypes": torch.stack(cast.phenotypes).numpy().astype(np.float32)}
    if pitch_deg:
        normal = pitch_rotation(pitch_deg)[:, 1]
        meta["camera"].update(pitch_deg=float(pitch_deg), ground_normal=[float(v) for v in normal],
                              note="camera pitched down by pitch_deg at the origin, OpenCV axes; floor "
                                   "ground_normal . X = height_m (camera frame = R_x(pitch) level frame)")
    return video, masks, {**meta, **arrays}


def _check_sequence(frames: int, people: int, width: int, height: int, flicker: float, noise: float,
                    fps: float, focal_ratio: float, camera_height: float, batch_size: int) -> None:
    """Refuse the settings :func:`render_frames` cannot render."""
    if frames < 2:
        raise ConfigError(f"frames must be at least 2, got {frames}")
    if not 1 <= people <= len(DEPTHS):
        raise ConfigError(f"people must be 1 to {len(DEPTHS)}, got {people}")
    if width < 32 or height < 32:
        raise ConfigError(f"res must be at least 32x32, got {width}x{height}")
    if not 0.0 <= flicker < 0.5:
        raise ConfigError(f"flicker must be in [0, 0.5), got {flicker}")
    if noise < 0:
        raise ConfigError(f"noise must be >= 0, got {noise}")
    if fps <= 0 or focal_ratio <= 0 or camera_height <= 0 or batch_size < 1:
        raise ConfigError("fps, focal_ratio, camera_height and batch_size must be positive")


def _check_view(pitch_deg: float, depth_walk: float, people: int) -> None:
    """Refuse a pitch or a walk in depth :func:`render_frames` cannot render."""
    if not (math.isfinite(pitch_deg) and 0.0 <= pitch_deg <= 80.0):
        raise ConfigError(f"pitch must be 0 to 80 degrees down, got {pitch_deg}")
    nearest = min(DEPTHS[:people]) - 0.25 - depth_walk / 2
    if not math.isfinite(depth_walk) or depth_walk < 0 or nearest < NEAREST_DEPTH:
        raise ConfigError(f"depth walk must be 0 to {2 * (min(DEPTHS) - 0.25 - NEAREST_DEPTH):g} m (a path may "
                          f"not come nearer than {NEAREST_DEPTH:g} m), got {depth_walk}")


@dataclass(frozen=True)
class _View:
    """The camera's pitch and height and the people's walk in depth (see :func:`render_frames`)."""

    camera_height: float
    pitch_deg: float = DEFAULT_PITCH_DEG
    depth_walk: float = DEFAULT_DEPTH_WALK

    def camera_depth(self, depth: float) -> float:
        """The camera-frame z of a pelvis at horizontal distance ``depth`` (the level frame's
        ``depth`` itself when level)."""
        if not self.pitch_deg:
            return depth
        a = math.radians(self.pitch_deg)
        return depth * math.cos(a) + (self.camera_height - PELVIS_HEIGHT) * math.sin(a)


@dataclass
class _Cast:
    """The people of a sequence: per person the pose ``(T, 18, 6)``, the pelvis path ``(T, 3)``,
    the phenotypes ``(6,)`` and the metadata written to ``<stem>_meta.json``."""

    poses: list[torch.Tensor] = field(default_factory=list)
    paths: list[torch.Tensor] = field(default_factory=list)
    phenotypes: list[torch.Tensor] = field(default_factory=list)
    meta: list[dict] = field(default_factory=list)


def _cast_people(people: int, clip_list: list[Clip], frames: int, fps: float, seed: int, width: int,
                 Kn: np.ndarray, rng: np.random.Generator, view: _View) -> _Cast:
    """Motions, walking paths and phenotypes of the people, placed in the scene (draws from ``rng``;
    a pitch or a walk in depth draws nothing more). Poses are in the camera frame, paths in the
    level frame."""
    bounds = np.array([ADULT_PHENOTYPE_RANGE.get(k, (0.5, 0.5)) for k in PHENOTYPE_LABELS])
    flip = 1 if rng.random() < 0.5 else -1
    cast = _Cast()
    for k in range(people):
        direction = flip * (1 if k % 2 == 0 else -1)
        depth = DEPTHS[k] + float(rng.uniform(-0.25, 0.25))
        u0, u1 = (np.array(CROSSING) + rng.uniform(-0.03, 0.03)) * (width - 1)
        if direction < 0:
            u0, u1 = u1, u0
        if view.depth_walk:
            away = 1.0 if k % 2 == 0 else -1.0
            depth_range = (depth - away * view.depth_walk / 2, depth + away * view.depth_walk / 2)
            x_range = tuple(float((u - Kn[0, 2]) * view.camera_depth(z) / Kn[0, 0]) for u, z in zip((u0, u1), depth_range))
        else:
            depth_range = None
            x_range = tuple(float((u - Kn[0, 2]) * view.camera_depth(depth) / Kn[0, 0]) for u in (u0, u1))
        if clip_list:
            clip = clip_list[(int(seed) + k) % len(clip_list)]
            start = int(rng.integers(len(clip)))
            pose, disp = _clip_motion(clip, frames, fps, start)
            motion = {"clip": clip.name, "path": str(clip.path), "start_frame": start}
        else:
            # the speed that crosses the frame in the sequence, so the feet keep pace with the floor
            travel = abs(x_range[1] - x_range[0]) if depth_range is None else \
                math.hypot(x_range[1] - x_range[0], depth_range[1] - depth_range[0])
            speed = travel * fps / (frames - 1)
            pose, disp = procedural_walk(frames, fps, speed=speed, stride=float(rng.uniform(1.2, 1.5)),
                                         phase=float(rng.uniform(0, 2 * math.pi)))
            motion = {"clip": "procedural-walk", "speed_m_s": speed}
        pose, path = _place(pose, disp, direction, depth, x_range, depth_range)
        if view.pitch_deg:
            pose = rotate_root(pose, pitch_rotation(view.pitch_deg))  # upright in the world, seen pitched
        pheno = bounds[:, 0] + (bounds[:, 1] - bounds[:, 0]) * rng.random(len(PHENOTYPE_LABELS))
        cast.poses.append(pose)
        cast.paths.append(path)
        cast.phenotypes.append(torch.tensor(pheno, dtype=torch.float32))
        walk = {} if depth_range is None else {"depth_path_m": [float(z) for z in depth_range]}
        cast.meta.append({"id": k, "depth_m": depth, "direction": "right" if direction > 0 else "left",
                          "phenotypes": [float(p) for p in pheno], **walk, **motion})
    return cast


class _SquareStage:
    """Renders people over the clean background on a square canvas (the synthesis renderer's
    shape) centred on the frame, and composites them by depth."""

    def __init__(self, body, K: torch.Tensor, background: np.ndarray, device: torch.device,
                 pitch_deg: float = DEFAULT_PITCH_DEG):
        self.body, self.background, self.device = body, background, device
        # level frame -> camera frame; its middle column is the floor's downward normal
        self.pitch = torch.tensor(pitch_rotation(pitch_deg), dtype=torch.float32) if pitch_deg else None
        self.height, self.width = background.shape[:2]
        self.side = max(self.width, self.height)
        self.ox, self.oy = (self.side - self.width) // 2, (self.side - self.height) // 2
        self.K = K.clone()
        self.K[0, 2] += self.ox
        self.K[1, 2] += self.oy
        self.canvas = np.zeros((self.side, self.side, 3), np.float32)
        self.canvas[self.oy:self.oy + self.height, self.ox:self.ox + self.width] = background
        self.renderer = SynthesisRenderer(body, device=device)

    def composite(self, cast: _Cast, appearance_seeds: Sequence[int], start: int, stop: int,
                  camera_height: float) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray]]:
        """Frames ``start:stop`` before flicker and noise: float images in [0, 1] ``(n, H, W, 3)``,
        the visible-person labels ``(n, H, W)`` (0 background, ``k + 1`` person ``k``) and the
        people's camera-frame ``joints3d (n, people, 17, 3)`` and ``translation (n, people, 3)``."""
        n, height, width, side = stop - start, self.height, self.width, self.side
        image = np.broadcast_to(self.background, (n, height, width, 3)).copy()
        nearest = np.full((n, height, width), np.inf, np.float32)
        label = np.zeros((n, height, width), np.uint8)
        joints = np.zeros((n, len(cast.poses), 17, 3), np.float32)
        translations = np.zeros((n, len(cast.poses), 3), np.float32)
        window = (slice(None), slice(self.oy, self.oy + height), slice(self.ox, self.ox + width))
        for k in range(len(cast.poses)):
            with torch.no_grad():
                out = self.body(cast.poses[k][start:stop].to(self.device),
                                cast.phenotypes[k].expand(n, -1).to(self.device))
                vertices = out.vertices
                trans = cast.paths[k][start:stop].to(self.device).clone()
                if self.pitch is None:
                    trans[:, 1] = camera_height - vertices[..., 1].amax(1)  # lowest vertex on the floor
                else:  # the path in the camera frame, moved along the floor normal to touch the floor
                    R = self.pitch.to(self.device)
                    down = R[:, 1]
                    trans = trans @ R.T
                    trans = trans + (camera_height - (vertices @ down).amax(1))[:, None] * down
                vertices = vertices + trans[:, None]
                joints[:, k] = (out.joints + trans[:, None]).cpu().numpy()
                translations[:, k] = trans.cpu().numpy()
            rngs = [np.random.default_rng(appearance_seeds[k]) for _ in range(n)]
            rendered = self.renderer.render(vertices, self.K.expand(n, 3, 3).to(self.device), rngs,
                                            setting="studio", size=side,
                                            backgrounds=np.broadcast_to(self.canvas, (n, side, side, 3)),
                                            noise=False)
            hit = rendered.mask[window].astype(bool)
            depth = np.where(hit, rendered.depth[window], np.inf)
            front = hit & (depth < nearest)
            nearest = np.where(front, depth, nearest)
            label[front] = k + 1
            image[front] = rendered.image[window][front].astype(np.float32) / 255.0
        return image, label, (joints, translations)


def _person_boxes(label: np.ndarray, people: int) -> np.ndarray:
    """Box ``(x0, y0, x1, y1)`` of each person's visible pixels per frame ``(n, people, 4)``; -1
    where a person is not visible."""
    boxes = np.full((len(label), people, 4), -1, np.int32)
    for i in range(len(label)):
        for k in range(people):
            ys, xs = np.nonzero(label[i] == k + 1)
            if len(xs):
                boxes[i, k] = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    return boxes


def render_static_camera_sequence(
    out_video: str | os.PathLike,
    frames: int = 120,
    people: int = 1,
    clips=None,
    res: tuple[int, int] = DEFAULT_RES,
    seed: int = 0,
    flicker: float = DEFAULT_FLICKER,
    noise: float = DEFAULT_NOISE,
    fps: float = DEFAULT_FPS,
    **kwargs,
) -> tuple[Path, np.ndarray, dict]:
    """Render a static-camera video of Anny bodies walking through a fixed scene and write it.

    Args:
        out_video: the video to write (``.mp4`` or ``.avi``); the ground truth goes beside it as
            ``<stem>_masks.npz`` (``masks``, ``K``, ``gain``, ``boxes``) and ``<stem>_meta.json``.
        frames, people, clips, res, seed, flicker, noise, fps, kwargs: see :func:`render_frames`.

    Returns:
        ``(video_path, gt_masks, meta)``: ``gt_masks`` ``(T, H, W)`` uint8 (0 background, ``k + 1``
        person ``k``'s visible pixels), ``meta`` the dict written to ``<stem>_meta.json``.
    """
    out_video = Path(out_video)
    if out_video.suffix.lower() not in CODECS:
        raise ConfigError(f"{out_video}: the video must end in {' or '.join(CODECS)}")
    video, masks, info = render_frames(frames, people, clips, res, seed, flicker, noise, fps, **kwargs)
    fourcc = write_video(out_video, video, fps)
    masks_path = out_video.with_name(out_video.stem + "_masks.npz")
    np.savez_compressed(masks_path, masks=masks, K=info["K"], gain=info["gain"], boxes=info["boxes"])
    meta = {k: v for k, v in info.items() if not isinstance(v, np.ndarray)}
    meta.update(video=out_video.name, masks=masks_path.name, fourcc=fourcc,
                masks_note="masks (T, H, W) uint8, 0 background, k + 1 person k visible; boxes (T, people, 4) "
                           "x0, y0, x1, y1 of each person's visible pixels (-1: not visible); gain (T,) flicker")
    out_video.with_name(out_video.stem + "_meta.json").write_text(json.dumps(meta, indent=1))
    return out_video, masks, meta


def load_ground_truth(video: str | os.PathLike) -> tuple[np.ndarray, dict]:
    """The ``masks (T, H, W)`` and meta written beside a synthetic video."""
    video = Path(video)
    masks_path = video.with_name(video.stem + "_masks.npz")
    meta_path = video.with_name(video.stem + "_meta.json")
    if not masks_path.exists():
        raise DataError(f"{masks_path}: no ground-truth masks beside the video")
    with np.load(masks_path) as z:
        masks = z["masks"]
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    return masks, meta


__all__ = [
    "render_static_camera_sequence", "render_frames", "procedural_walk", "scene_background",
    "load_ground_truth", "DEFAULT_RES", "DEFAULT_FPS", "DEFAULT_FLICKER", "DEFAULT_NOISE",
]

"""DeepMimic humanoid motion clips (JSON ``{"Loop", "Frames"}``) to named keypoints.

Frame layout (44 numbers): duration, root position (3, metres), root quaternion (w, x, y, z),
then chest, neck, right hip (quaternions), right knee (angle), right ankle, right shoulder
(quaternions), right elbow (angle), left hip (quaternion), left knee (angle), left ankle, left
shoulder (quaternions), left elbow (angle). World: Y up, +X forward, +Z the character's right.
Rotations are local (child relative to parent); knees and elbows turn about their link's Z axis.
The segment offsets below are the joint origins of DeepMimic's ``humanoid.urdf`` times 0.25.
The layout is checked on read (unit quaternions); the tests check constant limb lengths and
feet above the floor on real clips.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import roma
import torch

from maskpose.errors import DataError

_SCALE = 0.25  # humanoid.urdf units -> metres
FRAME_SIZE = 44

#: (joint, parent, offset from the parent joint in the parent's frame, urdf units, kind)
_JOINTS: tuple[tuple[str, str | None, tuple[float, float, float], str], ...] = (
    ("root", None, (0.0, 0.0, 0.0), "root"),
    ("chest", "root", (0.0, 0.944604, 0.0), "quat"),
    ("neck", "chest", (0.0, 0.895576, 0.0), "quat"),
    ("right_hip", "root", (0.0, 0.0, 0.339548), "quat"),
    ("right_knee", "right_hip", (0.0, -1.686184, 0.0), "angle"),
    ("right_ankle", "right_knee", (0.0, -1.639480, 0.0), "quat"),
    ("right_shoulder", "chest", (-0.096200, 0.974000, 0.732440), "quat"),
    ("right_elbow", "right_shoulder", (0.0, -1.099152, 0.0), "angle"),
    ("left_hip", "root", (0.0, 0.0, -0.339548), "quat"),
    ("left_knee", "left_hip", (0.0, -1.686184, 0.0), "angle"),
    ("left_ankle", "left_knee", (0.0, -1.639480, 0.0), "quat"),
    ("left_shoulder", "chest", (-0.096200, 0.974000, -0.732440), "quat"),
    ("left_elbow", "left_shoulder", (0.0, -1.099152, 0.0), "angle"),
)
#: Points fixed on a link: (keypoint, link, offset in the link's frame, urdf units). The wrist is
#: the fixed wrist joint; the head centre and top come from the neck link's sphere (centre
#: 0.7 up, radius 0.41); the toe is the front of the foot box (centre (0.18, -0.09, 0), 0.708 long).
_POINTS: tuple[tuple[str, str, tuple[float, float, float]], ...] = (
    ("r_wrist", "right_elbow", (0.0, -1.035788, 0.0)),
    ("l_wrist", "left_elbow", (0.0, -1.035788, 0.0)),
    ("head", "neck", (0.0, 0.7, 0.0)),
    ("head_top", "neck", (0.0, 1.11, 0.0)),
    ("r_toe", "right_ankle", (0.534, -0.09, 0.0)),
    ("l_toe", "left_ankle", (0.534, -0.09, 0.0)),
)
#: Keypoints at joint origins.
_AT_JOINT = {
    "pelvis": "root", "spine": "chest", "thorax": "neck",
    "r_hip": "right_hip", "r_knee": "right_knee", "r_ankle": "right_ankle",
    "r_shoulder": "right_shoulder", "r_elbow": "right_elbow",
    "l_hip": "left_hip", "l_knee": "left_knee", "l_ankle": "left_ankle",
    "l_shoulder": "left_shoulder", "l_elbow": "left_elbow",
}


def _quat_to_rotmat(q: np.ndarray) -> np.ndarray:
    """``(..., 4)`` unit quaternions (w, x, y, z, DeepMimic's order) to ``(..., 3, 3)`` rotations."""
    return roma.unitquat_to_rotmat(roma.quat_wxyz_to_xyzw(torch.from_numpy(q))).numpy()


def _about_z(angle: np.ndarray) -> np.ndarray:
    """``(...)`` angles (radians) to ``(..., 3, 3)`` rotations about the z axis (the hinge joints)."""
    rotvec = torch.zeros(*np.shape(angle), 3, dtype=torch.float64)
    rotvec[..., 2] = torch.from_numpy(np.asarray(angle, np.float64))
    return roma.rotvec_to_rotmat(rotvec).numpy()


def _load_frames(path: Path) -> np.ndarray:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot read DeepMimic clip: {err}") from err
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not a DeepMimic clip (invalid JSON: {err})") from err
    if not isinstance(data, dict) or "Frames" not in data:
        raise DataError(f"{path}: not a DeepMimic clip (no 'Frames' entry)")
    frames = data["Frames"]
    if not isinstance(frames, list) or not frames:
        raise DataError(f"{path}: DeepMimic clip has no frames")
    bad = next((i for i, f in enumerate(frames) if not isinstance(f, list) or len(f) != FRAME_SIZE), None)
    if bad is not None:
        length = len(frames[bad]) if isinstance(frames[bad], list) else type(frames[bad]).__name__
        raise DataError(f"{path}: DeepMimic frame {bad} has {length} values, expected {FRAME_SIZE}")
    try:
        array = np.asarray(frames, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise DataError(f"{path}: DeepMimic frames must hold numbers only: {err}") from err
    if not np.isfinite(array).all():
        raise DataError(f"{path}: DeepMimic frames contain non-finite values")
    return array


def _forward(frames: np.ndarray, path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Joint name -> (world position (T, 3), world rotation (T, 3, 3))."""
    cursor = 8
    world: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name, parent, offset, kind in _JOINTS:
        if kind == "root":
            quat = frames[:, 4:8]
        elif kind == "quat":
            quat = frames[:, cursor : cursor + 4]
            cursor += 4
        else:
            angle = frames[:, cursor]
            cursor += 1
        if kind != "angle":
            # Some shipped clips hold slightly unnormalised quaternions (DeepMimic normalises on
            # load); a wrong field layout shows as norms far from 1 on most frames.
            norms = np.linalg.norm(quat, axis=-1)
            typical = float(np.median(np.abs(norms - 1.0)))
            worst = int(np.argmax(np.abs(np.log(np.maximum(norms, 1e-12)))))
            if typical > 0.05 or not 0.25 < norms[worst] < 4.0:
                raise DataError(
                    f"{path}: DeepMimic {name} quaternions are not unit length (median |norm - 1| "
                    f"{typical:.3f}, frame {worst} norm {norms[worst]:.3f}): the field layout does "
                    f"not match the humanoid's (expected {FRAME_SIZE} values per frame: duration, "
                    f"root position, root quaternion, then chest, neck, right leg, right arm, left "
                    f"leg, left arm)"
                )
            local = _quat_to_rotmat(quat / norms[:, None])
        else:
            local = _about_z(angle)
        if parent is None:
            world[name] = (frames[:, 1:4].copy(), local)
        else:
            p_pos, p_rot = world[parent]
            pos = p_pos + p_rot @ (np.asarray(offset) * _SCALE)
            world[name] = (pos, p_rot @ local)
    assert cursor == FRAME_SIZE
    return world


def read_deepmimic(path: Path, keypoints: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, float]:
    """Read a DeepMimic clip: ``(positions (T, K, 3) metres, rest (K, 3), fps)`` in DeepMimic's
    world axes; NaN for keypoints the humanoid lacks (hands)."""
    frames = _load_frames(path)
    rest_frame = np.zeros((1, FRAME_SIZE))
    rest_frame[0, 4] = 1.0  # identity root quaternion
    cursor = 8
    for _, _, _, kind in _JOINTS[1:]:
        if kind == "quat":
            rest_frame[0, cursor] = 1.0
            cursor += 4
        else:
            cursor += 1
    out = []
    for block in (frames, rest_frame):
        world = _forward(block, path)
        points = {key: world[joint][0] for key, joint in _AT_JOINT.items()}
        for key, link, offset in _POINTS:
            pos, rot = world[link]
            points[key] = pos + rot @ (np.asarray(offset) * _SCALE)
        nan = np.full((block.shape[0], 3), np.nan)
        out.append(np.stack([points.get(k, nan) for k in keypoints], axis=1))
    duration = float(frames[0, 0])
    fps = 1.0 / duration if duration > 0 else 0.0
    return out[0], out[1][0], fps


def looks_like_deepmimic(path: Path) -> bool:
    """Cheap check for folder scans: the file starts with a JSON object."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(64).lstrip()
    except OSError:
        return False
    return head.startswith(b"{")

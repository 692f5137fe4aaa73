"""BVH mocap (CMU and similar) to named keypoints, through the ``pybvh`` parser.

The reader maps the file's joints onto maskpose's mocap keypoints (``motion.MOCAP_KEYPOINTS``) by
name, accepting the usual conventions: CMU "cmuconvert-max" (``LeftHip``, ``LeftKnee``,
``LeftShoulder`` = upper arm, ``LeftCollar``), CMU "cmuconvert-mb" / Mixamo (``LeftUpLeg``,
``LeftLeg``, ``LeftShoulder`` = clavicle, ``LeftArm``) and close variants; a name prefix such as
``mixamorig:`` is ignored and matching is case-insensitive.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pybvh

from maskpose.errors import DataError

#: Candidate joint names per keypoint, in order of preference. The upper-arm list puts ``LeftArm``
#: before ``LeftShoulder`` because in the mb/Mixamo naming ``LeftShoulder`` is the clavicle.
_LEFT_CANDIDATES: dict[str, tuple[str, ...]] = {
    "hip": ("LeftUpLeg", "LeftHip", "LeftThigh", "LeftUpperLeg"),
    "knee": ("LeftLeg", "LeftKnee", "LeftShin", "LeftLowerLeg"),
    "ankle": ("LeftFoot", "LeftAnkle"),
    "toe": ("LeftToeBase", "LeftToe", "LeftToes"),
    "shoulder": ("LeftArm", "LeftUpArm", "LeftUpperArm", "LeftShoulder"),
    "elbow": ("LeftForeArm", "LeftElbow", "LeftLowArm", "LeftLowerArm"),
    "wrist": ("LeftHand", "LeftWrist"),
    "hand": ("LFingers", "LeftFingerBase", "LeftHandMiddle1", "LeftHandIndex1"),
}
_CENTRE_CANDIDATES: dict[str, tuple[str, ...]] = {
    "spine": ("Chest", "Spine", "Spine1"),
    "thorax": ("lowerneck", "Neck"),
    "head": ("Head",),
    "head_top": ("HeadTop_End", "Head_End", "HeadEnd", "EndSiteHead"),
}
#: Keypoints a clip cannot do without; the others are optional (their joints then stay at rest).
REQUIRED = (
    "l_hip", "r_hip", "l_knee", "r_knee", "l_ankle", "r_ankle", "thorax", "head",
    "l_shoulder", "r_shoulder", "l_elbow", "r_elbow", "l_wrist", "r_wrist",
)


def _right(name: str) -> str:
    return name.replace("Left", "Right").replace("LFingers", "RFingers")


def candidates() -> dict[str, tuple[str, ...]]:
    """Keypoint name -> candidate BVH joint names (the root joint is always the pelvis)."""
    table = {}
    for part, names in _LEFT_CANDIDATES.items():
        table[f"l_{part}"] = names
        table[f"r_{part}"] = tuple(_right(n) for n in names)
    table.update(_CENTRE_CANDIDATES)
    return table


def _plain(name: str) -> str:
    return name.rsplit(":", 1)[-1].lower()


def read_bvh(path: Path, keypoints: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, float]:
    """Read a BVH file and return ``(positions (T, K, 3), rest (K, 3), fps)``.

    Positions are in the file's own units and axes, ``K = len(keypoints)``, NaN for optional
    keypoints the skeleton lacks. ``rest`` is the skeleton with every rotation zero and the root at
    the origin. Raises ``DataError`` naming the file for anything unreadable or missing.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            bvh = pybvh.read_bvh_file(path, warn_on_world_up_disagreement=False)
            positions = pybvh.frames_to_node_positions(bvh)
            rest = pybvh.frames_to_node_positions(
                bvh, root_pos=np.zeros(3), joint_angles=np.zeros_like(bvh.joint_angles[0])
            )
    except (ValueError, IndexError, KeyError, OSError) as err:
        message = str(err) or type(err).__name__
        raise DataError(f"{path}: cannot read BVH: {message}") from err
    if positions.ndim == 2:  # a single frame comes back without the frame axis
        positions = positions[None]
    if positions.shape[0] == 0:
        raise DataError(f"{path}: BVH has no motion frames")
    if not np.isfinite(positions).all():
        raise DataError(f"{path}: BVH motion contains non-finite values")

    names = [node.name for node in bvh.nodes]
    index = {}
    for i, node in enumerate(bvh.nodes):
        # pybvh names end sites "EndSite" + the parent's name; strip the parent's prefix too.
        plain = "endsite" + _plain(node.parent.name) if node.is_end_site() else _plain(node.name)
        index.setdefault(plain, i)
    table = candidates()
    columns = []
    for key in keypoints:
        if key == "pelvis":
            columns.append(0)  # the root joint
            continue
        found = next((index[_plain(c)] for c in table.get(key, ()) if _plain(c) in index), None)
        if found is None and key in REQUIRED:
            side = {"l": "left ", "r": "right "}.get(key.split("_")[0], "") if "_" in key else ""
            part = key.split("_", 1)[1] if side else key
            joints = ", ".join(n for n in names if not n.startswith("EndSite"))
            raise DataError(
                f"{path}: BVH skeleton has no joint for the {side}{part} "
                f"(looked for {', '.join(table[key])}); its joints are: {joints}"
            )
        columns.append(found)
    out = np.full((positions.shape[0], len(keypoints), 3), np.nan)
    out_rest = np.full((len(keypoints), 3), np.nan)
    for k, col in enumerate(columns):
        if col is not None:
            out[:, k] = positions[:, col]
            out_rest[k] = rest[col]
    fps = 1.0 / bvh.frame_time if bvh.frame_time > 0 else 0.0
    return out, out_rest, fps

"""The articulated subset of Anny that maskpose poses, and its anatomical limits (one table).

Rotations of every joint except the global orientation are Anny ``local-ref`` deltas: axes are the
world axes of the rest pose carried along by the parent bones. Anny's world is Z up, -Y the facing
direction and +X the subject's left, so for a joint at rest:

* rotation about **+X** tilts a downward-pointing limb backward (knee flexion is positive about X,
  hip flexion is negative);
* rotation about **+Y** (the backward axis) swings a limb sideways;
* rotation about **+Z** (up) twists about the vertical.

Ball joints are limited by intrinsic XYZ Euler angles (degrees, ``roma``'s ``"XYZ"`` convention);
hinge joints (knees, elbows) by one angle about a fixed axis, with any off-axis rotation penalised.
Limits are written for the left side; the right side is the mirror image (x -> -x), which keeps
the X angle and negates the Y and Z angles.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Index 0 of every pose tensor is the global orientation, applied in the camera frame about the
#: pelvis; the others are Anny bones, in this order.
ARTICULATED_JOINTS: tuple[str, ...] = (
    "global_orient",
    "spine", "neck", "head",
    "l_clavicle", "r_clavicle", "l_shoulder", "r_shoulder", "l_elbow", "r_elbow",
    "l_wrist", "r_wrist", "l_hip", "r_hip", "l_knee", "r_knee", "l_ankle", "r_ankle",
)

#: Anny bone driven by each articulated joint (index 0, the global orientation, drives none).
ANNY_BONE_OF_JOINT: dict[str, str] = {
    "spine": "spine03", "neck": "neck01", "head": "head",
    "l_clavicle": "clavicle.L", "r_clavicle": "clavicle.R",
    "l_shoulder": "upperarm01.L", "r_shoulder": "upperarm01.R",
    "l_elbow": "lowerarm01.L", "r_elbow": "lowerarm01.R",
    "l_wrist": "wrist.L", "r_wrist": "wrist.R",
    "l_hip": "upperleg01.L", "r_hip": "upperleg01.R",
    "l_knee": "lowerleg01.L", "r_knee": "lowerleg01.R",
    "l_ankle": "foot.L", "r_ankle": "foot.R",
}

NUM_POSE_ROTATIONS = len(ARTICULATED_JOINTS)

#: H36M-17 joints as Anny bone heads (docs/design.md §2); "head_top" is a surface point, not a bone.
H36M_FROM_ANNY: tuple[str, ...] = (
    "root", "upperleg01.R", "lowerleg01.R", "foot.R", "upperleg01.L", "lowerleg01.L", "foot.L",
    "spine03", "neck01", "head", "head_top", "upperarm01.L", "lowerarm01.L", "wrist.L",
    "upperarm01.R", "lowerarm01.R", "wrist.R",
)


@dataclass(frozen=True)
class BallLimit:
    """Intrinsic XYZ Euler ranges in degrees (left side)."""

    x: tuple[float, float]
    y: tuple[float, float]
    z: tuple[float, float]


@dataclass(frozen=True)
class HingeLimit:
    """Flexion range in degrees about the hinge axis (see ``hinge_axis``)."""

    flexion: tuple[float, float]


#: The one table of anatomical limits (left side; right mirrored). Values are deliberately
#: conservative: the sampler draws inside them and the pose prior penalises leaving them.
JOINT_LIMITS: dict[str, BallLimit | HingeLimit] = {
    "spine": BallLimit(x=(-15, 40), y=(-25, 25), z=(-30, 30)),
    "neck": BallLimit(x=(-25, 35), y=(-20, 20), z=(-35, 35)),
    "head": BallLimit(x=(-20, 25), y=(-15, 15), z=(-30, 30)),
    "clavicle": BallLimit(x=(-10, 10), y=(-15, 10), z=(-10, 10)),
    "shoulder": BallLimit(x=(-100, 40), y=(-85, 35), z=(-60, 60)),
    "elbow": HingeLimit(flexion=(-40, 110)),  # Anny's rest forearm is already bent ~42 deg
    "wrist": BallLimit(x=(-40, 40), y=(-30, 30), z=(-40, 40)),
    "hip": BallLimit(x=(-100, 25), y=(-40, 15), z=(-35, 35)),
    "knee": HingeLimit(flexion=(0, 145)),
    "ankle": BallLimit(x=(-25, 40), y=(-15, 15), z=(-20, 20)),
}

#: Global orientation ranges for sampling (degrees): yaw about the body's vertical axis, then
#: pitch (lean toward/away from the camera) and roll (lean sideways).
GLOBAL_ORIENT_RANGE = {"yaw": (-180.0, 180.0), "pitch": (-15.0, 15.0), "roll": (-10.0, 10.0)}

#: Adult phenotype ranges for sampling, in Anny's [0, 1] units
#: (order: gender, age, muscle, weight, height, proportions).
PHENOTYPE_LABELS: tuple[str, ...] = ("gender", "age", "muscle", "weight", "height", "proportions")
ADULT_PHENOTYPE_RANGE: dict[str, tuple[float, float]] = {
    "gender": (0.0, 1.0), "age": (0.45, 0.85), "muscle": (0.2, 0.8), "weight": (0.2, 0.8),
    "height": (0.25, 0.85), "proportions": (0.3, 0.7),
}


def limit_of(joint: str) -> BallLimit | HingeLimit:
    """The limit entry of an articulated joint name such as ``"l_knee"``."""
    kind = joint.split("_", 1)[1] if joint[:2] in ("l_", "r_") else joint
    return JOINT_LIMITS[kind]


def is_right(joint: str) -> bool:
    return joint.startswith("r_")

"""Motion library: real mocap (BVH, DeepMimic clips) retargeted onto Anny by bone directions.

Retargeting (docs/design.md §2) works on joint *positions*, so any skeleton with the usual joints fits:

* the mocap is brought into Anny's world axes (Z up, -Y facing, +X the subject's left) from its
  own rest pose (every rotation zero), and scaled so its leg length matches Anny's;
* the **pelvis** frame comes from the hip line and the lower-trunk direction (mid-hip -> spine),
  the **chest** frame from the shoulder line and the upper-trunk direction (spine -> thorax); each
  is taken relative to the mocap's rest pose, so Anny's root and ``spine`` joint reproduce the
  mocap's pelvis and chest rotations (the lower spine follows the pelvis, the upper the chest);
* neck, head and clavicles take the minimal rotation (swing) that turns their mocap bone from its
  rest direction to the current one, in the parent's frame;
* **limbs** are aligned with the mocap bones exactly: the hip (shoulder) is turned so that the
  thigh (upper arm) lies along the mocap bone, with its twist chosen so that the knee (elbow) bends
  as a hinge about ``sampler.hinge_axis`` in the plane of the mocap limb; when the limb is nearly
  straight (below 10-30 degrees of bend, blended) that plane is unobservable and the twist comes
  from the foot's direction around the thigh (legs) or the minimal swing (arms). Any residual
  after the hinge (a non-planar mocap limb) goes to a small swing of the knee (elbow), so the shin
  and forearm directions are exact too. Hands and feet swing to the mocap hand and foot
  directions (the foot keeping its rest angle offset to the shin).

Everything is solved analytically from Anny's reference skeleton (identity pose) at one
phenotype, vectorised over frames. Outputs are maskpose poses ``(T, 18, 6)`` (index 0 the global
orientation in the camera frame) and the pelvis trajectory in the camera frame.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import roma
import torch

from maskpose.body.anny_body import ANNY_TO_CAMERA, RENDER_TOPOLOGY, load_anny
from maskpose.body.bvh import read_bvh
from maskpose.body.deepmimic import looks_like_deepmimic, read_deepmimic
from maskpose.body.limits import (
    ADULT_PHENOTYPE_RANGE,
    ARTICULATED_JOINTS,
    PHENOTYPE_LABELS,
)
from maskpose.body.rotations import rotmat_to_sixd, sixd_to_rotmat
from maskpose.body.sampler import hinge_axis
from maskpose.errors import DataError, MaskposeError

log = logging.getLogger(__name__)

#: Named mocap points every reader produces (NaN where a skeleton lacks an optional one).
MOCAP_KEYPOINTS: tuple[str, ...] = (
    "pelvis", "l_hip", "r_hip", "l_knee", "r_knee", "l_ankle", "r_ankle", "l_toe", "r_toe",
    "spine", "thorax", "head", "head_top", "l_shoulder", "r_shoulder", "l_elbow", "r_elbow",
    "l_wrist", "r_wrist", "l_hand", "r_hand",
)
_K = {name: i for i, name in enumerate(MOCAP_KEYPOINTS)}

#: Limbs retargeted exactly: name -> (mocap keypoint from, to). The Anny bones are the H36M joints
#: of the same names (``ANNY_LIMB_JOINTS``).
LIMBS: dict[str, tuple[str, str]] = {
    "l_upper_arm": ("l_shoulder", "l_elbow"), "r_upper_arm": ("r_shoulder", "r_elbow"),
    "l_forearm": ("l_elbow", "l_wrist"), "r_forearm": ("r_elbow", "r_wrist"),
    "l_thigh": ("l_hip", "l_knee"), "r_thigh": ("r_hip", "r_knee"),
    "l_shin": ("l_knee", "l_ankle"), "r_shin": ("r_knee", "r_ankle"),
}
#: The same limbs as H36M-17 joint index pairs (``skeletons.H36M_JOINTS``).
ANNY_LIMB_JOINTS: dict[str, tuple[int, int]] = {
    "l_upper_arm": (11, 12), "r_upper_arm": (14, 15), "l_forearm": (12, 13), "r_forearm": (15, 16),
    "l_thigh": (4, 5), "r_thigh": (1, 2), "l_shin": (5, 6), "r_shin": (2, 3),
}

#: Anny bones (heads) the retargeting reads from the reference skeleton.
_REFERENCE_BONES = {
    "root": "root", "spine": "spine03", "thorax": "neck01", "head": "head",
    "l_clavicle": "clavicle.L", "r_clavicle": "clavicle.R",
    "l_shoulder": "upperarm01.L", "r_shoulder": "upperarm01.R",
    "l_elbow": "lowerarm01.L", "r_elbow": "lowerarm01.R", "l_wrist": "wrist.L", "r_wrist": "wrist.R",
    "l_hand": "finger3-1.L", "r_hand": "finger3-1.R",
    "l_hip": "upperleg01.L", "r_hip": "upperleg01.R", "l_knee": "lowerleg01.L", "r_knee": "lowerleg01.R",
    "l_ankle": "foot.L", "r_ankle": "foot.R",
}
#: H36M-17 joints without the head top (a surface point): reference point and the articulated
#: joint whose accumulated rotation places it relative to its parent point.
_H36M_BONE_JOINTS = (
    "root", "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "spine", "thorax", "head",
    "l_shoulder", "l_elbow", "l_wrist", "r_shoulder", "r_elbow", "r_wrist",
)
#: point -> (parent point, articulated joint carrying the offset)
_CHAIN = {
    "l_hip": ("root", "global_orient"), "r_hip": ("root", "global_orient"),
    "spine": ("root", "global_orient"), "thorax": ("spine", "spine"), "head": ("thorax", "neck"),
    "l_clavicle": ("spine", "spine"), "r_clavicle": ("spine", "spine"),
    "l_shoulder": ("l_clavicle", "l_clavicle"), "r_shoulder": ("r_clavicle", "r_clavicle"),
    "l_elbow": ("l_shoulder", "l_shoulder"), "r_elbow": ("r_shoulder", "r_shoulder"),
    "l_wrist": ("l_elbow", "l_elbow"), "r_wrist": ("r_elbow", "r_elbow"),
    "l_knee": ("l_hip", "l_hip"), "r_knee": ("r_hip", "r_hip"),
    "l_ankle": ("l_knee", "l_knee"), "r_ankle": ("r_knee", "r_knee"),
}
_DTYPE = torch.float64
#: Mocap bend (degrees) below which a limb counts as straight (twist from the minimal swing) and
#: above which its plane sets the twist fully; linear blend in between.
_PLANE_BLEND_DEG = (10.0, 30.0)
#: Foot-to-thigh angle (degrees) below which the foot cannot set the leg's twist (pointed toes
#: on a straight leg); linear blend up to the upper value.
_FOOT_TWIST_DEG = (20.0, 40.0)
DEFAULT_PHENOTYPES: tuple[float, ...] = (0.5,) * 6


# --------------------------------------------------------------------------------------------
# Anny reference skeleton


@functools.lru_cache(maxsize=8)
def anny_reference(phenotypes: tuple[float, ...] = DEFAULT_PHENOTYPES) -> dict[str, torch.Tensor]:
    """Bone heads ``(3,)`` (float64, Anny world, root at the origin) of Anny at identity pose."""
    if len(phenotypes) != len(PHENOTYPE_LABELS) or not all(0.0 <= p <= 1.0 for p in phenotypes):
        raise MaskposeError(
            f"retarget phenotypes must be {len(PHENOTYPE_LABELS)} values in [0, 1], got {phenotypes}"
        )
    model = load_anny(RENDER_TOPOLOGY)
    labels = list(model.bone_labels)
    dtype = model.template_vertices.dtype
    with torch.no_grad():
        pheno_in = torch.tensor([phenotypes], dtype=dtype)
        _, pheno, _, _ = model.get_tensor_inputs(None, pheno_in, None, None)
        # Anny's public coefficients (by phenotype name; local changes and facial actions at 0).
        coeffs = model.get_phenotype_blendshape_coefficients(**dict(zip(model.phenotype_labels, pheno.unbind(1))))
        rest = model.get_rest_model(coeffs)
        delta = torch.eye(4, dtype=rest["rest_bone_poses"].dtype).repeat(1, len(labels), 1, 1)
        _, poses = model.get_bone_transforms(delta, rest["rest_bone_poses"])
    heads = poses[0, :, :3, 3].to(_DTYPE)
    out = {key: heads[labels.index(bone)] for key, bone in _REFERENCE_BONES.items()}
    for side, suffix in (("l", "L"), ("r", "R")):  # ball of the foot: mean of the toe bases
        out[f"{side}_toe"] = torch.stack([heads[labels.index(f"toe{i}-1.{suffix}")] for i in range(1, 6)]).mean(0)
    return out


def _hinge_axes() -> dict[str, torch.Tensor]:
    return {j: hinge_axis(j).to(_DTYPE) for j in ("l_knee", "r_knee", "l_elbow", "r_elbow")}


# --------------------------------------------------------------------------------------------
# Rotation helpers (float64, batched over leading dims)


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).sum(-1)


def _apply(rot: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return (rot @ v.unsqueeze(-1)).squeeze(-1)


def _rotation_between(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Minimal rotations taking directions ``a`` to ``b`` (``(..., 3)``, broadcast)."""
    a, b = torch.broadcast_tensors(_unit(a), _unit(b))
    axis = torch.linalg.cross(a, b)
    sin = axis.norm(dim=-1)
    cos = _dot(a, b)
    angle = torch.atan2(sin, cos)
    # Opposite directions: any axis normal to a.
    e_x, e_y = torch.eye(3, dtype=a.dtype)[:2]
    helper = torch.where(a[..., :1].abs() < 0.9, e_x, e_y)
    fallback = _unit(torch.linalg.cross(a, helper))
    axis = torch.where((sin < 1e-9)[..., None], fallback, axis / sin.clamp_min(1e-12)[..., None])
    return roma.rotvec_to_rotmat(axis * angle[..., None])


def _about(axis: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    return roma.rotvec_to_rotmat(_unit(axis) * angle[..., None])


def _frame(x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Orthonormal frames (columns x, y, z) with x along ``x`` and z as close to ``z`` as possible."""
    x = _unit(x)
    z = _unit(z - _dot(z, x)[..., None] * x)
    return torch.stack([x, torch.linalg.cross(z, x), z], dim=-1)


def _pair_frame(a: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """Frames with columns ``a``, ``n``, ``a x n`` for unit ``a`` and unit ``n`` normal to it."""
    return torch.stack([a, n, torch.linalg.cross(a, n)], dim=-1)


def _slerp_to(r0: torch.Tensor, r1: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    # Where a target frame is degenerate (e.g. a perfectly straight limb has no plane) its weight
    # is zero; nan_to_num keeps the garbage out.
    rel = torch.nan_to_num(roma.rotmat_to_rotvec(r0.transpose(-1, -2) @ r1), nan=0.0, posinf=0.0, neginf=0.0)
    return r0 @ roma.rotvec_to_rotmat(rel * weight[..., None])


def _hinge_for_bend(u, f, h, bend):
    """Hinge angles ``theta`` with angle(u, R(h, theta) f) = bend, on the flexion side."""
    hu, hf = _dot(h, u), _dot(h, f)
    a = _dot(u, f) - hu * hf
    b = _dot(u, torch.linalg.cross(h, f))
    c = hu * hf
    radius = math.hypot(float(a), float(b))
    psi = math.atan2(float(b), float(a))
    return psi + torch.acos(((torch.cos(bend) - c) / radius).clamp(-1.0, 1.0))


def _best_hinge(f, h, target):
    """Hinge angles bringing ``R(h, theta) f`` closest to ``target`` ``(T, 3)``."""
    hf = _dot(h, f)
    a = _dot(target, f) - _dot(target, h) * hf
    b = _dot(target, torch.linalg.cross(h, f).expand_as(target))
    return torch.atan2(b, a)


def _ramp(angle: torch.Tensor, low_deg: float, high_deg: float) -> torch.Tensor:
    low, high = math.radians(low_deg), math.radians(high_deg)
    return ((angle - low) / (high - low)).clamp(0.0, 1.0)


def _angle(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.acos(_dot(_unit(a), _unit(b)).clamp(-1.0, 1.0))


def _perp(v: torch.Tensor, axis: torch.Tensor) -> torch.Tensor:
    """Unit component of ``v`` normal to the unit ``axis``."""
    return _unit(v - _dot(v, axis)[..., None] * axis)


def _solve_limb(parent, u, f, h, d1, d2, end=None, d3=None):
    """Two-bone limb: world rotations of the proximal joint and local deltas of both joints.

    The twist of the proximal joint about its bone comes from the plane of the mocap limb when it
    is bent, else (legs) from the direction of the foot around the thigh, else from the minimal
    swing off the parent.

    Args:
        parent: ``(T, 3, 3)`` accumulated rotation of the proximal joint's parent.
        u, f: reference directions (Anny world) of the proximal and distal bones.
        h: hinge axis of the distal joint (local-ref, i.e. in the proximal joint's frame).
        d1, d2: ``(T, 3)`` mocap directions of the two bones.
        end, d3: optional reference and mocap ``(T, 3)`` directions of the bone after the distal
            one (the foot).
    Returns:
        (proximal delta, distal delta, distal accumulated rotation), each ``(T, 3, 3)``.
    """
    d1, d2 = _unit(d1), _unit(d2)
    bend = _angle(d1, d2)
    theta = _hinge_for_bend(u, f, h, bend)
    knee = _about(h.expand(theta.shape[0], 3), theta)
    bent = _apply(knee, f)
    ref_u = u.expand_as(bent)
    plane = _pair_frame(d1, _unit(torch.linalg.cross(d1, d2))) @ _pair_frame(
        ref_u, _unit(torch.linalg.cross(ref_u, bent))
    ).transpose(-1, -2)
    proximal = _rotation_between(_apply(parent, ref_u), d1) @ parent
    if end is not None and d3 is not None:
        ref_end = _apply(knee, end.expand_as(bent))
        around = _pair_frame(d1, _perp(d3, d1)) @ _pair_frame(ref_u, _perp(ref_end, ref_u)).transpose(-1, -2)
        proximal = _slerp_to(proximal, around, _ramp(_angle(d1, d3), *_FOOT_TWIST_DEG))
    proximal = _slerp_to(proximal, plane, _ramp(bend, *_PLANE_BLEND_DEG))
    target = _apply(proximal.transpose(-1, -2), d2)
    hinge = _about(h.expand_as(target), _best_hinge(f, h, target))
    distal = _rotation_between(_apply(hinge, f.expand_as(target)), target) @ hinge
    return parent.transpose(-1, -2) @ proximal, distal, proximal @ distal


def _snap_axis(v: np.ndarray) -> np.ndarray:
    out = np.zeros(3)
    i = int(np.argmax(np.abs(v)))
    out[i] = np.sign(v[i])
    return out


def mocap_to_anny_axes(rest: np.ndarray) -> np.ndarray:
    """Rotation ``(3, 3)`` (a signed permutation) from the mocap world to Anny's world, read from
    the rest pose: up = head above the ankles, left = the left hip's side."""
    k = _K
    up = _snap_axis(rest[k["head"]] - 0.5 * (rest[k["l_ankle"]] + rest[k["r_ankle"]]))
    left = rest[k["l_hip"]] - rest[k["r_hip"]]
    left = _snap_axis(left - (left @ up) * up)
    forward = np.cross(left, up)
    return np.stack([left, -forward, up])


# --------------------------------------------------------------------------------------------
# Retargeting


@dataclass
class Retargeted:
    """Retargeting result for ``T`` frames (Anny world, float64).

    Attributes:
        deltas: ``(T, 17, 3, 3)`` local-ref rotations of ``ARTICULATED_JOINTS[1:]``.
        root: ``(T, 3, 3)`` pelvis rotation in Anny's world.
        translation: ``(T, 3)`` pelvis (Anny root) position in Anny's world.
        accumulated: joint name -> ``(T, 3, 3)`` accumulated rotation (for forward kinematics).
    """

    deltas: torch.Tensor
    root: torch.Tensor
    translation: torch.Tensor
    accumulated: dict[str, torch.Tensor]


def retarget(keypoints: np.ndarray, rest: np.ndarray, reference: dict[str, torch.Tensor]) -> Retargeted:
    """Retarget mocap keypoints onto Anny.

    Args:
        keypoints: ``(T, K, 3)`` mocap points in ``MOCAP_KEYPOINTS`` order, Anny world axes,
            already scaled to Anny (metres); NaN rows for missing optional points.
        rest: ``(K, 3)`` the mocap rest pose, same axes and scale.
        reference: ``anny_reference(...)``.
    """
    pts = torch.as_tensor(keypoints, dtype=_DTYPE)
    rst = torch.as_tensor(rest, dtype=_DTYPE)
    n = pts.shape[0]

    def has(name: str) -> bool:
        return bool(torch.isfinite(rst[_K[name]]).all() and torch.isfinite(pts[:, _K[name]]).all())

    def p(name):
        return pts[:, _K[name]]

    def r(name):
        return rst[_K[name]]

    ref = reference
    mid_hip, mid_hip_rest = 0.5 * (p("l_hip") + p("r_hip")), 0.5 * (r("l_hip") + r("r_hip"))
    spine, spine_rest = (p("spine"), r("spine")) if has("spine") else (None, None)

    # Pelvis and chest frames relative to the mocap rest pose.
    low_up = (spine if spine is not None else p("thorax")) - mid_hip
    low_up_rest = (spine_rest if spine is not None else r("thorax")) - mid_hip_rest
    pelvis = _frame(p("l_hip") - p("r_hip"), low_up) @ _frame(r("l_hip") - r("r_hip"), low_up_rest).T
    high_up = p("thorax") - (spine if spine is not None else mid_hip)
    high_up_rest = r("thorax") - (spine_rest if spine is not None else mid_hip_rest)
    chest = _frame(p("l_shoulder") - p("r_shoulder"), high_up) @ _frame(
        r("l_shoulder") - r("r_shoulder"), high_up_rest
    ).T

    eye = torch.eye(3, dtype=_DTYPE).expand(n, 3, 3)
    acc = {"global_orient": pelvis, "spine": chest}
    delta = {"spine": pelvis.transpose(-1, -2) @ chest}

    def swing_from_rest(joint, parent, a, b, ok=True):
        """Delta turning the mocap bone a->b from its rest direction to the current one."""
        if not ok:
            delta[joint] = eye.clone()
        else:
            current = _apply(acc[parent].transpose(-1, -2), p(b) - p(a))
            delta[joint] = _rotation_between(r(b) - r(a), current)
        acc[joint] = acc[parent] @ delta[joint]

    swing_from_rest("neck", "spine", "thorax", "head")
    swing_from_rest("head", "neck", "head", "head_top", has("head_top"))
    for s in ("l", "r"):
        swing_from_rest(f"{s}_clavicle", "spine", "thorax", f"{s}_shoulder")

    hinges = _hinge_axes()
    for s in ("l", "r"):
        for prox, dist, a, b, c, parent in (
            ("shoulder", "elbow", "shoulder", "elbow", "wrist", f"{s}_clavicle"),
            ("hip", "knee", "hip", "knee", "ankle", "global_orient"),
        ):
            u = _unit(ref[f"{s}_{b}"] - ref[f"{s}_{a}"])
            f = _unit(ref[f"{s}_{c}"] - ref[f"{s}_{b}"])
            end = d3 = None
            if prox == "hip" and has(f"{s}_toe"):
                end, d3 = _unit(ref[f"{s}_toe"] - ref[f"{s}_ankle"]), p(f"{s}_toe") - p(f"{s}_ankle")
            d_prox, d_dist, acc_dist = _solve_limb(
                acc[parent], u, f, hinges[f"{s}_{dist}"], p(f"{s}_{b}") - p(f"{s}_{a}"),
                p(f"{s}_{c}") - p(f"{s}_{b}"), end, d3,
            )
            delta[f"{s}_{prox}"], delta[f"{s}_{dist}"] = d_prox, d_dist
            acc[f"{s}_{prox}"], acc[f"{s}_{dist}"] = acc[parent] @ d_prox, acc_dist

        # Hand: direct swing along the mocap hand (Anny's hand continues its forearm at rest).
        if has(f"{s}_hand"):
            current = _apply(acc[f"{s}_elbow"].transpose(-1, -2), p(f"{s}_hand") - p(f"{s}_wrist"))
            delta[f"{s}_wrist"] = _rotation_between(ref[f"{s}_hand"] - ref[f"{s}_wrist"], current)
        else:
            delta[f"{s}_wrist"] = eye.clone()
        acc[f"{s}_wrist"] = acc[f"{s}_elbow"] @ delta[f"{s}_wrist"]

        # Foot: the mocap foot direction, opened by the rest-angle difference to the shin.
        if has(f"{s}_toe"):
            shin, foot = _unit(p(f"{s}_ankle") - p(f"{s}_knee")), _unit(p(f"{s}_toe") - p(f"{s}_ankle"))
            ref_shin = _unit(ref[f"{s}_ankle"] - ref[f"{s}_knee"])
            ref_foot = _unit(ref[f"{s}_toe"] - ref[f"{s}_ankle"])
            rest_shin = _unit(r(f"{s}_ankle") - r(f"{s}_knee"))
            rest_foot = _unit(r(f"{s}_toe") - r(f"{s}_ankle"))
            offset = _angle(ref_shin, ref_foot) - _angle(rest_shin, rest_foot)
            target = _apply(_about(torch.linalg.cross(shin, foot), offset.expand(n)), foot)
            current = _apply(acc[f"{s}_knee"].transpose(-1, -2), target)
            delta[f"{s}_ankle"] = _rotation_between(ref_foot, current)
        else:
            delta[f"{s}_ankle"] = eye.clone()
        acc[f"{s}_ankle"] = acc[f"{s}_knee"] @ delta[f"{s}_ankle"]

    deltas = torch.stack([delta[j] for j in ARTICULATED_JOINTS[1:]], dim=1)
    ref_mid_hip = 0.5 * (ref["l_hip"] + ref["r_hip"]) - ref["root"]
    translation = mid_hip - _apply(pelvis, ref_mid_hip.expand_as(mid_hip))
    return Retargeted(deltas, pelvis, translation, acc)


def anny_joints(result: Retargeted, reference: dict[str, torch.Tensor]) -> torch.Tensor:
    """``(T, 16, 3)`` H36M-17 joints without the head top (Anny world, pelvis at the origin) by
    forward kinematics on the reference skeleton (the same chain as Anny's ``local-ref`` pose)."""
    points = {"root": torch.zeros_like(result.translation)}
    for name, (parent, joint) in _CHAIN.items():  # insertion order lists parents first
        offset = (reference[name] - reference[parent]).expand_as(result.translation)
        points[name] = points[parent] + _apply(result.accumulated[joint], offset)
    return torch.stack([points[name] for name in _H36M_BONE_JOINTS], dim=1)


def _heading_aligned(joints: torch.Tensor, root: torch.Tensor) -> torch.Tensor:
    """Rotate pelvis-centred joints about the vertical so the pelvis' left axis lies along +X."""
    left = root[:, :, 0]
    yaw = torch.atan2(left[:, 1], left[:, 0])
    rot = _about(torch.tensor([0.0, 0.0, 1.0], dtype=_DTYPE).expand(yaw.shape[0], 3), -yaw)
    return joints @ rot.transpose(-1, -2)


# --------------------------------------------------------------------------------------------
# Clips and the library


@dataclass
class Clip:
    """One retargeted mocap clip.

    Attributes:
        name: file stem.
        path: source file.
        fps: frames per second after striding.
        pose: ``(T, 18, 6)`` float32 maskpose poses (index 0 the global orientation, camera frame).
        translation: ``(T, 3)`` float32 pelvis position in the camera frame (metres); the mocap
            floor is the plane y = 0 (y points down).
        keypoints: ``(T, K, 3)`` float64 mocap points (``MOCAP_KEYPOINTS``; NaN where the skeleton
            lacks one) in the same camera-aligned frame, scaled like ``translation``.
        scale: factor from the file's units to the retargeted metres (Anny's leg length over the
            mocap's): ``keypoints / scale`` is in the file's units.
        joints: ``(T, 16, 3)`` float32 Anny H36M joints (no head top) at the reference
            phenotypes, pelvis at the origin, heading removed (the pelvis' left axis turned about
            the vertical onto +x), camera axes: the features of ``MotionLibrary.sample``.
    """

    name: str
    path: Path
    fps: float
    pose: torch.Tensor
    translation: torch.Tensor
    keypoints: np.ndarray
    scale: float
    joints: torch.Tensor = field(repr=False)

    def __len__(self) -> int:
        return int(self.pose.shape[0])


def _read_keypoints(path: Path) -> tuple[np.ndarray, np.ndarray, float]:
    suffix = path.suffix.lower()
    if suffix == ".bvh":
        if path.suffix != ".bvh":
            raise DataError(f"{path}: the BVH parser reads only files ending in lowercase '.bvh'; rename the file")
        return read_bvh(path, MOCAP_KEYPOINTS)
    if suffix in (".txt", ".json"):
        return read_deepmimic(path, MOCAP_KEYPOINTS)
    raise DataError(f"{path}: not a mocap clip (expected a BVH '.bvh' or a DeepMimic '.txt'/'.json' file)")


def load_clip(path: str | Path, *, stride: int = 1, phenotypes: tuple[float, ...] = DEFAULT_PHENOTYPES) -> Clip:
    """Read one BVH or DeepMimic clip and retarget it onto Anny (reference at ``phenotypes``)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    if not path.is_file():
        raise DataError(f"{path}: not a file")
    if stride < 1:
        raise MaskposeError(f"stride must be >= 1, got {stride}")
    raw, rest, fps = _read_keypoints(path)
    raw = raw[::stride]
    reference = anny_reference(tuple(float(p) for p in phenotypes))

    axes = mocap_to_anny_axes(rest)
    world, rest_world = raw @ axes.T, rest @ axes.T
    k = _K

    def leg(points):
        return sum(
            np.linalg.norm(points[..., k[f"{s}_{b}"], :] - points[..., k[f"{s}_{a}"], :], axis=-1)
            for s in ("l", "r") for a, b in (("hip", "knee"), ("knee", "ankle"))
        ) / 2.0

    mocap_leg = float(leg(rest_world))
    if not mocap_leg > 0:
        raise DataError(f"{path}: the rest skeleton has zero leg length")
    anny_leg = float(sum(
        (reference[f"{s}_{b}"] - reference[f"{s}_{a}"]).norm()
        for s in ("l", "r") for a, b in (("hip", "knee"), ("knee", "ankle"))
    ) / 2.0)
    scale = anny_leg / mocap_leg
    world, rest_world = world * scale, rest_world * scale
    result = retarget(world, rest_world, reference)

    to_camera = ANNY_TO_CAMERA.to(_DTYPE)
    root_camera = to_camera @ result.root @ to_camera.T
    rotations = torch.cat([root_camera[:, None], result.deltas], dim=1)
    joints = _heading_aligned(anny_joints(result, reference), result.root) @ to_camera.T
    return Clip(
        name=path.stem,
        path=path,
        fps=fps / stride,
        pose=rotmat_to_sixd(rotations).float(),
        translation=(result.translation @ to_camera.T).float(),
        keypoints=(torch.as_tensor(world) @ to_camera.T).numpy(),
        scale=scale,
        joints=joints.float(),
    )


def _expand(paths) -> list[Path]:
    if isinstance(paths, (str, Path)):
        paths = [paths]
    files: list[Path] = []
    for entry in paths:
        entry = Path(entry)
        if not entry.exists():
            raise DataError(f"{entry}: no such file or directory")
        if entry.is_dir():
            found = []
            for candidate in sorted(entry.rglob("*")):
                suffix = candidate.suffix.lower()
                if not candidate.is_file():
                    continue
                if suffix == ".bvh" or (suffix in (".txt", ".json") and looks_like_deepmimic(candidate)):
                    found.append(candidate)
            if not found:
                raise DataError(f"{entry}: no BVH (.bvh) or DeepMimic (.txt) clips in this folder")
            files.extend(found)
        else:
            files.append(entry)
    if not files:
        raise DataError("no mocap files given")
    return files


#: Candidate frames screened at once by :meth:`MotionLibrary.sample_frames`, and the most
#: (candidate, kept frame) pairs one screen computes (memory: 12 bytes a pair and joint).
_CHOICE_BLOCK = 64
_CHOICE_PAIRS = 1 << 16


def _pose_gaps(kept: np.ndarray, candidate: np.ndarray) -> np.ndarray:
    """Mean joint distance (metres) between pose features ``(..., J, 3)``, broadcast.

    The same values as ``np.linalg.norm(kept - candidate, axis=-1).mean(-1)`` (its sum of the
    three squares in the same order), without NumPy's reduction over a last axis of 3, which
    costs about as much per element as the whole rest."""
    difference = kept - candidate
    square = np.multiply(difference, difference, out=difference)
    length = square[..., 0] + square[..., 1]
    length += square[..., 2]
    return np.sqrt(length, out=length).mean(-1)


class MotionLibrary:
    """Mocap clips retargeted onto Anny, and a sampler of distinct frames.

    Args:
        paths: a folder (searched recursively for ``.bvh`` and DeepMimic ``.txt``/``.json``
            clips), a file, or a list of either.
        stride: keep every ``stride``-th frame (e.g. 4 for 120 fps CMU data).
        retarget_phenotypes: Anny phenotypes of the reference skeleton the poses are solved on.

    Iterating yields ``Clip`` objects; ``sample`` draws poses like ``PoseSampler.sample``.
    """

    def __init__(
        self,
        paths: str | Path | Sequence[str | Path],
        *,
        stride: int = 1,
        retarget_phenotypes: Sequence[float] = DEFAULT_PHENOTYPES,
    ):
        phenotypes = tuple(float(p) for p in retarget_phenotypes)
        self.clips: list[Clip] = [load_clip(p, stride=stride, phenotypes=phenotypes) for p in _expand(paths)]
        self._pose = torch.cat([c.pose for c in self.clips])
        self._features = torch.cat([c.joints for c in self.clips]).numpy()
        self._owner = np.concatenate([np.full(len(c), i) for i, c in enumerate(self.clips)])
        self._frame = np.concatenate([np.arange(len(c)) for c in self.clips])
        log.info("motion library: %d clips, %d frames", len(self.clips), self.num_frames)

    def __len__(self) -> int:
        return len(self.clips)

    def __iter__(self) -> Iterator[Clip]:
        return iter(self.clips)

    @property
    def num_frames(self) -> int:
        return int(self._pose.shape[0])

    def sample_frames(self, n: int, seed: int = 0, min_pose_difference: float = 0.05) -> list[tuple[int, int]]:
        """``n`` distinct ``(clip index, frame index)`` pairs, drawn in a seeded random order and
        skipping any frame whose pose is closer than ``min_pose_difference`` to one already chosen.

        Pose difference: mean distance (metres) between the Anny H36M joints of two frames after
        removing the pelvis position and the heading (yaw).
        """
        return [(int(self._owner[i]), int(self._frame[i])) for i in self._choose(n, seed, min_pose_difference)[0]]

    def _choose(self, n: int, seed: int, min_pose_difference: float):
        if n < 0:
            raise MaskposeError(f"number of samples must be >= 0, got {n}")
        if min_pose_difference < 0:
            raise MaskposeError(f"min_pose_difference must be >= 0, got {min_pose_difference}")
        generator = torch.Generator().manual_seed(seed)
        order = torch.randperm(self.num_frames, generator=generator).numpy()
        chosen: list[int] = []
        kept = np.empty((n, *self._features.shape[1:]), dtype=np.float32)
        position = 0
        # Candidates in blocks, with the gaps of one candidate at a time computed for the whole
        # block at once (the same per-pair arithmetic, so the same gaps to the bit): to the frames
        # kept before the block, and between the block's own frames (``pair[j, i]``: candidate
        # ``i`` against ``j`` kept); the block is then walked in order, as before.
        while len(chosen) < n and position < len(order):
            before = len(chosen)
            size = max(1, min(_CHOICE_BLOCK, _CHOICE_PAIRS // max(before, 1)))
            block = order[position:position + size]
            position += len(block)
            candidates = self._features[block]
            screen = min_pose_difference > 0
            if screen and before:
                gaps = _pose_gaps(kept[:before][None], candidates[:, None]).min(-1)
            else:
                gaps = np.full(len(block), np.inf, np.float32)
            if screen:
                pair = _pose_gaps(candidates[:, None], candidates[None])
            for i, index in enumerate(block):
                if len(chosen) == n:
                    break
                if chosen and screen and gaps[i] < min_pose_difference:
                    continue
                kept[len(chosen)] = candidates[i]
                chosen.append(int(index))
                if screen:
                    gaps = np.minimum(gaps, pair[i])
        if len(chosen) < n:
            raise MaskposeError(
                f"the motion library has only {len(chosen)} frames at least {min_pose_difference} m apart "
                f"(of {self.num_frames}); ask for fewer samples or a smaller min_pose_difference"
            )
        return chosen, generator

    def sample(
        self,
        n: int,
        seed: int = 0,
        min_pose_difference: float = 0.05,
        randomize_yaw: bool = False,
        phenotype_range: dict[str, tuple[float, float]] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(pose (n, 18, 6), phenotypes (n, 6))`` like ``PoseSampler.sample``.

        Args:
            n: number of frames.
            seed: same seed, same frames, phenotypes and yaws.
            min_pose_difference: see ``sample_frames`` (metres).
            randomize_yaw: turn each global orientation by a uniform random yaw about the
                vertical (otherwise the mocap heading is kept).
            phenotype_range: per-phenotype (low, high); the adult ranges of ``limits`` by default.
        """
        chosen, generator = self._choose(n, seed, min_pose_difference)
        pose = self._pose[chosen].clone()
        ranges = dict(ADULT_PHENOTYPE_RANGE if phenotype_range is None else phenotype_range)
        for name, (low, high) in ranges.items():
            if name not in PHENOTYPE_LABELS or not 0.0 <= low <= high <= 1.0:
                raise MaskposeError(f"bad phenotype range {name!r}: {(low, high)}")
        bounds = torch.tensor([ranges.get(k, (0.5, 0.5)) for k in PHENOTYPE_LABELS])
        phenotypes = bounds[:, 0] + (bounds[:, 1] - bounds[:, 0]) * torch.rand((n, 6), generator=generator)
        if randomize_yaw and n:
            yaw = (torch.rand(n, generator=generator) * 2.0 - 1.0) * math.pi
            zero = torch.zeros_like(yaw)
            turn = roma.rotvec_to_rotmat(torch.stack([zero, -yaw, zero], -1))  # about camera -y (up)
            pose[:, 0] = rotmat_to_sixd(turn @ sixd_to_rotmat(pose[:, 0]))
        return pose, phenotypes


__all__ = [
    "MOCAP_KEYPOINTS", "LIMBS", "ANNY_LIMB_JOINTS", "Clip", "MotionLibrary", "Retargeted",
    "anny_joints", "anny_reference", "load_clip", "mocap_to_anny_axes", "retarget",
]

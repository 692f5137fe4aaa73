"""Anatomically limited random poses (the built-in default pose source) and the pose prior.

Both read the one limit table in ``maskpose.body.limits``: the sampler draws inside it, the prior
penalises leaving it, so a pose from the sampler has zero prior loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import roma
import torch

from maskpose.body.limits import (
    ADULT_PHENOTYPE_RANGE,
    ARTICULATED_JOINTS,
    GLOBAL_ORIENT_RANGE,
    NUM_POSE_ROTATIONS,
    PHENOTYPE_LABELS,
    BallLimit,
    HingeLimit,
    is_right,
    limit_of,
)
from maskpose.body.rotations import rotmat_to_sixd, sixd_to_rotmat
from maskpose.errors import MaskposeError, check_shape

#: Hinge axes in Anny's rest world frame (left side; right mirrored). Knees bend about +X (the
#: foot moves backward). Elbows bend about the axis normal to the A-pose upper arm and the facing
#: direction, so flexion brings the forearm forward; the upper-arm direction is Anny's rest
#: shoulder -> elbow at the default phenotype.
_LEFT_UPPER_ARM = torch.tensor([0.169, -0.006, -0.188])
_FORWARD = torch.tensor([0.0, -1.0, 0.0])


def hinge_axis(joint: str) -> torch.Tensor:
    """Unit hinge axis ``(3,)`` of ``l_knee``, ``r_knee``, ``l_elbow`` or ``r_elbow``."""
    if joint.endswith("knee"):
        axis = torch.tensor([1.0, 0.0, 0.0])
    elif joint.endswith("elbow"):
        axis = torch.linalg.cross(_LEFT_UPPER_ARM / _LEFT_UPPER_ARM.norm(), _FORWARD)
        axis = axis / axis.norm()
    else:
        raise MaskposeError(f"{joint!r} is not a hinge joint")
    return _mirror_vector(axis) if is_right(joint) else axis


def _mirror_vector(axial: torch.Tensor) -> torch.Tensor:
    """Mirror an axial vector (rotation axis) across the sagittal plane x -> -x."""
    return axial * torch.tensor([1.0, -1.0, -1.0], dtype=axial.dtype)


def _ball_ranges(joint: str, limit: BallLimit) -> torch.Tensor:
    """``(3, 2)`` radian ranges of the X, Y, Z Euler angles, mirrored for the right side."""
    ranges = torch.tensor([limit.x, limit.y, limit.z], dtype=torch.float64)
    if is_right(joint):
        ranges[1:] = -ranges[1:].flip(-1)
    return torch.deg2rad(ranges)


@lru_cache(maxsize=1)
def _limit_tables():
    """Stacked limits: ball joint indices + ranges, hinge indices + axes + ranges."""
    ball_idx, ball_ranges, hinge_idx, hinge_axes, hinge_ranges = [], [], [], [], []
    for i, joint in enumerate(ARTICULATED_JOINTS[1:], start=1):
        limit = limit_of(joint)
        if isinstance(limit, HingeLimit):
            hinge_idx.append(i)
            hinge_axes.append(hinge_axis(joint))
            hinge_ranges.append(torch.deg2rad(torch.tensor(limit.flexion, dtype=torch.float64)))
        else:
            ball_idx.append(i)
            ball_ranges.append(_ball_ranges(joint, limit))
    return (
        torch.tensor(ball_idx), torch.stack(ball_ranges).float(),
        torch.tensor(hinge_idx), torch.stack(hinge_axes).float(), torch.stack(hinge_ranges).float(),
    )


@dataclass(frozen=True)
class PoseDistribution:
    """The pose distribution of the demo's and the benchmark's generated splits (the shipped demo
    source model was trained on the default): ``spread`` of each joint range (see
    :class:`PoseSampler`), people turned at most ``max_yaw_deg`` from the camera."""

    spread: float = 0.6
    max_yaw_deg: float = 45.0

    def sampler(self, seed: int) -> PoseSampler:
        """A :meth:`PoseSampler.facing_camera` of this distribution."""
        return PoseSampler.facing_camera(seed, self)


class PoseSampler:
    """Random poses within the anatomical limits, and adult phenotypes.

    Args:
        seed: seed of the sampler's own generator (same seed, same poses).
        phenotype_range: per-phenotype (low, high) in [0, 1]; adult ranges by default.
        global_orient_range: yaw/pitch/roll ranges in degrees (see ``limits.GLOBAL_ORIENT_RANGE``).
        spread: fraction of each joint range used, around its centre-clamped-to-zero; 1 uses the
            whole range.
    """

    def __init__(
        self,
        seed: int = 0,
        phenotype_range: dict[str, tuple[float, float]] | None = None,
        global_orient_range: dict[str, tuple[float, float]] | None = None,
        spread: float = 1.0,
    ):
        self.generator = torch.Generator().manual_seed(seed)
        self.phenotype_range = dict(ADULT_PHENOTYPE_RANGE if phenotype_range is None else phenotype_range)
        for name, (low, high) in self.phenotype_range.items():
            if name not in PHENOTYPE_LABELS:
                raise MaskposeError(f"unknown phenotype {name!r}; expected one of {PHENOTYPE_LABELS}")
            if not 0.0 <= low <= high <= 1.0:
                raise MaskposeError(f"phenotype range of {name!r} must satisfy 0 <= low <= high <= 1")
        self.global_orient_range = dict(GLOBAL_ORIENT_RANGE if global_orient_range is None else global_orient_range)
        if not 0.0 < spread <= 1.0:
            raise MaskposeError(f"spread must lie in (0, 1], got {spread}")
        self.spread = spread
        #: with :meth:`one_per_seed`: the generator of each sample, in order
        self.per_sample_generators: list[torch.Generator] | None = None

    @classmethod
    def one_per_seed(cls, seeds: Sequence[int], **options) -> PoseSampler:
        """A sampler whose ``sample(len(seeds))`` draws its ``i``-th sample from a generator of its
        own, seeded ``seeds[i]``: bit for bit the same as stacking ``cls(seed=s, **options).sample(1)``
        over the seeds (each generator makes the same draws in the same order), with the rotations
        built once for the batch instead of once per seed (the realistic domain's other people).
        ``options``: the constructor's other arguments."""
        sampler = cls(seed=0, **options)
        sampler.per_sample_generators = [torch.Generator().manual_seed(int(seed)) for seed in seeds]
        return sampler

    @classmethod
    def facing_camera(cls, seed: int = 0, distribution: PoseDistribution | None = None) -> PoseSampler:
        """A milder distribution (default: ``PoseDistribution()``, the demo's and the benchmark's):
        ``distribution.spread`` of each joint range, people turned at most
        ``distribution.max_yaw_deg`` from the camera, small pitch and roll."""
        d = PoseDistribution() if distribution is None else distribution
        return cls(seed=seed, spread=d.spread, global_orient_range={
            "yaw": (-d.max_yaw_deg, d.max_yaw_deg), "pitch": (-10.0, 10.0), "roll": (-8.0, 8.0)})

    def _uniform(self, low: torch.Tensor, high: torch.Tensor, n: int) -> torch.Tensor:
        generators = self.per_sample_generators
        if generators is None:
            u = torch.rand((n, *low.shape), generator=self.generator)
        elif n != len(generators):
            raise MaskposeError(f"this sampler draws one sample per seed ({len(generators)}), asked for {n}")
        else:
            u = torch.cat([torch.rand((1, *low.shape), generator=g) for g in generators])
        return low + (high - low) * u

    def _shrunk(self, ranges: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # Shrink each range toward its point closest to zero (the rest pose) by ``spread``.
        anchor = torch.minimum(torch.maximum(torch.zeros_like(ranges[..., 0]), ranges[..., 0]), ranges[..., 1])
        low = anchor + (ranges[..., 0] - anchor) * self.spread
        high = anchor + (ranges[..., 1] - anchor) * self.spread
        return low, high

    def sample_global_orientation(self, n: int) -> torch.Tensor:
        """``(n, 3, 3)`` global orientations in the camera frame: yaw about the vertical (camera -y),
        then pitch about x and roll about z."""
        deg = torch.tensor([self.global_orient_range[k] for k in ("yaw", "pitch", "roll")])
        yaw, pitch, roll = torch.deg2rad(self._uniform(deg[:, 0], deg[:, 1], n)).unbind(-1)
        zero = torch.zeros_like(yaw)
        r_yaw = roma.rotvec_to_rotmat(torch.stack([zero, -yaw, zero], -1))
        r_pitch = roma.rotvec_to_rotmat(torch.stack([pitch, zero, zero], -1))
        r_roll = roma.rotvec_to_rotmat(torch.stack([zero, zero, roll], -1))
        return r_roll @ r_pitch @ r_yaw

    def sample_pose(self, n: int) -> torch.Tensor:
        """``(n, 18, 6)`` poses: global orientation plus every articulated joint within limits."""
        ball_idx, ball_ranges, hinge_idx, hinge_axes, hinge_ranges = _limit_tables()
        rotations = torch.eye(3).repeat(n, NUM_POSE_ROTATIONS, 1, 1)
        rotations[:, 0] = self.sample_global_orientation(n)
        low, high = self._shrunk(ball_ranges)
        euler = self._uniform(low, high, n)  # (n, n_ball, 3)
        rotations[:, ball_idx] = roma.euler_to_rotmat("XYZ", euler)
        low, high = self._shrunk(hinge_ranges)
        angle = self._uniform(low, high, n)  # (n, n_hinge)
        rotations[:, hinge_idx] = roma.rotvec_to_rotmat(angle[..., None] * hinge_axes)
        return rotmat_to_sixd(rotations)

    def sample_phenotypes(self, n: int) -> torch.Tensor:
        """``(n, 6)`` phenotypes in Anny's order, uniform within ``phenotype_range``."""
        bounds = torch.tensor([self.phenotype_range.get(k, (0.5, 0.5)) for k in PHENOTYPE_LABELS])
        return self._uniform(bounds[:, 0], bounds[:, 1], n)

    def sample(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(pose (n, 18, 6), phenotypes (n, 6))``."""
        if n < 0:
            raise MaskposeError(f"number of samples must be >= 0, got {n}")
        return self.sample_pose(n), self.sample_phenotypes(n)


def joint_angles(pose: torch.Tensor) -> dict[str, torch.Tensor]:
    """Angles the limits are written in: Euler XYZ ``(B, n_ball, 3)`` of the ball joints, flexion
    ``(B, n_hinge)`` and off-axis rotation norm ``(B, n_hinge)`` of the hinges (radians)."""
    check_shape("pose", pose, (None, NUM_POSE_ROTATIONS, 6))
    ball_idx, _, hinge_idx, hinge_axes, _ = _limit_tables()
    rotations = sixd_to_rotmat(pose)
    euler = roma.rotmat_to_euler("XYZ", rotations[:, ball_idx])
    rotvec = roma.rotmat_to_rotvec(rotations[:, hinge_idx])
    axes = hinge_axes.to(pose)
    flexion = (rotvec * axes).sum(-1)
    off_axis = (rotvec - flexion[..., None] * axes).norm(dim=-1)
    return {"euler": euler, "flexion": flexion, "off_axis": off_axis}


def pose_prior_loss(pose: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Differentiable angle-limit penalty: squared radians outside each joint's limits, plus the
    squared off-axis rotation of the hinges. Zero for every pose inside the limits.

    Args:
        pose: ``(B, 18, 6)``; the global orientation (index 0) is not penalised.
        reduction: ``"mean"`` over the batch, ``"sum"``, or ``"none"`` for ``(B,)``.
    """
    _, ball_ranges, _, _, hinge_ranges = _limit_tables()
    angles = joint_angles(pose)
    ball_ranges, hinge_ranges = ball_ranges.to(pose), hinge_ranges.to(pose)
    over = (angles["euler"] - ball_ranges[..., 1]).clamp(min=0) + (ball_ranges[..., 0] - angles["euler"]).clamp(min=0)
    hinge_over = (angles["flexion"] - hinge_ranges[:, 1]).clamp(min=0) + (hinge_ranges[:, 0] - angles["flexion"]).clamp(min=0)
    per_sample = over.square().sum((1, 2)) + hinge_over.square().sum(1) + angles["off_axis"].square().sum(1)
    if reduction == "none":
        return per_sample
    if reduction == "sum":
        return per_sample.sum()
    if reduction == "mean":
        return per_sample.mean()
    raise MaskposeError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


__all__ = ["PoseDistribution", "PoseSampler", "pose_prior_loss", "joint_angles", "hinge_axis"]

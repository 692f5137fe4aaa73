"""Rotation conversions, all through ``roma``.

The 6D representation (Zhou et al., CVPR 2019) is the first two columns of the rotation matrix,
flattened row-major as ``(r00, r01, r10, r11, r20, r21)``; ``roma.special_gramschmidt`` maps any
6D vector back onto a rotation, so a network can regress it freely.
"""

from __future__ import annotations

import roma
import torch


def sixd_to_rotmat(sixd: torch.Tensor) -> torch.Tensor:
    """6D rotations ``(..., 6)`` to rotation matrices ``(..., 3, 3)`` (Gram-Schmidt, differentiable)."""
    return roma.special_gramschmidt(sixd.reshape(*sixd.shape[:-1], 3, 2))


def rotmat_to_sixd(rotmat: torch.Tensor) -> torch.Tensor:
    """Rotation matrices ``(..., 3, 3)`` to 6D ``(..., 6)``."""
    return rotmat[..., :, :2].reshape(*rotmat.shape[:-2], 6)


def rotvec_to_sixd(rotvec: torch.Tensor) -> torch.Tensor:
    """Axis-angle vectors ``(..., 3)`` (radians) to 6D ``(..., 6)``."""
    return rotmat_to_sixd(roma.rotvec_to_rotmat(rotvec))


def sixd_to_rotvec(sixd: torch.Tensor) -> torch.Tensor:
    """6D ``(..., 6)`` to axis-angle vectors ``(..., 3)`` in radians."""
    return roma.rotmat_to_rotvec(sixd_to_rotmat(sixd))


def identity_sixd(*batch: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Identity rotations in 6D, shape ``(*batch, 6)``."""
    eye = torch.eye(3, device=device, dtype=dtype)[:, :2].reshape(6)
    return eye.expand(*batch, 6).clone()

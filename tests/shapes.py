"""Human-shaped test masks without the mesh renderer: capsules along a 2D H36M-17 stick figure."""

from __future__ import annotations

import torch

from maskpose.conventions import H36M_BONES
from maskpose.render.stick import capsule_silhouette

# A standing figure in a unit box (x right, y down), H36M-17 order.
_STANDING = torch.tensor([
    [0.50, 0.52], [0.42, 0.52], [0.41, 0.70], [0.40, 0.88], [0.58, 0.52], [0.59, 0.70],
    [0.60, 0.88], [0.50, 0.40], [0.50, 0.28], [0.50, 0.22], [0.50, 0.12], [0.62, 0.30],
    [0.70, 0.42], [0.76, 0.52], [0.38, 0.30], [0.30, 0.42], [0.24, 0.52],
])
#: Capsule radii per H36M bone, as a fraction of the image size.
_RADII = torch.tensor([0.04, 0.045, 0.035, 0.04, 0.045, 0.035, 0.07, 0.07, 0.03, 0.05,
                       0.03, 0.03, 0.025, 0.03, 0.03, 0.025])


def standing_joints(size: int = 128) -> torch.Tensor:
    """``(17, 2)`` pixel joints of a standing figure filling a ``size`` x ``size`` crop."""
    return _STANDING * size


def human_masks(n: int, size: int = 128, seed: int = 0, jitter: float = 0.03) -> torch.Tensor:
    """``(n, 1, size, size)`` binary human-shaped masks: the standing figure with random limb jitter."""
    gen = torch.Generator().manual_seed(seed)
    joints = _STANDING[None].repeat(n, 1, 1)
    joints = joints + jitter * torch.randn(n, 17, 2, generator=gen)
    joints = joints.clamp(0.03, 0.97) * size
    soft = capsule_silhouette(joints, H36M_BONES, _RADII * size, (size, size), sharpness=0.3)
    return (soft > 0.5).float()

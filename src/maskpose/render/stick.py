"""Differentiable 2D stick figures: pixel-to-segment distances and capsule silhouettes.

Shared by the skeleton mask of Mask-as-Supervision and by tests that need human-like masks
without the mesh renderer.
"""

from __future__ import annotations

from typing import Sequence

import torch

from maskpose.errors import check_shape


def pixel_grid(height: int, width: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Pixel-centre coordinates ``(H, W, 2)`` as (x, y), pixel (0, 0) centred at (0, 0)."""
    ys = torch.arange(height, device=device, dtype=dtype)
    xs = torch.arange(width, device=device, dtype=dtype)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack((gx, gy), dim=-1)


def segment_distance_map(
    joints_2d: torch.Tensor, bones: Sequence[tuple[int, int]], size: tuple[int, int]
) -> torch.Tensor:
    """Distance from every pixel centre to every bone segment.

    Args:
        joints_2d: ``(B, J, 2)`` joint positions in pixels (x, y).
        bones: ``K`` pairs of joint indices.
        size: ``(H, W)`` of the output.

    Returns:
        ``(B, K, H, W)`` Euclidean distances in pixels; differentiable in ``joints_2d``.
    """
    check_shape("joints_2d", joints_2d, (None, None, 2))
    height, width = size
    idx_a = torch.tensor([a for a, _ in bones], device=joints_2d.device)
    idx_b = torch.tensor([b for _, b in bones], device=joints_2d.device)
    a = joints_2d[:, idx_a][:, :, None, None, :]  # (B, K, 1, 1, 2)
    b = joints_2d[:, idx_b][:, :, None, None, :]
    p = pixel_grid(height, width, joints_2d.device, joints_2d.dtype)  # (H, W, 2)
    ab = b - a
    # Clamp the projection parameter to the segment; the epsilon keeps zero-length bones finite.
    t = ((p - a) * ab).sum(-1) / (ab * ab).sum(-1).clamp_min(1e-8)
    closest = a + t.clamp(0.0, 1.0)[..., None] * ab
    return (p - closest).square().sum(-1).clamp_min(1e-12).sqrt()


def capsule_silhouette(
    joints_2d: torch.Tensor,
    bones: Sequence[tuple[int, int]],
    radii: float | torch.Tensor,
    size: tuple[int, int],
    sharpness: float = 1.0,
) -> torch.Tensor:
    """Soft silhouette of capsules (segments with a radius) along the bones.

    Args:
        joints_2d: ``(B, J, 2)`` joint positions in pixels.
        bones: ``K`` pairs of joint indices.
        radii: a float or a ``(K,)`` tensor of capsule radii in pixels.
        size: ``(H, W)``.
        sharpness: pixels over which the edge goes from 0.27 to 0.73 (sigmoid scale).

    Returns:
        ``(B, 1, H, W)`` in [0, 1], the union (max) over capsules; differentiable in the joints.
    """
    dist = segment_distance_map(joints_2d, bones, size)
    r = torch.as_tensor(radii, dtype=dist.dtype, device=dist.device)
    if r.ndim == 1:
        r = r[None, :, None, None]
    soft = torch.sigmoid((r - dist) / sharpness)
    return soft.amax(dim=1, keepdim=True)

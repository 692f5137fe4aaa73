"""Differentiable 2D stick figures: pixel-to-segment distances and capsule silhouettes.

Shared by the skeleton mask of Mask-as-Supervision and by tests that need human-like masks
without the mesh renderer.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from maskpose.errors import check_shape


def segment_squared_distance_map(
    joints_2d: torch.Tensor, bones: Sequence[tuple[int, int]], size: tuple[int, int]
) -> torch.Tensor:
    r"""Squared distance from every pixel centre to every bone segment.

    .. math::

        d_b(p)^2 = \lVert p - a - t^* (b - a) \rVert^2, \qquad
        t^* = \operatorname{clamp}\Big(\frac{\langle p - a, b - a \rangle}{\lVert b - a \rVert^2}, 0, 1\Big)

    for the bone from joint :math:`a` to joint :math:`b`.

    Args:
        joints_2d: ``(B, J, 2)`` joint positions in pixels (x, y).
        bones: ``K`` pairs of joint indices.
        size: ``(H, W)`` of the output.

    Shape:
        - joints_2d: :math:`(B, J, 2)`.
        - output: :math:`(B, K, H, W)` squared Euclidean distances in pixels²; smooth in
          ``joints_2d`` (no square root, so no infinite gradient on the segment itself).

    Example:
        >>> joints = torch.tensor([[[1.0, 1.0], [3.0, 1.0]]])
        >>> segment_squared_distance_map(joints, [(0, 1)], (3, 5))[0, 0]
        tensor([[2., 1., 1., 1., 2.],
                [1., 0., 0., 0., 1.],
                [2., 1., 1., 1., 2.]])
    """
    check_shape("joints_2d", joints_2d, (None, None, 2))
    height, width = size
    idx_a = torch.tensor([a for a, _ in bones], device=joints_2d.device, dtype=torch.long)
    idx_b = torch.tensor([b for _, b in bones], device=joints_2d.device, dtype=torch.long)
    a = joints_2d[:, idx_a, None, None, :]  # (B, K, 1, 1, 2)
    ab = joints_2d[:, idx_b, None, None, :] - a
    ax, ay, abx, aby = a[..., 0], a[..., 1], ab[..., 0], ab[..., 1]  # (B, K, 1, 1) each
    # x and y kept apart: every full-size (B, K, H, W) tensor is made by broadcasting a row
    # (B, K, 1, W) against a column (B, K, H, 1), a few times faster than an (..., 2) layout.
    dx = torch.arange(width, device=joints_2d.device, dtype=joints_2d.dtype) - ax  # (B, K, 1, W)
    dy = torch.arange(height, device=joints_2d.device, dtype=joints_2d.dtype)[:, None] - ay  # (B, K, H, 1)
    # Projection parameter clamped to the segment; the epsilon keeps zero-length bones finite
    # (at least the dtype's smallest normal number: 1e-8 rounds to 0 in float16).
    inv_len2 = 1.0 / (abx * abx + aby * aby).clamp_min(max(1e-8, torch.finfo(joints_2d.dtype).tiny))
    t = (dx * (abx * inv_len2) + dy * (aby * inv_len2)).clamp_(0.0, 1.0)
    return (dx - t * abx).square() + (dy - t * aby).square()


def segment_distance_map(
    joints_2d: torch.Tensor, bones: Sequence[tuple[int, int]], size: tuple[int, int]
) -> torch.Tensor:
    r"""Distance from every pixel centre to every bone segment, in pixels.

    .. math::

        d_b(p) = \sqrt{\max(d_b(p)^2, 10^{-12})}

    with :math:`d_b(p)^2` from :func:`segment_squared_distance_map`.

    Args:
        joints_2d, bones, size: as in :func:`segment_squared_distance_map`.

    Shape:
        - joints_2d: :math:`(B, J, 2)`.
        - output: :math:`(B, K, H, W)`.

    Example:
        >>> joints = torch.tensor([[[1.0, 1.0], [3.0, 1.0]]])
        >>> segment_distance_map(joints, [(0, 1)], (3, 5))[0, 0, 0]
        tensor([1.4142, 1.0000, 1.0000, 1.0000, 1.4142])
    """
    return segment_squared_distance_map(joints_2d, bones, size).clamp_min(1e-12).sqrt()


def capsule_silhouette(
    joints_2d: torch.Tensor,
    bones: Sequence[tuple[int, int]],
    radii: float | torch.Tensor,
    size: tuple[int, int],
    sharpness: float = 1.0,
) -> torch.Tensor:
    r"""Soft silhouette of capsules (segments with a radius) along the bones.

    .. math::

        S(p) = \max_b \sigma\big((r_b - d_b(p)) / s\big)

    Args:
        joints_2d: ``(B, J, 2)`` joint positions in pixels.
        bones: ``K`` pairs of joint indices.
        radii: a float or a ``(K,)`` tensor of capsule radii in pixels.
        size: ``(H, W)``.
        sharpness: pixels over which the edge goes from 0.27 to 0.73 (sigmoid scale).

    Shape:
        - joints_2d: :math:`(B, J, 2)`; radii: scalar or :math:`(K,)`.
        - output: :math:`(B, 1, H, W)` in [0, 1], the union (max) over capsules; differentiable in
          the joints.

    Example:
        >>> joints = torch.tensor([[[1.0, 1.0], [3.0, 1.0]]])
        >>> capsule_silhouette(joints, [(0, 1)], 1.0, (3, 5))[0, 0, 1].round(decimals=2)
        tensor([0.5000, 0.7300, 0.7300, 0.7300, 0.5000])
    """
    dist = segment_distance_map(joints_2d, bones, size)
    r = torch.as_tensor(radii, dtype=dist.dtype, device=dist.device)
    if r.ndim == 1:
        r = r[None, :, None, None]
    soft = torch.sigmoid((r - dist) / sharpness)
    return soft.amax(dim=1, keepdim=True)

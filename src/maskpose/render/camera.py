"""Pinhole camera with per-crop intrinsics, and the weak-perspective camera of the regressor.

Conventions (docs/design.md §2): points are in the camera frame, OpenCV style (x right, y down, z forward,
metres); pixels are ``(x, y)`` with the origin top-left and pixel ``(i, j)``'s *centre* at integer
coordinates ``(j, i)``, as in :func:`maskpose.render.stick.segment_squared_distance_map`. The centre of a
``W x H`` image is therefore at ``((W - 1) / 2, (H - 1) / 2)``.

Intrinsics are ``K (B, 3, 3)``::

    [[fx, s,  cx],
     [0,  fy, cy],
     [0,  0,  1 ]]

and a point ``X = (x, y, z)`` projects to ``(K @ X)[:2] / z``.

Weak perspective (HMR / SPIN): the regressor predicts ``(scale, tx, ty)`` such that the body's
points ``X`` land at normalised crop coordinates ``scale * (X[:2] + (tx, ty))`` in ``[-1, 1]``
(``-1`` the left/top border of the crop, ``+1`` the right/bottom). It corresponds to the translation
``(tx, ty, 2 * f / (res * scale))`` under a pinhole camera of focal ``f`` centred on a square crop of
``res`` pixels (:func:`weak_perspective_to_translation`).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from maskpose.errors import MaskposeError, all_finite, check_shape


def intrinsics(
    focal: float | torch.Tensor,
    size: int | tuple[int, int],
    principal: tuple[float, float] | torch.Tensor | None = None,
    batch: int | None = None,
    device=None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Build pinhole intrinsics.

    Args:
        focal: focal length in pixels: a float, a ``(B,)`` tensor, or a ``(B, 2)`` tensor of
            ``(fx, fy)``.
        size: ``res`` for a square crop, or ``(H, W)``.
        principal: ``(cx, cy)`` in pixels (or a ``(B, 2)`` tensor); default the image centre
            ``((W - 1) / 2, (H - 1) / 2)``.
        batch: batch size when ``focal`` is a float (default 1).

    Returns:
        ``K (B, 3, 3)``.
    """
    height, width = (size, size) if isinstance(size, int) else size
    if height <= 0 or width <= 0:
        raise MaskposeError(f"image size must be positive, got {(height, width)}")
    f = torch.as_tensor(focal, dtype=dtype, device=device)
    if f.ndim == 0:
        f = f.expand(batch or 1)
    if f.ndim == 1:
        f = torch.stack((f, f), dim=-1)
    check_shape("focal", f, (None, 2))
    if bool((f <= 0).any()):
        raise MaskposeError("focal length must be positive")
    b = f.shape[0]
    if principal is None:
        c = torch.tensor([(width - 1) / 2.0, (height - 1) / 2.0], dtype=dtype, device=f.device).expand(b, 2)
    else:
        c = torch.as_tensor(principal, dtype=dtype, device=f.device)
        c = c.expand(b, 2) if c.ndim == 1 else c
        check_shape("principal", c, (b, 2))
    K = torch.zeros(b, 3, 3, dtype=dtype, device=f.device)
    K[:, 0, 0] = f[:, 0]
    K[:, 1, 1] = f[:, 1]
    K[:, 0, 2] = c[:, 0]
    K[:, 1, 2] = c[:, 1]
    K[:, 2, 2] = 1.0
    return K


def check_intrinsics(K: torch.Tensor, batch: int | None = None) -> None:
    """Raise :class:`MaskposeError` unless ``K`` is ``(B, 3, 3)`` with a finite, positive focal."""
    check_shape("K", K, (batch, 3, 3))
    if not all_finite(K):
        raise MaskposeError("K must be finite (found NaN or Inf)")
    if bool((K[:, 0, 0] <= 0).any()) or bool((K[:, 1, 1] <= 0).any()):
        raise MaskposeError("K must have positive focal lengths K[:, 0, 0] and K[:, 1, 1]")


def check_in_front(points: torch.Tensor, name: str = "vertices", near: float = 0.0) -> None:
    """Raise :class:`MaskposeError` if any point has depth ``z <= near`` (behind the camera)."""
    z = points[..., 2]
    if not all_finite(points):
        raise MaskposeError(f"{name} must be finite (found NaN or Inf)")
    if z.numel() and bool((z <= near).any()):
        bad = int((z <= near).sum())
        raise MaskposeError(
            f"{name}: {bad} point(s) at depth z <= {near:g} (behind or on the camera plane, min z = "
            f"{float(z.min()):.4g} m); move the body in front of the camera (translation z > 0)"
        )


def project(points: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Perspective projection to pixels.

    Args:
        points: ``(B, N, 3)`` camera-frame points (metres); ``z`` must be positive (not checked
            here; the renderers check it).
        K: ``(B, 3, 3)`` intrinsics.

    Returns:
        ``(B, N, 2)`` pixel coordinates ``(x, y)``; differentiable in ``points`` and ``K``.
    """
    check_shape("points", points, (None, None, 3))
    check_shape("K", K, (points.shape[0], 3, 3))
    K = K.to(points.dtype)
    z = points[..., 2:3]
    xy = points[..., :2] / z
    # u = fx x/z + s y/z + cx, v = fy y/z + cy, written out so it is exact for simple numbers.
    u = K[:, None, 0, 0] * xy[..., 0] + K[:, None, 0, 1] * xy[..., 1] + K[:, None, 0, 2]
    v = K[:, None, 1, 1] * xy[..., 1] + K[:, None, 1, 2]
    return torch.stack((u, v), dim=-1)


def point_bounds(points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(lo, hi)``: the per-sample minimum and maximum ``(B, D)`` of ``points (B, N, D)``.

    Equal to ``points.amin(1), points.amax(1)`` (minima and maxima are exact in any order), but
    reduced along the last axis of a transposed copy: torch reduces a middle axis with a small
    last one (``D`` = 2 or 3) several times slower."""
    columns = points.detach().transpose(1, 2).contiguous()  # (B, D, N)
    return columns.amin(-1), columns.amax(-1)


def fit_translation(
    vertices: torch.Tensor, K: torch.Tensor, size: int | tuple[int, int], fill: float = 0.8,
    iterations: int = 2,
) -> torch.Tensor:
    """Translation that places a body so it fills the crop as a person detector's crop would.

    The body's 2D bounding box is centred on the principal point and its larger side (height for
    a standing person) spans ``fill`` of the crop's matching side.

    Args:
        vertices: ``(B, V, 3)`` body points in the camera frame with *zero* translation (pelvis at
            the origin), e.g. ``AnnyBody(pose, phenotypes).vertices``.
        K: ``(B, 3, 3)`` intrinsics.
        size: ``res`` or ``(H, W)``.
        fill: fraction of the crop covered by the body's bounding box (its larger side).
        iterations: perspective refinements after the first weak-perspective estimate.

    Returns:
        ``(B, 3)`` translation (metres); detached.
    """
    check_shape("vertices", vertices, (None, None, 3))
    check_intrinsics(K, vertices.shape[0])
    height, width = (size, size) if isinstance(size, int) else size
    with torch.no_grad():
        v = vertices.detach().to(K.dtype)
        lo, hi = point_bounds(v)
        extent = hi - lo  # (B, 3)
        fx, fy = K[:, 0, 0], K[:, 1, 1]
        # Weak-perspective start: depth from the larger relative extent, centre on the bbox.
        z = torch.maximum(fx * extent[:, 0] / (fill * width), fy * extent[:, 1] / (fill * height))
        z = z + extent[:, 2] / 2  # the front of the body is nearer than the box centre
        t = torch.stack((-(lo[:, 0] + hi[:, 0]) / 2, -(lo[:, 1] + hi[:, 1]) / 2, z), dim=-1)
        c = K[:, :2, 2]
        for _ in range(iterations):
            uv = project(v + t[:, None], K)
            box_lo, box_hi = point_bounds(uv)
            span = torch.maximum((box_hi[:, 0] - box_lo[:, 0]) / (fill * width),
                                 (box_hi[:, 1] - box_lo[:, 1]) / (fill * height))
            t = t.clone()
            t[:, 2] = t[:, 2] * span
            # Shift so the box centre lands on the principal point (at the new depth).
            uv = project(v + t[:, None], K)
            box_lo, box_hi = point_bounds(uv)
            centre = (box_lo + box_hi) / 2
            t[:, 0] = t[:, 0] - (centre[:, 0] - c[:, 0]) * t[:, 2] / fx
            t[:, 1] = t[:, 1] - (centre[:, 1] - c[:, 1]) * t[:, 2] / fy
    return t


def weak_perspective_to_translation(
    scale: torch.Tensor, offset: torch.Tensor, focal: float | torch.Tensor, res: int,
    min_scale: float = 1e-3,
) -> torch.Tensor:
    """HMR weak-perspective camera ``(scale, offset)`` to a pinhole translation.

    Args:
        scale: ``(B,)`` weak-perspective scale ``s`` (normalised crop units per metre); clamped to
            ``min_scale`` so the depth stays positive and finite.
        offset: ``(B, 2)`` ``(tx, ty)`` in metres.
        focal: focal length in pixels (float or ``(B,)``) of a camera centred on the crop.
        res: crop size in pixels.

    Returns:
        ``(B, 3)`` translation ``(tx, ty, 2 f / (res s))``; differentiable.
    """
    check_shape("scale", scale, (None,))
    check_shape("offset", offset, (scale.shape[0], 2))
    z = 2.0 * torch.as_tensor(focal, dtype=scale.dtype, device=scale.device) / (res * scale.clamp_min(min_scale))
    return torch.cat((offset, z.expand(scale.shape[0])[:, None]), dim=-1)


class WeakPerspective(NamedTuple):
    """A weak-perspective camera: ``scale`` ``(B,)`` and image-plane ``offset`` ``(B, 2)``."""

    scale: torch.Tensor
    offset: torch.Tensor


def translation_to_weak_perspective(
    translation: torch.Tensor, focal: float | torch.Tensor, res: int
) -> WeakPerspective:
    """Inverse of :func:`weak_perspective_to_translation`: ``(B, 3)`` -> ``(scale (B,), offset (B, 2))``."""
    check_shape("translation", translation, (None, 3))
    if bool((translation[:, 2] <= 0).any()):
        raise MaskposeError("translation z must be positive (body in front of the camera)")
    f = torch.as_tensor(focal, dtype=translation.dtype, device=translation.device)
    return WeakPerspective(2.0 * f / (res * translation[:, 2]), translation[:, :2])

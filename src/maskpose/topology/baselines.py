"""Baseline silhouette losses the topology losses are compared against (DESIGN §6).

All take a predicted soft silhouette and a target silhouette, ``(B, 1, H, W)`` floats in [0, 1],
average per sample, then over the batch (``reduction="mean"``) or return ``(B,)`` (``"none"``).

- :func:`pixel_l1_loss`, :func:`pixel_l2_loss`, :func:`bce_loss`: per-pixel losses. Their gradient
  lives where the prediction's soft edge overlaps the target: two masks that do not touch get no
  pull towards each other.
- :func:`soft_iou_loss`: ``1 - sum(p t) / sum(p + t - p t)``.
- :func:`point_chamfer_loss`: a symmetric Chamfer distance between *point sets* sampled on the two
  boundaries. How it is differentiable: the target's boundary points are fixed pixel centres; the
  prediction's boundary points are the ``num_points`` pixels with the largest soft-boundary weight
  ``w = pred * max_4-neighbours(1 - pred)`` (1 on the inner boundary of a binary mask), at fixed
  pixel centres, each carrying its weight ``w``. The loss is the ``w``-weighted mean distance from
  predicted points to the nearest target point, plus, for every target point, the distance to the
  predicted points under a soft-min (weights ``w_k exp(-d_k^2 / (2 tau^2))``). Gradients reach the
  prediction through the weights: edges near the target are strengthened, edges far from it faded,
  which a renderer turns into motion.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._checks import check_pair
from .loss import _check_reduction, _reduce

_DIMS = (1, 2, 3)


def _prepare(pred: torch.Tensor, target: torch.Tensor, reduction: str) -> None:
    check_pair("pred", pred, "target", target)
    _check_reduction(reduction)


def pixel_l1_loss(pred: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Mean absolute difference per sample. ``(B, 1, H, W)`` x2 -> scalar or ``(B,)``."""
    _prepare(pred, target, reduction)
    return _reduce((pred - target).abs().mean(_DIMS), reduction)


def pixel_l2_loss(pred: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Mean squared difference per sample. ``(B, 1, H, W)`` x2 -> scalar or ``(B,)``."""
    _prepare(pred, target, reduction)
    return _reduce((pred - target).square().mean(_DIMS), reduction)


def bce_loss(pred: torch.Tensor, target: torch.Tensor, reduction: str = "mean",
             eps: float = 1e-6) -> torch.Tensor:
    """Binary cross-entropy per sample, ``pred`` clamped to ``[eps, 1 - eps]`` so logs stay finite."""
    _prepare(pred, target, reduction)
    per_pixel = F.binary_cross_entropy(pred.clamp(eps, 1.0 - eps), target, reduction="none")
    return _reduce(per_pixel.mean(_DIMS), reduction)


def soft_iou_loss(pred: torch.Tensor, target: torch.Tensor, reduction: str = "mean",
                  eps: float = 1e-6) -> torch.Tensor:
    """``1 - soft IoU`` per sample; two empty masks count as a perfect match (loss 0)."""
    _prepare(pred, target, reduction)
    intersection = (pred * target).sum(_DIMS)
    union = (pred + target - pred * target).sum(_DIMS)
    return _reduce(1.0 - (intersection + eps) / (union + eps), reduction)


def _boundary_weight(mask: torch.Tensor) -> torch.Tensor:
    """Soft inner-boundary strength, ``(B, 1, H, W)`` -> ``(B, 1, H, W)``, differentiable.

    ``mask(p) * max over 4-neighbours n of (1 - mask(n))``: 1 on an on pixel next to an off pixel
    of a binary mask (the same pixels as the target's boundary), 0 elsewhere; outside the image
    counts as on, as in the distance maps.
    """
    padded = F.pad(1.0 - mask, (1, 1, 1, 1))  # outside: 1 - 1 = 0, i.e. on
    off_neighbour = torch.maximum(torch.maximum(padded[..., :-2, 1:-1], padded[..., 2:, 1:-1]),
                                  torch.maximum(padded[..., 1:-1, :-2], padded[..., 1:-1, 2:]))
    return mask * off_neighbour


def _target_boundary_points(target: torch.Tensor, num_points: int) -> torch.Tensor:
    """``(H, W)`` binary target -> ``(N, 2)`` (x, y) of up to ``num_points`` boundary pixels.

    Boundary: on pixels with an off 4-neighbour (outside the image counts as on). Evenly strided
    through the raster order when there are more, so the sampling is deterministic.
    """
    weight = _boundary_weight((target >= 0.5).to(target.dtype)[None, None])[0, 0]
    ys, xs = torch.nonzero(weight > 0.5, as_tuple=True)
    points = torch.stack((xs, ys), dim=-1).to(target.dtype)
    if len(points) > num_points:
        pick = torch.linspace(0, len(points) - 1, num_points, device=target.device).round().long()
        points = points[pick]
    return points


def point_chamfer_loss(pred: torch.Tensor, target: torch.Tensor, num_points: int = 1024,
                       temperature: float = 0.35, reduction: str = "mean") -> torch.Tensor:
    """Symmetric Chamfer distance between boundary point sets, in pixels (see module docstring).

    Args:
        pred: ``(B, 1, H, W)`` predicted soft silhouette in [0, 1].
        target: ``(B, 1, H, W)`` target silhouette (binarised at 0.5).
        num_points: boundary points sampled per map (the ``num_points`` strongest predicted
            boundary pixels; evenly strided target boundary pixels).
        temperature: soft-min scale in pixels of the target-to-prediction term (weights
            ``w exp(-d^2 / (2 temperature^2))``); near 0 for a perfect match.
        reduction: ``"mean"`` or ``"none"``.

    Returns:
        Scalar or ``(B,)``; 0 for a sample whose target or prediction has no boundary.
    """
    _prepare(pred, target, reduction)
    height, width = pred.shape[-2:]
    weight_map = _boundary_weight(pred).flatten(1)  # (B, H*W)
    k = min(num_points, height * width)
    top_weight, top_index = weight_map.detach().topk(k, dim=1)
    xs = (top_index % width).to(pred.dtype)
    ys = torch.div(top_index, width, rounding_mode="floor").to(pred.dtype)
    pred_points = torch.stack((xs, ys), dim=-1)  # (B, K, 2), fixed pixel centres
    pred_weight = weight_map.gather(1, top_index) * (top_weight > 1e-3)  # (B, K), differentiable
    losses = []
    for b in range(pred.shape[0]):
        target_points = _target_boundary_points(target[b, 0], num_points)
        w = pred_weight[b]
        if len(target_points) == 0 or float(w.detach().sum()) <= 0:
            losses.append(0.0 * w.sum())  # keeps the graph, and a zero gradient
            continue
        dist = torch.cdist(pred_points[b], target_points)  # (K, N)
        pred_to_target = (w * dist.min(dim=1).values).sum() / w.sum()
        logits = torch.log(w + 1e-12)[:, None] - dist.square() / (2 * temperature ** 2)
        target_to_pred = (torch.softmax(logits, dim=0) * dist).sum(dim=0).mean()
        losses.append(pred_to_target + target_to_pred)
    return _reduce(torch.stack(losses), reduction)

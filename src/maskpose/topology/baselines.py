"""Baseline silhouette losses the topology losses are compared against (docs/design.md §6).

All take a predicted soft silhouette and a target silhouette, ``(B, 1, H, W)`` floats in [0, 1],
average per sample, then reduce over the batch (``reduction="mean"`` or ``"sum"``) or return ``(B,)``
(``"none"``). Each function has an ``nn.Module`` beside it with the matching CamelCase name.

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
from torch import nn

from maskpose.errors import check_reduction, reduce
from maskpose.typing import Reduction

from ._checks import check_pair

_DIMS = (1, 2, 3)


def _prepare(pred: torch.Tensor, target: torch.Tensor, reduction: Reduction) -> None:
    check_pair("pred", pred, "target", target)
    check_reduction(reduction)


def _weighted(per_pixel: torch.Tensor, target: torch.Tensor, false_positive_weight: float) -> torch.Tensor:
    """``per_pixel`` weighted 1 on the target and ``false_positive_weight`` off it (unchanged at 1)."""
    if false_positive_weight == 1.0:
        return per_pixel
    return (false_positive_weight + (1.0 - false_positive_weight) * target) * per_pixel


def pixel_l1_loss(pred: torch.Tensor, target: torch.Tensor, reduction: Reduction = "mean",
                  false_positive_weight: float = 1.0) -> torch.Tensor:
    r"""Mean absolute pixel difference per sample.

    .. math::

        L_1 = \frac{1}{HW} \sum_{x} |p(x) - t(x)|

    Args:
        pred: predicted soft silhouette :math:`p` in [0, 1].
        target: target silhouette :math:`t` in [0, 1].
        reduction: ``"mean"`` or ``"sum"`` over the batch, or ``"none"``.
        false_positive_weight: weight ``w`` of the predicted pixels outside the target (a body
            an occluder hides in a real mask); 1 (default) is the plain loss.

    Shape:
        - pred, target: :math:`(B, 1, H, W)`.
        - output: scalar, or :math:`(B,)` with ``reduction="none"``.

    Example:
        >>> p = torch.tensor([[[[0.0, 0.5], [1.0, 1.0]]]])
        >>> t = torch.tensor([[[[0.0, 1.0], [1.0, 0.0]]]])
        >>> round(pixel_l1_loss(p, t).item(), 4)
        0.375
    """
    _prepare(pred, target, reduction)
    return reduce(_weighted((pred - target).abs(), target, false_positive_weight).mean(_DIMS), reduction)


def pixel_l2_loss(pred: torch.Tensor, target: torch.Tensor, reduction: Reduction = "mean",
                  false_positive_weight: float = 1.0) -> torch.Tensor:
    r"""Mean squared pixel difference per sample.

    .. math::

        L_2 = \frac{1}{HW} \sum_{x} (p(x) - t(x))^2

    Args:
        pred: predicted soft silhouette :math:`p` in [0, 1].
        target: target silhouette :math:`t` in [0, 1].
        reduction: ``"mean"`` or ``"sum"`` over the batch, or ``"none"``.
        false_positive_weight: weight ``w`` of the predicted pixels outside the target (a body
            an occluder hides in a real mask); 1 (default) is the plain loss.

    Shape:
        - pred, target: :math:`(B, 1, H, W)`.
        - output: scalar, or :math:`(B,)` with ``reduction="none"``.

    Example:
        >>> p = torch.tensor([[[[0.0, 0.5], [1.0, 1.0]]]])
        >>> t = torch.tensor([[[[0.0, 1.0], [1.0, 0.0]]]])
        >>> round(pixel_l2_loss(p, t).item(), 4)
        0.3125
    """
    _prepare(pred, target, reduction)
    return reduce(_weighted((pred - target).square(), target, false_positive_weight).mean(_DIMS), reduction)


def bce_loss(pred: torch.Tensor, target: torch.Tensor, reduction: Reduction = "mean",
             eps: float = 1e-6, false_positive_weight: float = 1.0) -> torch.Tensor:
    r"""Binary cross-entropy per sample, ``pred`` clamped to ``[eps, 1 - eps]`` so logs stay finite.

    .. math::

        L_{BCE} = -\frac{1}{HW} \sum_{x} t \log p + (1 - t) \log(1 - p)

    Args:
        pred: predicted soft silhouette :math:`p` in [0, 1].
        target: target silhouette :math:`t` in [0, 1].
        reduction: ``"mean"`` or ``"sum"`` over the batch, or ``"none"``.
        false_positive_weight: weight ``w`` of the predicted pixels outside the target (a body
            an occluder hides in a real mask); 1 (default) is the plain loss.
        eps: clamp of ``pred`` away from 0 and 1.

    Shape:
        - pred, target: :math:`(B, 1, H, W)`.
        - output: scalar, or :math:`(B,)` with ``reduction="none"``.

    Example:
        >>> p = torch.tensor([[[[0.0, 0.5], [1.0, 1.0]]]])
        >>> t = torch.tensor([[[[0.0, 1.0], [1.0, 0.0]]]])
        >>> round(bce_loss(p, t).item(), 4)
        3.6239
    """
    _prepare(pred, target, reduction)
    per_pixel = F.binary_cross_entropy(pred.clamp(eps, 1.0 - eps), target, reduction="none")
    return reduce(_weighted(per_pixel, target, false_positive_weight).mean(_DIMS), reduction)


def soft_iou_loss(pred: torch.Tensor, target: torch.Tensor, reduction: Reduction = "mean",
                  eps: float = 1e-6, false_positive_weight: float = 1.0) -> torch.Tensor:
    r"""``1 - soft IoU`` per sample; two empty masks count as a perfect match (loss 0).

    .. math::

        L_{IoU} = 1 - \frac{\sum_x p t + \epsilon}{\sum_x (p + t - p t) + \epsilon}

    Args:
        pred: predicted soft silhouette :math:`p` in [0, 1].
        target: target silhouette :math:`t` in [0, 1].
        reduction: ``"mean"`` or ``"sum"`` over the batch, or ``"none"``.
        false_positive_weight: weight ``w`` of the predicted pixels outside the target (a body
            an occluder hides in a real mask); 1 (default) is the plain loss.
        eps: added to both sums.

    Shape:
        - pred, target: :math:`(B, 1, H, W)`.
        - output: scalar, or :math:`(B,)` with ``reduction="none"``.

    Example:
        >>> p = torch.tensor([[[[0.0, 0.5], [1.0, 1.0]]]])
        >>> t = torch.tensor([[[[0.0, 1.0], [1.0, 0.0]]]])
        >>> round(soft_iou_loss(p, t).item(), 4)
        0.5
    """
    _prepare(pred, target, reduction)
    intersection = (pred * target).sum(_DIMS)
    if false_positive_weight == 1.0:
        union = (pred + target - pred * target).sum(_DIMS)
    else:  # the predicted part outside the target weighs w: t + w p (1 - t)
        union = (target + false_positive_weight * pred * (1.0 - target)).sum(_DIMS)
    return reduce(1.0 - (intersection + eps) / (union + eps), reduction)


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
                       temperature: float = 0.35, reduction: Reduction = "mean",
                       false_positive_weight: float = 1.0) -> torch.Tensor:
    r"""Symmetric Chamfer distance between boundary point sets, in pixels (see module docstring).

    .. math::

        L = \frac{\sum_k w_k \min_n \lVert q_k - r_n \rVert}{\sum_k w_k}
          + \frac{1}{N} \sum_n \sum_k \operatorname{softmax}_k\Big(\log w_k
            - \frac{\lVert q_k - r_n \rVert^2}{2 \tau^2}\Big) \lVert q_k - r_n \rVert

    with :math:`q_k` the predicted boundary pixels, weights :math:`w_k`, and :math:`r_n` the
    target's boundary pixels.

    Args:
        pred: ``(B, 1, H, W)`` predicted soft silhouette in [0, 1].
        target: ``(B, 1, H, W)`` target silhouette (binarised at 0.5).
        num_points: boundary points sampled per map (the ``num_points`` strongest predicted
            boundary pixels; evenly strided target boundary pixels).
        temperature: soft-min scale in pixels of the target-to-prediction term (weights
            ``w exp(-d^2 / (2 temperature^2))``); near 0 for a perfect match.
        reduction: ``"mean"`` or ``"sum"`` over the batch, or ``"none"``.
        false_positive_weight: weight ``w`` of the predicted pixels outside the target (a body
            an occluder hides in a real mask); 1 (default) is the plain loss.

    Shape:
        - pred, target: :math:`(B, 1, H, W)`.
        - output: scalar, or :math:`(B,)` with ``reduction="none"``; 0 for a sample whose target
          or prediction has no boundary.

    Example:
        >>> a = torch.zeros(1, 1, 6, 6); a[..., 1:5, 1:4] = 1
        >>> b = torch.zeros(1, 1, 6, 6); b[..., 1:5, 2:5] = 1
        >>> round(point_chamfer_loss(a, b).item(), 4)
        1.2191
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
        losses.append(pred_to_target + target_to_pred if false_positive_weight == 1.0
                      else false_positive_weight * pred_to_target + target_to_pred)
    return reduce(torch.stack(losses), reduction)


class _BaselineModule(nn.Module):
    def __init__(self, reduction: Reduction = "mean", **options) -> None:
        super().__init__()
        check_reduction(reduction)
        self.reduction = reduction
        self.options = options

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in {"reduction": self.reduction, **self.options}.items())


class PixelL1Loss(_BaselineModule):
    r"""Module form of :func:`pixel_l1_loss`.

    .. math::

        L_1 = \frac{1}{HW} \sum_{x} |p(x) - t(x)|

    Args:
        reduction: ``"mean"`` or ``"sum"`` over the batch, or ``"none"``.

    Shape:
        - pred, target: :math:`(B, 1, H, W)`.
        - output: scalar, or :math:`(B,)` with ``reduction="none"``.

    Example:
        >>> p = torch.tensor([[[[0.0, 0.5], [1.0, 1.0]]]])
        >>> t = torch.tensor([[[[0.0, 1.0], [1.0, 0.0]]]])
        >>> round(PixelL1Loss()(p, t).item(), 4)
        0.375
    """

    def __init__(self, reduction: Reduction = "mean") -> None:
        super().__init__(reduction)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return pixel_l1_loss(pred, target, self.reduction)


class PixelL2Loss(_BaselineModule):
    r"""Module form of :func:`pixel_l2_loss`.

    .. math::

        L_2 = \frac{1}{HW} \sum_{x} (p(x) - t(x))^2

    Args:
        reduction: ``"mean"`` or ``"sum"`` over the batch, or ``"none"``.

    Shape:
        - pred, target: :math:`(B, 1, H, W)`.
        - output: scalar, or :math:`(B,)` with ``reduction="none"``.

    Example:
        >>> p = torch.tensor([[[[0.0, 0.5], [1.0, 1.0]]]])
        >>> t = torch.tensor([[[[0.0, 1.0], [1.0, 0.0]]]])
        >>> round(PixelL2Loss()(p, t).item(), 4)
        0.3125
    """

    def __init__(self, reduction: Reduction = "mean") -> None:
        super().__init__(reduction)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return pixel_l2_loss(pred, target, self.reduction)


class BceLoss(_BaselineModule):
    r"""Module form of :func:`bce_loss`.

    .. math::

        L_{BCE} = -\frac{1}{HW} \sum_{x} t \log p + (1 - t) \log(1 - p)

    Args:
        reduction: ``"mean"`` or ``"sum"`` over the batch, or ``"none"``.
        eps: clamp of ``pred`` away from 0 and 1.

    Shape:
        - pred, target: :math:`(B, 1, H, W)`.
        - output: scalar, or :math:`(B,)` with ``reduction="none"``.

    Example:
        >>> p = torch.tensor([[[[0.0, 0.5], [1.0, 1.0]]]])
        >>> t = torch.tensor([[[[0.0, 1.0], [1.0, 0.0]]]])
        >>> round(BceLoss()(p, t).item(), 4)
        3.6239
    """

    def __init__(self, reduction: Reduction = "mean", eps: float = 1e-6) -> None:
        super().__init__(reduction, eps=float(eps))

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return bce_loss(pred, target, self.reduction, **self.options)


class SoftIoULoss(_BaselineModule):
    r"""Module form of :func:`soft_iou_loss`.

    .. math::

        L_{IoU} = 1 - \frac{\sum_x p t + \epsilon}{\sum_x (p + t - p t) + \epsilon}

    Args:
        reduction: ``"mean"`` or ``"sum"`` over the batch, or ``"none"``.
        eps: added to both sums.

    Shape:
        - pred, target: :math:`(B, 1, H, W)`.
        - output: scalar, or :math:`(B,)` with ``reduction="none"``.

    Example:
        >>> p = torch.tensor([[[[0.0, 0.5], [1.0, 1.0]]]])
        >>> t = torch.tensor([[[[0.0, 1.0], [1.0, 0.0]]]])
        >>> round(SoftIoULoss()(p, t).item(), 4)
        0.5
    """

    def __init__(self, reduction: Reduction = "mean", eps: float = 1e-6) -> None:
        super().__init__(reduction, eps=float(eps))

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return soft_iou_loss(pred, target, self.reduction, **self.options)


class PointChamferLoss(_BaselineModule):
    r"""Module form of :func:`point_chamfer_loss` (the formula is given there).

    .. math::

        L = \frac{\sum_k w_k \min_n \lVert q_k - r_n \rVert}{\sum_k w_k}
          + \frac{1}{N} \sum_n \sum_k \operatorname{softmax}_k\Big(\log w_k
            - \frac{\lVert q_k - r_n \rVert^2}{2 \tau^2}\Big) \lVert q_k - r_n \rVert

    Args:
        num_points: boundary points sampled per map.
        temperature: soft-min scale :math:`\tau` in pixels.
        reduction: ``"mean"`` or ``"sum"`` over the batch, or ``"none"``.

    Shape:
        - pred, target: :math:`(B, 1, H, W)`.
        - output: scalar, or :math:`(B,)` with ``reduction="none"``.

    Example:
        >>> a = torch.zeros(1, 1, 6, 6); a[..., 1:5, 1:4] = 1
        >>> b = torch.zeros(1, 1, 6, 6); b[..., 1:5, 2:5] = 1
        >>> round(PointChamferLoss()(a, b).item(), 4)
        1.2191
    """

    def __init__(self, num_points: int = 1024, temperature: float = 0.35, reduction: Reduction = "mean") -> None:
        super().__init__(reduction, num_points=int(num_points), temperature=float(temperature))

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return point_chamfer_loss(pred, target, reduction=self.reduction, **self.options)

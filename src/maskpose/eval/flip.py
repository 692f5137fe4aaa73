"""Left-right ambiguity: flip-aware metrics and the ambiguity ratio (docs/design.md §1.2).

A mask cannot tell the left arm from the right arm: a pose and the same pose with its left and
right *labels* swapped draw the same silhouette. So the flip here is a **permutation of the joint
labels only** (``H36M_FLIP``); the coordinates are not mirrored. (Mirroring x as well would be the
image-flip augmentation, a different pose that draws a different, mirrored mask.)

* :func:`flip_joints` — permute the labels.
* :func:`best_flip` — per sample, the prediction or its flip, whichever is closer to the truth.
* :func:`flip_aware` — any per-sample metric evaluated on :func:`best_flip` ("with flip").
* :func:`ambiguity_ratio` — share of samples whose flipped prediction is strictly closer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from maskpose.conventions import H36M_FLIP
from maskpose.errors import MaskposeError
from maskpose.eval.metrics import mpjpe
from maskpose.typing import Reduction

Metric = Callable[..., torch.Tensor]


def flip_joints(joints: torch.Tensor, flip: Sequence[int] = H36M_FLIP) -> torch.Tensor:
    """Swap left and right joint labels: ``(B, J, D)`` -> ``(B, J, D)``, coordinates unchanged."""
    if joints.ndim != 3:
        raise MaskposeError(f"joints must have shape (B, J, D), got {tuple(joints.shape)}")
    flip = list(flip)
    if sorted(flip) != list(range(joints.shape[1])):
        raise MaskposeError(f"flip must be a permutation of the {joints.shape[1]} joints, got {flip}")
    return joints[:, flip]


def _per_sample(metric: Metric, pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    values = metric(pred, gt, reduction="none")
    if values.shape != (pred.shape[0],):
        raise MaskposeError("metric must return one value per sample with reduction='none'")
    return values


def best_flip(
    pred: torch.Tensor, gt: torch.Tensor, metric: Metric = mpjpe, flip: Sequence[int] = H36M_FLIP
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sample, the prediction or its label flip, whichever scores lower on ``metric``.

    Args:
        pred, gt: ``(B, J, D)``.
        metric: an error (lower is better) taking ``reduction="none"`` and returning ``(B,)``.

    Returns:
        ``(chosen (B, J, D), flipped (B,) bool)``; ties keep the prediction as is.
    """
    flipped_pred = flip_joints(pred, flip)
    use_flip = _per_sample(metric, flipped_pred, gt) < _per_sample(metric, pred, gt)
    chosen = torch.where(use_flip[:, None, None], flipped_pred, pred)
    return chosen, use_flip


def flip_aware(
    metric: Metric, pred: torch.Tensor, gt: torch.Tensor, flip: Sequence[int] = H36M_FLIP,
    reduction: Reduction = "mean", select_by: Metric | None = None,
) -> torch.Tensor:
    """``metric`` after flipping each sample to its better side (chosen by ``select_by``, default
    ``metric`` itself). E.g. ``flip_aware(pa_mpjpe, pred, gt)``."""
    chosen, _ = best_flip(pred, gt, select_by or metric, flip)
    return metric(chosen, gt, reduction=reduction)


def ambiguity_ratio(
    pred: torch.Tensor, gt: torch.Tensor, metric: Metric = mpjpe, flip: Sequence[int] = H36M_FLIP
) -> float:
    """Share (0-1) of samples whose label-flipped prediction is strictly closer to ``gt``."""
    _, use_flip = best_flip(pred, gt, metric, flip)
    return float(use_flip.float().mean())

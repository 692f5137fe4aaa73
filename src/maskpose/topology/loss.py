"""Chamfer-like alignment losses on spatial maps: ``L_S`` on silhouettes, ``L_T`` on their skeletons.

For a predicted map ``A`` and a target map ``B`` (binarised at 0.5):

    L(A, B) = sum(S2D(1 - B) ⊙ A) / |A|  +  sum(S2D(1 - A) ⊙ B) / |B|

per sample (``|A|`` the number of on-pixels, at least 1), then averaged over the batch. The first
term is the mean distance from the predicted pixels to the target, the second the mean distance
from the target pixels to the prediction: a symmetric Chamfer distance, in pixels, computed from
distance maps without converting the maps to point sets.

Empty maps are finite: an empty ``A`` makes the first term 0 and the second ``H + W`` (the outward
map of an empty mask, see :mod:`maskpose.topology.distance`); two empty maps give 0.

Only the distances a term reads are computed: ``S2D(1 - B)`` is needed where ``A`` is on and
``S2D(1 - A)`` where ``B`` is on, so each erosion loop stops once those pixels are reached, and the
far background is never eroded. The value is identical to full maps. So is the gradient within
``GRADIENT_MARGIN`` 4-neighbour steps of the masks: the straight-through gradient of ``A`` at an off pixel
``q`` is ``S2D(1 - B)(q)``, so the loop runs that many steps further; farther out (where a renderer
has no gradient to give) that distance is capped, which only caps the push-down on pixels already
far off both masks.
"""

from __future__ import annotations

import torch
from torch import nn

from maskpose.errors import ConfigError

from ._checks import check_options, check_pair
from .distance import _binarize, _distance_of_binary
from .skeleton import skeleton_from_distance

_REDUCTIONS = ("mean", "none")
#: Pixels around a predicted map within which its straight-through gradient is exact (see above).
GRADIENT_MARGIN = 3


def _check_reduction(reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ConfigError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _reduce(per_sample: torch.Tensor, reduction: str) -> torch.Tensor:
    return per_sample.mean() if reduction == "mean" else per_sample


def chamfer_of_binary(pred: torch.Tensor, target: torch.Tensor, kernel: str = "octagonal",
                      iterations: int | None = None) -> torch.Tensor:
    """``L(A, B)`` per sample for maps that are already 0/1.

    Args:
        pred: ``(B, 1, H, W)`` 0/1 float ``A`` (may carry a gradient).
        target: ``(B, 1, H, W)`` 0/1 float ``B`` (may carry a gradient).
        kernel, iterations: of the outward distance maps.

    Returns:
        ``(B,)`` the loss per sample, in pixels.
    """
    pred_on = pred.detach() > 0.5
    target_on = target.detach() > 0.5
    dims = (1, 2, 3)
    to_target = _distance_of_binary(1.0 - target, kernel, iterations, needed=pred_on,
                                    margin=GRADIENT_MARGIN if pred.requires_grad else 0)
    to_pred = _distance_of_binary(1.0 - pred, kernel, iterations, needed=target_on,
                                  margin=GRADIENT_MARGIN if target.requires_grad else 0)
    pred_term = (to_target * pred).sum(dims) / pred.sum(dims).clamp_min(1.0)
    target_term = (to_pred * target).sum(dims) / target.sum(dims).clamp_min(1.0)
    return pred_term + target_term


def _skeleton_of_binary(binary: torch.Tensor, kernel: str, iterations: int | None) -> torch.Tensor:
    return skeleton_from_distance(binary, _distance_of_binary(binary, kernel, iterations))


def chamfer_map_loss(pred: torch.Tensor, target: torch.Tensor, kernel: str = "octagonal",
                     iterations: int | None = None, binarization: str = "straight_through",
                     temperature: float = 0.25, reduction: str = "mean") -> torch.Tensor:
    """``‖S2D(1-B) ⊙ A‖₁ / |A| + ‖S2D(1-A) ⊙ B‖₁ / |B|`` for any two maps.

    Args:
        pred: ``(B, 1, H, W)`` float in [0, 1], the predicted map ``A`` (soft allowed).
        target: ``(B, 1, H, W)`` float in [0, 1], the target map ``B`` (usually binary).
        kernel: ``"octagonal"`` (default) or ``"chessboard"`` distance.
        iterations: thinning steps; ``None`` for exact maps (``H + W - 1``).
        binarization: ``"straight_through"`` (default) or ``"soft"`` gradient through the threshold.
        temperature: sharpness of the ``"soft"`` gradient.
        reduction: ``"mean"`` over the batch (a scalar) or ``"none"`` (``(B,)``).

    Returns:
        Scalar (or ``(B,)``) float, in pixels; finite for empty and full maps.
    """
    check_pair("pred", pred, "target", target)
    check_options(kernel, iterations, binarization, temperature)
    _check_reduction(reduction)
    per_sample = chamfer_of_binary(_binarize(pred, binarization, temperature),
                                   _binarize(target, binarization, temperature), kernel, iterations)
    return _reduce(per_sample, reduction)


def silhouette_alignment_loss(pred: torch.Tensor, target: torch.Tensor, kernel: str = "octagonal",
                              iterations: int | None = None, binarization: str = "straight_through",
                              temperature: float = 0.25, reduction: str = "mean") -> torch.Tensor:
    """``L_S``: the Chamfer map loss between a predicted and a target silhouette.

    Args:
        pred: ``(B, 1, H, W)`` predicted silhouette in [0, 1] (e.g. from a soft renderer).
        target: ``(B, 1, H, W)`` target silhouette (binary).
        kernel, iterations, binarization, temperature, reduction: as in :func:`chamfer_map_loss`.

    Returns:
        Scalar (or ``(B,)``): mean distance, in pixels, between the two silhouettes, both ways.
    """
    return chamfer_map_loss(pred, target, kernel, iterations, binarization, temperature, reduction)


def topology_alignment_loss(pred: torch.Tensor, target: torch.Tensor, kernel: str = "octagonal",
                            iterations: int | None = None, binarization: str = "straight_through",
                            temperature: float = 0.25, reduction: str = "mean") -> torch.Tensor:
    """``L_T``: the Chamfer map loss between the D2T skeletons of two silhouettes.

    Args:
        pred: ``(B, 1, H, W)`` predicted silhouette in [0, 1].
        target: ``(B, 1, H, W)`` target silhouette (binary).
        kernel, iterations, binarization, temperature, reduction: as in :func:`chamfer_map_loss`
            (``kernel`` and ``iterations`` apply to the inward maps of D2T and to the Chamfer maps).

    Returns:
        Scalar (or ``(B,)``): mean distance, in pixels, between the two skeletons, both ways.
    """
    check_pair("pred", pred, "target", target)
    check_options(kernel, iterations, binarization, temperature)
    _check_reduction(reduction)
    pred_skeleton = _skeleton_of_binary(_binarize(pred, binarization, temperature), kernel, iterations)
    target_skeleton = _skeleton_of_binary(_binarize(target, binarization, temperature), kernel, iterations)
    return _reduce(chamfer_of_binary(pred_skeleton, target_skeleton, kernel, iterations), reduction)


def silhouette_topology_loss(pred: torch.Tensor, target: torch.Tensor, topology_weight: float = 1.0,
                             silhouette_weight: float = 1.0, kernel: str = "octagonal",
                             iterations: int | None = None, binarization: str = "straight_through",
                             temperature: float = 0.25, reduction: str = "mean") -> torch.Tensor:
    """``silhouette_weight * L_S + topology_weight * L_T`` (the paper's objective with both at 1).

    Args:
        pred: ``(B, 1, H, W)`` predicted silhouette in [0, 1].
        target: ``(B, 1, H, W)`` target silhouette (binary).
        topology_weight: weight ``w`` of ``L_T``; 0 skips the skeletons.
        silhouette_weight: weight of ``L_S``; 0 skips it (``L_T`` alone).
        kernel, iterations, binarization, temperature, reduction: as in :func:`chamfer_map_loss`.

    Returns:
        Scalar (or ``(B,)``) float.
    """
    check_pair("pred", pred, "target", target)
    check_options(kernel, iterations, binarization, temperature)
    _check_reduction(reduction)
    pred_binary = _binarize(pred, binarization, temperature)
    target_binary = _binarize(target, binarization, temperature)
    total = pred.new_zeros(pred.shape[0])
    if silhouette_weight != 0:
        total = total + silhouette_weight * chamfer_of_binary(pred_binary, target_binary, kernel, iterations)
    if topology_weight != 0:
        pred_skeleton = _skeleton_of_binary(pred_binary, kernel, iterations)
        target_skeleton = _skeleton_of_binary(target_binary, kernel, iterations)
        total = total + topology_weight * chamfer_of_binary(pred_skeleton, target_skeleton, kernel, iterations)
    return _reduce(total, reduction)


class _LossModule(nn.Module):
    def __init__(self, kernel: str = "octagonal", iterations: int | None = None,
                 binarization: str = "straight_through", temperature: float = 0.25,
                 reduction: str = "mean") -> None:
        super().__init__()
        check_options(kernel, iterations, binarization, temperature)
        _check_reduction(reduction)
        self.kernel = kernel
        self.iterations = iterations
        self.binarization = binarization
        self.temperature = temperature
        self.reduction = reduction

    def _options(self) -> dict:
        return dict(kernel=self.kernel, iterations=self.iterations, binarization=self.binarization,
                    temperature=self.temperature, reduction=self.reduction)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self._options().items())


class ChamferMapLoss(_LossModule):
    """Module form of :func:`chamfer_map_loss`: ``(B, 1, H, W), (B, 1, H, W)`` -> scalar."""

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return chamfer_map_loss(pred, target, **self._options())


class SilhouetteAlignmentLoss(_LossModule):
    """Module form of :func:`silhouette_alignment_loss` (``L_S``)."""

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return silhouette_alignment_loss(pred, target, **self._options())


class TopologyAlignmentLoss(_LossModule):
    """The paper's objective ``silhouette_weight * L_S + topology_weight * L_T`` as a module.

    Module form of :func:`silhouette_topology_loss`; ``silhouette_weight=0`` gives ``L_T`` alone
    (:func:`topology_alignment_loss`), ``topology_weight=0`` gives ``L_S`` alone.
    """

    def __init__(self, topology_weight: float = 1.0, silhouette_weight: float = 1.0, **options) -> None:
        super().__init__(**options)
        self.topology_weight = float(topology_weight)
        self.silhouette_weight = float(silhouette_weight)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return silhouette_topology_loss(pred, target, self.topology_weight, self.silhouette_weight,
                                        **self._options())

    def extra_repr(self) -> str:
        return (f"topology_weight={self.topology_weight}, silhouette_weight={self.silhouette_weight}, "
                + super().extra_repr())

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

from maskpose.errors import MaskposeError, check_reduction, reduce
from maskpose.typing import Binarization, Kernel, Reduction

from ._checks import DEFAULT_BINARIZATION, DEFAULT_TEMPERATURE, check_options, check_pair
from .distance import _binarize, _distance_of_binary
from .skeleton import skeleton_from_distance

#: Pixels around a predicted map within which its straight-through gradient is exact (see above).
GRADIENT_MARGIN = 3


def chamfer_of_binary(pred: torch.Tensor, target: torch.Tensor, kernel: Kernel = "octagonal",
                      iterations: int | None = None, false_positive_weight: float = 1.0,
                      target_distance: torch.Tensor | None = None) -> torch.Tensor:
    """``L(A, B)`` per sample for maps that are already 0/1.

    Args:
        pred: ``(B, 1, H, W)`` 0/1 float ``A`` (may carry a gradient).
        target: ``(B, 1, H, W)`` 0/1 float ``B`` (may carry a gradient).
        kernel, iterations: of the outward distance maps.
        false_positive_weight: weight ``w`` of the ``A``-to-``B`` term
            ``||S2D(1 - B) ⊙ A||_1 / |A|`` (zero unless ``A`` lies outside ``B``: a body an
            occluder hides in a real mask); 1 (default) is the plain loss.
        target_distance: optionally ``S2D(1 - B)`` whole (:func:`~maskpose.topology.distance.outward_distance_map`
            of ``B``), computed beforehand for a target without gradient that several calls share.

    Returns:
        ``(B,)`` the loss per sample, in pixels.
    """
    pred_on = pred.detach() > 0.5
    target_on = target.detach() > 0.5
    dims = (1, 2, 3)
    if target_distance is None:
        to_target = _distance_of_binary(1.0 - target, kernel, iterations, needed=pred_on,
                                        margin=GRADIENT_MARGIN if pred.requires_grad else 0)
    elif target.requires_grad:
        raise MaskposeError("target_distance needs a target without gradient (its map is computed beforehand)")
    elif target_distance.shape != target.shape:
        raise MaskposeError(f"target_distance must have the target's shape {tuple(target.shape)}, "
                            f"got {tuple(target_distance.shape)}")
    else:
        to_target = target_distance
    to_pred = _distance_of_binary(1.0 - pred, kernel, iterations, needed=target_on,
                                  margin=GRADIENT_MARGIN if target.requires_grad else 0)
    pred_term = (to_target * pred).sum(dims) / pred.sum(dims).clamp_min(1.0)
    target_term = (to_pred * target).sum(dims) / target.sum(dims).clamp_min(1.0)
    if false_positive_weight == 1.0:
        return pred_term + target_term
    return false_positive_weight * pred_term + target_term


def _skeleton_of_binary(binary: torch.Tensor, kernel: Kernel, iterations: int | None) -> torch.Tensor:
    return skeleton_from_distance(binary, _distance_of_binary(binary, kernel, iterations))


def chamfer_map_loss(pred: torch.Tensor, target: torch.Tensor, kernel: Kernel = "octagonal",
                     iterations: int | None = None, binarization: Binarization = DEFAULT_BINARIZATION,
                     temperature: float = DEFAULT_TEMPERATURE, reduction: Reduction = "mean",
                     false_positive_weight: float = 1.0, target_distance: torch.Tensor | None = None) -> torch.Tensor:
    r"""Symmetric Chamfer distance between two maps, computed from S2D distance maps.

    .. math::

        L(A, B) = \frac{\lVert S2D(1 - B) \odot A \rVert_1}{|A|}
                + \frac{\lVert S2D(1 - A) \odot B \rVert_1}{|B|}

    with ``A``, ``B`` binarised at 0.5 and ``|A|`` the number of on-pixels (at least 1).

    Args:
        pred: the predicted map ``A`` in [0, 1] (soft allowed).
        target: the target map ``B`` in [0, 1] (usually binary).
        kernel: ``"octagonal"`` (default) or ``"chessboard"`` distance.
        iterations: thinning steps; ``None`` for exact maps (``H + W - 1``).
        binarization: ``"soft"`` (default, :data:`DEFAULT_BINARIZATION`) or ``"straight_through"``
            gradient through the threshold.
        temperature: sharpness of the ``"soft"`` gradient (default :data:`DEFAULT_TEMPERATURE`).
        reduction: ``"mean"`` or ``"sum"`` over the batch, or ``"none"``.
        false_positive_weight: weight of the first (``A``-to-``B``) term, as in
            :func:`chamfer_of_binary`; 1 (default) is the plain loss.
        target_distance: optional ``outward_distance_map(target, kernel, iterations)`` computed
            beforehand, for a target without gradient that several calls score (the iterations of
            fitting in the loop). The value is the same; so is the gradient within
            :data:`GRADIENT_MARGIN` of the maps, and beyond it the distance is not capped (module
            docstring), which changes nothing where the renderer has no gradient to give.

    Shape:
        - pred, target: :math:`(B, 1, H, W)`, float.
        - output: scalar, or :math:`(B,)` with ``reduction="none"``; in pixels, finite for empty
          and full maps.

    Example:
        >>> a = torch.zeros(1, 1, 5, 5); a[..., 1:4, 1:4] = 1
        >>> b = torch.zeros(1, 1, 5, 5); b[..., 1:4, 2:5] = 1
        >>> chamfer_map_loss(a, b)
        tensor(0.6667)
    """
    check_pair("pred", pred, "target", target)
    check_options(kernel, iterations, binarization, temperature)
    check_reduction(reduction)
    per_sample = chamfer_of_binary(_binarize(pred, binarization, temperature),
                                   _binarize(target, binarization, temperature), kernel, iterations,
                                   false_positive_weight, target_distance)
    return reduce(per_sample, reduction)


def silhouette_alignment_loss(pred: torch.Tensor, target: torch.Tensor, kernel: Kernel = "octagonal",
                              iterations: int | None = None, binarization: Binarization = DEFAULT_BINARIZATION,
                              temperature: float = DEFAULT_TEMPERATURE, reduction: Reduction = "mean",
                              false_positive_weight: float = 1.0, target_distance: torch.Tensor | None = None) -> torch.Tensor:
    r"""``L_S``: the Chamfer map loss between a predicted and a target silhouette.

    .. math::

        L_S = L(\hat S, S), \qquad L \text{ as in } :func:`chamfer_map_loss`

    Args:
        pred: predicted silhouette :math:`\hat S` in [0, 1] (e.g. from a soft renderer).
        target: target silhouette :math:`S` (binary).
        kernel, iterations, binarization, temperature, reduction, false_positive_weight,
        target_distance: as in :func:`chamfer_map_loss`.

    Shape:
        - pred, target: :math:`(B, 1, H, W)`.
        - output: scalar, or :math:`(B,)` with ``reduction="none"``; pixels.

    Example:
        >>> a = torch.zeros(1, 1, 5, 5); a[..., 1:4, 1:4] = 1
        >>> b = torch.zeros(1, 1, 5, 5); b[..., 1:4, 2:5] = 1
        >>> silhouette_alignment_loss(a, b)
        tensor(0.6667)
    """
    return chamfer_map_loss(pred, target, kernel, iterations, binarization, temperature, reduction,
                            false_positive_weight, target_distance)


def topology_alignment_loss(pred: torch.Tensor, target: torch.Tensor, kernel: Kernel = "octagonal",
                            iterations: int | None = None, binarization: Binarization = DEFAULT_BINARIZATION,
                            temperature: float = DEFAULT_TEMPERATURE, reduction: Reduction = "mean",
                            false_positive_weight: float = 1.0,
                            target_skeleton: torch.Tensor | None = None,
                            target_skeleton_distance: torch.Tensor | None = None) -> torch.Tensor:
    r"""``L_T``: the Chamfer map loss between the D2T skeletons of two silhouettes.

    .. math::

        L_T = L\big(D2T(S2D(\hat S)),\ D2T(S2D(S))\big)

    Args:
        pred: predicted silhouette :math:`\hat S` in [0, 1].
        target: target silhouette :math:`S` (binary).
        kernel, iterations, binarization, temperature, reduction: as in :func:`chamfer_map_loss`
            (``kernel`` and ``iterations`` apply to the inward maps of D2T and to the Chamfer maps).
        false_positive_weight: weight of the predicted-to-target skeleton term, as in
            :func:`chamfer_of_binary`; 1 (default) is the plain loss.
        target_skeleton: optional ``topological_skeleton(target, kernel, iterations)`` computed
            beforehand, for a target without gradient that several calls share (the 8 iterations
            of fitting in the loop score the same masks); the same values as computing it here.
        target_skeleton_distance: optional ``outward_distance_map`` of that skeleton, computed
            beforehand likewise (``target_distance`` of :func:`chamfer_map_loss`); needs
            ``target_skeleton``.

    Shape:
        - pred, target: :math:`(B, 1, H, W)`.
        - target_skeleton: :math:`(B, 1, H, W)`, like ``target``.
        - output: scalar, or :math:`(B,)` with ``reduction="none"``; pixels between the skeletons.

    Example:
        >>> a = torch.zeros(1, 1, 5, 5); a[..., 1:4, 1:4] = 1
        >>> b = torch.zeros(1, 1, 5, 5); b[..., 1:4, 2:5] = 1
        >>> topology_alignment_loss(a, b)
        tensor(2.5000)
    """
    check_pair("pred", pred, "target", target)
    check_options(kernel, iterations, binarization, temperature)
    check_reduction(reduction)
    pred_skeleton = _skeleton_of_binary(_binarize(pred, binarization, temperature), kernel, iterations)
    if target_skeleton is None:
        target_skeleton = _skeleton_of_binary(_binarize(target, binarization, temperature), kernel, iterations)
    elif target_skeleton.shape != target.shape:
        raise MaskposeError(f"target_skeleton must have the target's shape {tuple(target.shape)}, "
                            f"got {tuple(target_skeleton.shape)}")
    return reduce(chamfer_of_binary(pred_skeleton, target_skeleton, kernel, iterations, false_positive_weight,
                                    target_skeleton_distance), reduction)


def silhouette_topology_loss(pred: torch.Tensor, target: torch.Tensor, topology_weight: float = 1.0,
                             silhouette_weight: float = 1.0, kernel: Kernel = "octagonal",
                             iterations: int | None = None, binarization: Binarization = DEFAULT_BINARIZATION,
                             temperature: float = DEFAULT_TEMPERATURE, reduction: Reduction = "mean") -> torch.Tensor:
    r"""The paper's objective: ``silhouette_weight * L_S + topology_weight * L_T`` (both weights 1).

    .. math::

        L = \lambda_S L_S + w L_T

    Args:
        pred: predicted silhouette in [0, 1].
        target: target silhouette (binary).
        topology_weight: weight ``w`` of ``L_T``; 0 skips the skeletons.
        silhouette_weight: weight :math:`\lambda_S` of ``L_S``; 0 skips it (``L_T`` alone).
        kernel, iterations, binarization, temperature, reduction: as in :func:`chamfer_map_loss`.

    Shape:
        - pred, target: :math:`(B, 1, H, W)`.
        - output: scalar, or :math:`(B,)` with ``reduction="none"``.

    Example:
        >>> a = torch.zeros(1, 1, 5, 5); a[..., 1:4, 1:4] = 1
        >>> b = torch.zeros(1, 1, 5, 5); b[..., 1:4, 2:5] = 1
        >>> silhouette_topology_loss(a, b, topology_weight=0.5)
        tensor(1.9167)
    """
    check_pair("pred", pred, "target", target)
    check_options(kernel, iterations, binarization, temperature)
    check_reduction(reduction)
    pred_binary = _binarize(pred, binarization, temperature)
    target_binary = _binarize(target, binarization, temperature)
    total = pred.new_zeros(pred.shape[0])
    if silhouette_weight != 0:
        total = total + silhouette_weight * chamfer_of_binary(pred_binary, target_binary, kernel, iterations)
    if topology_weight != 0:
        pred_skeleton = _skeleton_of_binary(pred_binary, kernel, iterations)
        target_skeleton = _skeleton_of_binary(target_binary, kernel, iterations)
        total = total + topology_weight * chamfer_of_binary(pred_skeleton, target_skeleton, kernel, iterations)
    return reduce(total, reduction)


class _LossModule(nn.Module):
    def __init__(self, kernel: Kernel = "octagonal", iterations: int | None = None,
                 binarization: Binarization = DEFAULT_BINARIZATION, temperature: float = DEFAULT_TEMPERATURE,
                 reduction: Reduction = "mean") -> None:
        super().__init__()
        check_options(kernel, iterations, binarization, temperature)
        check_reduction(reduction)
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
    r"""Module form of :func:`chamfer_map_loss`.

    .. math::

        L(A, B) = \frac{\lVert S2D(1 - B) \odot A \rVert_1}{|A|}
                + \frac{\lVert S2D(1 - A) \odot B \rVert_1}{|B|}

    Args:
        kernel, iterations, binarization, temperature, reduction: as in :func:`chamfer_map_loss`.

    Shape:
        - pred, target: :math:`(B, 1, H, W)`.
        - output: scalar, or :math:`(B,)` with ``reduction="none"``.

    Example:
        >>> a = torch.zeros(1, 1, 5, 5); a[..., 1:4, 1:4] = 1
        >>> b = torch.zeros(1, 1, 5, 5); b[..., 1:4, 2:5] = 1
        >>> ChamferMapLoss()(a, b)
        tensor(0.6667)
    """

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return chamfer_map_loss(pred, target, **self._options())


class SilhouetteAlignmentLoss(_LossModule):
    r"""Module form of :func:`silhouette_alignment_loss` (``L_S``).

    .. math::

        L_S = L(\hat S, S)

    Args:
        kernel, iterations, binarization, temperature, reduction: as in :func:`chamfer_map_loss`.

    Shape:
        - pred, target: :math:`(B, 1, H, W)`.
        - output: scalar, or :math:`(B,)` with ``reduction="none"``.

    Example:
        >>> a = torch.zeros(1, 1, 5, 5); a[..., 1:4, 1:4] = 1
        >>> b = torch.zeros(1, 1, 5, 5); b[..., 1:4, 2:5] = 1
        >>> SilhouetteAlignmentLoss()(a, b)
        tensor(0.6667)
    """

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return silhouette_alignment_loss(pred, target, **self._options())


class TopologyAlignmentLoss(_LossModule):
    r"""Module form of :func:`topology_alignment_loss` (``L_T`` alone).

    .. math::

        L_T = L\big(D2T(S2D(\hat S)),\ D2T(S2D(S))\big)

    Args:
        kernel, iterations, binarization, temperature, reduction: as in :func:`chamfer_map_loss`.

    Shape:
        - pred, target: :math:`(B, 1, H, W)`.
        - output: scalar, or :math:`(B,)` with ``reduction="none"``.

    Example:
        >>> a = torch.zeros(1, 1, 5, 5); a[..., 1:4, 1:4] = 1
        >>> b = torch.zeros(1, 1, 5, 5); b[..., 1:4, 2:5] = 1
        >>> TopologyAlignmentLoss()(a, b)
        tensor(2.5000)
    """

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return topology_alignment_loss(pred, target, **self._options())


class SilhouetteTopologyLoss(_LossModule):
    r"""Module form of :func:`silhouette_topology_loss`, the paper's objective.

    .. math::

        L = \lambda_S L_S + w L_T

    Args:
        topology_weight: weight ``w`` of ``L_T``.
        silhouette_weight: weight :math:`\lambda_S` of ``L_S``.
        kernel, iterations, binarization, temperature, reduction: as in :func:`chamfer_map_loss`.

    Shape:
        - pred, target: :math:`(B, 1, H, W)`.
        - output: scalar, or :math:`(B,)` with ``reduction="none"``.

    Example:
        >>> a = torch.zeros(1, 1, 5, 5); a[..., 1:4, 1:4] = 1
        >>> b = torch.zeros(1, 1, 5, 5); b[..., 1:4, 2:5] = 1
        >>> SilhouetteTopologyLoss(topology_weight=0.5)(a, b)
        tensor(1.9167)
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

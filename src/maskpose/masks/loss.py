"""The Mask-as-Supervision loss (docs/design.md §1.2).

``L = λs ‖G ⊙ (M − M_skel)‖² + λp ‖G ⊙ (M − M_phys)‖²``

Normalisation: each squared norm is divided by the number of pixels ``H·W`` (a mean over pixels),
then averaged over the batch; so the value does not depend on the image size and a loss weight
tuned at 64 px carries to 224 px.

Skeleton term (``skeleton_term``): ``"two_sided"`` (the paper, default) counts every pixel, so
the lines are pulled to fill the silhouette. ``"one_sided"`` is the released code's (``use_clip``
in its ``compute_mask_reconstruction_loss``): the squared error counts only on the skeleton's
support ``M_skel > τ`` (τ = 0.1), so mask pixels the lines do not reach cost nothing; lines that
stray outside the mask cost ``M_skel²`` there and their flanks inside it ``(1 − M_skel)²`` (so it
is not strictly one-sided: a soft line inside the mask still costs its flanks). The gate is a
constant in the backward pass. The physique term stays two-sided. At 64 px the gate changes
little: a line's support reaches ``1.5 σ`` either side, about a limb's width, and
docs/scripts/mas_bias.py finds the same 2.6–3 px offset of the term's minimum from the true
joints with either form.

``"released"`` is what the released code computes, term for term. Its
``compute_mask_reconstruction_loss(..., use_clip=True)`` multiplies the gate into the squared
error only when geodesic weights are given (``reduction="none"``, then ``× gate × G``, G not
squared). Without them, which is how its configs run (``use_dis_map: False``), the MSE is already
reduced to a scalar, so the gate map only rescales it, and the training loop's ``.mean()`` gives
``mean(squared error) × mean(gate)``. That is the two-sided term times the skeleton's support
fraction (a constant for autograd), not a gated one. Here, per sample,
``mean_p(squared error) × mean_{batch, p}(gate)``, so that the batch mean is the released value;
with ``weights``, ``mean_p(squared error × gate × G)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from maskpose.conventions import H36M_BONES
from maskpose.errors import MaskposeError, check_reduction, check_tensor, reduce
from maskpose.masks.physique import PhysiqueNet
from maskpose.masks.skeleton import SkeletonMask
from maskpose.typing import SKELETON_TERMS, Reduction, SkeletonTerm

#: The released code's support threshold of the one-sided skeleton term: ``M_skel > 0.1``.
SKELETON_THRESHOLD = 0.1


def _check_map(name: str, x: torch.Tensor, like: torch.Tensor | None = None) -> None:
    check_tensor(name, x, (None, 1, None, None))
    if like is not None and x.shape != like.shape:
        raise MaskposeError(f"{name} has shape {tuple(x.shape)}, expected {tuple(like.shape)} like mask")


def _check_skeleton_term(skeleton_term: str, skeleton_threshold: float) -> None:
    if skeleton_term not in SKELETON_TERMS:
        raise MaskposeError(f"skeleton_term must be one of {SKELETON_TERMS}, got {skeleton_term!r}")
    try:
        ok = math.isfinite(float(skeleton_threshold)) and float(skeleton_threshold) >= 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise MaskposeError(f"skeleton_threshold must be a finite number >= 0, got {skeleton_threshold!r}")


def mask_supervision_loss(
    mask: torch.Tensor,
    skel: torch.Tensor,
    phys: torch.Tensor | None = None,
    weights: torch.Tensor | None = None,
    lambda_s: float = 1.0,
    lambda_p: float = 1.0,
    reduction: Reduction = "mean",
    skeleton_term: SkeletonTerm = "two_sided",
    skeleton_threshold: float = SKELETON_THRESHOLD,
) -> torch.Tensor:
    r"""Mask-as-Supervision loss: weighted squared error of the skeleton and physique masks.

    .. math::

        L = \frac{\lambda_s}{HW} \sum_p g(p) \big(G(p) (M(p) - M_{skel}(p))\big)^2
          + \frac{\lambda_p}{HW} \lVert G \odot (M - M_{phys}) \rVert^2, \qquad
        g = \begin{cases} 1 & \text{two-sided (paper)} \\
        [M_{skel} > \tau] & \text{one-sided (gated)} \\
        \overline{[M_{skel} > \tau]} & \text{released code, without } G \end{cases}

    Args:
        mask: ``(B, 1, H, W)`` ground-truth mask ``M`` in [0, 1].
        skel: ``(B, 1, H, W)`` skeleton mask ``M_skel`` of the predicted joints.
        phys: ``(B, 1, H, W)`` physique mask ``M_phys = ψ(M_skel)``, or ``None`` (skeleton term only).
        weights: ``(B, 1, H, W)`` geodesic weights ``G``, or ``None`` for uniform weights (ablation).
        lambda_s, lambda_p: term weights.
        reduction: ``"mean"`` over the batch, ``"sum"``, or ``"none"`` for ``(B,)``.
        skeleton_term: ``"two_sided"`` (paper), ``"one_sided"`` (only the skeleton's support
            ``M_skel > τ`` counts) or ``"released"`` (the released code's arithmetic: without
            ``weights``, the two-sided error times the batch's support fraction; with them, the
            gated error times ``G``); see the module docstring.
        skeleton_threshold: τ of the one-sided term (released code 0.1); the gate passes no
            gradient.

    Shape:
        - mask, skel, phys, weights: :math:`(B, 1, H, W)`.
        - output: scalar, or :math:`(B,)` with ``reduction="none"``; each term is a mean over the
          ``H·W`` pixels.

    Raises:
        MaskposeError: wrong shapes, or a NaN/inf in ``mask`` or ``weights`` (data errors; a NaN in
        the predictions propagates, as for any PyTorch loss).

    Example:
        >>> mask = torch.zeros(1, 1, 2, 2); mask[..., 0, :] = 1
        >>> skel = torch.full((1, 1, 2, 2), 0.5)
        >>> mask_supervision_loss(mask, skel)
        tensor(0.2500)
        >>> skel = torch.tensor([[[[1.0, 0.05], [0.5, 0.0]]]])  # covers one mask pixel, strays out once
        >>> mask_supervision_loss(mask, skel, skeleton_term="one_sided")  # the 0.05 and 0 pixels do not count
        tensor(0.0625)
    """
    _check_map("mask", mask)
    _check_map("skel", skel, mask)
    if phys is not None:
        _check_map("phys", phys, mask)
    if weights is not None:
        _check_map("weights", weights, mask)
    check_reduction(reduction)
    _check_skeleton_term(skeleton_term, skeleton_threshold)
    # Ground truth and weights come from data: a NaN there is a data bug, not a training state.
    if not torch.isfinite(mask).all():
        raise MaskposeError("mask contains NaN or infinite values")
    if weights is not None and not torch.isfinite(weights).all():
        raise MaskposeError("weights contains NaN or infinite values")
    mask = mask.to(skel.dtype)

    def term(pred: torch.Tensor, gate: torch.Tensor | None = None) -> torch.Tensor:
        diff = mask - pred
        if weights is not None:
            diff = weights * diff
        squared = diff.square()
        if gate is not None:
            squared = squared * gate
        return squared.mean(dim=(1, 2, 3))

    # The gate is a hard step of the prediction: a constant for autograd.
    gate = (skel.detach() > skeleton_threshold).to(skel.dtype) if skeleton_term != "two_sided" else None
    if skeleton_term == "released":
        squared = (mask - skel).square()
        if weights is None:  # the reduced MSE times the gate map, then the training loop's mean
            skeleton = squared.mean(dim=(1, 2, 3)) * gate.mean()
        else:  # the per-pixel error, gated, times G (not squared: the code multiplies the loss map)
            skeleton = (squared * gate * weights).mean(dim=(1, 2, 3))
        loss = lambda_s * skeleton
    else:
        loss = lambda_s * term(skel, gate)
    if phys is not None and lambda_p != 0:
        loss = loss + lambda_p * term(phys)
    return reduce(loss, reduction)


class MaskSupervisionLoss(nn.Module):
    r"""Module form of :func:`mask_supervision_loss`.

    .. math::

        L = \frac{\lambda_s}{HW} \sum_p g(p) \big(G(p) (M(p) - M_{skel}(p))\big)^2
          + \frac{\lambda_p}{HW} \lVert G \odot (M - M_{phys}) \rVert^2,
        \qquad g = 1 \ \text{or} \ [M_{skel} > \tau]

    Args:
        lambda_s, lambda_p, reduction, skeleton_term, skeleton_threshold: as in
            :func:`mask_supervision_loss`.

    Shape:
        - mask, skel, phys, weights: :math:`(B, 1, H, W)` (``phys`` and ``weights`` optional).
        - output: scalar, or :math:`(B,)` with ``reduction="none"``.

    Example:
        >>> mask = torch.zeros(1, 1, 2, 2); mask[..., 0, :] = 1
        >>> MaskSupervisionLoss()(mask, torch.full((1, 1, 2, 2), 0.5))
        tensor(0.2500)
    """

    def __init__(
        self,
        lambda_s: float = 1.0,
        lambda_p: float = 1.0,
        reduction: Reduction = "mean",
        skeleton_term: SkeletonTerm = "two_sided",
        skeleton_threshold: float = SKELETON_THRESHOLD,
    ) -> None:
        super().__init__()
        check_reduction(reduction)
        _check_skeleton_term(skeleton_term, skeleton_threshold)
        self.lambda_s, self.lambda_p, self.reduction = float(lambda_s), float(lambda_p), reduction
        self.skeleton_term, self.skeleton_threshold = skeleton_term, float(skeleton_threshold)

    def forward(
        self,
        mask: torch.Tensor,
        skel: torch.Tensor,
        phys: torch.Tensor | None = None,
        weights: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return mask_supervision_loss(
            mask, skel, phys, weights, self.lambda_s, self.lambda_p, self.reduction,
            self.skeleton_term, self.skeleton_threshold,
        )

    def extra_repr(self) -> str:
        text = f"lambda_s={self.lambda_s}, lambda_p={self.lambda_p}, reduction={self.reduction!r}"
        if self.skeleton_term != "two_sided":
            text += f", skeleton_term={self.skeleton_term!r}, skeleton_threshold={self.skeleton_threshold}"
        return text


class JointMaskSupervision(nn.Module):
    r"""From projected joints to the loss: skeleton mask, physique net ψ and the weighted loss.

    .. math::

        M_{skel} = \operatorname{skel}(x), \quad M_{phys} = \psi(M_{skel}), \quad
        L = \frac{\lambda_s}{HW} \sum_p g(p) \big(G(p) (M(p) - M_{skel}(p))\big)^2
          + \frac{\lambda_p}{HW} \lVert G \odot (M - M_{phys}) \rVert^2,
        \qquad g = 1 \ \text{or} \ [M_{skel} > \tau]

    ``physique=None`` drops the physique term (the "without ψ" ablation). ψ is a submodule, so
    its parameters train jointly with the pose network when they are given to the optimiser.

    Args:
        size, sigma, bones, style: of the :class:`~maskpose.masks.SkeletonMask`.
        physique: the U-Net ψ, or ``None``.
        lambda_s, lambda_p: term weights, as in :func:`mask_supervision_loss`.
        skeleton_term, skeleton_threshold: the skeleton term's form, as in
            :func:`mask_supervision_loss` (``"one_sided"`` with ``style="released"`` is the
            released code's recipe).

    Shape:
        - joints_2d: :math:`(B, J, 2)`; mask: :math:`(B, 1, H, W)`; weights: :math:`(B, 1, H, W)` or ``None``.
        - output: scalar.

    Example:
        >>> objective = JointMaskSupervision((8, 8), sigma=1.0, bones=[(0, 1)])
        >>> joints = torch.tensor([[[1.0, 4.0], [6.0, 4.0]]])
        >>> mask = objective.skeleton(joints)
        >>> objective(joints, mask).item()
        0.0
    """

    def __init__(
        self,
        size: tuple[int, int] = (64, 64),
        sigma: float = 2.0,
        bones: Sequence[tuple[int, int]] = H36M_BONES,
        style: str = "paper",
        physique: PhysiqueNet | None = None,
        lambda_s: float = 1.0,
        lambda_p: float = 1.0,
        skeleton_term: SkeletonTerm = "two_sided",
        skeleton_threshold: float = SKELETON_THRESHOLD,
    ) -> None:
        super().__init__()
        self.skeleton = SkeletonMask(size, sigma, bones, style)
        self.physique = physique
        self.loss = MaskSupervisionLoss(
            lambda_s, lambda_p, skeleton_term=skeleton_term, skeleton_threshold=skeleton_threshold
        )

    def forward(
        self, joints_2d: torch.Tensor, mask: torch.Tensor, weights: torch.Tensor | None = None
    ) -> torch.Tensor:
        skel = self.skeleton(joints_2d)
        phys = self.physique(skel) if self.physique is not None else None
        return self.loss(mask, skel, phys, weights)

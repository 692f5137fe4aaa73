"""The Mask-as-Supervision loss (docs/design.md §1.2).

``L = λs ‖G ⊙ (M − M_skel)‖² + λp ‖G ⊙ (M − M_phys)‖²``

Normalisation: each squared norm is divided by the number of pixels ``H·W`` (a mean over pixels),
then averaged over the batch; so the value does not depend on the image size and a loss weight
tuned at 64 px carries to 224 px.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from maskpose.conventions import H36M_BONES
from maskpose.errors import MaskposeError, check_reduction, check_tensor, reduce
from maskpose.masks.physique import PhysiqueNet
from maskpose.masks.skeleton import SkeletonMask
from maskpose.typing import Reduction


def _check_map(name: str, x: torch.Tensor, like: torch.Tensor | None = None) -> None:
    check_tensor(name, x, (None, 1, None, None))
    if like is not None and x.shape != like.shape:
        raise MaskposeError(f"{name} has shape {tuple(x.shape)}, expected {tuple(like.shape)} like mask")


def mask_supervision_loss(
    mask: torch.Tensor,
    skel: torch.Tensor,
    phys: torch.Tensor | None = None,
    weights: torch.Tensor | None = None,
    lambda_s: float = 1.0,
    lambda_p: float = 1.0,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    r"""Mask-as-Supervision loss: weighted squared error of the skeleton and physique masks.

    .. math::

        L = \frac{\lambda_s}{HW} \lVert G \odot (M - M_{skel}) \rVert^2
          + \frac{\lambda_p}{HW} \lVert G \odot (M - M_{phys}) \rVert^2

    Args:
        mask: ``(B, 1, H, W)`` ground-truth mask ``M`` in [0, 1].
        skel: ``(B, 1, H, W)`` skeleton mask ``M_skel`` of the predicted joints.
        phys: ``(B, 1, H, W)`` physique mask ``M_phys = ψ(M_skel)``, or ``None`` (skeleton term only).
        weights: ``(B, 1, H, W)`` geodesic weights ``G``, or ``None`` for uniform weights (ablation).
        lambda_s, lambda_p: term weights.
        reduction: ``"mean"`` over the batch, ``"sum"``, or ``"none"`` for ``(B,)``.

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
    """
    _check_map("mask", mask)
    _check_map("skel", skel, mask)
    if phys is not None:
        _check_map("phys", phys, mask)
    if weights is not None:
        _check_map("weights", weights, mask)
    check_reduction(reduction)
    # Ground truth and weights come from data: a NaN there is a data bug, not a training state.
    if not torch.isfinite(mask).all():
        raise MaskposeError("mask contains NaN or infinite values")
    if weights is not None and not torch.isfinite(weights).all():
        raise MaskposeError("weights contains NaN or infinite values")
    mask = mask.to(skel.dtype)

    def term(pred: torch.Tensor) -> torch.Tensor:
        diff = mask - pred
        if weights is not None:
            diff = weights * diff
        return diff.square().mean(dim=(1, 2, 3))

    loss = lambda_s * term(skel)
    if phys is not None and lambda_p != 0:
        loss = loss + lambda_p * term(phys)
    return reduce(loss, reduction)


class MaskSupervisionLoss(nn.Module):
    r"""Module form of :func:`mask_supervision_loss`.

    .. math::

        L = \frac{\lambda_s}{HW} \lVert G \odot (M - M_{skel}) \rVert^2
          + \frac{\lambda_p}{HW} \lVert G \odot (M - M_{phys}) \rVert^2

    Args:
        lambda_s, lambda_p, reduction: as in :func:`mask_supervision_loss`.

    Shape:
        - mask, skel, phys, weights: :math:`(B, 1, H, W)` (``phys`` and ``weights`` optional).
        - output: scalar, or :math:`(B,)` with ``reduction="none"``.

    Example:
        >>> mask = torch.zeros(1, 1, 2, 2); mask[..., 0, :] = 1
        >>> MaskSupervisionLoss()(mask, torch.full((1, 1, 2, 2), 0.5))
        tensor(0.2500)
    """

    def __init__(self, lambda_s: float = 1.0, lambda_p: float = 1.0, reduction: Reduction = "mean") -> None:
        super().__init__()
        check_reduction(reduction)
        self.lambda_s, self.lambda_p, self.reduction = float(lambda_s), float(lambda_p), reduction

    def forward(
        self,
        mask: torch.Tensor,
        skel: torch.Tensor,
        phys: torch.Tensor | None = None,
        weights: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return mask_supervision_loss(mask, skel, phys, weights, self.lambda_s, self.lambda_p, self.reduction)

    def extra_repr(self) -> str:
        return f"lambda_s={self.lambda_s}, lambda_p={self.lambda_p}, reduction={self.reduction!r}"


class JointMaskSupervision(nn.Module):
    r"""From projected joints to the loss: skeleton mask, physique net ψ and the weighted loss.

    .. math::

        M_{skel} = \operatorname{skel}(x), \quad M_{phys} = \psi(M_{skel}), \quad
        L = \frac{\lambda_s}{HW} \lVert G \odot (M - M_{skel}) \rVert^2
          + \frac{\lambda_p}{HW} \lVert G \odot (M - M_{phys}) \rVert^2

    ``physique=None`` drops the physique term (the "without ψ" ablation). ψ is a submodule, so
    its parameters train jointly with the pose network when they are given to the optimiser.

    Args:
        size, sigma, bones, style: of the :class:`~maskpose.masks.SkeletonMask`.
        physique: the U-Net ψ, or ``None``.
        lambda_s, lambda_p: term weights, as in :func:`mask_supervision_loss`.

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
    ) -> None:
        super().__init__()
        self.skeleton = SkeletonMask(size, sigma, bones, style)
        self.physique = physique
        self.loss = MaskSupervisionLoss(lambda_s, lambda_p)

    def forward(
        self, joints_2d: torch.Tensor, mask: torch.Tensor, weights: torch.Tensor | None = None
    ) -> torch.Tensor:
        skel = self.skeleton(joints_2d)
        phys = self.physique(skel) if self.physique is not None else None
        return self.loss(mask, skel, phys, weights)

"""Pose and mask metrics (docs/design.md §6), batched, in millimetres where 3D.

Units: 3D inputs are in **metres** (the library's camera frame); 3D outputs are in **millimetres**
(``unit=1000`` converts; pass ``unit=1.0`` to keep the input unit). 2D inputs and outputs are in
pixels. Every 3D pose metric takes ``(B, J, 3)`` tensors and returns ``(B,)`` per-sample values with
``reduction="none"``, or their mean (the default) or sum. Every metric has an ``nn.Module`` beside it
with the matching name (:class:`MPJPE`, :class:`PAMPJPE`, :class:`NMPJPE`, :class:`PCK`, :class:`AUC`).

* :func:`mpjpe` — mean per-joint position error after aligning the roots (H36M pelvis, index 0).
* :func:`pa_mpjpe` — after a similarity Procrustes alignment (rotation, scale, translation;
  reflections excluded).
* :func:`n_mpjpe` — after root alignment and the least-squares scale only (Rhodin et al. 2018).
* :func:`pck` — share of joints within 150 mm after root alignment (MPI-INF-3DHP convention).
* :func:`auc` — mean PCK over 31 thresholds 0, 5, ..., 150 mm.
* :func:`error_2d` — mean per-joint 2D distance, pixels.
* :func:`silhouette_iou` — per-sample IoU of binarised masks.
"""

from __future__ import annotations

import roma
import torch
from torch import nn

from maskpose.conventions import H36M_PELVIS
from maskpose.errors import MaskposeError, check_reduction, check_shape, check_tensor, reduce
from maskpose.typing import Reduction

#: Thresholds of the AUC (mm): 0 to 150 in 31 steps, as for MPI-INF-3DHP.
AUC_THRESHOLDS_MM: tuple[float, ...] = tuple(5.0 * i for i in range(31))


def _check_pair(pred: torch.Tensor, gt: torch.Tensor, dims: int = 3) -> None:
    for name, x in (("pred", pred), ("gt", gt)):
        check_tensor(name, x, (None, None, dims), floating=True, finite="coordinates")
    if pred.shape != gt.shape:
        raise MaskposeError(f"pred {tuple(pred.shape)} and gt {tuple(gt.shape)} must have the same shape")
    if pred.shape[1] == 0:
        raise MaskposeError("pred and gt need at least one joint")


def _root_align(pred: torch.Tensor, gt: torch.Tensor, root: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    if root is None:
        return pred, gt
    if not -pred.shape[1] <= root < pred.shape[1]:
        raise MaskposeError(f"root joint {root} is outside the {pred.shape[1]} joints")
    return pred - pred[:, root : root + 1], gt - gt[:, root : root + 1]


def joint_errors(pred: torch.Tensor, gt: torch.Tensor, root: int | None = H36M_PELVIS) -> torch.Tensor:
    r"""Per-joint Euclidean errors after root alignment, in the input unit.

    .. math::

        e_j = \lVert (\hat x_j - \hat x_r) - (x_j - x_r) \rVert_2

    Args:
        pred, gt: predicted and ground-truth joints.
        root: root joint index ``r`` (H36M pelvis 0), or ``None`` for no alignment.

    Shape:
        - pred, gt: :math:`(B, J, 3)`.
        - output: :math:`(B, J)`.

    Example:
        >>> gt = torch.tensor([[[0.0, 0.0, 0.0], [0.0, 0.1, 0.0], [0.1, 0.0, 0.0]]])
        >>> pred = gt + torch.tensor([[[0.0, 0.0, 0.0], [0.0, 0.0, 0.03], [0.0, 0.0, 0.2]]])
        >>> joint_errors(pred, gt)
        tensor([[0.0000, 0.0300, 0.2000]])
    """
    _check_pair(pred, gt)
    pred, gt = _root_align(pred, gt, root)
    return (pred - gt).norm(dim=-1)


def mpjpe(
    pred: torch.Tensor, gt: torch.Tensor, root: int | None = H36M_PELVIS, unit: float = 1000.0,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    r"""Mean per-joint position error (MPJPE) after aligning ``root`` (``None``: no alignment).

    .. math::

        \mathrm{MPJPE} = \frac{u}{J} \sum_j \lVert (\hat x_j - \hat x_r) - (x_j - x_r) \rVert_2

    Args:
        pred, gt: joints in metres.
        root: root joint index ``r`` (H36M pelvis 0), or ``None``.
        unit: output scale ``u`` (1000: metres -> mm).
        reduction: ``"mean"`` or ``"sum"`` over the batch, or ``"none"``.

    Shape:
        - pred, gt: :math:`(B, J, 3)`.
        - output: scalar, or :math:`(B,)` with ``reduction="none"``; mm.

    Example:
        >>> gt = torch.tensor([[[0.0, 0.0, 0.0], [0.0, 0.1, 0.0], [0.1, 0.0, 0.0]]])
        >>> pred = gt + torch.tensor([[[0.0, 0.0, 0.0], [0.0, 0.0, 0.03], [0.0, 0.0, 0.2]]])
        >>> round(mpjpe(pred, gt).item(), 3)
        76.667
    """
    return reduce(joint_errors(pred, gt, root).mean(-1) * unit, reduction)


def procrustes_align(pred: torch.Tensor, gt: torch.Tensor, scale: bool = True) -> torch.Tensor:
    r"""Align ``pred`` to ``gt`` by the best similarity transform (batched, no reflection).

    .. math::

        \min_{s, R, t} \sum_j \lVert s R p_j + t - g_j \rVert^2, \qquad R \in SO(D)

    The rotation is Kabsch/Umeyama's (``roma.rigid_points_registration``: when the optimal
    orthogonal map is a reflection, the smallest singular direction is flipped — Umeyama 1991),
    the scale :math:`s = \sum_j \langle g_j - \bar g, R (p_j - \bar p) \rangle / \sum_j \lVert p_j - \bar p \rVert^2`
    (0 when all of ``pred``'s points coincide).

    Args:
        pred, gt: point sets in correspondence.
        scale: fit the scale ``s`` (else ``s = 1``).

    Shape:
        - pred, gt: :math:`(B, J, D)`.
        - output: :math:`(B, J, D)` aligned ``pred``, differentiable.

    Example:
        >>> gt = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 3.0]]])
        >>> rot = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
        >>> pred = 0.5 * gt @ rot.T + torch.tensor([4.0, 5.0, 6.0])
        >>> torch.allclose(procrustes_align(pred, gt), gt, atol=1e-5)
        True
    """
    check_shape("pred", pred, (None, None, None))
    if pred.shape != gt.shape:
        raise MaskposeError(f"pred {tuple(pred.shape)} and gt {tuple(gt.shape)} must have the same shape")
    dtype = pred.dtype
    # float64 for the SVD: near-degenerate poses (collinear joints) are otherwise unstable in float32.
    p, g = pred.double(), gt.double()
    # Kabsch/Umeyama rotation (proper, det R = +1) from roma; the scale is computed here, since roma's
    # is NaN for a pose whose joints all coincide (zero variance): ours is then 0 (every joint on gt's mean).
    rot, _ = roma.rigid_points_registration(p, g, compute_scaling=False)
    mu_p, mu_g = p.mean(1, keepdim=True), g.mean(1, keepdim=True)
    x = (p - mu_p) @ rot.transpose(1, 2)  # centred pred, rotated
    if scale:
        # Umeyama: s = tr(D Σ) / σ_x² = Σ_j <y_j, R x_j> / Σ_j ‖x_j‖².
        s_fit = (x * (g - mu_g)).sum(dim=(1, 2)) / x.square().sum(dim=(1, 2)).clamp_min(1e-12)
        x = s_fit[:, None, None] * x
    return (x + mu_g).to(dtype)


def pa_mpjpe(pred: torch.Tensor, gt: torch.Tensor, unit: float = 1000.0, reduction: Reduction = "mean") -> torch.Tensor:
    r"""MPJPE after Procrustes alignment with scale (P-MPJPE / PA-MPJPE), metres in, mm out.

    .. math::

        \mathrm{PA\text{-}MPJPE} = \frac{u}{J} \sum_j \lVert s R \hat x_j + t - x_j \rVert_2

    with :math:`(s, R, t)` from :func:`procrustes_align`.

    Args:
        pred, gt: joints in metres.
        unit: output scale ``u`` (1000: metres -> mm).
        reduction: ``"mean"`` or ``"sum"`` over the batch, or ``"none"``.

    Shape:
        - pred, gt: :math:`(B, J, 3)`.
        - output: scalar, or :math:`(B,)` with ``reduction="none"``; mm.

    Example:
        >>> gt = torch.tensor([[[0.0, 0.0, 0.0], [0.0, 0.1, 0.0], [0.1, 0.0, 0.0]]])
        >>> pred = gt + torch.tensor([[[0.0, 0.0, 0.0], [0.0, 0.0, 0.03], [0.0, 0.0, 0.2]]])
        >>> round(pa_mpjpe(pred, 0.5 * pred).item(), 3)
        0.0
    """
    _check_pair(pred, gt)
    aligned = procrustes_align(pred, gt, scale=True)
    return reduce((aligned - gt).norm(dim=-1).mean(-1) * unit, reduction)


def n_mpjpe(
    pred: torch.Tensor, gt: torch.Tensor, root: int | None = H36M_PELVIS, unit: float = 1000.0,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    r"""N-MPJPE: MPJPE after root alignment and the least-squares scale (Rhodin et al. 2018).

    .. math::

        s = \frac{\langle p, g \rangle}{\langle p, p \rangle}, \qquad
        \mathrm{N\text{-}MPJPE} = \frac{u}{J} \sum_j \lVert s p_j - g_j \rVert_2

    with :math:`p, g` the root-aligned poses.

    Args:
        pred, gt: joints in metres.
        root: root joint index (H36M pelvis 0), or ``None``.
        unit: output scale ``u`` (1000: metres -> mm).
        reduction: ``"mean"`` or ``"sum"`` over the batch, or ``"none"``.

    Shape:
        - pred, gt: :math:`(B, J, 3)`.
        - output: scalar, or :math:`(B,)` with ``reduction="none"``; mm.

    Example:
        >>> gt = torch.tensor([[[0.0, 0.0, 0.0], [0.0, 0.1, 0.0], [0.1, 0.0, 0.0]]])
        >>> pred = gt + torch.tensor([[[0.0, 0.0, 0.0], [0.0, 0.0, 0.03], [0.0, 0.0, 0.2]]])
        >>> round(n_mpjpe(2.0 * gt, gt).item(), 3)
        0.0
    """
    _check_pair(pred, gt)
    p, g = _root_align(pred, gt, root)
    s = (p * g).sum(dim=(1, 2)) / p.square().sum(dim=(1, 2)).clamp_min(1e-12)
    return reduce((s[:, None, None] * p - g).norm(dim=-1).mean(-1) * unit, reduction)


def pck(
    pred: torch.Tensor, gt: torch.Tensor, threshold: float = 150.0, root: int | None = H36M_PELVIS,
    unit: float = 1000.0, reduction: Reduction = "mean",
) -> torch.Tensor:
    r"""PCK: percentage (0-100) of joints within ``threshold`` mm after root alignment.

    .. math::

        \mathrm{PCK}_\tau = \frac{100}{J} \sum_j [\, u\, e_j \le \tau \,]

    with :math:`e_j` from :func:`joint_errors` (a joint counts when its error is ``<= threshold``).

    Args:
        pred, gt: joints in metres.
        threshold: :math:`\tau`, mm (150, MPI-INF-3DHP).
        root: root joint index (H36M pelvis 0), or ``None``.
        unit: scale ``u`` of the errors (1000: metres -> mm).
        reduction: ``"mean"`` or ``"sum"`` over the batch, or ``"none"``.

    Shape:
        - pred, gt: :math:`(B, J, 3)`.
        - output: scalar, or :math:`(B,)` with ``reduction="none"``; percent.

    Example:
        >>> gt = torch.tensor([[[0.0, 0.0, 0.0], [0.0, 0.1, 0.0], [0.1, 0.0, 0.0]]])
        >>> pred = gt + torch.tensor([[[0.0, 0.0, 0.0], [0.0, 0.0, 0.03], [0.0, 0.0, 0.2]]])
        >>> round(pck(pred, gt).item(), 2)
        66.67
    """
    err = joint_errors(pred, gt, root) * unit
    return reduce((err <= threshold).to(pred.dtype).mean(-1) * 100.0, reduction)


def auc(
    pred: torch.Tensor, gt: torch.Tensor, thresholds: tuple[float, ...] | torch.Tensor = AUC_THRESHOLDS_MM,
    root: int | None = H36M_PELVIS, unit: float = 1000.0, reduction: Reduction = "mean",
) -> torch.Tensor:
    r"""AUC: area under the PCK curve (0-100), the mean PCK over ``thresholds`` (default 0:5:150 mm).

    .. math::

        \mathrm{AUC} = \frac{1}{T} \sum_{k=1}^{T} \mathrm{PCK}_{\tau_k}

    Args:
        pred, gt: joints in metres.
        thresholds: the :math:`\tau_k`, mm (default :data:`AUC_THRESHOLDS_MM`).
        root: root joint index (H36M pelvis 0), or ``None``.
        unit: scale of the errors (1000: metres -> mm).
        reduction: ``"mean"`` or ``"sum"`` over the batch, or ``"none"``.

    Shape:
        - pred, gt: :math:`(B, J, 3)`.
        - output: scalar, or :math:`(B,)` with ``reduction="none"``; percent.

    Example:
        >>> gt = torch.tensor([[[0.0, 0.0, 0.0], [0.0, 0.1, 0.0], [0.1, 0.0, 0.0]]])
        >>> pred = gt + torch.tensor([[[0.0, 0.0, 0.0], [0.0, 0.0, 0.03], [0.0, 0.0, 0.2]]])
        >>> round(auc(pred, gt).item(), 2)
        60.22
    """
    err = joint_errors(pred, gt, root) * unit  # (B, J)
    th = torch.as_tensor(thresholds, dtype=err.dtype, device=err.device)
    if th.ndim != 1 or th.numel() == 0:
        raise MaskposeError("thresholds must be a non-empty 1D sequence of mm values")
    within = (err[:, :, None] <= th).to(err.dtype)  # (B, J, T)
    return reduce(within.mean(dim=(1, 2)) * 100.0, reduction)


def error_2d(
    pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor | None = None, reduction: Reduction = "mean"
) -> torch.Tensor:
    r"""Mean per-joint 2D distance in pixels, over the labelled joints.

    .. math::

        E_{2D} = \frac{\sum_j v_j \lVert \hat y_j - y_j \rVert_2}{\sum_j v_j}

    Args:
        pred, gt: joints in pixels.
        valid: optional labelled-joint flags :math:`v_j` (all 1 if ``None``). A sample with no
            labelled joint raises ``MaskposeError`` (a silent NaN would poison the mean).
        reduction: ``"mean"`` or ``"sum"`` over the batch, or ``"none"``.

    Shape:
        - pred, gt: :math:`(B, J, 2)`; valid: :math:`(B, J)` bool.
        - output: scalar, or :math:`(B,)` with ``reduction="none"``; pixels.

    Example:
        >>> error_2d(torch.tensor([[[3.0, 4.0], [1.0, 1.0]]]), torch.zeros(1, 2, 2))
        tensor(3.2071)
    """
    _check_pair(pred, gt, dims=2)
    dist = (pred - gt).norm(dim=-1)
    if valid is None:
        return reduce(dist.mean(-1), reduction)
    check_shape("valid", valid, tuple(dist.shape))
    valid = valid.to(dist.dtype)
    count = valid.sum(-1)
    if (count == 0).any():
        raise MaskposeError("valid marks no joint in some samples: their 2D error is undefined")
    return reduce((dist * valid).sum(-1) / count, reduction)


def silhouette_iou(
    pred: torch.Tensor, gt: torch.Tensor, threshold: float = 0.5, reduction: Reduction = "mean"
) -> torch.Tensor:
    r"""IoU of masks binarised at ``threshold``; 1 when both are empty.

    .. math::

        \mathrm{IoU} = \frac{|\hat M \cap M|}{|\hat M \cup M|}

    Args:
        pred, gt: masks (any dtype).
        threshold: binarisation level (``> threshold`` is on).
        reduction: ``"mean"`` or ``"sum"`` over the batch, or ``"none"``.

    Shape:
        - pred, gt: :math:`(B, 1, H, W)`.
        - output: scalar, or :math:`(B,)` with ``reduction="none"``; float32.

    Example:
        >>> silhouette_iou(torch.tensor([[[[1.0, 1.0, 0.0]]]]), torch.tensor([[[[0.0, 1.0, 1.0]]]]))
        tensor(0.3333)
    """
    for name, x in (("pred", pred), ("gt", gt)):
        check_tensor(name, x, (None, 1, None, None), finite="values")
    if pred.shape != gt.shape:
        raise MaskposeError(f"pred {tuple(pred.shape)} and gt {tuple(gt.shape)} must have the same shape")
    p, g = pred > threshold, gt > threshold
    inter = (p & g).flatten(1).sum(1).double()
    union = (p | g).flatten(1).sum(1).double()
    iou = torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union))
    return reduce(iou.float(), reduction)


class MPJPE(nn.Module):
    r"""Module form of :func:`mpjpe`.

    .. math::

        \mathrm{MPJPE} = \frac{u}{J} \sum_j \lVert (\hat x_j - \hat x_r) - (x_j - x_r) \rVert_2

    Args:
        root, unit, reduction: as in :func:`mpjpe`.

    Shape:
        - pred, gt: :math:`(B, J, 3)`, metres.
        - output: scalar, or :math:`(B,)` with ``reduction="none"``; mm.

    Example:
        >>> gt = torch.tensor([[[0.0, 0.0, 0.0], [0.0, 0.1, 0.0], [0.1, 0.0, 0.0]]])
        >>> pred = gt + torch.tensor([[[0.0, 0.0, 0.0], [0.0, 0.0, 0.03], [0.0, 0.0, 0.2]]])
        >>> round(MPJPE()(pred, gt).item(), 3)
        76.667
    """

    def __init__(self, root: int | None = H36M_PELVIS, unit: float = 1000.0, reduction: Reduction = "mean"):
        super().__init__()
        check_reduction(reduction)
        self.root, self.unit, self.reduction = root, unit, reduction

    def forward(self, pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return mpjpe(pred, gt, self.root, self.unit, self.reduction)


class PAMPJPE(nn.Module):
    r"""Module form of :func:`pa_mpjpe`.

    .. math::

        \mathrm{PA\text{-}MPJPE} = \frac{u}{J} \sum_j \lVert s R \hat x_j + t - x_j \rVert_2

    Args:
        unit, reduction: as in :func:`pa_mpjpe`.

    Shape:
        - pred, gt: :math:`(B, J, 3)`, metres.
        - output: scalar, or :math:`(B,)` with ``reduction="none"``; mm.

    Example:
        >>> gt = torch.tensor([[[0.0, 0.0, 0.0], [0.0, 0.1, 0.0], [0.1, 0.0, 0.0]]])
        >>> pred = gt + torch.tensor([[[0.0, 0.0, 0.0], [0.0, 0.0, 0.03], [0.0, 0.0, 0.2]]])
        >>> round(PAMPJPE()(pred, 0.5 * pred).item(), 3)
        0.0
    """

    def __init__(self, unit: float = 1000.0, reduction: Reduction = "mean"):
        super().__init__()
        check_reduction(reduction)
        self.unit, self.reduction = unit, reduction

    def forward(self, pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return pa_mpjpe(pred, gt, self.unit, self.reduction)


class NMPJPE(nn.Module):
    r"""Module form of :func:`n_mpjpe`.

    .. math::

        \mathrm{N\text{-}MPJPE} = \frac{u}{J} \sum_j \lVert s p_j - g_j \rVert_2,
        \qquad s = \frac{\langle p, g \rangle}{\langle p, p \rangle}

    Args:
        root, unit, reduction: as in :func:`n_mpjpe`.

    Shape:
        - pred, gt: :math:`(B, J, 3)`, metres.
        - output: scalar, or :math:`(B,)` with ``reduction="none"``; mm.

    Example:
        >>> gt = torch.tensor([[[0.0, 0.0, 0.0], [0.0, 0.1, 0.0], [0.1, 0.0, 0.0]]])
        >>> pred = gt + torch.tensor([[[0.0, 0.0, 0.0], [0.0, 0.0, 0.03], [0.0, 0.0, 0.2]]])
        >>> round(NMPJPE()(2.0 * gt, gt).item(), 3)
        0.0
    """

    def __init__(self, root: int | None = H36M_PELVIS, unit: float = 1000.0, reduction: Reduction = "mean"):
        super().__init__()
        check_reduction(reduction)
        self.root, self.unit, self.reduction = root, unit, reduction

    def forward(self, pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return n_mpjpe(pred, gt, self.root, self.unit, self.reduction)


class PCK(nn.Module):
    r"""Module form of :func:`pck`.

    .. math::

        \mathrm{PCK}_\tau = \frac{100}{J} \sum_j [\, u\, e_j \le \tau \,]

    Args:
        threshold, root, unit, reduction: as in :func:`pck`.

    Shape:
        - pred, gt: :math:`(B, J, 3)`, metres.
        - output: scalar, or :math:`(B,)` with ``reduction="none"``; percent.

    Example:
        >>> gt = torch.tensor([[[0.0, 0.0, 0.0], [0.0, 0.1, 0.0], [0.1, 0.0, 0.0]]])
        >>> pred = gt + torch.tensor([[[0.0, 0.0, 0.0], [0.0, 0.0, 0.03], [0.0, 0.0, 0.2]]])
        >>> round(PCK()(pred, gt).item(), 2)
        66.67
    """

    def __init__(self, threshold: float = 150.0, root: int | None = H36M_PELVIS, unit: float = 1000.0,
                 reduction: Reduction = "mean"):
        super().__init__()
        check_reduction(reduction)
        self.threshold, self.root, self.unit, self.reduction = float(threshold), root, unit, reduction

    def forward(self, pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return pck(pred, gt, self.threshold, self.root, self.unit, self.reduction)


class AUC(nn.Module):
    r"""Module form of :func:`auc`.

    .. math::

        \mathrm{AUC} = \frac{1}{T} \sum_{k=1}^{T} \mathrm{PCK}_{\tau_k}

    Args:
        thresholds, root, unit, reduction: as in :func:`auc`.

    Shape:
        - pred, gt: :math:`(B, J, 3)`, metres.
        - output: scalar, or :math:`(B,)` with ``reduction="none"``; percent.

    Example:
        >>> gt = torch.tensor([[[0.0, 0.0, 0.0], [0.0, 0.1, 0.0], [0.1, 0.0, 0.0]]])
        >>> pred = gt + torch.tensor([[[0.0, 0.0, 0.0], [0.0, 0.0, 0.03], [0.0, 0.0, 0.2]]])
        >>> round(AUC()(pred, gt).item(), 2)
        60.22
    """

    def __init__(self, thresholds: tuple[float, ...] | torch.Tensor = AUC_THRESHOLDS_MM,
                 root: int | None = H36M_PELVIS, unit: float = 1000.0, reduction: Reduction = "mean"):
        super().__init__()
        check_reduction(reduction)
        self.thresholds, self.root, self.unit, self.reduction = thresholds, root, unit, reduction

    def forward(self, pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return auc(pred, gt, self.thresholds, self.root, self.unit, self.reduction)


def pose_metrics(
    pred: torch.Tensor, gt: torch.Tensor, root: int | None = H36M_PELVIS, unit: float = 1000.0
) -> dict[str, float]:
    """All 3D metrics at once, as floats: mpjpe, pa_mpjpe, n_mpjpe (mm), pck, auc (%)."""
    return {
        "mpjpe": float(mpjpe(pred, gt, root, unit)),
        "pa_mpjpe": float(pa_mpjpe(pred, gt, unit)),
        "n_mpjpe": float(n_mpjpe(pred, gt, root, unit)),
        "pck": float(pck(pred, gt, 150.0, root, unit)),
        "auc": float(auc(pred, gt, AUC_THRESHOLDS_MM, root, unit)),
    }

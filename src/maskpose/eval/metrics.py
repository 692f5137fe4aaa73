"""Pose and mask metrics (DESIGN §6), batched, in millimetres where 3D.

Units: 3D inputs are in **metres** (the library's camera frame); 3D outputs are in **millimetres**
(``unit=1000`` converts; pass ``unit=1.0`` to keep the input unit). 2D inputs and outputs are in
pixels. Every 3D pose metric takes ``(B, J, 3)`` tensors and returns ``(B,)`` per-sample values with
``reduction="none"`` or their mean (the default).

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

import torch
from torch import nn

from maskpose.conventions import H36M_PELVIS
from maskpose.errors import MaskposeError, check_shape

_REDUCTIONS = ("mean", "none")
#: Thresholds of the AUC (mm): 0 to 150 in 31 steps, as for MPI-INF-3DHP.
AUC_THRESHOLDS_MM: tuple[float, ...] = tuple(5.0 * i for i in range(31))


def _check_pair(pred: torch.Tensor, gt: torch.Tensor, dims: int = 3) -> None:
    for name, x in (("pred", pred), ("gt", gt)):
        if not isinstance(x, torch.Tensor):
            raise MaskposeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        check_shape(name, x, (None, None, dims))
        if not x.is_floating_point():
            raise MaskposeError(f"{name} must be a floating-point tensor, got {x.dtype}")
        if not torch.isfinite(x).all():
            raise MaskposeError(f"{name} contains NaN or infinite coordinates")
    if pred.shape != gt.shape:
        raise MaskposeError(f"pred {tuple(pred.shape)} and gt {tuple(gt.shape)} must have the same shape")
    if pred.shape[1] == 0:
        raise MaskposeError("pred and gt need at least one joint")


def _reduce(values: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return values.mean()
    if reduction == "none":
        return values
    raise MaskposeError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _root_align(pred: torch.Tensor, gt: torch.Tensor, root: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    if root is None:
        return pred, gt
    if not -pred.shape[1] <= root < pred.shape[1]:
        raise MaskposeError(f"root joint {root} is outside the {pred.shape[1]} joints")
    return pred - pred[:, root : root + 1], gt - gt[:, root : root + 1]


def joint_errors(pred: torch.Tensor, gt: torch.Tensor, root: int | None = H36M_PELVIS) -> torch.Tensor:
    """Per-joint Euclidean errors ``(B, J)`` after root alignment, in the input unit."""
    _check_pair(pred, gt)
    pred, gt = _root_align(pred, gt, root)
    return (pred - gt).norm(dim=-1)


def mpjpe(
    pred: torch.Tensor, gt: torch.Tensor, root: int | None = H36M_PELVIS, unit: float = 1000.0,
    reduction: str = "mean",
) -> torch.Tensor:
    """Mean per-joint position error after aligning ``root`` (``None``: no alignment).

    Args:
        pred, gt: ``(B, J, 3)`` in metres.
        root: root joint index (H36M pelvis 0), or ``None``.
        unit: output scale (1000: metres -> mm).

    Returns:
        ``(B,)`` or scalar, mm.
    """
    return _reduce(joint_errors(pred, gt, root).mean(-1) * unit, reduction)


def procrustes_align(pred: torch.Tensor, gt: torch.Tensor, scale: bool = True) -> torch.Tensor:
    """Align ``pred`` to ``gt`` by the best similarity transform (batched SVD, no reflection).

    Solves ``min_{s,R,t} Σ_j ‖s R p_j + t − g_j‖²`` with ``R`` a proper rotation (``det R = +1``;
    when the optimal orthogonal map is a reflection, the smallest singular direction is flipped —
    Umeyama 1991).

    Args:
        pred, gt: ``(B, J, D)``.
        scale: fit the scale ``s`` (else ``s = 1``).

    Returns:
        ``(B, J, D)`` aligned ``pred``, differentiable.
    """
    check_shape("pred", pred, (None, None, None))
    if pred.shape != gt.shape:
        raise MaskposeError(f"pred {tuple(pred.shape)} and gt {tuple(gt.shape)} must have the same shape")
    dtype = pred.dtype
    # float64 for the SVD: near-degenerate poses (collinear joints) are otherwise unstable in float32.
    p, g = pred.double(), gt.double()
    mu_p, mu_g = p.mean(1, keepdim=True), g.mean(1, keepdim=True)
    x, y = p - mu_p, g - mu_g
    cov = x.transpose(1, 2) @ y  # (B, D, D) = Σ_j x_j y_jᵀ
    u, s, vh = torch.linalg.svd(cov)
    v = vh.transpose(1, 2)
    det = torch.linalg.det(v @ u.transpose(1, 2))
    d = torch.ones_like(s)
    d[:, -1] = torch.where(det < 0, -1.0, 1.0)
    rot = v @ torch.diag_embed(d) @ u.transpose(1, 2)  # R = V D Uᵀ
    if scale:
        var = x.square().sum(dim=(1, 2)).clamp_min(1e-12)
        s_fit = (s * d).sum(-1) / var
    else:
        s_fit = torch.ones_like(s[:, 0])
    aligned = s_fit[:, None, None] * x @ rot.transpose(1, 2) + mu_g
    return aligned.to(dtype)


def pa_mpjpe(pred: torch.Tensor, gt: torch.Tensor, unit: float = 1000.0, reduction: str = "mean") -> torch.Tensor:
    """MPJPE after Procrustes alignment with scale (P-MPJPE / PA-MPJPE). ``(B, J, 3)`` m -> mm."""
    _check_pair(pred, gt)
    aligned = procrustes_align(pred, gt, scale=True)
    return _reduce((aligned - gt).norm(dim=-1).mean(-1) * unit, reduction)


def n_mpjpe(
    pred: torch.Tensor, gt: torch.Tensor, root: int | None = H36M_PELVIS, unit: float = 1000.0,
    reduction: str = "mean",
) -> torch.Tensor:
    """MPJPE after root alignment and the least-squares scale ``s = <p, g> / <p, p>``. m -> mm."""
    _check_pair(pred, gt)
    p, g = _root_align(pred, gt, root)
    s = (p * g).sum(dim=(1, 2)) / p.square().sum(dim=(1, 2)).clamp_min(1e-12)
    return _reduce((s[:, None, None] * p - g).norm(dim=-1).mean(-1) * unit, reduction)


def pck(
    pred: torch.Tensor, gt: torch.Tensor, threshold: float = 150.0, root: int | None = H36M_PELVIS,
    unit: float = 1000.0, reduction: str = "mean",
) -> torch.Tensor:
    """Percentage (0-100) of joints within ``threshold`` mm after root alignment.

    A joint counts when its error is ``<= threshold``.
    """
    err = joint_errors(pred, gt, root) * unit
    return _reduce((err <= threshold).to(pred.dtype).mean(-1) * 100.0, reduction)


def auc(
    pred: torch.Tensor, gt: torch.Tensor, thresholds: tuple[float, ...] | torch.Tensor = AUC_THRESHOLDS_MM,
    root: int | None = H36M_PELVIS, unit: float = 1000.0, reduction: str = "mean",
) -> torch.Tensor:
    """Area under the PCK curve (0-100): the mean PCK over ``thresholds`` (default 0:5:150 mm)."""
    err = joint_errors(pred, gt, root) * unit  # (B, J)
    th = torch.as_tensor(thresholds, dtype=err.dtype, device=err.device)
    if th.ndim != 1 or th.numel() == 0:
        raise MaskposeError("thresholds must be a non-empty 1D sequence of mm values")
    within = (err[:, :, None] <= th).to(err.dtype)  # (B, J, T)
    return _reduce(within.mean(dim=(1, 2)) * 100.0, reduction)


def error_2d(
    pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor | None = None, reduction: str = "mean"
) -> torch.Tensor:
    """Mean per-joint 2D distance in pixels.

    Args:
        pred, gt: ``(B, J, 2)`` pixels.
        valid: optional ``(B, J)`` bool of labelled joints; the mean runs over those. A sample
            with no labelled joint raises ``MaskposeError`` (a silent NaN would poison the mean).
    """
    _check_pair(pred, gt, dims=2)
    dist = (pred - gt).norm(dim=-1)
    if valid is None:
        return _reduce(dist.mean(-1), reduction)
    check_shape("valid", valid, tuple(dist.shape))
    valid = valid.to(dist.dtype)
    count = valid.sum(-1)
    if (count == 0).any():
        raise MaskposeError("valid marks no joint in some samples: their 2D error is undefined")
    return _reduce((dist * valid).sum(-1) / count, reduction)


def silhouette_iou(
    pred: torch.Tensor, gt: torch.Tensor, threshold: float = 0.5, reduction: str = "mean"
) -> torch.Tensor:
    """IoU of ``(B, 1, H, W)`` masks binarised at ``threshold``; 1 when both are empty."""
    for name, x in (("pred", pred), ("gt", gt)):
        check_shape(name, x, (None, 1, None, None))
        if x.is_floating_point() and not torch.isfinite(x).all():
            raise MaskposeError(f"{name} contains NaN or infinite values")
    if pred.shape != gt.shape:
        raise MaskposeError(f"pred {tuple(pred.shape)} and gt {tuple(gt.shape)} must have the same shape")
    p, g = pred > threshold, gt > threshold
    inter = (p & g).flatten(1).sum(1).double()
    union = (p | g).flatten(1).sum(1).double()
    iou = torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union))
    return _reduce(iou.float(), reduction)


class MPJPE(nn.Module):
    """Module form of :func:`mpjpe`: ``(B, J, 3)`` m, ``(B, J, 3)`` m -> mm."""

    def __init__(self, root: int | None = H36M_PELVIS, unit: float = 1000.0, reduction: str = "mean"):
        super().__init__()
        self.root, self.unit, self.reduction = root, unit, reduction

    def forward(self, pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
        return mpjpe(pred, gt, self.root, self.unit, self.reduction)


class PAMPJPE(nn.Module):
    """Module form of :func:`pa_mpjpe`: ``(B, J, 3)`` m, ``(B, J, 3)`` m -> mm."""

    def __init__(self, unit: float = 1000.0, reduction: str = "mean"):
        super().__init__()
        self.unit, self.reduction = unit, reduction

    def forward(self, pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
        return pa_mpjpe(pred, gt, self.unit, self.reduction)


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

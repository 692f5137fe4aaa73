r"""2D keypoint metrics for partly labelled data (real person crops), batched, in pixels.

Real 2D labels are partial: COCO has no spine or head top, and annotators skip what they cannot
see. The ground truth marks such a keypoint with NaN (as the importers of ``maskpose.data.adapters``
write it); here an unlabelled keypoint is **ignored**: neither scored nor counted. A sample with no
labelled keypoint (on the chosen ``joints``) is left out of the reductions, and every function
returns the per-sample count of labelled keypoints beside its value (:class:`KeypointScore`), so a
caller can pool several batches or tell how much was scored.

Reductions are over **keypoints**, not samples: ``"mean"`` is the pooled value over every labelled
keypoint of the batch (the per-sample values weighted by their counts), ``"sum"`` the total over
them (keypoints within the threshold for PCK, pixels of distance for the error), ``"none"`` the
per-sample values ``(B,)`` (NaN where a sample has no labelled keypoint).

* :data:`LIMB_JOINTS` — the 12 H36M-17 joints that COCO labels as limbs.
* :func:`pck_2d` — fraction of labelled keypoints within a pixel threshold.
* :func:`error_2d_px` — mean pixel distance over the labelled keypoints
  (:func:`maskpose.eval.metrics.error_2d` per sample).
* :func:`pck_2d_flip`, :func:`error_2d_px_flip` — per sample, the better of the prediction and its
  left-right label swap (``H36M_FLIP``; a mask or a single image cannot tell left from right).
* :func:`mean_pose_2d` — the mean normalised pose of a set of labelled samples (the constant
  prediction of the mean-pose floor).

Every function has an ``nn.Module`` beside it with the matching name (:class:`PCK2D`,
:class:`Error2DPx`, :class:`PCK2DFlip`, :class:`Error2DPxFlip`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn

from maskpose.conventions import H36M_FLIP, H36M_JOINTS
from maskpose.errors import MaskposeError, check_reduction, check_tensor
from maskpose.eval.metrics import error_2d
from maskpose.typing import Reduction

#: Names of the joints COCO labels as limbs: hips, knees, ankles, shoulders, elbows, wrists.
LIMB_JOINT_NAMES: tuple[str, ...] = (
    "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle",
    "l_shoulder", "l_elbow", "l_wrist", "r_shoulder", "r_elbow", "r_wrist",
)

#: H36M-17 indices of :data:`LIMB_JOINT_NAMES` (closed under ``H36M_FLIP``).
LIMB_JOINTS: tuple[int, ...] = tuple(H36M_JOINTS.index(name) for name in LIMB_JOINT_NAMES)


class KeypointScore(NamedTuple):
    """A 2D keypoint metric: ``value`` (scalar, or ``(B,)`` with ``reduction="none"``) and
    ``count``, the ``(B,)`` int64 number of labelled keypoints of each sample on the chosen joints
    (0: the sample is not scored)."""

    value: torch.Tensor
    count: torch.Tensor


def _prepare(pred: torch.Tensor, gt: torch.Tensor, joints: Sequence[int] | None,
             flip: Sequence[int] | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Check the inputs; return ``pred`` and ``gt`` on ``joints`` (``gt`` with NaN replaced by 0)
    and the labelled flags ``(B, J')``. With ``flip``, ``pred`` comes back label-swapped."""
    check_tensor("pred", pred, (None, None, 2), floating=True, finite="coordinates")
    check_tensor("gt", gt, (None, None, 2), floating=True)
    if pred.shape != gt.shape:
        raise MaskposeError(f"pred {tuple(pred.shape)} and gt {tuple(gt.shape)} must have the same shape")
    num = pred.shape[1]
    if num == 0:
        raise MaskposeError("pred and gt need at least one joint")
    if bool(torch.isinf(gt).any()):
        raise MaskposeError("gt contains infinite coordinates (NaN marks an unlabelled keypoint; Inf is refused)")
    if flip is not None:
        flip = [int(j) for j in flip]
        if sorted(flip) != list(range(num)):
            raise MaskposeError(f"flip must be a permutation of the {num} joints, got {flip}")
        pred = pred[:, flip]
    if joints is not None:
        joints = [int(j) for j in joints]
        if not joints or len(set(joints)) != len(joints) or not all(0 <= j < num for j in joints):
            raise MaskposeError(f"joints must be distinct indices in [0, {num}), at least one; got {joints}")
        pred, gt = pred[:, joints], gt[:, joints]
    valid = torch.isfinite(gt).all(-1)
    return pred, torch.where(valid[..., None], gt, torch.zeros_like(gt)), valid


def _check_threshold(threshold: float) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold) \
            or threshold < 0:
        raise MaskposeError(f"threshold must be a finite number of pixels >= 0, got {threshold!r}")
    return float(threshold)


def _reduce(total: torch.Tensor, count: torch.Tensor, reduction: Reduction) -> KeypointScore:
    """Per-sample totals over the labelled keypoints -> the reduction over keypoints."""
    check_reduction(reduction)
    if reduction == "none":
        per_sample = torch.where(count > 0, total / count.clamp_min(1), torch.full_like(total, float("nan")))
        return KeypointScore(per_sample, count)
    if reduction == "sum":
        return KeypointScore(total.sum(), count)
    if int(count.sum()) == 0:
        raise MaskposeError("gt labels no keypoint (on the chosen joints): the mean is undefined")
    return KeypointScore(total.sum() / count.sum(), count)


def _hits(pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor, threshold: float) -> torch.Tensor:
    """Per-sample number of labelled keypoints within ``threshold`` pixels."""
    within = ((pred - gt).norm(dim=-1) <= threshold) & valid
    return within.sum(-1).to(pred.dtype)


def _distance_totals(pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Per-sample sum of pixel distances over the labelled keypoints: the mean of
    :func:`~maskpose.eval.metrics.error_2d` times the count (0 for a sample with none)."""
    count = valid.sum(-1)
    total = torch.zeros(pred.shape[0], dtype=pred.dtype, device=pred.device)
    scored = count > 0
    if bool(scored.any()):
        mean = error_2d(pred[scored], gt[scored], valid[scored], reduction="none")
        total[scored] = mean * count[scored].to(pred.dtype)
    return total


def pck_2d(pred: torch.Tensor, gt: torch.Tensor, threshold: float, joints: Sequence[int] | None = None,
           reduction: Reduction = "mean") -> KeypointScore:
    r"""PCK in 2D: the fraction (0-1) of **labelled** keypoints within ``threshold`` pixels.

    .. math::

        \mathrm{PCK}_\tau = \frac{\sum_{b, j} v_{bj} [\, \lVert \hat y_{bj} - y_{bj} \rVert_2 \le \tau \,]}
                                 {\sum_{b, j} v_{bj}}

    with :math:`v_{bj} = 1` where ``gt`` is finite (labelled) and 0 where it is NaN (ignored, not
    counted). Per sample (``reduction="none"``) the sums run over ``j`` only.

    Args:
        pred: predicted keypoints (finite), pixels.
        gt: ground truth, pixels; NaN marks an unlabelled keypoint (Inf is refused).
        threshold: :math:`\tau`, pixels (a keypoint counts when its distance is ``<= threshold``).
        joints: indices of the joints scored (e.g. :data:`LIMB_JOINTS`); ``None``: all.
        reduction: ``"mean"`` (over every labelled keypoint of the batch), ``"sum"`` (the number of
            keypoints within :math:`\tau`) or ``"none"`` (per sample; NaN for a sample with none).

    Returns:
        :class:`KeypointScore`: the value and the per-sample counts of labelled keypoints.

    Shape:
        - pred, gt: :math:`(B, J, 2)`.
        - value: scalar, or :math:`(B,)` with ``reduction="none"``; count: :math:`(B,)` int64.

    Example:
        >>> nan = float("nan")
        >>> gt = torch.tensor([[[0.0, 0.0], [10.0, 0.0], [nan, nan]], [[nan, nan]] * 3])
        >>> pred = torch.tensor([[[3.0, 4.0], [10.0, 6.0], [0.0, 0.0]], [[0.0, 0.0]] * 3])
        >>> pck_2d(pred, gt, 5.0)
        KeypointScore(value=tensor(0.5000), count=tensor([2, 0]))
        >>> pck_2d(pred, gt, 5.0, reduction="none").value
        tensor([0.5000,    nan])
    """
    threshold = _check_threshold(threshold)
    p, g, valid = _prepare(pred, gt, joints)
    return _reduce(_hits(p, g, valid, threshold), valid.sum(-1), reduction)


def pck_2d_flip(pred: torch.Tensor, gt: torch.Tensor, threshold: float, joints: Sequence[int] | None = None,
                flip: Sequence[int] = H36M_FLIP, reduction: Reduction = "mean") -> KeypointScore:
    r"""Flip-aware :func:`pck_2d`: per sample, the higher PCK of the prediction and of its
    left-right label swap (``pred[:, flip]``; coordinates unchanged).

    .. math::

        \mathrm{PCK}^{\mathrm{flip}}_{\tau, b} = \max\big(\mathrm{PCK}_{\tau, b}(\hat y),\;
        \mathrm{PCK}_{\tau, b}(\hat y_{\pi})\big)

    with :math:`\pi` = ``flip`` (a permutation of all ``J`` joints, applied before selecting
    ``joints``). The choice is made per sample and per threshold; the counts are those of
    :func:`pck_2d` (the labels of ``gt`` do not move).

    Args:
        pred, gt, threshold, joints, reduction: as in :func:`pck_2d`.
        flip: the left-right permutation (default ``H36M_FLIP``).

    Shape:
        - pred, gt: :math:`(B, J, 2)`.
        - value: scalar, or :math:`(B,)` with ``reduction="none"``; count: :math:`(B,)` int64.

    Example:
        >>> gt = torch.tensor([[[0.0, 0.0], [10.0, 0.0], [20.0, 0.0]]])
        >>> pred = torch.tensor([[[0.0, 0.0], [20.0, 0.0], [10.0, 0.0]]])  # 1 and 2 swapped
        >>> pck_2d(pred, gt, 1.0).value, pck_2d_flip(pred, gt, 1.0, flip=(0, 2, 1)).value
        (tensor(0.3333), tensor(1.))
    """
    threshold = _check_threshold(threshold)
    p, g, valid = _prepare(pred, gt, joints)
    pf, _, _ = _prepare(pred, gt, joints, flip)
    hits = torch.maximum(_hits(p, g, valid, threshold), _hits(pf, g, valid, threshold))
    return _reduce(hits, valid.sum(-1), reduction)


def error_2d_px(pred: torch.Tensor, gt: torch.Tensor, joints: Sequence[int] | None = None,
                reduction: Reduction = "mean") -> KeypointScore:
    r"""Mean pixel distance over the **labelled** keypoints (NaN in ``gt``: ignored).

    .. math::

        E_{2D} = \frac{\sum_{b, j} v_{bj} \lVert \hat y_{bj} - y_{bj} \rVert_2}{\sum_{b, j} v_{bj}}

    Per sample (``reduction="none"``) this is :func:`maskpose.eval.metrics.error_2d` with
    ``valid = v``; samples with no labelled keypoint are left out (NaN there) instead of raising.

    Args:
        pred, gt, joints: as in :func:`pck_2d`.
        reduction: ``"mean"`` (over every labelled keypoint of the batch), ``"sum"`` (total pixels)
            or ``"none"`` (per sample; NaN for a sample with none).

    Shape:
        - pred, gt: :math:`(B, J, 2)`.
        - value: scalar, or :math:`(B,)` with ``reduction="none"``; pixels. count: :math:`(B,)` int64.

    Example:
        >>> nan = float("nan")
        >>> gt = torch.tensor([[[0.0, 0.0], [10.0, 0.0], [nan, nan]], [[0.0, 0.0], [nan, nan], [nan, nan]]])
        >>> pred = torch.tensor([[[3.0, 4.0], [10.0, 6.0], [0.0, 0.0]], [[0.0, 2.0], [0.0, 0.0], [0.0, 0.0]]])
        >>> error_2d_px(pred, gt)
        KeypointScore(value=tensor(4.3333), count=tensor([2, 1]))
    """
    p, g, valid = _prepare(pred, gt, joints)
    return _reduce(_distance_totals(p, g, valid), valid.sum(-1), reduction)


def error_2d_px_flip(pred: torch.Tensor, gt: torch.Tensor, joints: Sequence[int] | None = None,
                     flip: Sequence[int] = H36M_FLIP, reduction: Reduction = "mean") -> KeypointScore:
    r"""Flip-aware :func:`error_2d_px`: per sample, the lower error of the prediction and of its
    left-right label swap (``pred[:, flip]``).

    .. math::

        E^{\mathrm{flip}}_{2D, b} = \min\big(E_{2D, b}(\hat y),\; E_{2D, b}(\hat y_{\pi})\big)

    Args:
        pred, gt, joints, reduction: as in :func:`error_2d_px`.
        flip: the left-right permutation :math:`\pi` of all ``J`` joints (default ``H36M_FLIP``).

    Shape:
        - pred, gt: :math:`(B, J, 2)`.
        - value: scalar, or :math:`(B,)` with ``reduction="none"``; pixels. count: :math:`(B,)` int64.

    Example:
        >>> gt = torch.tensor([[[0.0, 0.0], [10.0, 0.0], [20.0, 0.0]]])
        >>> pred = torch.tensor([[[0.0, 3.0], [20.0, 0.0], [10.0, 0.0]]])
        >>> error_2d_px_flip(pred, gt, flip=(0, 2, 1)).value
        tensor(1.)
    """
    p, g, valid = _prepare(pred, gt, joints)
    pf, _, _ = _prepare(pred, gt, joints, flip)
    total = torch.minimum(_distance_totals(p, g, valid), _distance_totals(pf, g, valid))
    return _reduce(total, valid.sum(-1), reduction)


def mean_pose_2d(joints2d: torch.Tensor, side: float) -> torch.Tensor:
    r"""The mean normalised 2D pose of labelled samples: per joint, the mean over the samples that
    label it of the keypoint in units of the crop side (pixel centres at integer coordinates).

    .. math::

        \bar u_j = \frac{\sum_n v_{nj} (y_{nj} + \tfrac12) / s}{\sum_n v_{nj}}

    A joint no sample labels gets the mean of every labelled keypoint (the pose's centre); when
    nothing is labelled at all, every joint is the crop centre :math:`(\tfrac12, \tfrac12)`. In
    pixels of a crop of side :math:`s'`, the constant prediction is :math:`\bar u_j s' - \tfrac12`.

    Args:
        joints2d: keypoints in pixels of a ``side``-pixel crop; NaN marks an unlabelled one.
        side: the crop side :math:`s`, pixels.

    Shape:
        - joints2d: :math:`(N, J, 2)`.
        - output: :math:`(J, 2)`, finite, in units of the crop side.

    Example:
        >>> nan = float("nan")
        >>> y = torch.tensor([[[9.5, 19.5], [nan, nan]], [[19.5, 39.5], [nan, nan]]])
        >>> mean_pose_2d(y, 40.0)
        tensor([[0.3750, 0.7500],
                [0.3750, 0.7500]])
    """
    check_tensor("joints2d", joints2d, (None, None, 2), floating=True)
    if bool(torch.isinf(joints2d).any()):
        raise MaskposeError("joints2d contains infinite coordinates (NaN marks an unlabelled keypoint)")
    if isinstance(side, bool) or not isinstance(side, (int, float)) or not math.isfinite(side) or side <= 0:
        raise MaskposeError(f"side must be a finite number of pixels > 0, got {side!r}")
    u = (joints2d + 0.5) / float(side)
    valid = torch.isfinite(u).all(-1)  # (N, J)
    u = torch.where(valid[..., None], u, torch.zeros_like(u))
    count = valid.sum(0).to(u.dtype)  # (J,)
    if int(valid.sum()) == 0:
        return torch.full(u.shape[1:], 0.5, dtype=u.dtype, device=u.device)
    centre = u.sum(dim=(0, 1)) / valid.sum()
    mean = u.sum(0) / count.clamp_min(1)[:, None]
    return torch.where(count[:, None] > 0, mean, centre.expand_as(mean))


class PCK2D(nn.Module):
    r"""Module form of :func:`pck_2d`.

    .. math::

        \mathrm{PCK}_\tau = \frac{\sum_{b, j} v_{bj} [\, \lVert \hat y_{bj} - y_{bj} \rVert_2 \le \tau \,]}
                                 {\sum_{b, j} v_{bj}}

    Args:
        threshold, joints, reduction: as in :func:`pck_2d`.

    Shape:
        - pred, gt: :math:`(B, J, 2)`, pixels (NaN in ``gt``: unlabelled).
        - output: :class:`KeypointScore`; value scalar, or :math:`(B,)` with ``reduction="none"``.

    Example:
        >>> PCK2D(5.0)(torch.tensor([[[3.0, 4.0], [10.0, 6.0]]]), torch.tensor([[[0.0, 0.0], [10.0, 0.0]]])).value
        tensor(0.5000)
    """

    def __init__(self, threshold: float, joints: Sequence[int] | None = None, reduction: Reduction = "mean"):
        super().__init__()
        check_reduction(reduction)
        self.threshold, self.reduction = _check_threshold(threshold), reduction
        self.joints = None if joints is None else tuple(joints)

    def forward(self, pred: torch.Tensor, gt: torch.Tensor) -> KeypointScore:  # noqa: D102
        return pck_2d(pred, gt, self.threshold, self.joints, self.reduction)


class PCK2DFlip(nn.Module):
    r"""Module form of :func:`pck_2d_flip`.

    .. math::

        \mathrm{PCK}^{\mathrm{flip}}_{\tau, b} = \max\big(\mathrm{PCK}_{\tau, b}(\hat y),\;
        \mathrm{PCK}_{\tau, b}(\hat y_{\pi})\big)

    Args:
        threshold, joints, flip, reduction: as in :func:`pck_2d_flip`.

    Shape:
        - pred, gt: :math:`(B, J, 2)`, pixels (NaN in ``gt``: unlabelled).
        - output: :class:`KeypointScore`; value scalar, or :math:`(B,)` with ``reduction="none"``.

    Example:
        >>> gt = torch.tensor([[[0.0, 0.0], [10.0, 0.0], [20.0, 0.0]]])
        >>> PCK2DFlip(1.0, flip=(0, 2, 1))(gt[:, [0, 2, 1]], gt).value
        tensor(1.)
    """

    def __init__(self, threshold: float, joints: Sequence[int] | None = None, flip: Sequence[int] = H36M_FLIP,
                 reduction: Reduction = "mean"):
        super().__init__()
        check_reduction(reduction)
        self.threshold, self.reduction = _check_threshold(threshold), reduction
        self.joints = None if joints is None else tuple(joints)
        self.flip = tuple(flip)

    def forward(self, pred: torch.Tensor, gt: torch.Tensor) -> KeypointScore:  # noqa: D102
        return pck_2d_flip(pred, gt, self.threshold, self.joints, self.flip, self.reduction)


class Error2DPx(nn.Module):
    r"""Module form of :func:`error_2d_px`.

    .. math::

        E_{2D} = \frac{\sum_{b, j} v_{bj} \lVert \hat y_{bj} - y_{bj} \rVert_2}{\sum_{b, j} v_{bj}}

    Args:
        joints, reduction: as in :func:`error_2d_px`.

    Shape:
        - pred, gt: :math:`(B, J, 2)`, pixels (NaN in ``gt``: unlabelled).
        - output: :class:`KeypointScore`; value scalar, or :math:`(B,)` with ``reduction="none"``.

    Example:
        >>> Error2DPx()(torch.tensor([[[3.0, 4.0], [10.0, 6.0]]]), torch.tensor([[[0.0, 0.0], [10.0, 0.0]]])).value
        tensor(5.5000)
    """

    def __init__(self, joints: Sequence[int] | None = None, reduction: Reduction = "mean"):
        super().__init__()
        check_reduction(reduction)
        self.reduction = reduction
        self.joints = None if joints is None else tuple(joints)

    def forward(self, pred: torch.Tensor, gt: torch.Tensor) -> KeypointScore:  # noqa: D102
        return error_2d_px(pred, gt, self.joints, self.reduction)


class Error2DPxFlip(nn.Module):
    r"""Module form of :func:`error_2d_px_flip`.

    .. math::

        E^{\mathrm{flip}}_{2D, b} = \min\big(E_{2D, b}(\hat y),\; E_{2D, b}(\hat y_{\pi})\big)

    Args:
        joints, flip, reduction: as in :func:`error_2d_px_flip`.

    Shape:
        - pred, gt: :math:`(B, J, 2)`, pixels (NaN in ``gt``: unlabelled).
        - output: :class:`KeypointScore`; value scalar, or :math:`(B,)` with ``reduction="none"``.

    Example:
        >>> gt = torch.tensor([[[0.0, 0.0], [10.0, 0.0], [20.0, 0.0]]])
        >>> Error2DPxFlip(flip=(0, 2, 1))(gt[:, [0, 2, 1]], gt).value
        tensor(0.)
    """

    def __init__(self, joints: Sequence[int] | None = None, flip: Sequence[int] = H36M_FLIP,
                 reduction: Reduction = "mean"):
        super().__init__()
        check_reduction(reduction)
        self.reduction = reduction
        self.joints = None if joints is None else tuple(joints)
        self.flip = tuple(flip)

    def forward(self, pred: torch.Tensor, gt: torch.Tensor) -> KeypointScore:  # noqa: D102
        return error_2d_px_flip(pred, gt, self.joints, self.flip, self.reduction)

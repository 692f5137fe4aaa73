"""Left-right symmetry losses on 3D joints, from the released Mask-as-Supervision recipe (docs/design.md §1.2).

Masks say nothing about depth or about which side is which; the released code's stage 2 keeps the
3D pose plausible with two symmetry terms (``compute_bone_sym_loss`` and ``compute_kp_sym_loss``
in its ``modules/base_losses/loss_func.py``, weight 0.1 each):

* :func:`bone_symmetry_loss` — equal lengths of paired bones. The default pairs each left bone of
  H36M-17 with its right mirror, with the hip bones rooted at the pelvis (hip centre = pelvis) and
  the shoulder bones at the thorax (shoulder centre = thorax): 6 pairs.
  :data:`RELEASED_BONE_PAIRS` are the 4 pairs the released code actually compares: on each side,
  forearm with upper arm and shin with thigh (its comment: "constrain arms and legs to be the same
  length"), not left with right.
* :func:`centre_symmetry_loss` — the pelvis at the middle of the hips and the thorax at the middle of
  the shoulders.

Both are in the squared units of ``joints3d`` (maskpose's joints are in metres, as the released
code's after its ``1e-3`` from millimetres) and are means, so they do not grow with the number of
pairs or the batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from maskpose.errors import MaskposeError, check_reduction, check_tensor, reduce
from maskpose.typing import Reduction

#: Left-right bone pairs ``((left parent, left child), (right parent, right child))`` of H36M-17:
#: pelvis-hip, thigh, shin, thorax-shoulder, upper arm, forearm.
H36M_SYMMETRIC_BONE_PAIRS: tuple[tuple[tuple[int, int], tuple[int, int]], ...] = (
    ((0, 4), (0, 1)), ((4, 5), (1, 2)), ((5, 6), (2, 3)),
    ((8, 11), (8, 14)), ((11, 12), (14, 15)), ((12, 13), (15, 16)),
)

#: The bone pairs of the released code's ``compute_bone_sym_loss``: r forearm / r upper arm,
#: l forearm / l upper arm, r shin / r thigh, l shin / l thigh (same side, distal against proximal).
RELEASED_BONE_PAIRS: tuple[tuple[tuple[int, int], tuple[int, int]], ...] = (
    ((15, 16), (14, 15)), ((12, 13), (11, 12)), ((2, 3), (1, 2)), ((5, 6), (4, 5)),
)

#: ``(left, right, centre)`` triples of H36M-17: hips about the pelvis, shoulders about the thorax.
H36M_SYMMETRY_CENTRES: tuple[tuple[int, int, int], ...] = ((4, 1, 0), (11, 14, 8))


def _check_joints(joints3d: torch.Tensor, indices: Sequence[int], what: str) -> None:
    # Predictions may hold NaN (it propagates, as for any PyTorch loss); shapes and indices may not.
    check_tensor("joints3d", joints3d, (None, None, 3), floating=True)
    num_joints = joints3d.shape[1]
    bad = sorted({int(i) for i in indices if not 0 <= int(i) < num_joints})
    if bad:
        raise MaskposeError(f"{what} index joints {bad} outside 0..{num_joints - 1} of joints3d")


def _bone_pairs(pairs) -> tuple[tuple[tuple[int, int], tuple[int, int]], ...]:
    try:
        out = tuple(((int(a), int(b)), (int(c), int(d))) for (a, b), (c, d) in pairs)
    except (TypeError, ValueError):
        raise MaskposeError(f"pairs must be ((a, b), (c, d)) bone pairs, got {pairs!r}") from None
    if not out:
        raise MaskposeError("pairs must name at least one pair of bones")
    return out


def _centres(centres) -> tuple[tuple[int, int, int], ...]:
    try:
        out = tuple((int(a), int(b), int(c)) for a, b, c in centres)
    except (TypeError, ValueError):
        raise MaskposeError(f"centres must be (left, right, centre) triples, got {centres!r}") from None
    if not out:
        raise MaskposeError("centres must name at least one (left, right, centre) triple")
    return out


def bone_symmetry_loss(
    joints3d: torch.Tensor,
    pairs: Sequence[tuple[tuple[int, int], tuple[int, int]]] = H36M_SYMMETRIC_BONE_PAIRS,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    r"""Squared difference of the lengths of paired bones, averaged over the pairs.

    .. math::

        L = \frac{1}{P} \sum_{k=1}^{P} \big(\lVert x_{a_k} - x_{b_k} \rVert - \lVert x_{c_k} - x_{d_k} \rVert\big)^2

    for the pairs ``((a_k, b_k), (c_k, d_k))``; by default each left bone of H36M-17 against its
    right mirror (:data:`H36M_SYMMETRIC_BONE_PAIRS`), :data:`RELEASED_BONE_PAIRS` for the released
    code's pairing. A zero-length bone has a zero (sub)gradient.

    Args:
        joints3d: ``(B, J, 3)`` 3D joints (H36M-17 order for the default pairs).
        pairs: ``P`` bone pairs ``((a, b), (c, d))`` of joint indices.
        reduction: ``"mean"`` over the batch, ``"sum"``, or ``"none"`` for ``(B,)``.

    Shape:
        - joints3d: :math:`(B, J, 3)`.
        - output: scalar, or :math:`(B,)` with ``reduction="none"``; in squared units of ``joints3d``.

    Raises:
        MaskposeError: ``joints3d`` not a floating ``(B, J, 3)`` tensor, or pairs outside its joints.

    Example:
        >>> joints = torch.zeros(1, 4, 3)
        >>> joints[0, 1, 0], joints[0, 3, 0] = 1.0, -3.0  # bones 0-1 of length 1 and 2-3 of length 3
        >>> bone_symmetry_loss(joints, pairs=[((0, 1), (2, 3))])
        tensor(4.)
    """
    pairs = _bone_pairs(pairs)
    _check_joints(joints3d, [j for pair in pairs for bone in pair for j in bone], "pairs")
    check_reduction(reduction)
    index = torch.tensor(pairs, device=joints3d.device)  # (P, 2 bones, 2 ends)
    ends = joints3d[:, index]  # (B, P, 2, 2, 3)
    lengths = torch.linalg.vector_norm(ends[..., 1, :] - ends[..., 0, :], dim=-1)  # (B, P, 2)
    per_sample = (lengths[..., 0] - lengths[..., 1]).square().mean(dim=-1)
    return reduce(per_sample, reduction)


def centre_symmetry_loss(
    joints3d: torch.Tensor,
    centres: Sequence[tuple[int, int, int]] = H36M_SYMMETRY_CENTRES,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    r"""Squared offset of each centre joint from the midpoint of its left and right joints.

    .. math::

        L = \frac{1}{3C} \sum_{k=1}^{C} \Big\lVert \tfrac{1}{2}(x_{l_k} + x_{r_k}) - x_{c_k} \Big\rVert^2

    for the triples ``(l_k, r_k, c_k)``; by default the hips about the pelvis and the shoulders
    about the thorax (:data:`H36M_SYMMETRY_CENTRES`). The mean runs over the centres and the 3
    coordinates, as the released code's mean squared error does.

    Args:
        joints3d: ``(B, J, 3)`` 3D joints (H36M-17 order for the default centres).
        centres: ``C`` triples ``(left, right, centre)`` of joint indices.
        reduction: ``"mean"`` over the batch, ``"sum"``, or ``"none"`` for ``(B,)``.

    Shape:
        - joints3d: :math:`(B, J, 3)`.
        - output: scalar, or :math:`(B,)` with ``reduction="none"``.

    Example:
        >>> joints = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [-1.0, 0.0, 0.6]]])
        >>> centre_symmetry_loss(joints, centres=[(1, 2, 0)])  # midpoint (0, 0, 0.3): 0.09 / 3
        tensor(0.0300)
    """
    centres = _centres(centres)
    _check_joints(joints3d, [j for triple in centres for j in triple], "centres")
    check_reduction(reduction)
    index = torch.tensor(centres, device=joints3d.device)  # (C, 3)
    picked = joints3d[:, index]  # (B, C, 3 joints, 3 coordinates)
    offset = (picked[:, :, 0] + picked[:, :, 1]) / 2 - picked[:, :, 2]
    return reduce(offset.square().mean(dim=(1, 2)), reduction)


class BoneSymmetryLoss(nn.Module):
    r"""Module form of :func:`bone_symmetry_loss`.

    .. math::

        L = \frac{1}{P} \sum_{k=1}^{P} \big(\lVert x_{a_k} - x_{b_k} \rVert - \lVert x_{c_k} - x_{d_k} \rVert\big)^2

    Args:
        pairs, reduction: as in :func:`bone_symmetry_loss`.

    Shape:
        - joints3d: :math:`(B, J, 3)`.
        - output: scalar, or :math:`(B,)` with ``reduction="none"``.

    Example:
        >>> joints = torch.zeros(2, 17, 3)
        >>> joints[:, 1, 0], joints[:, 4, 0] = -0.1, 0.1  # hips mirror each other: no cost
        >>> BoneSymmetryLoss()(joints)
        tensor(0.)
    """

    def __init__(
        self,
        pairs: Sequence[tuple[tuple[int, int], tuple[int, int]]] = H36M_SYMMETRIC_BONE_PAIRS,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__()
        check_reduction(reduction)
        self.pairs, self.reduction = _bone_pairs(pairs), reduction

    def forward(self, joints3d: torch.Tensor) -> torch.Tensor:
        return bone_symmetry_loss(joints3d, self.pairs, self.reduction)

    def extra_repr(self) -> str:
        return f"pairs={len(self.pairs)}, reduction={self.reduction!r}"


class CentreSymmetryLoss(nn.Module):
    r"""Module form of :func:`centre_symmetry_loss`.

    .. math::

        L = \frac{1}{3C} \sum_{k=1}^{C} \Big\lVert \tfrac{1}{2}(x_{l_k} + x_{r_k}) - x_{c_k} \Big\rVert^2

    Args:
        centres, reduction: as in :func:`centre_symmetry_loss`.

    Shape:
        - joints3d: :math:`(B, J, 3)`.
        - output: scalar, or :math:`(B,)` with ``reduction="none"``.

    Example:
        >>> CentreSymmetryLoss()(torch.zeros(1, 17, 3))
        tensor(0.)
    """

    def __init__(
        self, centres: Sequence[tuple[int, int, int]] = H36M_SYMMETRY_CENTRES, reduction: Reduction = "mean"
    ) -> None:
        super().__init__()
        check_reduction(reduction)
        self.centres, self.reduction = _centres(centres), reduction

    def forward(self, joints3d: torch.Tensor) -> torch.Tensor:
        return centre_symmetry_loss(joints3d, self.centres, self.reduction)

    def extra_repr(self) -> str:
        return f"centres={self.centres}, reduction={self.reduction!r}"

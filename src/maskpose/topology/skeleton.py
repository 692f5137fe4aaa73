"""D2T: distance map to topological skeleton, the ridge lines of the inward distance map.

    T = ReLU(D_in - MaxPool3x3(D_in) + 1) ⊙ S

``D_in`` is integer-valued and changes by at most one between neighbours, so ``T`` is exactly 0/1:
1 on the pixels of the mask that are not below any of their 8 neighbours (the local maxima, ridges
and plateaus of ``D_in``), 0 elsewhere. With the octagonal kernel the ridges lie within about a
pixel of scikit-image's ``medial_axis``.

Gradients follow the formula literally (ReLU, max and product); the max over the 3x3 window is an
element-wise maximum of shifted views, which splits the gradient between tied values instead of
sending it to one arbitrary position like ``max_pool2d`` does (and is several times faster on CPU).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from maskpose.typing import Binarization, Kernel

from ._checks import DEFAULT_BINARIZATION, DEFAULT_TEMPERATURE, check_mask, check_options
from .distance import _binarize, _distance_of_binary, _DistanceMapModule


def _maximum_shares(a: torch.Tensor, b: torch.Tensor, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The gradients of ``torch.maximum(a, b)``: all of ``grad`` to the larger input, half to each
    on a tie, computed as ``grad * w`` with ``w = (sign(a - b) + 1) / 2``. Built-in ``maximum``'s
    backward (``where`` and ``masked_fill`` on comparisons) costs about 2.5 ms per map at batch
    16 x 128 px on one CPU thread; this costs a tenth of that. The values are identical: ``w`` is 0,
    1/2 or 1, so every product is exact, and ``+ 0.0`` turns the ``-0.0`` of a negative gradient
    times 0 into the built-in's ``+0.0``. (Inputs are never NaN here: they are distance levels.)"""
    share_a = (torch.sign(a - b) + 1.0) * 0.5
    return grad * share_a + 0.0, grad * (1.0 - share_a) + 0.0


def _max_of_three(x: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``max(max(x[:-2], x[1:-1]), x[2:])`` along ``dim`` (cropped by 2), and the inner maximum."""
    length = x.shape[dim]
    first = torch.maximum(x.narrow(dim, 0, length - 2), x.narrow(dim, 1, length - 2))
    return torch.maximum(first, x.narrow(dim, 2, length - 2)), first


def _max_of_three_backward(x: torch.Tensor, first: torch.Tensor, grad: torch.Tensor, dim: int) -> torch.Tensor:
    """The gradient of :func:`_max_of_three` with respect to ``x``. The three shifted windows'
    gradients are summed in the order in which autograd's engine sums them for the same formula
    written with shifted views (the last window, then the middle one, then the first), so the
    result is the same to the bit; without the engine's full-size zero tensor per view."""
    length = x.shape[dim]
    grad_first, grad_last = _maximum_shares(first, x.narrow(dim, 2, length - 2), grad)
    grad_a, grad_b = _maximum_shares(x.narrow(dim, 0, length - 2), x.narrow(dim, 1, length - 2), grad_first)
    out = torch.zeros_like(x)
    out.narrow(dim, 2, length - 2).add_(grad_last)
    out.narrow(dim, 1, length - 2).add_(grad_b)
    out.narrow(dim, 0, length - 2).add_(grad_a)
    return out


class _LocalMax3x3(torch.autograd.Function):
    """:func:`local_max_3x3` with its backward written out: the same values and gradients as the
    four element-wise maxima of shifted views (see :func:`_maximum_shares`), in one autograd node.
    Through views, autograd gives every shifted window a full-size zero gradient to accumulate,
    which costs about as much as the maxima's own backward."""

    @staticmethod
    def forward(ctx, values: torch.Tensor) -> torch.Tensor:  # noqa: D102
        padded = F.pad(values, (1, 1, 1, 1))
        rows, rows_first = _max_of_three(padded, -1)
        out, out_first = _max_of_three(rows, -2)
        ctx.save_for_backward(padded, rows_first, rows, out_first)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):  # noqa: D102
        padded, rows_first, rows, out_first = ctx.saved_tensors
        grad_rows = _max_of_three_backward(rows, out_first, grad, -2)
        grad_padded = _max_of_three_backward(padded, rows_first, grad_rows, -1)
        return grad_padded[..., 1:-1, 1:-1]


def local_max_3x3(values: torch.Tensor) -> torch.Tensor:
    """``MaxPool3x3`` (stride 1, same size) of a non-negative ``(B, 1, H, W)`` map.

    Outside the image counts as 0, which never wins against a non-negative value, i.e. the window
    is simply cropped at the border.
    """
    if values.requires_grad:
        return _LocalMax3x3.apply(values)
    padded = F.pad(values, (1, 1, 1, 1))
    return _max_of_three(_max_of_three(padded, -1)[0], -2)[0]


def skeleton_from_distance(binary: torch.Tensor, inward: torch.Tensor) -> torch.Tensor:
    """D2T on a binary mask and its inward distance map.

    Args:
        binary: ``(B, 1, H, W)`` 0/1 float silhouette ``S``.
        inward: ``(B, 1, H, W)`` its inward distance map ``D_in``.

    Returns:
        ``(B, 1, H, W)`` 0/1 float skeleton ``T``, differentiable in both inputs.
    """
    return F.relu(inward - local_max_3x3(inward) + 1.0) * binary


def topological_skeleton(silhouette: torch.Tensor, kernel: Kernel = "octagonal", iterations: int | None = None,
                         binarization: Binarization = DEFAULT_BINARIZATION, temperature: float = DEFAULT_TEMPERATURE) -> torch.Tensor:
    r"""S2D then D2T: the topological skeleton of a silhouette.

    .. math::

        T = \operatorname{ReLU}\big(D_{in} - \operatorname{MaxPool}_{3 \times 3}(D_{in}) + 1\big) \odot S

    Args:
        silhouette: float in [0, 1], binarised at 0.5.
        kernel, iterations, binarization, temperature: as in
            :func:`maskpose.topology.inward_distance_map`.

    Shape:
        - silhouette: :math:`(B, 1, H, W)`.
        - output: :math:`(B, 1, H, W)` 0/1 float, same dtype and device; inside the mask.

    Example:
        >>> m = torch.zeros(1, 1, 5, 7); m[..., 1:4, 1:6] = 1
        >>> topological_skeleton(m)[0, 0]
        tensor([[0., 0., 0., 0., 0., 0., 0.],
                [0., 0., 0., 0., 0., 0., 0.],
                [0., 0., 1., 1., 1., 0., 0.],
                [0., 0., 0., 0., 0., 0., 0.],
                [0., 0., 0., 0., 0., 0., 0.]])
    """
    check_mask("silhouette", silhouette)
    check_options(kernel, iterations, binarization, temperature)
    binary = _binarize(silhouette, binarization, temperature)
    return skeleton_from_distance(binary, _distance_of_binary(binary, kernel, iterations))


class TopologicalSkeleton(_DistanceMapModule):
    r"""Module form of :func:`topological_skeleton` (S2D then D2T).

    .. math::

        T = \operatorname{ReLU}\big(D_{in} - \operatorname{MaxPool}_{3 \times 3}(D_{in}) + 1\big) \odot S

    Args:
        kernel, iterations, binarization, temperature: as in :func:`maskpose.topology.inward_distance_map`.

    Shape:
        - silhouette: :math:`(B, 1, H, W)`.
        - output: :math:`(B, 1, H, W)`.

    Example:
        >>> m = torch.zeros(1, 1, 3, 5); m[..., 1, :] = 1
        >>> TopologicalSkeleton()(m)[0, 0, 1]
        tensor([1., 1., 1., 1., 1.])
    """

    def forward(self, silhouette: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return topological_skeleton(silhouette, self.kernel, self.iterations, self.binarization, self.temperature)

"""Integral regression (soft-argmax) ops for heatmap joint heads, kornia style: pure functions on
batched tensors, each with an ``nn.Module`` of the matching name.

Coordinates: the readout is in *normalised image coordinates* ``u`` in ``[-1, 1]``, ``-1`` the
left/top border of the image and ``+1`` the right/bottom one (``align_corners=False``), the
weak-perspective camera's convention (``maskpose.render.camera``). A heatmap of ``W`` columns has
its column ``j`` centred at ``u_j = (2 j + 1) / W - 1`` whatever its resolution, so a heatmap at a
quarter of the input resolution reads out in the input image's frame; pixel ``p`` of a ``res``
pixel image (pixel centres at integers) is ``p = (u + 1) res / 2 - 0.5``
(:func:`normalized_to_pixels`). Kornia's ``spatial_soft_argmax2d`` instead puts ``-1`` and ``+1``
at the *centres* of the border pixels (``align_corners=True``).

Depth: the released Mask-as-Supervision code reads depth from a volumetric heatmap (64 x 64 x 64
bins per landmark, soft-argmax over the volume). Here the depth is the heatmap-weighted mean of one
per-landmark depth map (:func:`integral_depth`, the "2D heatmap + depth map" form of integral
regression): ``L`` + ``K L`` output channels instead of ``64 L``, which is what a CPU affords; it
is the volumetric readout when the volume factorises as a 2D heatmap times a depth distribution
per pixel whose mean is the depth map.

Depth hypotheses: the released code takes 3 hypotheses from the top-3 peaks of the volume and
trains them winner-takes-all. Here the head predicts ``K`` depth-map sets plus ``K`` logits;
:func:`winner_takes_all_l1` trains the best hypothesis of each sample and
:func:`hypothesis_cross_entropy` teaches the logits to pick it, so a test-time choice needs no
ground truth.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from maskpose.errors import MaskposeError, check_shape


def _check_temperature(temperature: float | torch.Tensor) -> None:
    if not isinstance(temperature, torch.Tensor) and not temperature > 0:
        raise MaskposeError(f"temperature must be > 0, got {temperature!r}")


def normalized_to_pixels(uv: torch.Tensor, res: int | float) -> torch.Tensor:
    """Normalised image coordinates to pixels of a ``res`` pixel image: ``p = (u + 1) res / 2 - 0.5``.

    Shape:
        - uv: ``(*, 2)`` (or any shape), in ``[-1, 1]`` inside the image.
        - output: the shape of ``uv``, pixel ``(0, 0)`` centred at ``(0, 0)``.

    Example:
        >>> normalized_to_pixels(torch.tensor([-1.0, 0.0, 1.0]), 64)
        tensor([-0.5000, 31.5000, 63.5000])
    """
    return (uv + 1.0) * (res / 2.0) - 0.5


def pixels_to_normalized(pixels: torch.Tensor, res: int | float) -> torch.Tensor:
    """The inverse of :func:`normalized_to_pixels`: ``u = (2 p + 1) / res - 1``.

    Shape:
        - pixels: any shape. output: the same shape.

    Example:
        >>> pixels_to_normalized(torch.tensor([-0.5, 31.5, 63.5]), 64)
        tensor([-1.,  0.,  1.])
    """
    return (2.0 * pixels + 1.0) / res - 1.0


def spatial_softmax(logits: torch.Tensor, temperature: float | torch.Tensor = 1.0) -> torch.Tensor:
    """Softmax over the ``H x W`` pixels of each channel:

    ``p[b, c, i, j] = exp(x[b, c, i, j] / T - logsumexp_{i', j'}(x[b, c, i', j'] / T))``

    computed as ``exp(x / T - max) / sum exp(x / T - max)`` (the log-sum-exp shift, without the
    rounding of subtracting a large log-sum-exp), so large logits neither overflow nor give NaN.

    Args:
        logits: heatmap logits.
        temperature: ``T > 0``; smaller is sharper (a float, or a tensor broadcasting against
            ``(B, C, 1, 1)``, e.g. a learnt one).

    Shape:
        - logits: ``(B, C, H, W)``. output: ``(B, C, H, W)``, each channel summing to 1.

    Example:
        >>> p = spatial_softmax(torch.zeros(1, 2, 3, 4))
        >>> p.shape, round(float(p[0, 0].sum()), 6)
        (torch.Size([1, 2, 3, 4]), 1.0)
    """
    check_shape("logits", logits, (None, None, None, None))
    _check_temperature(temperature)
    x = logits / temperature
    return torch.softmax(x.flatten(2), dim=-1).view_as(x)


def spatial_expectation_2d(probabilities: torch.Tensor, normalized: bool = True) -> torch.Tensor:
    """The expected position of each channel's distribution over the pixels:

    ``(x, y)[b, c] = sum_{i, j} p[b, c, i, j] (u_j, v_i)`` with ``u_j = (2 j + 1) / W - 1`` and
    ``v_i = (2 i + 1) / H - 1`` (normalised, ``align_corners=False``), or ``(j, i)`` in heatmap pixels
    with ``normalized=False``.

    Shape:
        - probabilities: ``(B, C, H, W)``, each channel summing to 1.
        - output: ``(B, C, 2)``, ``x`` then ``y``.

    Example:
        >>> p = torch.zeros(1, 1, 4, 4)
        >>> p[0, 0, 1, 3] = 1.0  # row 1, column 3
        >>> spatial_expectation_2d(p, normalized=False)
        tensor([[[3., 1.]]])
        >>> spatial_expectation_2d(p)
        tensor([[[ 0.7500, -0.2500]]])
    """
    check_shape("probabilities", probabilities, (None, None, None, None))
    h, w = probabilities.shape[-2:]
    kw = {"device": probabilities.device, "dtype": probabilities.dtype}
    xs, ys = torch.arange(w, **kw), torch.arange(h, **kw)
    if normalized:
        xs, ys = (2.0 * xs + 1.0) / w - 1.0, (2.0 * ys + 1.0) / h - 1.0
    x = (probabilities.sum(-2) * xs).sum(-1)  # marginal over rows, then the mean column
    y = (probabilities.sum(-1) * ys).sum(-1)
    return torch.stack((x, y), dim=-1)


def soft_argmax_2d(heatmap_logits: torch.Tensor, temperature: float | torch.Tensor = 1.0,
                   normalized: bool = True) -> torch.Tensor:
    """Soft-argmax (integral regression): the expected position under the spatial softmax,

    ``(x, y)[b, l] = sum_{i, j} softmax_{ij}(h[b, l] / T) (u_j, v_i)``

    (:func:`spatial_softmax` then :func:`spatial_expectation_2d`). Normalised coordinates of the
    *input image* by default (``[-1, 1]``, pixel ``p = (u + 1) res / 2 - 0.5`` at any input
    resolution ``res``, :func:`normalized_to_pixels`), so the heatmap may be smaller than the image;
    heatmap pixels with ``normalized=False``.

    Shape:
        - heatmap_logits: ``(B, L, H, W)``.
        - output: ``(B, L, 2)``, ``x`` then ``y``.

    Example:
        >>> h = torch.full((1, 1, 16, 16), -1e4)
        >>> h[0, 0, 4, 12] = 0.0  # row 4, column 12
        >>> soft_argmax_2d(h, normalized=False)
        tensor([[[12.,  4.]]])
        >>> normalized_to_pixels(soft_argmax_2d(h), 64)  # the same point in a 64 px input
        tensor([[[49.5000, 17.5000]]])
    """
    return spatial_expectation_2d(spatial_softmax(heatmap_logits, temperature), normalized)


def integral_depth(probabilities: torch.Tensor, depth_maps: torch.Tensor) -> torch.Tensor:
    """The heatmap-weighted mean of per-landmark depth maps:

    ``z[b, (k,) l] = sum_{i, j} p[b, l, i, j] d[b, (k,) l, i, j]``

    (the "2D heatmap + depth map" form of integral regression; the released code's volumetric form
    is a soft-argmax over 64 depth bins per landmark instead, see the module docstring). With ``K``
    hypotheses every hypothesis shares the landmark's heatmap.

    Shape:
        - probabilities: ``(B, L, H, W)``, each channel summing to 1 (:func:`spatial_softmax`).
        - depth_maps: ``(B, L, H, W)``, or ``(B, K, L, H, W)`` for ``K`` hypotheses.
        - output: ``(B, L)``, or ``(B, K, L)``.

    Example:
        >>> p = spatial_softmax(torch.randn(2, 3, 8, 8))
        >>> integral_depth(p, torch.full((2, 3, 8, 8), 1.5)).shape
        torch.Size([2, 3])
        >>> integral_depth(p, torch.zeros(2, 4, 3, 8, 8)).shape
        torch.Size([2, 4, 3])
    """
    check_shape("probabilities", probabilities, (None, None, None, None))
    b, n, h, w = probabilities.shape
    if depth_maps.ndim == 4:
        check_shape("depth_maps", depth_maps, (b, n, h, w))
        return (probabilities * depth_maps).sum(dim=(-2, -1))
    check_shape("depth_maps", depth_maps, (b, None, n, h, w))
    return (probabilities[:, None] * depth_maps).sum(dim=(-2, -1))


def winner_takes_all_l1(hypotheses: torch.Tensor, target: torch.Tensor,
                        root: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Winner-takes-all L1 over root-relative 3D landmarks: each sample's loss is that of its best
    hypothesis, so the others are free to cover other depth orderings.

    ``e[b, k] = sum_{l known} |(X[b, k, l] - X[b, k, r]) - (Y[b, l] - Y[b, r])|_1``,
    ``w[b] = argmin_k e[b, k]``, ``loss = sum_b e[b, w[b]] / (3 * #known)``

    Unknown target landmarks are NaN (the real-data convention of
    ``maskpose.train.objectives._masked_l1``): they neither count nor poison the loss, and a NaN
    root makes the whole sample unknown. Only the winner gets a gradient.

    Args:
        hypotheses: predicted landmarks per hypothesis (``JointHeadOutput.hypotheses``).
        target: ground-truth landmarks, NaN where unknown.
        root: the landmark both are made relative to.

    Returns:
        ``(loss, winner)``: the scalar loss (0 with a gradient path when nothing is known) and the
        winning hypothesis per sample ``(B,)`` (long), ``-1`` for a sample with no known landmark
        (what :func:`hypothesis_cross_entropy` ignores).

    Shape:
        - hypotheses: ``(B, K, L, 3)``. target: ``(B, L, 3)``.

    Example:
        >>> hyp = torch.zeros(1, 2, 3, 3)
        >>> hyp[0, 1, 1, 2] = 1.0
        >>> gt = torch.zeros(1, 3, 3)
        >>> gt[0, 1, 2] = 0.9
        >>> loss, winner = winner_takes_all_l1(hyp, gt)
        >>> round(float(loss), 4), winner
        (0.0111, tensor([1]))
    """
    check_shape("hypotheses", hypotheses, (None, None, None, 3))
    b, _, n, _ = hypotheses.shape
    check_shape("target", target, (b, n, 3))
    if not -n <= root < n:
        raise MaskposeError(f"root must index one of the {n} landmarks, got {root}")
    pred = hypotheses - hypotheses[:, :, root : root + 1]
    gt = target - target[:, root : root + 1]
    known = torch.isfinite(gt).all(-1)  # (B, L)
    diff = torch.where(known[:, None, :, None], pred - torch.nan_to_num(gt)[:, None], torch.zeros_like(pred))
    error = diff.abs().sum(dim=(-2, -1))  # (B, K)
    winner = error.detach().argmin(dim=1)
    best = error.gather(1, winner[:, None])[:, 0]
    loss = best.sum() / (known.sum() * 3).clamp_min(1)
    winner = torch.where(known.any(-1), winner, torch.full_like(winner, -1))
    return loss, winner


def hypothesis_cross_entropy(logits: torch.Tensor, winner: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the hypothesis logits toward the winner of :func:`winner_takes_all_l1`:

    ``-mean_{b: w[b] >= 0} log softmax(s[b])[w[b]]``

    (samples with ``winner == -1``, no known landmark, are left out; none left: 0 with a gradient).

    Shape:
        - logits: ``(B, K)`` (``JointHeadOutput.hypothesis_logits``). winner: ``(B,)`` long.

    Example:
        >>> round(float(hypothesis_cross_entropy(torch.zeros(2, 4), torch.tensor([1, -1]))), 4)
        1.3863
    """
    check_shape("logits", logits, (None, None))
    check_shape("winner", winner, (logits.shape[0],))
    valid = winner >= 0
    if not bool(valid.any()):
        return logits.sum() * 0.0
    return F.cross_entropy(logits[valid], winner[valid])


class SpatialSoftmax(nn.Module):
    """:func:`spatial_softmax` as a module (``temperature`` fixed at construction)."""

    def __init__(self, temperature: float = 1.0):
        super().__init__()
        _check_temperature(temperature)
        self.temperature = temperature

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return spatial_softmax(logits, self.temperature)


class SpatialExpectation2d(nn.Module):
    """:func:`spatial_expectation_2d` as a module."""

    def __init__(self, normalized: bool = True):
        super().__init__()
        self.normalized = normalized

    def forward(self, probabilities: torch.Tensor) -> torch.Tensor:
        return spatial_expectation_2d(probabilities, self.normalized)


class SoftArgmax2d(nn.Module):
    """:func:`soft_argmax_2d` as a module.

    Example:
        >>> SoftArgmax2d()(torch.zeros(2, 5, 16, 16)).shape
        torch.Size([2, 5, 2])
    """

    def __init__(self, temperature: float = 1.0, normalized: bool = True):
        super().__init__()
        _check_temperature(temperature)
        self.temperature, self.normalized = temperature, normalized

    def forward(self, heatmap_logits: torch.Tensor) -> torch.Tensor:
        return soft_argmax_2d(heatmap_logits, self.temperature, self.normalized)


class IntegralDepth(nn.Module):
    """:func:`integral_depth` as a module."""

    def forward(self, probabilities: torch.Tensor, depth_maps: torch.Tensor) -> torch.Tensor:
        return integral_depth(probabilities, depth_maps)


class WinnerTakesAllL1(nn.Module):
    """:func:`winner_takes_all_l1` as a module: ``(hypotheses, target) -> (loss, winner)``."""

    def __init__(self, root: int = 0):
        super().__init__()
        self.root = root

    def forward(self, hypotheses: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return winner_takes_all_l1(hypotheses, target, self.root)


class HypothesisCrossEntropy(nn.Module):
    """:func:`hypothesis_cross_entropy` as a module."""

    def forward(self, logits: torch.Tensor, winner: torch.Tensor) -> torch.Tensor:
        return hypothesis_cross_entropy(logits, winner)


__all__ = [
    "HypothesisCrossEntropy", "IntegralDepth", "SoftArgmax2d", "SpatialExpectation2d", "SpatialSoftmax",
    "WinnerTakesAllL1", "hypothesis_cross_entropy", "integral_depth", "normalized_to_pixels",
    "pixels_to_normalized", "soft_argmax_2d", "spatial_expectation_2d", "spatial_softmax",
    "winner_takes_all_l1",
]

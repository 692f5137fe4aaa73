"""S2D: silhouette to distance map by iterative thinning (erosion), and the binarisation before it.

For a binary silhouette ``S`` (1 on the person, 0 elsewhere) the paper's S2D is

    S_0 = S,   S_{i+1} = ReLU(conv(S_i, N) - m),   D_in = sum_{i=0..l} S_i,

with ``N`` a 3x3 neighbour kernel and ``m = |N| - 1``, so that a pixel survives a step only when all
the pixels of its neighbourhood are on. For binary maps that step is exactly a binary erosion, and we
compute it as one (in-place ANDs of shifted slices of a flat boolean buffer: exact, and on one CPU
thread about 0.2 ms per step at batch 32 x 128 px, against ~7 ms for ``max_pool2d`` and ~40 ms for
``conv2d``). ``D_in(p)`` counts the steps that ``p`` survives, plus one, i.e.
the distance from ``p`` to the nearest off pixel (0 on off pixels, 1 on the mask's rim).

Kernels:
    ``"chessboard"``  the 3x3 square at every step: the chessboard (L-inf) distance, equal to
                      ``scipy.ndimage.distance_transform_cdt(metric="chessboard")``.
    ``"octagonal"``   (default) alternating 4-neighbour (cross) and 8-neighbour (square) steps,
                      starting with the cross: the octagonal distance, much closer to Euclidean.

Border: pixels outside the image count as **on** (as if the mask extended beyond the frame), the
same convention as scipy's ``distance_transform_cdt`` / ``distance_transform_edt``, which measure
the distance to the nearest off pixel *inside* the array. So a mask touching the border is not
eroded from the border side.

Iterations and the no-boundary value: the sum runs over ``l`` steps, ``l = H + W - 1`` unless given,
which exceeds every distance an image can hold, so the maps are exact. The loop stops as soon as
every map of the batch has eroded to nothing (checked every few steps), so the cost follows the
largest distance actually present, not ``l``. A pixel that survives all ``l`` steps gets ``l + 1``
(what the truncated sum gives); in particular a mask with no off pixel at all (the inward map of a
full mask, the outward map of an empty one) is ``l + 1 = H + W`` everywhere: a large, finite
constant, never inf or NaN.

Binarisation and gradients (the choice, and its effect):
    The chain needs binary maps, so masks are binarised at 0.5 with a *hard* forward pass: distances
    are exact integers whatever the prediction's softness. The backward pass is either
    ``"straight_through"`` (d binary / d soft = 1, every pixel passes its gradient to the
    soft mask unchanged, so the loss reaches pixels however saturated the prediction is) or
    ``"soft"`` (the default, as in training: the gradient of ``sigmoid((x - 0.5) / temperature)``: it concentrates the gradient on
    pixels near the 0.5 level set, i.e. on the silhouette's edge, and fades it on saturated pixels;
    smaller temperatures make it sharper).

    The erosion itself is piecewise constant, so S2D has its own backward (a straight-through
    estimator of a distance map): ``dD/dS`` is the identity (the ``S_0`` term of the sum) plus, for
    every pixel ``p`` at distance ``D(p) >= 1``, a unit of ``p``'s gradient delivered to the off
    pixel nearest to ``p``, found by walking down the distance map (steepest descent, ties broken
    towards 4-neighbours, in a fixed order). That is where the mask would have to change for
    ``D(p)`` to change: raising ``S`` there moves the boundary away from ``p`` and raises ``D(p)``
    by about one. The paper's ReLU-conv chain differentiated literally multiplies gradients by up to
    9 per step (9^l overall, inf in float32 at 128 px), and a max-pool's backward sends them along
    one biased diagonal; this estimator is bounded (each pixel's gradient is moved, never
    multiplied) and lands on the silhouette's edge, where a renderer has gradient to give.
"""

from __future__ import annotations

import torch
from torch import nn

from maskpose.typing import Binarization, Kernel

from ._checks import DEFAULT_BINARIZATION, DEFAULT_TEMPERATURE, check_mask, check_options

#: Neighbour offsets (dy, dx) tried when walking down a distance map: self first (so a pixel with no
#: strictly lower neighbour keeps itself), then the 4-neighbours, then the diagonals.
_DESCENT_OFFSETS = ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1))
#: How often (in steps) the erosion loop checks whether anything is left to erode: the check is a
#: reduction plus a host sync, dearer than an erosion step on the CPU and a stall on CUDA.
_CHECK_EVERY = 4


def _any(flags: torch.Tensor) -> bool:
    """``bool(flags.any())`` of a bool tensor, as a uint8 max: the same answer, several times
    faster on the CPU, where torch's bool ``any`` reduces element by element."""
    return flags.numel() > 0 and bool(flags.view(torch.uint8).max())


def default_iterations(height: int, width: int) -> int:
    """Number of thinning steps ``l`` used when none is given: ``H + W - 1``.

    Every distance (chessboard or octagonal) in an ``H x W`` image is below ``H + W``, so the maps
    are exact, and ``l + 1 = H + W`` is the value of pixels with no off pixel in the image.
    """
    return height + width - 1


def binarize(mask: torch.Tensor, binarization: Binarization = DEFAULT_BINARIZATION,
             temperature: float = DEFAULT_TEMPERATURE) -> torch.Tensor:
    r"""Hard 0/1 mask in the forward pass, with a soft or straight-through gradient.

    .. math::

        \hat b = [m \ge 0.5], \qquad
        \frac{\partial \hat b}{\partial m} =
        \begin{cases} \sigma'\big((m - 0.5) / T\big) / T & \text{soft} \\ 1 & \text{straight-through} \end{cases}

    Args:
        mask: a soft silhouette or a binary mask, float in [0, 1].
        binarization: ``"soft"`` (default, gradient of ``sigmoid((mask - 0.5) / temperature)``) or
            ``"straight_through"`` (gradient 1).
        temperature: sharpness ``T`` of the ``"soft"`` gradient; unused otherwise.

    Shape:
        - mask: :math:`(B, 1, H, W)`.
        - output: :math:`(B, 1, H, W)`, ``mask >= 0.5`` as 0/1, same dtype and device as ``mask``.

    Example:
        >>> binarize(torch.tensor([[[[0.2, 0.5, 0.9]]]]))
        tensor([[[[0., 1., 1.]]]])
    """
    check_mask("mask", mask)
    check_options("octagonal", None, binarization, temperature)
    return _binarize(mask, binarization, temperature)


def _binarize(mask: torch.Tensor, binarization: Binarization, temperature: float) -> torch.Tensor:
    hard = (mask >= 0.5).to(mask.dtype)
    if not mask.requires_grad:
        return hard
    surrogate = mask if binarization == "straight_through" else torch.sigmoid((mask - 0.5) / temperature)
    # Value of `hard`, gradient of `surrogate`.
    return surrogate + (hard - surrogate).detach()


def erosion_levels(on: torch.Tensor, kernel: Kernel = "octagonal", iterations: int | None = None,
                   needed: torch.Tensor | None = None, margin: int = 0) -> torch.Tensor:
    """Distance to the nearest off pixel, by iterated binary erosion (no gradient).

    Args:
        on: ``(B, 1, H, W)`` bool, the pixels that are on.
        kernel: ``"chessboard"`` or ``"octagonal"``.
        iterations: thinning steps ``l``; ``None`` for :func:`default_iterations`.
        needed: optional ``(B, 1, H, W)`` bool, the only pixels whose value the caller reads. The
            loop then stops once every *needed* pixel is eroded; other pixels may be left at a
            smaller value than their distance (they are exact wherever they are below every needed
            pixel's distance, which keeps the backward's descent paths exact).
        margin: with ``needed``, keep eroding this many more steps once the needed pixels are done,
            so that pixels within ``margin`` 4-neighbour steps of a needed pixel are exact too
            (a 4-neighbour's level differs by at most one, for both kernels).

    Returns:
        ``(B, 1, H, W)`` int16 levels: ``sum_{i=0..l} S_i``, 0 on off pixels.
    """
    batch, _, height, width = on.shape
    device = on.device
    steps = default_iterations(height, width) if iterations is None else iterations
    # A sample with no off pixel never erodes (outside counts as on): take it out of the loop and
    # give it the value it would reach, l + 1, at the end.
    # (a uint8 min: torch's bool reductions run element by element, about 20x slower on the CPU)
    never_erodes = on.flatten(1).view(torch.uint8).amin(dim=1).bool()
    start = on & ~never_erodes[:, None, None, None]

    # Layout: every map padded with a one-pixel frame, the batch laid end to end in one flat
    # buffer, with a margin at both ends. A neighbour is then a fixed flat offset and every step is
    # a handful of in-place ANDs of contiguous slices (much faster than strided 4-D views).
    row = width + 2
    cells = batch * (height + 2) * row
    lo, hi = row + 1, row + 1 + cells  # the cells; the margins cover every neighbour offset

    def flat(maps: torch.Tensor, frame_value: bool) -> torch.Tensor:
        buffer = torch.full((cells + 2 * lo,), frame_value, dtype=torch.bool, device=device)
        buffer[lo:hi].view(batch, height + 2, row)[:, 1:-1, 1:-1] = maps[:, 0]
        return buffer

    current = flat(start, True)
    following = torch.ones_like(current)
    row_and = torch.ones_like(current)
    frame = flat(torch.zeros_like(start), True)  # frame and margins: outside counts as on
    watched = flat(torch.ones_like(start) if needed is None else needed, False)
    counts = current.to(torch.uint8)  # S_0; frame cells count garbage and are dropped
    left = torch.empty(cells, dtype=torch.bool, device=device)  # watched pixels still on
    overflow = None
    stop_after = None  # set once the watched pixels are all eroded
    for step in range(1, steps + 1):
        if stop_after is None and (step - 1) % _CHECK_EVERY == 0:
            torch.bitwise_and(current[lo:hi], watched[lo:hi], out=left)
            if not _any(left):
                stop_after = step - 1 + margin
        if stop_after is not None and step > stop_after:
            break
        cur, nxt = current, following[lo:hi]
        if kernel == "chessboard" or step % 2 == 0:
            # 3x3 square, separable: AND along rows (over the rows around the cells too), then columns.
            r0, r1 = lo - row, hi + row
            torch.bitwise_and(cur[r0 - 1:r1 - 1], cur[r0:r1], out=row_and[r0:r1])
            row_and[r0:r1] &= cur[r0 + 1:r1 + 1]
            torch.bitwise_and(row_and[lo - row:hi - row], row_and[lo:hi], out=nxt)
            nxt &= row_and[lo + row:hi + row]
        else:
            # 4-neighbour cross (octagonal kernel, odd steps).
            torch.bitwise_and(cur[lo:hi], cur[lo - 1:hi - 1], out=nxt)
            nxt &= cur[lo + 1:hi + 1]
            nxt &= cur[lo - row:hi - row]
            nxt &= cur[lo + row:hi + row]
        following |= frame
        counts += following.view(torch.uint8)
        current, following = following, current
        if step % 250 == 0:  # fold the uint8 counts before they can wrap
            overflow = counts.to(torch.int16) if overflow is None else overflow + counts
            counts.zero_()
    total = counts.to(torch.int16) if overflow is None else overflow + counts
    levels = total[lo:hi].view(batch, height + 2, row)[:, None, 1:-1, 1:-1].contiguous()
    if bool(never_erodes.any()):
        levels[never_erodes] = steps + 1
    return levels


def nearest_off_pixel(levels: torch.Tensor, start: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Walk down the distance map from the given pixels to an off pixel (level 0).

    Each step goes to the strictly lowest of the 8 neighbours (ties to 4-neighbours before
    diagonals, in a fixed order) and stays put when no neighbour is lower. The directions are
    computed once for the whole map; the walks then cost one small gather per step.

    Args:
        levels: ``(B, 1, H, W)`` integer distance levels from :func:`erosion_levels`.
        start: ``(N,)`` int64 flat indices (over the whole batch, ``(b * H + y) * W + x``) of the
            pixels to walk from.

    Returns:
        ``(end, reached)``: ``(N,)`` flat index where each walk ended, and ``(N,)`` bool, True where
        that is an off pixel (False for maps with no off pixel in reach).
    """
    batch, _, height, width = levels.shape
    device = levels.device
    # Same flat padded layout as erosion_levels: neighbours are fixed offsets, slices contiguous.
    # The frame is never lower than anything, so a walk never leaves its map.
    row = width + 2
    plane = (height + 2) * row
    cells = batch * plane
    lo, hi = row + 1, row + 1 + cells
    # Steepest-descent step of every cell, by one running minimum of keys ``level * 16 + code``
    # (code: the index into _DESCENT_OFFSETS): the lowest level wins, and among equal levels the
    # smallest code, i.e. self, then 4-neighbours, then diagonals, the order of the docstring. The
    # frame's key exceeds every cell's, so a walk never leaves its map. int16 keys where they fit.
    top = int(levels.max()) + 1 if levels.numel() else 1
    key_dtype = torch.int16 if (top + 1) * 16 < torch.iinfo(torch.int16).max else torch.int32
    padded = torch.full((cells + 2 * lo,), top * 16, dtype=key_dtype, device=device)
    padded[lo:hi].view(batch, height + 2, row)[:, 1:-1, 1:-1] = levels[:, 0].to(key_dtype) * 16
    flat_offsets = [dy * row + dx for dy, dx in _DESCENT_OFFSETS]
    lowest = padded[lo:hi].clone()
    candidate = torch.empty_like(lowest)
    for code, offset in enumerate(flat_offsets[1:], start=1):
        torch.add(padded[lo + offset:hi + offset], code, out=candidate)
        torch.minimum(lowest, candidate, out=lowest)
    codes = lowest & 15  # the step of every cell (0 = stay)
    step_offsets = torch.tensor(flat_offsets, device=device)
    cell_levels = padded[lo:hi]  # level * 16: zero exactly on the off pixels
    # Start indices (b, y, x) -> cells of the padded layout.
    b = torch.div(start, height * width, rounding_mode="floor")
    y = torch.div(start % (height * width), width, rounding_mode="floor")
    position = b * plane + (y + 1) * row + start % width + 1
    # Each step lowers the level by at least one, so a walk takes at most max-level steps.
    longest = int(cell_levels.index_select(0, position).max()) // 16 if len(start) else 0
    # Most walks are short (mean about 7 steps against the longest 40 in a fit at 128 px): every
    # few steps the walkers that have arrived (level 0, where a walk stays put) leave the set.
    walking = torch.arange(len(start), device=device)
    walkers = position
    for step in range(longest):
        if step % _CHECK_EVERY == _CHECK_EVERY - 1:
            going = torch.nonzero(cell_levels.index_select(0, walkers)).squeeze(1)
            if len(going) < len(walkers):
                position = position.index_copy(0, walking, walkers)
                walking, walkers = walking.index_select(0, going), walkers.index_select(0, going)
            if not len(walkers):
                break
        # gathers of the walkers' cells only: a jump table of the whole map costs more than
        # all the steps of the walks (int64 conversion and gather of every cell)
        walkers = walkers + step_offsets.index_select(0, codes.index_select(0, walkers).long())
    position = position.index_copy(0, walking, walkers)
    reached = cell_levels.index_select(0, position) == 0
    b = torch.div(position, plane, rounding_mode="floor")
    y = torch.div(position % plane, row, rounding_mode="floor") - 1
    x = position % row - 1
    return (b * height + y) * width + x, reached


class _DistanceFromMask(torch.autograd.Function):
    """``D = sum_i S_i`` of a 0/1 float mask, with the nearest-boundary straight-through backward."""

    @staticmethod
    def forward(ctx, mask: torch.Tensor, kernel: Kernel, iterations: int | None,
                needed: torch.Tensor | None, margin: int) -> torch.Tensor:  # noqa: D102
        levels = erosion_levels(mask > 0.5, kernel, iterations, needed, margin)
        ctx.save_for_backward(levels)
        return levels.to(mask.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_distance: torch.Tensor):  # noqa: D102
        (levels,) = ctx.saved_tensors
        grad = grad_distance.flatten()
        # Only pixels with a gradient and an off pixel to reach have something to move.
        start = torch.nonzero((grad != 0) & (levels.flatten() >= 1)).flatten()
        end, reached = nearest_off_pixel(levels, start)
        # Identity (the S_0 term) plus each pixel's gradient moved to its nearest off pixel. A 1-D
        # index_add_ is deterministic on the CPU, and on CUDA under use_deterministic_algorithms.
        grad_mask = grad.clone().index_add_(0, end[reached], grad[start[reached]])
        return grad_mask.view_as(grad_distance), None, None, None, None


def _distance_of_binary(binary: torch.Tensor, kernel: Kernel, iterations: int | None,
                        needed: torch.Tensor | None = None, margin: int = 0) -> torch.Tensor:
    """S2D of an already binarised ``(B, 1, H, W)`` 0/1 float map (with gradient if it has one).

    ``needed``/``margin`` as in :func:`erosion_levels`; the backward only walks from pixels with a
    gradient, whose levels must then be exact, i.e. the caller's gradient must vanish outside
    ``needed`` dilated by ``margin``.
    """
    if binary.requires_grad:
        return _DistanceFromMask.apply(binary, kernel, iterations, needed, margin)
    return erosion_levels(binary > 0.5, kernel, iterations, needed, margin).to(binary.dtype)


def inward_distance_map(silhouette: torch.Tensor, kernel: Kernel = "octagonal", iterations: int | None = None,
                        binarization: Binarization = DEFAULT_BINARIZATION, temperature: float = DEFAULT_TEMPERATURE) -> torch.Tensor:
    r"""S2D: distance from every mask pixel to the nearest pixel outside the mask.

    .. math::

        S_0 = S, \quad S_{i+1} = \operatorname{ReLU}(\operatorname{conv}(S_i, N) - m), \quad
        D_{in} = \sum_{i=0}^{l} S_i

    Args:
        silhouette: float in [0, 1], binarised at 0.5 (see module docstring).
        kernel: ``"octagonal"`` (default, close to Euclidean) or ``"chessboard"`` (exact L-inf).
        iterations: thinning steps ``l``; ``None`` for ``H + W - 1`` (exact maps).
        binarization: ``"soft"`` (default) or ``"straight_through"`` gradient through the 0.5 threshold.
        temperature: sharpness of the ``"soft"`` gradient.

    Shape:
        - silhouette: :math:`(B, 1, H, W)`.
        - output: :math:`(B, 1, H, W)`, same dtype and device: 0 off the mask, 1 on its rim,
          ``min(distance, l + 1)`` inside; ``H + W`` everywhere for a full mask (default ``l``).
          Outside the image counts as on the mask.

    Example:
        >>> m = torch.zeros(1, 1, 5, 5); m[..., 1:4, 1:4] = 1
        >>> inward_distance_map(m)[0, 0]
        tensor([[0., 0., 0., 0., 0.],
                [0., 1., 1., 1., 0.],
                [0., 1., 2., 1., 0.],
                [0., 1., 1., 1., 0.],
                [0., 0., 0., 0., 0.]])
    """
    check_mask("silhouette", silhouette)
    check_options(kernel, iterations, binarization, temperature)
    return _distance_of_binary(_binarize(silhouette, binarization, temperature), kernel, iterations)


def outward_distance_map(silhouette: torch.Tensor, kernel: Kernel = "octagonal", iterations: int | None = None,
                         binarization: Binarization = DEFAULT_BINARIZATION, temperature: float = DEFAULT_TEMPERATURE) -> torch.Tensor:
    r"""``D_out = S2D(1 - S)``: distance from every pixel outside the mask to the nearest mask pixel.

    .. math::

        D_{out} = S2D(1 - S)

    Args:
        silhouette: float in [0, 1], binarised at 0.5.
        kernel, iterations, binarization, temperature: as in :func:`inward_distance_map`.

    Shape:
        - silhouette: :math:`(B, 1, H, W)`.
        - output: :math:`(B, 1, H, W)`: 0 on the mask, 1 next to it, growing outward. An empty mask
          (nothing to be near) is ``l + 1 = H + W`` everywhere with the default ``l``: large and finite.

    Example:
        >>> m = torch.zeros(1, 1, 1, 5); m[..., 0] = 1
        >>> outward_distance_map(m)
        tensor([[[[0., 1., 2., 3., 4.]]]])
    """
    check_mask("silhouette", silhouette)
    check_options(kernel, iterations, binarization, temperature)
    binary = _binarize(silhouette, binarization, temperature)
    return _distance_of_binary(1.0 - binary, kernel, iterations)


class _DistanceMapModule(nn.Module):
    def __init__(self, kernel: Kernel = "octagonal", iterations: int | None = None,
                 binarization: Binarization = DEFAULT_BINARIZATION, temperature: float = DEFAULT_TEMPERATURE) -> None:
        super().__init__()
        check_options(kernel, iterations, binarization, temperature)
        self.kernel = kernel
        self.iterations = iterations
        self.binarization = binarization
        self.temperature = temperature

    def extra_repr(self) -> str:
        return (f"kernel={self.kernel!r}, iterations={self.iterations}, "
                f"binarization={self.binarization!r}, temperature={self.temperature}")


class Binarize(nn.Module):
    r"""Module form of :func:`binarize`: hard 0/1 forward, soft or straight-through gradient.

    .. math::

        \hat b = [m \ge 0.5]

    Args:
        binarization: ``"soft"`` (default) or ``"straight_through"``.
        temperature: sharpness of the ``"soft"`` gradient.

    Shape:
        - mask: :math:`(B, 1, H, W)`.
        - output: :math:`(B, 1, H, W)`.

    Example:
        >>> Binarize()(torch.tensor([[[[0.2, 0.5, 0.9]]]]))
        tensor([[[[0., 1., 1.]]]])
    """

    def __init__(self, binarization: Binarization = DEFAULT_BINARIZATION,
                 temperature: float = DEFAULT_TEMPERATURE) -> None:
        super().__init__()
        check_options("octagonal", None, binarization, temperature)
        self.binarization = binarization
        self.temperature = temperature

    def forward(self, mask: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return binarize(mask, self.binarization, self.temperature)

    def extra_repr(self) -> str:
        return f"binarization={self.binarization!r}, temperature={self.temperature}"


class InwardDistanceMap(_DistanceMapModule):
    r"""Module form of :func:`inward_distance_map` (S2D).

    .. math::

        D_{in} = \sum_{i=0}^{l} S_i

    Args:
        kernel, iterations, binarization, temperature: as in :func:`inward_distance_map`.

    Shape:
        - silhouette: :math:`(B, 1, H, W)`.
        - output: :math:`(B, 1, H, W)`.

    Example:
        >>> m = torch.zeros(1, 1, 1, 5); m[..., 1:] = 1
        >>> InwardDistanceMap()(m)
        tensor([[[[0., 1., 2., 3., 4.]]]])
    """

    def forward(self, silhouette: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return inward_distance_map(silhouette, self.kernel, self.iterations, self.binarization, self.temperature)


class OutwardDistanceMap(_DistanceMapModule):
    r"""Module form of :func:`outward_distance_map`.

    .. math::

        D_{out} = S2D(1 - S)

    Args:
        kernel, iterations, binarization, temperature: as in :func:`inward_distance_map`.

    Shape:
        - silhouette: :math:`(B, 1, H, W)`.
        - output: :math:`(B, 1, H, W)`.

    Example:
        >>> m = torch.zeros(1, 1, 1, 5); m[..., 0] = 1
        >>> OutwardDistanceMap()(m)
        tensor([[[[0., 1., 2., 3., 4.]]]])
    """

    def forward(self, silhouette: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return outward_distance_map(silhouette, self.kernel, self.iterations, self.binarization, self.temperature)

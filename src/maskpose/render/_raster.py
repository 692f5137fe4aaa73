"""Shared machinery of the rasterisers: enumerate the pixels of many bounding boxes at once and
keep, per pixel, the item with the largest score (a packed int64 key and ``scatter_reduce``).

Everything here runs without gradient; the renderers recompute the winners with gradient.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

#: Upper bound on (item, pixel) candidates processed at once; bounds memory at about
#: ``MAX_FRAGMENTS * 100`` bytes whatever the batch size and resolution.
MAX_FRAGMENTS = 1 << 22

_LOW = (1 << 32) - 1


def pixel_boxes(lo: torch.Tensor, hi: torch.Tensor, height: int, width: int):
    """Integer pixel boxes ``[x0, x1] x [y0, y1]`` of the pixel *centres* inside float boxes.

    Args:
        lo, hi: ``(..., 2)`` float box corners ``(x, y)`` in pixels.

    Returns:
        ``x0, y0, x1, y1`` int64 tensors clipped to the image, and ``valid`` (non-empty boxes).
    """
    big = float(max(height, width) + 2)
    x0 = torch.ceil(lo[..., 0].clamp(-1.0, big)).long().clamp_min(0)
    y0 = torch.ceil(lo[..., 1].clamp(-1.0, big)).long().clamp_min(0)
    x1 = torch.floor(hi[..., 0].clamp(-1.0, big)).long().clamp_max(width - 1)
    y1 = torch.floor(hi[..., 1].clamp(-1.0, big)).long().clamp_max(height - 1)
    valid = (x1 >= x0) & (y1 >= y0)
    return x0, y0, x1, y1, valid


def enumerate_boxes(
    x0: torch.Tensor, y0: torch.Tensor, x1: torch.Tensor, y1: torch.Tensor,
    max_fragments: int = MAX_FRAGMENTS,
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Yield chunks ``(item, px, py)`` listing every pixel of every (non-empty) box.

    Args:
        x0, y0, x1, y1: ``(N,)`` int64 inclusive boxes (``x1 >= x0``, ``y1 >= y0``).

    Yields:
        ``item (n,)`` indices into the ``N`` boxes, and the pixel ``px, py (n,)`` int64; chunks hold
        at most ``max_fragments`` candidates unless one box alone is larger.
    """
    widths = x1 - x0 + 1
    counts = widths * (y1 - y0 + 1)
    n = counts.shape[0]
    if n == 0:
        return
    ends = torch.cumsum(counts, 0)
    total = int(ends[-1])
    if total <= max_fragments:
        bounds = [(0, n)]
    else:
        # Split the items where the running count crosses multiples of max_fragments.
        cuts = torch.searchsorted(ends, torch.arange(max_fragments, total, max_fragments, device=ends.device),
                                  right=True).tolist()
        edges = sorted(set([0] + [c for c in cuts if 0 < c < n] + [n]))
        bounds = list(zip(edges[:-1], edges[1:]))
    for start, stop in bounds:
        c = counts[start:stop]
        m = int(c.sum())
        if m == 0:
            continue
        local_item = torch.repeat_interleave(torch.arange(stop - start, device=c.device), c, output_size=m)
        first = torch.cumsum(c, 0) - c
        offset = torch.arange(m, device=c.device) - first.index_select(0, local_item)
        item = local_item + start
        w = widths.index_select(0, item)
        py = torch.div(offset, w, rounding_mode="floor")
        px = offset - py * w
        yield item, px + x0.index_select(0, item), py + y0.index_select(0, item)


def pack_key(score: torch.Tensor, item: torch.Tensor) -> torch.Tensor:
    """Pack a non-negative float32 score and an item index (< 2**32) into an int64 key whose
    order is the score's, ties going to the *smaller* item index."""
    bits = score.to(torch.float32).contiguous().view(torch.int32).to(torch.int64)
    return (bits << 32) | (_LOW - item)


def unpack_item(key: torch.Tensor) -> torch.Tensor:
    """Item index of a packed key; ``-1`` where ``key < 0`` (no item)."""
    item = _LOW - (key & _LOW)
    return torch.where(key >= 0, item, torch.full_like(item, -1))


def unpack_score(key: torch.Tensor) -> torch.Tensor:
    """Float32 score of a packed key (meaningless where ``key < 0``)."""
    return (key >> 32).to(torch.int32).view(torch.float32)


def edge_coefficients(a: torch.Tensor, b: torch.Tensor):
    """Edge function ``E(p) = A x + B y + C`` of the directed edge ``a -> b`` (``(..., 2)`` points).

    ``E`` is computed so that the reversed edge gives *exactly* ``-E``: two faces sharing an edge
    never both miss a pixel centre on it (no cracks) and both include it when it lies exactly on it.
    In pixel coordinates (y down) ``E > 0`` on the right of ``a -> b`` as seen on the screen.
    """
    A = a[..., 1] - b[..., 1]
    B = b[..., 0] - a[..., 0]
    C = a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]
    return A, B, C


def evaluate_edge(A, B, C, x, y):
    """``A x + B y + C`` evaluated in a fixed order (exactly antisymmetric, see above)."""
    return (A * x + B * y) + C

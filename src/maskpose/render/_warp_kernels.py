"""Optional ``warp-lang`` kernels for the no-gradient searches of the rasterisers.

They evaluate *exactly* the float expressions of the PyTorch reference (same coefficient tables,
built by the same torch code; same operation order; FMA contraction disabled with the module
option ``fuse_fp=False``), so the winners are bit-identical to the torch backend.

Each search keeps, per pixel, the candidate with the best score and, among equal scores, the
candidate the torch reference's packed key prefers (:func:`maskpose.render._raster.pack_key`: the
smallest index where the key is maximised, the largest where it is minimised). Warp has no
float-to-bits cast, so instead of a packed 64-bit key every search runs twice over its candidates:
pass 0 takes the best score per pixel with an atomic max/min on floats, pass 1 takes the smallest
(or largest) index among the candidates whose score equals it with an atomic min (max) on integers. Both reductions
are order-independent: the result does not depend on thread scheduling (CPU or CUDA).

One Warp thread handles one item (a (batch, face) pair or a contour edge) and loops over the
pixel centres of its bounding box. Warp runs CPU kernels on one thread.

Nothing here is imported unless the Warp backend is selected (see :func:`resolve_backend`).
Kernels compile on first use (a few seconds) into Warp's kernel cache (``~/.cache/warp``, or
``WARP_CACHE_PATH``); no network is needed.
"""

from __future__ import annotations

import os
import threading
import warnings
from typing import Any

import torch

from maskpose.errors import MaskposeError
from maskpose.typing import RENDER_BACKENDS

BACKENDS = RENDER_BACKENDS

#: int32 sentinel "no winner" of the index searches.
NO_INDEX = 2**31 - 1

_state: dict = {}
_lock = threading.Lock()


def _load():
    """Import and initialise Warp once, quietly; returns the module or ``None``."""
    with _lock:
        if "wp" in _state:
            return _state["wp"]
        wp = None
        if os.environ.get("MASKPOSE_NO_WARP", "") not in ("", "0"):
            _state["wp"] = None
            return None
        try:
            import warp

            if hasattr(warp.config, "quiet"):  # older Warp
                warp.config.quiet = True
            # Warp >= 1.10 prints its banner and module loads at log level INFO: raise the level
            # while initialising (a no-op when another library, e.g. Anny, initialised it first).
            level = getattr(warp.config, "log_level", None)
            try:
                if level is not None:
                    warp.config.log_level = max(level, warp.LOG_WARNING)
                warp.init()
            finally:
                if level is not None:
                    warp.config.log_level = level
            wp = warp
        except Exception as exc:  # pragma: no cover - depends on the installation
            _state["error"] = exc
            wp = None
        _state["wp"] = wp
        return wp


def warp_available() -> bool:
    """Whether ``warp-lang`` imports and initialises here."""
    return _load() is not None


def supports_device(device: torch.device) -> bool:
    """Whether the Warp backend can run on this torch device (CPU, or CUDA when Warp sees it)."""
    wp = _load()
    if wp is None:
        return False
    device = torch.device(device)
    if device.type == "cpu":
        return True
    if device.type == "cuda":
        try:
            return wp.is_cuda_available()
        except Exception:  # pragma: no cover
            return False
    return False


def resolve_backend(backend: str, device: torch.device) -> str:
    """``"torch"`` or ``"warp"`` for ``backend`` in :data:`BACKENDS` on ``device``.

    ``"auto"`` picks Warp when it is importable and supports the device, else torch; ``"warp"``
    raises :class:`~maskpose.errors.MaskposeError` when Warp cannot run there.
    """
    if backend == "torch":
        return "torch"
    if backend not in BACKENDS:
        raise MaskposeError(f"backend must be one of {BACKENDS}, got {backend!r}")
    ok = supports_device(device) and _ready(torch.device(device))
    if backend == "warp" and not ok:
        reason = _state.get("error")
        raise MaskposeError(f"the warp backend is not available on {device}" + (f": {reason}" if reason else ""))
    return "warp" if ok else "torch"


def _ready(device: torch.device) -> bool:
    """Kernels defined and compiled (or loaded from the cache) for ``device``; on failure (e.g. an
    unwritable kernel cache) warn once and report ``False`` so that ``"auto"`` falls back to torch."""
    failed = _state.setdefault("failed", set())
    key = str(device)
    if key in failed:
        return False
    if _kernels() is None:
        return False
    wp = _load()
    try:
        _ensure_loaded(wp, wp.device_from_torch(device))
    except Exception as exc:  # pragma: no cover - depends on the installation
        _state["error"] = exc
        failed.add(key)
        warnings.warn(f"maskpose: warp kernels failed to load on {device} ({exc}); using the torch backend",
                      RuntimeWarning, stacklevel=3)
        return False
    return True


def _kernels():
    """Define the kernels once (after Warp is initialised); ``None`` when Warp is unavailable."""
    if "kernels" in _state:
        return _state["kernels"]
    wp = _load()
    if wp is None:
        _state["kernels"] = None
        return None
    with _lock:
        if "kernels" not in _state:
            try:
                _state["kernels"] = _define(wp)
            except Exception as exc:  # pragma: no cover - depends on the installation
                _state["error"] = exc
                warnings.warn(f"maskpose: warp kernels unavailable ({exc}); using the torch backend",
                              RuntimeWarning, stacklevel=3)
                _state["kernels"] = None
    return _state["kernels"]


_MODULE = "maskpose_render_search"


def _ensure_loaded(wp, wp_device) -> None:
    """Compile (or load from the kernel cache) the kernels for a device, without Warp's
    "Module ... load on device" message."""
    loaded = _state.setdefault("loaded", set())
    key = str(wp_device)
    if key in loaded:
        return
    with _lock:
        if key in loaded:
            return
        level = getattr(wp.config, "log_level", None)
        try:
            if level is not None:
                wp.config.log_level = max(level, wp.LOG_WARNING)
            wp.load_module(_MODULE, device=wp_device)
        finally:
            if level is not None:
                wp.config.log_level = level
        loaded.add(key)


def _define(wp):
    module = _MODULE
    wp.set_module_options({"fuse_fp": False, "fast_math": False, "enable_backward": False}, module=module)

    @wp.kernel(module=module)
    def zbuffer_search(
        table: wp.array2d(dtype=wp.float32),  # (N, 12): 3 signed edges (A, B, C), 1/z plane (A, B, C)
        box: wp.array2d(dtype=wp.int32),  # (N, 4): x0, y0, x1, y1 (inclusive, non-empty)
        base: wp.array(dtype=wp.int32),  # (N,): first pixel of the item's image
        index: wp.array(dtype=wp.int32),  # (N,): face index (the tie-break key)
        width: wp.int32,
        which: wp.int32,  # see SERIAL / BEST / INDEX
        best: wp.array(dtype=wp.float32),  # largest 1/z
        winner: wp.array(dtype=wp.int32),  # smallest face index at it
    ):
        n = wp.tid()
        a0 = table[n, 0]
        b0 = table[n, 1]
        c0 = table[n, 2]
        a1 = table[n, 3]
        b1 = table[n, 4]
        c1 = table[n, 5]
        a2 = table[n, 6]
        b2 = table[n, 7]
        c2 = table[n, 8]
        pa = table[n, 9]
        pb = table[n, 10]
        pc = table[n, 11]
        x0 = box[n, 0]
        y0 = box[n, 1]
        x1 = box[n, 2]
        y1 = box[n, 3]
        row0 = base[n]
        f = index[n]
        for py in range(y0, y1 + 1):
            y = wp.float32(py)
            row = row0 + py * width
            for px in range(x0, x1 + 1):
                x = wp.float32(px)
                e0 = (a0 * x + b0 * y) + c0
                e1 = (a1 * x + b1 * y) + c1
                e2 = (a2 * x + b2 * y) + c2
                if e0 >= 0.0 and e1 >= 0.0 and e2 >= 0.0:
                    inv_z = wp.max((pa * x + pb * y) + pc, 0.0)
                    p = row + px
                    if which == 0:
                        old = best[p]
                        if inv_z > old or (inv_z == old and f < winner[p]):
                            best[p] = inv_z
                            winner[p] = f
                    elif which == 1:
                        wp.atomic_max(best, p, inv_z)
                    elif inv_z == best[p]:
                        wp.atomic_min(winner, p, f)

    @wp.kernel(module=module)
    def inside_search(
        table: wp.array2d(dtype=Any),  # (N, 12): per edge A, B, C (positive inside), 1/length or 0
        box: wp.array2d(dtype=wp.int32),
        base: wp.array(dtype=wp.int32),
        index: wp.array(dtype=wp.int32),
        width: wp.int32,
        band: Any,
        which: wp.int32,
        best: wp.array(dtype=wp.float32),  # largest clamped score
        winner: wp.array(dtype=wp.int32),  # smallest face index at it
    ):
        n = wp.tid()
        a0 = table[n, 0]
        b0 = table[n, 1]
        c0 = table[n, 2]
        i0 = table[n, 3]
        a1 = table[n, 4]
        b1 = table[n, 5]
        c1 = table[n, 6]
        i1 = table[n, 7]
        a2 = table[n, 8]
        b2 = table[n, 9]
        c2 = table[n, 10]
        i2 = table[n, 11]
        x0 = box[n, 0]
        y0 = box[n, 1]
        x1 = box[n, 2]
        y1 = box[n, 3]
        row0 = base[n]
        f = index[n]
        zero = band - band
        for py in range(y0, y1 + 1):
            y = type(band)(py)
            row = row0 + py * width
            for px in range(x0, x1 + 1):
                x = type(band)(px)
                e0 = (a0 * x + b0 * y) + c0
                e1 = (a1 * x + b1 * y) + c1
                e2 = (a2 * x + b2 * y) + c2
                if e0 >= zero and e1 >= zero and e2 >= zero:
                    score = band
                    if i0 > zero:
                        score = wp.min(score, e0 * i0)
                    if i1 > zero:
                        score = wp.min(score, e1 * i1)
                    if i2 > zero:
                        score = wp.min(score, e2 * i2)
                    s = wp.float32(wp.min(wp.max(score, zero), band))
                    p = row + px
                    if which == 0:
                        old = best[p]
                        if s > old or (s == old and f < winner[p]):
                            best[p] = s
                            winner[p] = f
                    elif which == 1:
                        wp.atomic_max(best, p, s)
                    elif s == best[p]:
                        wp.atomic_min(winner, p, f)

    for dtype in (wp.float32, wp.float64):
        wp.overload(inside_search, {"table": wp.array2d(dtype=dtype), "band": dtype})

    @wp.kernel(module=module)
    def outside_search(
        seg: wp.array2d(dtype=wp.float32),  # (E, 5): ax, ay, dx, dy, 1/|d|^2
        box: wp.array2d(dtype=wp.int32),  # (N, 4)
        base: wp.array(dtype=wp.int32),  # (N,)
        index: wp.array(dtype=wp.int32),  # (N,): row of seg (the tie-break key)
        covered: wp.array(dtype=wp.float32),  # (pixels,) >= 0 where a front face covers the centre
        width: wp.int32,
        band2: wp.float32,
        which: wp.int32,
        best: wp.array(dtype=wp.float32),  # least squared distance
        winner: wp.array(dtype=wp.int32),  # largest edge index at it
    ):
        n = wp.tid()
        e = index[n]
        ax = seg[e, 0]
        ay = seg[e, 1]
        dx = seg[e, 2]
        dy = seg[e, 3]
        inv = seg[e, 4]
        x0 = box[n, 0]
        y0 = box[n, 1]
        x1 = box[n, 2]
        y1 = box[n, 3]
        row0 = base[n]
        for py in range(y0, y1 + 1):
            qy = wp.float32(py) - ay
            row = row0 + py * width
            for px in range(x0, x1 + 1):
                p = row + px
                if covered[p] < 0.0:
                    qx = wp.float32(px) - ax
                    u = wp.min(wp.max((qx * dx + qy * dy) * inv, 0.0), 1.0)
                    rx = qx - u * dx
                    ry = qy - u * dy
                    d2 = rx * rx + ry * ry
                    if d2 < band2:
                        if which == 0:
                            old = best[p]
                            if d2 < old or (d2 == old and e > winner[p]):
                                best[p] = d2
                                winner[p] = e
                        elif which == 1:
                            wp.atomic_min(best, p, d2)
                        elif d2 == best[p]:
                            wp.atomic_max(winner, p, e)

    return {"zbuffer": zbuffer_search, "inside": inside_search, "outside": outside_search}


# ------------------------------------------------------------------------------------ launchers
def _as_wp(wp, tensor: torch.Tensor, dtype):
    return wp.from_torch(tensor.contiguous(), dtype=dtype)


def _boxes(x0, y0, x1, y1) -> torch.Tensor:
    return torch.stack((x0, y0, x1, y1), -1).to(torch.int32).contiguous()


def _check_pixels(num_pixels: int) -> None:
    if num_pixels >= NO_INDEX:
        raise MaskposeError(f"the warp backend handles fewer than 2**31 pixels per batch, got {num_pixels}")


#: Force the two-pass (atomic) search on the CPU as well (tests use it to check the CUDA logic).
TWO_PASS_ON_CPU = False

#: ``which`` values of the kernels: one serial pass (CPU: Warp runs CPU kernels on one thread, its
#: CPU "atomics" are plain read-modify-writes), or the two passes of the parallel search.
SERIAL, BEST, INDEX = 0, 1, 2


def _search(kernel, device, num_pixels: int, items: int, inputs: list, init: float,
            no_index: int = NO_INDEX) -> tuple[torch.Tensor, torch.Tensor]:
    """Run a search; returns ``(best (P,) float32, winner (P,) int32)``, with ``init`` and
    ``no_index`` where no candidate reached the pixel."""
    wp = _load()
    best = torch.full((num_pixels,), init, dtype=torch.float32, device=device)
    winner = torch.full((num_pixels,), no_index, dtype=torch.int32, device=device)
    if items == 0:
        return best, winner
    wp_best = _as_wp(wp, best, wp.float32)
    wp_winner = _as_wp(wp, winner, wp.int32)
    wp_device = wp.device_from_torch(device)
    _ensure_loaded(wp, wp_device)
    passes = (SERIAL,) if device.type == "cpu" and not TWO_PASS_ON_CPU else (BEST, INDEX)
    for which in passes:
        wp.launch(kernel, dim=items, inputs=[*inputs, which, wp_best, wp_winner], device=wp_device)
    if device.type == "cuda":
        wp.synchronize_device(wp_device)
    return best, winner


def _items(wp, x0, y0, x1, y1, pixel_base, index) -> list:
    return [_as_wp(wp, _boxes(x0, y0, x1, y1), wp.int32),
            _as_wp(wp, pixel_base.to(torch.int32), wp.int32),
            _as_wp(wp, index.to(torch.int32), wp.int32)]


def zbuffer_search(table, x0, y0, x1, y1, pixel_base, face, num_pixels: int, width: int) -> torch.Tensor:
    """Per pixel: the largest ``1/z`` of the covering items and the smallest face index at it.

    Args: the torch reference's ``table (N, 12)`` float32, item boxes, ``pixel_base (N,)`` (first
    pixel of the item's image), ``face (N,)`` face indices.

    Returns:
        ``face_index (P,)`` int64, ``-1`` where nothing covers the pixel centre.
    """
    wp = _load()
    _check_pixels(num_pixels)
    items = table.shape[0]
    inputs = [_as_wp(wp, table.to(torch.float32), wp.float32),
              *_items(wp, x0, y0, x1, y1, pixel_base, face), int(width)] if items else []
    _, winner = _search(_kernels()["zbuffer"], table.device, num_pixels, items, inputs, -1.0)
    out = winner.long()
    return out.masked_fill_(winner == NO_INDEX, -1)


def inside_search(table, x0, y0, x1, y1, pixel_base, face, num_pixels: int, width: int, band: float):
    """Per pixel: the best (largest) clamped contour score of the covering front faces, and the
    smallest face index at it. ``table (N, 12)`` is float32 or float64 (evaluated in its dtype).

    Returns:
        ``score (P,)`` float32 in ``[0, band]`` (``-1`` where no front face covers the pixel
        centre) and ``face (P,)`` int32 (meaningless where uncovered).
    """
    wp = _load()
    _check_pixels(num_pixels)
    items = table.shape[0]
    if table.dtype not in (torch.float32, torch.float64):
        table = table.float()
    wp_dtype = wp.float64 if table.dtype == torch.float64 else wp.float32
    inputs = [_as_wp(wp, table, wp_dtype), *_items(wp, x0, y0, x1, y1, pixel_base, face),
              int(width), wp_dtype(band)] if items else []
    return _search(_kernels()["inside"], table.device, num_pixels, items, inputs, -1.0)


def outside_search(seg, item_edge, x0, y0, x1, y1, pixel_base, score_in, num_pixels: int, width: int,
                   band2: float) -> torch.Tensor:
    """Per pixel with ``score_in < 0`` (uncovered, see :func:`inside_search`): the least squared
    distance ``< band2`` (compared in float32) to a contour edge segment, and the *largest* edge
    index (row of ``seg``) at it: the torch reference's tie rule (its packed key
    ``(d2, 2**32 - 1 - e)`` is minimised).

    Returns:
        ``edge (P,)`` int32, ``-1`` where no edge is within the band (or the pixel is covered).
    """
    wp = _load()
    _check_pixels(num_pixels)
    items = item_edge.shape[0]
    inputs = [_as_wp(wp, seg.to(torch.float32), wp.float32),
              *_items(wp, x0, y0, x1, y1, pixel_base, item_edge),
              _as_wp(wp, score_in, wp.float32), int(width), wp.float32(band2)] if items else []
    _, winner = _search(_kernels()["outside"], seg.device, num_pixels, items, inputs, float("inf"), -1)
    return winner

"""``maskpose bench render``: M2S silhouette timings against Anny's own forward+backward, measured
in the same run on the same batch (so the ratio is meaningful on a shared, noisy machine)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch

from maskpose.body.anny_body import AnnyBody
from maskpose.body.sampler import PoseSampler
from maskpose.conventions import default_focal
from maskpose.render._warp_kernels import resolve_backend
from maskpose.render.camera import fit_translation, intrinsics
from maskpose.render.silhouette import SilhouetteRenderer


def _median_ms(fn: Callable[[], None], repeats: int, device: str) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if str(device).startswith("cuda"):
            torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def bench_render(
    batch: int = 16, res: int = 128, repeats: int = 15, warmup: int = 3, mode: str = "contour",
    seed: int = 0, device: str = "cpu", backend: str = "auto",
) -> dict:
    """Median milliseconds of the silhouette renderer (forward, forward+backward) and of Anny's
    forward+backward on the same batch (decimated mesh). ``backend`` is the renderer's winner-search
    backend (``"auto"``: Warp when available, see :func:`maskpose.render.silhouette.render_silhouette`);
    the one used is reported as ``"backend"``.

    Returns:
        ``{"render_fwd_ms", "render_fwd_bwd_ms", "anny_fwd_bwd_ms", "ratio", ...}`` with
        ``ratio = render_fwd_bwd_ms / anny_fwd_bwd_ms``.
    """
    generator = torch.Generator().manual_seed(seed)
    body = AnnyBody(device=device)
    pose, phenotypes = PoseSampler(seed=seed).sample(batch)
    pose, phenotypes = pose.to(device), phenotypes.to(device)
    K = intrinsics(default_focal(res), res, batch=batch, device=device)
    with torch.no_grad():
        translation = fit_translation(body(pose, phenotypes).vertices, K, res)
        vertices = body(pose, phenotypes, translation).vertices
    renderer = SilhouetteRenderer(body.faces, res, mode=mode, backend=backend).to(device)
    used = resolve_backend(backend, vertices.device) if mode == "contour" else "torch"
    weights = torch.rand(batch, 1, res, res, generator=generator).to(device)

    def render_fwd() -> None:
        with torch.no_grad():
            renderer(vertices, K)

    def render_fwd_bwd() -> None:
        v = vertices.detach().requires_grad_(True)
        (renderer(v, K) * weights).sum().backward()

    def anny_fwd_bwd() -> None:
        p = pose.detach().requires_grad_(True)
        out = body(p, phenotypes, translation)
        out.vertices.sum().backward()

    # Interleave the measurements so that load from other processes hits all three alike.
    results = {"render_fwd_ms": [], "render_fwd_bwd_ms": [], "anny_fwd_bwd_ms": []}
    fns = {"render_fwd_ms": render_fwd, "render_fwd_bwd_ms": render_fwd_bwd, "anny_fwd_bwd_ms": anny_fwd_bwd}
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    rounds = 3
    for _ in range(rounds):
        for key, fn in fns.items():
            results[key].append(_median_ms(fn, max(1, repeats // rounds), device))
    out = {key: round(statistics.median(values), 3) for key, values in results.items()}
    out["ratio"] = round(out["render_fwd_bwd_ms"] / out["anny_fwd_bwd_ms"], 3)
    out.update(batch=batch, res=res, mode=mode, faces=int(body.faces.shape[0]),
               vertices=int(body.num_vertices), threads=torch.get_num_threads(), device=str(device),
               backend=used)
    return out

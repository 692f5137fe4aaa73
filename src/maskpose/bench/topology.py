"""``maskpose bench topology``: speed of L_S + L_T against scipy's distance transform.

Times, on one batch of predicted (soft) and target (binary) human-shaped silhouettes:

- ``topology_fwd_bwd_ms``: ``L_S + L_T`` forward and backward, everything included (binarisation,
  every S2D and D2T of prediction and target, the losses, the gradient to the soft prediction);
- ``scipy_edt_ms``: ``scipy.ndimage.distance_transform_edt`` in a CPU loop over the batch, computing
  every distance map the loss uses: inward and outward maps of both silhouettes and of both
  skeletons (8 maps per sample);
- ``ratio`` = first / second (goal <= 1, must be <= 3);
- for information, ``full_maps_ms``: our S2D computing those same 8 full maps per sample (no
  gradient). The loss itself only erodes as far as the pixels it reads (see
  :mod:`maskpose.topology.loss`), which is why it can be cheaper than the full maps.

Each timing is the median of ``repeats`` runs after ``warmup`` runs. Torch runs with ``threads``
intra-op threads (default 1, the same compute as scipy's single-threaded loop; on shared machines
multi-threaded timings also swing with the neighbours' load).
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable

import torch
from scipy.ndimage import distance_transform_edt

from maskpose.device import torch_threads
from maskpose.errors import ConfigError
from maskpose.render.stick import capsule_silhouette
from maskpose.topology.distance import _binarize, erosion_levels
from maskpose.topology.loss import silhouette_topology_loss
from maskpose.topology.skeleton import skeleton_from_distance

# A standing stick figure in a unit box (x right, y down): 13 joints and 12 capsules.
_JOINTS = (
    (0.50, 0.12),  # 0 head top
    (0.50, 0.27),  # 1 neck
    (0.50, 0.52),  # 2 pelvis
    (0.38, 0.30), (0.30, 0.42), (0.25, 0.53),  # 3-5 right shoulder, elbow, wrist
    (0.62, 0.30), (0.70, 0.42), (0.75, 0.53),  # 6-8 left shoulder, elbow, wrist
    (0.42, 0.70), (0.41, 0.88),  # 9-10 right knee, ankle
    (0.58, 0.70), (0.59, 0.88),  # 11-12 left knee, ankle
)
_BONES = ((0, 1), (1, 2), (1, 3), (3, 4), (4, 5), (1, 6), (6, 7), (7, 8), (2, 9), (9, 10), (2, 11), (11, 12))
#: Capsule radii per bone, as a fraction of the image size (head, torso, arms, legs).
_RADII = (0.06, 0.08, 0.03, 0.03, 0.025, 0.03, 0.03, 0.025, 0.045, 0.035, 0.045, 0.035)


def human_silhouettes(batch: int, size: int, seed: int = 0, jitter: float = 0.04,
                      soft: bool = False) -> torch.Tensor:
    """Human-shaped silhouettes: capsules along a jittered standing stick figure.

    Args:
        batch: number of masks ``B``.
        size: image side ``S`` in pixels.
        seed: random seed of the joint jitter (deterministic).
        jitter: standard deviation of the joint jitter, as a fraction of ``size``.
        soft: a soft silhouette (sigmoid edge about a pixel wide, like a differentiable renderer's)
            instead of a binary mask.

    Returns:
        ``(B, 1, S, S)`` float32 in [0, 1].
    """
    gen = torch.Generator().manual_seed(seed)
    joints = torch.tensor(_JOINTS)[None].repeat(batch, 1, 1)
    joints = (joints + jitter * torch.randn(joints.shape, generator=gen)).clamp(0.03, 0.97) * size
    silhouette = capsule_silhouette(joints, _BONES, torch.tensor(_RADII) * size, (size, size), sharpness=0.5)
    return silhouette if soft else (silhouette >= 0.5).float()


def _median_ms(run: Callable[[], object], repeats: int, warmup: int) -> float:
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def run_topology_benchmark(batch: int = 32, size: int = 128, repeats: int = 7, warmup: int = 2,
                           threads: int | None = 1, kernel: str = "octagonal", seed: int = 0) -> dict:
    """Time ``L_S + L_T`` forward+backward against scipy's EDT on the same batch.

    Args:
        batch: batch size ``B``.
        size: image side in pixels.
        repeats: timed runs (the median is reported).
        warmup: untimed runs first.
        threads: torch intra-op threads during the run (restored after); ``None`` leaves it.
        kernel: S2D kernel of the loss.
        seed: seed of the masks.

    Returns:
        A dict with ``topology_fwd_bwd_ms``, ``scipy_edt_ms``, ``ratio``, ``full_maps_ms`` and the
        settings (``batch``, ``size``, ``repeats``, ``threads``, ``kernel``, ``loss``).
    """
    for name, value, low in (("batch", batch, 1), ("size", size, 8), ("repeats", repeats, 1), ("warmup", warmup, 0)):
        if value < low:
            raise ConfigError(f"{name} must be >= {low}, got {value}")
    with torch_threads(threads) as used_threads:
        pred_soft = human_silhouettes(batch, size, seed=seed, soft=True)
        # seed + 1 (not conventions.seed_sequence) keeps the benchmark's masks and numbers as published
        target = human_silhouettes(batch, size, seed=seed + 1)

        loss_value = math.nan

        def topology_step() -> None:
            nonlocal loss_value
            pred = pred_soft.clone().requires_grad_(True)
            # straight-through, as the published ratio was measured (soft adds one sigmoid)
            loss = silhouette_topology_loss(pred, target, kernel=kernel, binarization="straight_through", temperature=0.25)
            loss.backward()
            loss_value = float(loss.detach())

        topology_ms = _median_ms(topology_step, repeats, warmup)

        # The maps the loss reads, as numpy inputs for scipy (prepared outside the timer).
        with torch.no_grad():
            pred_binary = _binarize(pred_soft, "straight_through", 0.25)
            sources = []
            for silhouette in (pred_binary, target):
                skeleton = skeleton_from_distance(
                    silhouette, erosion_levels(silhouette > 0.5, kernel).to(silhouette.dtype))
                sources += [silhouette, skeleton]
            on_maps = torch.cat(sources, dim=1) > 0.5  # (B, 4, H, W)
        arrays = [m for m in on_maps.cpu().numpy().reshape(-1, size, size)]

        def scipy_loop() -> None:
            for on in arrays:
                distance_transform_edt(on)  # inward
                distance_transform_edt(~on)  # outward

        scipy_ms = _median_ms(scipy_loop, repeats, warmup)

        def full_maps() -> None:
            flat = on_maps.reshape(-1, 1, size, size)
            erosion_levels(flat, kernel)
            erosion_levels(~flat, kernel)

        full_ms = _median_ms(full_maps, repeats, warmup)
    return {
        "topology_fwd_bwd_ms": round(topology_ms, 3),
        "scipy_edt_ms": round(scipy_ms, 3),
        "ratio": round(topology_ms / scipy_ms, 4),
        "full_maps_ms": round(full_ms, 3),
        "loss": round(loss_value, 4),
        "batch": batch,
        "size": size,
        "repeats": repeats,
        "threads": used_threads,
        "kernel": kernel,
    }

"""``maskpose bench train``: training throughput of the default model against the machine's peak.

For every resolution and batch of the grid, the real supervised training step
(:class:`maskpose.train.loop.Trainer` of ``maskpose pretrain --res R --batch-size B``: the default
model, body and losses; ``mode="adapt"`` times the adaptation step without fitting instead) on a
dataset generated in-process at that resolution (:func:`maskpose.bench.step.synthetic_dataset`):

* ``images_per_s`` = batch / the median step time;
* ``flops_per_image``: the floating-point operations of one step (forward and backward of the
  network, the body model and the losses; Adam's update is not counted), counted by
  :class:`torch.utils.flop_counter.FlopCounterMode` on one step, per image. It counts the matrix
  products and convolutions (``mm``, ``bmm``, ``addmm``, ``convolution`` and their backward), which
  is where a step's arithmetic is; element-wise work, the renderer's kernels and S2D's erosions are
  not counted (their cost shows in the time, not in the FLOPs);
* ``peak_flops``: a ``peak_size`` x ``peak_size`` float32 matmul (``2 n^3`` operations), timed
  just before the cell's steps in every round (the same threads, the same load from other
  processes), the median over the cell's rounds;
* ``flops_share`` = ``flops_per_image * images_per_s / peak_flops``: the share of the machine's
  matmul peak the training step achieves.

To name where the rest goes, every round also times the network alone (forward and backward of
its outputs' sum, the same batch): ``encoder_share`` (its FLOPs per second against the peak: how well
the convolutions use the machine) and ``encoder_time_share`` (its share of the step's time: how much
of the step is spent outside the network, in the body model, the losses, the optimiser and the data).
Since nearly every counted FLOP is the network's, ``flops_share`` is about the product of the two
(times ``flops_per_image / encoder_flops_per_image``), and the smaller of them is the bigger loss.

Medians over ``repeats`` rounds after ``warmup`` untimed ones, everything in one process and one run.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from maskpose.bench.step import check_sizes, make_trainer, synchronize, synthetic_dataset, torch_threads
from maskpose.data.batching import load_batch
from maskpose.device import resolve_device
from maskpose.errors import ConfigError

#: The full grid (the issue's) and the quick one (tests, a smoke run).
RESOLUTIONS = (64, 128, 224)
BATCHES = (8, 16, 32, 64)
QUICK = {"resolutions": (32, 48), "batches": (2, 4), "repeats": 1, "warmup": 0, "peak_size": 256}
#: The default settings whose cell is reported as ``default``: the new default resolution and batch.
DEFAULT_CELL = (128, 16)
MODES = ("pretrain", "adapt")


def matmul_peak(size: int, device: torch.device, repeats: int = 3) -> float:
    """FLOP/s of a float32 ``size x size`` matmul: the best of ``repeats`` after one untimed."""
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=gen).to(device)
    b = torch.randn(size, size, generator=gen).to(device)
    torch.mm(a, b)
    synchronize(device)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2.0 * size**3 / best


def _network_step(trainer, images: torch.Tensor) -> None:
    """Forward and backward of the network alone (its outputs' sum), gradients cleared after."""
    outputs = trainer.forward(trainer.net, images)
    total = sum(t.float().sum() for head in (outputs.mesh, outputs.joints) if head is not None
                for t in head.tensors().values())
    total.backward()
    trainer.optimizer.zero_grad(set_to_none=True)


def _flops(fn) -> tuple[int, dict]:
    with FlopCounterMode(display=False) as counter:
        fn()
    by_op = {str(op): int(count) for op, count in counter.get_flop_counts().get("Global", {}).items()}
    return int(counter.get_total_flops()), by_op


def bench_cell(data: Path, out: Path, res: int, batch: int, device: str, repeats: int, warmup: int,
               peak_size: int, mode: str = "pretrain", seed: int = 0) -> dict:
    """One cell of the grid (module docstring)."""
    dev = resolve_device(device)
    trainer = make_trainer(mode, data, out, res, batch, device, seed,
                           **({"fit_every": 0} if mode == "adapt" else {}))
    images = trainer.network_input(load_batch(trainer.data, torch.arange(batch) % len(trainer.data), res, dev))
    for _ in range(warmup):
        trainer.train_step()
        _network_step(trainer, images)
    step_flops, by_op = _flops(trainer.train_step)
    network_flops, _ = _flops(lambda: _network_step(trainer, images))
    steps, networks, peaks = [], [], []
    for _ in range(repeats):
        peaks.append(matmul_peak(peak_size, dev))
        synchronize(dev)
        start = time.perf_counter()
        trainer.train_step()
        synchronize(dev)
        steps.append(time.perf_counter() - start)
        start = time.perf_counter()
        _network_step(trainer, images)
        synchronize(dev)
        networks.append(time.perf_counter() - start)
    step_s, network_s, peak = statistics.median(steps), statistics.median(networks), statistics.median(peaks)
    images_per_s = batch / step_s
    return {
        "res": res, "batch": batch, "mode": mode,
        "step_ms": round(1e3 * step_s, 3), "ms_per_image": round(1e3 * step_s / batch, 4),
        "images_per_s": round(images_per_s, 3),
        "flops_per_image": step_flops / batch, "encoder_flops_per_image": network_flops / batch,
        "peak_flops": peak,
        "flops_share": round(step_flops / step_s / peak, 5),
        "encoder_ms": round(1e3 * network_s, 3),
        "encoder_share": round(network_flops / network_s / peak, 5),
        "encoder_time_share": round(network_s / step_s, 4),
        "flops_by_op": by_op,
    }


def bench_train(resolutions=RESOLUTIONS, batches=BATCHES, repeats: int = 3, warmup: int = 1, device: str = "cpu",
                threads: int | None = None, peak_size: int = 2048, mode: str = "pretrain", seed: int = 0,
                progress=None) -> dict:
    """Images/s, FLOPs per image and the share of the matmul peak over the grid (module docstring).

    Returns:
        ``cells`` (one dict per resolution and batch, :func:`bench_cell`), ``default`` (the cell of
        :data:`DEFAULT_CELL`, else the first), ``peak_flops`` (the median over every cell), the
        settings.
    """
    resolutions, batches = tuple(int(r) for r in resolutions), tuple(int(b) for b in batches)
    if not resolutions or not batches:
        raise ConfigError("give at least one resolution and one batch")
    check_sizes(repeats=repeats, warmup=warmup, peak_size=peak_size, **{f"res {r}": r for r in resolutions},
                **{f"batch {b}": b for b in batches})
    if mode not in MODES:
        raise ConfigError(f"mode must be one of {MODES}, got {mode!r}")
    dev = resolve_device(device)
    cells = []
    with torch_threads(threads) as used_threads, tempfile.TemporaryDirectory(prefix="maskpose-bench-train-") as tmp:
        root = Path(tmp)
        for res in resolutions:
            data = synthetic_dataset(root / f"data{res}", max(batches), res, seed)
            for batch in batches:
                cell = bench_cell(data, root / f"run{res}_{batch}", res, batch, device, repeats, warmup, peak_size,
                                  mode, seed)
                cells.append(cell)
                if progress is not None:
                    progress(cell)
    default = next((c for c in cells if (c["res"], c["batch"]) == DEFAULT_CELL), cells[0])
    return {
        "default": default, "cells": cells,
        "peak_flops": statistics.median(c["peak_flops"] for c in cells),
        "resolutions": list(resolutions), "batches": list(batches), "repeats": repeats, "warmup": warmup,
        "threads": used_threads, "device": str(dev), "peak_size": peak_size, "mode": mode, "seed": seed,
    }


def format_cell(cell: dict) -> str:
    return (f"{cell['res']:>4} px  batch {cell['batch']:>3}: {cell['images_per_s']:8.1f} images/s, "
            f"{cell['flops_per_image'] / 1e9:7.3f} GFLOP/image, flops_share {cell['flops_share']:.3f} "
            f"(network alone {cell['encoder_share']:.3f}, {100 * cell['encoder_time_share']:.0f} % of the step)")


def format_train(result: dict) -> str:
    d = result["default"]
    lines = [f"training throughput ({result['mode']} step), {result['threads']} thread(s), {result['device']}, "
             f"matmul peak {result['peak_flops'] / 1e9:.1f} GFLOP/s ({result['peak_size']}^2 float32):"]
    lines += ["  " + format_cell(c) for c in result["cells"]]
    lines.append(f"default ({d['res']} px, batch {d['batch']}): {d['images_per_s']:.1f} images/s, "
                 f"flops_share {d['flops_share']:.3f}; {biggest_loss(d)}")
    return "\n".join(lines)


def biggest_loss(cell: dict) -> str:
    """Which of the two factors of ``flops_share`` is the smaller (module docstring), in words."""
    if cell["encoder_share"] <= cell["encoder_time_share"]:
        return (f"biggest loss: the network's own kernels (it runs at {cell['encoder_share']:.3f} of the peak; "
                f"it is {100 * cell['encoder_time_share']:.0f} % of the step)")
    return (f"biggest loss: time outside the network ({100 * (1 - cell['encoder_time_share']):.0f} % of the step; "
            f"the network itself runs at {cell['encoder_share']:.3f} of the peak)")


def plot_train(result: dict, path: Path) -> Path:
    """The cost curves: images/s and flops_share against the batch, one line per resolution."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 3.6), dpi=110)
    axes = fig.subplots(1, 3)
    for res in result["resolutions"]:
        cells = sorted((c for c in result["cells"] if c["res"] == res), key=lambda c: c["batch"])
        batches = [c["batch"] for c in cells]
        axes[0].plot(batches, [c["images_per_s"] for c in cells], "o-", label=f"{res} px")
        axes[1].plot(batches, [c["ms_per_image"] for c in cells], "o-", label=f"{res} px")
        axes[2].plot(batches, [c["flops_share"] for c in cells], "o-", label=f"{res} px (step)")
        axes[2].plot(batches, [c["encoder_share"] for c in cells], "x--", color=axes[2].lines[-1].get_color(),
                     label=f"{res} px (network alone)")
    titles = ("training images/s", "ms per image", "share of the matmul peak")
    for ax, title in zip(axes, titles):
        ax.set_xscale("log", base=2)
        ax.set_xticks(result["batches"], [str(b) for b in result["batches"]])
        ax.minorticks_off()
        ax.set_xlabel("batch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    axes[2].legend(fontsize=7)
    fig.suptitle(f"{result['mode']} step, {result['threads']} thread(s), {result['device']}; peak "
                 f"{result['peak_flops'] / 1e9:.1f} GFLOP/s", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


__all__ = ["BATCHES", "DEFAULT_CELL", "QUICK", "RESOLUTIONS", "bench_cell", "bench_train", "biggest_loss",
           "format_train", "matmul_peak", "plot_train"]

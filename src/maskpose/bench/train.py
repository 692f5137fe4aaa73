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
(times ``flops_per_image / encoder_flops_per_image``). What keeps it below 1 is the share of the
step lost inside the network, ``encoder_time_share * (1 - encoder_share)``, and the share spent
outside it, ``1 - encoder_time_share``; the larger is the biggest loss (:func:`biggest_loss`).

On the CPU every figure is also given by the process's CPU time (``time.process_time``) instead of
the wall clock: ``images_per_cpu_s``, ``flops_share_cpu``, ``encoder_share_cpu``,
``encoder_time_share_cpu`` (the peak likewise, ``peak_flops_cpu``). With one thread and an idle
machine the two agree; on a shared machine the CPU time leaves out the time the process waited for
a core, which the wall clock of a multi-second step and of a sub-second matmul catch unequally, so
the CPU-time shares are the ones to compare between cells (with several threads, CPU time also
counts the threads' spinning, and the wall-clock figures are the ones that matter).

Medians over ``repeats`` rounds after ``warmup`` untimed ones, everything in one process and one run;
every round visits every cell (:func:`bench_train`).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import torch
from matplotlib.figure import Figure  # a Figure draws without pyplot or a display (Agg canvas)
from torch.utils.flop_counter import FlopCounterMode

from maskpose.bench.step import check_sizes, make_trainer, synchronize, synthetic_dataset
from maskpose.data.batching import load_batch
from maskpose.device import resolve_device, torch_threads
from maskpose.errors import ConfigError

#: The full grid (the issue's) and the quick one (tests, a smoke run).
RESOLUTIONS = (64, 128, 224)
BATCHES = (8, 16, 32, 64)
QUICK = {"resolutions": (32, 48), "batches": (2, 4), "repeats": 1, "warmup": 0, "peak_size": 256}
#: The default settings whose cell is reported as ``default``: the new default resolution and batch.
DEFAULT_CELL = (128, 16)
MODES = ("pretrain", "adapt")


def matmul_peak(size: int, device: torch.device, repeats: int = 3) -> tuple[float, float]:
    """FLOP/s of a float32 ``size x size`` matmul, by the wall clock and by the process's CPU time
    (each the best of ``repeats`` after one untimed run)."""
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=gen).to(device)
    b = torch.randn(size, size, generator=gen).to(device)
    torch.mm(a, b)
    synchronize(device)
    wall = cpu = float("inf")
    for _ in range(repeats):
        with _Clock(device) as clock:
            torch.mm(a, b)
        wall, cpu = min(wall, clock.wall), min(cpu, clock.cpu)
    flops = 2.0 * size**3
    return flops / wall, flops / max(cpu, 1e-9)


class _Clock:
    """Wall-clock and process CPU seconds of a block (the device synchronised at both ends)."""

    def __init__(self, device: torch.device):
        self.device = device

    def __enter__(self) -> _Clock:
        synchronize(self.device)
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        synchronize(self.device)
        self.wall = time.perf_counter() - self._wall
        self.cpu = time.process_time() - self._cpu


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


class _Cell:
    """One cell of the grid: its Trainer, its batch of images, its FLOPs and its timings."""

    def __init__(self, data: Path, out: Path, res: int, batch: int, device: str, mode: str, seed: int):
        self.res, self.batch, self.mode = res, batch, mode
        self.device = resolve_device(device)
        self.trainer = make_trainer(mode, data, out, res, batch, device, seed,
                                    **({"fit_every": 0} if mode == "adapt" else {}))
        indices = torch.arange(batch) % len(self.trainer.data)
        self.images = self.trainer.network_input(load_batch(self.trainer.data, indices, res, self.device))
        self.steps, self.networks, self.peaks = [], [], []

    def warm(self) -> None:
        self.trainer.train_step()
        _network_step(self.trainer, self.images)

    def count(self) -> None:
        self.step_flops, self.by_op = _flops(self.trainer.train_step)
        self.network_flops, _ = _flops(lambda: _network_step(self.trainer, self.images))

    def time(self, peak_size: int) -> None:
        self.peaks.append(matmul_peak(peak_size, self.device))
        with _Clock(self.device) as clock:
            self.trainer.train_step()
        self.steps.append((clock.wall, clock.cpu))
        with _Clock(self.device) as clock:
            _network_step(self.trainer, self.images)
        self.networks.append((clock.wall, clock.cpu))

    def result(self) -> dict:
        out = {"res": self.res, "batch": self.batch, "mode": self.mode,
               "flops_per_image": self.step_flops / self.batch,
               "encoder_flops_per_image": self.network_flops / self.batch}
        clocks = [(0, "")] + ([(1, "_cpu")] if self.device.type == "cpu" else [])  # CPU time: on the CPU only
        for index, suffix in clocks:
            step_s = statistics.median(t[index] for t in self.steps)
            network_s = statistics.median(t[index] for t in self.networks)
            peak = statistics.median(p[index] for p in self.peaks)
            unit = "s" if not suffix else "cpu_s"
            out.update({
                f"step_ms{suffix}": round(1e3 * step_s, 3), f"ms_per_image{suffix}": round(1e3 * step_s / self.batch, 4),
                f"images_per_{unit}": round(self.batch / step_s, 3), f"peak_flops{suffix}": peak,
                f"flops_share{suffix}": round(self.step_flops / step_s / peak, 5),
                f"encoder_ms{suffix}": round(1e3 * network_s, 3),
                f"encoder_share{suffix}": round(self.network_flops / network_s / peak, 5),
                f"encoder_time_share{suffix}": round(network_s / step_s, 4),
            })
        out["flops_by_op"] = self.by_op
        return out


def bench_train(resolutions=RESOLUTIONS, batches=BATCHES, repeats: int = 3, warmup: int = 1, device: str = "cpu",
                threads: int | None = None, peak_size: int = 2048, mode: str = "pretrain", seed: int = 0,
                progress=None) -> dict:
    """Images/s, FLOPs per image and the share of the matmul peak over the grid (module docstring).

    Every cell keeps its own Trainer for the whole run; each round visits every cell once (the
    peak, the step, the network alone), starting from another cell every round, so that a burst of
    load from other processes spreads over the cells instead of spoiling one.

    Returns:
        ``cells`` (one dict per resolution and batch: ``images_per_s``, ``step_ms``,
        ``ms_per_image``, ``flops_per_image``, ``encoder_flops_per_image``, ``peak_flops``,
        ``flops_share``, ``encoder_ms``, ``encoder_share``, ``encoder_time_share``,
        ``flops_by_op``; on the CPU also the CPU-time figures ``images_per_cpu_s``,
        ``step_ms_cpu``, ``ms_per_image_cpu``, ``peak_flops_cpu``, ``flops_share_cpu``,
        ``encoder_ms_cpu``, ``encoder_share_cpu``, ``encoder_time_share_cpu``), ``default`` (the cell of :data:`DEFAULT_CELL`, else the first),
        ``peak_flops`` (the median over every cell), the settings. ``progress(message)`` is
        called as the run goes.
    """
    resolutions, batches = tuple(int(r) for r in resolutions), tuple(int(b) for b in batches)
    if not resolutions or not batches:
        raise ConfigError("give at least one resolution and one batch")
    check_sizes(repeats=repeats, warmup=warmup, peak_size=peak_size, **{f"res {r}": r for r in resolutions},
                **{f"batch {b}": b for b in batches})
    if mode not in MODES:
        raise ConfigError(f"mode must be one of {MODES}, got {mode!r}")
    dev = resolve_device(device)
    say = progress or (lambda message: None)
    with torch_threads(threads) as used_threads, tempfile.TemporaryDirectory(prefix="maskpose-bench-train-") as tmp:
        root = Path(tmp)
        grid = []
        for res in resolutions:
            data = synthetic_dataset(root / f"data{res}", max(batches), res, seed)
            grid += [_Cell(data, root / f"run{res}_{batch}", res, batch, device, mode, seed) for batch in batches]
        for _ in range(warmup):
            for cell in grid:
                cell.warm()
        for cell in grid:
            cell.count()
        for round_index in range(repeats):
            shift = round_index % len(grid)
            for cell in grid[shift:] + grid[:shift]:
                cell.time(peak_size)
            say(f"round {round_index + 1} of {repeats} done")
        cells = [cell.result() for cell in grid]
    default = next((c for c in cells if (c["res"], c["batch"]) == DEFAULT_CELL), cells[0])
    return {
        "default": default, "cells": cells,
        "peak_flops": statistics.median(c["peak_flops"] for c in cells),
        **({"peak_flops_cpu": statistics.median(c["peak_flops_cpu"] for c in cells)} if dev.type == "cpu" else {}),
        "resolutions": list(resolutions), "batches": list(batches), "repeats": repeats, "warmup": warmup,
        "threads": used_threads, "device": str(dev), "peak_size": peak_size, "mode": mode, "seed": seed,
    }


def _suffix(cell: dict) -> str:
    """``"_cpu"`` where the cell has the CPU-time figures (the CPU), else ``""`` (the wall clock)."""
    return "_cpu" if "flops_share_cpu" in cell else ""


def format_cell(cell: dict) -> str:
    line = (f"{cell['res']:>4} px  batch {cell['batch']:>3}: {cell['images_per_s']:7.1f} images/s, "
            f"{cell['flops_per_image'] / 1e9:6.3f} GFLOP/image, flops_share {cell['flops_share']:.3f}")
    x = _suffix(cell)
    if x:
        line += (f"; by CPU time {cell['images_per_cpu_s']:7.1f} images/s, flops_share {cell['flops_share_cpu']:.3f}")
    return line + (f" (network alone {cell['encoder_share' + x]:.3f}, "
                   f"{100 * cell['encoder_time_share' + x]:.0f} % of the step)")


def format_train(result: dict) -> str:
    d = result["default"]
    peak = f"matmul peak {result['peak_flops'] / 1e9:.1f} GFLOP/s"
    if "peak_flops_cpu" in result:
        peak += f" ({result['peak_flops_cpu'] / 1e9:.1f} per CPU second)"
    lines = [f"training throughput ({result['mode']} step), {result['threads']} thread(s), {result['device']}, "
             f"{peak}, {result['peak_size']}^2 float32:"]
    lines += ["  " + format_cell(c) for c in result["cells"]]
    x = _suffix(d)
    lines.append(f"default ({d['res']} px, batch {d['batch']}): {d['images_per_s']:.1f} images/s, "
                 f"flops_share {d['flops_share']:.3f}" + (f" (by CPU time {d['flops_share_cpu']:.3f})" if x else "")
                 + f"; {biggest_loss(d)}")
    return "\n".join(lines)


def biggest_loss(cell: dict) -> str:
    """The larger of the two shares of the step's time that keep ``flops_share`` below 1, in words
    (by CPU time where the cell has it): the network's own shortfall from the peak,
    ``encoder_time_share * (1 - encoder_share)``, and the time outside the network,
    ``1 - encoder_time_share``."""
    x = _suffix(cell)
    share, time_share = cell["encoder_share" + x], cell["encoder_time_share" + x]
    kernels, outside = time_share * (1.0 - share), 1.0 - time_share
    if kernels >= outside:
        return (f"biggest loss: the network's own kernels (it runs at {share:.3f} of the peak and is "
                f"{100 * time_share:.0f} % of the step: {100 * kernels:.0f} % of the step lost there, "
                f"{100 * outside:.0f} % outside the network)")
    return (f"biggest loss: time outside the network ({100 * outside:.0f} % of the step; the network runs at "
            f"{share:.3f} of the peak, {100 * kernels:.0f} % of the step lost there)")


def plot_train(result: dict, path: Path) -> Path:
    """The cost curves against the batch, one colour per resolution: training images/s (by the wall
    clock; dashed, per CPU second), the share of the matmul peak (the step; dashed, the network
    alone) and the share of the step spent outside the network, by CPU time where there is one."""
    x = _suffix(result["default"])
    fig = Figure(figsize=(12, 3.8), dpi=110)
    axes = fig.subplots(1, 3)
    for res in result["resolutions"]:
        cells = sorted((c for c in result["cells"] if c["res"] == res), key=lambda c: c["batch"])
        batches = [c["batch"] for c in cells]
        line, = axes[0].plot(batches, [c["images_per_s"] for c in cells], "o-", label=f"{res} px")
        colour = line.get_color()
        if x:
            axes[0].plot(batches, [c["images_per_cpu_s"] for c in cells], "x--", color=colour, alpha=0.7)
        axes[1].plot(batches, [c["flops_share" + x] for c in cells], "o-", color=colour, label=f"{res} px, step")
        axes[1].plot(batches, [c["encoder_share" + x] for c in cells], "x--", color=colour,
                     label=f"{res} px, network alone")
        axes[2].plot(batches, [100 * (1 - c["encoder_time_share" + x]) for c in cells], "o-", color=colour,
                     label=f"{res} px")
    clock = " (CPU time)" if x else ""
    titles = ("training images/s" + (" (dashed: per CPU second)" if x else ""),
              "share of the matmul peak" + clock, "% of the step outside the network" + clock)
    for ax, title in zip(axes, titles):
        ax.set_xscale("log", base=2)
        ax.set_xticks(result["batches"], [str(b) for b in result["batches"]])
        ax.minorticks_off()
        ax.set_xlabel("batch")
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
    axes[1].set_ylim(bottom=0)
    axes[2].axhline(0.0, color="0.5", linewidth=0.8)  # below 0: the noise of a shared machine
    axes[0].legend(fontsize=8)
    axes[1].legend(fontsize=7)
    fig.suptitle(f"{result['mode']} step of the default model, {result['threads']} thread(s), {result['device']}; "
                 f"matmul peak {result['peak_flops' + x] / 1e9:.1f} GFLOP/s{clock}", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


__all__ = ["BATCHES", "DEFAULT_CELL", "QUICK", "RESOLUTIONS", "bench_train", "biggest_loss",
           "format_train", "matmul_peak", "plot_train"]

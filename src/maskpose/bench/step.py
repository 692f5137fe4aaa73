"""``maskpose bench step``: what one optimisation step costs, adapt against the supervised step.

Three runs of the real training loop (:class:`maskpose.train.loop.Trainer`, built from
:meth:`TrainConfig.from_flags <maskpose.train.config.TrainConfig.from_flags>` exactly as the
``pretrain`` and ``adapt`` verbs build theirs), the same default model, batch and resolution, on a
small dataset generated in-process (:func:`maskpose.synth.generator.generate`, ``studio``, into a
temporary folder that is removed afterwards; the steps read it through the memory map as a run does):

* ``pretrain``: the supervised step (encoder, body model, the default pretrain losses
  ``joints3d``, ``joints2d``, ``params``);
* ``adapt``: the adaptation step without fitting (encoder, body model, silhouette renderer, the
  default adapt losses ``ls`` + ``lt`` + ``prior``), ``fit_every = 0``;
* ``adapt_fitting``: the ``adapt`` recipe (:data:`~maskpose.train.config.MODE_RECIPES`: fitting in
  the loop every ``fit_every = 4`` steps, ``fit_iterations = 8``), timed over whole cycles of
  ``fit_every`` steps: the fitting step alone and the mean step of the cycle.

``ratio`` = adapt / pretrain, ``ratio_with_fitting`` = mean step of the fitting cycle / pretrain,
``ratio_fitting_step`` = the fitting step / pretrain; every time is the median over ``repeats``
rounds. Within one round every run takes its step (the fitting run its whole cycle) in an order that
rotates from round to round, so the load of other processes hits all of them alike; all of it in
one process and one run, after ``warmup`` untimed rounds (the fitting run's warm-up is a whole
cycle, so the timed cycles start with the fits stored, as in a long run).

**How the stages are attributed.** Each round takes every step twice: once *plain*, the call
``trainer.train_step()`` and nothing else (the ratios come from these), and once *probed*, where
forward hooks on the modules the step calls (the network, the body model, the renderer, the
objective; :meth:`torch.nn.Module.register_forward_pre_hook` and ``register_forward_hook``), the
optimiser's step hooks and gradient hooks on the stage outputs time the stages of the very same
``train_step`` (nothing in the training code is patched or copied):

* the forward stages are timed between their module's pre- and post-hook;
* the backward runs as one ``loss.backward()``; it is split where the gradient of a stage's output
  is complete: a tensor hook on that output fires just before the autograd engine runs the output's
  gradient function, that is once every later stage has finished its backward (the engine runs
  ready nodes latest-created first, so the stages unwind in reverse order). The barriers are: the
  objective's total (the backward starts), the silhouette (the renderer's backward starts), the body
  model's vertices and joints (the body's backward starts: the first of them), the network's head
  outputs (the network's backward starts: the last of them), and the optimiser's step (the backward
  has ended). The few small operations between two stages (the camera's translation, projecting
  the joints) count for the stage whose backward runs them.

The torch profiler's ``record_function`` ranges were the other choice: they attribute the forward
well but not the backward, whose operations run outside the ranges (their link to a forward range
goes through sequence numbers and needs the profiler's own overhead on every operation). Hooks cost
a few Python calls per step (on CUDA they also synchronise the device at every barrier, which is why
the ratios come from the plain steps, and the probed steps' own total is reported beside them).

Stages: ``data`` (drawing the batch, reading it from the memory map), ``fitting`` (the
``fit_iterations`` Adam steps on the body parameters from the step's own forward, storing the fits;
timed around ``Trainer.fit_parameters``), forward and
backward of ``encoder`` (the network: encoder and mesh head), ``body``, ``render`` (the silhouette
renderer), ``loss`` (the objective: in adapt S2D, D2T and the losses L_S, L_T and the prior; in
pretrain the joint and parameter losses), ``optimizer`` (Adam's step), ``other`` (the rest: the
fit loss, zero_grad, the record).

The network starts from its initialisation (the same seed for every run): its mesh head starts at
the mean body (a standing body filling most of the crop), which renders a silhouette of a person's
size, as a trained model's would be. The network's and the body model's costs do not depend on the
weights; the renderer's and S2D's follow the size of the silhouettes, which is that of a person.

:func:`measure_memory`: the peak resident memory of ``maskpose pretrain`` and ``maskpose adapt``
(the adapt recipe, from the pretrain run's checkpoint) at the given resolution and batch, each
run as its own process that reports its own high-water mark (``VmHWM`` of ``/proc/self/status``;
``ru_maxrss`` where there is no ``/proc``), against the interpreter with torch and the training code
imported and nothing run.
"""

from __future__ import annotations

import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch

from maskpose.device import resolve_device, torch_threads
from maskpose.errors import ConfigError
from maskpose.synth.generator import SynthesisConfig, generate
from maskpose.train.config import TrainConfig
from maskpose.train.loop import Trainer

#: The stages of a step, in the order of the printed table (``other``: the rest of the step).
STAGES = ("data", "fitting", "encoder_forward", "body_forward", "render_forward", "loss_forward",
          "loss_backward", "render_backward", "body_backward", "encoder_backward", "optimizer", "other")
#: The parts of the ``fitting`` stage (``bench_step(...)["adapt_fitting"]["fitting_ms"]``): the
#: forward stages of the fitting iterations (summed), and the rest (their backward passes, the Adam
#: steps on the body parameters, storing the fits). The fit starts from the step's own network
#: forward, so it has no network forward of its own.
FITTING_PARTS = ("body_forward", "render_forward", "loss_forward", "rest")
#: The runs of a round, by name.
RUNS = ("pretrain", "adapt", "adapt_fitting")
#: The issue's goals for the ratios (docs/performance.md): adapt without / with fitting.
GOALS = {"ratio": 1.25, "ratio_with_fitting": 1.6}


# ---------------------------------------------------------------------- shared with bench train
def synthetic_dataset(path: Path, n: int, res: int, seed: int = 0) -> Path:
    """A labelled ``studio`` dataset of ``n`` samples at ``res`` px (images, masks, intrinsics, the
    labels): what both a supervised and an adaptation step read."""
    config = SynthesisConfig(batch_size=min(64, n), device="cpu")
    return generate(path, "studio", n, res, seed, "bench", True, config)


def make_trainer(mode: str, data: Path, out: Path, res: int, batch: int, device: str, seed: int = 0,
                 **changes) -> Trainer:
    """The Trainer of ``maskpose <mode> --data DATA --res RES --batch-size BATCH`` (the mode's
    recipe and default losses, the default model at ``res``), with ``changes`` to the config."""
    config = TrainConfig.from_flags(mode, None, data=str(data), out=str(out), batch_size=batch, resolution=res,
                                    device=device, seed=seed)
    if changes:
        config = replace(config, **changes)
    return Trainer(config, progress=False)


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA); nothing on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def check_sizes(**values: int) -> None:
    """``ConfigError`` naming the first of ``values`` below its minimum (``warmup``: 0, else 1)."""
    for name, value in values.items():
        low = 0 if name == "warmup" else 1
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ConfigError(f"{name} must be an int >= {low}, got {value!r}")


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


# ---------------------------------------------------------------------- the probe
class StepProbe:
    """Times the stages of ``trainer.train_step()`` through module, optimiser and gradient hooks
    (module docstring); ``probe.step()`` runs one probed step and returns its stage times (ms) and
    ``total``; after a fitting step ``probe.fitting`` holds the parts of its ``fitting`` stage
    (:data:`FITTING_PARTS`, ms; empty after a step without fitting). The hooks do nothing outside
    :meth:`step`; :meth:`remove` takes them off."""

    def __init__(self, trainer: Trainer):
        self.trainer = trainer
        self.device = trainer.device
        self.active = False
        self.handles = []
        modules = {"encoder": trainer.model, "body": trainer.body, "render": trainer.renderer,
                   "loss": trainer.objective}
        for name, module in modules.items():
            if module is not None:
                self.handles.append(module.register_forward_pre_hook(self._pre_hook(name)))
                self.handles.append(module.register_forward_hook(self._post_hook(name)))
        self.handles.append(trainer.optimizer.register_step_pre_hook(lambda *_: self._optimizer(True)))
        self.handles.append(trainer.optimizer.register_step_post_hook(lambda *_: self._optimizer(False)))
        # the fitting stage is the call of fit_parameters (an instance attribute shadowing the method)
        fit = trainer.fit_parameters

        def timed_fit(*args, **kwargs):
            if not self.active:
                return fit(*args, **kwargs)
            self.phase, self.fit_start = "fitting", self._now()
            try:
                return fit(*args, **kwargs)
            finally:
                self._add("fitting", self._now() - self.fit_start)
                self.phase = "step"
        trainer.fit_parameters = timed_fit

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []
        self.trainer.__dict__.pop("fit_parameters", None)

    def _now(self) -> float:
        synchronize(self.device)
        return time.perf_counter()

    # -- hooks
    def _pre_hook(self, name: str) -> Callable:
        def hook(module, args):
            if not self.active:
                return
            now = self._now()
            if name == "encoder" and self.phase == "data":
                self._add("data", now - self.start)
                self.phase = "step"
            if self.phase == "step":
                self.opened[name] = now
            elif self.phase == "fitting":
                self.opened[f"fit:{name}"] = now
        return hook

    def _post_hook(self, name: str) -> Callable:
        def hook(module, args, output):
            if not self.active:
                return
            if self.phase == "fitting" and f"fit:{name}" in self.opened:
                now = self._now()
                key = f"{name}_forward"
                self.fitting[key] = self.fitting.get(key, 0.0) + 1e3 * (now - self.opened.pop(f"fit:{name}"))
                return
            if self.phase != "step" or name not in self.opened:
                return
            now = self._now()
            self._add(f"{name}_forward", now - self.opened.pop(name))
            for tensor in _output_tensors(name, output):
                if tensor.requires_grad:
                    tensor.register_hook(self._grad_hook(name))
        return hook

    def _grad_hook(self, name: str) -> Callable:
        def hook(grad):
            if self.phase == "fitting":  # the fitting's first iteration reads the step's own graph
                return None
            now = self._now()
            # The network's backward starts once all its outputs have their gradient (the last);
            # the other stages once the first of their outputs has it.
            if name == "encoder":
                self.marks[name] = max(self.marks.get(name, now), now)
            else:
                self.marks.setdefault(name, now)
            return None
        return hook

    def _optimizer(self, before: bool) -> None:
        if not self.active:
            return
        now = self._now()
        if before:
            self.marks.setdefault("optimizer", now)
            self.opened["optimizer"] = now
        elif "optimizer" in self.opened:
            self._add("optimizer", now - self.opened.pop("optimizer"))

    def _add(self, stage: str, seconds: float) -> None:
        self.times[stage] = self.times.get(stage, 0.0) + seconds

    # -- one probed step
    def step(self) -> dict[str, float]:
        """One ``trainer.train_step()`` with its stages timed: ``{stage: ms, ..., "total": ms}``
        (every stage of :data:`STAGES`, 0 where the step has none)."""
        self.times, self.marks, self.opened, self.phase = {}, {}, {}, "data"
        self.fitting = {}
        self.active = True
        try:
            self.start = self._now()
            self.trainer.train_step()
            end = self._now()
        finally:
            self.active = False
        # The backward, split at the barriers in the order the engine unwinds the stages.
        order = [("loss", "loss_backward"), ("render", "render_backward"), ("body", "body_backward"),
                 ("encoder", "encoder_backward")]
        present = [(self.marks[mark], stage) for mark, stage in order if mark in self.marks]
        if "optimizer" in self.marks:
            last = self.marks["optimizer"]
            bounds, running = [], None
            for at, stage in present:  # barriers kept in order: a later one never before an earlier
                running = at if running is None else max(at, running)
                bounds.append((min(running, last), stage))
            for (at, stage), (following, _) in zip(bounds, bounds[1:] + [(last, None)]):
                self._add(stage, following - at)
        total = end - self.start
        result = {stage: 1e3 * self.times.get(stage, 0.0) for stage in STAGES if stage != "other"}
        result["other"] = max(0.0, 1e3 * total - sum(result.values()))
        result["total"] = 1e3 * total
        if self.fitting:  # the fitting's own forward stages; the rest: its backward passes, Adam, the fits
            self.fitting = {key: self.fitting.get(key, 0.0) for key in FITTING_PARTS[:-1]}
            self.fitting["rest"] = max(0.0, result["fitting"] - sum(self.fitting.values()))
        return result


def _output_tensors(name: str, output) -> list[torch.Tensor]:
    """The tensors whose gradient marks a stage's backward: the network's head outputs, the body's
    vertices and joints, the silhouette, the objective's total."""
    if name == "encoder":
        tensors = []
        for head in (output.mesh, output.joints):
            if head is not None:
                tensors += list(head.tensors().values())
        return tensors
    if name == "body":
        return [output.vertices, output.joints]
    if name == "loss":
        return [output[0]]
    return [output]


# ---------------------------------------------------------------------- the benchmark
def _timed_step(trainer: Trainer) -> float:
    """One plain ``train_step`` in ms."""
    synchronize(trainer.device)
    start = time.perf_counter()
    trainer.train_step()
    synchronize(trainer.device)
    return 1e3 * (time.perf_counter() - start)


def _mean_stages(steps: list[dict[str, float]]) -> dict[str, float]:
    return {key: sum(step[key] for step in steps) / len(steps) for key in steps[0]}


def _median_stages(samples: list[dict[str, float]]) -> dict[str, float]:
    return {key: round(_median([s[key] for s in samples]), 3) for key in samples[0]}


def bench_step(res: int = 128, batch: int = 16, repeats: int = 5, warmup: int = 1, device: str = "cpu",
               threads: int | None = None, seed: int = 0, memory: bool = False, memory_steps: int = 8) -> dict:
    """Time the supervised step, the adaptation step and the adaptation recipe's fitting cycle
    (module docstring) on the same model, batch and resolution.

    Args:
        res: model input resolution (px); the dataset is generated at it.
        batch: batch size.
        repeats: timed rounds (medians reported).
        warmup: untimed rounds first.
        device: torch device (the dataset is generated on the CPU).
        threads: ``torch.set_num_threads`` for the run (``None``: torch's choice), restored after.
        seed: seed of the dataset and of the runs.
        memory: also run :func:`measure_memory` (``memory_steps`` steps each) and add its result.

    Returns:
        ``ratio``, ``ratio_with_fitting``, ``ratio_fitting_step``; per run (``pretrain``,
        ``adapt``, ``adapt_fitting``) the plain step's median ms (``step_ms``; for the fitting run
        also ``fitting_step_ms``, ``cycle_ms`` the mean step of a cycle, ``steps_ms`` the median
        of each position in the cycle, ``fitting_ms`` the median ms of the :data:`FITTING_PARTS`
        of the probed fitting steps' ``fitting`` stage), the losses; ``breakdown``: median ms per stage of the
        probed steps (:data:`STAGES` and ``total``) for ``pretrain``, ``adapt``,
        ``adapt_fitting_step`` and ``adapt_fitting_cycle`` (the mean step of a cycle); the settings.
    """
    check_sizes(res=res, batch=batch, repeats=repeats, warmup=warmup, memory_steps=memory_steps)
    dev = resolve_device(device)
    with torch_threads(threads) as used_threads, tempfile.TemporaryDirectory(prefix="maskpose-bench-step-") as tmp:
        root = Path(tmp)
        data = synthetic_dataset(root / "data", batch, res, seed)
        trainers = {
            "pretrain": make_trainer("pretrain", data, root / "pretrain", res, batch, device, seed),
            "adapt": make_trainer("adapt", data, root / "adapt", res, batch, device, seed, fit_every=0),
            "adapt_fitting": make_trainer("adapt", data, root / "adapt_fitting", res, batch, device, seed),
        }
        cycle = trainers["adapt_fitting"].config.fit_every
        if cycle < 1:
            raise ConfigError("the adapt recipe has no fitting in the loop (MODE_RECIPES['adapt']['fit_every'] is 0)")
        probes = {name: StepProbe(trainer) for name, trainer in trainers.items()}
        plain: dict[str, list] = {name: [] for name in RUNS}
        probed: dict[str, list] = {name: [] for name in RUNS}
        fitting_parts: list[dict[str, float]] = []
        try:
            for round_index in range(warmup + repeats):
                timed = round_index >= warmup
                shift = round_index % len(RUNS)
                for name in RUNS[shift:] + RUNS[:shift]:
                    trainer, probe = trainers[name], probes[name]
                    steps = cycle if name == "adapt_fitting" else 1
                    plain_times = [_timed_step(trainer) for _ in range(steps)]
                    probed_times = []
                    for _ in range(steps):
                        probed_times.append(probe.step())
                        if probe.fitting and timed:
                            fitting_parts.append(dict(probe.fitting))
                    if timed:
                        plain[name].append(plain_times)
                        probed[name].append(probed_times)
        finally:
            for probe in probes.values():
                probe.remove()
        losses = {name: dict(trainer.config.losses) for name, trainer in trainers.items()}
        fit_iterations = trainers["adapt_fitting"].config.fit_iterations

    pretrain_ms = _median([t[0] for t in plain["pretrain"]])
    adapt_ms = _median([t[0] for t in plain["adapt"]])
    cycles = plain["adapt_fitting"]
    fitting_step_ms = _median([c[0] for c in cycles])
    cycle_ms = _median([sum(c) / len(c) for c in cycles])
    result = {
        "ratio": round(adapt_ms / pretrain_ms, 4),
        "ratio_with_fitting": round(cycle_ms / pretrain_ms, 4),
        "ratio_fitting_step": round(fitting_step_ms / pretrain_ms, 4),
        "goals": dict(GOALS),
        "pretrain": {"step_ms": round(pretrain_ms, 3), "losses": losses["pretrain"]},
        "adapt": {"step_ms": round(adapt_ms, 3), "losses": losses["adapt"]},
        "adapt_fitting": {
            "fitting_step_ms": round(fitting_step_ms, 3), "cycle_ms": round(cycle_ms, 3),
            "steps_ms": [round(_median([c[i] for c in cycles]), 3) for i in range(cycle)],
            "losses": losses["adapt_fitting"], "fit_every": cycle, "fit_iterations": fit_iterations,
            "fitting_ms": _median_stages(fitting_parts) if fitting_parts else {},
        },
        "breakdown": {
            "pretrain": _median_stages([s[0] for s in probed["pretrain"]]),
            "adapt": _median_stages([s[0] for s in probed["adapt"]]),
            "adapt_fitting_step": _median_stages([c[0] for c in probed["adapt_fitting"]]),
            "adapt_fitting_cycle": _median_stages([_mean_stages(c) for c in probed["adapt_fitting"]]),
        },
        "res": res, "batch": batch, "repeats": repeats, "warmup": warmup, "threads": used_threads,
        "device": str(dev), "seed": seed,
    }
    if memory:
        result["memory"] = measure_memory(res=res, batch=batch, steps=memory_steps, device=device, threads=threads,
                                          seed=seed)
    return result


def format_step(result: dict) -> str:
    """The printed report of :func:`bench_step`: the ratios, then a table of the stages."""
    fit = result["adapt_fitting"]
    lines = [
        f"step at {result['res']} px, batch {result['batch']}, {result['threads']} thread(s), {result['device']} "
        f"(medians of {result['repeats']}):",
        f"  pretrain {result['pretrain']['step_ms']:.1f} ms, adapt {result['adapt']['step_ms']:.1f} ms, "
        f"adapt fitting step {fit['fitting_step_ms']:.1f} ms, {fit['fit_every']}-step cycle "
        f"{fit['cycle_ms']:.1f} ms per step",
        f"  ratio {result['ratio']:.3f} (goal <= {GOALS['ratio']}), with fitting every {fit['fit_every']}th step "
        f"{result['ratio_with_fitting']:.3f} (goal <= {GOALS['ratio_with_fitting']}); the fitting step alone "
        f"{result['ratio_fitting_step']:.2f}",
        "",
    ]
    columns = ("pretrain", "adapt", "adapt_fitting_step", "adapt_fitting_cycle")
    header = ("stage (ms)", "pretrain", "adapt", "fit step", "fit cycle")
    lines.append(f"  {header[0]:<18}" + "".join(f"{h:>11}" for h in header[1:]))
    for stage in (*STAGES, "total"):
        cells = "".join(f"{result['breakdown'][c][stage]:>11.1f}" for c in columns)
        lines.append(f"  {stage:<18}{cells}")
    parts = fit.get("fitting_ms")
    if parts:
        lines.append("")
        lines.append(f"  fitting ({fit['fit_iterations']} iterations): "
                     + ", ".join(f"{k.replace('_', ' ')} {v:.1f}" for k, v in parts.items()) + " ms")
    if "memory" in result:
        mem = result["memory"]
        lines.append("")
        lines.append(f"  peak RSS: pretrain {mem['pretrain_mib']:.0f} MiB, adapt {mem['adapt_mib']:.0f} MiB "
                     f"(torch and maskpose imported: {mem['baseline_mib']:.0f} MiB)")
    return "\n".join(lines)


# ---------------------------------------------------------------------- memory
#: Run in each child: on exit, write the process's peak resident memory (KiB) to argv[1], then run
#: ``maskpose`` with the rest of argv (an empty rest: only import the training code). The child
#: reads its own ``VmHWM``: the ``ru_maxrss`` a parent gets from ``wait4`` would also hold the
#: parent's memory at the fork (Linux keeps the high-water mark across ``exec``).
_CHILD = """
import atexit, resource, sys
def _peak(path=sys.argv[1]):
    try:
        with open("/proc/self/status") as status:
            kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        kib = rss // 1024 if sys.platform == "darwin" else rss
    with open(path, "w") as out:
        out.write(str(kib))
atexit.register(_peak)
sys.argv = ["maskpose", *sys.argv[2:]]
import maskpose.cli, maskpose.train.loop
if len(sys.argv) > 1:
    maskpose.cli.main()
"""


def _start_child(args: list[str], root: Path, name: str, env: dict) -> tuple:
    """Start ``maskpose ARGS`` (no ARGS: only the imports) as a child process that reports its peak
    resident memory (:data:`_CHILD`); :func:`_peak_mib` waits for it."""
    log, peak = root / f"{name}.log", root / f"{name}.peak"
    with open(log, "wb") as sink:
        process = subprocess.Popen([sys.executable, "-c", _CHILD, str(peak), *args], stdout=sink,
                                   stderr=subprocess.STDOUT, env=env)
    return process, args, log, peak


def _peak_mib(child: tuple) -> float:
    """Wait for a child of :func:`_start_child`; its peak resident memory in MiB. ``RuntimeError``
    with the end of its output when it fails."""
    process, args, log, peak = child
    returncode = process.wait()
    if returncode != 0 or not peak.exists():
        tail = log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"maskpose {' '.join(args)} failed with exit code {returncode}:\n{tail}")
    return int(peak.read_text()) / 1024


def measure_memory(res: int = 128, batch: int = 16, steps: int = 8, n: int = 64, device: str = "cpu",
                   threads: int | None = None, seed: int = 0) -> dict:
    """Peak resident memory (MiB) of ``maskpose pretrain --res RES --batch-size BATCH --steps STEPS``
    and of ``maskpose adapt --init <its checkpoint>`` (the adapt recipe: fitting every 4th step) on
    an ``n``-sample generated dataset, each its own process, and of the interpreter with torch and
    the training code imported (``baseline_mib``). ``threads`` sets ``OMP_NUM_THREADS`` for them."""
    check_sizes(res=res, batch=batch, steps=steps, n=n)
    resolve_device(device)
    env = dict(os.environ)
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    with tempfile.TemporaryDirectory(prefix="maskpose-bench-memory-") as tmp:
        root = Path(tmp)
        data = synthetic_dataset(root / "data", n, res, seed)
        common = ["--data", str(data), "--steps", str(steps), "--batch-size", str(batch), "--device", device,
                  "--seed", str(seed)]
        baseline = _start_child([], root, "baseline", env)  # beside pretrain: each measures only itself
        try:
            pretrain = _peak_mib(_start_child(["pretrain", "--out", str(root / "pretrain"), "--res", str(res), *common],
                                              root, "pretrain", env))
        finally:
            baseline_mib = _peak_mib(baseline)
        adapt = _peak_mib(_start_child(["adapt", "--init", str(root / "pretrain" / "checkpoint.pt"),
                                        "--out", str(root / "adapt"), *common], root, "adapt", env))
    return {"pretrain_mib": round(pretrain, 1), "adapt_mib": round(adapt, 1), "baseline_mib": round(baseline_mib, 1),
            "res": res, "batch": batch, "steps": steps, "n": n, "device": device,
            "goal_adapt_mib": 2048, "adapt_within_goal": bool(adapt < 2048 and math.isfinite(adapt))}


__all__ = ["FITTING_PARTS", "GOALS", "RUNS", "STAGES", "StepProbe", "bench_step", "format_step", "make_trainer", "measure_memory",
           "synthetic_dataset"]

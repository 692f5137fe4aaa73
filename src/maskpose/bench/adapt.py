"""``maskpose bench adapt`` and ``maskpose bench unsup``: the adaptation benchmark (docs/design.md §6).

``adapt``: from fixed seeds, build (or reuse) the source split and the target domains, train (or
reuse) a source model, then for every target run

* ``source`` — the source model, no adaptation;
* one adaptation per mask loss — ``l2``, ``bce``, ``chamfer_points``, ``ls``, ``ls_lt`` (L_S + L_T),
  ``mas`` (Mask-as-Supervision on the mesh joints), ``ls_lt_mas`` — each the same
  :func:`maskpose.train.loop.train` call (``mode="adapt"``) with another ``losses`` dict, every one
  with the pose prior ``prior: 0.1`` added;
* ``oracle`` — fine-tuned with 3D labels (``joints3d, joints2d, params``) on the target train split;

for every seed in ``BenchConfig.seeds`` (the seed drives the adaptation's batch order and the
initialisation of what the losses train, e.g. ψ; the source model is one model, so ``source`` has
no spread). Every cell is evaluated on the target's labelled test split.

Outputs in the run folder: ``bench_adapt.json`` (updated after every cell: the run resumes by
skipping cells found there), ``bench_adapt.md`` (the table: variants in the paper's ablation order
source > l2 > ls > ls_lt first, targets as columns, PA-MPJPE mean ± std over seeds), and the plots
``bench_adapt_bars.png`` and ``bench_adapt_steps.png`` (PA-MPJPE along the adaptation run for
``ls_lt`` against ``l2``, evaluated at ``curve_points`` checkpoints).

Per target, ``results[target]["shift"]`` (:func:`shift_strength`) holds the oracle's gain over the
source, ``(source - oracle) / source`` on PA-MPJPE and MPJPE (below :data:`WEAK_SHIFT` on PA-MPJPE
the target is marked a *weak shift* in the tables), and the share of that gap each variant closes,
``(source - variant) / (source - oracle)``. With ``peer_python`` (``--peer-python``) a MediaPipe row
is added per target, ``results[target]["mediapipe"]`` (:func:`mediapipe_rows`, the functions of
:mod:`maskpose.bench.peers`). The variants' entries keep their layout
(``results[target][variant]["pa_mpjpe_mean"]``).

Target train splits are generated *with* labels so the oracle can use them; the adaptation
variants never read labels (``TrainConfig.validate`` refuses supervised losses in ``adapt``).

``unsup`` (Mask as Supervision, the released two-stage protocol) lives in :mod:`maskpose.bench.unsup`
and shares :class:`BenchConfig`, the data generation and the resumable state of this module.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from maskpose.bench.common import _generate, _Log
from maskpose.bench.peers import WORKER, PeersConfig, resolve_peer_python, run_peer, score_peer
from maskpose.body.anny_body import AnnyBody
from maskpose.body.sampler import PoseDistribution
from maskpose.data.dataset import MaskposeDataset, read_meta
from maskpose.errors import ConfigError
from maskpose.io import atomic_write_json
from maskpose.models.regressor import ModelConfig
from maskpose.synth.degrade import DEGRADATIONS, degrade_dataset, parse_target
from maskpose.synth.domains import DOMAINS
from maskpose.synth.uap import load_uap, register_uap_domains
from maskpose.train.attack import build_uap_domain
from maskpose.train.checkpoint import load_checkpoint
from maskpose.train.config import (
    DEFAULT_LOSSES,
    TrainConfig,
    check_bounded,
    check_known_fields,
    check_topology_gradient,
    load_yaml_mapping,
)
from maskpose.train.evaluate import crop_side, evaluate_checkpoint
from maskpose.train.loop import train

#: Adaptation variants: the mask losses of each (``prior`` is added to all of them).
ADAPT_LOSSES: dict[str, dict[str, float]] = {
    "l2": {"l2": 1.0},
    "bce": {"bce": 1.0},
    "chamfer_points": {"chamfer_points": 1.0},
    "ls": {"ls": 1.0},
    "ls_lt": {"ls": 1.0, "lt": 1.0},
    "mas": {"mas": 1.0},
    "ls_lt_mas": {"ls": 1.0, "lt": 1.0, "mas": 1.0},
}
#: Table order: the paper's ablation order first (source > L2 > L_S > L_S + L_T), then the rest.
VARIANT_ORDER = ("source", "l2", "ls", "ls_lt", "bce", "chamfer_points", "mas", "ls_lt_mas", "oracle")
ABLATION_ORDER = ("source", "l2", "ls", "ls_lt")
#: The paper's numbers for the same rows (PA-MPJPE mm, synthetic -> 3DPW; docs/design.md §1.1).
PAPER_ABLATION = {"source": 134.7, "l2": 129.6, "ls": 106.2, "ls_lt": 95.1}
ALL_TARGETS = ("lowres-32", "lowres-52", "thermal", "uap-8", "uap-16", "scene", "motion", "cctv", "occluded", "bgsub",
               "clothed")
#: A target whose oracle gains less than this share of the source's PA-MPJPE is a weak shift.
WEAK_SHIFT = 0.20
#: ``bench unsup`` rows (maskpose.bench.unsup): stage 1 alone; stage 2 full and its ablations; stage 2
#: without the mask terms (what the extra source steps alone give); SPP on 1 % and 5 % of the target's
#: labels (on the full model); masks only from scratch (the control).
UNSUP_VARIANTS = ("stage1", "full", "no_g", "no_psi", "no_psi_no_g", "no_symmetry", "no_masks", "spp_1", "spp_5",
                  "scratch")
METRICS = ("mpjpe", "pa_mpjpe", "n_mpjpe", "pck", "auc", "silhouette_iou", "mpjpe_flip", "pa_mpjpe_flip",
           "ambiguity_ratio")
def bench_source_run() -> TrainConfig:
    """The benchmark's source pretraining run (data, out, seed, device and the model are filled in)."""
    return TrainConfig(mode="pretrain", steps=1500, batch_size=32, lr=1e-3, log_every=25, checkpoint_every=100)


def bench_adapt_run() -> TrainConfig:
    """Every adaptation cell's run (and the oracle's steps and batch; its lr is ``oracle_lr``). The
    cell fills in data, out, init_checkpoint, seed, device, losses, focal and the model. Fitting in
    the loop is off (the paper: every 4th step, ``BenchConfig.full``). ``topology_binarization``:
    "straight_through" reproduces the first benchmark run, see docs/benchmark.md."""
    return TrainConfig(mode="adapt", steps=150, batch_size=16, lr=1e-4, fit_every=0, fit_iterations=8,
                       log_every=10, checkpoint_every=10**9)


def bench_unsup_stage1_run() -> TrainConfig:
    """``bench unsup``'s stage 1: supervised on the labelled studio split, one model per head (the
    released recipe's stage 1; its data, out, seed, device, losses and model are filled in)."""
    return TrainConfig(mode="pretrain", steps=1500, batch_size=32, lr=1e-3, log_every=25, checkpoint_every=10**9)


def bench_unsup_run() -> TrainConfig:
    """``bench unsup``'s stage 2 (and, without source batches and init, the from-scratch control):
    the released recipe (docs/design.md §1.2): the one-sided skeleton term on the released skeleton
    mask, a supervised studio batch in every step, from the stage-1 model; losses and the ψ / G
    switches come from the variant."""
    return TrainConfig(mode="train-unsup", steps=300, batch_size=16, lr=3e-4, source_ratio=1.0, mas_style="released",
                       mas_skeleton_term="one_sided", log_every=25, checkpoint_every=10**9)


#: The ``TrainConfig`` templates of a ``BenchConfig`` and their defaults (whose mode each must keep).
RUN_SECTIONS: dict[str, Callable[[], TrainConfig]] = {"source": bench_source_run, "adapt": bench_adapt_run,
                                                      "unsup_stage1": bench_unsup_stage1_run, "unsup": bench_unsup_run}
#: Keys of the flat configuration before the runs became ``TrainConfig`` templates -> their new place.
MOVED_KEYS = {
    "pose_spread": "poses.spread", "max_yaw_deg": "poses.max_yaw_deg",
    "source_steps": "source.steps", "source_batch": "source.batch_size", "source_lr": "source.lr",
    "adapt_steps": "adapt.steps", "adapt_batch": "adapt.batch_size", "adapt_lr": "adapt.lr",
    "fit_every": "adapt.fit_every", "fit_iterations": "adapt.fit_iterations",
    "topology_binarization": "adapt.topology_binarization", "topology_temperature": "adapt.topology_temperature",
    "unsup_steps": "unsup.steps", "unsup_batch": "unsup.batch_size", "unsup_lr": "unsup.lr",
    "unsup_head": "unsup_heads",
}


@dataclass
class BenchConfig:
    """Every size, step count and seed of ``maskpose bench adapt`` / ``bench unsup``: the benchmark's
    own fields, and its training runs as ``TrainConfig`` templates (``source``, ``adapt``, ``unsup``)."""

    resolution: int = 64
    width: int = 32
    hidden: int = 256
    data_seed: int = 0
    # Pose distribution of every generated split, as the demo's; the shipped demo source model
    # (--source-checkpoint) was trained on it.
    poses: PoseDistribution = field(default_factory=PoseDistribution)
    # source
    source_train: int = 3000
    source_heldout: int = 256  # labelled studio images the UAP is computed on (not trained on)
    source: TrainConfig = field(default_factory=bench_source_run)
    source_checkpoint: str = ""  # reuse this source model instead of training one
    # targets
    targets: tuple[str, ...] = ALL_TARGETS
    target_train: int = 400
    target_test: int = 200
    # UAP
    uap_steps: int = 200
    uap_batch: int = 16
    # adaptation
    variants: tuple[str, ...] = VARIANT_ORDER
    seeds: tuple[int, ...] = (0, 1)
    adapt: TrainConfig = field(default_factory=bench_adapt_run)
    prior_weight: float = 0.1
    oracle_lr: float = 1e-4  # the oracle runs adapt's steps and batch size at this learning rate
    curve_variants: tuple[str, ...] = ("l2", "ls_lt")
    curve_points: int = 3  # evaluations along each curve-variant run (the last is the run's end)
    # unsup (Mask as Supervision, the released two-stage protocol: maskpose.bench.unsup)
    unsup_targets: tuple[str, ...] = ("thermal", "lowres-32")
    unsup_heads: tuple[str, ...] = ("joints", "mesh")
    unsup_variants: tuple[str, ...] = UNSUP_VARIANTS
    unsup_train: int = 3000  # labelled studio samples of stage 1 (and of stage 2's source batches)
    unsup_target_train: int = 400  # target images and masks of stage 2 (labelled only for SPP)
    unsup_test: int = 200
    unsup_stage1: TrainConfig = field(default_factory=bench_unsup_stage1_run)
    unsup: TrainConfig = field(default_factory=bench_unsup_run)
    unsup_seeds: tuple[int, ...] = (0, 1)
    unsup_mas_weight: float = 1.0
    unsup_symmetry_weight: float = 0.1  # the released recipe's weight
    # The joint head of the "joints" rows: the integral (heatmap) head, as the released code; "mlp" is
    # the global-pool head of earlier versions.
    unsup_joint_head: str = "integral"
    unsup_landmarks: int = 17
    device: str = "cpu"
    eval_batch: int = 32
    # The MediaPipe row (maskpose.bench.peers): the peer's interpreter ("" = no row), its worker
    # script ("" = the shipped one; tests use a fake), the crop side it is fed (its fair resolution)
    # and the seconds one peer run may take.
    peer_python: str = ""
    peer_worker: str = ""
    peer_resolution: int = PeersConfig.resolution
    peer_timeout: float = PeersConfig.peer_timeout

    def __post_init__(self):
        for name in ("targets", "variants", "seeds", "curve_variants", "unsup_variants", "unsup_seeds",
                     "unsup_targets", "unsup_heads"):
            setattr(self, name, tuple(getattr(self, name)))
        if isinstance(self.poses, Mapping):
            self.poses = _pose_distribution(self.poses)
        for name, default in RUN_SECTIONS.items():  # a mapping: fields over the default run
            if isinstance(getattr(self, name), Mapping):
                setattr(self, name, default().updated(getattr(self, name), f"BenchConfig {name}"))

    @staticmethod
    def full() -> BenchConfig:
        """Every target and variant, two seeds, fitting in the loop every 4th step (CPU: hours)."""
        return BenchConfig(adapt=replace(bench_adapt_run(), fit_every=4))

    @staticmethod
    def quick() -> BenchConfig:
        """Under 20 minutes on 2 idle cores. Against :meth:`full` it drops: the targets ``lowres-52``
        and ``uap-8`` (keeps ``lowres-32``, ``thermal``, ``uap-16``, ``scene``), the variants ``bce``,
        ``chamfer_points`` and ``ls_lt_mas`` (keeps source, l2, ls, ls_lt, mas, oracle), fitting in
        the loop; and shrinks everything (source 1500 samples / 600 steps, targets 200 train / 100
        test, 60 adaptation steps of batch 8, UAP 60 steps on 128 held-out images, a narrower
        network. Its targets are an explicit list, the four the quick timing was measured on: the
        issue-14 targets (motion, cctv, occluded, bgsub, clothed) joined :data:`ALL_TARGETS` (the
        full run) but not the quick one; add them with ``--targets``. unsup: 1500 studio samples, stage 1 600 steps, stage 2 100 steps of batch 8, one seed and
        the rows stage1, full, no_psi_no_g, spp_5, scratch)."""
        return BenchConfig(
            width=16, hidden=128, source_train=1500, source_heldout=128,
            source=replace(bench_source_run(), steps=600, batch_size=16),
            targets=("lowres-32", "thermal", "uap-16", "scene"), target_train=200, target_test=100,
            uap_steps=60, uap_batch=16, variants=("source", "l2", "ls", "ls_lt", "mas", "oracle"),
            adapt=replace(bench_adapt_run(), steps=60, batch_size=8), curve_points=3,
            unsup_train=1500, unsup_target_train=200, unsup_test=100,
            unsup_stage1=replace(bench_unsup_stage1_run(), steps=600, batch_size=16),
            unsup=replace(bench_unsup_run(), steps=100, batch_size=8), unsup_seeds=(0,),
            unsup_variants=("stage1", "full", "no_psi_no_g", "spp_5", "scratch"),
        )

    def model(self, heads=("mesh",)):
        return ModelConfig(resolution=self.resolution, width=self.width, hidden=self.hidden, heads=tuple(heads))

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["poses"] = asdict(self.poses)
        for name in RUN_SECTIONS:
            d[name] = getattr(self, name).to_dict()
        return d

    def updated(self, changes: Mapping) -> BenchConfig:
        """This configuration with the fields in ``changes`` replaced; ``poses`` and the run templates
        (``source``, ``adapt``, ``unsup``) may be partial mappings (e.g. ``{"adapt": {"steps": 60}}``)
        whose other fields keep this configuration's values. Unknown keys raise ``ConfigError``."""
        _check_bench_keys(changes)
        d = dict(changes)
        if isinstance(d.get("poses"), Mapping):
            d["poses"] = _pose_distribution({**asdict(self.poses), **d["poses"]})
        for name in RUN_SECTIONS:
            if isinstance(d.get(name), Mapping):
                d[name] = getattr(self, name).updated(d[name], f"BenchConfig {name}")
        return replace(self, **d)

    def updated_from_yaml(self, path) -> BenchConfig:
        """This configuration with the fields set in a YAML mapping replaced (see :meth:`updated`)."""
        return self.updated(load_yaml_mapping(path))

    @staticmethod
    def from_dict(d: Mapping) -> BenchConfig:
        """A configuration of a (possibly partial, possibly nested) mapping; unknown keys refused."""
        return BenchConfig().updated(d)

    def validate(self) -> BenchConfig:
        for name, default in RUN_SECTIONS.items():
            mode = default().mode
            if getattr(self, name).mode != mode:
                raise ConfigError(f"BenchConfig {name}.mode must stay {mode!r}, got {getattr(self, name).mode!r}")
        bad = [v for v in self.variants if v not in VARIANT_ORDER]
        if bad:
            raise ConfigError(f"unknown variant(s) {bad}; known: {list(VARIANT_ORDER)}")
        bad = [v for v in self.unsup_variants if v not in UNSUP_VARIANTS]
        if bad:
            raise ConfigError(f"unknown unsup variant(s) {bad}; known: {list(UNSUP_VARIANTS)}")
        bad = [h for h in self.unsup_heads if h not in ("joints", "mesh")]
        if bad or not self.unsup_heads:
            raise ConfigError(f"unsup_heads must name joints and/or mesh, got {list(self.unsup_heads)}")
        bad = [t for t in self.unsup_targets if t.partition("+")[0] not in DOMAINS or t.startswith(("studio", "uap"))]
        if bad:
            raise ConfigError(f"unknown unsup target(s) {bad}: a synthetic domain other than studio and the UAP "
                              f"ones (they need a source model first), optionally +<degradation>")
        check_topology_gradient(self.adapt.topology_binarization, self.adapt.topology_temperature)
        register_uap_domains()
        bad = [t for t in self.targets if t.partition("+")[0] not in DOMAINS or t.partition("+")[0] == "studio"]
        if bad:
            raise ConfigError(f"unknown target domain(s) {bad}; known: {sorted(set(DOMAINS) - {'studio'})}, "
                              f"each optionally as <domain>+<degradation> (erode<k>, dilate<k>, {', '.join(DEGRADATIONS)})")
        for target in self.targets:
            parse_target(target)
        if not self.seeds or not self.unsup_seeds:
            raise ConfigError("at least one seed is needed")
        if self.curve_points < 1:
            raise ConfigError("curve_points must be >= 1")
        check_bounded("oracle_lr", self.oracle_lr, 0.0, inclusive=False)
        check_bounded("prior_weight", self.prior_weight, 0.0, inclusive=True)
        if self.peer_python:
            resolve_peer_python(PeersConfig(peer_python=self.peer_python))  # one line when it is missing
        if self.peer_worker and not Path(self.peer_worker).is_file():
            raise ConfigError(f"peer_worker {self.peer_worker} does not exist")
        if isinstance(self.peer_resolution, bool) or not isinstance(self.peer_resolution, int) \
                or self.peer_resolution < 16:
            raise ConfigError(f"peer_resolution must be an int >= 16, got {self.peer_resolution!r}")
        return self


def _check_bench_keys(d: Mapping) -> None:
    moved = sorted(k for k in d if k in MOVED_KEYS)
    if moved:
        raise ConfigError(f"unknown BenchConfig key(s) {moved}: the training runs are TrainConfig templates now ("
                          + ", ".join(f"{k} -> {MOVED_KEYS[k]}" for k in moved)
                          + "), e.g. `adapt: {steps: 60}` in YAML")
    check_known_fields(BenchConfig, d, "BenchConfig")


def _pose_distribution(d: Mapping) -> PoseDistribution:
    check_known_fields(PoseDistribution, d, "BenchConfig poses")
    return PoseDistribution(**d)


# ---------------------------------------------------------------------- helpers
def _metrics(full: dict) -> dict:
    return {k: float(full[k]) for k in METRICS if k in full}


def _write_json(path: Path, payload: dict) -> None:
    atomic_write_json(path, payload)


def _load_state(path: Path, cfg: BenchConfig, kind: str, log: _Log) -> dict:
    """The partial results in the run folder; a run with another configuration is refused (except for
    the lists of targets, variants and seeds, which may grow or shrink between runs)."""
    if not path.exists():
        return {"cells": {}}
    state = json.loads(path.read_text())
    free = {"targets", "variants", "seeds", "curve_variants", "unsup_variants", "unsup_seeds", "unsup_targets",
            "unsup_heads", "device", "eval_batch", "peer_python", "peer_worker", "peer_resolution", "peer_timeout",
            *(f"{name}.device" for name in RUN_SECTIONS)}  # the runs take the benchmark's device
    mine = _dotted(json.loads(json.dumps(cfg.to_dict())))
    saved = _dotted(state.get("config", {}))
    # A run field added since the folder was written ran at its default (new fields default to the
    # old behaviour), so a saved config without it matches a config at that default.
    run_defaults = json.loads(json.dumps(TrainConfig().to_dict()))
    for key in mine:
        section, _, name = key.partition(".")
        if key not in saved and section in RUN_SECTIONS and name in run_defaults:
            saved[key] = run_defaults[name]
    differing = sorted(k for k in mine if k not in free and saved.get(k) != mine[k])
    if differing:
        raise ConfigError(f"{path}: the {kind} benchmark there ran with another configuration (differs in "
                          f"{differing}); choose another --out or delete it")
    log(f"resuming: {len(state.get('cells', {}))} finished cell(s) in {path}")
    state.setdefault("cells", {})
    return state


def _dotted(config: dict) -> dict:
    """A ``BenchConfig.to_dict`` with the sections flattened: ``{"adapt": {"lr": x}}`` -> ``{"adapt.lr": x}``."""
    out = {}
    for key, value in config.items():
        if isinstance(value, dict) and key in ("poses", *RUN_SECTIONS):
            out.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            out[key] = value
    return out


def aggregate(cells: dict, targets, variants, seeds) -> dict:
    """``results[target][variant]`` with ``<metric>_mean``, ``<metric>_std`` (sample std over seeds, 0
    for one seed), ``per_seed`` and ``n_seeds``, from cells keyed ``target|variant|seed``."""
    results: dict = {}
    for t in targets:
        for v in variants:
            per_seed = {str(s): cells[f"{t}|{v}|{s}"] for s in seeds if f"{t}|{v}|{s}" in cells}
            if not per_seed:
                continue
            entry: dict = {"n_seeds": len(per_seed), "per_seed": per_seed}
            for m in METRICS:
                values = [c[m] for c in per_seed.values() if m in c and c[m] is not None]
                if values:
                    entry[f"{m}_mean"] = float(np.mean(values))
                    entry[f"{m}_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
            results.setdefault(t, {})[v] = entry
    return results


def shift_strength(results: dict, threshold: float = WEAK_SHIFT) -> dict:
    """Per target with a ``source`` and an ``oracle`` entry: how much the target shifts the source
    model, ``{"oracle_gain": {metric: (source - oracle) / source}, "weak": oracle_gain["pa_mpjpe"] <
    threshold, "gap_closed": {variant: {metric: (source - variant) / (source - oracle)}}}`` for
    ``metric`` in ``pa_mpjpe`` and ``mpjpe`` (means over seeds). The share of the gap a variant closes
    is ``None`` where the oracle does not beat the source on that metric (no gap to close)."""
    out = {}
    for t, row in results.items():
        if "source" not in row or "oracle" not in row:
            continue
        gain, closed = {}, {}
        for m in ("pa_mpjpe", "mpjpe"):
            src, orc = row["source"].get(f"{m}_mean"), row["oracle"].get(f"{m}_mean")
            if src is None or orc is None:
                continue
            gain[m] = (src - orc) / src if src else None
            for v in VARIANT_ORDER:
                if v in ("source", "oracle") or f"{m}_mean" not in row.get(v, {}):
                    continue
                closed.setdefault(v, {})[m] = (src - row[v][f"{m}_mean"]) / (src - orc) if src > orc else None
        if gain.get("pa_mpjpe") is None:
            continue
        out[t] = {"oracle_gain": gain, "weak": gain["pa_mpjpe"] < threshold, "threshold": threshold,
                  "gap_closed": closed}
    return out


def with_shift(results: dict, peer_rows: Mapping[str, dict] | None = None) -> dict:
    """``results`` with ``results[target]["shift"]`` (:func:`shift_strength`) and, where given,
    ``results[target]["mediapipe"]`` (the peer's scores) added; the variants' entries unchanged."""
    for t, shift in shift_strength(results).items():
        results[t]["shift"] = shift
    for t, row in (peer_rows or {}).items():
        if t in results:
            results[t]["mediapipe"] = row
    return results


def ablation_order_check(results: dict) -> dict:
    """Per target and on the mean over targets: does PA-MPJPE fall along source > l2 > ls > ls_lt?"""
    out = {}
    means = {v: [] for v in ABLATION_ORDER}
    for t, row in results.items():
        row = {v: e for v, e in row.items() if v in VARIANT_ORDER}
        if all(v in row for v in ABLATION_ORDER):
            values = [row[v]["pa_mpjpe_mean"] for v in ABLATION_ORDER]
            out[t] = {"pa_mpjpe": dict(zip(ABLATION_ORDER, values)),
                      "holds": all(a > b for a, b in zip(values, values[1:])),
                      "ls_lt_vs_source_pct": 100.0 * (values[-1] - values[0]) / values[0]}
            for v, x in zip(ABLATION_ORDER, values):
                means[v].append(x)
    if all(means.values()):
        values = [float(np.mean(means[v])) for v in ABLATION_ORDER]
        out["mean_over_targets"] = {"pa_mpjpe": dict(zip(ABLATION_ORDER, values)),
                                    "holds": all(a > b for a, b in zip(values, values[1:])),
                                    "ls_lt_vs_source_pct": 100.0 * (values[-1] - values[0]) / values[0],
                                    "paper_pa_mpjpe": PAPER_ABLATION,
                                    "paper_ls_lt_vs_source_pct": 100.0 * (95.1 - 134.7) / 134.7}
    return out


def markdown_table(results: dict, targets, variants, metric: str = "pa_mpjpe", title: str | None = None) -> str:
    """Rows: variants (ablation order first); columns: targets and their mean; cells ``mean ± std``."""
    targets = [t for t in targets if t in results]
    rows = [v for v in VARIANT_ORDER if v in variants and any(v in results[t] for t in targets)]
    names = [t + (" (weak shift)" if results[t].get("shift", {}).get("weak") else "") for t in targets]
    head = f"| {metric.upper().replace('_', '-')} (mm) | " + " | ".join(names) + " | mean |"
    lines = ([f"**{title}**", ""] if title else []) + [head, "|---" * (len(targets) + 2) + "|"]
    for v in rows:
        cells, means = [], []
        for t in targets:
            e = results[t].get(v)
            if e is None or f"{metric}_mean" not in e:
                cells.append("–")
                continue
            means.append(e[f"{metric}_mean"])
            cells.append(f"{e[f'{metric}_mean']:.1f} ± {e[f'{metric}_std']:.1f}")
        mean = f"{np.mean(means):.1f}" if len(means) == len(targets) else "–"
        lines.append(f"| {v} | " + " | ".join(cells) + f" | {mean} |")
    return "\n".join(lines)


# ---------------------------------------------------------------------- bench adapt
def prepare_adapt(cfg: BenchConfig, out: Path, log: _Log, body) -> dict:
    """Source data, source model, UAPs and target splits (each reused when already in ``out``)."""
    data = out / "data"
    res, seed = cfg.resolution, cfg.data_seed
    poses = cfg.poses
    info: dict = {"targets": {}}
    if cfg.source_checkpoint:
        ckpt = Path(cfg.source_checkpoint)
        saved = load_checkpoint(ckpt)["config"]["model"]
        if int(saved["resolution"]) != res:
            raise ConfigError(f"{ckpt}: source model resolution {saved['resolution']} differs from the benchmark's "
                              f"{res}")
        log(f"using the source checkpoint {ckpt}")
    else:
        source = _generate(data / "studio" / "train", "studio", cfg.source_train, res, seed, "train", True, body, log,
                           poses=poses)
        log(f"source model: pretrain {cfg.source.steps} steps (resumes / reuses {out / 'runs' / 'source'})")
        ckpt = train(replace(cfg.source, data=str(source), out=str(out / "runs" / "source"), seed=seed,
                             device=cfg.device, model=cfg.model()), progress=True).checkpoint
    info["source_checkpoint"] = str(ckpt)
    needs_uap = [t for t in cfg.targets if t.startswith("uap-")]
    if needs_uap:
        heldout = _generate(data / "studio" / "heldout", "studio", cfg.source_heldout, res, seed, "heldout", True,
                            body, log, poses=poses)
    for t in cfg.targets:
        perturbation = None
        if t.startswith("uap-"):
            eps = float(t.split("-", 1)[1])
            register_uap_domains((eps,))
            npy = out / "uap" / f"{t}.npy"
            if not npy.exists():
                shutil.rmtree(data / t, ignore_errors=True)  # splits made with another perturbation
                log(f"computing the UAP for {t} ({cfg.uap_steps} steps on {cfg.source_heldout} held-out images)")
                build_uap_domain(ckpt, heldout, eps, npy, steps=cfg.uap_steps, batch_size=cfg.uap_batch,
                                 seed=seed, device=cfg.device, body=body)
            uap_info = json.loads(npy.with_suffix(".json").read_text())
            log(f"{t}: source joint error on held-out images {1000 * uap_info['clean_joint_error_m']:.1f} mm clean, "
                f"{1000 * uap_info['uap_joint_error_m']:.1f} mm with the UAP")
            info.setdefault("uap", {})[t] = uap_info
            perturbation = load_uap(npy, pixels=True)
        info["targets"][t] = target_splits(cfg, data / t, t, {"train": cfg.target_train, "test": cfg.target_test},
                                           body, log, perturbation)
    return info


def target_splits(cfg: BenchConfig, folder: Path, target: str, sizes: Mapping[str, int], body, log: _Log,
                  perturbation=None) -> dict[str, str]:
    """The labelled splits ``{name: path}`` of a target ``<domain>[+<degradation>]`` in ``folder``
    (``sizes``: samples per split name; each split reused when already there). A degradation
    applies to the masks of the split named ``train`` only (what adaptation reads); the others keep
    the domain's own."""
    domain, degradation = parse_target(target)
    splits = {}
    for split, n in sizes.items():
        path = _generate(folder / split, domain, n, cfg.resolution, cfg.data_seed, split, True, body, log,
                         perturbation, cfg.poses)
        if degradation is not None and split.endswith("train") and \
                read_meta(path).get("attrs", {}).get("mask_degradation") is None:
            log(f"degrading the masks of {target}/{split} ({degradation})")
            degrade_dataset(path, degradation, cfg.data_seed)
        splits[split] = str(path)
    return splits


def _cell_losses(cfg: BenchConfig, variant: str) -> dict[str, float]:
    losses = dict(ADAPT_LOSSES[variant])
    if cfg.prior_weight > 0:
        losses["prior"] = cfg.prior_weight
    return losses


def _curve_steps(cfg: BenchConfig) -> list[int]:
    n = cfg.curve_points
    steps = cfg.adapt.steps
    return sorted({max(1, round(steps * (i + 1) / n)) for i in range(n)}) if steps else [0]


def run_cell(cfg: BenchConfig, target: str, variant: str, seed: int, info: dict, out: Path, model_config,
             focal: float, log: _Log) -> dict:
    """Train (unless ``source``) and evaluate one cell; returns its metrics (with a ``curve`` for the
    curve variants)."""
    start = time.time()
    splits = info["targets"][target]
    ckpt = info["source_checkpoint"]
    if variant == "source":
        result = _metrics(evaluate_checkpoint(ckpt, splits["test"], cfg.device, cfg.eval_batch))
        result["seconds"] = round(time.time() - start, 1)
        return result
    run_dir = out / "runs" / target / variant / f"seed{seed}"
    shutil.rmtree(run_dir, ignore_errors=True)  # resume is per cell: an unfinished cell starts again
    if variant == "oracle":
        base = TrainConfig(mode="oracle", data=splits["train"], init_checkpoint=ckpt, out=str(run_dir),
                           losses=dict(DEFAULT_LOSSES["pretrain"]), steps=cfg.adapt.steps,
                           batch_size=cfg.adapt.batch_size, lr=cfg.oracle_lr, seed=seed, device=cfg.device,
                           log_every=10, checkpoint_every=10**9, focal=focal, model=model_config)
    else:
        base = replace(cfg.adapt, data=splits["train"], init_checkpoint=ckpt, out=str(run_dir),
                       losses=_cell_losses(cfg, variant), seed=seed, device=cfg.device, focal=focal, model=model_config)
    stops = _curve_steps(cfg) if variant in cfg.curve_variants else [cfg.adapt.steps]
    curve = []
    result = None
    for stop in stops:  # training to ``stop`` resumes the run's checkpoint: the same run as one call
        trained = train(replace(base, steps=stop), progress=False)
        metrics = _metrics(evaluate_checkpoint(trained.checkpoint, splits["test"], cfg.device, cfg.eval_batch))
        curve.append({"step": stop, "pa_mpjpe": metrics["pa_mpjpe"], "mpjpe": metrics["mpjpe"]})
        result = metrics
    if len(stops) > 1:
        result["curve"] = curve
    if trained.history:
        result["final_loss"] = trained.history[-1].get("loss")
    result["seconds"] = round(time.time() - start, 1)
    return result


def mediapipe_rows(cfg: BenchConfig, out: Path, info: dict, body, log: _Log, cached: Mapping | None = None) -> dict:
    """The MediaPipe row per target (with ``cfg.peer_python``; ``{}`` without): the peer of
    :mod:`maskpose.bench.peers` on the target's test split rendered at ``cfg.peer_resolution`` (the
    same seed, so the same people and cameras as the benchmark's test split, at the peer's fair
    resolution), scored by :func:`~maskpose.bench.peers.score_peer` (PCK of the limb keypoints,
    misses count as failures; PA-MPJPE over the 12 limb joints + mid-hips, on its detections). A
    degradation changes only train masks, so ``motion+erode2`` shares ``motion``'s row; a UAP
    target's perturbation exists at the benchmark's resolution only, so the peer gets its own test
    split, resized to ``peer_resolution`` by the worker. ``cached`` rows of the same resolution are
    reused."""
    if not cfg.peer_python:
        return {}
    python = resolve_peer_python(PeersConfig(peer_python=cfg.peer_python))
    worker = Path(cfg.peer_worker) if cfg.peer_worker else WORKER
    res = cfg.peer_resolution
    rows: dict = {}
    for t in cfg.targets:
        old = (cached or {}).get(t)
        if old is not None and old.get("resolution") == res:
            rows[t] = old
            continue
        domain, _ = parse_target(t)
        if t.startswith("uap-"):
            path, size = Path(info["targets"][t]["test"]), res
        else:
            path = _generate(out / "data" / domain / f"test_peer{res}", domain, cfg.target_test, res, cfg.data_seed,
                             "test", True, body, log, poses=cfg.poses)
            size = None
        data = MaskposeDataset(path)
        gt2d = torch.from_numpy(np.asarray(data.arrays["joints2d"][data.indices], np.float32))
        gt3d = np.asarray(data.arrays["joints3d"][data.indices], np.float64)
        log(f"{t}: MediaPipe on {len(data)} test samples at {size or data.resolution[0]} px")
        peer = run_peer(python, worker, path, out / "peer" / f"{t}.npz", t, size, cfg.peer_timeout)
        rows[t] = score_peer(peer, gt2d, gt3d, float(crop_side(data))) | {
            "resolution": res, "dataset": str(path), "protocol": "bench peers: 12 limb joints + mid-hips"}
    return rows


def _start(cfg: BenchConfig, out, kind: str, printer, threads: int | None):
    """What both benchmarks do first: validate, set the threads, make ``out``, open the log and the
    resumable state ``out/bench_<kind>.json``, build the body. Returns ``(out, log, state_path,
    state, body)``."""
    cfg.validate()
    if threads:
        torch.set_num_threads(threads)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    log = _Log(kind, printer)
    state_path = out / f"bench_{kind}.json"
    return out, log, state_path, _load_state(state_path, cfg, kind, log), AnnyBody(device=cfg.device)


def run_adapt_benchmark(cfg: BenchConfig, out, json_path=None, printer: Callable[[str], None] | None = None,
                        plots: bool = True, threads: int | None = None) -> dict:
    """Run (or resume) the adaptation benchmark in ``out``; returns the JSON payload (also written to
    ``out/bench_adapt.json`` after every cell and to ``json_path`` at the end). ``threads``:
    ``torch.set_num_threads`` first (default: torch's choice)."""
    out, log, state_path, state, body = _start(cfg, out, "adapt", printer, threads)
    info = prepare_adapt(cfg, out, log, body)
    saved = load_checkpoint(info["source_checkpoint"])["config"]
    model_config = ModelConfig.from_dict(saved["model"])
    focal = float(saved.get("focal", 0.0) or 0.0)

    cells = state["cells"]
    todo = [(t, v, s) for t in cfg.targets for v in VARIANT_ORDER if v in cfg.variants for s in cfg.seeds]
    payload: dict = {}

    peer_rows = {t: r for t, r in state.get("mediapipe", {}).items() if t in cfg.targets} if cfg.peer_python else {}

    def save(elapsed: float) -> dict:
        results = with_shift(aggregate(cells, cfg.targets, cfg.variants, cfg.seeds), peer_rows)
        payload.clear()
        payload.update({
            "benchmark": "adapt", "config": cfg.to_dict(), "source_checkpoint": info["source_checkpoint"],
            "uap": info.get("uap", {}), "datasets": info["targets"], "cells": cells, "results": results,
            **({"mediapipe": peer_rows} if peer_rows else {}),
            "ablation_order": ablation_order_check(results),
            "complete": all(f"{t}|{v}|{s}" in cells for t, v, s in todo),
            "seconds_this_run": round(elapsed, 1),
        })
        _write_json(state_path, payload)
        return payload

    source_cache: dict[str, dict] = {}
    done_before = sum(f"{t}|{v}|{s}" in cells for t, v, s in todo)
    for i, (t, v, s) in enumerate(todo, 1):
        key = f"{t}|{v}|{s}"
        if key in cells:
            continue
        if v == "source" and t in source_cache:  # one source model: the same numbers for every seed
            cells[key] = dict(source_cache[t])
        else:
            log(f"cell {i}/{len(todo)}: target {t}, variant {v}, seed {s}")
            cells[key] = run_cell(cfg, t, v, s, info, out, model_config, focal, log)
            if v == "source":
                source_cache[t] = cells[key]
            c = cells[key]
            log(f"  {key}: PA-MPJPE {c['pa_mpjpe']:.1f} mm, MPJPE {c['mpjpe']:.1f} mm, "
                f"IoU {c.get('silhouette_iou', float('nan')):.1f} % ({c['seconds']:.0f} s)")
        save(time.time() - log.start)
    peer_rows.update(mediapipe_rows(cfg, out, info, body, log, peer_rows))
    payload = save(time.time() - log.start)
    log(f"{len(todo) - done_before} cell(s) run, {done_before} reused")
    md = adapt_markdown(payload, cfg)
    (out / "bench_adapt.md").write_text(md + "\n")
    if plots:
        plot_bars(payload["results"], cfg, out / "bench_adapt_bars.png")
        plot_curves(payload, cfg, out / "bench_adapt_steps.png")
    if json_path is not None:
        _write_json(Path(json_path), payload)
    log(f"wrote {state_path}, {out / 'bench_adapt.md'}" + (f", {json_path}" if json_path else ""))
    print(md, flush=True) if printer is None else printer(md)
    return payload


def shift_markdown(results: dict, targets) -> str:
    """The shift table: the oracle's gain over the source per target (weak below 20 % on PA-MPJPE)
    and the share of the source-oracle gap each variant closes."""
    targets = [t for t in targets if "shift" in results.get(t, {})]
    if not targets:
        return ""

    def pct(x):
        return "–" if x is None else f"{100 * x:.0f} %"

    threshold = results[targets[0]]["shift"]["threshold"]
    lines = [f"**Shift strength**: the oracle's gain over the source, (source − oracle) / source, PA-MPJPE / MPJPE; "
             f"below {100 * threshold:.0f} % on PA-MPJPE: weak shift. Then the share of the gap from source to "
             "oracle each variant closes on PA-MPJPE, (source − variant) / (source − oracle).", "",
             "| | " + " | ".join(targets) + " |", "|---" * (len(targets) + 1) + "|"]
    cells = []
    for t in targets:
        sh = results[t]["shift"]
        cell = f"{pct(sh['oracle_gain'].get('pa_mpjpe'))} / {pct(sh['oracle_gain'].get('mpjpe'))}"
        cells.append(cell + (" **weak shift**" if sh["weak"] else ""))
    lines.append("| oracle gain | " + " | ".join(cells) + " |")
    variants = [v for v in VARIANT_ORDER if any(v in results[t]["shift"]["gap_closed"] for t in targets)]
    for v in variants:
        row = [pct(results[t]["shift"]["gap_closed"].get(v, {}).get("pa_mpjpe")) for t in targets]
        lines.append(f"| gap closed: {v} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def mediapipe_markdown(results: dict, targets) -> str:
    """The MediaPipe row per target (``bench peers``' protocol), where it was run."""
    targets = [t for t in targets if "mediapipe" in results.get(t, {})]
    if not targets:
        return ""

    def fmt(x):
        return "–" if x is None else f"{x:.1f}"

    rows = {t: results[t]["mediapipe"] for t in targets}
    res = sorted({r["resolution"] for r in rows.values()})
    lines = [f"**MediaPipe Pose** (`bench peers`' protocol) on the same test samples at {'/'.join(map(str, res))} px: "
             "detected %, PCK@0.1 of the limb keypoints (misses count as failures), PA-MPJPE (mm) over the 12 limb "
             "joints + mid-hips on its detections (n); not the 17-joint PA-MPJPE of the tables above.", "",
             "| mediapipe | " + " | ".join(targets) + " |", "|---" * (len(targets) + 1) + "|",
             "| detected % | " + " | ".join(fmt(rows[t].get("detection_rate")) for t in targets) + " |",
             "| PCK@0.1 | " + " | ".join(fmt(rows[t].get("pck2d@0.1")) for t in targets) + " |",
             "| PA-MPJPE (n) | " + " | ".join(f"{fmt(rows[t].get('pa_mpjpe'))} ({rows[t].get('pa_mpjpe_count', 0)})"
                                            for t in targets) + " |"]
    return "\n".join(lines)


def adapt_markdown(payload: dict, cfg: BenchConfig) -> str:
    results = payload["results"]
    parts = [markdown_table(results, cfg.targets, cfg.variants, "pa_mpjpe",
                            f"PA-MPJPE (mm) on the target test splits, mean ± std over seeds {list(cfg.seeds)}"),
             "", markdown_table(results, cfg.targets, cfg.variants, "mpjpe", "MPJPE (mm)"), ""]
    for extra in (shift_markdown(results, cfg.targets), mediapipe_markdown(results, cfg.targets)):
        if extra:
            parts += [extra, ""]
    iou = markdown_table(results, cfg.targets, cfg.variants, "silhouette_iou", "Silhouette IoU (%)")
    parts += [iou.replace("SILHOUETTE-IOU (mm)", "IoU (%)"), ""]
    order = payload.get("ablation_order", {})
    if order:
        parts.append("**Ablation order** (paper: source 134.7 > L2 129.6 > L_S 106.2 > L_S+L_T 95.1, −29 %):")
        parts.append("")
        for t, o in order.items():
            chain = " → ".join(f"{v} {o['pa_mpjpe'][v]:.1f}" for v in ABLATION_ORDER)
            parts.append(f"- {t}: {chain} — decreasing order {'holds' if o['holds'] else 'does not hold'}; "
                         f"ls_lt vs source {o['ls_lt_vs_source_pct']:+.1f} %")
    return "\n".join(parts)


def plot_bars(results: dict, cfg: BenchConfig, path: Path) -> Path:
    """Grouped bars: PA-MPJPE per target (groups) and variant (bars), error bars = std over seeds."""
    targets = [t for t in cfg.targets if t in results]
    variants = [v for v in VARIANT_ORDER if v in cfg.variants]
    fig = Figure(figsize=(max(6.0, 1.6 * len(targets) + 2), 3.6))
    ax = fig.subplots()
    width = 0.8 / max(1, len(variants))
    for j, v in enumerate(variants):
        xs = [i + (j - (len(variants) - 1) / 2) * width for i in range(len(targets))]
        ys = [results[t].get(v, {}).get("pa_mpjpe_mean", np.nan) for t in targets]
        es = [results[t].get(v, {}).get("pa_mpjpe_std", 0.0) for t in targets]
        ax.bar(xs, ys, width, yerr=es, label=v, capsize=2)
    ax.set_xticks(range(len(targets)), targets)
    ax.set_ylabel("PA-MPJPE (mm)")
    finite = [results[t][v]["pa_mpjpe_mean"] for t in targets for v in variants if v in results[t]]
    if finite:
        ax.set_ylim(0.9 * min(finite) - 5, 1.05 * max(finite) + 5)
    ax.legend(fontsize=7, ncol=3)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title("Adaptation benchmark: PA-MPJPE per target (lower is better)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return path


def plot_curves(payload: dict, cfg: BenchConfig, path: Path) -> Path | None:
    """PA-MPJPE against adaptation steps (step 0: the source model) for the curve variants, per target,
    mean over seeds."""
    cells, results = payload["cells"], payload["results"]
    targets = [t for t in cfg.targets if t in results]
    curve_variants = [v for v in cfg.curve_variants if v in cfg.variants]
    if not targets or not curve_variants:
        return None
    fig = Figure(figsize=(3.2 * len(targets), 3.0))
    axes = fig.subplots(1, len(targets), squeeze=False)
    for ax, t in zip(axes[0], targets):
        start = results[t].get("source", {}).get("pa_mpjpe_mean")
        for v in curve_variants:
            curves = [cells[f"{t}|{v}|{s}"].get("curve") for s in cfg.seeds if f"{t}|{v}|{s}" in cells]
            curves = [c for c in curves if c]
            if not curves:
                continue
            steps = [p["step"] for p in curves[0]]
            ys = np.array([[p["pa_mpjpe"] for p in c] for c in curves]).mean(0).tolist()
            if start is not None:
                steps, ys = [0] + steps, [start] + ys
            ax.plot(steps, ys, marker="o", label=v)
        ax.set_title(t, fontsize=9)
        ax.set_xlabel("adaptation step")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("PA-MPJPE (mm)")
    axes[0][0].legend(fontsize=7)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return path


__all__ = ["ADAPT_LOSSES", "ALL_TARGETS", "BenchConfig", "UNSUP_VARIANTS", "VARIANT_ORDER", "WEAK_SHIFT",
           "ablation_order_check", "aggregate", "markdown_table", "mediapipe_markdown", "mediapipe_rows",
           "run_adapt_benchmark", "shift_markdown", "shift_strength", "with_shift"]

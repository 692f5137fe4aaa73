"""``maskpose bench unsup``: Mask as Supervision under the released two-stage protocol
(docs/design.md §1.2, docs/benchmark.md "Mask as Supervision").

For each head in ``BenchConfig.unsup_heads`` (``joints``: the integral joint head; ``mesh``: the
body model's joints), one **stage 1** model is trained with 3D labels on the studio split. Then, for
every target in ``unsup_targets`` and every seed, **stage 2** starts from it on the target's images
and masks, with a supervised studio batch in every step (``BenchConfig.unsup``, mode
``train-unsup``). The rows:

* ``stage1`` — the stage-1 model on the target, no stage 2;
* ``full`` — the mask terms (skeleton, released one-sided, and physique ψ) with the geodesic
  weights G and the bone-length symmetry loss;
* ``no_g``, ``no_psi``, ``no_psi_no_g``, ``no_symmetry`` — the same without G, ψ, both, or symmetry;
* ``no_masks`` — stage 2 without the mask terms (symmetry and the source batches only): the control
  that tells the masks' gain from that of the extra supervised steps;
* ``spp_1``, ``spp_5`` — the ``full`` model after supervised post-processing fitted on 1 % / 5 % of
  the target train split's labels (:func:`maskpose.train.evaluate.spp_metrics`);
* ``scratch`` — the masks-only run from random weights, no source batches (the negative control).

Every row is scored on the target's labelled test split without any ground-truth help (``mpjpe``,
``pa_mpjpe``, ``n_mpjpe``) and with the per-sample flip to the better side (``mpjpe_flip``,
``pa_mpjpe_flip``: the published numbers use it), with the ambiguity ratio. Results:
``results[target][head][variant]["<metric>_mean"]`` in ``out/bench_unsup.json`` (updated after
every cell; a run resumes by skipping the cells found there) and the tables in ``bench_unsup.md``.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from maskpose.bench.adapt import (
    UNSUP_VARIANTS,
    BenchConfig,
    _metrics,
    _start,
    _write_json,
    aggregate,
    target_splits,
)
from maskpose.bench.common import _generate
from maskpose.models.regressor import ModelConfig
from maskpose.train.evaluate import evaluate_checkpoint, spp_metrics
from maskpose.train.loop import supervised_losses, train

#: Stage-2 variants: TrainConfig overrides over ``BenchConfig.unsup`` (losses are added per head).
STAGE2_VARIANTS: dict[str, dict] = {
    "full": {},
    "no_g": {"mas_geodesic": False},
    "no_psi": {"mas_physique": False},
    "no_psi_no_g": {"mas_physique": False, "mas_geodesic": False},
    "no_symmetry": {},
    "no_masks": {},
}
#: SPP rows: the share of the target train split's labels the map is fitted on.
SPP_FRACTIONS = {"spp_1": 0.01, "spp_5": 0.05}
#: The paper's MaS ablation (H36M MPJPE with the flip and the best hypothesis; docs/design.md §1.2).
PAPER_MAS = {"no_psi_no_g": 127.4, "no_g": 102.6, "full": 95.9, "spp": 65.5}
#: Metric columns of the tables: (key, label).
COLUMNS = (("mpjpe", "MPJPE"), ("mpjpe_flip", "MPJPE flip"), ("pa_mpjpe", "PA-MPJPE"),
           ("pa_mpjpe_flip", "PA flip"), ("ambiguity_ratio", "ambig. %"))


def unsup_model(cfg: BenchConfig, head: str) -> ModelConfig:
    """The network of a head's rows: the benchmark's encoder with the mesh head, or the joint head
    (``unsup_joint_head``, ``unsup_landmarks``)."""
    if head == "mesh":
        return cfg.model(heads=("mesh",))
    return replace(cfg.model(heads=("joints",)), joint_head=cfg.unsup_joint_head,
                   num_landmarks=cfg.unsup_landmarks).validate()


def stage2_losses(cfg: BenchConfig, head: str, variant: str) -> dict[str, float]:
    """The losses of a stage-2 (or ``scratch``) row: the mask terms (not in ``no_masks``), the
    symmetry loss (not in ``no_symmetry`` and ``scratch``), and on the mesh head the pose prior
    (``prior_weight``)."""
    losses = {} if variant == "no_masks" else {"mas": cfg.unsup_mas_weight}
    if variant not in ("no_symmetry", "scratch") and cfg.unsup_symmetry_weight > 0:
        losses["symmetry"] = cfg.unsup_symmetry_weight
    if head == "mesh" and cfg.prior_weight > 0:
        losses["prior"] = cfg.prior_weight
    return losses


def _splits(paths: dict[str, str]) -> dict[str, str]:
    """``{"train": ..., "test": ...}`` of the ``unsup_train`` / ``unsup_test`` split paths."""
    return {"train": paths["unsup_train"], "test": paths["unsup_test"]}


def run_unsup_benchmark(cfg: BenchConfig, out, json_path=None, printer: Callable[[str], None] | None = None,
                        threads: int | None = None) -> dict:
    """Run (or resume) the Mask-as-Supervision benchmark in ``out`` (module docstring); returns the
    JSON payload, also written to ``out/bench_unsup.json`` after every cell and to ``json_path``."""
    out, log, state_path, state, body = _start(cfg, out, "unsup", printer, threads)
    source = _generate(out / "data" / "studio" / "unsup_train", "studio", cfg.unsup_train, cfg.resolution,
                       cfg.data_seed, "unsup_train", True, body, log, poses=cfg.poses)
    sizes = {"unsup_train": cfg.unsup_target_train, "unsup_test": cfg.unsup_test}
    targets = {t: _splits(target_splits(cfg, out / "data" / t, t, sizes, body, log)) for t in cfg.unsup_targets}
    cells = state["cells"]
    payload: dict = {}

    def save() -> dict:
        results = {t: {h: aggregate(cells, (f"{t}/{h}",), cfg.unsup_variants, cfg.unsup_seeds).get(f"{t}/{h}", {})
                       for h in cfg.unsup_heads} for t in cfg.unsup_targets}
        payload.clear()
        payload.update({"benchmark": "unsup", "config": cfg.to_dict(), "datasets": targets, "cells": cells,
                        "results": results, "acceptance": acceptance(results),
                        "paper_mas_mpjpe": PAPER_MAS, "complete": all(k in cells for k in todo_keys),
                        "seconds_this_run": round(time.time() - log.start, 1)})
        _write_json(state_path, payload)
        return payload

    todo = [(t, h, v, s) for h in cfg.unsup_heads for t in cfg.unsup_targets for v in UNSUP_VARIANTS
            if v in cfg.unsup_variants for s in cfg.unsup_seeds]
    todo_keys = [f"{t}/{h}|{v}|{s}" for t, h, v, s in todo]
    stage1: dict[str, str] = {}
    for i, (t, h, v, s) in enumerate(todo, 1):
        key = f"{t}/{h}|{v}|{s}"
        if key in cells:
            continue
        if h not in stage1 and v != "scratch":
            stage1[h] = _stage1_checkpoint(cfg, out, h, source, log)
        log(f"cell {i}/{len(todo)}: target {t}, head {h}, {v}, seed {s}")
        start = time.time()
        cells[key] = _run_cell(cfg, out, t, h, v, s, targets[t], source, stage1.get(h), log)
        cells[key]["seconds"] = round(time.time() - start, 1)
        c = cells[key]
        log(f"  {key}: MPJPE {c['mpjpe']:.1f} (flip {c['mpjpe_flip']:.1f}) mm, PA-MPJPE {c['pa_mpjpe']:.1f} mm, "
            f"ambiguity {c['ambiguity_ratio']:.1f} % ({c['seconds']:.0f} s)")
        save()
    payload = save()
    md = unsup_markdown(payload, cfg)
    (out / "bench_unsup.md").write_text(md + "\n")
    if json_path is not None:
        _write_json(Path(json_path), payload)
    print(md, flush=True) if printer is None else printer(md)
    return payload


def _stage1_checkpoint(cfg: BenchConfig, out: Path, head: str, source: Path, log) -> str:
    """Train (or resume, or reuse) the head's stage-1 model; returns its checkpoint."""
    model = unsup_model(cfg, head)
    run = replace(cfg.unsup_stage1, data=str(source), out=str(out / "runs" / "stage1" / head), seed=cfg.data_seed,
                  device=cfg.device, model=model, losses=supervised_losses(model))
    log(f"stage 1 ({head} head): {run.steps} supervised steps on {source}")
    return str(train(run, progress=False).checkpoint)


def _run_cell(cfg: BenchConfig, out: Path, target: str, head: str, variant: str, seed: int, splits: dict,
              source: Path, stage1: str | None, log) -> dict:
    evaluate = lambda ckpt: _metrics(evaluate_checkpoint(ckpt, splits["test"], cfg.device, cfg.eval_batch))
    if variant == "stage1":
        return evaluate(stage1)
    if variant in SPP_FRACTIONS:  # post-processing of the full model of this seed (trained first if needed)
        full = _stage2_checkpoint(cfg, out, target, head, "full", seed, splits, source, stage1)
        return _metrics(spp_metrics(full, splits["test"], splits["train"], SPP_FRACTIONS[variant], cfg.device,
                                    cfg.eval_batch, seed=seed))
    return evaluate(_stage2_checkpoint(cfg, out, target, head, variant, seed, splits, source, stage1))


def _stage2_checkpoint(cfg: BenchConfig, out: Path, target: str, head: str, variant: str, seed: int,
                       splits: dict, source: Path, stage1: str | None) -> str:
    run_dir = out / "runs" / target / head / variant / f"seed{seed}"
    checkpoint = run_dir / "checkpoint.pt"
    if variant == "full" and checkpoint.exists():  # the SPP rows reuse the finished full run
        return str(checkpoint)
    shutil.rmtree(run_dir, ignore_errors=True)  # resume is per cell: an unfinished cell starts again
    if variant == "scratch":
        run = replace(cfg.unsup, source_ratio=0.0, source_data="", init_checkpoint="", model=unsup_model(cfg, head))
    else:
        run = replace(cfg.unsup, source_data=str(source), init_checkpoint=stage1, model=unsup_model(cfg, head),
                      **STAGE2_VARIANTS[variant])
    run = replace(run, data=splits["train"], out=str(run_dir), seed=seed, device=cfg.device,
                  losses=stage2_losses(cfg, head, variant))
    return str(train(run, progress=False).checkpoint)


def acceptance(results: dict) -> dict:
    """Issue 13's checks per target and head: stage 2 (``full``) against ``stage1`` (MPJPE change in
    %), the ablation order full <= no_g <= no_psi_no_g, and whether SPP on 5 % lowers MPJPE."""
    out: dict = {}
    for target, heads in results.items():
        for head, row in heads.items():
            mean = {v: e["mpjpe_mean"] for v, e in row.items() if "mpjpe_mean" in e}
            check: dict = {}
            if "stage1" in mean and "full" in mean:
                check["full_vs_stage1_pct"] = 100.0 * (mean["full"] - mean["stage1"]) / mean["stage1"]
                check["full_lowers_mpjpe_10pct"] = check["full_vs_stage1_pct"] <= -10.0
            if "no_masks" in mean and "full" in mean:
                check["full_vs_no_masks_pct"] = 100.0 * (mean["full"] - mean["no_masks"]) / mean["no_masks"]
            if all(v in mean for v in ("full", "no_g", "no_psi_no_g")):
                check["ablation_order_holds"] = mean["full"] <= mean["no_g"] <= mean["no_psi_no_g"]
            if "spp_5" in mean and "full" in mean:
                check["spp_5_lowers_mpjpe"] = mean["spp_5"] < mean["full"]
            out.setdefault(target, {})[head] = check
    return out


def unsup_markdown(payload: dict, cfg: BenchConfig) -> str:
    """One table per target and head: rows in :data:`~maskpose.bench.adapt.UNSUP_VARIANTS` order."""
    lines = [f"**Mask as Supervision, two-stage protocol** (mm on the target test splits; mean ± std over "
             f"seeds {list(cfg.unsup_seeds)}; stage 1: {cfg.unsup_stage1.steps} supervised studio steps, stage 2: "
             f"{cfg.unsup.steps} steps)", ""]
    for target, heads in payload["results"].items():
        for head, row in heads.items():
            if not row:
                continue
            lines += [f"*{target}, {head} head*", "",
                      "| variant | " + " | ".join(label for _, label in COLUMNS) + " |",
                      "|---" * (len(COLUMNS) + 1) + "|"]
            for v in UNSUP_VARIANTS:
                if v not in row:
                    continue
                e = row[v]
                cells = [f"{e[f'{k}_mean']:.1f} ± {e[f'{k}_std']:.1f}" if f"{k}_mean" in e else "–" for k, _ in COLUMNS]
                lines.append(f"| {v} | " + " | ".join(cells) + " |")
            check = payload.get("acceptance", {}).get(target, {}).get(head, {})
            if "full_vs_stage1_pct" in check:
                lines += ["", f"full vs stage1: {check['full_vs_stage1_pct']:+.1f} % MPJPE"]
            lines.append("")
    return "\n".join(lines)


__all__ = ["COLUMNS", "PAPER_MAS", "SPP_FRACTIONS", "STAGE2_VARIANTS", "acceptance", "run_unsup_benchmark",
           "stage2_losses", "unsup_markdown", "unsup_model"]

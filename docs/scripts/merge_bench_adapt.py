"""Merge the JSON of several `maskpose bench adapt` runs into one results file.

    python docs/scripts/merge_bench_adapt.py OUT.json RUN1.json RUN2.json ... [--peer-python PY --work DIR]

Every run must use the same source checkpoint and the same run settings (steps, batch, lr, fitting,
sizes): only ``targets``, ``variants`` and ``seeds`` may differ, as when `bench adapt` resumes a run
folder. The cells (``target|variant|seed``) are joined. A cell found in two runs must have the same
numbers; otherwise the merge stops. Every cell records the run file it came from (``carried_from``,
where the cell did not already carry one). The results, the shift strength, the ablation order, the
markdown tables (``OUT.md``) and the bar plot (``OUT_bars.png``) are rebuilt with the benchmark's
own functions (`maskpose.bench.adapt`).

With ``--peer-python`` (an interpreter with mediapipe, docs/peers.md), the MediaPipe row is added
for every target except the UAP ones, whose perturbed test splits only exist inside their own run
folders. Its test splits are rendered into ``--work``.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from maskpose.bench.adapt import (
    MOVED_KEYS,
    VARIANT_ORDER,
    BenchConfig,
    ablation_order_check,
    adapt_markdown,
    aggregate,
    mediapipe_rows,
    plot_bars,
    with_shift,
)
from maskpose.bench.common import _Log
from maskpose.body.anny_body import AnnyBody

#: The settings that make two runs' cells comparable (dotted for the run templates): they must match.
SETTINGS = ("resolution", "width", "hidden", "data_seed", "poses.spread", "poses.max_yaw_deg", "source_train",
            "source_heldout", "target_train", "target_test", "uap_steps", "uap_batch", "prior_weight", "oracle_lr",
            "adapt.steps", "adapt.batch_size", "adapt.lr", "adapt.fit_every", "adapt.fit_iterations",
            "adapt.topology_binarization", "adapt.topology_temperature")


def _settings(config: dict) -> dict:
    """A run's :data:`SETTINGS`, from its config in today's layout or the older flat one
    (``MOVED_KEYS``: ``adapt_steps`` is ``adapt.steps`` now)."""
    flat = dict(config)
    for section in ("poses", "source", "adapt", "unsup", "unsup_stage1"):
        if isinstance(flat.get(section), dict):
            flat.update({f"{section}.{k}": v for k, v in flat.pop(section).items()})
    for old, new in MOVED_KEYS.items():
        if old in flat:
            flat[new] = flat.pop(old)
    return {k: flat.get(k) for k in SETTINGS}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the merged JSON to write")
    parser.add_argument("runs", type=Path, nargs="+", help="bench adapt JSON files (bench_adapt.json or --json)")
    parser.add_argument("--peer-python", default="", help="python with mediapipe: add the MediaPipe rows")
    parser.add_argument("--work", type=Path, default=Path("bench_merge_work"), help="where the peer's data go")
    args = parser.parse_args(argv)

    payloads = [json.loads(p.read_text()) for p in args.runs]
    sources = {Path(p["source_checkpoint"]).name for p in payloads}
    if len(sources) != 1:
        sys.exit(f"the runs use different source checkpoints: {sorted(sources)}")
    base = _settings(payloads[-1]["config"])
    for path, p in zip(args.runs, payloads):
        other = _settings(p["config"])
        diff = [k for k in SETTINGS if base[k] != other[k]]
        if diff:
            sys.exit(f"{path}: its run settings differ from {args.runs[-1]}'s: {', '.join(diff)}")

    cells: dict = {}
    targets: list[str] = []
    seeds: list[int] = []
    variants: set[str] = set()
    for path, p in zip(args.runs, payloads):
        for key, cell in p["cells"].items():
            t, v, s = key.split("|")
            if key in cells:
                a = {k: cells[key].get(k) for k in ("pa_mpjpe", "mpjpe")}
                b = {k: cell.get(k) for k in ("pa_mpjpe", "mpjpe")}
                if a != b:
                    sys.exit(f"cell {key} differs between the runs: {a} against {b} ({path})")
                continue
            cells[key] = {**cell, "carried_from": cell.get("carried_from", str(path))}
            if t not in targets:
                targets.append(t)
            if int(s) not in seeds:
                seeds.append(int(s))
            variants.add(v)
    order = [v for v in VARIANT_ORDER if v in variants]
    cfg = replace(BenchConfig.from_dict(payloads[-1]["config"]), targets=tuple(targets), variants=tuple(order),
                  seeds=tuple(sorted(seeds)))

    peer_rows: dict = {}
    for p in payloads:
        peer_rows.update(p.get("mediapipe", {}))
    if args.peer_python:
        log = _Log("merge")
        peer_cfg = replace(cfg, targets=tuple(t for t in targets if not t.startswith("uap-")),
                           peer_python=args.peer_python)
        peer_rows.update(mediapipe_rows(peer_cfg, args.work, {"targets": {}}, AnnyBody(), log, peer_rows))
    results = with_shift(aggregate(cells, cfg.targets, cfg.variants, cfg.seeds), peer_rows)
    payload = {
        "benchmark": "adapt", "config": cfg.to_dict(), "source_checkpoint": payloads[-1]["source_checkpoint"],
        "merged_from": [str(p) for p in args.runs],
        "uap": {k: v for p in payloads for k, v in p.get("uap", {}).items()},
        "datasets": {k: v for p in payloads for k, v in p.get("datasets", {}).items()},
        "cells": cells, "results": results,
        **({"mediapipe": peer_rows} if peer_rows else {}),
        "ablation_order": ablation_order_check(results),
        "complete": all(f"{t}|{v}|{s}" in cells for t in cfg.targets for v in cfg.variants for s in cfg.seeds),
        "seconds_per_run": {str(path): p.get("seconds_this_run") for path, p in zip(args.runs, payloads)},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=1) + "\n")
    md = adapt_markdown(payload, cfg)
    args.out.with_suffix(".md").write_text(md + "\n")
    plot_bars(results, cfg, args.out.with_name(args.out.stem + "_bars.png"))
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``maskpose bench adapt``, ``bench unsup`` and ``bench peers`` (registered on the shared bench app)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Optional

import typer

from maskpose.errors import ConfigError

from ._app import bench_app
from .errors import friendly


def _split(text: Optional[str]) -> Optional[tuple[str, ...]]:
    return None if text is None else tuple(x.strip() for x in text.split(",") if x.strip())


def _bench_config(bench_config, quick: bool, device: str, targets: Optional[str] = None,
                  variants: Optional[str] = None, seeds: Optional[str] = None,
                  source_checkpoint: Optional[Path] = None, config: Optional[Path] = None, seeds_field: str = "seeds"):
    """``bench_config`` (the ``BenchConfig`` class) quick or full, then the YAML, then the flags."""
    from maskpose.device import resolve_device  # deferred: CLI start-up

    resolve_device(device)
    cfg = bench_config.quick() if quick else bench_config.full()
    if config is not None:
        cfg = cfg.updated_from_yaml(config)
    changes: dict = {"device": device}
    if targets is not None:
        changes["targets"] = _split(targets)
    if variants is not None:
        changes["variants"] = _split(variants)
    if seeds is not None:
        try:
            changes[seeds_field] = tuple(int(s) for s in _split(seeds))
        except ValueError:
            raise ConfigError(f"--seeds {seeds!r}: give integers separated by commas (e.g. 0,1)") from None
    if source_checkpoint is not None:
        if not source_checkpoint.exists():
            raise FileNotFoundError(f"--source-checkpoint: {source_checkpoint} does not exist")
        changes["source_checkpoint"] = str(source_checkpoint)
    return replace(cfg, **changes).validate()


QUICK = typer.Option(False, "--quick", help="The small configuration (BenchConfig.quick: under 20 min on 2 cores).")
JSON = typer.Option(..., "--json", help="Write the results JSON here.")
OUT = typer.Option(..., "--out", help="Run folder: data, runs, partial results (an existing one resumes).")
DEVICE = typer.Option("cpu", help="cpu, cuda, ...")
THREADS = typer.Option(None, help="torch.set_num_threads (default: leave torch's choice).")
CONFIG = typer.Option(None, "--config", help="YAML of BenchConfig fields overriding the base configuration "
                                             "(full, or quick with --quick; the runs nested, e.g. "
                                             "`adapt: {steps: 60}`); flags override it.")


@bench_app.command("adapt")
@friendly
def bench_adapt(
    quick: bool = QUICK, json_path: Path = JSON, out: Path = OUT, device: str = DEVICE,
    source_checkpoint: Optional[Path] = typer.Option(None, "--source-checkpoint",
                                                     help="Reuse this source model (same resolution)."),
    targets: Optional[str] = typer.Option(None, help="Comma-separated target domains (default: the config's)."),
    variants: Optional[str] = typer.Option(None, help="Comma-separated variants: source, l2, ls, ls_lt, bce, "
                                                      "chamfer_points, mas, ls_lt_mas, oracle."),
    seeds: Optional[str] = typer.Option(None, help="Comma-separated seeds (default 0,1)."),
    threads: Optional[int] = THREADS, config: Optional[Path] = CONFIG,
) -> None:
    """Source model vs. every adaptation loss vs. an oracle, on every synthetic target domain.

    Writes OUT/bench_adapt.json (after every cell; a rerun skips finished cells), OUT/bench_adapt.md
    (PA-MPJPE table, the paper's ablation order first), OUT/bench_adapt_bars.png and
    OUT/bench_adapt_steps.png, and the JSON at --json.
    """
    from maskpose.bench import adapt as bench  # deferred: CLI start-up

    cfg = _bench_config(bench.BenchConfig, quick, device, targets, variants, seeds, source_checkpoint, config)
    bench.run_adapt_benchmark(cfg, out, json_path, threads=threads)


@bench_app.command("unsup")
@friendly
def bench_unsup(quick: bool = QUICK, json_path: Path = JSON, out: Path = OUT, device: str = DEVICE,
                seeds: Optional[str] = typer.Option(None, help="Comma-separated seeds (default: the config's "
                                                               "unsup_seeds)."),
                threads: Optional[int] = THREADS, config: Optional[Path] = CONFIG) -> None:
    """Mask-as-Supervision with / without ψ and G against a 3D-supervised model (joint head):
    MPJPE with and without the left-right flip, and the ambiguity ratio."""
    from maskpose.bench import adapt as bench  # deferred: CLI start-up

    cfg = _bench_config(bench.BenchConfig, quick, device, seeds=seeds, config=config, seeds_field="unsup_seeds")
    bench.run_unsup_benchmark(cfg, out, json_path, threads=threads)


@bench_app.command("peers")
@friendly
def bench_peers(
    quick: bool = typer.Option(False, "--quick", help="16 samples per target (PeersConfig.quick)."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Also write the results JSON here."),
    out: Optional[Path] = typer.Option(None, "--out", help="Rendered data, peer outputs, bench_peers.json/.md "
                                                           "(default: PeersConfig.out)."),
    targets: Optional[str] = typer.Option(None, help="Comma-separated synthetic targets (default: thermal, lowres-32, "
                                                     "lowres-52, cctv, occluded, studio, realistic; '' for none)."),
    n: Optional[int] = typer.Option(None, "--n", help="Samples per synthetic target (and most people per --coco)."),
    res: Optional[int] = typer.Option(None, "--res", help="Crop side of the rendered targets and COCO imports (px)."),
    real: Optional[list[Path]] = typer.Option(None, "--real", help="A maskpose dataset folder of real people "
                                                                   "(repeatable)."),
    coco: Optional[list[str]] = typer.Option(None, "--coco", help="JSON:IMAGES, a COCO keypoints file and its image "
                                                                  "folder, imported on the fly (repeatable)."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="The maskpose model (default: the shipped "
                                                                         "source model)."),
    adapted: Optional[list[str]] = typer.Option(None, "--adapted", help="NAME=PATH: an adapted checkpoint for the "
                                                                        "dataset NAME (repeatable)."),
    peer_python: Optional[str] = typer.Option(None, "--peer-python", help="The interpreter that has mediapipe "
                                                                          "(default: $MASKPOSE_PEER_PYTHON, else this "
                                                                          "one if it imports mediapipe)."),
    device: str = DEVICE,
) -> None:
    """maskpose against MediaPipe Pose (the peer, run in its own venv): detection rate, 2D PCK and
    PA-MPJPE on synthetic targets and real crops, one table (docs/peers.md)."""
    from maskpose.bench import peers as bench  # deferred: CLI start-up

    cfg = bench.PeersConfig.quick() if quick else bench.PeersConfig()
    changes: dict = {"device": device}
    if targets is not None:
        changes["targets"] = _split(targets)
    for name, value in (("n", n), ("resolution", res), ("peer_python", peer_python)):
        if value is not None:
            changes[name] = value
    for name, value in (("real", real), ("coco", coco)):
        if value:
            changes[name] = tuple(str(v) for v in value)
    if adapted:
        changes["adapted"] = bench.parse_adapted(adapted)
    if checkpoint is not None:
        changes["checkpoint"] = str(checkpoint)
    if out is not None:
        changes["out"] = str(out)
    if json_path is not None:
        changes["json_path"] = str(json_path)
    bench.run_peers(replace(cfg, **changes).validate())

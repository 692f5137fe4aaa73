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
    peer_python: Optional[Path] = typer.Option(None, "--peer-python",
                                               help="Python of an env with mediapipe: adds a MediaPipe row per "
                                                    "target (bench peers' protocol, BenchConfig.peer_resolution)."),
) -> None:
    """Source model vs. every adaptation loss vs. an oracle, on every synthetic target domain.

    Writes OUT/bench_adapt.json (after every cell; a rerun skips finished cells), OUT/bench_adapt.md
    (PA-MPJPE table, the paper's ablation order first), OUT/bench_adapt_bars.png and
    OUT/bench_adapt_steps.png, and the JSON at --json.
    """
    from maskpose.bench import adapt as bench  # deferred: CLI start-up

    cfg = _bench_config(bench.BenchConfig, quick, device, targets, variants, seeds, source_checkpoint, config)
    if peer_python is not None:
        cfg = cfg.updated({"peer_python": str(peer_python)}).validate()
    bench.run_adapt_benchmark(cfg, out, json_path, threads=threads)


@bench_app.command("unsup")
@friendly
def bench_unsup(quick: bool = QUICK, json_path: Path = JSON, out: Path = OUT, device: str = DEVICE,
                seeds: Optional[str] = typer.Option(None, help="Comma-separated seeds (default: the config's "
                                                               "unsup_seeds)."),
                targets: Optional[str] = typer.Option(None, help="Comma-separated targets (default: the config's "
                                                                 "unsup_targets)."),
                heads: Optional[str] = typer.Option(None, help="Comma-separated heads: joints, mesh."),
                variants: Optional[str] = typer.Option(None, help="Comma-separated rows (default: all of "
                                                                  "stage1, full, no_g, no_psi, no_psi_no_g, "
                                                                  "no_symmetry, spp_1, spp_5, scratch)."),
                threads: Optional[int] = THREADS, config: Optional[Path] = CONFIG) -> None:
    """Mask as Supervision, the released two-stage protocol: stage 1 supervised on studio, stage 2
    with masks on shifted targets (full, without G, ψ, both, symmetry), SPP on 1 % / 5 % of the
    labels, and the masks-only run from scratch; both heads; MPJPE with and without the flip."""
    from maskpose.bench import adapt as bench  # deferred: CLI start-up
    from maskpose.bench.unsup import run_unsup_benchmark  # deferred: CLI start-up

    cfg = _bench_config(bench.BenchConfig, quick, device, seeds=seeds, config=config, seeds_field="unsup_seeds")
    changes = {name: _split(value) for name, value in (("unsup_targets", targets), ("unsup_heads", heads),
                                                      ("unsup_variants", variants)) if value is not None}
    cfg = cfg.updated(changes).validate() if changes else cfg
    run_unsup_benchmark(cfg, out, json_path, threads=threads)


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
    refine: Optional[int] = typer.Option(None, "--refine", help="Also the source model with per-image refinement "
                                                                "(N Adam iterations on each crop's mask, as predict "
                                                                "--refine N): the maskpose_refined row."),
    device: str = DEVICE,
) -> None:
    """maskpose against MediaPipe Pose (the peer, run in its own venv): detection rate, 2D PCK and
    PA-MPJPE on synthetic targets and real crops, one table (docs/peers.md)."""
    from maskpose.bench import peers as bench  # deferred: CLI start-up

    cfg = bench.PeersConfig.quick() if quick else bench.PeersConfig()
    changes: dict = {"device": device}
    if targets is not None:
        changes["targets"] = _split(targets)
    for name, value in (("n", n), ("resolution", res), ("peer_python", peer_python), ("refine", refine)):
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


def _write_result(json_path: Optional[Path], result: dict) -> None:
    if json_path is not None:
        from maskpose.io import atomic_write_json  # deferred: CLI start-up

        atomic_write_json(json_path, result)
        typer.echo(f"wrote {json_path}")


def _check_json(json_path: Optional[Path]) -> None:
    if json_path is not None:  # before the run, not after it
        from maskpose.io import check_output_file  # deferred: CLI start-up

        check_output_file(json_path, "--json")


@bench_app.command("step")
@friendly
def bench_step(
    res: int = typer.Option(128, "--res", help="Model input resolution (px; 128: the new default)."),
    batch: int = typer.Option(16, "--batch", help="Batch size."),
    repeats: int = typer.Option(5, "--repeats", help="Timed rounds (medians reported)."),
    warmup: int = typer.Option(1, "--warmup", help="Untimed rounds first."),
    device: str = DEVICE, threads: Optional[int] = THREADS,
    memory: bool = typer.Option(False, "--memory/--no-memory", help="Also the peak RSS of `maskpose pretrain` and "
                                                                    "`maskpose adapt` run as subprocesses."),
    memory_steps: int = typer.Option(8, "--memory-steps", help="Steps of each --memory run."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Write the results JSON here."),
) -> None:
    """One optimisation step of pretrain (supervised) and adapt (L_S + L_T + prior), with and without
    fitting in the loop: the ratio adapt/supervised and the time of every stage."""
    from maskpose.bench import step as bench  # deferred: CLI start-up

    _check_json(json_path)
    result = bench.bench_step(res=res, batch=batch, repeats=repeats, warmup=warmup, device=device, threads=threads,
                 memory=memory, memory_steps=memory_steps)
    typer.echo(bench.format_step(result))
    _write_result(json_path, result)


@bench_app.command("train")
@friendly
def bench_train(
    quick: bool = typer.Option(False, "--quick", help="A small grid (32 and 48 px, batch 2 and 4, one round)."),
    res: Optional[str] = typer.Option(None, "--res", help="Comma-separated resolutions (default 64,128,224)."),
    batch: Optional[str] = typer.Option(None, "--batch", help="Comma-separated batches (default 8,16,32,64)."),
    repeats: Optional[int] = typer.Option(None, "--repeats", help="Timed rounds per cell (default 3)."),
    warmup: Optional[int] = typer.Option(None, "--warmup", help="Untimed rounds per cell (default 1)."),
    peak_size: Optional[int] = typer.Option(None, "--peak-size", help="Side of the float32 matmul of the peak "
                                                                      "(default 2048)."),
    mode: str = typer.Option("pretrain", "--mode", help="The step timed: pretrain, or adapt (without fitting)."),
    device: str = DEVICE, threads: Optional[int] = THREADS,
    json_path: Optional[Path] = typer.Option(None, "--json", help="Write the results JSON here."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write the cost curves (PNG) here."),
) -> None:
    """Training images/s and FLOPs per image of the default model, as a share of the measured matmul
    peak, over resolutions and batches."""
    from maskpose.bench import train as bench  # deferred: CLI start-up

    _check_json(json_path)
    if plot is not None:
        from maskpose.io import check_output_file  # deferred: CLI start-up

        check_output_file(plot, "--plot", (".png",))
    settings = dict(bench.QUICK) if quick else {}
    try:
        if res is not None:
            settings["resolutions"] = tuple(int(r) for r in _split(res))
        if batch is not None:
            settings["batches"] = tuple(int(b) for b in _split(batch))
    except ValueError:
        raise ConfigError("--res and --batch take integers separated by commas (e.g. 64,128)") from None
    for name, value in (("repeats", repeats), ("warmup", warmup), ("peak_size", peak_size)):
        if value is not None:
            settings[name] = value
    result = bench.bench_train(device=device, threads=threads, mode=mode, **settings,
                               progress=typer.echo)
    typer.echo(bench.format_train(result))
    _write_result(json_path, result)
    if plot is not None:
        typer.echo(f"wrote {bench.plot_train(result, plot)}")

"""``maskpose demo``: what ``make demo`` runs."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from maskpose.errors import ConfigError

from ._app import app
from .errors import friendly


@app.command()
@friendly
def demo(out: Path = typer.Option(Path("demo_output"), "--out", help="Output folder (data, runs, report.html)."),
         target: str = typer.Option("thermal", "--target", help="Target domain to adapt to."),
         adapt_steps: Optional[int] = typer.Option(None, "--adapt-steps", help="Adaptation steps."),
         retrain_source: bool = typer.Option(False, "--retrain-source",
                                             help="Pretrain the source model instead of loading the shipped one."),
         realistic: bool = typer.Option(False, "--realistic",
                                        help="Start from the shipped 128 px real-photo model (masked input); with "
                                             "--retrain-source, rebuild it first (build-photo-source --resolution 128)."),
         device: str = typer.Option("cpu", help="cpu, cuda, ...")):
    """Source model -> adapt to a target domain with L_S + L_T on masks only -> evaluate -> report.html."""
    from maskpose.apps.demo import DemoConfig, check_output_folder, run_demo  # deferred: CLI start-up
    from maskpose.device import resolve_device  # deferred: CLI start-up
    from maskpose.synth.domains import get_domain  # deferred: CLI start-up

    # Every argument is checked before the demo generates data or trains.
    resolve_device(device)
    get_domain(target)
    if adapt_steps is not None and adapt_steps < 1:
        raise ConfigError(f"--adapt-steps must be an int >= 1, got {adapt_steps}")
    check_output_folder(out)
    changes = {"out": str(out), "target_domain": target, "retrain_source": retrain_source, "device": device}
    if realistic and retrain_source:
        from maskpose.apps.photo_source import PHOTO_RECIPES, build_photo_source  # deferred: CLI start-up

        rebuilt = build_photo_source(out / "photo_source", PHOTO_RECIPES[128].with_every_stage(device=device))
        changes.update(retrain_source=False, source_checkpoint=str(rebuilt))
    cfg = DemoConfig.realistic(**changes) if realistic else DemoConfig(**changes)
    if adapt_steps is not None:
        cfg.adapt.steps = adapt_steps
    run_demo(cfg)


@app.command("build-photo-source")
@friendly
def build_photo_source(out: Path = typer.Option(..., "--out", help="Work folder (training data, run, and the "
                                                "shippable checkpoint)."),
                       steps: Optional[int] = typer.Option(None, "--steps", help="Fine-tuning steps (default: "
                                                           "the shipped model's recipe)."),
                       samples: Optional[int] = typer.Option(None, "--samples", help="Realistic training crops."),
                       resolution: int = typer.Option(64, "--resolution", help="64: source_realistic_64.pt from the "
                                                      "studio model; 128: source_realistic_128.pt from the 64 px one."),
                       device: str = typer.Option("cpu", help="cpu, cuda, ...")):
    """Rebuild a shipped real-photo model (masked input): realistic crops, then a shipped model
    fine-tuned on them. At 64 px (source_realistic_64.pt) the studio model, about 33 minutes on one
    thread; at 128 px (source_realistic_128.pt) the 64 px real-photo model, then that model again on
    new crops (the recipe's second stage, under OUT/then). --steps and --samples apply to every stage."""
    from maskpose.apps.photo_source import PHOTO_RECIPES  # deferred: CLI start-up
    from maskpose.apps.photo_source import build_photo_source as build  # deferred: CLI start-up
    from maskpose.device import resolve_device  # deferred: CLI start-up

    resolve_device(device)
    if resolution not in PHOTO_RECIPES:
        raise ConfigError(f"--resolution must be one of {sorted(PHOTO_RECIPES)} (the shipped real-photo models), "
                          f"got {resolution}")
    for name, value in (("--steps", steps), ("--samples", samples)):
        if value is not None and value < 1:
            raise ConfigError(f"{name} must be an int >= 1, got {value}")
    changes = {name: value for name, value in (("device", device), ("steps", steps), ("samples", samples))
               if value is not None}
    recipe = PHOTO_RECIPES[resolution].with_every_stage(**changes)
    path = build(out, recipe)
    typer.echo(f"wrote {path} (copy it to src/maskpose/assets/{recipe.shipped_name()} to ship it)")

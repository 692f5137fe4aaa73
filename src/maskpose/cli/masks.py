"""CLI verbs for the masks area (registered on the shared Typer app)."""

import math
import time
from pathlib import Path

import typer

from maskpose.errors import ConfigError

from ._app import app, bench_app, body_app, data_app, masks_app  # noqa: F401
from .errors import friendly
from .learn import check_output_file


@masks_app.command("train-physique")
@friendly
def train_physique(
    out: Path = typer.Option(..., "--out", help="Where to write the PhysiqueNet state_dict (.pt)."),
    steps: int = typer.Option(1000, "--steps", min=1, help="Optimisation steps (batch of fresh samples each)."),
    seed: int = typer.Option(0, "--seed", help="Seeds the initialisation and the synthetic data."),
    size: int = typer.Option(64, "--size", min=8, help="Square mask size in pixels."),
    batch_size: int = typer.Option(32, "--batch-size", min=1),
    sigma: float = typer.Option(2.0, "--sigma", help="Skeleton-mask line width σ in pixels."),
    device: str = typer.Option("cpu", "--device", help="torch device, e.g. cpu or cuda."),
    eval_samples: int = typer.Option(256, "--eval-samples", min=1, help="Held-out samples for the IoU."),
    threads: int = typer.Option(0, "--threads", min=0,
                                help="CPU threads for torch (0: torch's default). 1 is faster on a busy machine."),
) -> None:
    """Train the physique net ψ (skeleton mask -> body mask) on synthetic stick figures.

    Prints the held-out IoU and saves the weights atomically (temp file, then rename).
    """
    import torch  # deferred: CLI start-up

    from maskpose.device import resolve_device  # deferred: CLI start-up
    from maskpose.io import atomic_write  # deferred: CLI start-up
    from maskpose.masks.physique_training import train_physique_net  # deferred: CLI start-up

    if not (math.isfinite(sigma) and sigma > 0):
        raise ConfigError(f"--sigma must be a finite number of pixels > 0, got {sigma}")
    check_output_file(out, "--out")
    resolve_device(device)
    if threads:
        torch.set_num_threads(threads)
    out.parent.mkdir(parents=True, exist_ok=True)
    every = max(1, steps // 10)

    def progress(step: int, loss: float) -> None:
        if (step + 1) % every == 0 or step == 0:
            typer.echo(f"step {step + 1}/{steps}  loss {loss:.4f}", err=True)

    start = time.perf_counter()
    result = train_physique_net(
        steps=steps, seed=seed, size=size, device=device, batch_size=batch_size, sigma=sigma,
        eval_samples=eval_samples, progress=progress,
    )
    elapsed = time.perf_counter() - start
    with atomic_write(out) as tmp:  # readers never see a half-written file
        torch.save(result.net.state_dict(), tmp)
    typer.echo(
        f"held-out IoU {result.heldout_iou:.4f} (thresholded skeleton mask {result.skeleton_iou:.4f}) "
        f"on {eval_samples} samples; {steps} steps in {elapsed:.0f} s; weights -> {out}"
    )

"""CLI verbs for rendering: ``maskpose bench render``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from maskpose.errors import MaskposeError

from ._app import bench_app
from .errors import friendly


@bench_app.command("render")
@friendly
def bench_render_command(
    json_path: Optional[Path] = typer.Option(None, "--json", help="Write the results to this JSON file."),
    batch: int = typer.Option(16, help="Batch size."),
    res: int = typer.Option(128, help="Image size in pixels."),
    repeats: int = typer.Option(15, help="Timed repeats (median reported)."),
    warmup: int = typer.Option(3, help="Untimed warm-up runs."),
    mode: str = typer.Option("contour", help="Silhouette mode: contour (exact) or splat."),
    device: str = typer.Option("cpu", help="Torch device."),
) -> None:
    """Silhouette renderer (M2S) forward and forward+backward against Anny's forward+backward."""
    from maskpose.bench.render import bench_render  # deferred: CLI start-up
    from maskpose.device import resolve_device  # deferred: CLI start-up

    resolve_device(device)
    if batch <= 0 or res <= 0 or repeats <= 0 or warmup < 0:
        raise MaskposeError("batch, res and repeats must be positive and warmup non-negative")
    result = bench_render(batch=batch, res=res, repeats=repeats, warmup=warmup, mode=mode, device=device)
    typer.echo(
        f"render fwd {result['render_fwd_ms']:.1f} ms, fwd+bwd {result['render_fwd_bwd_ms']:.1f} ms; "
        f"anny fwd+bwd {result['anny_fwd_bwd_ms']:.1f} ms; ratio {result['ratio']:.2f} "
        f"(batch {batch}, {res} px, {result['faces']} faces, mode {mode})"
    )
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(result, indent=2) + "\n")
        typer.echo(f"wrote {json_path}")

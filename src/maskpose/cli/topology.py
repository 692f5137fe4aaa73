"""CLI verbs for the topology area (registered on the shared Typer app)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from ._app import app, bench_app, body_app, data_app, masks_app  # noqa: F401
from .errors import friendly


@bench_app.command("topology")
@friendly
def bench_topology(
    json_path: Optional[Path] = typer.Option(None, "--json", help="Write the results as JSON to this file."),
    batch: int = typer.Option(32, help="Batch size."),
    size: int = typer.Option(128, help="Image side in pixels."),
    repeats: int = typer.Option(7, help="Timed runs; the median is reported."),
    warmup: int = typer.Option(2, help="Untimed runs before timing."),
    threads: int = typer.Option(1, help="Torch intra-op threads (1 matches scipy's single-threaded loop)."),
    kernel: str = typer.Option("octagonal", help="S2D kernel: octagonal or chessboard."),
) -> None:
    """Time L_S + L_T forward+backward against scipy's distance_transform_edt on the same batch."""
    from maskpose.bench.topology import run_topology_benchmark  # deferred: CLI start-up

    result = run_topology_benchmark(batch=batch, size=size, repeats=repeats, warmup=warmup,
                                    threads=threads, kernel=kernel)
    typer.echo(f"L_S + L_T forward+backward: {result['topology_fwd_bwd_ms']:.1f} ms "
               f"(batch {batch}, {size} px, {kernel}, {result['threads']} thread(s))")
    typer.echo(f"scipy distance_transform_edt, 8 maps per sample: {result['scipy_edt_ms']:.1f} ms")
    typer.echo(f"ratio: {result['ratio']:.3f}   (our 8 full maps: {result['full_maps_ms']:.1f} ms)")
    if json_path is not None:
        if json_path.parent and not json_path.parent.exists():
            raise FileNotFoundError(f"--json: folder {json_path.parent} does not exist")
        json_path.write_text(json.dumps(result, indent=2) + "\n")
        typer.echo(f"wrote {json_path}")

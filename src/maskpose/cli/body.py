"""CLI verbs for the body model: ``maskpose body render``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from maskpose.errors import ConfigError
from maskpose.io import check_output_folder

from ._app import body_app
from .errors import friendly


@body_app.command("render")
@friendly
def render(n: int = typer.Option(8, "--n", help="Number of bodies."),
           seed: int = typer.Option(0, help="Seed of the pose source."),
           out: Path = typer.Option(..., "--out", help="Output folder for PNG previews and PLY meshes."),
           motions: Optional[Path] = typer.Option(None, "--motions", help="BVH / DeepMimic file or folder; "
                                                  "default: the anatomically limited random sampler."),
           res: int = typer.Option(256, "--res", help="Preview size in pixels."),
           topology: str = typer.Option("anny", help="Mesh topology of the PLY files (anny = full mesh).")):
    """Render posed bodies from a pose source: PNG previews (and a contact sheet) and PLY meshes."""
    if n <= 0:
        raise ConfigError(f"--n must be positive, got {n}")
    if not 16 <= res <= 4096:
        raise ConfigError(f"--res must lie in [16, 4096] px, got {res}")
    check_output_folder(out)
    from maskpose.apps.preview import render_bodies  # deferred: CLI start-up

    sheet = render_bodies(out, n=n, seed=seed, motions=motions, res=res, topology=topology)
    typer.echo(f"wrote {n} PNG previews, {n} PLY meshes and {sheet}")

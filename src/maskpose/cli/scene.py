"""CLI verbs for the static-camera scene (``maskpose scene fit``; registered on the shared Typer app).

``maskpose synth --scene scene.json`` (in :mod:`maskpose.cli.data`) renders people into a fitted scene.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from tqdm import tqdm

from maskpose.io import check_output_file

from ._app import app
from .errors import friendly

scene_app = typer.Typer(help="Static-camera scenes: background plate, camera pitch and height, ground plane.",
                        no_args_is_help=True)
app.add_typer(scene_app, name="scene")


@scene_app.command("fit")
@friendly
def fit(
    video: Path = typer.Argument(..., help="A static-camera video file OpenCV can read, with people walking."),
    out: Path = typer.Option(..., "--out", help="Scene JSON to write; the plate goes beside it (<stem>_plate.png)."),
    focal: Optional[float] = typer.Option(None, "--focal", min=1.0,
                                          help="Focal length in pixels (default: a guess, the frame diagonal)."),
    person_height: float = typer.Option(1.7, "--person-height", help="Average height of the people (metres)."),
    method: str = typer.Option("mog2", "--method", help="Background subtractor: mog2 or knn."),
    warmup: int = typer.Option(30, "--warmup", min=0, help="Frames that prime the background model."),
    min_area: int = typer.Option(120, "--min-area", min=1, help="Smallest foreground component, source pixels."),
    max_frames: Optional[int] = typer.Option(None, "--max-frames", min=1, help="Read at most this many frames."),
    min_frames: int = typer.Option(20, "--min-frames", min=2, help="Refuse a video with fewer frames."),
) -> None:
    """Fit a static camera's scene from the people walking through it: the background plate, the
    camera's pitch and height above the floor (feet and heads of the tracked people against an
    average height), and the range of person sizes. See docs/static_camera.md for the geometry.
    """
    from maskpose.data import scene as scenes  # deferred: CLI start-up
    from maskpose.data.video import ExtractionConfig, FrameSource  # deferred: CLI start-up

    check_output_file(out, "--out", (".json",))
    extraction = ExtractionConfig(method=method.lower(), warmup=warmup, min_area=min_area, max_frames=max_frames)
    config = scenes.SceneFitConfig(focal=focal, person_height=person_height, min_frames=min_frames)
    total = len(FrameSource(video, max_frames)) or None  # fails early, with one line, on an unreadable video
    with tqdm(total=total, desc="segment + track", unit="frame", leave=False) as bar:
        scene = scenes.fit_scene(video, out, config, extraction, progress=lambda i: bar.update(i + 1 - bar.n))
    fit_stats = scene.fit
    typer.echo(f"{scene.frames} frames of {video} ({scene.size[0]}x{scene.size[1]}): {fit_stats['tracks']} tracks, "
               f"{fit_stats['detections_usable']} usable person boxes ({fit_stats['detections_merged']} merged ones "
               f"left out), fitted as {fit_stats['points_used']} track x foot-row points")
    typer.echo(f"camera: pitch {scene.pitch_deg:.1f} deg down (+-{fit_stats['pitch_std_deg']:.1f}), height "
               f"{scene.camera_height:.2f} m (+-{fit_stats['height_std_m']:.2f}) for people {scene.person_height:g} m "
               f"tall, focal {scene.focal:.0f} px ({scene.focal_source}), horizon at row {scene.horizon_row:.0f}; "
               f"head-row residual rms {fit_stats['rms_relative']:.1%} of the box height")
    heights = scene.box_heights
    typer.echo(f"people: {heights['min']:.0f}-{heights['max']:.0f} px tall (median {heights['median']:.0f}, "
               f"5-95 % {heights['p5']:.0f}-{heights['p95']:.0f}), {len(scene.foot_points)} foot points kept; "
               "fitted heights per track (m): " + ", ".join(f"{v:.2f}" for v in fit_stats["track_heights_m"]))
    for note in scene.warnings:
        typer.echo(f"warning: {note}")
    typer.echo(f"wrote {out} and {out.with_name(scene.plate)}")

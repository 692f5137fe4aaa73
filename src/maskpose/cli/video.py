"""CLI verbs for the video area (registered on the shared Typer app)."""

from pathlib import Path
from typing import Optional

import typer

from ._app import app, bench_app, body_app, data_app, masks_app  # noqa: F401
from .errors import friendly


@masks_app.command("extract")
@friendly
def extract(
    video: Path = typer.Argument(..., help="A static-camera video file OpenCV can read."),
    out: Path = typer.Option(..., "--out", help="Dataset folder to write (image, mask, frame_index, track_id, "
                                                "crop_box)."),
    method: str = typer.Option("mog2", "--method", help="Background subtractor: mog2 or knn."),
    res: int = typer.Option(128, "--res", min=8, help="Square crop size in pixels."),
    warmup: int = typer.Option(30, "--warmup", min=0, help="Frames that prime the background model."),
    learning_rate: float = typer.Option(-1.0, "--learning-rate",
                                        help="Background learning rate after warm-up; -1: OpenCV's automatic rate."),
    min_area: int = typer.Option(120, "--min-area", min=1, help="Smallest foreground component, source pixels."),
    max_frames: Optional[int] = typer.Option(None, "--max-frames", min=1, help="Process at most this many frames."),
    sheet: Optional[Path] = typer.Option(None, "--sheet", help="Also write a contact sheet PNG of crops and masks."),
) -> None:
    """Person crops and masks from a static-camera video, by background subtraction and tracking.

    Prints the tracks found, their lengths and the number of samples written.
    """
    from tqdm import tqdm

    from maskpose.data.video import ExtractionConfig, FrameSource, contact_sheet, extract_video

    method = method.lower()
    config = ExtractionConfig(method=method, resolution=res, warmup=warmup, learning_rate=learning_rate,
                              min_area=min_area, max_frames=max_frames)
    total = len(FrameSource(video, max_frames)) or None
    bars: dict[str, tqdm] = {}

    def progress(stage: str, index: int) -> None:
        if stage not in bars:
            for bar in bars.values():
                bar.close()
            label = {"track": "segment + track", "crop": "crop + write"}.get(stage, stage)
            bars[stage] = tqdm(total=total, desc=label, unit="frame", leave=False)
        bars[stage].update(index + 1 - bars[stage].n)

    try:
        result = extract_video(video, out, config, progress=progress)
    finally:
        for bar in bars.values():
            bar.close()
    lengths = sorted(result.tracks.values(), reverse=True)
    typer.echo(f"{result.num_frames} frames of {video}: {len(result.tracks)} tracks "
               f"(+{result.dropped_tracks} shorter than {config.min_track_length} frames dropped)")
    typer.echo("track lengths (frames): " + ", ".join(str(n) for n in lengths))
    typer.echo(f"{result.num_samples} samples ({res}x{res}) written to {result.path}")
    if sheet is not None:
        contact_sheet(result.path, sheet, title=f"{video.name}: {len(result.tracks)} tracks, "
                                               f"{result.num_samples} crops ({method})")
        typer.echo(f"contact sheet -> {sheet}")

"""CLI verbs for the video area (registered on the shared Typer app)."""

import json
from dataclasses import asdict
from pathlib import Path
from typing import Optional

import typer
from tqdm import tqdm

from maskpose.errors import ConfigError
from maskpose.io import check_output_file, check_output_folder

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
    from maskpose.data import video as frames  # deferred: CLI start-up

    check_output_folder(out, "--out")  # before the video is read
    if sheet is not None:
        check_output_file(sheet, "--sheet")
    method = method.lower()
    config = frames.ExtractionConfig(method=method, resolution=res, warmup=warmup, learning_rate=learning_rate,
                                     min_area=min_area, max_frames=max_frames)
    total = len(frames.FrameSource(video, max_frames)) or None
    bars: dict[str, tqdm] = {}

    def progress(stage: str, index: int) -> None:
        if stage not in bars:
            for bar in bars.values():
                bar.close()
            label = {"track": "segment + track", "crop": "crop + write"}.get(stage, stage)
            bars[stage] = tqdm(total=total, desc=label, unit="frame", leave=False)
        bars[stage].update(index + 1 - bars[stage].n)

    try:
        result = frames.extract_video(video, out, config, progress=progress)
    finally:
        for bar in bars.values():
            bar.close()
    lengths = sorted(result.tracks.values(), reverse=True)
    typer.echo(f"{result.num_frames} frames of {video}: {len(result.tracks)} tracks "
               f"(+{result.dropped_tracks} shorter than {config.min_track_length} frames dropped)")
    typer.echo("track lengths (frames): " + ", ".join(str(n) for n in lengths))
    typer.echo(f"{result.num_samples} samples ({res}x{res}) written to {result.path}")
    if sheet is not None:
        frames.track_contact_sheet(result.path, sheet, title=f"{video.name}: {len(result.tracks)} tracks, "
                                               f"{result.num_samples} crops ({method})")
        typer.echo(f"contact sheet -> {sheet}")


def _parse_size(text: str) -> tuple[int, int]:
    """``"320x240"`` -> ``(320, 240)``."""
    width, sep, height = text.lower().partition("x")
    try:
        if not sep:
            raise ValueError
        return int(width), int(height)
    except ValueError:
        raise ConfigError(f"--res {text!r}: expected WIDTHxHEIGHT, e.g. 320x240") from None


@masks_app.command("synth-video")
@friendly
def synth_video(
    out: Path = typer.Option(..., "--out", help="Folder to write video.mp4, video_masks.npz and video_meta.json."),
    frames: int = typer.Option(120, "--frames", min=2, help="Number of frames."),
    people: int = typer.Option(1, "--people", min=1, max=4, help="People walking across (1 to 4)."),
    seed: int = typer.Option(0, "--seed", help="Seed of every random choice."),
    motions: Optional[Path] = typer.Option(None, "--motions",
                                           help="BVH / DeepMimic clip or folder (default: a procedural walk)."),
    res: str = typer.Option("320x240", "--res", help="Frame size WIDTHxHEIGHT."),
    fps: float = typer.Option(25.0, "--fps", min=1.0, help="Frame rate."),
    flicker: float = typer.Option(0.05, "--flicker", min=0.0, help="Global lighting flicker amplitude (0.05: +-5 %)."),
    noise: float = typer.Option(2.0, "--noise", min=0.0, help="Gaussian sensor noise std, grey levels (0-255)."),
    pitch: Optional[float] = typer.Option(None, "--pitch",
                                          help="Camera pitched down by this many degrees (default: level)."),
    camera_height: Optional[float] = typer.Option(None, "--camera-height",
                                                  help="Camera height above the floor, metres (default 1.2)."),
    depth_walk: Optional[float] = typer.Option(None, "--depth-walk",
                                               help="Metres each person walks towards or away from the camera "
                                                    "while crossing (default: fixed depths)."),
    container: str = typer.Option("mp4", "--format", help="Video container: mp4 (mp4v) or avi (FMP4)."),
    iou: bool = typer.Option(True, "--iou/--no-iou", help="Measure the extraction IoU against the ground truth."),
    method: str = typer.Option("mog2", "--method", help="Background subtractor for the IoU: mog2 or knn."),
    warmup: int = typer.Option(30, "--warmup", min=0, help="Warm-up frames (not scored)."),
    shadows: bool = typer.Option(True, "--shadows/--no-shadows",
                                 help="Subtractor shadow detection (shadow pixels are dropped)."),
    device: str = typer.Option("cpu", "--device", help="Torch device for rendering."),
) -> None:
    """A synthetic static-camera video of Anny bodies walking through a fixed scene (lighting flicker,
    sensor noise), with exact person masks; prints the mask-extraction IoU against them.

    The IoU is the mean per-frame IoU of ``maskpose masks extract``'s foreground (all kept
    components) against the ground-truth union mask, over the frames after the warm-up.
    """
    from maskpose.data import video as video_masks  # deferred: CLI start-up
    from maskpose.device import resolve_device  # deferred: CLI start-up
    from maskpose.synth.video import render_static_camera_sequence  # deferred: CLI start-up

    check_output_folder(out, "--out")  # before anything is rendered
    resolve_device(device)
    size = _parse_size(res)
    container = container.lower().lstrip(".")
    if container not in ("mp4", "avi"):
        raise ConfigError(f"--format {container!r}: expected mp4 or avi")
    config = video_masks.ExtractionConfig(method=method.lower(), warmup=warmup, detect_shadows=shadows)
    if iou and warmup >= frames:
        raise ConfigError(f"--warmup {warmup} leaves no frame of the {frames} to score; lower it or add frames")
    view = {k: v for k, v in (("pitch_deg", pitch), ("camera_height", camera_height), ("depth_walk", depth_walk))
            if v is not None}  # the renderer's defaults otherwise (maskpose.synth.video)
    with tqdm(total=frames, desc="render", unit="frame", leave=False) as bar:
        video, masks, meta = render_static_camera_sequence(
            out / f"video.{container}", frames=frames, people=people, clips=motions, res=size, seed=seed,
            flicker=flicker, noise=noise, fps=fps, device=device,
            progress=lambda done, total: bar.update(done - bar.n), **view)
    motion = ", ".join(sorted({p["clip"] for p in meta["people"]}))
    typer.echo(f"{video}: {frames} frames {size[0]}x{size[1]} at {fps:g} fps ({meta['fourcc']}), "
               f"{people} {'person' if people == 1 else 'people'} ({motion}), flicker +-{flicker:.0%}, "
               f"noise {noise:g}")
    if view:
        camera = meta["camera"]
        typer.echo(f"camera {camera.get('pitch_deg', 0.0):g} deg down, {camera['height_m']:g} m up; people walk "
                   f"{meta.get('depth_walk_m', 0.0):g} m in depth")
    typer.echo(f"ground truth: {video.with_name(meta['masks'])} (person pixels per frame: "
               f"{(masks > 0).sum((1, 2)).mean():.0f} of {size[0] * size[1]})")
    if iou:
        mean, per_frame = video_masks.extraction_iou(video, masks, config, per_frame=True)
        values = list(per_frame.values())
        typer.echo(f"extraction IoU ({config.method}, shadows {'on' if shadows else 'off'}, warm-up {warmup}): "
                   f"mean {mean:.3f}, min {min(values):.3f}, median {sorted(values)[len(values) // 2]:.3f} "
                   f"over {len(values)} frames")


def extract_for_training(video: Path, out: Path, resolution: int, method: str = "mog2",
                         warmup: int = 30) -> tuple[Path, bool]:
    """Extract person crops and masks of ``video`` (background subtraction ``method`` after
    ``warmup`` frames, crops of ``resolution`` pixels) into the dataset folder ``out``, unless ``out``
    already holds an extraction of the same, unchanged video with the same settings. Returns the
    folder and whether it was reused."""
    from maskpose.data import video as frames  # deferred: CLI start-up

    config = frames.ExtractionConfig(method=method.lower(), warmup=warmup, resolution=resolution)
    frames.FrameSource(video, config.max_frames)  # fails early, with one clear line, on an unreadable video
    stat = video.stat()
    stamp = {"video_bytes": stat.st_size, "video_mtime_ns": stat.st_mtime_ns}
    if (out / "meta.json").exists():
        try:
            attrs = json.loads((out / "meta.json").read_text()).get("attrs", {})
        except (OSError, ValueError, AttributeError):  # unreadable: extract again
            attrs = {}
        if (attrs.get("video") == str(video.resolve()) and attrs.get("extraction") == asdict(config)
                and all(attrs.get(k) == v for k, v in stamp.items())):
            return out, True
    frames.extract_video(video, out, config, attrs=stamp)
    return out, False

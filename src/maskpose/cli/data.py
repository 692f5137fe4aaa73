"""CLI verbs for the data area (registered on the shared Typer app).

``maskpose synth``, ``maskpose data show|stats|split|import npz|coco|folder``, ``maskpose bench synth``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import typer

from maskpose.errors import ConfigError
from maskpose.io import atomic_write_text, check_output_file, check_output_folder

from ._app import app, bench_app, body_app, data_app, masks_app  # noqa: F401
from .errors import friendly

import_app = typer.Typer(help="Import real data (SPIN .npz, COCO JSON, image + mask folders) as a dataset.",
                         no_args_is_help=True)
data_app.add_typer(import_app, name="import")


@app.command("synth")
@friendly
def synth(
    out: Path = typer.Option(..., "--out", help="Dataset folder to write (replaced only once the new one is complete)."),
    domain: str = typer.Option("studio", "--domain", help="studio, realistic, lowres-96, lowres-52, lowres-32, thermal, "
                                                          "scene, cctv, occluded, motion, bgsub, clothed; "
                                                          "DOMAIN+DEGRADATION (e.g. motion+erode2) degrades "
                                                          "the masks."),
    n: int = typer.Option(1000, "--n", min=1, help="Number of samples."),
    res: int = typer.Option(128, "--res", min=16, help="Square crop size in pixels."),
    seed: int = typer.Option(0, "--seed", help="Base seed (with domain and split it fixes every sample)."),
    split: str = typer.Option("train", "--split", help="train or test (part of the seed)."),
    labels: bool = typer.Option(True, "--labels/--no-labels",
                                help="Write 3D/2D joints and body parameters (--no-labels: images and masks only)."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Bodies rendered at once."),
    geodesic: bool = typer.Option(True, "--geodesic/--no-geodesic", help="Store geodesic mask weights."),
    extras: bool = typer.Option(False, "--extras", help="Also store depth and part labels."),
    device: str = typer.Option("cpu", "--device", help="torch device."),
    backgrounds: Optional[Path] = typer.Option(None, "--backgrounds",
                                               help="Folder of your own photos to crop backgrounds from "
                                                    "(realistic domain)."),
    scene: Optional[Path] = typer.Option(None, "--scene",
                                         help="Scene file of `maskpose scene fit`: people on its floor, seen by its "
                                              "camera, in crops of its background plate (the domain gives the "
                                              "appearance)."),
) -> None:
    """Render a synthetic dataset of one domain (Anny bodies, random poses, detector-like crops)."""
    if split not in ("train", "test"):
        raise ConfigError(f"--split must be train or test, got {split!r}")
    check_output_folder(out)  # before the (slow) import of the synthesis stack
    if scene is not None and not scene.is_file():
        raise ConfigError(f"--scene {scene}: no such scene file (make one with `maskpose scene fit VIDEO`)")

    from maskpose.synth.degrade import generate_target  # deferred: CLI start-up
    from maskpose.synth.generator import SynthesisConfig

    every = max(batch_size, (n // 10 // batch_size) * batch_size)

    def progress(done: int, total: int) -> None:
        if done % every == 0 or done == total:
            typer.echo(f"{done}/{total}", err=True)

    start = time.perf_counter()
    path = generate_target(out, domain, n, res, seed, split, labels, SynthesisConfig(batch_size=batch_size, device=device,
                    geodesic=geodesic, extras=extras, backgrounds=None if backgrounds is None else str(backgrounds),
                    scene=None if scene is None else str(scene)), progress=progress)
    where = "" if scene is None else f" in the scene of {scene}"
    typer.echo(f"wrote {n} {domain} samples{where} at {res} px to {path} in {time.perf_counter() - start:.1f} s")


@data_app.command("show")
@friendly
def show(
    dataset: Path = typer.Argument(..., help="Dataset folder."),
    n: int = typer.Option(16, "--n", min=1, help="Number of samples."),
    out: Path = typer.Option(..., "--out", help="PNG to write."),
    cell: int = typer.Option(128, "--cell", min=16, help="Tile size in pixels."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Pick random samples with this seed (default: the first n)."),
) -> None:
    """Contact sheet: images with masks outlined (green) and 2D joints drawn (left blue, right red)."""
    from maskpose.data.inspect import dataset_contact_sheet  # deferred: CLI start-up

    check_output_file(out, "--out", (".png", ".jpg", ".jpeg"))
    path = dataset_contact_sheet(dataset, out, n=n, cell=cell, seed=seed)
    typer.echo(f"wrote {path}")


@data_app.command("stats")
@friendly
def stats(
    dataset: Path = typer.Argument(..., help="Dataset folder."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Also write the statistics as JSON."),
) -> None:
    """Counts, fields, resolution, mask coverage and joint ranges of a dataset."""
    from maskpose.data.inspect import dataset_stats, format_stats  # deferred: CLI start-up

    if json_path is not None:
        check_output_file(json_path, "--json")
    result = dataset_stats(dataset)
    typer.echo(format_stats(result))
    if json_path is not None:
        atomic_write_text(json_path, json.dumps(result, indent=2) + "\n")


@import_app.command("npz")
@friendly
def import_npz_command(
    npz: Path = typer.Argument(..., help="SPIN-style .npz (imgname, center, scale[, S, part])."),
    images: Path = typer.Option(..., "--images", help="Folder the imgname paths are relative to."),
    out: Path = typer.Option(..., "--out", help="Dataset folder to write."),
    res: int = typer.Option(128, "--res", min=16),
    convention: str = typer.Option("h36m", "--convention", help="Order of 17-joint arrays: h36m or mpi_inf_3dhp."),
    margin: float = typer.Option(1.0, "--margin", help="Extra factor on SPIN's box (200 * scale)."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Import only the first N samples."),
    split: str = typer.Option("test", "--split"),
) -> None:
    """Import a SPIN-style .npz (Human3.6M, MPI-INF-3DHP, 3DPW) with its images."""
    from maskpose.data.adapters import import_npz  # deferred: CLI start-up

    check_output_folder(out)
    path = import_npz(npz, images, out, res=res, convention=convention, margin=margin, limit=limit, split=split)
    typer.echo(f"wrote {path}")


@import_app.command("coco")
@friendly
def import_coco_command(
    annotations: Path = typer.Argument(..., help="COCO keypoints JSON."),
    images: Path = typer.Option(..., "--images", help="Folder with the images."),
    out: Path = typer.Option(..., "--out", help="Dataset folder to write."),
    res: int = typer.Option(128, "--res", min=16),
    margin: float = typer.Option(1.2, "--margin", help="Crop side as a multiple of the box's larger side."),
    min_keypoints: int = typer.Option(1, "--min-keypoints", min=0),
    limit: Optional[int] = typer.Option(None, "--limit", min=1),
    split: str = typer.Option("train", "--split"),
    occlusion_aware: bool = typer.Option(False, "--occlusion-aware", help="Mark as unknown (valid 0) the pixels "
                                         "where another person of the photo covers the crop outside this "
                                         "person's mask: mask losses and IoU skip them."),
) -> None:
    """Import COCO person annotations (one cropped sample per person, polygon masks rasterised)."""
    from maskpose.data.adapters import import_coco  # deferred: CLI start-up

    check_output_folder(out)
    path = import_coco(annotations, images, out, res=res, margin=margin, min_keypoints=min_keypoints,
                       limit=limit, split=split, occlusion_aware=occlusion_aware)
    typer.echo(f"wrote {path}")


@import_app.command("folder")
@friendly
def import_folder_command(
    images: Path = typer.Argument(..., help="Folder of images."),
    masks: Path = typer.Argument(..., help="Folder of masks (matched to the images by file stem)."),
    out: Path = typer.Option(..., "--out", help="Dataset folder to write."),
    res: int = typer.Option(128, "--res", min=16),
    margin: float = typer.Option(1.2, "--margin"),
    split: str = typer.Option("train", "--split"),
    keypoints: Optional[Path] = typer.Option(None, "--keypoints", help="Folder of <image stem>.json files with the "
                                             "person's 17 COCO keypoints [x, y, v, ...] in image pixels."),
) -> None:
    """Import a folder of images with a folder of person masks (crops around each mask)."""
    from maskpose.data.adapters import import_folder  # deferred: CLI start-up

    check_output_folder(out)
    path = import_folder(images, masks, out, res=res, margin=margin, split=split, keypoints_dir=keypoints)
    typer.echo(f"wrote {path}")


@data_app.command("split")
@friendly
def split_command(
    dataset: Path = typer.Argument(..., help="Dataset folder to split."),
    out_a: Path = typer.Option(..., "--out-a", help="Dataset folder of part A (about --fraction of the samples)."),
    out_b: Path = typer.Option(..., "--out-b", help="Dataset folder of part B (the rest)."),
    fraction: float = typer.Option(0.5, "--fraction", help="Share of the samples in part A, in (0, 1)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the shuffle (the split is a function of it)."),
) -> None:
    """Split a dataset in two, by source image when it records one (image_index: the people of one
    photo stay together), in time for a video's crops (frame_index: A the earlier frames, B the
    later ones; no shuffle), otherwise by sample; every field is copied."""
    from maskpose.data.split import split_dataset  # deferred: CLI start-up

    check_output_folder(out_a, "--out-a")
    check_output_folder(out_b, "--out-b")
    result = split_dataset(dataset, out_a, out_b, fraction=fraction, seed=seed)
    unit = {"image_index": "images", "frame_index": "frames"}.get(result["by"], "samples")
    for part in ("a", "b"):
        info = result[part]
        typer.echo(f"wrote {info['path']}: {info['num_samples']} samples from {info['num_groups']} {unit}")


@bench_app.command("synth")
@friendly
def bench_synth(
    json_path: Optional[Path] = typer.Option(None, "--json", help="Write the results to this JSON file."),
    n: int = typer.Option(256, "--n", min=1, help="Frames timed."),
    res: int = typer.Option(128, "--res", min=16),
    batch_size: int = typer.Option(64, "--batch-size", min=1),
    domain: str = typer.Option("studio", "--domain"),
    geodesic: bool = typer.Option(False, "--geodesic/--no-geodesic", help="Include the geodesic weights."),
    threads: int = typer.Option(2, "--threads", min=1, help="torch and OpenCV threads for the run."),
    device: str = typer.Option("cpu", "--device"),
) -> None:
    """End-to-end synthesis speed (poses, Anny, camera, rendering, writing) in frames per second."""
    from maskpose.bench.synth import benchmark  # deferred: CLI start-up

    if json_path is not None:
        check_output_file(json_path, "--json")
    result = benchmark(n=n, res=res, batch_size=batch_size, domain=domain, geodesic=geodesic,
                       device=device, threads=threads)
    stages = ", ".join(f"{k} {v:.2f}" for k, v in result["stages_ms_per_frame"].items())
    typer.echo(
        f"synth {result['frames_per_s']:.1f} frames/s ({result['ms_per_frame']:.2f} ms/frame; "
        f"{result['frames_per_s'] / result['goal_frames_per_s']:.2f}x the goal of {result['goal_frames_per_s']}) "
        f"at {res} px, batch {batch_size}, {result['threads']} threads, domain {domain}"
    )
    typer.echo(f"ms/frame by stage: {stages}")
    if json_path is not None:
        atomic_write_text(json_path, json.dumps(result, indent=2) + "\n")
        typer.echo(f"wrote {json_path}")

"""CLI verbs for learning: pretrain, adapt, train-unsup, evaluate, predict.

Flags only map onto ``maskpose.train.config.TrainConfig`` (``TrainConfig.from_flags``);
``--config FILE.yaml`` sets any field.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

import typer

from maskpose.errors import ConfigError

from ._app import app
from .errors import friendly
from .video import extract_for_training


def _losses(specs: list[str] | None) -> dict[str, float] | None:
    """``["ls=1", "lt=0.5"]`` -> ``{"ls": 1.0, "lt": 0.5}`` (a bare name weighs 1)."""
    if not specs:
        return None
    out = {}
    for spec in specs:
        name, _, weight = spec.partition("=")
        try:
            out[name.strip()] = float(weight) if weight else 1.0
        except ValueError:
            raise ConfigError(f"--loss {spec!r}: the weight must be a number (e.g. ls=1.0)") from None
    return out


def check_output_file(path: Path, flag: str) -> None:
    """``ConfigError`` unless ``path`` can be written as a file: not a folder, no file among its
    parent folders (checked before a long run, not after it)."""
    if path.is_dir():
        raise ConfigError(f"{flag} {path}: is a directory; give the path of the file to write")
    blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise ConfigError(f"{flag} {path}: lies below the file {blocker}, which is not a folder")


DATA = typer.Option(..., "--data", help="Training dataset folder.")
OUT = typer.Option(..., "--out", help="Run folder (checkpoint, logs); an existing run there resumes.")
STEPS = typer.Option(None, help="Optimisation steps.")
BATCH = typer.Option(None, "--batch-size", help="Global batch size.")
LR = typer.Option(None, help="Adam learning rate.")
SEED = typer.Option(None, help="Seed (batches, initialisation).")
DEVICE = typer.Option(None, help="cpu, cuda, cuda:1, ...")
LOSS = typer.Option(None, "--loss", help="Loss term NAME=WEIGHT; repeat for several (replaces the defaults).")
CONFIG = typer.Option(None, "--config", help="YAML file with any TrainConfig fields.")
RES = typer.Option(None, "--res", help="Model input resolution (pixels).")
BODY = typer.Option(None, "--body", help="Body model: anny (default) or smpl (needs the smpl extra and --smpl-model).")
SMPL_MODEL = typer.Option(None, "--smpl-model", help="SMPL model file (e.g. SMPL_NEUTRAL.pkl; default "
                          "$MASKPOSE_SMPL_MODEL); with --body smpl.")
PRECISION = typer.Option(None, "--precision", help="Network forward precision: float32 (default), bf16 (CUDA or CPU) "
                         "or fp16 (CUDA only); the body model, renderer and losses stay float32.")
SMPL_MODEL_READ = typer.Option(None, "--smpl-model", help="SMPL model file for a checkpoint trained with body smpl "
                               "(default: the path saved in the checkpoint, else $MASKPOSE_SMPL_MODEL).")


def _body_flags(body: str | None, smpl_model: Path | None) -> dict:
    """The ``TrainConfig`` fields of ``--body`` and ``--smpl-model`` (``None``: not given)."""
    return {"body": body, "smpl_model": str(smpl_model) if smpl_model is not None else None}


def _report(result) -> None:
    if os.environ.get("RANK", "0") != "0":  # under torchrun, one report is enough
        return
    typer.echo(f"trained {result.steps} steps; checkpoint: {result.checkpoint}")
    if result.history:
        typer.echo("last: " + json.dumps(result.history[-1]))


@app.command()
@friendly
def pretrain(data: Path = DATA, out: Path = OUT, steps: Optional[int] = STEPS, batch_size: Optional[int] = BATCH,
             lr: Optional[float] = LR, seed: Optional[int] = SEED, device: Optional[str] = DEVICE,
             loss: Optional[list[str]] = LOSS, config: Optional[Path] = CONFIG, res: Optional[int] = RES,
             body: Optional[str] = BODY, smpl_model: Optional[Path] = SMPL_MODEL,
             precision: Optional[str] = PRECISION):
    """Train on the source domain with full supervision (3D and 2D joints, body parameters)."""
    from maskpose.train.loop import TrainConfig, train  # deferred: CLI start-up

    cfg = TrainConfig.from_flags("pretrain", config, data=str(data), out=str(out), steps=steps, batch_size=batch_size,
                                 lr=lr, seed=seed, device=device, losses=_losses(loss), resolution=res,
                                 precision=precision, **_body_flags(body, smpl_model))
    _report(train(cfg))


@app.command()
@friendly
def adapt(init: Path = typer.Option(..., "--init", help="Source checkpoint to adapt."),
          data: Optional[Path] = typer.Option(None, "--data", help="Target dataset folder (images and masks)."),
          out: Path = OUT, steps: Optional[int] = STEPS, batch_size: Optional[int] = BATCH,
          lr: Optional[float] = LR, seed: Optional[int] = SEED, device: Optional[str] = DEVICE,
          loss: Optional[list[str]] = LOSS, config: Optional[Path] = CONFIG,
          source_data: Optional[Path] = typer.Option(None, help="Source dataset for mixed supervised batches."),
          source_ratio: Optional[float] = typer.Option(None, help="Share of steps with a supervised source batch."),
          video: Optional[str] = typer.Option(None, "--video", help="A static-camera video instead of --data: person "
                                              "crops and masks are extracted into OUT/extracted first. With "
                                              "--online also a camera index (0, 1, ...) or a stream URL (rtsp://...)."),
          method: str = typer.Option("mog2", "--method", help="With --video: background subtractor, mog2 or knn."),
          warmup: int = typer.Option(30, "--warmup", min=0, help="With --video: frames that prime the background."),
          body: Optional[str] = BODY, smpl_model: Optional[Path] = SMPL_MODEL,
          precision: Optional[str] = PRECISION,
          online: bool = typer.Option(False, "--online", help="With --video: adapt while the frames arrive (a replay "
                                      "buffer, updates every --update-every frames, per-frame predictions in "
                                      "OUT/predictions.jsonl, a checkpoint every --checkpoint-every frames; running "
                                      "again resumes)."),
          buffer_size: Optional[int] = typer.Option(None, "--buffer-size", help="With --online: recent crops kept "
                                                    "for replay (default 256)."),
          update_every: Optional[int] = typer.Option(None, "--update-every", help="With --online: frames between "
                                                     "adaptation rounds (default 4)."),
          update_steps: Optional[int] = typer.Option(None, "--update-steps", help="With --online: optimisation steps "
                                                     "per round (default 1)."),
          checkpoint_every: Optional[int] = typer.Option(None, "--checkpoint-every", help="With --online: frames "
                                                         "between checkpoints (default 100)."),
          max_frames: Optional[int] = typer.Option(None, "--max-frames", help="With --online: stop after this many "
                                                   "frames of the stream.")):
    """Adapt a source model to a target domain from its images and masks only (L_S + L_T by default).

    The target is a dataset (--data) or a static-camera video (--video), whose person crops and masks
    are extracted by background subtraction (as ``maskpose masks extract``) at the model's resolution.

    With --online the model adapts while the video streams in (a file, a camera index or a stream
    URL): each frame is predicted with the model as adapted so far, its crops join a replay buffer,
    and every --update-every frames a few steps of the adapt objective run on batches from it.
    """
    from maskpose.train.loop import TrainConfig, train  # deferred: CLI start-up

    if data is not None and video is not None:
        raise ConfigError("give either --data DATASET or --video VIDEO, not both")
    if data is None and video is None and config is None:
        raise ConfigError("no target: give --data DATASET or --video VIDEO")
    online_flags = {"buffer_size": buffer_size, "update_every": update_every, "update_steps": update_steps,
                    "checkpoint_every": checkpoint_every, "max_frames": max_frames}
    if online:
        _adapt_online(init, video, out, batch_size=batch_size, lr=lr, seed=seed, device=device,
                      losses=_losses(loss), method=method, warmup=warmup, smpl_model=smpl_model,
                      unused={"--data": data, "--steps": steps, "--config": config, "--source-data": source_data,
                              "--source-ratio": source_ratio, "--body": body, "--precision": precision},
                      **online_flags)
        return
    given = [f"--{name.replace('_', '-')}" for name, value in online_flags.items() if value is not None]
    if given:
        raise ConfigError(f"{', '.join(given)} go(es) with --online")
    # The model and focal come with --init (a YAML that sets others is refused, as train() does).
    cfg = TrainConfig.from_flags("adapt", config, data=str(data) if data is not None else None, out=str(out),
                                 steps=steps, batch_size=batch_size, lr=lr, seed=seed, device=device,
                                 losses=_losses(loss), init_checkpoint=str(init),
                                 source_data=str(source_data) if source_data else None, source_ratio=source_ratio,
                                 precision=precision, **_body_flags(body, smpl_model))
    if video is not None:
        video = Path(video)
        extracted, reused = extract_for_training(video, out / "extracted", cfg.model.resolution, method, warmup)
        typer.echo(f"{'reusing' if reused else 'extracted'} person crops and masks of {video} in {extracted}")
        cfg.data = str(extracted)
    _report(train(cfg))


def _adapt_online(init: Path, video: str | None, out: Path, batch_size, lr, seed, device, losses, method: str,
                  warmup: int, smpl_model, unused: dict, **online_flags) -> None:
    """``adapt --video V --online``: the flags onto :class:`~maskpose.apps.online.OnlineConfig`, then
    :func:`~maskpose.apps.online.adapt_online`."""
    from maskpose.apps.online import OnlineConfig, adapt_online  # deferred: CLI start-up
    from maskpose.data.video import ExtractionConfig  # deferred: CLI start-up

    if video is None:
        raise ConfigError("--online adapts on a stream: give --video VIDEO (a file, a camera index or a URL)")
    given = sorted(flag for flag, value in unused.items() if value is not None)
    if given:
        raise ConfigError(f"{', '.join(given)} not used with --online (the stream is the data; the model, body and "
                          "focal come with --init)")
    fields = {"batch_size": batch_size, "lr": lr, "seed": seed, "losses": losses, **online_flags}
    fields = {k: v for k, v in fields.items() if v is not None}
    if buffer_size := fields.get("buffer_size"):  # a small buffer: updates start once it is full
        fields["min_buffer"] = min(OnlineConfig.min_buffer, buffer_size)
    config = OnlineConfig(**fields)
    extraction = ExtractionConfig(method=method.lower(), warmup=warmup)
    typer.echo(f"online adaptation on {video}: buffer {config.buffer_size} crops, {config.update_steps} step(s) of "
               f"batch {config.batch_size} every {config.update_every} frames, lr {config.lr:g}", err=True)
    result = adapt_online(init, video, out, config, extraction, device or "cpu",
                          str(smpl_model) if smpl_model is not None else None)
    where = f"resumed at frame {result.resumed_at}; " if result.resumed_at is not None else ""
    iou = f", mean IoU {100 * result.mean_iou:.1f} %" if result.mean_iou is not None else ""
    typer.echo(f"{where}{result.frames} frames ({result.people} person crops) at {result.fps:.2f} frames/s{iou}; "
               f"{result.updates} update rounds, {result.steps} steps in all")
    typer.echo(f"predictions: {result.predictions}; checkpoint: {result.checkpoint}"
               + (" (stopped: run again to resume)" if result.stopped else ""))


@app.command("train-unsup")
@friendly
def train_unsup(data: Path = DATA, out: Path = OUT, steps: Optional[int] = STEPS, batch_size: Optional[int] = BATCH,
                lr: Optional[float] = LR, seed: Optional[int] = SEED, device: Optional[str] = DEVICE,
                loss: Optional[list[str]] = LOSS, config: Optional[Path] = CONFIG, res: Optional[int] = RES,
                head: Optional[str] = typer.Option(None, "--head", help="joints (free landmarks; the default from "
                                                   "scratch) or mesh (the body model's joints)."),
                init: Optional[Path] = typer.Option(None, "--init", help="Stage-1 checkpoint to start stage 2 from."),
                source_data: Optional[Path] = typer.Option(None, help="Labelled source dataset: stage 1 trains on "
                                                           "it, stage 2 mixes its supervised batches in."),
                source_ratio: Optional[float] = typer.Option(None, help="Share of stage-2 steps with a supervised "
                                                             "source batch (released recipe: 1)."),
                stage1_steps: Optional[int] = typer.Option(None, help="Supervised stage-1 steps on --source-data "
                                                           "before stage 2 (written to OUT/stage1)."),
                body: Optional[str] = BODY, smpl_model: Optional[Path] = SMPL_MODEL):
    """Mask as Supervision. From scratch on masks only (the negative control), or the released
    two-stage recipe: stage 1 supervised on --source-data (--stage1-steps, or --init a stage-1
    model), stage 2 the mask terms on --data with supervised source batches mixed in
    (--source-ratio). docs/configs/paper004_stage2.yaml holds the released recipe's options."""
    from maskpose.train.loop import TrainConfig, train  # deferred: CLI start-up

    if head is not None and head not in ("joints", "mesh"):
        raise ConfigError(f"--head must be joints or mesh, got {head!r}")
    heads = [head] if head else (None if init else ["joints"])  # an --init model keeps its own heads
    cfg = TrainConfig.from_flags("train-unsup", config, data=str(data), out=str(out), steps=steps,
                                 batch_size=batch_size, lr=lr, seed=seed, device=device, losses=_losses(loss),
                                 resolution=res, heads=heads, init_checkpoint=str(init) if init else None,
                                 source_data=str(source_data) if source_data else None, source_ratio=source_ratio,
                                 stage1_steps=stage1_steps, **_body_flags(body, smpl_model))
    _report(train(cfg))


#: The floor printed beside each score of ``evaluate`` (docs/evaluation.md), and its unit.
_FLOORS = {
    **{f"pck2d@{f}": (f"floor_mean_pose_pck2d@{f}", "mean-pose", "%") for f in ("0.05", "0.1", "0.2")},
    **{f"pck2d_flip@{f}": (f"floor_mean_pose_pck2d_flip@{f}", "mean-pose", "%") for f in ("0.05", "0.1", "0.2")},
    "error2d_px": ("floor_mean_pose_error2d_px", "mean-pose", "px"),
    "silhouette_iou": ("floor_mean_mask_iou", "mean-mask", "%"),
}


def _metric_lines(metrics: dict) -> list[str]:
    """The lines ``evaluate`` prints: one per key (the 3D keys as before), each 2D score and the
    silhouette IoU with its unit and its floor beside it, the floors' source last."""
    keys = [k for k in metrics if not k.startswith("floor_")]
    width = max(len(k) for k in keys)
    lines = []
    for key in keys:
        value = metrics[key]
        if key in _FLOORS:
            floor_key, label, unit = _FLOORS[key]
            line = f"{key:<{width}}  " + (f"{value:10.2f} {unit:<2}" if value is not None else f"{'n/a':>10}   ")
            if metrics.get(floor_key) is not None:
                line += f"  ({label} floor {metrics[floor_key]:.2f} {unit})"
            lines.append(line.rstrip())
        elif isinstance(value, float):
            lines.append(f"{key:<{width}}  {value:10.2f}")
        else:
            lines.append(f"{key:<{width}}  {'n/a' if value is None else value:>10}")
    if "floor_source" in metrics:
        source = metrics["floor_source"]
        lines.append("floors: " + ("2-fold on the evaluated set (each half's means scored on the other half)"
                                   if source == "2-fold" else f"the means of {source}" if source else
                                   "none (fewer than 2 samples for 2-fold; give --floor-data TRAIN_SPLIT)"))
    return lines


@app.command()
@friendly
def evaluate(checkpoint: Path = typer.Argument(..., help="Model checkpoint."),
             data: Path = typer.Option(..., "--data", help="Labelled dataset (test split): joints3d, or joints2d "
                                       "of real person crops (a COCO import), or both."),
             json_path: Optional[Path] = typer.Option(None, "--json", help="Write the metrics here (every key)."),
             device: str = typer.Option("cpu"), batch_size: int = typer.Option(32, "--batch-size"),
             smpl_model: Optional[Path] = SMPL_MODEL_READ,
             floor_data: Optional[Path] = typer.Option(None, "--floor-data", help="Training split whose mean pose "
                                                       "and mean mask give the floors (default: 2-fold on --data)."),
             spp_data: Optional[Path] = typer.Option(None, "--spp-data", help="Labelled split (the target's training "
                                                     "split) to fit supervised post-processing (SPP) on."),
             spp_fraction: float = typer.Option(0.05, "--spp-fraction", help="Share of --spp-data's labels SPP "
                                                "is fitted on (Mask as Supervision: 1 % to 5 %)."),
             spp_kind: str = typer.Option("linear", "--spp-kind", help="SPP map: linear (ridge) or mlp."),
             refine: int = typer.Option(0, "--refine", help="Score per-image refinement: fit each body to its "
                                        "sample's mask for N Adam iterations first, as predict --refine N does "
                                        "(0: off; the mesh head and masks are needed).")):
    """MPJPE, PA-MPJPE, N-MPJPE, PCK@150, AUC, silhouette IoU, ambiguity ratio; with 2D keypoints,
    PCK in 2D and the pixel error, each beside the floor of a constant mean pose (docs/evaluation.md).
    With --refine N, every key is computed from the bodies fitted to the masks (the model is not changed).

    The body model is the checkpoint's (SMPL: its model file from --smpl-model). With --spp-data,
    the 3D keys again after SPP (``spp_mpjpe`` ...): a map from the model's landmarks to the joints
    fitted on --spp-fraction of that split's labels."""
    from maskpose.device import resolve_device  # deferred: CLI start-up
    from maskpose.io import atomic_write_text  # deferred: CLI start-up
    from maskpose.train.evaluate import evaluate_checkpoint, spp_metrics  # deferred: CLI start-up

    resolve_device(device)
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be an int >= 1, got {batch_size}")
    if json_path is not None:
        check_output_file(json_path, "--json")
    if not 0 < spp_fraction <= 1:
        raise ConfigError(f"--spp-fraction must lie in (0, 1], got {spp_fraction}")
    if spp_kind not in ("linear", "mlp"):
        raise ConfigError(f"--spp-kind must be linear or mlp, got {spp_kind!r}")
    smpl = str(smpl_model) if smpl_model is not None else None
    if refine < 0:
        raise ConfigError(f"--refine must be >= 0 (Adam iterations; 0: off), got {refine}")
    if refine and spp_data is not None:
        raise ConfigError("--refine and --spp-data do not combine: SPP maps the model's own landmarks; "
                          "run them as two evaluations")
    metrics = evaluate_checkpoint(checkpoint, data, device, batch_size, smpl, floor_data, refine=refine)
    for line in _metric_lines(metrics):
        typer.echo(line)
    if spp_data is not None:
        spp = spp_metrics(checkpoint, data, spp_data, spp_fraction, device, batch_size, spp_kind, smpl_model=smpl)
        typer.echo(f"after SPP ({spp_kind}, fitted on {spp['spp_labelled']} labelled samples of {spp_data}):")
        for key in ("mpjpe", "pa_mpjpe", "mpjpe_flip", "ambiguity_ratio"):
            unit = "%" if key == "ambiguity_ratio" else "mm"
            typer.echo(f"  {key}: {spp[key]:.1f} {unit}")
        metrics.update({f"spp_{key}": value for key, value in spp.items() if not key.startswith("spp_")})
        metrics.update({key: value for key, value in spp.items() if key.startswith("spp_")})
    if json_path:
        atomic_write_text(json_path, json.dumps(metrics, indent=2))


@app.command()
@friendly
def predict(checkpoint: Path = typer.Argument(..., help="Model checkpoint."),
            inputs: Optional[Path] = typer.Option(None, "--input",
                                                  help="An image, a folder of images, or a dataset folder."),
            out: Path = typer.Option(..., "--out",
                                     help="Output folder (with --video: the overlay video, .mp4 or .avi)."),
            ply: bool = typer.Option(True, help="Write PLY meshes (mesh head)."),
            device: str = typer.Option("cpu"),
            video: Optional[Path] = typer.Option(None, "--video", help="A static-camera video instead of --input."),
            ply_dir: Optional[Path] = typer.Option(None, "--ply-dir", help="With --video: write PLY meshes per person "
                                                   "per frame here (mesh head)."),
            json_dir: Optional[Path] = typer.Option(None, "--json-dir", help="With --video: per-frame JSON folder "
                                                    "(default: OUT's name with _json, beside it)."),
            method: str = typer.Option("mog2", "--method", help="With --video: background subtractor, mog2 or knn."),
            warmup: int = typer.Option(30, "--warmup", min=0, help="With --video: frames that prime the background."),
            smpl_model: Optional[Path] = SMPL_MODEL_READ,
            masks: Optional[Path] = typer.Option(None, "--masks", help="With --input PHOTO|FOLDER: the people's masks, "
                                                 "a folder of <stem>_<k>.png (one photo: any PNGs) or one label "
                                                 "image (0 background, 1..K person ids); one JSON per person."),
            boxes: Optional[Path] = typer.Option(None, "--boxes", help="With --input PHOTO: a JSON list of person "
                                                 "boxes in pixels, each a list x0, y0, x1, y1 (or {\"boxes\": "
                                                 "[...]}; for a folder, an object keyed by photo name)."),
            refine: Optional[int] = typer.Option(None, "--refine", help="Fit each prediction's body parameters to its "
                                                 "mask for N Adam iterations (L_S + L_T + prior; mesh head): a "
                                                 "dataset with masks, photos with --masks, or --video (default 20 "
                                                 "there; elsewhere 0). 0: off. The JSON records iou_before and "
                                                 "iou_after."),
            occlusion_aware: bool = typer.Option(False, "--occlusion-aware", help="With --masks on photos: "
                                                 "pixels another person covers outside a person's mask are "
                                                 "unknown to refinement and the IoU.")):
    """Per-image JSON of 3D joints, PLY meshes and overlay PNGs (silhouette and skeleton).

    An image that is not square is padded to a centred square (not squashed); joints come back in
    its pixels. With --masks or --boxes, --input is a full photo (or a folder of photos) with
    several people: each person is cropped around its mask or box (margin 1.2), predicted, and
    mapped back: OUT/<stem>_person<k>.json (joints in photo pixels, crop camera, silhouette IoU
    with masks), PLY meshes, and one OUT/<stem>_overlay.png of the whole photo.

    With --video: people are found and tracked by background subtraction (as ``maskpose masks
    extract``), each crop is predicted, and OUT is the video with every person's mesh silhouette and
    skeleton drawn; per-frame JSON (track id, crop box, 3D joints in the crop camera frame) and
    optional PLY meshes go beside it.

    Meshes are posed with the checkpoint's body model: Anny, or SMPL (the smpl extra, and its model
    file from --smpl-model, else the path saved in the checkpoint, else $MASKPOSE_SMPL_MODEL).

    --refine N fits each prediction's body parameters to its mask (N Adam iterations from the
    regressor's prediction, as fitting in the loop does); on by default (20) with --video, whose
    crops come with their extracted masks.
    """
    from maskpose.apps.predict import (  # deferred: CLI start-up
        ExtractionConfig,
        predict_photos,
        predict_to_folder,
        predict_video,
    )
    from maskpose.device import resolve_device  # deferred: CLI start-up
    from maskpose.train.checkpoint import load_checkpoint, saved_body  # deferred: CLI start-up

    resolve_device(device)

    if refine is not None and refine < 0:
        raise ConfigError(f"--refine must be >= 0 (Adam iterations; 0: off), got {refine}")
    if inputs is not None and video is not None:
        raise ConfigError("give either --input PATH or --video VIDEO, not both")
    if inputs is None and video is None:
        raise ConfigError("nothing to predict: give --input PATH (image, folder, dataset) or --video VIDEO")
    if video is not None and (masks is not None or boxes is not None):
        raise ConfigError("--masks and --boxes go with --input PHOTO|FOLDER, not with --video")
    if masks is not None and boxes is not None:
        raise ConfigError("give either --masks or --boxes, not both")
    if occlusion_aware and masks is None:
        raise ConfigError("--occlusion-aware goes with --masks on photos (it reads the other people's masks)")
    trained_with = saved_body(load_checkpoint(checkpoint)["config"])  # the apps pose this body's meshes
    if smpl_model is not None and trained_with != "smpl":
        typer.echo(f"note: --smpl-model {smpl_model} is not used: checkpoint {checkpoint} was trained with body "
                   f"{trained_with!r}", err=True)
    if video is not None:
        json_dir = json_dir if json_dir is not None else out.with_name(out.stem + "_json")
        result = predict_video(checkpoint, video, out, json_dir=json_dir, ply_dir=ply_dir, device=device,
                               extraction=ExtractionConfig(method=method.lower(), warmup=warmup), smpl_model=smpl_model,
                               refine=refine)
        typer.echo(f"{result.frames} frames, {result.tracks} track(s), {result.samples} person crops: "
                   f"overlay video {result.video} ({result.fourcc}); per-frame JSON in {result.json_dir}"
                   + (f"; PLY meshes in {result.ply_dir}" if result.ply_dir else ""))
        _refine_report(result)
        return
    if ply_dir is not None or json_dir is not None:
        raise ConfigError("--ply-dir and --json-dir go with --video (with --input, everything goes to --out)")
    if masks is not None or boxes is not None:
        result = predict_photos(checkpoint, inputs, out, masks=masks, boxes=boxes, device=device, write_ply=ply,
                                smpl_model=smpl_model, refine=refine or 0, occlusion_aware=occlusion_aware)
        typer.echo(f"wrote predictions for {result.people} person(s) in {result.photos} photo(s) to {out}")
        _refine_report(result)
        return
    written = predict_to_folder(checkpoint, inputs, out, device=device, write_ply=ply, smpl_model=smpl_model,
                                refine=refine or 0)
    typer.echo(f"wrote predictions for {written} image(s) to {out}" + (f" (refined {refine} iterations)" if refine else ""))


def _refine_report(result) -> None:
    """The line on per-image refinement of a photo or video prediction (nothing when it was off)."""
    if result.refine and result.iou_before is not None:
        typer.echo(f"refined {result.refine} iterations: mean silhouette IoU {100 * result.iou_before:.1f} % -> "
                   f"{100 * result.iou_after:.1f} %")

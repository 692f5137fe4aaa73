"""Predictions for images, folders and datasets (per-image JSON of 3D joints, PLY meshes, overlays), for
every person of full photographs given their masks or boxes, and for static-camera videos.

The mesh head is posed with the body model its checkpoint was trained with (:func:`checkpoint_bodies`):
Anny, or SMPL from a model file the user supplies (``smpl_model``, else the path saved in the
checkpoint, else ``$MASKPOSE_SMPL_MODEL``). Records name the shape parameters by the body's
``shape_name``: ``phenotypes`` (Anny) or ``betas`` (SMPL, whose records also say ``"body": "smpl"``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import trimesh
from PIL import Image, ImageDraw

from maskpose.body.registry import make_body
from maskpose.body.smpl_body import SMPL_MODEL_ENV
from maskpose.conventions import H36M_BONES, default_focal
from maskpose.data.adapters import (
    MARGIN_RANGE,
    MAX_CROP_DIAGONALS,
    check_image_size,
    crop,
    crop_valid,
    read_image,
    read_mask,
    square_box,
)
from maskpose.data.dataset import MaskposeDataset, read_meta
from maskpose.data.tracks import alpha_for_lag, exponential_smooth
from maskpose.data.video import (
    CODECS,
    ExtractionConfig,
    FrameSource,
    count_frames,
    extract_video,
    frame_valid,
    open_video_writer,
)
from maskpose.device import resolve_device
from maskpose.errors import ConfigError, DataError
from maskpose.models.regressor import MeshHeadOutput
from maskpose.render.zbuffer import silhouette_mask
from maskpose.train.checkpoint import load_checkpoint, load_model, saved_body, saved_masked_input
from maskpose.train.pipeline import build_body, intrinsics, joint_prediction, masked_images, mesh_prediction
from maskpose.train.refine import REFINE_LR, MaskRefiner, check_refine

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def read_inputs(path: str | Path, res: int) -> tuple[list[str], torch.Tensor, list[tuple[int, int]]]:
    """Names, ``(N, 3, res, res)`` images and each input's ``(H, W)`` in pixels, from an image
    file, a folder of images or a dataset.

    Images are decoded completely (a truncated file is an error) at their bit depth, 16-bit
    files scaled to 8 bits. An image that is not square is padded to a centred square first
    (:func:`pad_to_square`: zeros, aspect ratio kept), then resized; a dataset's samples are
    resized as they are. Names are the file names with their suffix (``a.png`` and ``a.jpg``
    in one folder give ``a.png.json`` and ``a.jpg.json``), or ``000000``... for a dataset's samples.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: input does not exist")
    if is_dataset(path):
        data = MaskposeDataset(path, fields=["image"])
        images = torch.stack([data[i]["image"] for i in range(len(data))])
        names = [f"{i:06d}" for i in range(len(data))]
        sizes = [tuple(int(v) for v in images.shape[-2:])] * len(names)
    else:
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()) \
            if path.is_dir() else [path]
        if not files:
            raise DataError(f"{path}: folder has no images ({', '.join(IMAGE_SUFFIXES)})")
        arrays, sizes = [], []
        for file in files:
            rgb = read_image(file)  # DataError names a missing, corrupt or truncated file
            sizes.append((int(rgb.shape[0]), int(rgb.shape[1])))
            arrays.append(np.asarray(Image.fromarray(pad_to_square(rgb)).resize((res, res), Image.BILINEAR)))
        images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255.0
        names = [f.name for f in files]
    if images.shape[-1] != res or images.shape[-2] != res:
        images = torch.nn.functional.interpolate(images, size=(res, res), mode="bilinear", align_corners=False)
    return names, images, sizes


def is_dataset(path: str | Path) -> bool:
    """Whether ``path`` is a maskpose dataset folder (it holds ``meta.json``)."""
    path = Path(path)
    return path.is_dir() and (path / "meta.json").exists()


def square_padding(size: tuple[int, int]) -> tuple[int, int, int]:
    """``(side, left, top)`` of the centred square an image of ``size`` ``(H, W)`` is padded to:
    its longer side, and the columns and rows added before the image (half the difference, rounded down)."""
    h, w = (int(v) for v in size)
    side = max(h, w)
    return side, (side - w) // 2, (side - h) // 2


def pad_to_square(image: np.ndarray) -> np.ndarray:
    """``(H, W, ...)`` image -> ``(S, S, ...)`` with ``S = max(H, W)``: the image centred
    (:func:`square_padding`), zeros around it, as :func:`maskpose.data.adapters.crop` pads; a
    square image comes back as it is."""
    side, left, top = square_padding(image.shape[:2])
    if side == image.shape[0] == image.shape[1]:
        return image
    out = np.zeros((side, side) + image.shape[2:], image.dtype)
    out[top : top + image.shape[0], left : left + image.shape[1]] = image
    return out


def model_to_input(points, size: tuple[int, int], res: int, padded: bool = True) -> np.ndarray:
    """Model-resolution pixel coordinates ``(..., 2)`` -> pixels of an input of ``size`` ``(H, W)``.

    ``padded``: the input was padded to a centred square of side ``S`` (:func:`pad_to_square`)
    and resized to ``res x res``, so ``x_in = (x + 0.5) S / res - 0.5 - left``; otherwise (a
    dataset's samples) it was resized to ``res x res`` as it is: ``x_in = (x + 0.5) W / res - 0.5``.
    Pixel centres at integers."""
    h, w = size
    if not padded:
        return (np.asarray(points, np.float64) + 0.5) * np.array([w / res, h / res]) - 0.5
    side, left, top = square_padding(size)
    return (np.asarray(points, np.float64) + 0.5) * (side / res) - 0.5 - np.array([left, top], np.float64)


def draw_overlay(image: torch.Tensor, joints2d: torch.Tensor, silhouette: torch.Tensor | None, scale: int = 4) -> Image.Image:
    """``(3, H, W)`` image with the silhouette tinted and the H36M skeleton drawn, upscaled."""
    rgb = (image.permute(1, 2, 0).numpy() * 255).astype(np.float32)
    if silhouette is not None:
        m = silhouette.numpy()[..., None] > 0.5
        rgb = np.where(m, 0.55 * rgb + 0.45 * np.array([60, 200, 255]), rgb)
    pil = Image.fromarray(rgb.clip(0, 255).astype(np.uint8)).resize((image.shape[2] * scale, image.shape[1] * scale),
                                                                    Image.NEAREST)
    draw = ImageDraw.Draw(pil)
    j = (joints2d.numpy() + 0.5) * scale
    for a, b in H36M_BONES:
        colour = (255, 80, 80) if a in (4, 5, 11, 12) or b in (4, 5, 6, 11, 12, 13) else (80, 255, 80)
        draw.line([tuple(j[a]), tuple(j[b])], fill=colour, width=2)
    return pil


def smpl_model_path(config: dict, smpl_model: str | Path | None) -> str:
    """The SMPL model file of a checkpoint: ``smpl_model`` when given, else the path saved in its
    config when that file exists here (or nothing else is set), else ``""`` (``$MASKPOSE_SMPL_MODEL``)."""
    if smpl_model:
        return str(smpl_model)
    saved = config.get("smpl_model", "") or ""
    if saved and (Path(saved).expanduser().exists() or not os.environ.get(SMPL_MODEL_ENV)):
        return saved
    return ""


def checkpoint_bodies(checkpoint: str | Path, state: dict, device="cpu", smpl_model: str | Path | None = None,
                      meshes: bool = False):
    """``(body, export_body)``: the body models that pose a loaded checkpoint's mesh head.

    ``body`` is the model the checkpoint was trained with, as training built it
    (:func:`~maskpose.train.pipeline.build_body` of its saved ``body``, none: Anny, with the saved
    ``h36m_regressor`` and ``smpl_topology``); it gives the joints and the rendered silhouette.
    ``export_body`` (``meshes``) is the same body at its full topology, for PLY export (Anny's
    ``"anny"`` mesh, SMPL's 6,890 vertices). The SMPL model file is ``smpl_model`` (``--smpl-model``),
    else the path saved in the checkpoint when it exists on this machine, else
    ``$MASKPOSE_SMPL_MODEL``. ``(None, None)`` for a model without a mesh head; a one-line
    ``ConfigError`` naming the checkpoint when the ``smpl`` extra or a model file is missing."""
    config = state["config"]
    if "mesh" not in config["model"].get("heads", ("mesh",)):
        return None, None
    name = saved_body(config)
    if name == "anny":  # the rendering mesh, and the full 13,718-vertex mesh for PLY files
        return build_body("anny", device), (make_body("anny", topology="anny", device=device) if meshes else None)
    settings = {"smpl_model": smpl_model_path(config, smpl_model),
                "h36m_regressor": config.get("h36m_regressor", "") or ""}
    topology = config.get("smpl_topology", "decimated")
    try:
        body = build_body(name, device, smpl_topology=topology, **settings)
        export_body = None
        if meshes:
            export_body = body if topology == "full" else build_body(name, device, smpl_topology="full", **settings)
    except ConfigError as err:
        hint = "" if "--smpl-model" in str(err) else f" (give --smpl-model PATH or set {SMPL_MODEL_ENV})"
        raise ConfigError(f"checkpoint {checkpoint} was trained with body {name!r}: {err}{hint}") from None
    return body, export_body


def shape_entries(record: dict) -> dict:
    """The shape entries of a crop record for its JSON: ``phenotypes`` (Anny) or ``betas`` and
    ``body`` (SMPL), rounded to 5 decimals; empty for the joint head."""
    entries = {}
    for key in ("phenotypes", "betas"):
        if key in record:
            entries[key] = np.round(np.asarray(record[key], np.float64), 5).tolist()
    if "body" in record:
        entries["body"] = record["body"]
    return entries


# --------------------------------------------------------------------------------------------
# per-image refinement (``--refine N``)

#: ``--refine``'s default on the video path, where every crop comes with its extracted mask
#: (elsewhere refinement is off unless asked for).
VIDEO_REFINE = 20


def crop_ious(silhouettes: torch.Tensor, masks: torch.Tensor, valid: torch.Tensor | None = None) -> list[float]:
    """Per crop, the silhouette IoU (:func:`mask_iou`) of ``silhouettes`` and ``masks`` ``(N, res, res)``
    (each on above 0.5) over the crop's ``valid`` pixels (``None``: all; a crop's padding outside
    the photo or frame never counts)."""
    sil = silhouettes.detach().cpu().numpy() > 0.5
    truth = masks.detach().cpu().numpy() > 0.5
    if valid is not None:
        seen = valid.detach().cpu().numpy() > 0.5
        sil, truth = sil & seen, truth & seen
    return [mask_iou(a, b) for a, b in zip(sil, truth)]


def iou_entries(record: dict) -> dict:
    """The IoU entries of a crop record for its JSON (rounded to 5 decimals): ``iou`` (the written
    prediction against the crop's mask, where the mask is known) and, when refined,
    ``iou_before`` (the regressor's prediction), ``iou_after`` (equal to ``iou``) and
    ``refine_iterations``."""
    entries = {k: round(float(record[k]), 5) for k in ("iou", "iou_before", "iou_after") if k in record}
    if "refine_iterations" in record:
        entries["refine_iterations"] = int(record["refine_iterations"])
    return entries


def _silhouettes(mesh: MeshHeadOutput, body, K: torch.Tensor, res: int):
    """The prediction of the mesh head's parameters and its hard silhouettes ``(N, res, res)``."""
    pred = mesh_prediction(mesh, body, K, res)
    return pred, silhouette_mask(pred.vertices, pred.faces, K, (res, res), behind="cull")[:, 0]


def refine_mesh(mesh: MeshHeadOutput, body, K: torch.Tensor, res: int, refiner: MaskRefiner | None,
                masks: torch.Tensor | None, valid: torch.Tensor | None = None):
    """``(mesh, prediction, silhouettes, ious)``: the mesh head's parameters, refined when there is
    a ``refiner`` and ``masks`` (else as they are), their prediction and hard silhouettes
    ``(N, res, res)``, and the IoU entries per crop (empty dicts without masks)."""
    pred, silhouettes = _silhouettes(mesh, body, K, res)
    if masks is None:
        return mesh, pred, silhouettes, [{} for _ in range(len(K))]
    if refiner is None or not refiner.iterations:
        return mesh, pred, silhouettes, [{"iou": v} for v in crop_ious(silhouettes, masks, valid)]
    before = crop_ious(silhouettes, masks, valid)
    mesh = refiner(mesh, K, masks, valid)
    pred, silhouettes = _silhouettes(mesh, body, K, res)
    after = crop_ious(silhouettes, masks, valid)
    return mesh, pred, silhouettes, [{"iou": a, "iou_before": b, "iou_after": a, "refine_iterations": refiner.iterations}
                                     for b, a in zip(before, after)]


def mean_ious(records) -> tuple[float | None, float | None]:
    """The mean ``iou_before`` and ``iou_after`` of crop records (``None`` where none has them)."""
    before = [r["iou_before"] for r in records if "iou_before" in r]
    after = [r["iou_after"] for r in records if "iou_after" in r]
    return (float(np.mean(before)) if before else None, float(np.mean(after)) if after else None)


def check_masks_for(masked: bool, has_masks: bool, checkpoint, where: str) -> None:
    """``DataError`` when a masked-input model (:func:`~maskpose.train.checkpoint.saved_masked_input`)
    is given inputs without masks;
    ``where`` says how to give them."""
    if masked and not has_masks:
        raise DataError(f"{checkpoint}: this model sees the image times the person mask (masked_input), and "
                        f"{where}")


def model_input(images: torch.Tensor, masks: torch.Tensor | None, masked: bool) -> torch.Tensor:
    """What the network sees: ``images`` ``(N, 3, H, W)``, or with ``masked`` the images times
    their ``masks`` ``(N, H, W)``: :func:`maskpose.train.pipeline.masked_images`, as in training."""
    return masked_images({"image": images} if masks is None else {"image": images, "mask": masks[:, None]}, masked)


def read_dataset_masks(path: str | Path, res: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """``(masks, valid)`` of a dataset's samples at ``res``, ``(N, res, res)`` uint8 {0, 1} (resized
    nearest, as training resizes them): ``(None, None)`` without a ``mask`` field; ``valid`` is
    ``None`` without a ``valid`` field (every pixel seen)."""
    present = MaskposeDataset(path).fields
    if "mask" not in present:
        return None, None
    data = MaskposeDataset(path, fields=[f for f in ("mask", "valid") if f in present])
    stacked: dict[str, list[torch.Tensor]] = {f: [] for f in data.fields}
    for i in range(len(data)):
        item = data[i]
        for f in data.fields:
            value = item[f].reshape(1, 1, *item[f].shape[-2:]).float()
            if tuple(value.shape[-2:]) != (res, res):
                value = torch.nn.functional.interpolate(value, size=(res, res), mode="nearest")
            stacked[f].append((value[0, 0] > 0.5).to(torch.uint8))
    masks = torch.stack(stacked["mask"])
    return masks, (torch.stack(stacked["valid"]) if "valid" in stacked else None)


@torch.no_grad()
def predict_to_folder(checkpoint: str | Path, inputs: str | Path, out: str | Path, device="cpu",
                      write_ply: bool = True, batch_size: int = 16, smpl_model: str | Path | None = None,
                      refine: int = 0, refine_lr: float = REFINE_LR) -> int:
    """Predictions for each image of ``inputs`` (:func:`read_inputs`: one person crop per image;
    a non-square image padded to a centred square), written to ``out``: ``<name>.json`` (joints2d
    in the input's pixels), ``<name>.ply`` (mesh head, ``write_ply``), ``<name>_overlay.png``.
    The body model is the checkpoint's (:func:`checkpoint_bodies`; ``smpl_model`` for SMPL).

    A dataset with masks gives each record its ``iou`` against the sample's mask; ``refine`` > 0
    fits each prediction to its mask first (:class:`MaskRefiner`, ``refine`` Adam steps of
    ``refine_lr``; the records add ``iou_before`` and ``iou_after``). Refinement needs masks (a
    dataset with a ``mask`` field) and the mesh head. Returns the number of images."""
    device = resolve_device(device)
    model, state = load_model(checkpoint, device)
    model.eval()
    res = model.config.resolution
    refine = check_refine(refine, checkpoint, "mesh" in model.config.heads)
    focal = state["config"].get("focal") or default_focal(res)
    masks = valid = None
    if is_dataset(inputs):
        masks, valid = read_dataset_masks(inputs, res)
    no_masks = ("this dataset has no mask field" if is_dataset(inputs) else "a folder of images has no masks") \
        + " (give a dataset with masks, photos with --masks, or --video)"
    masked = saved_masked_input(state["config"])
    check_masks_for(masked, masks is not None, checkpoint, no_masks)
    if refine and masks is None:
        raise DataError(f"{inputs}: --refine fits each prediction to its mask, and {no_masks}")
    body, export_body = checkpoint_bodies(checkpoint, state, device, smpl_model, meshes=write_ply)
    refiner = MaskRefiner(body, model.config, refine, refine_lr, device) if refine else None
    names, images, sizes = read_inputs(inputs, res)
    padded = not is_dataset(inputs)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for start in range(0, len(names), batch_size):
        batch = images[start : start + batch_size].to(device)
        rows = slice(start, start + batch.shape[0])
        batch_masks = None if masks is None else masks[rows].to(device)
        heads = model(model_input(batch, batch_masks, masked))
        silhouettes = None
        ious = [{} for _ in range(batch.shape[0])]
        if heads.mesh is not None:
            K = intrinsics(focal, res, batch=batch.shape[0], device=device)
            mesh, pred, silhouettes, ious = refine_mesh(
                heads.mesh, body, K, res, refiner, batch_masks, None if valid is None else valid[rows].to(device))
            silhouettes = silhouettes.cpu()
            if export_body is not None:
                full = export_body(mesh.pose, mesh.phenotypes, pred.translation)
        else:
            pred = joint_prediction(heads.joints, res)
        for i in range(batch.shape[0]):
            name = names[start + i]
            size = sizes[start + i]
            record = {"name": name, "joints3d_m": pred.joints3d[i].cpu().tolist(),
                      "joints2d_px": model_to_input(pred.joints2d[i, :17].cpu().numpy(), size, res,
                                                    padded).tolist(),
                      "joints2d_frame": "input image pixels (pixel centres at integers)",
                      "input_size_hw": list(size), "joint_order": "h36m-17"}
            if pred.translation is not None:
                record["translation_m"] = pred.translation[i].cpu().tolist()
                record[body.shape_name] = mesh.phenotypes[i].cpu().tolist()
                if body.name != "anny":
                    record["body"] = body.name
            record.update(iou_entries(ious[i]))
            (out / f"{name}.json").write_text(json.dumps(record, indent=1))
            draw_overlay(batch[i].cpu(), pred.joints2d[i, :17].cpu(),
                         None if silhouettes is None else silhouettes[i]).save(out / f"{name}_overlay.png")
            if heads.mesh is not None and export_body is not None:
                trimesh.Trimesh(full.vertices[i].cpu().numpy(), export_body.faces.cpu().numpy(),
                                process=False).export(out / f"{name}.ply")
    return len(names)


# --------------------------------------------------------------------------------------------
# crops and videos


class CropPredictor:
    """A loaded model with what turns its outputs into records: body models, the crop camera.

    Args:
        checkpoint: model checkpoint.
        device: torch device.
        meshes: also pose the full-topology mesh (for PLY export; mesh head only).
        smpl_model: the SMPL model file of a checkpoint trained with body ``smpl``
            (:func:`checkpoint_bodies`).
        refine: Adam iterations of per-image refinement on the crops' masks (:class:`MaskRefiner`;
            0: off; the mesh head only), of learning rate ``refine_lr``.
    """

    def __init__(self, checkpoint: str | Path, device="cpu", meshes: bool = False,
                 smpl_model: str | Path | None = None, refine: int = 0, refine_lr: float = REFINE_LR):
        self.model, state = load_model(checkpoint, device)
        self.model.eval()
        self.device = device
        self.res = self.model.config.resolution
        self.focal = float(state["config"].get("focal") or default_focal(self.res))
        self.has_mesh = "mesh" in self.model.config.heads
        self.masked_input = saved_masked_input(state["config"])
        self.refine = check_refine(refine, checkpoint, self.has_mesh)
        self.body, self.export_body = checkpoint_bodies(checkpoint, state, device, smpl_model, meshes)
        self.refiner = MaskRefiner(self.body, self.model.config, refine, refine_lr, device) if refine else None

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, masks: torch.Tensor | None = None,
                 valid: torch.Tensor | None = None) -> list[dict]:
        """Records of crops ``(N, 3, res, res)`` (:func:`predict_crops`), with their ``masks`` and
        ``valid`` pixels ``(N, res, res)`` when known (IoU entries; refined with ``refine``)."""
        return predict_crops(self.model, images, self.focal, self.body, self.export_body, masks, valid, self.refiner,
                             masked_input=self.masked_input)


@torch.no_grad()
def predict_crops(model, images: torch.Tensor, focal: float, body=None, export_body=None,
                  masks: torch.Tensor | None = None, valid: torch.Tensor | None = None,
                  refiner: MaskRefiner | None = None, masked_input: bool = False) -> list[dict]:
    """Predictions for square crops ``(N, 3, res, res)`` (floats in [0, 1], ``res`` the model's;
    with ``masked_input`` the network sees them times their ``masks``, which are then required).

    Returns one record per crop (numpy arrays): ``joints3d`` ``(17, 3)`` metres in the crop camera
    (a centred pinhole of focal ``focal`` px; root-relative for the joint head), ``joints2d``
    ``(17, 2)`` crop pixels, and for the mesh head ``silhouette`` ``(res, res)`` bool,
    ``translation`` ``(3,)``, the shape parameters under the body's ``shape_name`` (``phenotypes``
    ``(6,)`` for Anny, ``betas`` ``(10,)`` for SMPL), plus ``vertices`` ``(V, 3)`` and ``faces``
    of ``export_body``'s topology when it is given (``body`` is required for the mesh head).

    With the crops' ``masks`` ``(N, res, res)`` (and their ``valid`` pixels, 0 on padding), each
    mesh-head record has its ``iou`` against the mask; with a ``refiner`` the body parameters are
    first fitted to the masks (:func:`refine_mesh`) and the records add ``iou_before``,
    ``iou_after`` and ``refine_iterations``.
    """
    res = images.shape[-1]
    device = next(model.parameters()).device
    images = images.to(device)
    heads = model(model_input(images, None if masks is None else masks.to(device), masked_input))
    records = [{} for _ in range(images.shape[0])]
    if heads.mesh is not None:
        K = intrinsics(focal, res, batch=images.shape[0], device=device)
        mesh, pred, silhouettes, ious = refine_mesh(heads.mesh, body, K, res, refiner,
                                                    None if masks is None else masks.to(device),
                                                    None if valid is None else valid.to(device))
        silhouettes = silhouettes > 0.5
        full = None
        if export_body is not None:
            full = export_body(mesh.pose, mesh.phenotypes, pred.translation)
        for i, record in enumerate(records):
            record.update(silhouette=silhouettes[i].cpu().numpy(), translation=pred.translation[i].cpu().numpy(),
                          **{body.shape_name: mesh.phenotypes[i].cpu().numpy()}, **ious[i])
            if body.name != "anny":
                record["body"] = body.name
            if full is not None:
                record.update(vertices=full.vertices[i].cpu().numpy(), faces=export_body.faces.cpu().numpy())
    else:
        pred = joint_prediction(heads.joints, res)
    for i, record in enumerate(records):
        record["joints3d"] = pred.joints3d[i].cpu().numpy()
        record["joints2d"] = pred.joints2d[i, :17].cpu().numpy()
    return records


def crop_to_frame(points: np.ndarray, box, res: int) -> np.ndarray:
    """Crop pixel coordinates ``(..., 2)`` of a ``res``-pixel crop cut at ``box`` (x0, y0, x1, y1,
    square) -> source-frame pixel coordinates."""
    x0, y0, x1, _ = (float(v) for v in box)
    scale = (x1 - x0) / res
    return (np.asarray(points, np.float64) + 0.5) * scale - 0.5 + np.array([x0, y0])


def crop_camera(focal: float, box, res: int) -> np.ndarray:
    """Full-frame intrinsics ``(3, 3)`` of the crop camera: the centred pinhole of ``focal`` crop
    pixels, seen in source-frame pixels (so ``joints3d`` of a record project with it onto the frame)."""
    x0, y0, x1, _ = (float(v) for v in box)
    scale = (x1 - x0) / res
    centre = crop_to_frame(np.array([(res - 1) / 2.0, (res - 1) / 2.0]), box, res)
    return np.array([[focal * scale, 0.0, centre[0]], [0.0, focal * scale, centre[1]], [0.0, 0.0, 1.0]])


#: Overlay colours (RGB): silhouette tint, left and right limbs.
_TINT = np.array([60, 200, 255], np.float32)
_LEFT, _RIGHT = (255, 80, 80), (80, 255, 80)


def draw_person(frame: np.ndarray, record: dict, box, res: int, track_id: int | None = None) -> None:
    """Draw one person's crop prediction onto an RGB frame ``(H, W, 3)`` uint8 in place: the mesh
    silhouette tinted (mesh head), the H36M skeleton and the track id."""
    h, w = frame.shape[:2]
    x0, y0, x1, y1 = (int(round(float(v))) for v in box)
    side = x1 - x0
    if record.get("silhouette") is not None and side > 0:
        sil = cv2.resize(record["silhouette"].astype(np.uint8), (side, side), interpolation=cv2.INTER_NEAREST) > 0
        sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        if sx1 > sx0 and sy1 > sy0:
            m = sil[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0]
            region = frame[sy0:sy1, sx0:sx1]
            region[m] = (0.55 * region[m] + 0.45 * _TINT).astype(np.uint8)
    draw_skeleton(frame, crop_to_frame(record["joints2d"], box, res), max(1, int(round(side / 120))))
    if track_id is not None:
        _label(frame, str(track_id), x0, y0)


def draw_skeleton(frame: np.ndarray, joints: np.ndarray, thickness: int = 1) -> None:
    """Draw the H36M skeleton of ``joints`` ``(17, 2)`` (frame pixels) onto an RGB frame in place;
    bones with a non-finite or absurd end are left out."""
    for a, b in H36M_BONES:
        colour = _LEFT if a in (4, 5, 11, 12) or b in (4, 5, 6, 11, 12, 13) else _RIGHT
        pa, pb = joints[a], joints[b]
        if np.isfinite(pa).all() and np.isfinite(pb).all() and np.abs(np.concatenate([pa, pb])).max() < 1e5:
            cv2.line(frame, (int(round(pa[0])), int(round(pa[1]))), (int(round(pb[0])), int(round(pb[1]))),
                     colour, thickness, cv2.LINE_AA)


def _label(frame: np.ndarray, text: str, x0: int, y0: int) -> None:
    cv2.putText(frame, text, (max(x0, 0) + 2, max(y0, 0) + 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                (255, 255, 0), 1, cv2.LINE_AA)


def person_record(record: dict, track_id: int, box, res: int, focal: float) -> dict:
    """The JSON entry of one person in one frame."""
    entry = {
        "track_id": int(track_id),
        "crop_box": [float(v) for v in box],
        "joints3d_m": np.round(record["joints3d"].astype(np.float64), 5).tolist(),
        "joints2d_px": np.round(crop_to_frame(record["joints2d"], box, res), 2).tolist(),
        "crop_camera_K": np.round(crop_camera(focal, box, res), 4).tolist(),
    }
    if "translation" in record:
        entry["translation_m"] = np.round(record["translation"].astype(np.float64), 5).tolist()
        entry.update(shape_entries(record))
    entry.update(iou_entries(record))
    return entry


@dataclass
class VideoPrediction:
    """What ``predict_video`` wrote: the overlay video, the JSON and PLY folders (``None`` when not
    written), frames, people-frames (samples) and tracks."""

    video: Path
    json_dir: Path | None
    ply_dir: Path | None
    frames: int
    samples: int
    tracks: int
    fourcc: str
    #: Adam iterations of per-image refinement (0: off), and the mean silhouette IoU of the crops
    #: against their extracted masks before and after it (``None`` when not refined).
    refine: int = 0
    iou_before: float | None = None
    iou_after: float | None = None


@torch.no_grad()
def predict_video(checkpoint: str | Path, video: str | Path, out_video: str | Path,
                  json_dir: str | Path | None = None, ply_dir: str | Path | None = None, device="cpu",
                  extraction=None, batch_size: int = 16,
                  progress: Callable[[str, int], None] | None = None,
                  smpl_model: str | Path | None = None, refine: int | None = None,
                  refine_lr: float = REFINE_LR) -> VideoPrediction:
    """Person crops and tracks from a static-camera video, a prediction per crop, and

    * ``out_video`` (``.mp4`` or ``.avi``): the source frames with every person's mesh silhouette
      (tinted), H36M skeleton and track id drawn at its crop box;
    * ``json_dir/frame_NNNNNN.json`` per frame: ``{"frame", "time_s", "people": [...]}``, one
      entry per person (``person_record``: track id, crop box, 3D joints in the crop camera frame,
      2D joints in frame pixels, the crop camera's full-frame intrinsics, translation and
      phenotypes for the mesh head); frames without anyone have an empty list;
    * ``ply_dir/frame_NNNNNN_trackK.ply``: the full-topology mesh of each person (mesh head; the
      checkpoint's body model, ``smpl_model`` for SMPL: :func:`checkpoint_bodies`), in the crop camera frame.

    ``extraction`` is a :class:`maskpose.data.video.ExtractionConfig` (its resolution is replaced
    by the model's). Crops are extracted into a temporary folder, then predicted in order of
    frames in batches while the video is read a second time, so memory stays bounded.

    Every crop comes with its extracted mask: each person entry has its ``iou`` against it (crop
    pixels inside the frame), and per-image refinement (:class:`MaskRefiner`) is on by default:
    ``refine`` Adam iterations (``None``: :data:`VIDEO_REFINE` for a mesh-head checkpoint, 0 for
    the joint head; 0: off), with ``iou_before`` and ``iou_after`` in the entries; the overlay,
    JSON and PLY files show the refined bodies.
    """
    if batch_size < 1:
        raise DataError(f"batch_size must be >= 1, got {batch_size}")
    if Path(out_video).suffix.lower() not in CODECS:
        raise DataError(f"{out_video}: the overlay video must end in {' or '.join(CODECS)}")
    source = FrameSource(video, (extraction or ExtractionConfig()).max_frames)  # fails early on a bad video
    if refine is None:  # on by default where the body can be fitted
        heads = load_checkpoint(checkpoint)["config"]["model"].get("heads", ("mesh",))
        refine = VIDEO_REFINE if "mesh" in heads else 0
    predictor = CropPredictor(checkpoint, resolve_device(device), meshes=ply_dir is not None, smpl_model=smpl_model,
                              refine=refine, refine_lr=refine_lr)
    if ply_dir is not None and not predictor.has_mesh:
        raise DataError(f"{checkpoint}: the model has no mesh head, so there are no meshes to write (drop --ply-dir)")
    config = dataclasses.replace(extraction or ExtractionConfig(), resolution=predictor.res)
    out_video = Path(out_video)
    json_dir, ply_dir = (Path(d) if d is not None else None for d in (json_dir, ply_dir))
    for folder in (json_dir, ply_dir):
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="maskpose-predict-") as tmp:
        result = extract_video(video, Path(tmp) / "crops", config, progress=progress)
        crops = _CropStream(result.path, predictor, batch_size, (source.height, source.width))
        frames, fourcc = _write_overlay_video(source, crops, out_video, json_dir, ply_dir, progress)
    if count_frames(out_video) != frames:
        raise DataError(f"{out_video}: the overlay video does not read back with {frames} frames")
    before, after = mean_ious(crops.ious)
    return VideoPrediction(out_video, json_dir, ply_dir, frames, len(crops), len(result.tracks), fourcc,
                           predictor.refine, before, after)


class _CropStream:
    """The extracted crops of a video (sorted by frame, then track), predicted in batches as the
    frames that need them are reached, so memory stays bounded. Each crop's mask (and where the
    crop sees the frame of ``frame_size`` ``(H, W)``) gives its IoU and, with the predictor's
    ``refine``, its refinement; ``ious`` keeps the IoU entries of every crop predicted."""

    def __init__(self, path: Path, predictor: CropPredictor, batch_size: int, frame_size: tuple[int, int]):
        # ``merged`` (per crop, a blob of people who merged) is read when the extraction wrote it
        fields = ["image", "mask", "frame_index", "track_id", "crop_box"]
        self.data = MaskposeDataset(path, fields=fields + (["merged"] if "merged" in read_meta(path)["fields"] else []))
        self.frame_index = np.asarray(self.data.arrays["frame_index"]).astype(np.int64)
        merged = self.data.arrays.get("merged")
        self.merged = np.zeros(len(self.data), bool) if merged is None else np.asarray(merged).astype(bool)
        self.track_id = np.asarray(self.data.arrays["track_id"]).astype(np.int64)
        self.boxes = np.asarray(self.data.arrays["crop_box"], dtype=np.float64)
        self.predictor, self.batch_size, self.frame_size = predictor, batch_size, frame_size
        self.pending: dict[int, dict] = {}
        self.done = 0  # samples predicted so far
        self.ious: list[dict] = []

    def __len__(self) -> int:
        return len(self.data)

    def people_in(self, frame: int) -> list[tuple[int, np.ndarray, dict]]:
        """``(track id, crop box, record)`` of every person in ``frame`` (frames come in order)."""
        n = len(self.data)
        res = self.predictor.res
        while self.done < n and self.frame_index[self.done] <= frame:
            stop = min(n, self.done + self.batch_size)
            items = [self.data[i] for i in range(self.done, stop)]
            images = torch.stack([item["image"] for item in items])
            masks = torch.stack([item["mask"][0] for item in items])
            valid = torch.from_numpy(np.stack([frame_valid(self.boxes[i], self.frame_size, res)
                                               for i in range(self.done, stop)]))
            for i, record in zip(range(self.done, stop), self.predictor(images, masks, valid)):
                self.pending[i] = record
                self.ious.append({k: record[k] for k in ("iou", "iou_before", "iou_after") if k in record})
            self.done = stop
        mine = [i for i in sorted(self.pending) if self.frame_index[i] == frame]
        return [(int(self.track_id[i]), self.boxes[i], {**self.pending.pop(i), "merged": bool(self.merged[i])})
                for i in mine]


#: Lag (frames) of the causal exponential smoothing of ``predict --video``'s ``joints3d_smoothed_m``
#: along each track (:func:`maskpose.data.tracks.exponential_smooth`, ``alpha = 1 / (1 + lag)``):
#: white noise falls to ``alpha / (2 - alpha)`` = 1/5 of its variance.
VIDEO_SMOOTHING_LAG = 2.0


def _write_overlay_video(source: FrameSource, crops: _CropStream, out_video: Path, json_dir: Path | None,
                         ply_dir: Path | None, progress: Callable[[str, int], None] | None) -> tuple[int, str]:
    """Read the video again, drawing every person's prediction onto its frame and writing the
    per-frame JSON and PLY files; returns the frames written and the video's fourcc."""
    res, focal = crops.predictor.res, crops.predictor.focal
    fps = source.fps or 25.0
    writer, fourcc = open_video_writer(out_video, fps, (source.width, source.height))
    frames = 0
    last: dict[int, tuple[int, np.ndarray]] = {}  # track -> (frame, smoothed joints3d) of its last crop
    try:
        for index, frame in source:
            canvas = np.ascontiguousarray(frame.copy())
            people = []
            for track, box, record in crops.people_in(index):
                draw_person(canvas, record, box, res, track)
                entry = person_record(record, track, box, res, focal)
                entry["merged"] = record["merged"]
                # Causal smoothing along the track, as the frames stream out (lag VIDEO_SMOOTHING_LAG frames).
                joints = record["joints3d"].astype(np.float64)
                if track in last:
                    frame_before, smoothed = last[track]
                    joints = exponential_smooth(np.stack([smoothed, joints]), alpha_for_lag(VIDEO_SMOOTHING_LAG),
                                                frames=[frame_before, index])[1]
                last[track] = (index, joints)
                entry["joints3d_smoothed_m"] = np.round(joints, 5).tolist()
                people.append(entry)
                if ply_dir is not None:
                    trimesh.Trimesh(record["vertices"], record["faces"], process=False).export(
                        ply_dir / f"frame_{index:06d}_track{track}.ply")
            if json_dir is not None:
                (json_dir / f"frame_{index:06d}.json").write_text(json.dumps(
                    {"frame": index, "time_s": round(index / fps, 4), "joint_order": "h36m-17", "people": people}))
            writer.write(canvas[..., ::-1].copy())
            frames += 1
            if progress:
                progress("overlay", index)
    finally:
        writer.release()
    return frames, fourcc


# --------------------------------------------------------------------------------------------
# photographs with several people


#: Margin of the square crop around each person's mask extent or box (the importers' default).
PHOTO_MARGIN = 1.2
#: Overlay tints (RGB) of the people of a photo, in turn.
_PERSON_TINTS = np.array([[60, 200, 255], [255, 170, 40], [190, 90, 255], [60, 255, 140], [255, 90, 150]],
                         np.float32)


@dataclass
class Person:
    """One person of a photo: its number ``k`` (outputs ``<stem>_person<k>``), what it came from
    (a mask file, a label, a box), its box ``(x0, y0, x1, y1)`` in photo pixels (a mask's runs
    from its first pixel to one past its last) and its mask in the photo (``None`` for a box)."""

    number: int
    source: str
    box: tuple[float, float, float, float]
    mask: np.ndarray | None = None


@dataclass
class PhotoPrediction:
    """What :func:`predict_photos` wrote: how many photos and people, and where."""

    photos: int
    people: int
    out: Path
    #: Adam iterations of per-image refinement (0: off), and the mean crop IoU against the
    #: people's masks before and after it (``None`` when not refined).
    refine: int = 0
    iou_before: float | None = None
    iou_after: float | None = None


def _shown(value, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def photo_files(inputs: str | Path, masks: str | Path | None = None) -> list[Path]:
    """The photos of ``inputs``: one image, or a folder's images in name order. Refuses a dataset
    (its samples are crops already), a folder without images and two photos of one stem (outputs
    are named by stem). When ``masks`` is the photo folder itself, the ``<stem>_<k>.png`` masks of
    its photos are not photos."""
    inputs = Path(inputs)
    if not inputs.exists():
        raise DataError(f"{inputs}: input does not exist")
    if is_dataset(inputs):
        raise ConfigError(f"{inputs}: is a dataset of person crops; --masks and --boxes go with a photo or a "
                          "folder of photos")
    if not inputs.is_dir():
        return [inputs]
    files = sorted(p for p in inputs.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if masks is not None and Path(masks).is_dir() and Path(masks).resolve() == inputs.resolve():
        stems = {p.stem for p in files}
        files = [p for p in files if not (p.suffix.lower() == ".png" and any(
            re.fullmatch(re.escape(s) + r"_\d+", p.stem) for s in stems if s != p.stem))]
    if not files:
        raise DataError(f"{inputs}: folder has no images ({', '.join(IMAGE_SUFFIXES)})")
    seen: dict[str, Path] = {}
    for path in files:
        if path.stem in seen:
            raise DataError(f"{path}: two photos share the stem {path.stem!r} ({seen[path.stem].name}); "
                            "outputs are named by stem")
        seen[path.stem] = path
    return files


def mask_files(photo: Path, folder: Path, single: bool) -> list[tuple[int, Path]]:
    """``(k, file)`` of the person masks of ``photo`` in ``folder``: its ``<stem>_<k>.png`` files,
    else, when ``photo`` is the only input (``single``), every PNG of the folder (people 1, 2, ...
    in name order)."""
    if not folder.is_dir():
        raise DataError(f"{folder}: mask folder does not exist")
    pngs = sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() == ".png" and p.resolve() != photo.resolve())
    pattern = re.compile(re.escape(photo.stem) + r"_(\d+)")
    named: dict[int, Path] = {}
    for path in pngs:
        match = pattern.fullmatch(path.stem)
        if match:
            k = int(match[1])
            if k in named:
                raise DataError(f"{path}: two masks of person {k} of {photo.name} ({named[k].name})")
            named[k] = path
    if named:
        return sorted(named.items())
    if single and pngs:
        return list(enumerate(pngs, 1))
    raise DataError(f"{folder}: no mask found for the photo {photo.name} (expected {photo.stem}_<k>.png"
                    + (" or any PNG masks)" if single else ")"))


def read_labels(path: str | Path) -> np.ndarray:
    """A label image ``(H, W)`` int64: 0 background, ``k > 0`` person ``k`` (an image of only
    ``{0, 255}`` is one binary mask: person 1). One channel (or grey colours), lossless."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: label image does not exist")
    if path.suffix.lower() in (".jpg", ".jpeg"):
        raise DataError(f"{path}: a label image must be lossless (PNG), not JPEG")
    try:
        with Image.open(path) as im:
            im.load()  # decodes every byte: raises on truncated data
            labels = np.asarray(im)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise DataError(f"{path}: cannot read the label image ({err})") from None
    if labels.ndim == 3:
        if not (labels[..., :3] == labels[..., :1]).all():
            raise DataError(f"{path}: label image has colours; it must have one channel (0 background, "
                            "1..K person ids)")
        labels = labels[..., 0]
    labels = labels.astype(np.int64)
    if set(np.unique(labels).tolist()) == {0, 255}:
        labels = (labels > 0).astype(np.int64)
    return labels


def _mask_person(number: int, source: str, mask: np.ndarray, where: Path, photo: Path,
                 size: tuple[int, int]) -> Person:
    h, w = size
    if mask.shape != (h, w):
        raise DataError(f"{where}: mask is {mask.shape[1]}x{mask.shape[0]} px, the photo {photo.name} is {w}x{h}")
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        raise DataError(f"{where}: mask is empty (no person to crop around)")
    return Person(number, source, (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)),
                  mask.astype(bool))


def mask_people(photo: Path, size: tuple[int, int], masks: Path, single: bool) -> list[Person]:
    """The people of ``photo`` (``size`` ``(H, W)``) from ``masks``: a folder of binary masks
    (:func:`mask_files`) or one label image (:func:`read_labels`). Every mask must have the
    photo's size and at least one pixel."""
    if masks.is_dir():
        return [_mask_person(k, file.name, read_mask(file), file, photo, size)
                for k, file in mask_files(photo, masks, single)]
    labels = read_labels(masks)
    if labels.shape != tuple(size):
        raise DataError(f"{masks}: label image is {labels.shape[1]}x{labels.shape[0]} px, the photo {photo.name} "
                        f"is {size[1]}x{size[0]}")
    ids = [int(k) for k in np.unique(labels) if k > 0]
    if not ids:
        raise DataError(f"{masks}: label image is empty (no person id above 0)")
    return [_mask_person(k, f"label {k}", labels == k, masks, photo, size) for k in ids]


def read_boxes(path: str | Path):
    """The parsed JSON of a boxes file (checked per photo by :func:`photo_boxes`)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: boxes file does not exist")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not valid JSON ({err})") from None


def photo_boxes(data, path: Path, photo: Path, single: bool) -> list:
    """The raw boxes of ``photo`` in a boxes file's JSON ``data``: the file's list (or
    ``{"boxes": [...]}``) for a single photo; for a folder of photos, an object keyed by photo
    file name or stem, each a list (or ``{"boxes": [...]}``)."""
    if isinstance(data, dict) and set(data) == {"boxes"}:
        data = data["boxes"]
    if isinstance(data, dict):
        entry = data.get(photo.name, data.get(photo.stem))
        if entry is None:
            raise DataError(f"{path}: no boxes for the photo {photo.name} (keys are photo names or stems)")
        data = entry["boxes"] if isinstance(entry, dict) and set(entry) == {"boxes"} else entry
    elif not single and isinstance(data, list):
        raise DataError(f"{path}: one list of boxes for a folder of photos; key them by photo name "
                        '({"a.jpg": [[x0, y0, x1, y1], ...], ...})')
    if not isinstance(data, list) or not data:
        raise DataError(f"{path}: boxes must be a non-empty list of [x0, y0, x1, y1] pixel boxes "
                        f'(or {{"boxes": [...]}}), got {_shown(data)}')
    return data


def box_people(raw: list, path: Path, photo: Path, size: tuple[int, int]) -> list[Person]:
    """People 1, 2, ... of ``photo`` from its raw boxes ``[x0, y0, x1, y1]`` (pixels; ``x1 - x0``
    the width). A box must overlap the photo (one partly outside is padded, as crops are) and
    be at most :data:`~maskpose.data.adapters.MAX_CROP_DIAGONALS` photo diagonals wide."""
    h, w = size
    limit = MAX_CROP_DIAGONALS * float(np.hypot(h, w))
    people = []
    for k, box in enumerate(raw, 1):
        numbers = isinstance(box, (list, tuple)) and len(box) == 4 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in box)
        values = np.asarray(box, np.float64) if numbers else None
        if values is None or not np.isfinite(values).all() or values[2] <= values[0] or values[3] <= values[1]:
            raise DataError(f"{path}: box {k} of {photo.name} must be [x0, y0, x1, y1] in pixels with x1 > x0 and "
                            f"y1 > y0, got {_shown(box)}")
        x0, y0, x1, y1 = values.tolist()
        if x1 <= 0 or y1 <= 0 or x0 >= w or y0 >= h:
            raise DataError(f"{path}: box {k} {_shown(box)} lies outside the photo {photo.name} ({w}x{h} px)")
        if max(x1 - x0, y1 - y0) > limit:
            raise DataError(f"{path}: box {k} {_shown(box)} is over {MAX_CROP_DIAGONALS:g} diagonals of the photo "
                            f"{photo.name} wide")
        people.append(Person(k, f"box {k}", (x0, y0, x1, y1)))
    return people


def crop_box(affine: np.ndarray, res: int) -> np.ndarray:
    """``(x0, y0, x1, y1)`` in photo pixels of a ``res``-pixel square crop made with ``affine``
    (photo -> crop pixels, as :func:`~maskpose.data.adapters.crop` returns it), in the convention
    of :func:`crop_to_frame`: ``x0`` the crop's first photo pixel, ``x1 - x0`` its side."""
    affine = np.asarray(affine, np.float64)
    s = affine[0, 0]
    x0, y0 = 0.5 - (affine[0, 2] + 0.5) / s, 0.5 - (affine[1, 2] + 0.5) / s
    return np.round(np.array([x0, y0, x0 + res / s, y0 + res / s]), 6)


def silhouette_to_photo(silhouette: np.ndarray, affine: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A crop's ``(res, res)`` silhouette in photo pixels, ``(H, W)`` bool: warped by the inverse
    of the crop's ``affine`` (photo -> crop pixels), nearest neighbour, empty outside the crop."""
    h, w = size
    warped = cv2.warpAffine(np.asarray(silhouette).astype(np.uint8), np.asarray(affine, np.float64), (w, h),
                            flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT,
                            borderValue=0)
    return warped > 0


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean masks (1 for two empty masks)."""
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def photo_person_record(record: dict, person: Person, photo: Path, size: tuple[int, int], box: np.ndarray,
                        res: int, focal: float) -> dict:
    """The JSON of one person of a photo (``box``: its crop's, :func:`crop_box`)."""
    entry = {
        "name": photo.name,
        "person": person.number,
        "source": person.source,
        "box_xyxy": [float(v) for v in person.box],
        "crop_box": [float(v) for v in box],
        "joints2d_px": np.round(crop_to_frame(record["joints2d"], box, res), 3).tolist(),
        "joints2d_frame": "photo pixels (pixel centres at integers)",
        "joints3d_m": np.round(record["joints3d"].astype(np.float64), 5).tolist(),
        "joints3d_frame": "crop camera (crop_camera_K, in photo pixels)",
        "crop_camera_K": np.round(crop_camera(focal, box, res), 4).tolist(),
        "input_size_hw": [int(size[0]), int(size[1])],
        "joint_order": "h36m-17",
    }
    if "translation" in record:
        entry["translation_m"] = np.round(record["translation"].astype(np.float64), 5).tolist()
        entry.update(shape_entries(record))
    entry.update(iou_entries(record))
    return entry


@torch.no_grad()
def predict_photos(checkpoint: str | Path, inputs: str | Path, out: str | Path, masks: str | Path | None = None,
                   boxes: str | Path | None = None, device="cpu", write_ply: bool = True, batch_size: int = 16,
                   margin: float = PHOTO_MARGIN, smpl_model: str | Path | None = None, refine: int = 0,
                   refine_lr: float = REFINE_LR, occlusion_aware: bool = False) -> PhotoPrediction:
    """Predictions for every person of full photographs, given their masks or boxes.

    ``inputs`` is a photo or a folder of photos; ``masks`` a folder of binary masks
    ``<stem>_<k>.png`` (for a single photo, any PNGs of the folder) or, for a single photo, one
    label image (0 background, ``k`` person ``k``); ``boxes`` a JSON file of ``[x0, y0, x1, y1]``
    pixel boxes (a list or ``{"boxes": [...]}``; for a folder, an object keyed by photo name).
    Each person is cropped as the importers crop (:func:`~maskpose.data.adapters.square_box` of
    its mask's extent or box times ``margin``, padded outside the photo, aspect kept), the crops
    of a photo are predicted in batches, and the predictions are mapped back onto the photo.

    Writes to ``out``: ``<stem>_person<k>.json`` per person (joints2d in photo pixels, joints3d
    in the crop camera, the box, the crop box and its camera's intrinsics in photo pixels; with
    masks and a mesh head the silhouette IoU against the person's mask), ``<stem>_person<k>.ply``
    (mesh head, ``write_ply``), and ``<stem>_overlay.png``: the photo with every person's tinted
    silhouette and skeleton. Every photo's masks or boxes are checked before anything is written.
    The body model is the checkpoint's (:func:`checkpoint_bodies`; ``smpl_model`` for SMPL).

    With masks, each person's JSON also has its ``iou`` against its mask in crop pixels (at the
    model's resolution, over the crop's pixels inside the photo); ``refine`` > 0 fits each
    person's body parameters to its mask first (:class:`MaskRefiner`: ``refine`` Adam steps of
    ``refine_lr``), adding ``iou_before`` and ``iou_after``; everything written (joints, meshes,
    overlay, ``silhouette_iou``) is then the refined body. Refinement needs ``masks`` and the
    mesh head. ``occlusion_aware`` (with masks): the pixels of a person's crop that another person
    of the photo covers outside this person's mask count as unknown, as in
    ``maskpose data import coco --occlusion-aware``: neither refinement nor the IoU reads them.
    """
    if (masks is None) == (boxes is None):
        raise ConfigError("give the people of the photos as --masks or as --boxes (one of them)")
    if refine and masks is None:
        raise ConfigError("--refine fits each person's body to its mask: give --masks, not --boxes")
    if occlusion_aware and masks is None:
        raise ConfigError("--occlusion-aware reads the other people's masks: give --masks, not --boxes")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be an int >= 1, got {batch_size!r}")
    if not MARGIN_RANGE[0] <= float(margin) <= MARGIN_RANGE[1]:
        raise ConfigError(f"margin must lie in [{MARGIN_RANGE[0]:g}, {MARGIN_RANGE[1]:g}], got {margin!r}")
    photos = photo_files(inputs, masks)
    single = not Path(inputs).is_dir()
    masks = Path(masks) if masks is not None else None
    boxes = Path(boxes) if boxes is not None else None
    if masks is not None and not masks.exists():
        raise DataError(f"{masks}: masks do not exist (a folder of masks or a label image)")
    if masks is not None and not masks.is_dir() and not single:
        raise ConfigError(f"--masks {masks}: a label image goes with one photo; for a folder of photos give a "
                          "folder of <stem>_<k>.png masks")
    box_data = read_boxes(boxes) if boxes is not None else None

    def people_of(photo: Path) -> tuple[np.ndarray, list[Person]]:
        image = read_image(photo)
        check_image_size(image.shape, photo)
        size = image.shape[:2]
        if masks is not None:
            return image, mask_people(photo, size, masks, single)
        return image, box_people(photo_boxes(box_data, boxes, photo, single), boxes, photo, size)

    first = people_of(photos[0])  # kept; the other photos are read again when they are predicted
    for photo in photos[1:]:
        people_of(photo)
    predictor = CropPredictor(checkpoint, resolve_device(device), meshes=write_ply, smpl_model=smpl_model,
                              refine=refine, refine_lr=refine_lr)
    check_masks_for(predictor.masked_input, masks is not None, checkpoint,
                    "--boxes gives no masks (give --masks: per-person PNGs or a label image)")
    res, focal = predictor.res, predictor.focal
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    count = 0
    every: list[dict] = []
    for index, photo in enumerate(photos):
        image, people = first if index == 0 else people_of(photo)
        size = image.shape[:2]
        crops, crop_masks, valids, affines = [], [], [], []
        for k, person in enumerate(people):
            x0, y0, x1, y1 = person.box
            cx, cy, side = square_box((x0, y0, x1 - x0, y1 - y0), margin)
            pixels, person_mask, affine = crop(image, (cx, cy), side, res, mask=person.mask)
            crops.append(pixels)
            affines.append(affine)
            if person.mask is not None:
                crop_masks.append(person_mask)
                others = [p.mask for j, p in enumerate(people) if j != k] if occlusion_aware else []
                union = np.logical_or.reduce(others).astype(np.uint8) if others else None
                valids.append(crop_valid(image.shape, (cx, cy), side, res, union, person_mask))
        batch = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float() / 255.0
        mask_batch = torch.from_numpy(np.stack(crop_masks)) if len(crop_masks) == len(people) else None
        valid_batch = torch.from_numpy(np.stack(valids)) if mask_batch is not None else None
        records: list[dict] = []
        for start in range(0, len(people), batch_size):
            part = slice(start, start + batch_size)
            records += predictor(batch[part], None if mask_batch is None else mask_batch[part],
                                 None if valid_batch is None else valid_batch[part])
        every += [{k: r[k] for k in ("iou_before", "iou_after") if k in r} for r in records]
        canvas = np.ascontiguousarray(image.copy())
        skeletons = []
        for n, (person, affine, record) in enumerate(zip(people, affines, records)):
            box = crop_box(affine, res)
            entry = photo_person_record(record, person, photo, size, box, res, focal)
            if record.get("silhouette") is not None:
                silhouette = silhouette_to_photo(record["silhouette"], affine, size)
                if person.mask is not None:
                    entry["silhouette_iou"] = round(mask_iou(silhouette, person.mask), 5)
                tint = _PERSON_TINTS[n % len(_PERSON_TINTS)]
                canvas[silhouette] = (0.55 * canvas[silhouette] + 0.45 * tint).astype(np.uint8)
            (out / f"{photo.stem}_person{person.number}.json").write_text(json.dumps(entry, indent=1))
            if "vertices" in record:
                trimesh.Trimesh(record["vertices"], record["faces"], process=False).export(
                    out / f"{photo.stem}_person{person.number}.ply")
            skeletons.append((person, box, np.asarray(entry["joints2d_px"])))
        for person, box, joints in skeletons:  # on top of every silhouette
            draw_skeleton(canvas, joints, max(1, int(round((box[2] - box[0]) / 120))))
            _label(canvas, str(person.number), int(round(box[0])), int(round(box[1])))
        Image.fromarray(canvas).save(out / f"{photo.stem}_overlay.png")
        count += len(people)
    return PhotoPrediction(len(photos), count, out, predictor.refine, *mean_ious(every))

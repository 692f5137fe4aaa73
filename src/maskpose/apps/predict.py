"""Predictions for images, folders and datasets: per-image JSON of 3D joints, PLY meshes, overlays."""

from __future__ import annotations

import dataclasses
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import trimesh
from PIL import Image, ImageDraw

from maskpose.body.anny_body import AnnyBody
from maskpose.conventions import H36M_BONES, default_focal
from maskpose.data.adapters import read_image
from maskpose.data.dataset import MaskposeDataset
from maskpose.data.video import CODECS, ExtractionConfig, FrameSource, count_frames, extract_video, open_video_writer
from maskpose.device import resolve_device
from maskpose.errors import DataError
from maskpose.render.zbuffer import silhouette_mask
from maskpose.train.checkpoint import load_model
from maskpose.train.pipeline import intrinsics, joint_prediction, mesh_prediction

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def read_inputs(path: str | Path, res: int) -> tuple[list[str], torch.Tensor, list[tuple[int, int]]]:
    """Names, ``(N, 3, res, res)`` images and each input's ``(H, W)`` in pixels, from an image
    file, a folder of images or a dataset.

    Images are decoded completely (a truncated file is an error) at their bit depth, 16-bit
    files scaled to 8 bits. Names are the file names with their suffix (``a.png`` and ``a.jpg``
    in one folder give ``a.png.json`` and ``a.jpg.json``), or ``000000``... for a dataset's samples.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: input does not exist")
    if path.is_dir() and (path / "meta.json").exists():
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
            arrays.append(np.asarray(Image.fromarray(rgb).resize((res, res), Image.BILINEAR)))
        images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255.0
        names = [f.name for f in files]
    if images.shape[-1] != res or images.shape[-2] != res:
        images = torch.nn.functional.interpolate(images, size=(res, res), mode="bilinear", align_corners=False)
    return names, images, sizes


def model_to_input(points, size: tuple[int, int], res: int) -> np.ndarray:
    """Model-resolution pixel coordinates ``(..., 2)`` -> pixels of an input of ``size`` ``(H, W)``
    that was resized to ``res x res`` (pixel centres at integers: ``x_in = (x + 0.5) W / res - 0.5``)."""
    h, w = size
    return (np.asarray(points, np.float64) + 0.5) * np.array([w / res, h / res]) - 0.5


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


@torch.no_grad()
def predict_to_folder(checkpoint: str | Path, inputs: str | Path, out: str | Path, device="cpu",
                      write_ply: bool = True, batch_size: int = 16) -> int:
    device = resolve_device(device)
    model, state = load_model(checkpoint, device)
    model.eval()
    res = model.config.resolution
    focal = state["config"].get("focal") or default_focal(res)
    names, images, sizes = read_inputs(inputs, res)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    body = export_body = None
    if "mesh" in model.config.heads:
        body = AnnyBody(device=device)
        export_body = AnnyBody("anny", device=device) if write_ply else None
    for start in range(0, len(names), batch_size):
        batch = images[start : start + batch_size].to(device)
        heads = model(batch)
        silhouettes = None
        if heads.mesh is not None:
            K = intrinsics(focal, res, batch=batch.shape[0], device=device)
            pred = mesh_prediction(heads.mesh, body, K, res)
            silhouettes = silhouette_mask(pred.vertices, pred.faces, K, (res, res), behind="cull")[:, 0].cpu()
            if export_body is not None:
                full = export_body(heads.mesh.pose, heads.mesh.phenotypes, pred.translation)
        else:
            pred = joint_prediction(heads.joints, res)
        for i in range(batch.shape[0]):
            name = names[start + i]
            size = sizes[start + i]
            record = {"name": name, "joints3d_m": pred.joints3d[i].cpu().tolist(),
                      "joints2d_px": model_to_input(pred.joints2d[i, :17].cpu().numpy(), size, res).tolist(),
                      "joints2d_frame": "input image pixels (pixel centres at integers)",
                      "input_size_hw": list(size), "joint_order": "h36m-17"}
            if pred.translation is not None:
                record["translation_m"] = pred.translation[i].cpu().tolist()
                record["phenotypes"] = heads.mesh.phenotypes[i].cpu().tolist()
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
        meshes: also pose the full-topology Anny mesh (for PLY export; mesh head only).
    """

    def __init__(self, checkpoint: str | Path, device="cpu", meshes: bool = False):
        self.model, state = load_model(checkpoint, device)
        self.model.eval()
        self.device = device
        self.res = self.model.config.resolution
        self.focal = float(state["config"].get("focal") or default_focal(self.res))
        self.has_mesh = "mesh" in self.model.config.heads
        self.body = self.export_body = None
        if self.has_mesh:
            self.body = AnnyBody(device=device)
            self.export_body = AnnyBody("anny", device=device) if meshes else None

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> list[dict]:
        return predict_crops(self.model, images, self.focal, self.body, self.export_body)


@torch.no_grad()
def predict_crops(model, images: torch.Tensor, focal: float, body=None, export_body=None) -> list[dict]:
    """Predictions for square crops ``(N, 3, res, res)`` (floats in [0, 1], ``res`` the model's).

    Returns one record per crop (numpy arrays): ``joints3d`` ``(17, 3)`` metres in the crop camera
    (a centred pinhole of focal ``focal`` px; root-relative for the joint head), ``joints2d``
    ``(17, 2)`` crop pixels, and for the mesh head ``silhouette`` ``(res, res)`` bool,
    ``translation`` ``(3,)``, ``phenotypes`` ``(6,)``, plus ``vertices`` ``(V, 3)`` and ``faces``
    of ``export_body``'s topology when it is given (``body`` is required for the mesh head).
    """
    res = images.shape[-1]
    device = next(model.parameters()).device
    images = images.to(device)
    heads = model(images)
    records = [{} for _ in range(images.shape[0])]
    if heads.mesh is not None:
        K = intrinsics(focal, res, batch=images.shape[0], device=device)
        pred = mesh_prediction(heads.mesh, body, K, res)
        silhouettes = silhouette_mask(pred.vertices, pred.faces, K, (res, res), behind="cull")[:, 0] > 0.5
        full = None
        if export_body is not None:
            full = export_body(heads.mesh.pose, heads.mesh.phenotypes, pred.translation)
        for i, record in enumerate(records):
            record.update(silhouette=silhouettes[i].cpu().numpy(), translation=pred.translation[i].cpu().numpy(),
                          phenotypes=heads.mesh.phenotypes[i].cpu().numpy())
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
    joints = crop_to_frame(record["joints2d"], box, res)
    thickness = max(1, int(round(side / 120)))
    for a, b in H36M_BONES:
        colour = _LEFT if a in (4, 5, 11, 12) or b in (4, 5, 6, 11, 12, 13) else _RIGHT
        pa, pb = joints[a], joints[b]
        if np.isfinite(pa).all() and np.isfinite(pb).all() and np.abs(np.concatenate([pa, pb])).max() < 1e5:
            cv2.line(frame, (int(round(pa[0])), int(round(pa[1]))), (int(round(pb[0])), int(round(pb[1]))),
                     colour, thickness, cv2.LINE_AA)
    if track_id is not None:
        cv2.putText(frame, str(track_id), (max(x0, 0) + 2, max(y0, 0) + 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
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
        entry["phenotypes"] = np.round(record["phenotypes"].astype(np.float64), 5).tolist()
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


@torch.no_grad()
def predict_video(checkpoint: str | Path, video: str | Path, out_video: str | Path,
                  json_dir: str | Path | None = None, ply_dir: str | Path | None = None, device="cpu",
                  extraction=None, batch_size: int = 16,
                  progress: Callable[[str, int], None] | None = None) -> VideoPrediction:
    """Person crops and tracks from a static-camera video, a prediction per crop, and

    * ``out_video`` (``.mp4`` or ``.avi``): the source frames with every person's mesh silhouette
      (tinted), H36M skeleton and track id drawn at its crop box;
    * ``json_dir/frame_NNNNNN.json`` per frame: ``{"frame", "time_s", "people": [...]}``, one
      entry per person (``person_record``: track id, crop box, 3D joints in the crop camera frame,
      2D joints in frame pixels, the crop camera's full-frame intrinsics, translation and
      phenotypes for the mesh head); frames without anyone have an empty list;
    * ``ply_dir/frame_NNNNNN_trackK.ply``: the full-topology Anny mesh of each person (mesh head),
      in the crop camera frame.

    ``extraction`` is a :class:`maskpose.data.video.ExtractionConfig` (its resolution is replaced
    by the model's). Crops are extracted into a temporary folder, then predicted in order of
    frames in batches while the video is read a second time, so memory stays bounded.
    """
    if batch_size < 1:
        raise DataError(f"batch_size must be >= 1, got {batch_size}")
    if Path(out_video).suffix.lower() not in CODECS:
        raise DataError(f"{out_video}: the overlay video must end in {' or '.join(CODECS)}")
    source = FrameSource(video, (extraction or ExtractionConfig()).max_frames)  # fails early on a bad video
    predictor = CropPredictor(checkpoint, resolve_device(device), meshes=ply_dir is not None)
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
        crops = _CropStream(result.path, predictor, batch_size)
        frames, fourcc = _write_overlay_video(source, crops, out_video, json_dir, ply_dir, progress)
    if count_frames(out_video) != frames:
        raise DataError(f"{out_video}: the overlay video does not read back with {frames} frames")
    return VideoPrediction(out_video, json_dir, ply_dir, frames, len(crops), len(result.tracks), fourcc)


class _CropStream:
    """The extracted crops of a video (sorted by frame, then track), predicted in batches as the
    frames that need them are reached, so memory stays bounded."""

    def __init__(self, path: Path, predictor: CropPredictor, batch_size: int):
        self.data = MaskposeDataset(path, fields=["image", "frame_index", "track_id", "crop_box"])
        self.frame_index = np.asarray(self.data.arrays["frame_index"]).astype(np.int64)
        self.track_id = np.asarray(self.data.arrays["track_id"]).astype(np.int64)
        self.boxes = np.asarray(self.data.arrays["crop_box"], dtype=np.float64)
        self.predictor, self.batch_size = predictor, batch_size
        self.pending: dict[int, dict] = {}
        self.done = 0  # samples predicted so far

    def __len__(self) -> int:
        return len(self.data)

    def people_in(self, frame: int) -> list[tuple[int, np.ndarray, dict]]:
        """``(track id, crop box, record)`` of every person in ``frame`` (frames come in order)."""
        n = len(self.data)
        while self.done < n and self.frame_index[self.done] <= frame:
            stop = min(n, self.done + self.batch_size)
            images = torch.stack([self.data[i]["image"] for i in range(self.done, stop)])
            for i, record in zip(range(self.done, stop), self.predictor(images)):
                self.pending[i] = record
            self.done = stop
        mine = [i for i in sorted(self.pending) if self.frame_index[i] == frame]
        return [(int(self.track_id[i]), self.boxes[i], self.pending.pop(i)) for i in mine]


def _write_overlay_video(source: FrameSource, crops: _CropStream, out_video: Path, json_dir: Path | None,
                         ply_dir: Path | None, progress: Callable[[str, int], None] | None) -> tuple[int, str]:
    """Read the video again, drawing every person's prediction onto its frame and writing the
    per-frame JSON and PLY files; returns the frames written and the video's fourcc."""
    res, focal = crops.predictor.res, crops.predictor.focal
    fps = source.fps or 25.0
    writer, fourcc = open_video_writer(out_video, fps, (source.width, source.height))
    frames = 0
    try:
        for index, frame in source:
            canvas = np.ascontiguousarray(frame.copy())
            people = []
            for track, box, record in crops.people_in(index):
                draw_person(canvas, record, box, res, track)
                people.append(person_record(record, track, box, res, focal))
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

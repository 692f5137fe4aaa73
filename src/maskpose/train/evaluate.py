"""Evaluation of a regressor on a labelled dataset: MPJPE, PA-MPJPE, N-MPJPE, PCK@150, AUC,
silhouette IoU and the left-right ambiguity ratio (docs/design.md §6)."""

from __future__ import annotations

from pathlib import Path

import torch

from maskpose.body.anny_body import AnnyBody
from maskpose.conventions import default_focal
from maskpose.data.batching import load_batch
from maskpose.data.dataset import MaskposeDataset
from maskpose.device import resolve_device
from maskpose.errors import ConfigError, DataError
from maskpose.eval import (
    ambiguity_ratio,
    flip_aware,
    mpjpe,
    pa_mpjpe,
    pose_metrics,
    silhouette_iou,
)
from maskpose.models.regressor import PoseRegressor
from maskpose.render.zbuffer import silhouette_mask
from maskpose.train.checkpoint import load_model
from maskpose.train.pipeline import batch_intrinsics, joint_prediction, mesh_prediction


@torch.no_grad()
def collect_predictions(model: PoseRegressor, data: MaskposeDataset, device="cpu", batch_size: int = 32,
                        focal_px: float | None = None, body=None, with_silhouettes: bool = True) -> dict:
    """Run the model over a dataset in order. Returns stacked ``joints3d`` ``(N, 17, 3)``,
    ``joints2d``, for the mesh head ``silhouette`` ``(N, 1, H, W)`` (exact raster) and ``vertices``, and
    the dataset's ``mask`` at the model resolution when it has masks."""
    model.eval()
    res = model.config.resolution
    focal_px = focal_px or default_focal(res)
    if "mesh" in model.config.heads and body is None:
        body = AnnyBody(device=device)
    out: dict[str, list] = {"joints3d": [], "joints2d": [], "silhouette": [], "vertices": [], "mask": []}
    for start in range(0, len(data), batch_size):
        indices = torch.arange(start, min(start + batch_size, len(data)))
        batch = load_batch(data, indices, res, device)
        if "mask" in batch:  # kept at the model resolution, for the silhouette IoU
            out["mask"].append(batch["mask"].cpu())
        heads = model(batch["image"])
        if heads.mesh is not None:
            K = batch_intrinsics(batch, res, focal_px, device)
            pred = mesh_prediction(heads.mesh, body, K, res)
            out["vertices"].append(pred.vertices.cpu())
            if with_silhouettes:
                out["silhouette"].append(silhouette_mask(pred.vertices, pred.faces, K, (res, res), behind="cull").cpu())
        else:
            pred = joint_prediction(heads.joints, res)
        out["joints3d"].append(pred.joints3d.cpu())
        out["joints2d"].append(pred.joints2d.cpu())
    return {k: torch.cat(v) for k, v in out.items() if v}


def evaluate_model(model: PoseRegressor, data_path: str | Path, device="cpu", batch_size: int = 32,
                   focal_px: float | None = None, body=None) -> dict[str, float]:
    """Metrics of ``model`` on a labelled dataset (3D errors in mm, PCK/AUC/IoU/ratio in %)."""
    _check_batch_size(batch_size)
    data = MaskposeDataset(data_path)
    if not data.has("joints3d"):
        raise DataError(f"{data_path}: evaluation needs 3D ground truth (joints3d); this split has none")
    preds = collect_predictions(model, data, device, batch_size, focal_px, body)
    gt = torch.from_numpy(data.arrays["joints3d"][data.indices].astype("float32"))
    metrics = pose_metrics(preds["joints3d"], gt)
    metrics["mpjpe_flip"] = float(flip_aware(mpjpe, preds["joints3d"], gt))
    metrics["pa_mpjpe_flip"] = float(flip_aware(pa_mpjpe, preds["joints3d"], gt))
    metrics["ambiguity_ratio"] = 100.0 * ambiguity_ratio(preds["joints3d"], gt)
    if "silhouette" in preds and "mask" in preds:
        metrics["silhouette_iou"] = 100.0 * float(silhouette_iou(preds["silhouette"], preds["mask"]))
    metrics["num_samples"] = len(data)
    return metrics


def _check_batch_size(batch_size) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be an int >= 1, got {batch_size!r}")


def evaluate_checkpoint(checkpoint: str | Path, data_path: str | Path, device="cpu", batch_size: int = 32) -> dict[str, float]:
    """:func:`evaluate_model` of the model saved in ``checkpoint`` (its focal; ``device`` resolved
    by :func:`~maskpose.device.resolve_device`)."""
    _check_batch_size(batch_size)
    device = resolve_device(device)
    model, state = load_model(checkpoint, device)
    focal = state["config"].get("focal") or None
    return evaluate_model(model, data_path, device, batch_size, focal)

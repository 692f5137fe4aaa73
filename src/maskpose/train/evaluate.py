"""Evaluation of a regressor on a labelled dataset: MPJPE, PA-MPJPE, N-MPJPE, PCK@150, AUC,
silhouette IoU and the left-right ambiguity ratio (docs/design.md §6)."""

from __future__ import annotations

import functools
from pathlib import Path

import torch

from maskpose.conventions import H36M_FLIP, H36M_PELVIS, default_focal
from maskpose.data.batching import load_batch
from maskpose.data.dataset import MaskposeDataset
from maskpose.device import resolve_device
from maskpose.errors import ConfigError, DataError
from maskpose.eval import auc, best_flip, flip_aware, mpjpe, n_mpjpe, pa_mpjpe, pck, silhouette_iou
from maskpose.models.regressor import PoseRegressor
from maskpose.render.zbuffer import silhouette_mask
from maskpose.train.checkpoint import load_model, saved_body
from maskpose.train.pipeline import batch_intrinsics, build_body, joint_prediction, mesh_prediction


@torch.no_grad()
def collect_predictions(model: PoseRegressor, data: MaskposeDataset, device="cpu", batch_size: int = 32,
                        focal_px: float | None = None, body=None, with_silhouettes: bool = True) -> dict:
    """Run the model over a dataset in order. Returns stacked ``joints3d`` ``(N, 17, 3)``,
    ``joints2d``, for the mesh head ``silhouette`` ``(N, 1, H, W)`` (exact raster) and ``vertices``, and
    the dataset's ``mask`` at the model resolution when it has masks. ``body``: the body model of
    the mesh head (default Anny; an SMPL model needs the SMPL body, e.g.
    :func:`~maskpose.train.pipeline.build_body`)."""
    model.eval()
    res = model.config.resolution
    focal_px = focal_px or default_focal(res)
    if "mesh" in model.config.heads and body is None:
        body = build_body("anny", device)
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
    if bool(torch.isinf(gt).any()):
        raise DataError(f"{data_path}: joints3d holds infinite values (NaN marks a missing joint; Inf is refused)")
    metrics = joint_metrics(preds["joints3d"], gt, str(data_path))
    if "silhouette" in preds and "mask" in preds:
        metrics["silhouette_iou"] = 100.0 * float(silhouette_iou(preds["silhouette"], preds["mask"]))
    metrics["num_samples"] = len(data)
    return metrics


def _labelled_groups(gt: torch.Tensor) -> list[tuple[torch.Tensor, list[int]]]:
    """Samples grouped by which joints are labelled (NaN marks a missing joint), each group with
    the joints it is scored on: the labelled ones whose left-right mirror is labelled too (so the
    flip metrics stay defined). A group without its pelvis (the root) or with under 4 such joints
    cannot be scored and is left out."""
    valid = torch.isfinite(gt).all(-1)  # (N, J)
    patterns, inverse = torch.unique(valid, dim=0, return_inverse=True)
    groups = []
    for k, pattern in enumerate(patterns.tolist()):
        joints = [j for j in range(gt.shape[1]) if pattern[j] and pattern[H36M_FLIP[j]]]
        if H36M_PELVIS in joints and len(joints) >= 4:
            groups.append((torch.nonzero(inverse == k).squeeze(1), joints))
    return groups


def joint_metrics(pred: torch.Tensor, gt: torch.Tensor, name: str = "gt") -> dict[str, float]:
    """The 3D metrics of :func:`maskpose.eval.pose_metrics` plus the flip-aware ones and the
    ambiguity ratio, over the labelled joints of each sample (``gt`` may mark missing joints with
    NaN, as the importers of real data write them). ``num_scored`` counts the samples scored.

    Shape:
        - pred, gt: :math:`(N, 17, 3)` metres, H36M-17.
    """
    groups = _labelled_groups(gt)
    if not groups:
        raise DataError(f"{name}: no sample has its pelvis and at least 4 labelled joints; nothing to score")
    per_sample: dict[str, list[torch.Tensor]] = {}
    for samples, joints in groups:
        p, g = pred[samples][:, joints], gt[samples][:, joints]
        root = joints.index(H36M_PELVIS)
        flip = [joints.index(H36M_FLIP[j]) for j in joints]
        root_mpjpe = functools.partial(mpjpe, root=root)
        values = {
            "mpjpe": root_mpjpe(p, g, reduction="none"),
            "pa_mpjpe": pa_mpjpe(p, g, reduction="none"),
            "n_mpjpe": n_mpjpe(p, g, root, reduction="none"),
            "pck": pck(p, g, 150.0, root, reduction="none"),
            "auc": auc(p, g, root=root, reduction="none"),
            "mpjpe_flip": flip_aware(root_mpjpe, p, g, flip, reduction="none"),
            "pa_mpjpe_flip": flip_aware(pa_mpjpe, p, g, flip, reduction="none"),
            "ambiguity_ratio": best_flip(p, g, root_mpjpe, flip)[1].float(),
        }
        for key, value in values.items():
            per_sample.setdefault(key, []).append(value)
    # one mean over the scored samples (for fully labelled data, the very numbers of pose_metrics)
    metrics = {key: float(torch.cat(parts).mean()) for key, parts in per_sample.items()}
    metrics["ambiguity_ratio"] *= 100.0
    metrics["num_scored"] = sum(len(samples) for samples, _ in groups)
    return metrics


def _check_batch_size(batch_size) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be an int >= 1, got {batch_size!r}")


def checkpoint_body(state: dict, device="cpu", smpl_model: str | None = None):
    """The body model of a loaded checkpoint's mesh head, as it was trained: its config's ``body``
    (none: Anny) with the saved SMPL settings; ``smpl_model`` (when given) replaces the saved
    model-file path (empty there: ``$MASKPOSE_SMPL_MODEL``). ``None`` without a mesh head."""
    config = state["config"]
    if "mesh" not in config["model"].get("heads", ("mesh",)):
        return None
    return build_body(saved_body(config), device, smpl_model or config.get("smpl_model", ""),
                      config.get("h36m_regressor", ""), config.get("smpl_topology", "decimated"))


def evaluate_checkpoint(checkpoint: str | Path, data_path: str | Path, device="cpu", batch_size: int = 32,
                        smpl_model: str | None = None) -> dict[str, float]:
    """:func:`evaluate_model` of the model saved in ``checkpoint`` (its focal and body model, see
    :func:`checkpoint_body`; ``device`` resolved by :func:`~maskpose.device.resolve_device`)."""
    _check_batch_size(batch_size)
    device = resolve_device(device)
    model, state = load_model(checkpoint, device)
    focal = state["config"].get("focal") or None
    body = checkpoint_body(state, device, smpl_model) if saved_body(state["config"]) != "anny" else None
    return evaluate_model(model, data_path, device, batch_size, focal, body)

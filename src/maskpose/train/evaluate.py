"""Evaluation of a regressor on a labelled dataset: MPJPE, PA-MPJPE, N-MPJPE, PCK@150, AUC,
silhouette IoU and the left-right ambiguity ratio (docs/design.md §6); on real data with 2D
keypoints only, PCK in 2D, the pixel error and the floors of constant predictions beside them
(docs/evaluation.md)."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from maskpose.conventions import H36M_FLIP, H36M_PELVIS, default_focal
from maskpose.data.batching import load_batch
from maskpose.data.dataset import MaskposeDataset, mask_values
from maskpose.device import resolve_device
from maskpose.errors import ConfigError, DataError
from maskpose.eval import (
    LIMB_JOINTS,
    auc,
    best_flip,
    error_2d_px,
    flip_aware,
    mean_pose_2d,
    mpjpe,
    n_mpjpe,
    pa_mpjpe,
    pck,
    pck_2d,
    pck_2d_flip,
    silhouette_iou,
)
from maskpose.eval.spp import MLPSPP, fit_spp
from maskpose.models.regressor import PoseRegressor
from maskpose.render.zbuffer import silhouette_mask
from maskpose.train.checkpoint import load_model, saved_body, saved_masked_input
from maskpose.train.pipeline import batch_intrinsics, build_body, joint_prediction, masked_images, mesh_prediction
from maskpose.train.refine import MaskRefiner, check_refine


@torch.no_grad()
def collect_predictions(model: PoseRegressor, data: MaskposeDataset, device="cpu", batch_size: int = 32,
                        focal_px: float | None = None, body=None, with_silhouettes: bool = True,
                        masked_input: bool = False, refiner: MaskRefiner | None = None) -> dict:
    """Run the model over a dataset in order. Returns stacked ``joints3d`` ``(N, 17, 3)``,
    ``joints2d``, for the mesh head ``silhouette`` ``(N, 1, H, W)`` (exact raster) and ``vertices``, and
    the dataset's ``mask`` at the model resolution when it has masks. ``body``: the body model of
    the mesh head (default Anny; an SMPL model needs the SMPL body, e.g.
    :func:`~maskpose.train.pipeline.build_body`). ``masked_input``: the model sees the image times
    the mask, as it was trained (``TrainConfig.masked_input``). ``refiner``: the mesh head's body
    parameters are fitted to each sample's mask (per-image refinement, :class:`MaskRefiner`, over
    the ``valid`` pixels) before anything is read from them; the dataset must have masks."""
    if refiner is not None and not data.has("mask"):
        raise DataError(f"{data.path}: --refine fits each body to its sample's mask, and this split has no masks")
    model.eval()
    res = model.config.resolution
    focal_px = focal_px or default_focal(res)
    if "mesh" in model.config.heads and body is None:
        body = build_body("anny", device)
    out: dict[str, list] = {"joints3d": [], "joints2d": [], "silhouette": [], "vertices": [], "mask": [],
                            "valid": []}
    for start in range(0, len(data), batch_size):
        indices = torch.arange(start, min(start + batch_size, len(data)))
        batch = load_batch(data, indices, res, device)
        if "mask" in batch:  # kept at the model resolution, for the silhouette IoU
            out["mask"].append(batch["mask"].cpu())
        if "valid" in batch:  # real crops: the pixels inside the photo
            out["valid"].append(batch["valid"].cpu())
        heads = model(masked_images(batch, masked_input))
        if heads.mesh is not None:
            K = batch_intrinsics(batch, res, focal_px, device)
            mesh = heads.mesh
            if refiner is not None:
                valid = batch["valid"][:, 0] if "valid" in batch else None
                mesh = refiner(mesh, K, batch["mask"][:, 0], valid)
            pred = mesh_prediction(mesh, body, K, res)
            out["vertices"].append(pred.vertices.cpu())
            if with_silhouettes:
                out["silhouette"].append(silhouette_mask(pred.vertices, pred.faces, K, (res, res), behind="cull").cpu())
        else:
            pred = joint_prediction(heads.joints, res)
            out.setdefault("landmarks", []).append(heads.joints.landmarks.cpu())  # all L, for SPP
        out["joints3d"].append(pred.joints3d.cpu())
        out["joints2d"].append(pred.joints2d.cpu())
    return {k: torch.cat(v) for k, v in out.items() if v}


def evaluate_model(model: PoseRegressor, data_path: str | Path, device="cpu", batch_size: int = 32,
                   focal_px: float | None = None, body=None,
                   floor_data: str | Path | None = None,
                   masked_input: bool = False, refine: int = 0) -> dict[str, float | int | str | None]:
    """Metrics of ``model`` on a labelled dataset (3D errors in mm, PCK/AUC/IoU/ratio in %).

    The dataset needs ``joints3d`` (the 3D keys of :func:`joint_metrics`) or ``joints2d`` with at
    least one labelled limb keypoint (real person crops); it may have both. A dataset of masks
    alone (a video's extracted crops) is scored by a mesh-head model on its silhouettes only:
    ``silhouette_iou``, ``num_samples`` and the mean-mask floor. With ``joints2d`` the
    2D keys of :func:`keypoint_metrics` are added (the model's keypoints mapped to the dataset's
    crop pixels), and with ``joints2d`` or masks the floors of :func:`floor_metrics` (2-fold on
    the dataset itself, or the means of ``floor_data``, a separate training split). The keys are
    listed in docs/evaluation.md. ``DataError`` when there is nothing to score.

    ``refine`` > 0 scores per-image refinement (``maskpose predict --refine N``): each sample's
    body parameters fitted to its mask for ``refine`` Adam iterations (:class:`MaskRefiner`; the
    model is not changed), then every key computed from the fitted body; ``refine_iterations``
    records it. It needs the mesh head (``ConfigError``) and masks (``DataError``)."""
    _check_batch_size(batch_size)
    refine = check_refine(refine, "the model", "mesh" in model.config.heads)
    data = MaskposeDataset(data_path)
    gt2d = _joints2d(data, data_path)
    if not data.has("joints3d"):
        if gt2d is None and not data.has("mask"):
            raise DataError(f"{data_path}: evaluation needs 3D ground truth (joints3d), 2D keypoints (joints2d) "
                            "or masks (mask); this split has none of them")
        if gt2d is None and "mesh" not in model.config.heads:
            raise DataError(f"{data_path}: this split has masks but no joints3d or joints2d, and a joint-head model "
                            "draws no silhouette to score against masks")
        if gt2d is not None and not bool(torch.isfinite(gt2d[:, list(LIMB_JOINTS)]).all(-1).any()):
            raise DataError(f"{data_path}: no joints3d and no labelled limb keypoint in joints2d; nothing to score")
    floor_split = _floor_split(floor_data, data, data_path) if floor_data is not None else None
    if refine and body is None:
        body = build_body("anny", device)
    refiner = MaskRefiner(body, model.config, refine, device=device) if refine else None
    preds = collect_predictions(model, data, device, batch_size, focal_px, body, masked_input=masked_input,
                                refiner=refiner)
    metrics: dict = {}
    if data.has("joints3d"):
        gt = torch.from_numpy(data.arrays["joints3d"][data.indices].astype("float32"))
        if bool(torch.isinf(gt).any()):
            raise DataError(f"{data_path}: joints3d holds infinite values (NaN marks a missing joint; Inf is refused)")
        metrics = joint_metrics(preds["joints3d"], gt, str(data_path))
    if "silhouette" in preds and "mask" in preds:
        silhouette = preds["silhouette"]
        if "valid" in preds:  # real crops: the mask is known inside the photo only, padding never counts
            silhouette = silhouette * preds["valid"]
        metrics["silhouette_iou"] = 100.0 * float(silhouette_iou(silhouette, preds["mask"]))
    metrics["num_samples"] = len(data)
    if gt2d is not None:
        pred2d = to_data_pixels(preds["joints2d"][:, :gt2d.shape[1]], model.config.resolution, data.resolution)
        metrics.update(keypoint_metrics(pred2d, gt2d, crop_side(data)))
    if gt2d is not None or data.has("mask"):
        metrics.update(floor_metrics(data, floor_split, model.config.resolution))
    if refine:
        metrics["refine_iterations"] = refine
    return metrics


#: The PCK thresholds of the 2D keys, as fractions of the crop side (keys ``pck2d@0.05`` ...).
PCK2D_FRACTIONS: tuple[float, ...] = (0.05, 0.1, 0.2)

#: Masks read at once by the mask floors (a floor split is streamed, never loaded whole).
_MASK_CHUNK = 256


def crop_side(data: MaskposeDataset) -> int:
    """The side of a dataset's crops in pixels (the larger of height and width), the unit of the
    2D PCK thresholds and of the normalised mean pose."""
    return max(data.resolution)


def to_data_pixels(joints2d: torch.Tensor, model_res: int, data_res: tuple[int, int]) -> torch.Tensor:
    """Keypoints from the model's ``model_res`` input to the dataset's ``(H, W)`` crop pixels,
    scaled about pixel centres (the inverse of :func:`~maskpose.data.batching.load_batch`):
    ``x_data = (x_model + 0.5) * W / model_res - 0.5`` (``y`` with ``H``). Non-finite predictions
    (a joint behind the camera) become far-away points: a miss, never a NaN in the means."""
    height, width = data_res
    scale = torch.tensor([width / model_res, height / model_res], dtype=joints2d.dtype)
    out = (joints2d.cpu() + 0.5) * scale - 0.5
    return torch.nan_to_num(out, nan=1e6, posinf=1e6, neginf=-1e6)


def _joints2d(data: MaskposeDataset, name) -> torch.Tensor | None:
    """The dataset's ``joints2d`` ``(N, 17, 2)`` (NaN: unlabelled), ``None`` without the field."""
    if not data.has("joints2d"):
        return None
    gt = torch.from_numpy(np.asarray(data.arrays["joints2d"][data.indices], dtype=np.float32))
    if bool(torch.isinf(gt).any()):
        raise DataError(f"{name}: joints2d holds infinite values (NaN marks an unlabelled keypoint; Inf is refused)")
    return gt


def keypoint_metrics(pred: torch.Tensor, gt: torch.Tensor, side: float) -> dict[str, float | int | None]:
    """The 2D keys, on :data:`~maskpose.eval.LIMB_JOINTS`, over the labelled keypoints only, pooled
    over the keypoints of the whole set: ``pck2d@F`` and ``pck2d_flip@F`` (% within ``F`` times
    ``side`` pixels, for ``F`` in :data:`PCK2D_FRACTIONS`; flip: per sample the better of the
    prediction and its left-right label swap), ``error2d_px`` (mean distance, pixels),
    ``num_keypoints`` (labelled limb keypoints scored) and ``num_scored_2d`` (samples with at
    least one). The scores are ``None`` when no limb keypoint is labelled.

    Shape:
        - pred, gt: :math:`(N, 17, 2)`, pixels of ``side``-pixel crops (NaN in ``gt``: unlabelled).
    """
    count = pck_2d(pred, gt, 0.0, LIMB_JOINTS, reduction="none").count
    keypoints = int(count.sum())
    out: dict[str, float | int | None] = {}
    for f in PCK2D_FRACTIONS:
        out[f"pck2d@{f:g}"] = _pooled_percent(pck_2d(pred, gt, f * side, LIMB_JOINTS, "sum").value, keypoints)
    for f in PCK2D_FRACTIONS:
        value = pck_2d_flip(pred, gt, f * side, LIMB_JOINTS, reduction="sum").value
        out[f"pck2d_flip@{f:g}"] = _pooled_percent(value, keypoints)
    total = error_2d_px(pred, gt, LIMB_JOINTS, reduction="sum").value
    out["error2d_px"] = float(total) / keypoints if keypoints else None
    out["num_keypoints"] = keypoints
    out["num_scored_2d"] = int((count > 0).sum())
    return out


def _pooled_percent(hits: torch.Tensor, keypoints: int) -> float | None:
    return 100.0 * float(hits) / keypoints if keypoints else None


def _floor_split(floor_data: str | Path, data: MaskposeDataset, name) -> MaskposeDataset:
    """The separate training split of the floors, checked against what ``data`` is scored on."""
    split = MaskposeDataset(floor_data)
    if data.has("joints2d"):
        if not split.has("joints2d"):
            raise DataError(f"{floor_data}: the floor split has no joints2d (the mean-pose floor of {name} needs them)")
        labelled = torch.isfinite(_joints2d(split, floor_data)[:, list(LIMB_JOINTS)]).all(-1)
        if not bool(labelled.any()):
            raise DataError(f"{floor_data}: the floor split labels no limb keypoint in joints2d")
    if data.has("mask") and not split.has("mask"):
        raise DataError(f"{floor_data}: the floor split has no masks (the mean-mask floor of {name} needs them)")
    return split


def _masks(data: MaskposeDataset, rows: np.ndarray, res: int, field: str = "mask") -> torch.Tensor:
    """The masks (or another binary field, e.g. ``valid``) of samples ``rows`` (positions in
    ``data``) as ``(n, 1, res, res)`` float32 in {0, 1}, resized as
    :func:`~maskpose.data.batching.load_batch` resizes them (nearest)."""
    raw = mask_values(np.asarray(data.arrays[field][data.indices[rows]]), data.path / f"{field}.npy")
    mask = torch.from_numpy(raw.astype(np.float32))[:, None]
    if mask.shape[-2:] != (res, res):
        mask = F.interpolate(mask, size=(res, res), mode="nearest")
    return mask


def _mean_mask(data: MaskposeDataset, rows: np.ndarray, res: int) -> torch.Tensor:
    """The constant mean-mask prediction ``(1, 1, res, res)``: the mean of the masks of ``rows``,
    thresholded at 0.5 (on where more than half of them are on)."""
    total = torch.zeros(1, 1, res, res, dtype=torch.float64)
    for start in range(0, len(rows), _MASK_CHUNK):
        total += _masks(data, rows[start:start + _MASK_CHUNK], res).sum(0, keepdim=True).double()
    return (total / len(rows) > 0.5).float()


def floor_metrics(data: MaskposeDataset | str | os.PathLike,
                  floor_data: MaskposeDataset | str | os.PathLike | None = None,
                  mask_res: int | None = None) -> dict[str, float | str | None]:
    """The floors of the 2D scores and of the silhouette IoU: the scores of constant predictions
    learnt from a training split, beside which a model's scores mean something.

    * ``floor_mean_pose_pck2d@F``, ``floor_mean_pose_pck2d_flip@F``, ``floor_mean_pose_error2d_px``
      (with ``joints2d``): :func:`keypoint_metrics` of the training split's mean normalised pose
      (:func:`~maskpose.eval.mean_pose_2d`, scaled to the evaluated crop side) predicted for every
      evaluated sample.
    * ``floor_mean_mask_iou`` (with masks): the mean IoU (%) of the training split's mean mask,
      thresholded at 0.5, against each evaluated mask, at ``mask_res`` (the model's resolution,
      where ``silhouette_iou`` is scored; default the dataset's own side), masks resized as
      :func:`~maskpose.data.batching.load_batch` resizes them.
    * ``floor_source``: ``"2-fold"`` without ``floor_data`` (the first half's means scored on the
      second half and the second half's on the first, pooled over all samples; ``None``, with
      every floor ``None``, for a dataset of fewer than 2 samples), else ``floor_data``'s path
      (its means scored on the whole evaluated set).
    """
    data = data if isinstance(data, MaskposeDataset) else MaskposeDataset(data)
    if floor_data is not None and not isinstance(floor_data, MaskposeDataset):
        floor_data = _floor_split(floor_data, data, data.path)
    gt2d = _joints2d(data, data.path)
    side = crop_side(data)
    mask_res = mask_res or side
    n = len(data)
    if floor_data is not None:
        folds = [(floor_data, np.arange(len(floor_data)), np.arange(n))]
        source = str(floor_data.path)
    elif n >= 2:
        first, second = np.arange(n // 2), np.arange(n // 2, n)
        folds = [(data, first, second), (data, second, first)]
        source = "2-fold"
    else:
        folds, source = [], None
    out: dict[str, float | str | None] = {}
    if gt2d is not None:
        keys = [f"pck2d@{f:g}" for f in PCK2D_FRACTIONS] + [f"pck2d_flip@{f:g}" for f in PCK2D_FRACTIONS]
        keys.append("error2d_px")
        scores: dict = dict.fromkeys(keys)
        if folds:
            pred = torch.empty_like(gt2d)
            for train, train_rows, test_rows in folds:
                train_gt = gt2d[train_rows] if train is data else _joints2d(train, train.path)[train_rows]
                mean = mean_pose_2d(train_gt, float(crop_side(train)))
                pred[test_rows] = mean * side - 0.5
            scores = keypoint_metrics(pred, gt2d, side)
        out.update({f"floor_mean_pose_{key}": scores[key] for key in keys})
    if data.has("mask"):
        iou = None
        if folds:
            total = 0.0
            for train, train_rows, test_rows in folds:
                mean = _mean_mask(train, train_rows, mask_res)
                for start in range(0, len(test_rows), _MASK_CHUNK):
                    rows = test_rows[start:start + _MASK_CHUNK]
                    masks = _masks(data, rows, mask_res)
                    pred = mean.expand(len(masks), -1, -1, -1)
                    if data.has("valid"):  # inside the photo only, as silhouette_iou
                        pred = pred * _masks(data, rows, mask_res, "valid")
                    total += float(silhouette_iou(pred, masks, reduction="sum"))
            iou = 100.0 * total / n
        out["floor_mean_mask_iou"] = iou
    out["floor_source"] = source
    return out


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


def _saved_model(checkpoint: str | Path, device, smpl_model: str | None = None):
    """``(model, focal, body, masked_input)`` of a checkpoint as it was trained: its focal (None:
    the default), its body model (None: Anny) and whether it sees masked images."""
    model, state = load_model(checkpoint, device)
    config = state["config"]
    body = checkpoint_body(state, device, smpl_model) if saved_body(config) != "anny" else None
    return model, config.get("focal") or None, body, saved_masked_input(config)


def spp_metrics(checkpoint: str | Path, data_path: str | Path, labelled_path: str | Path, fraction: float,
                device="cpu", batch_size: int = 32, kind: str = "linear", seed: int = 0,
                smpl_model: str | None = None) -> dict[str, float | int]:
    """The 3D metrics (:func:`joint_metrics`) on ``data_path`` of the model in ``checkpoint`` after
    supervised post-processing (SPP, :func:`maskpose.eval.spp.fit_spp`): a map from its landmarks
    (the joint head's ``L``, or the mesh head's 17 joints) to the H36M-17 joints, fitted on a seeded
    ``fraction`` of the labelled split ``labelled_path`` (the target's own training split).

    Both sides are root-relative (landmark 0 and the ground-truth pelvis at the origin), as the
    metrics are: the map then learns the skeleton, not the camera. Adds ``spp_fraction`` and
    ``spp_labelled`` (the number of labelled samples fitted on)."""
    _check_batch_size(batch_size)
    device = resolve_device(device)
    model, focal, body, masked = _saved_model(checkpoint, device, smpl_model)

    def landmarks_and_truth(path) -> tuple[torch.Tensor, torch.Tensor]:
        data = MaskposeDataset(path)
        if not data.has("joints3d"):
            raise DataError(f"{path}: SPP needs 3D ground truth (joints3d); this split has none")
        preds = collect_predictions(model, data, device, batch_size, focal, body, with_silhouettes=False,
                                    masked_input=masked)
        landmarks = preds.get("landmarks", preds["joints3d"])
        gt = torch.from_numpy(data.arrays["joints3d"][data.indices].astype("float32"))
        if not bool(torch.isfinite(gt).all()):
            raise DataError(f"{path}: SPP needs every joint labelled; joints3d has missing (NaN) or infinite values")
        return landmarks - landmarks[:, :1], gt - gt[:, :1]

    landmarks, gt = landmarks_and_truth(labelled_path)
    spp = fit_spp(landmarks, gt, fraction=fraction, kind=kind, seed=seed)
    test_landmarks, test_gt = landmarks_and_truth(data_path)
    with torch.no_grad():
        mapped = spp(test_landmarks)
    metrics: dict = joint_metrics(mapped, test_gt, str(data_path))
    metrics["spp_fraction"] = float(fraction)
    metrics["spp_labelled"] = max(1, round(fraction * len(landmarks)))
    metrics["spp_ridge"] = (spp.linear if isinstance(spp, MLPSPP) else spp).ridge  # fit_linear_spp's pick
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
                        smpl_model: str | None = None,
                        floor_data: str | Path | None = None, refine: int = 0) -> dict[str, float | int | str | None]:
    """:func:`evaluate_model` of the model saved in ``checkpoint`` (its focal and body model, see
    :func:`checkpoint_body`; ``device`` resolved by :func:`~maskpose.device.resolve_device`);
    ``floor_data``: the training split of the floors (default: 2-fold on ``data_path``);
    ``refine``: per-image refinement's Adam iterations (0: off; see :func:`evaluate_model`)."""
    _check_batch_size(batch_size)
    device = resolve_device(device)
    model, focal, body, masked = _saved_model(checkpoint, device, smpl_model)
    check_refine(refine, checkpoint, "mesh" in model.config.heads)
    return evaluate_model(model, data_path, device, batch_size, focal, body, floor_data, masked_input=masked,
                          refine=refine)

"""The universal adversarial perturbation (UAP) attack against a source model.

Projected sign-gradient ascent on the model's supervised 3D joint error (root-relative L1, the
``joints3d`` training loss) over seeded batches of held-out, labelled source images::

    δ ← clip(δ + α · sign(∇_δ  L(f(clip(x + δ, 0, 1)), y)),  −ε/255,  ε/255)

The model is in eval mode (batch-norm running statistics), so only ``δ`` changes. The domains that
apply a stored perturbation, ``uap-4/8/16``, are :mod:`maskpose.synth.uap`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from maskpose.body.anny_body import AnnyBody
from maskpose.conventions import default_focal
from maskpose.data.batching import load_batch
from maskpose.data.dataset import MaskposeDataset
from maskpose.errors import ConfigError, DataError
from maskpose.io import atomic_write
from maskpose.synth.uap import eps_bound
from maskpose.train.checkpoint import load_model
from maskpose.train.pipeline import batch_intrinsics, joint_prediction, mesh_prediction


def _joint_error(model, images: torch.Tensor, batch: dict, body, focal_px: float) -> torch.Tensor:
    """Root-relative L1 3D joint error (mean over the batch) of ``model`` on ``images``."""
    res = images.shape[-1]
    heads = model(images)
    if heads.mesh is not None:
        K = batch_intrinsics(batch, res, focal_px, images.device)
        joints = mesh_prediction(heads.mesh, body, K, res).joints3d
    else:
        joints = joint_prediction(heads.joints, res).joints3d
    gt = batch["joints3d"]
    return (joints - joints[:, :1] - (gt - gt[:, :1])).abs().mean()


def compute_uap(model, data, eps: float, steps: int = 200, batch_size: int = 16, step_size: float | None = None,
                seed: int = 0, device="cpu", focal_px: float | None = None, body=None,
                progress: Callable[[int, int, float], None] | None = None) -> np.ndarray:
    """Projected sign-gradient ascent for a universal perturbation.

    Args:
        model: a :class:`~maskpose.models.regressor.PoseRegressor` (mesh or joint head).
        data: a labelled :class:`~maskpose.data.dataset.MaskposeDataset` (held-out source images).
        eps: L∞ budget in 1/255.
        steps: ascent steps (one batch each); batch_size: images per step.
        step_size: α in image units (default ``ε/255 / 8``, so the ball's edge is reachable in 8 steps).
        seed: batch order (``δ`` starts at zero, so the result is a function of the seed).
        progress: optional ``callback(step, steps, loss)``.

    Returns:
        ``δ`` ``(H, W, 3)`` float32 in image units at the model resolution, ``|δ| ≤ ε/255``.
    """
    if eps <= 0 or steps < 0 or batch_size <= 0:
        raise ConfigError(f"eps > 0, steps >= 0 and batch_size > 0 required, got {eps}, {steps}, {batch_size}")
    if not data.has("joints3d"):
        raise DataError("the UAP is computed on labelled source images (joints3d); this dataset has none")
    device = torch.device(device)
    res = model.config.resolution
    focal_px = focal_px or default_focal(res)
    if "mesh" in model.config.heads and body is None:
        body = AnnyBody(device=device)
    bound = float(eps_bound(eps))
    alpha = step_size if step_size is not None else bound / 8.0
    model = model.to(device)
    was_training = model.training
    flags = [p.requires_grad for p in model.parameters()]
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        return _ascent(model, data, eps, steps, batch_size, alpha, bound, seed, device, res, focal_px, body, progress)
    finally:
        for p, flag in zip(model.parameters(), flags):
            p.requires_grad_(flag)
        model.train(was_training)


def _ascent(model, data, eps, steps, batch_size, alpha, bound, seed, device, res, focal_px, body, progress):
    delta = torch.zeros(1, 3, res, res, device=device)
    gen = torch.Generator().manual_seed(int(seed))
    order = torch.empty(0, dtype=torch.long)
    for step in range(steps):
        if len(order) < batch_size:  # seeded epochs over the data, without repeats inside one
            order = torch.cat([order, torch.randperm(len(data), generator=gen)])
        indices, order = order[:batch_size], order[batch_size:]
        batch = load_batch(data, indices, res, device)
        delta.requires_grad_(True)
        loss = _joint_error(model, (batch["image"] + delta).clamp(0.0, 1.0), batch, body, focal_px)
        (grad,) = torch.autograd.grad(loss, delta)
        with torch.no_grad():
            delta = (delta + alpha * grad.sign()).clamp(-bound, bound)
        if progress is not None:
            progress(step + 1, steps, float(loss))
    out = delta.detach()[0].permute(1, 2, 0).cpu().numpy().astype(np.float32)
    return np.clip(out, -eps_bound(eps), eps_bound(eps))


@torch.no_grad()
def perturbed_error(model, data, delta: np.ndarray | None, device="cpu", batch_size: int = 32,
                    focal_px: float | None = None, body=None) -> float:
    """Mean root-relative L1 3D joint error (metres) of ``model`` on ``data`` with ``δ`` (image units,
    ``(H, W, 3)`` at the model resolution) added to every image; ``None`` for the clean images."""
    device = torch.device(device)
    res = model.config.resolution
    focal_px = focal_px or default_focal(res)
    if "mesh" in model.config.heads and body is None:
        body = AnnyBody(device=device)
    model = model.to(device).eval()
    d = torch.zeros(1, 3, res, res, device=device) if delta is None else \
        torch.as_tensor(np.asarray(delta, np.float32)).permute(2, 0, 1)[None].to(device)
    total = 0.0
    for start in range(0, len(data), batch_size):
        indices = torch.arange(start, min(start + batch_size, len(data)))
        batch = load_batch(data, indices, res, device)
        total += float(_joint_error(model, (batch["image"] + d).clamp(0, 1), batch, body, focal_px)) * len(indices)
    return total / len(data)


def build_uap_domain(source_ckpt, source_data, eps: float, out_npy, steps: int = 200, batch_size: int = 16,
                     step_size: float | None = None, seed: int = 0, device="cpu", body=None,
                     progress: Callable[[int, int, float], None] | None = None) -> Path:
    """Compute the UAP of budget ``eps`` (1/255) against the checkpoint ``source_ckpt`` on the labelled
    held-out source dataset ``source_data`` and save it to ``out_npy`` (image units, float32).

    A ``.json`` beside it records the budget, the steps, the seed and the clean / perturbed joint
    error on ``source_data``. The matching domain is ``uap-<eps>`` (registered for 4, 8, 16).
    """
    model, state = load_model(source_ckpt, device)
    data = MaskposeDataset(source_data)
    focal = state["config"].get("focal") or None
    if "mesh" in model.config.heads and body is None:
        body = AnnyBody(device=device)
    delta = compute_uap(model, data, eps, steps, batch_size, step_size, seed, device, focal, body, progress)
    out_npy = Path(out_npy)
    with atomic_write(out_npy) as tmp, open(tmp, "wb") as f:
        np.save(f, delta)
    info = {"eps": eps, "linf": float(np.abs(delta).max()), "steps": steps, "batch_size": batch_size,
            "seed": seed, "source_checkpoint": str(source_ckpt), "source_data": str(source_data),
            "clean_joint_error_m": perturbed_error(model, data, None, device, focal_px=focal, body=body),
            "uap_joint_error_m": perturbed_error(model, data, delta, device, focal_px=focal, body=body)}
    out_npy.with_suffix(".json").write_text(json.dumps(info, indent=2) + "\n")
    return out_npy



__all__ = ["build_uap_domain", "compute_uap", "perturbed_error"]

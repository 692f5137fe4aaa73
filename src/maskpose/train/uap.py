"""Universal adversarial perturbations (UAP) against a source model, and the ``uap-4/8/16`` domains.

A UAP is one image-sized additive perturbation ``δ`` (``(H, W, 3)``, the same for every image) with
``‖δ‖∞ ≤ ε/255`` in image units (images in [0, 1]), chosen to raise the source model's error. It is
found by projected sign-gradient ascent on the model's supervised 3D joint error (root-relative L1,
the ``joints3d`` training loss) over seeded batches of held-out, labelled source images::

    δ ← clip(δ + α · sign(∇_δ  L(f(clip(x + δ, 0, 1)), y)),  −ε/255,  ε/255)

The model is in eval mode (batch-norm running statistics), so only ``δ`` changes.

Units: the ``.npy`` file stores ``δ`` in image units (float32, ``|δ| ≤ ε/255`` exactly, the bound
rounded toward zero in float32). The domain transforms follow the hook of
:mod:`maskpose.data.domains`: they take the perturbation in *pixel* units (multiply the file by
255, :func:`load_uap` ``(pixels=True)``), add it to the uint8 image, round and clip to [0, 255].

Domains ``uap-4``, ``uap-8``, ``uap-16`` are registered when this module is imported
(``needs_perturbation=True``: pass ``perturbation=load_uap(npy, pixels=True)`` to
:func:`maskpose.data.synth.generate`, or use :func:`generate_uap_splits`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from maskpose.data.domains import DOMAINS, Domain, register_domain
from maskpose.errors import ConfigError, DataError

log = logging.getLogger(__name__)

#: The perturbation budgets of the UAP domains, in 1/255 (the paper's ε = 4, 8, 16).
UAP_EPSILONS = (4, 8, 16)


def eps_bound(eps: float) -> np.float32:
    """``ε/255`` as the largest float32 that does not exceed it (so a float32 ``δ`` clipped to it
    satisfies ``|δ| ≤ ε/255`` exactly, also when compared in float64)."""
    bound = np.float32(eps / 255.0)
    if float(bound) > eps / 255.0:
        bound = np.nextafter(bound, np.float32(0.0))
    return bound


# ---------------------------------------------------------------------- the attack
def _joint_error(model, images: torch.Tensor, batch: dict, body, focal_px: float) -> torch.Tensor:
    """Root-relative L1 3D joint error (mean over the batch) of ``model`` on ``images``."""
    from maskpose.train.pipeline import batch_intrinsics, joint_prediction, mesh_prediction

    res = images.shape[-1]
    heads = model(images)
    if "mesh" in heads:
        K = batch_intrinsics(batch, res, focal_px, images.device)
        joints = mesh_prediction(heads["mesh"], body, K, res).joints3d
    else:
        joints = joint_prediction(heads["joints"], res).joints3d
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
    from maskpose.train.config import default_focal
    from maskpose.train.loop import load_batch

    if eps <= 0 or steps < 0 or batch_size <= 0:
        raise ConfigError(f"eps > 0, steps >= 0 and batch_size > 0 required, got {eps}, {steps}, {batch_size}")
    if not data.has("joints3d"):
        raise DataError("the UAP is computed on labelled source images (joints3d); this dataset has none")
    device = torch.device(device)
    res = model.config.resolution
    focal_px = focal_px or default_focal(res)
    if "mesh" in model.config.heads and body is None:
        from maskpose.body.anny_body import AnnyBody

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
    from maskpose.train.loop import load_batch

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


def random_sign_perturbation(shape: tuple[int, int, int], eps: float, seed: int = 0) -> np.ndarray:
    """A random ±ε/255 sign pattern ``(H, W, 3)`` (the baseline a UAP must beat)."""
    rng = np.random.default_rng(seed)
    return (rng.choice([-1.0, 1.0], size=shape) * eps_bound(eps)).astype(np.float32)


@torch.no_grad()
def perturbed_error(model, data, delta: np.ndarray | None, device="cpu", batch_size: int = 32,
                    focal_px: float | None = None, body=None) -> float:
    """Mean root-relative L1 3D joint error (metres) of ``model`` on ``data`` with ``δ`` (image units,
    ``(H, W, 3)`` at the model resolution) added to every image; ``None`` for the clean images."""
    from maskpose.train.config import default_focal
    from maskpose.train.loop import load_batch

    device = torch.device(device)
    res = model.config.resolution
    focal_px = focal_px or default_focal(res)
    if "mesh" in model.config.heads and body is None:
        from maskpose.body.anny_body import AnnyBody

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
    from maskpose.data.dataset import MaskposeDataset
    from maskpose.train.checkpoint import load_model

    model, state = load_model(source_ckpt, device)
    data = MaskposeDataset(source_data)
    focal = state["config"].get("focal") or None
    if "mesh" in model.config.heads and body is None:
        from maskpose.body.anny_body import AnnyBody

        body = AnnyBody(device=device)
    delta = compute_uap(model, data, eps, steps, batch_size, step_size, seed, device, focal, body, progress)
    out_npy = Path(out_npy)
    out_npy.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_npy.with_name(out_npy.stem + ".tmp.npy")
    np.save(tmp, delta)
    tmp.replace(out_npy)
    info = {"eps": eps, "linf": float(np.abs(delta).max()), "steps": steps, "batch_size": batch_size,
            "seed": seed, "source_checkpoint": str(source_ckpt), "source_data": str(source_data),
            "clean_joint_error_m": perturbed_error(model, data, None, device, focal_px=focal, body=body),
            "uap_joint_error_m": perturbed_error(model, data, delta, device, focal_px=focal, body=body)}
    out_npy.with_suffix(".json").write_text(json.dumps(info, indent=2) + "\n")
    return out_npy


def load_uap(path, pixels: bool = False) -> np.ndarray:
    """The stored perturbation ``(H, W, 3)`` in image units, or in pixel units (×255) for a domain."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: perturbation file does not exist")
    delta = np.load(path, allow_pickle=False).astype(np.float32)
    if delta.ndim != 3 or delta.shape[-1] != 3:
        raise ConfigError(f"{path}: a perturbation must have shape (H, W, 3), got {delta.shape}")
    return delta * 255.0 if pixels else delta


# ---------------------------------------------------------------------- the domains
def _uap_transform(eps: float):
    def transform(images, masks=None, rng=None, perturbation=None):
        if perturbation is None:
            raise ConfigError(f"domain uap-{eps:g} needs a perturbation array (pixel units)")
        delta = np.asarray(perturbation, dtype=np.float32)
        if delta.ndim != 3 or delta.shape[-1] != 3:
            raise ConfigError(f"a UAP must have shape (H, W, 3), got {delta.shape}")
        if float(np.abs(delta).max()) > eps + 1e-3:
            raise ConfigError(f"perturbation exceeds the uap-{eps:g} budget: max |δ| = {np.abs(delta).max():.3f} "
                              f"> {eps} (pixel units; the .npy stores image units, see load_uap(pixels=True))")
        height, width = images.shape[1:3]
        if delta.shape[:2] != (height, width):  # computed at the model resolution: resample (keeps the bound)
            import cv2

            delta = np.clip(cv2.resize(delta, (width, height), interpolation=cv2.INTER_LINEAR), -eps, eps)
        return np.clip(np.rint(images.astype(np.float32) + delta[None]), 0, 255).astype(np.uint8)

    transform.__name__ = f"uap_{eps:g}"
    return transform


def uap_domain_name(eps: float) -> str:
    return f"uap-{eps:g}"


def register_uap_domains(epsilons=UAP_EPSILONS) -> None:
    """Register ``uap-<ε>`` for each budget (idempotent)."""
    for eps in epsilons:
        name = uap_domain_name(eps)
        if name in DOMAINS:
            continue
        register_domain(Domain(
            name, f"studio images plus a universal adversarial perturbation against the source model, "
                  f"L-inf {eps:g}/255 (clipped to [0, 255])",
            transform=_uap_transform(float(eps)), needs_perturbation=True, params={"eps": eps},
        ))


def generate_uap_splits(root, eps: float, npy, n_train: int, n_test: int, res: int, seed: int = 0,
                        **kwargs) -> dict[str, Path]:
    """:func:`maskpose.data.synth.generate_domain_splits` for ``uap-<eps>`` with the stored perturbation."""
    from maskpose.data.synth import generate_domain_splits

    register_uap_domains((eps,))
    return generate_domain_splits(root, uap_domain_name(eps), n_train, n_test, res, seed,
                                  perturbation=load_uap(npy, pixels=True), **kwargs)


register_uap_domains()

__all__ = ["UAP_EPSILONS", "build_uap_domain", "compute_uap", "eps_bound", "generate_uap_splits", "load_uap",
           "perturbed_error", "random_sign_perturbation", "register_uap_domains", "uap_domain_name"]

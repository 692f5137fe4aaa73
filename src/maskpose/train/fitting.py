"""Fitting body parameters to masks: the optimisation behind fitting in the loop
(:meth:`maskpose.train.loop.Trainer.fit_parameters`) and per-image refinement
(``maskpose predict --refine N``, :mod:`maskpose.apps.predict`).

The mesh head's prediction (pose, shape parameters, weak-perspective scale and offset) is the
starting point; ``iterations`` Adam steps then minimise an :class:`~maskpose.train.objectives.Objective`
(the mask losses and regularisers it holds: L_S + L_T + the pose prior by default in adapt) of the
body posed and rendered with those parameters. The network is not touched: only the parameters
are optimised, each sample on its own mask (Adam's update is per element, so samples do not
interact beyond the losses' batch mean).

Anny's phenotypes live in [0, 1] (``clamp_phenotypes``: clamped in each forward pass and at the
end); SMPL's betas are unbounded and never clamped (``clamp_phenotypes=False``). The scale is kept
above ``1e-3`` (a positive camera scale) for every body.
"""

from __future__ import annotations

import torch

from maskpose.body.interface import BodyModel
from maskpose.models.regressor import MeshHeadOutput
from maskpose.train.objectives import Objective
from maskpose.train.pipeline import batch_intrinsics, mesh_prediction

#: The least weak-perspective scale a fit may reach (a camera in front of the body).
MIN_SCALE = 1e-3
#: The range of Anny's phenotypes, which the fit keeps them in.
PHENOTYPE_RANGE = (0.0, 1.0)


def fit_to_masks(mesh_out: MeshHeadOutput, batch: dict, body: BodyModel, renderer, objective: Objective, res: int,
                 focal_px: float, iterations: int, lr: float, clamp_phenotypes: bool = True,
                 history: list[float] | None = None, start_loss: torch.Tensor | None = None) -> MeshHeadOutput:
    """Body parameters fitted to the batch's masks, starting from ``mesh_out``.

    Args:
        mesh_out: the mesh head's prediction (detached and copied; never changed).
        batch: what ``objective`` reads: ``mask`` ``(B, 1, res, res)``, optionally ``valid`` (the
            crop's padding never counts) and ``intrinsics`` (else a centred pinhole of ``focal_px``).
        body, renderer: the body model and the (differentiable) silhouette renderer.
        objective: the loss; its mask terms and regularisers are minimised.
        res, focal_px: the crop resolution and the fallback focal length in pixels.
        iterations, lr: Adam steps and learning rate.
        clamp_phenotypes: keep the shape parameters in :data:`PHENOTYPE_RANGE` (Anny); False for
            SMPL's unbounded betas.
        history: when given, the loss before each step is appended to it.
        start_loss: optionally, ``objective`` already evaluated on ``mesh_out`` itself (not
            detached), as a training step does with its own forward. The first iteration then
            takes its gradient from that graph (kept for the caller's backward) instead of
            posing, rendering and scoring the same parameters again: the same values, one
            forward pass fewer. Used only where ``mesh_out`` lies inside the fit's bounds (else
            the first iteration's clamped parameters would differ from it).

    Returns the fitted parameters, detached (``MeshHeadOutput``). Runs with gradients enabled
    whatever the caller's mode (``torch.no_grad`` in prediction).
    """
    device = mesh_out.pose.device
    with torch.enable_grad():
        params = {k: v.detach().clone().requires_grad_(True) for k, v in mesh_out.tensors().items()}
        optimizer = torch.optim.Adam(params.values(), lr=lr)
        K = batch_intrinsics(batch, res, focal_px, device)
        batch = objective.with_mask_targets(batch)  # every iteration scores the same masks
        start = mesh_out.tensors()
        joints = objective.reads_joints  # without joint terms, each iteration poses the vertices alone
        reuse = (start_loss is not None and start_loss.requires_grad and iterations > 0
                 and all(value.requires_grad for value in start.values())
                 and _within_bounds(mesh_out, clamp_phenotypes))
        for iteration in range(iterations):
            optimizer.zero_grad(set_to_none=True)
            if reuse and iteration == 0:
                loss = start_loss
                grads = torch.autograd.grad(start_loss, list(start.values()), retain_graph=True, allow_unused=True)
                for name, grad in zip(start, grads):
                    if grad is not None:  # as loss.backward() leaves it: no gradient, no update
                        params[name].grad = grad.detach()
            else:
                current = MeshHeadOutput(**dict(params, **_bounded(params, clamp_phenotypes)))
                loss, _ = objective(mesh_prediction(current, body, K, res, renderer, joints=joints), batch)
                loss.backward()
            if history is not None:
                history.append(float(loss.detach()))
            optimizer.step()
    with torch.no_grad():
        if clamp_phenotypes:
            params["phenotypes"].clamp_(*PHENOTYPE_RANGE)
        params["scale"].clamp_(min=MIN_SCALE)
    return MeshHeadOutput(**{k: v.detach() for k, v in params.items()})


def _within_bounds(mesh_out: MeshHeadOutput, clamp_phenotypes: bool) -> bool:
    """True when :func:`_bounded` leaves ``mesh_out``'s values unchanged (inside both bounds)."""
    with torch.no_grad():
        inside = bool((mesh_out.scale >= MIN_SCALE).all())
        if clamp_phenotypes:
            low, high = PHENOTYPE_RANGE
            inside = inside and bool(((mesh_out.phenotypes >= low) & (mesh_out.phenotypes <= high)).all())
    return inside


def _bounded(params: dict[str, torch.Tensor], clamp_phenotypes: bool) -> dict[str, torch.Tensor]:
    """The parameters a forward pass of the fit uses in place of the free ones: the clamped
    phenotypes (Anny) and the scale above :data:`MIN_SCALE`."""
    bounded = {}
    if clamp_phenotypes:
        bounded["phenotypes"] = params["phenotypes"].clamp(*PHENOTYPE_RANGE)
    bounded["scale"] = params["scale"].clamp_min(MIN_SCALE)
    return bounded


__all__ = ["fit_to_masks", "MIN_SCALE", "PHENOTYPE_RANGE"]

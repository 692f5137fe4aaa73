"""Per-image refinement: each prediction's body parameters fitted to its mask at test time.

:class:`MaskRefiner` runs :func:`~maskpose.train.fitting.fit_to_masks` (the optimisation of fitting
in the loop) from the regressor's prediction, on the adapt losses plus a pixel term. The network
is never changed. ``maskpose predict --refine N`` (:mod:`maskpose.apps.predict`) and
``maskpose evaluate --refine N`` (:func:`maskpose.train.evaluate.evaluate_model`) both use it.
"""

from __future__ import annotations

import torch

from maskpose.errors import ConfigError
from maskpose.models.regressor import MeshHeadOutput
from maskpose.render.silhouette import SilhouetteRenderer
from maskpose.train.config import TrainConfig, default_losses
from maskpose.train.fitting import fit_to_masks
from maskpose.train.objectives import Objective

#: Per-image refinement's Adam learning rate: fitting in the loop's (``TrainConfig.fit_lr``).
REFINE_LR = TrainConfig.fit_lr
#: Weight of the pixel L2 term (``l2``: the mean squared difference of silhouette and mask) that
#: per-image refinement adds to the adapt losses: L_S and L_T pull the outline and the skeleton
#: into place, the pixel term fills the mask. Chosen on the static-camera clip of seed 2
#: (docs/static_camera.md, "Per-image refinement"; 50, 200 and 500 against none): the silhouette
#: IoU rises with the weight and so does the pose error, and 50 is the least weight tried.
REFINE_PIXEL_WEIGHT = 50.0


def refine_losses(body: str, pixel_weight: float = REFINE_PIXEL_WEIGHT) -> dict[str, float]:
    """The losses of per-image refinement for the body model ``body``: the adapt defaults
    (:func:`~maskpose.train.config.default_losses`: Anny ``ls`` 1, ``lt`` 1, ``prior`` 0.1; SMPL
    ``ls`` 1, ``lt`` 1, ``phenotype_prior`` 0.01) plus ``l2`` at ``pixel_weight`` (0: none)."""
    if not pixel_weight >= 0:
        raise ConfigError(f"the refinement's pixel weight must be >= 0, got {pixel_weight}")
    losses = default_losses("adapt", body)
    return {**losses, "l2": float(pixel_weight)} if pixel_weight else losses


def check_refine(refine, checkpoint, has_mesh: bool) -> int:
    """``refine`` as an int >= 0; ``ConfigError`` for anything else, or for ``refine > 0`` with a
    checkpoint without the mesh head (the joint head has no body parameters to fit)."""
    if isinstance(refine, bool) or not isinstance(refine, int) or refine < 0:
        raise ConfigError(f"--refine must be an int >= 0 (Adam iterations; 0: off), got {refine!r}")
    if refine and not has_mesh:
        raise ConfigError(f"--refine fits body parameters to masks; checkpoint {checkpoint} has the joint head "
                          "(no body parameters): use --refine 0")
    return refine


class MaskRefiner:
    """Per-image refinement: each crop's body parameters fitted to its mask
    (:func:`~maskpose.train.fitting.fit_to_masks`, as fitting in the loop does) from the regressor's
    prediction, for ``iterations`` Adam steps of ``lr``, on :func:`refine_losses` (the adapt
    defaults of the body plus a pixel L2 term; SMPL has no joint-limit prior). Bounded shape
    parameters (a sigmoid head: Anny's phenotypes) stay in [0, 1]; SMPL's betas are not clamped.
    A crop whose mask is empty keeps its prediction (nothing to fit to).

    Args:
        body: the body model that poses the mesh head (its rendering topology).
        model_config: the checkpoint's model configuration.
        iterations, lr: Adam steps and learning rate.
        device: torch device.
        pixel_weight: weight of the pixel L2 term (:data:`REFINE_PIXEL_WEIGHT`; 0: the adapt
            losses alone).
    """

    def __init__(self, body, model_config, iterations: int, lr: float = REFINE_LR, device="cpu",
                 pixel_weight: float = REFINE_PIXEL_WEIGHT):
        self.body, self.iterations, self.lr = body, int(iterations), float(lr)
        self.res = model_config.resolution
        self.losses = refine_losses(body.name, pixel_weight)
        config = TrainConfig(mode="adapt", losses=self.losses, model=model_config, body=body.name)
        self.objective = Objective(config).to(device)
        self.renderer = SilhouetteRenderer(body.faces, self.res, behind="cull").to(device)
        self.clamp_phenotypes = model_config.shape_activation == "sigmoid"

    def __call__(self, mesh: MeshHeadOutput, K: torch.Tensor, masks: torch.Tensor,
                 valid: torch.Tensor | None = None) -> MeshHeadOutput:
        """The fitted parameters of crops whose camera is ``K`` ``(N, 3, 3)``, masks ``(N, res, res)``
        and valid pixels ``(N, res, res)`` (``None``: every pixel)."""
        rows = masks.flatten(1).amax(1) > 0
        if not rows.any() or not self.iterations:
            return mesh
        batch = {"mask": masks[rows, None].float(), "intrinsics": K[rows]}
        if valid is not None:
            batch["valid"] = valid[rows, None].float()
        start = MeshHeadOutput(**{k: v[rows] for k, v in mesh.tensors().items()})
        fitted = fit_to_masks(start, batch, self.body, self.renderer, self.objective, self.res, 0.0,
                              self.iterations, self.lr, clamp_phenotypes=self.clamp_phenotypes)
        if bool(rows.all()):
            return fitted
        out = {k: v.clone() for k, v in mesh.tensors().items()}
        for key, value in fitted.tensors().items():
            out[key][rows] = value
        return MeshHeadOutput(**out)


__all__ = ["MaskRefiner", "REFINE_LR", "REFINE_PIXEL_WEIGHT", "check_refine", "refine_losses"]

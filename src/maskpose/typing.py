"""The names maskpose accepts, as ``Literal`` aliases, with the tuple of their values beside each.

One place for every closed set of names (losses, kernels, reductions, styles, …): signatures use
the alias, validation uses the tuple (``typing.get_args`` of the alias), so the two cannot drift.
This module imports nothing from maskpose.
"""

from __future__ import annotations

from typing import Literal, get_args

#: How a per-sample loss or metric is reduced over the batch.
Reduction = Literal["mean", "sum", "none"]
REDUCTIONS: tuple[str, ...] = get_args(Reduction)

#: Neighbourhood of the iterative-thinning distance maps (S2D): a 3x3 square gives the
#: chessboard distance, alternating 4- and 8-neighbours the octagonal one (closer to Euclidean).
Kernel = Literal["chessboard", "octagonal"]
KERNELS: tuple[str, ...] = get_args(Kernel)

#: Gradient through the 0.5 threshold of the topology chain (the forward pass is hard either way).
Binarization = Literal["straight_through", "soft"]
BINARIZATIONS: tuple[str, ...] = get_args(Binarization)

#: How the bone lines of a skeleton mask combine: the paper's sum, or the released code's max.
SkeletonReduce = Literal["sum", "max"]
SKELETON_REDUCES: tuple[str, ...] = get_args(SkeletonReduce)

#: Geodesic weighting of Mask-as-Supervision: the paper's, or the released code's form.
GeodesicMode = Literal["paper", "released"]
GEODESIC_MODES: tuple[str, ...] = get_args(GeodesicMode)

#: Differentiable silhouette formulation (exact contour, or a Gaussian splat of face centroids).
SilhouetteMode = Literal["contour", "splat"]
SILHOUETTE_MODES: tuple[str, ...] = get_args(SilhouetteMode)

#: Where the silhouette renderer's winner search runs.
RenderBackend = Literal["auto", "torch", "warp"]
RENDER_BACKENDS: tuple[str, ...] = get_args(RenderBackend)

#: Regressor heads: the mesh (body parameters) and the free landmarks of Mask-as-Supervision.
Head = Literal["mesh", "joints"]
HEADS: tuple[str, ...] = get_args(Head)

#: Training modes.
TrainMode = Literal["pretrain", "adapt", "train-unsup", "oracle"]
TRAIN_MODES: tuple[str, ...] = get_args(TrainMode)

#: Learning-rate schedules of a training run: constant, or a cosine decay to 5 % over the steps.
LrSchedule = Literal["constant", "cosine"]
LR_SCHEDULES: tuple[str, ...] = get_args(LrSchedule)

#: Loss terms a training config may name: supervised, mask-only, regularisers.
SupervisedLoss = Literal["joints3d", "joints2d", "params", "silhouette_sup"]
MaskLoss = Literal["l1", "l2", "bce", "soft_iou", "chamfer_points", "ls", "lt", "mas"]
#: ``anchor``: shape and camera distance near the source model's prediction on the same image
#: (adapt from an init checkpoint; ``maskpose.train.objectives.Objective``).
Regulariser = Literal["prior", "phenotype_prior", "anchor"]
LossName = Literal[SupervisedLoss, MaskLoss, Regulariser]
SUPERVISED_LOSSES: tuple[str, ...] = get_args(SupervisedLoss)
MASK_LOSSES: tuple[str, ...] = get_args(MaskLoss)
REGULARISERS: tuple[str, ...] = get_args(Regulariser)
LOSS_NAMES: tuple[str, ...] = SUPERVISED_LOSSES + MASK_LOSSES + REGULARISERS

#: The built-in synthetic domains (``uap-<ε>`` domains are registered for other budgets too).
DomainName = Literal["studio", "lowres-96", "lowres-52", "lowres-32", "thermal", "scene", "uap-4", "uap-8",
                     "uap-16", "realistic"]
DOMAIN_NAMES: tuple[str, ...] = get_args(DomainName)

#: Rendering settings of the synthesis renderer.
Setting = Literal["studio", "scene", "thermal", "realistic"]
SETTINGS: tuple[str, ...] = get_args(Setting)

__all__ = [
    "BINARIZATIONS", "Binarization", "DOMAIN_NAMES", "DomainName", "GEODESIC_MODES", "GeodesicMode", "HEADS", "LR_SCHEDULES", "LrSchedule",
    "Head", "KERNELS", "Kernel", "LOSS_NAMES", "LossName", "MASK_LOSSES", "MaskLoss", "REDUCTIONS",
    "REGULARISERS", "RENDER_BACKENDS", "Reduction", "Regulariser", "RenderBackend", "SETTINGS",
    "SILHOUETTE_MODES", "SKELETON_REDUCES", "SUPERVISED_LOSSES", "Setting", "SilhouetteMode",
    "SkeletonReduce", "SupervisedLoss", "TRAIN_MODES", "TrainMode",
]

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

#: The skeleton mask a training run draws: the paper's (sum over the 17 bones) or the released
#: code's (max over 25 lines, arms thinner).
SkeletonStyle = Literal["paper", "released"]
SKELETON_STYLES: tuple[str, ...] = get_args(SkeletonStyle)

#: The skeleton term of the mask loss: the paper's two-sided squared error, or the released code's,
#: gated to the skeleton's support (``M_skel > 0.1``) so uncovered mask pixels cost nothing.
SkeletonTerm = Literal["two_sided", "one_sided", "released"]
SKELETON_TERMS: tuple[str, ...] = get_args(SkeletonTerm)

#: Geodesic weighting of Mask-as-Supervision: the paper's (``D / D_max``), the released code's
#: (``exp(2 D / D_max) + 1`` inside, ``3 D_bg / max + 20`` everywhere), or ``1 + D / D_max``
#: (``offset``, what ``released`` meant before the released code was read).
GeodesicMode = Literal["paper", "released", "offset"]
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

#: The joint head's form: a global-pool MLP, or heatmaps read out by soft-argmax (integral regression).
JointHeadKind = Literal["mlp", "integral"]
JOINT_HEADS: tuple[str, ...] = get_args(JointHeadKind)

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
#: (adapt from an init checkpoint; ``maskpose.train.objectives.Objective``). ``symmetry``: equal
#: left and right bone lengths of the predicted 3D joints (Mask as Supervision's released recipe).
Regulariser = Literal["prior", "phenotype_prior", "anchor", "symmetry"]
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

#: Precision of the network's forward pass in training (``torch.autocast``): ``float32`` (no
#: autocast), ``bf16`` (CUDA or CPU) or ``fp16`` (CUDA only, with a gradient scaler). The body
#: model, the silhouette renderer and the losses always run in float32.
Precision = Literal["float32", "bf16", "fp16"]
PRECISIONS: tuple[str, ...] = get_args(Precision)

__all__ = [
    "BINARIZATIONS", "Binarization", "DOMAIN_NAMES", "DomainName", "GEODESIC_MODES", "GeodesicMode", "HEADS", "LR_SCHEDULES", "LrSchedule",
    "Head", "JOINT_HEADS", "JointHeadKind", "KERNELS", "Kernel", "LOSS_NAMES", "LossName", "MASK_LOSSES", "MaskLoss", "REDUCTIONS",
    "REGULARISERS", "RENDER_BACKENDS", "Reduction", "Regulariser", "RenderBackend", "SETTINGS",
    "SILHOUETTE_MODES", "SKELETON_REDUCES", "SKELETON_STYLES", "SkeletonStyle", "SUPERVISED_LOSSES", "Setting", "SilhouetteMode",
    "SkeletonReduce", "SKELETON_TERMS", "SkeletonTerm", "SupervisedLoss", "TRAIN_MODES", "TrainMode", "PRECISIONS", "Precision",
]

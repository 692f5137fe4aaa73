"""maskpose.masks — Mask as Supervision (Yang, Qiao, Sun, ECCV 2024; docs/design.md §1.2).

* :func:`skeleton_mask` / :class:`SkeletonMask` — soft lines along the projected bones.
* :class:`PhysiqueNet` — the U-Net ψ from skeleton mask to physique (body) mask.
* :func:`geodesic_weights` / :class:`GeodesicWeights` — the pixel weights G (fast marching).
* :func:`mask_supervision_loss` / :class:`MaskSupervisionLoss` / :class:`JointMaskSupervision`
  (two-sided skeleton term, or the released code's one-sided one).
* :func:`bone_symmetry_loss` / :class:`BoneSymmetryLoss`, :func:`centre_symmetry_loss` /
  :class:`CentreSymmetryLoss` — the released recipe's left-right symmetry terms on 3D joints.
* :func:`train_physique_net` — pre-train ψ on synthetic stick-figure pairs
  (``maskpose masks train-physique``).
"""

from maskpose.masks.geodesic import (
    RELEASED_GEODESIC_PARAMS,
    GeodesicWeights,
    geodesic_distance,
    geodesic_weights,
    geodesic_weights_torch,
    mask_source,
)
from maskpose.masks.loss import (
    SKELETON_THRESHOLD,
    JointMaskSupervision,
    MaskSupervisionLoss,
    mask_supervision_loss,
)
from maskpose.masks.physique import PhysiqueNet
from maskpose.masks.physique_training import (
    PhysiqueTrainingResult,
    SyntheticStickFigures,
    evaluate_physique_net,
    mask_iou,
    train_physique_net,
)
from maskpose.masks.skeleton import (
    RELEASED_ARM_WIDTH,
    RELEASED_EXTENSION_BONES,
    RELEASED_LINE_EXPONENT,
    RELEASED_SIGMA_64,
    SkeletonMask,
    released_sigma,
    released_style,
    skeleton_mask,
)
from maskpose.masks.symmetry import (
    H36M_SYMMETRIC_BONE_PAIRS,
    H36M_SYMMETRY_CENTRES,
    RELEASED_BONE_PAIRS,
    BoneSymmetryLoss,
    CentreSymmetryLoss,
    bone_symmetry_loss,
    centre_symmetry_loss,
)

__all__ = [
    "RELEASED_GEODESIC_PARAMS", "GeodesicWeights", "geodesic_distance", "geodesic_weights",
    "geodesic_weights_torch", "mask_source",
    "SKELETON_THRESHOLD", "JointMaskSupervision", "MaskSupervisionLoss", "mask_supervision_loss", "PhysiqueNet",
    "PhysiqueTrainingResult", "SyntheticStickFigures", "evaluate_physique_net", "mask_iou",
    "train_physique_net", "RELEASED_ARM_WIDTH", "RELEASED_EXTENSION_BONES", "RELEASED_LINE_EXPONENT",
    "RELEASED_SIGMA_64", "SkeletonMask", "released_sigma", "released_style", "skeleton_mask",
    "H36M_SYMMETRIC_BONE_PAIRS", "H36M_SYMMETRY_CENTRES", "RELEASED_BONE_PAIRS", "BoneSymmetryLoss",
    "CentreSymmetryLoss", "bone_symmetry_loss", "centre_symmetry_loss",
]

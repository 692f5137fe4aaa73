"""maskpose.masks — Mask as Supervision (Yang, Qiao, Sun, ECCV 2024; docs/design.md §1.2).

* :func:`skeleton_mask` / :class:`SkeletonMask` — soft lines along the projected bones.
* :class:`PhysiqueNet` — the U-Net ψ from skeleton mask to physique (body) mask.
* :func:`geodesic_weights` / :class:`GeodesicWeights` — the pixel weights G (fast marching).
* :func:`mask_supervision_loss` / :class:`MaskSupervisionLoss` / :class:`JointMaskSupervision`.
* :func:`train_physique_net` — pre-train ψ on synthetic stick-figure pairs
  (``maskpose masks train-physique``).
"""

from maskpose.masks.geodesic import (
    GeodesicWeights,
    geodesic_distance,
    geodesic_weights,
    geodesic_weights_torch,
    mask_source,
)
from maskpose.masks.loss import (
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
    H36M_TORSO_EXTRA_BONES,
    SkeletonMask,
    released_style,
    skeleton_mask,
)

__all__ = [
    "GeodesicWeights", "geodesic_distance", "geodesic_weights", "geodesic_weights_torch", "mask_source",
    "JointMaskSupervision", "MaskSupervisionLoss", "mask_supervision_loss", "PhysiqueNet",
    "PhysiqueTrainingResult", "SyntheticStickFigures", "evaluate_physique_net", "mask_iou",
    "train_physique_net", "H36M_TORSO_EXTRA_BONES", "SkeletonMask", "released_style", "skeleton_mask",
]

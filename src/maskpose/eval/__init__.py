"""maskpose.eval — pose and mask metrics, flip-aware evaluation and supervised post-processing.

3D inputs in metres, 3D outputs in millimetres (docs/design.md §6). See :mod:`maskpose.eval.metrics`,
:mod:`maskpose.eval.flip` and :mod:`maskpose.eval.spp`.
"""

from maskpose.eval.flip import ambiguity_ratio, best_flip, flip_aware, flip_joints
from maskpose.eval.metrics import (
    AUC,
    AUC_THRESHOLDS_MM,
    MPJPE,
    NMPJPE,
    PAMPJPE,
    PCK,
    auc,
    error_2d,
    joint_errors,
    mpjpe,
    n_mpjpe,
    pa_mpjpe,
    pck,
    pose_metrics,
    procrustes_align,
    silhouette_iou,
)
from maskpose.eval.spp import (
    MLPSPP,
    LinearSPP,
    fit_linear_spp,
    fit_mlp_spp,
    fit_spp,
    labelled_subset,
)

__all__ = [
    "ambiguity_ratio", "best_flip", "flip_aware", "flip_joints", "AUC", "AUC_THRESHOLDS_MM", "MPJPE", "NMPJPE", "PAMPJPE", "PCK",
    "auc", "error_2d", "joint_errors", "mpjpe", "n_mpjpe", "pa_mpjpe", "pck", "pose_metrics",
    "procrustes_align", "silhouette_iou", "LinearSPP", "MLPSPP", "fit_linear_spp", "fit_mlp_spp",
    "fit_spp", "labelled_subset",
]

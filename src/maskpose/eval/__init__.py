"""maskpose.eval — pose and mask metrics, flip-aware evaluation and supervised post-processing.

3D inputs in metres, 3D outputs in millimetres (docs/design.md §6); 2D keypoint metrics of partly
labelled real data in pixels (docs/evaluation.md). See :mod:`maskpose.eval.metrics`,
:mod:`maskpose.eval.keypoints`, :mod:`maskpose.eval.flip` and :mod:`maskpose.eval.spp`.
"""

from maskpose.eval.flip import ambiguity_ratio, best_flip, flip_aware, flip_joints
from maskpose.eval.keypoints import (
    LIMB_JOINT_NAMES,
    LIMB_JOINTS,
    PCK2D,
    Error2DPx,
    Error2DPxFlip,
    KeypointScore,
    PCK2DFlip,
    error_2d_px,
    error_2d_px_flip,
    mean_pose_2d,
    pck_2d,
    pck_2d_flip,
)
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
    "LIMB_JOINT_NAMES", "LIMB_JOINTS", "KeypointScore", "PCK2D", "PCK2DFlip", "Error2DPx", "Error2DPxFlip",
    "pck_2d", "pck_2d_flip", "error_2d_px", "error_2d_px_flip", "mean_pose_2d",
]

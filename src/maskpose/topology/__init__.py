"""Silhouette topology alignment (Rakesh, Kundu, Jampani, Babu — NeurIPS 2021), kornia-style.

Pure functions on batched ``(B, 1, H, W)`` float tensors, each with an ``nn.Module`` beside it:

- S2D: :func:`inward_distance_map`, :func:`outward_distance_map` (iterative thinning; octagonal or
  chessboard kernel) — :class:`InwardDistanceMap`, :class:`OutwardDistanceMap`;
- D2T: :func:`topological_skeleton` (ridges of the inward map) — :class:`TopologicalSkeleton`;
- losses: :func:`chamfer_map_loss`, :func:`silhouette_alignment_loss` (``L_S``),
  :func:`topology_alignment_loss` (``L_T``), :func:`silhouette_topology_loss` (``L_S + w L_T``) —
  :class:`ChamferMapLoss`, :class:`SilhouetteAlignmentLoss`, :class:`TopologyAlignmentLoss`,
  :class:`SilhouetteTopologyLoss`;
- :func:`binarize` — :class:`Binarize`;
- baselines for comparison in :mod:`maskpose.topology.baselines` (:func:`pixel_l1_loss` —
  :class:`PixelL1Loss`, :func:`pixel_l2_loss` — :class:`PixelL2Loss`, :func:`bce_loss` — :class:`BceLoss`,
  :func:`soft_iou_loss` — :class:`SoftIoULoss`, :func:`point_chamfer_loss` — :class:`PointChamferLoss`).

Defaults: ``binarization=DEFAULT_BINARIZATION`` (``"soft"``), ``temperature=DEFAULT_TEMPERATURE``
(0.1), the values training uses.

Binarisation (hard forward; straight-through or soft gradient), the border convention and the value
for masks with nothing to be near are documented in :mod:`maskpose.topology.distance`.
"""

from maskpose.typing import BINARIZATIONS, KERNELS

from ._checks import DEFAULT_BINARIZATION, DEFAULT_TEMPERATURE
from .baselines import (
    BceLoss,
    PixelL1Loss,
    PixelL2Loss,
    PointChamferLoss,
    SoftIoULoss,
    bce_loss,
    pixel_l1_loss,
    pixel_l2_loss,
    point_chamfer_loss,
    soft_iou_loss,
)
from .distance import (
    Binarize,
    InwardDistanceMap,
    OutwardDistanceMap,
    binarize,
    default_iterations,
    inward_distance_map,
    outward_distance_map,
)
from .loss import (
    ChamferMapLoss,
    SilhouetteAlignmentLoss,
    SilhouetteTopologyLoss,
    TopologyAlignmentLoss,
    chamfer_map_loss,
    silhouette_alignment_loss,
    silhouette_topology_loss,
    topology_alignment_loss,
)
from .skeleton import TopologicalSkeleton, topological_skeleton

__all__ = [
    "BINARIZATIONS", "DEFAULT_BINARIZATION", "DEFAULT_TEMPERATURE", "KERNELS",
    "BceLoss", "Binarize", "ChamferMapLoss", "InwardDistanceMap", "OutwardDistanceMap", "PixelL1Loss",
    "PixelL2Loss", "PointChamferLoss", "SilhouetteAlignmentLoss", "SilhouetteTopologyLoss", "SoftIoULoss",
    "TopologicalSkeleton", "TopologyAlignmentLoss",
    "bce_loss", "binarize", "chamfer_map_loss", "default_iterations", "inward_distance_map",
    "outward_distance_map", "pixel_l1_loss", "pixel_l2_loss", "point_chamfer_loss", "silhouette_alignment_loss",
    "silhouette_topology_loss", "soft_iou_loss", "topological_skeleton", "topology_alignment_loss",
]

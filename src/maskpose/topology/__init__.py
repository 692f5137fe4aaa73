"""Silhouette topology alignment (Rakesh, Kundu, Jampani, Babu — NeurIPS 2021), kornia-style.

Pure functions on batched ``(B, 1, H, W)`` float tensors, each with an ``nn.Module`` beside it:

- S2D: :func:`inward_distance_map`, :func:`outward_distance_map` (iterative thinning; octagonal or
  chessboard kernel) — :class:`InwardDistanceMap`, :class:`OutwardDistanceMap`;
- D2T: :func:`topological_skeleton` (ridges of the inward map) — :class:`TopologicalSkeleton`;
- losses: :func:`chamfer_map_loss`, :func:`silhouette_alignment_loss` (``L_S``),
  :func:`topology_alignment_loss` (``L_T``), :func:`silhouette_topology_loss` (``L_S + w L_T``) —
  :class:`ChamferMapLoss`, :class:`SilhouetteAlignmentLoss`, :class:`TopologyAlignmentLoss`;
- baselines for comparison in :mod:`maskpose.topology.baselines`.

Binarisation (hard forward; straight-through or soft gradient), the border convention and the value
for masks with nothing to be near are documented in :mod:`maskpose.topology.distance`.
"""

from ._checks import BINARIZATIONS, KERNELS
from .distance import (
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
    TopologyAlignmentLoss,
    chamfer_map_loss,
    silhouette_alignment_loss,
    silhouette_topology_loss,
    topology_alignment_loss,
)
from .skeleton import TopologicalSkeleton, topological_skeleton

__all__ = [
    "BINARIZATIONS", "KERNELS", "ChamferMapLoss", "InwardDistanceMap", "OutwardDistanceMap", "SilhouetteAlignmentLoss",
    "TopologicalSkeleton", "TopologyAlignmentLoss", "binarize", "chamfer_map_loss", "default_iterations",
    "inward_distance_map", "outward_distance_map", "silhouette_alignment_loss", "silhouette_topology_loss",
    "topological_skeleton", "topology_alignment_loss",
]

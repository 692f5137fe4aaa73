"""What every maskpose body model offers (docs/design.md §2): the output type and the interface.

A body model is an ``nn.Module`` called as ``body(pose, shape, translation=None)``:

* ``pose`` ``(B, *pose_size)``: 6D rotations, index 0 the global orientation (applied in the camera
  frame about the pelvis; identity = upright and facing the camera), then the model's own joints;
* ``shape`` ``(B, shape_size)``: the model's shape parameters (Anny's phenotypes in [0, 1], SMPL's
  betas);
* ``translation`` ``(B, 3)``: where the pelvis goes in the camera frame (metres; default the origin).

It returns a :class:`BodyOutput` in the camera frame (OpenCV: x right, y down, z forward, metres);
``posed_vertices`` returns its vertices alone.
``faces`` is the topology of the returned vertices (the one the silhouette renderer draws).

Implementations: :class:`maskpose.body.anny_body.AnnyBody` (``"anny"``) and
:class:`maskpose.body.smpl_body.SMPLBody` (``"smpl"``, needs the ``smpl`` extra and a user-supplied
model file); :func:`maskpose.body.registry.make_body` builds either by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch

#: The body models :func:`maskpose.body.registry.make_body` knows, by name.
BODY_MODELS: tuple[str, ...] = ("anny", "smpl")


@dataclass
class BodyOutput:
    """What the body model returns; all float32 in the camera frame (metres).

    Attributes:
        vertices: ``(B, V, 3)``.
        faces: ``(F, 3)`` int64 triangle indices into ``vertices``.
        joints: ``(B, 17, 3)`` H36M-17 joints.
        coco: ``(B, 23, 3)`` COCO-17 keypoints plus 6 foot points (order
            ``maskpose.body.anny_body.COCO_WITH_FEET``); ``NaN`` where a model cannot place a point.
    """

    vertices: torch.Tensor
    faces: torch.Tensor
    joints: torch.Tensor
    coco: torch.Tensor


@runtime_checkable
class BodyModel(Protocol):
    """The interface of a body model (structural: ``isinstance(body, BodyModel)`` checks it).

    Attributes:
        name: the registry name (one of :data:`BODY_MODELS`).
        pose_size: per-sample pose shape, ``(rotations, 6)``: Anny ``(18, 6)``, SMPL ``(24, 6)``.
        shape_size: number of shape parameters: Anny 6 (phenotypes), SMPL 10 (betas).
        shape_name: what the shape parameters are called (``"phenotypes"``, ``"betas"``).
        faces: ``(F, 3)`` int64 faces of the output vertices (the rendering topology).
        num_vertices: ``V`` of the output vertices.
    """

    name: str
    pose_size: tuple[int, int]
    shape_size: int
    shape_name: str
    faces: torch.Tensor

    @property
    def num_vertices(self) -> int: ...

    def neutral_shape(self, batch: int, device=None) -> torch.Tensor:
        """``(batch, shape_size)`` shape parameters of the model's average body."""
        ...

    def __call__(self, pose: torch.Tensor, shape: torch.Tensor,
                 translation: torch.Tensor | None = None) -> BodyOutput: ...

    def posed_vertices(self, pose: torch.Tensor, shape: torch.Tensor,
                       translation: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, V, 3)``: the vertices of ``self(pose, shape, translation)``, the same values,
        without the joints and keypoints where the model can skip them (a mesh that is only
        drawn or rendered: the other people of a synthetic frame, fitting to masks)."""
        ...


__all__ = ["BODY_MODELS", "BodyModel", "BodyOutput"]

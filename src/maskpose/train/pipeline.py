"""From regressor outputs to what the losses and metrics compare: meshes, 3D and 2D joints, and
rendered silhouettes (model -> body -> render)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from maskpose.body.interface import BodyModel
from maskpose.body.registry import make_body
from maskpose.errors import DataError
from maskpose.models.regressor import JointHeadOutput, MeshHeadOutput
from maskpose.render.camera import intrinsics, project, weak_perspective_to_translation


@dataclass
class Prediction:
    """Per-batch predictions in the camera frame. Fields a head does not produce are ``None``.

    joints3d ``(B, 17, 3)`` metres; joints2d ``(B, J, 2)`` pixels (J = 17, or L landmarks for the
    joint head; both ``None`` in a mesh prediction made without joints); vertices ``(B, V, 3)``;
    silhouette ``(B, 1, H, W)``; params: the head's output.
    """

    joints3d: torch.Tensor | None
    joints2d: torch.Tensor | None
    vertices: torch.Tensor | None = None
    faces: torch.Tensor | None = None
    silhouette: torch.Tensor | None = None
    translation: torch.Tensor | None = None
    K: torch.Tensor | None = None
    params: MeshHeadOutput | JointHeadOutput | None = None


def build_body(name: str = "anny", device=None, smpl_model: str = "", h36m_regressor: str = "",
               smpl_topology: str = "decimated") -> BodyModel:
    """The body model a run trains or evaluates with (``TrainConfig.body`` and its SMPL fields):
    Anny at its rendering topology, exactly ``AnnyBody(device=device)``; SMPL from ``smpl_model``
    (empty: ``$MASKPOSE_SMPL_MODEL``), with the optional H36M regressor, at ``smpl_topology``.
    ``ConfigError`` for an unknown name, or SMPL without the extra or a model file."""
    if name != "smpl":
        return make_body(name, device=device)
    return make_body("smpl", model_path=smpl_model or None, h36m_regressor=h36m_regressor or None,
                     topology=smpl_topology, device=device)


def batch_intrinsics(batch: dict, res: int, focal_px: float, device) -> torch.Tensor:
    """The crop intrinsics of a batch: stored ones where the dataset has them, else a centred
    pinhole camera of ``focal_px``."""
    if "intrinsics" in batch:
        return batch["intrinsics"].to(device)
    return intrinsics(focal_px, res, batch=batch["image"].shape[0], device=device)


def masked_images(batch: dict, masked: bool) -> torch.Tensor:
    """``batch["image"]``, or with ``masked`` the image times its mask (``DataError`` when the
    batch has no mask: a masked-input model needs the person mask at test time too)."""
    if not masked:
        return batch["image"]
    if "mask" not in batch:
        raise DataError("this model sees the image times the person mask (masked_input); the data has no mask")
    return batch["image"] * batch["mask"].to(batch["image"].dtype)


def weak_perspective_points(points: torch.Tensor, scale: torch.Tensor, offset: torch.Tensor, res: int) -> torch.Tensor:
    """Weak-perspective projection ``(B, N, 3)`` -> pixels ``(B, N, 2)`` (the joint head's camera)."""
    normalised = scale[:, None, None] * (points[..., :2] + offset[:, None])
    return (normalised + 1.0) * (res / 2.0) - 0.5


def mesh_prediction(mesh_out: MeshHeadOutput, body: BodyModel, K: torch.Tensor, res: int, renderer=None,
                    joints: bool = True) -> Prediction:
    """Run the body model (any :class:`~maskpose.body.interface.BodyModel`: pose, shape parameters,
    translation) and the silhouette renderer when given on the mesh head's output. ``joints=False``
    poses the vertices alone (``BodyModel.posed_vertices``; ``joints3d`` and ``joints2d`` are then
    ``None``), for an objective that reads none (:attr:`~maskpose.train.objectives.Objective.reads_joints`)."""
    translation = weak_perspective_to_translation(mesh_out.scale, mesh_out.offset, K[:, 0, 0], res)
    if joints:
        out = body(mesh_out.pose, mesh_out.phenotypes, translation)
        vertices, joints3d = out.vertices, out.joints
    else:
        vertices, joints3d = body.posed_vertices(mesh_out.pose, mesh_out.phenotypes, translation), None
    silhouette = renderer(vertices, K) if renderer is not None else None
    return Prediction(
        joints3d=joints3d, joints2d=project(joints3d, K) if joints else None, vertices=vertices, faces=body.faces,
        silhouette=silhouette, translation=translation, K=K, params=mesh_out,
    )


def joint_prediction(joint_out: JointHeadOutput, res: int, num_joints: int = 17) -> Prediction:
    """The joint head's landmarks: the first ``num_joints`` are the H36M-17 joints (root-relative)."""
    landmarks = joint_out.landmarks
    return Prediction(
        joints3d=landmarks[:, :num_joints],
        joints2d=weak_perspective_points(landmarks, joint_out.scale, joint_out.offset, res),
        params=joint_out,
    )

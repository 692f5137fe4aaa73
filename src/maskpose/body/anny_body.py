"""Anny as maskpose's body model: 6D rotations of an articulated subset + phenotypes -> mesh, joints.

Coordinates: outputs are in the camera frame (OpenCV: x right, y down, z forward, metres).
Anny's own world (Z up, -Y facing, +X the subject's left) is mapped so that an identity global
orientation means *upright and facing the camera*: X -> x, Z -> -y, Y -> z. The pelvis (Anny's
root bone head) sits at ``translation``.

Joints never depend on the mesh topology: H36M-17 joints are bone heads (identical across Anny
topologies) and surface points (COCO keypoints, the head top) are regressed from the *full* mesh
through a sparse copy of its skinning data, so a decimated mesh for rendering gives exactly the
same joints as the full mesh.
"""

from __future__ import annotations

import copy
import functools
import importlib.metadata
import logging
import os
from dataclasses import dataclass

import anny
import torch
from anny.models.phenotype import phenotype_blendshape_weights
from anny.paths import get_anny_cache_path, get_anny_root_dir
from torch import nn

try:  # an Anny dependency; without it Anny falls back to torch skinning
    import warp
except ImportError:
    warp = None

from maskpose.body.interface import BodyOutput
from maskpose.body.limits import (
    ANNY_BONE_OF_JOINT,
    ARTICULATED_JOINTS,
    H36M_FROM_ANNY,
    NUM_POSE_ROTATIONS,
)
from maskpose.body.rotations import sixd_to_rotmat
from maskpose.errors import MaskposeError, all_finite, check_shape

log = logging.getLogger(__name__)

RENDER_TOPOLOGY = "notoes_collapse10pc"
FULL_TOPOLOGY = "anny"

#: Anny world -> camera frame for an identity global orientation (a proper rotation, det = +1).
ANNY_TO_CAMERA = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])

COCO_WITH_FEET: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
    "right_knee", "left_ankle", "right_ankle", "left_big_toe", "right_big_toe", "left_small_toe",
    "right_small_toe", "left_heel", "right_heel",
)


def _quiet_warp() -> None:
    """Anny initialises NVIDIA Warp, which prints a banner and a line per kernel load at INFO
    level; keep the terminal for maskpose's own progress (warnings still show)."""
    if warp is None:
        return
    level = getattr(warp.config, "log_level", None)
    if level is not None:
        warp.config.log_level = max(level, warp.LOG_WARNING)
    if hasattr(warp.config, "quiet"):
        warp.config.quiet = True


@functools.lru_cache(maxsize=4)
def load_anny(topology: str):
    """Construct (and cache in-process) an Anny model. The first construction on a machine builds
    Anny's on-disk cache (about a minute); later ones take well under a second."""
    _quiet_warp()

    log.info("building Anny (topology=%s)", topology)
    try:
        return anny.Anny(topology=topology)
    except Exception as err:  # Anny raises a variety of errors for unknown names
        raise MaskposeError(f"cannot build Anny with topology {topology!r}: {err}") from err


def _surface_point_data(full) -> dict[str, torch.Tensor]:
    """Skinning of the full-mesh points regressed by maskpose (23 COCO keypoints + head top),
    folded per (point, bone) pair.

    A regressed point is ``p = sum_s W_ps sum_k w_sk T_(b_sk) x_s`` (linear blend skinning of the
    full mesh's vertices ``x_s``), which regroups as ``sum_b T_b y_pb`` with
    ``y_pb = sum_s A_pbs x_s``. Only a few (point, bone) pairs are non-zero, and ``x_s`` is linear
    in the phenotype weights, so ``y`` is precomputed as a base plus a phenotype basis: the forward
    pass then costs a few hundred 4x4 products instead of skinning thousands of vertices.

    Returns float64 tensors: ``pair_point``/``pair_bone`` ``(Q,)`` (int64), ``base`` ``(Q, 3)``,
    ``weight_sum`` ``(Q,)``, ``shape_basis`` ``(Wp, Q, 3)`` and ``phenotype_mask``.
    """
    keypoints = torch.load(get_anny_root_dir() / "data" / "keypoints" / "coco.pth", weights_only=True)
    dense = torch.stack([keypoints[name][full.base_mesh_vertex_indices] for name in COCO_WITH_FEET])
    # Head top: the topmost vertex of the full mesh at rest (arms hang down in Anny's A-pose).
    head_top = torch.zeros(1, dense.shape[1], dtype=dense.dtype)
    head_top[0, int(full.template_vertices[:, 2].argmax())] = 1.0
    dense = torch.cat([dense, head_top]).double()
    support = torch.nonzero(dense.abs().sum(0) > 0).squeeze(1)
    weights = dense[:, support]  # (P, S)
    bone_index = full.vertex_bone_indices[support].long()  # (S, k)
    bone_weight = full.vertex_bone_weights[support].double()  # (S, k)
    num_points, num_support = weights.shape
    num_bones = len(full.bone_labels)
    fold = torch.zeros(num_points, num_bones, num_support, dtype=torch.float64)
    point_idx = torch.arange(num_points)[:, None].expand(num_points, num_support)
    support_idx = torch.arange(num_support)[None].expand(num_points, num_support)
    for k in range(bone_index.shape[1]):
        fold.index_put_((point_idx, bone_index[:, k][None].expand(num_points, -1), support_idx),
                        weights * bone_weight[:, k][None], accumulate=True)
    pair_point, pair_bone = torch.nonzero(fold.abs().sum(-1) > 0, as_tuple=True)
    fold = fold[pair_point, pair_bone]  # (Q, S)

    # Each topology has its own compact blendshape basis, so the full mesh's shape is expressed in
    # the topology-free phenotype weights ``wi`` (see Anny's _get_phenotype_blendshape_coefficients).
    blendshapes = full.blendshapes[:, support].double()
    projection = full.phenotype_blendshape_projection
    if projection is not None:
        phenotype_blendshapes = torch.einsum("wc,csd->wsd", projection.double(), blendshapes[: projection.shape[1]])
    else:
        phenotype_blendshapes = blendshapes[: full.stacked_phenotype_blend_shapes_mask.shape[0]]
    return {
        "pair_point": pair_point,
        "pair_bone": pair_bone,
        "base": fold @ full.template_vertices[support].double(),
        "weight_sum": fold.sum(-1),
        "shape_basis": torch.einsum("qs,wsd->wqd", fold, phenotype_blendshapes),
        "phenotype_mask": full.stacked_phenotype_blend_shapes_mask,
    }


def surface_cache_path():
    """Where the folded surface-point data is cached: beside Anny's own cache, keyed by Anny's
    version (the data depends only on Anny's assets)."""
    return get_anny_cache_path() / f"maskpose_surface_points_anny-{importlib.metadata.version('anny')}.pt"


@functools.lru_cache(maxsize=1)
def surface_point_data() -> dict[str, torch.Tensor]:
    """The folded surface-point data; computed from the full mesh once per machine (building the
    full Anny model costs seconds and memory in every process otherwise), then read from disk."""
    path = surface_cache_path()
    if path.exists():
        try:
            return torch.load(path, weights_only=True)
        except Exception:  # a truncated or foreign file: recompute and overwrite it
            log.warning("ignoring unreadable cache %s", path)
    data = _surface_point_data(load_anny(FULL_TOPOLOGY))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        torch.save(data, tmp)
        os.replace(tmp, path)  # atomic: concurrent processes never read a partial file
    except OSError as err:  # a read-only cache folder only costs the recomputation
        log.warning("cannot cache %s (%s)", path, err)
    return data


class AnnyBody(nn.Module):
    """Differentiable Anny body model on the articulated subset of ``maskpose.body.limits``.

    Args:
        topology: Anny topology of the output mesh: ``"notoes_collapse10pc"`` (1,229 vertices) for
            rendering, ``"anny"`` (13,718) for evaluation and export. Joints are the same for both.
        device: where the model lives (inputs must be on the same device).

    Forward:
        pose: ``(B, 18, 6)`` 6D rotations; index 0 the global orientation, then
            ``ARTICULATED_JOINTS[1:]`` as Anny local-ref deltas.
        phenotypes: ``(B, 6)`` in [0, 1] (gender, age, muscle, weight, height, proportions).
        translation: optional ``(B, 3)`` pelvis position in the camera frame (metres).

    Implements :class:`maskpose.body.interface.BodyModel` (name ``"anny"``; shape = phenotypes).
    """

    name = "anny"
    pose_size = (NUM_POSE_ROTATIONS, 6)
    shape_size = 6
    shape_name = "phenotypes"

    def __init__(self, topology: str = RENDER_TOPOLOGY, device: torch.device | str | None = None):
        super().__init__()
        source = load_anny(topology)
        # Each AnnyBody owns a float32 copy: the cached model stays float64 on the CPU.
        self.anny = copy.deepcopy(source).to(device=device, dtype=torch.float32)
        self.topology = topology
        bone_index = {name: i for i, name in enumerate(self.anny.bone_labels)}
        self.register_buffer(
            "articulated_bones",
            torch.tensor([bone_index[ANNY_BONE_OF_JOINT[j]] for j in ARTICULATED_JOINTS[1:]]),
            persistent=False,
        )
        joint_bones = [bone_index[name] for name in H36M_FROM_ANNY if name != "head_top"]
        self.register_buffer("joint_bones", torch.tensor(joint_bones), persistent=False)
        self.head_top_slot = H36M_FROM_ANNY.index("head_top")
        for key, value in surface_point_data().items():
            dtype = value.dtype if not value.dtype.is_floating_point else torch.float32
            self.register_buffer(f"surface_{key}", value.to(device=device, dtype=dtype), persistent=False)
        self.num_surface_points = len(COCO_WITH_FEET) + 1
        self.register_buffer("anny_to_camera", ANNY_TO_CAMERA.to(device), persistent=False)
        self.register_buffer(
            "faces", self.anny.get_triangular_faces().long().to(device), persistent=False
        )
        self.num_bones = len(self.anny.bone_labels)

    @property
    def num_vertices(self) -> int:
        return int(self.anny.template_vertices.shape[0])

    def neutral_shape(self, batch: int, device=None) -> torch.Tensor:
        """``(batch, 6)`` phenotypes of Anny's average body (all 0.5)."""
        return torch.full((batch, 6), 0.5, device=device)

    def _check_inputs(self, pose: torch.Tensor, phenotypes: torch.Tensor, translation):
        check_shape("pose", pose, (None, NUM_POSE_ROTATIONS, 6))
        check_shape("phenotypes", phenotypes, (pose.shape[0], 6))
        if translation is not None:
            check_shape("translation", translation, (pose.shape[0], 3))
        if not all_finite(pose) or not all_finite(phenotypes):
            raise MaskposeError("pose and phenotypes must be finite (found NaN or Inf)")
        if phenotypes.min() < 0.0 or phenotypes.max() > 1.0:
            raise MaskposeError(
                f"phenotypes must lie in [0, 1], got values in [{float(phenotypes.min()):.3f}, "
                f"{float(phenotypes.max()):.3f}]"
            )

    def forward(
        self, pose: torch.Tensor, phenotypes: torch.Tensor, translation: torch.Tensor | None = None
    ) -> BodyOutput:
        posed = self._pose(pose, phenotypes, translation)
        surface = self._surface_points(posed.phenotypes, posed.transforms)  # (B, 24, 3): 23 COCO + head top
        heads = posed.bone_poses[:, self.joint_bones, :3, 3]
        joints = torch.cat(
            [heads[:, : self.head_top_slot], surface[:, -1:], heads[:, self.head_top_slot :]], dim=1
        )
        return BodyOutput(posed.place(posed.vertices), self.faces, posed.place(joints), posed.place(surface[:, :-1]))

    def posed_vertices(
        self, pose: torch.Tensor, phenotypes: torch.Tensor, translation: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``(B, V, 3)`` camera-frame vertices alone: ``forward(...).vertices``, the same values,
        without the joints and surface points (for bodies that are only drawn, such as the other
        people of a synthetic frame)."""
        posed = self._pose(pose, phenotypes, translation)
        return posed.place(posed.vertices)

    def _pose(self, pose: torch.Tensor, phenotypes: torch.Tensor, translation: torch.Tensor | None) -> _Posed:
        self._check_inputs(pose, phenotypes, translation)
        batch = pose.shape[0]
        anny = self.anny
        rotations = sixd_to_rotmat(pose.float())  # (B, 18, 3, 3)
        delta = torch.eye(4, device=pose.device).repeat(batch, self.num_bones, 1, 1)
        delta[:, self.articulated_bones] = _homogeneous(rotations[:, 1:])

        # Anny's forward split open so that the bone transforms also skin the surface points.
        _, pheno, _, _ = anny.get_tensor_inputs(None, phenotypes.float(), None, None)
        # Anny's public coefficients (by phenotype name; local changes and facial actions at 0).
        coeffs = anny.get_phenotype_blendshape_coefficients(**dict(zip(anny.phenotype_labels, pheno.unbind(1))))
        rest = anny.get_rest_model(coeffs)
        transforms, bone_poses = anny.get_bone_transforms(delta, rest["rest_bone_poses"])
        vertices = anny.get_skinned_vertices(rest_vertices=rest["rest_vertices"], bone_transforms=transforms)
        to_camera = rotations[:, 0] @ self.anny_to_camera  # (B, 3, 3)
        offset = translation.float()[:, None] if translation is not None else 0.0
        return _Posed(vertices, pheno, transforms, bone_poses, to_camera, offset)

    def _surface_points(self, phenotypes: torch.Tensor, transforms: torch.Tensor) -> torch.Tensor:
        """``(B, 24, 3)`` regressed points (Anny frame) from phenotypes and bone transforms."""
        weights = phenotype_blendshape_weights(
            phenotypes, self.anny.phenotype_labels, self.anny.anchors, self.surface_phenotype_mask,
            extrapolate=self.anny.extrapolate_phenotypes,
        )
        folded = self.surface_base + torch.einsum("bw,wqd->bqd", weights, self.surface_shape_basis)
        folded = torch.cat([folded, self.surface_weight_sum.expand(folded.shape[0], -1)[..., None]], dim=-1)
        moved = (transforms[:, self.surface_pair_bone] @ folded[..., None])[..., :3, 0]  # (B, Q, 3)
        points = moved.new_zeros(moved.shape[0], self.num_surface_points, 3)
        return points.index_add(1, self.surface_pair_point, moved)


@dataclass
class _Posed:
    """What :meth:`AnnyBody._pose` computes (Anny frame), and the move to the camera frame."""

    vertices: torch.Tensor
    phenotypes: torch.Tensor
    transforms: torch.Tensor
    bone_poses: torch.Tensor
    to_camera: torch.Tensor
    offset: torch.Tensor | float

    def place(self, points: torch.Tensor) -> torch.Tensor:
        return points.float() @ self.to_camera.transpose(1, 2) + self.offset


def _homogeneous(rotations: torch.Tensor) -> torch.Tensor:
    """``(..., 3, 3)`` rotations to ``(..., 4, 4)`` rigid transforms with zero translation."""
    out = torch.zeros(*rotations.shape[:-2], 4, 4, dtype=rotations.dtype, device=rotations.device)
    out[..., :3, :3] = rotations
    out[..., 3, 3] = 1.0
    return out

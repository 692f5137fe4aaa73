"""SMPL as a maskpose body model, through ``smplx`` and a model file the user supplies.

SMPL's licence forbids redistribution: maskpose never ships or fetches a model file. Register at
https://smpl.is.tue.mpg.de, download the model, and give its path as ``model_path`` or in the
environment variable ``MASKPOSE_SMPL_MODEL`` (a ``.pkl`` as ``smplx`` reads it, e.g.
``SMPL_NEUTRAL.pkl``, a folder holding ``SMPL_{GENDER}.pkl``, or an ``.npz`` of the same arrays).
The official ``.pkl`` files pickle ``chumpy`` arrays: install ``chumpy`` to read them, or re-save
the arrays as plain NumPy. A pickle runs code when loaded: open only model files you trust.
Install the extra with ``pip install maskpose[smpl]``.

Conventions are Anny's (docs/design.md §2): outputs in the camera frame (OpenCV: x right, y down,
z forward, metres); SMPL's own frame (Y up, facing +Z, +X the subject's left) maps by
``X -> x, Y -> -y, Z -> -z`` (:data:`SMPL_TO_CAMERA`, a half turn about x), so an identity global
orientation is upright and facing the camera; the pelvis (SMPL joint 0) sits at ``translation``.

**H36M-17 joints.** With ``h36m_regressor`` (SPIN's ``J_regressor_h36m.npy``, ``(17, 6890)``) the
joints are exactly ``regressor @ vertices`` (camera frame, full mesh); the regressed pelvis is then
near, not at, ``translation``. Without it, :data:`H36M_FROM_SMPL` maps SMPL's own 24 joints:
pelvis 0, hips 2/1, knees 5/4, ankles 8/7, spine = spine2 (6), thorax = neck (12), neck/nose =
head (15), head = the topmost template vertex (the crown, as Anny's head top), shoulders 16/17,
elbows 18/19, wrists 20/21. Known biases of that mapping (not measured here: no SMPL file is
available to the tests): SMPL's joints are rotation centres regressed inside the body, H36M's a
marker-based skeleton, so expect offsets of a few centimetres against H36M labels, most at the
hips, the spine and thorax (spine2 and SMPL's neck are not H36M's spine and thorax), neck/nose
(SMPL's head joint sits at the skull base, H36M's further up and forward) and the head top (a
crown vertex, not H36M's head marker). For numbers comparable with published H36M results, supply
the regressor.

**Topology.** ``topology="full"`` (the default) returns SMPL's 6,890 vertices and faces, and the
silhouette renderer draws them. ``"decimated"`` returns at most ``render_vertices`` vertices
picked from the full mesh (:func:`decimate`), about 3x cheaper to render, like Anny's decimated
rendering mesh; its outline is slightly inside the full mesh's (on the tests' box humanoid its
exact mask has IoU 0.94-0.96 with the full mesh's at 1,137 of 7,104 vertices; not measured on
SMPL itself). Joints always come from the full mesh, so they do not depend on the topology.

**COCO-17 (+ 6 foot points).** Limbs from SMPL joints (shoulders 16/17, elbows 18/19, wrists
20/21, hips 1/2, knees 4/5, ankles 7/8; COCO's hips are surface-based, not SMPL's hip joints); nose, eyes,
ears, toes and heels from single vertices, by default ``smplx``'s SMPL ids (the extra joints SPIN and
VIBE take through ``smplx``): nose 332, eyes 2800 (left) / 6260 (right), ears 583 / 4071, big toes 3216 /
6617, small toes 3226 / 6624, heels 3387 / 6787. A model of another topology gets ``NaN`` for
those points unless ``keypoint_vertices`` names its own vertices.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import pickle
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import roma
import torch
from torch import nn

try:  # the ``smpl`` extra
    import smplx
    from smplx.lbs import lbs as smpl_lbs
    from smplx.utils import Struct
    from smplx.vertex_ids import vertex_ids as SMPLX_VERTEX_IDS
except ImportError:
    smplx = None

from maskpose.body.anny_body import COCO_WITH_FEET
from maskpose.body.interface import BodyOutput
from maskpose.body.rotations import rotmat_to_sixd, sixd_to_rotmat
from maskpose.errors import ConfigError, MaskposeError, all_finite, check_shape

log = logging.getLogger(__name__)

#: The environment variable naming the SMPL model file when ``model_path`` is not given.
SMPL_MODEL_ENV = "MASKPOSE_SMPL_MODEL"
NUM_SMPL_ROTATIONS = 24  # global orientation + 23 body joints
NUM_BETAS = 10
SMPL_NUM_VERTICES = 6890
#: Output topologies: ``"full"`` (the model's own mesh) or ``"decimated"`` (at most
#: :data:`RENDER_VERTICES` vertices, cheaper to render). Joints are the same for both.
SMPL_TOPOLOGIES: tuple[str, ...] = ("full", "decimated")
#: Vertex budget of the decimated topology (Anny's rendering mesh has 1,229).
RENDER_VERTICES = 1200

#: SMPL's 24 joints, in its order.
SMPL_JOINTS: tuple[str, ...] = (
    "pelvis", "l_hip", "r_hip", "spine1", "l_knee", "r_knee", "spine2", "l_ankle", "r_ankle", "spine3",
    "l_foot", "r_foot", "neck", "l_collar", "r_collar", "head", "l_shoulder", "r_shoulder", "l_elbow",
    "r_elbow", "l_wrist", "r_wrist", "l_hand", "r_hand",
)

#: SMPL frame -> camera frame for an identity global orientation (a half turn about x, det = +1).
SMPL_TO_CAMERA = torch.tensor([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]])

#: The SMPL joint (index into :data:`SMPL_JOINTS`) of each H36M-17 joint without a regressor;
#: ``"head_top"`` is a vertex (the topmost of the template).
H36M_FROM_SMPL: tuple[int | str, ...] = (0, 2, 5, 8, 1, 4, 7, 6, 12, 15, "head_top", 16, 18, 20, 17, 19, 21)

#: The source of each point of ``COCO_WITH_FEET``: an SMPL joint index, or a vertex key of
#: ``smplx``'s ``vertex_ids`` (a single vertex).
COCO_FROM_SMPL: tuple[int | str, ...] = (
    "nose", "leye", "reye", "lear", "rear", 16, 17, 18, 19, 20, 21, 1, 2, 4, 5, 7, 8,
    "LBigToe", "RBigToe", "LSmallToe", "RSmallToe", "LHeel", "RHeel",
)
_MODEL_KEYS = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f")


def require_smplx() -> None:
    """Raise ``ConfigError`` unless ``smplx`` is installed."""
    if smplx is None:
        raise ConfigError("the SMPL body needs the smpl extra: pip install maskpose[smpl]")


def resolve_model_path(model_path: str | os.PathLike | None = None, gender: str = "neutral") -> Path:
    """The SMPL model file: ``model_path``, else ``$MASKPOSE_SMPL_MODEL``; a folder holds
    ``SMPL_{GENDER}.pkl`` (``smplx``'s naming). ``ConfigError`` when none is given or it is missing."""
    given = model_path if model_path is not None else os.environ.get(SMPL_MODEL_ENV) or None
    if given is None:
        raise ConfigError(
            f"the SMPL body needs a model file: pass model_path (--smpl-model PATH) or set {SMPL_MODEL_ENV} "
            "to SMPL_NEUTRAL.pkl (download it from https://smpl.is.tue.mpg.de; maskpose never ships it)")
    path = Path(given).expanduser()
    if path.is_dir():
        path = path / f"SMPL_{gender.upper()}.pkl"
    if not path.is_file():
        raise ConfigError(f"{path}: SMPL model file does not exist")
    return path


def _as_array(value) -> np.ndarray:
    if hasattr(value, "toarray"):  # scipy.sparse (SMPL's J_regressor)
        value = value.toarray()
    return np.asarray(getattr(value, "r", value))  # chumpy arrays hold their values in .r


def load_model_data(path: Path) -> dict[str, np.ndarray]:
    """Read and check an SMPL-format model file (``.pkl`` or ``.npz``); ``ConfigError`` naming
    the file and the key at fault."""
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                raw = {key: archive[key] for key in archive.files}
        else:
            with open(path, "rb") as f:
                raw = pickle.load(f, encoding="latin1")
    except ModuleNotFoundError as err:
        raise ConfigError(f"{path}: the model pickles {err.name} objects: pip install {err.name} to read it, "
                          "or re-save its arrays as plain NumPy") from None
    except Exception as err:  # pickle and numpy raise many kinds for a foreign or truncated file
        raise ConfigError(f"{path}: cannot read the SMPL model ({type(err).__name__}: {err})") from None
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path}: an SMPL model holds a dict of arrays, got {type(raw).__name__}")
    missing = [key for key in _MODEL_KEYS if key not in raw]
    if missing:
        raise ConfigError(f"{path}: not an SMPL model: missing key(s) {missing}")
    data = {key: _as_array(raw[key]) for key in _MODEL_KEYS}
    num_vertices = data["v_template"].shape[0] if data["v_template"].ndim == 2 else -1
    expected = {
        "v_template": (num_vertices, 3), "shapedirs": (num_vertices, 3, None), "posedirs": (num_vertices, 3, 207),
        "J_regressor": (NUM_SMPL_ROTATIONS, num_vertices), "weights": (num_vertices, NUM_SMPL_ROTATIONS),
        "kintree_table": (2, NUM_SMPL_ROTATIONS), "f": (None, 3),
    }
    for key, shape in expected.items():
        got = data[key].shape
        if num_vertices <= 0 or len(got) != len(shape) or any(e is not None and e != g for e, g in zip(shape, got)):
            pretty = "(" + ", ".join("*" if e is None else str(e) for e in shape) + ")"
            raise ConfigError(f"{path}: SMPL key {key!r} has shape {got}, expected {pretty}")
    if data["shapedirs"].shape[2] < NUM_BETAS:
        raise ConfigError(f"{path}: SMPL shapedirs has {data['shapedirs'].shape[2]} components, maskpose uses {NUM_BETAS}")
    faces = data["f"].astype(np.int64)
    if faces.size == 0 or faces.min() < 0 or faces.max() >= num_vertices:
        raise ConfigError(f"{path}: SMPL faces index outside the {num_vertices} vertices")
    data["f"] = faces
    return data


def load_h36m_regressor(regressor, num_vertices: int) -> torch.Tensor:
    """A ``(17, V)`` H36M regressor from a ``.npy`` path (SPIN's ``J_regressor_h36m.npy``) or an array."""
    if isinstance(regressor, (str, os.PathLike)):
        path = Path(regressor).expanduser()
        if not path.is_file():
            raise ConfigError(f"{path}: H36M regressor file does not exist")
        try:
            regressor = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as err:
            raise ConfigError(f"{path}: cannot read the H36M regressor ({err})") from None
    array = torch.as_tensor(np.asarray(regressor, dtype=np.float64) if not torch.is_tensor(regressor) else regressor)
    if tuple(array.shape) != (17, num_vertices):
        raise ConfigError(f"the H36M regressor must have shape (17, {num_vertices}), got {tuple(array.shape)}")
    if not torch.isfinite(array).all():
        raise ConfigError("the H36M regressor holds NaN or infinite values")
    return array.float()


def decimate(template: np.ndarray, weights: np.ndarray, faces: np.ndarray, target: int) -> tuple[np.ndarray, np.ndarray]:
    """A coarser rendering topology by vertex clustering: ``(keep (K,), faces (F', 3))``, the
    kept vertices (indices into the full mesh) and faces indexing into them.

    Vertices are clustered per body part (their largest skinning weight) in cubic cells of the rest
    template, each part's cell size searched so that it keeps its share of ``target`` vertices (so
    about ``target`` remain in all); each cluster keeps its vertex farthest from the part's centre (so
    that the coarse surface shrinks as little as possible), and faces follow their vertices
    (degenerate faces dropped, coincident ones cancelled by orientation). The result is the image of
    the full surface under that vertex map, so it stays closed, and its vertices are a subset of the full mesh's: skinning the full mesh and picking
    them keeps the joints independent of the topology. A mesh of at most ``target`` vertices is
    returned as it is.
    """
    num_vertices = len(template)
    if num_vertices <= target:
        return np.arange(num_vertices), faces.copy()
    part = weights.argmax(1)
    # Each body part keeps its share of the budget (a thin forearm as finely as the torso, relative
    # to its own size), its cell size searched by bisection.
    inverse = np.empty(num_vertices, dtype=np.int64)
    clusters = 0
    for p in np.unique(part):
        members = np.flatnonzero(part == p)
        points = template[members]
        budget = max(4, int(target * len(members) / num_vertices))

        def cluster(cell: float, points=points) -> np.ndarray:
            _, labels = np.unique(np.floor(points / cell).astype(np.int64), axis=0, return_inverse=True)
            return labels.reshape(-1)

        extent = max(float(np.ptp(points, axis=0).max()), 1e-9)
        lo, hi = 1e-6 * extent, 2.0 * extent  # hi meets any budget (one or a few cells)
        for _ in range(30):
            mid = 0.5 * (lo + hi)
            lo, hi = (lo, mid) if cluster(mid).max() + 1 <= budget else (mid, hi)
        labels = cluster(hi)
        inverse[members] = labels + clusters
        clusters += int(labels.max()) + 1
    count = inverse.max() + 1
    centre = np.zeros((weights.shape[1], 3))
    np.add.at(centre, part, template)
    centre /= np.maximum(np.bincount(part, minlength=weights.shape[1]), 1)[:, None]
    outward = np.linalg.norm(template - centre[part], axis=1)
    order = np.lexsort((-outward, inverse))  # by cluster, the farthest from the part's centre first
    first = np.ones(num_vertices, dtype=bool)
    first[1:] = inverse[order][1:] != inverse[order][:-1]
    representative = np.empty(count, dtype=np.int64)
    representative[inverse[order][first]] = order[first]
    mapped = representative[inverse[faces]]
    mapped = mapped[(mapped[:, 0] != mapped[:, 1]) & (mapped[:, 1] != mapped[:, 2]) & (mapped[:, 0] != mapped[:, 2])]
    # Faces that collapsed onto the same three vertices cancel in pairs of opposite orientation
    # (the two sides of a flattened sliver); what is left of each triple is kept once.
    low = mapped.argmin(1)
    rolled = np.stack([mapped[np.arange(len(mapped)), (low + k) % 3] for k in range(3)], axis=1)
    sign = np.where(rolled[:, 1] < rolled[:, 2], 1, -1)
    triples, group = np.unique(np.sort(mapped, axis=1), axis=0, return_inverse=True)  # sorted: sign +1
    net = np.bincount(group.reshape(-1), weights=sign, minlength=len(triples))
    _, first = np.unique(group.reshape(-1), return_index=True)
    order = np.argsort(first)  # keep the faces in their original order
    triples, net = triples[order], net[order]
    mapped = np.where((net < 0)[:, None], triples[:, [0, 2, 1]], triples)[net != 0]
    keep, new_faces = np.unique(mapped, return_inverse=True)
    return keep, new_faces.reshape(-1, 3).astype(np.int64)


def smpl_pose_from_axis_angle(pose: torch.Tensor) -> torch.Tensor:
    """SPIN-style SMPL parameters ``(B, 72)`` axis-angle (global orientation in the OpenCV camera
    frame, as SPIN's ``pose``) to maskpose's ``(B, 24, 6)``: the global orientation re-expressed
    for :data:`SMPL_TO_CAMERA` (``R = R_spin @ SMPL_TO_CAMERA``), the 23 body rotations as they are."""
    check_shape("pose", pose, (None, 72))
    rotations = roma.rotvec_to_rotmat(pose.reshape(-1, NUM_SMPL_ROTATIONS, 3))
    flip = SMPL_TO_CAMERA.to(rotations)
    rotations = torch.cat([(rotations[:, 0] @ flip)[:, None], rotations[:, 1:]], dim=1)
    return rotmat_to_sixd(rotations)


def smpl_axis_angle_from_pose(pose: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`smpl_pose_from_axis_angle`: ``(B, 24, 6)`` to ``(B, 72)``."""
    check_shape("pose", pose, (None, NUM_SMPL_ROTATIONS, 6))
    rotations = sixd_to_rotmat(pose)
    flip = SMPL_TO_CAMERA.to(rotations)
    rotations = torch.cat([(rotations[:, 0] @ flip)[:, None], rotations[:, 1:]], dim=1)
    return roma.rotmat_to_rotvec(rotations).reshape(-1, 72)


class SMPLBody(nn.Module):
    """Differentiable SMPL through ``smplx``; implements :class:`maskpose.body.interface.BodyModel`.

    Args:
        model_path: the SMPL model (see the module docstring); default ``$MASKPOSE_SMPL_MODEL``.
        gender: picks ``SMPL_{GENDER}.pkl`` when ``model_path`` is a folder.
        h36m_regressor: optional ``(17, V)`` H36M joint regressor (path to a ``.npy`` or an array).
        keypoint_vertices: vertex ids of ``nose``, ``leye``, ``reye``, ``lear``, ``rear``,
            ``LBigToe``, ``RBigToe``, ``LSmallToe``, ``RSmallToe``, ``LHeel``, ``RHeel`` (missing
            keys: ``NaN``); default ``smplx``'s SMPL ids for a 6,890-vertex model, none otherwise.
        head_top_vertex: vertex of the H36M head without a regressor; default the topmost one of
            the template.
        topology: ``"full"`` (default) or ``"decimated"`` (at most ``render_vertices`` vertices
            picked from the full mesh by :func:`decimate`, faster to render). Joints always come
            from the full mesh, so they do not depend on the topology.
        render_vertices: vertex budget of the decimated topology.
        device: where the model lives.

    Forward:
        pose: ``(B, 24, 6)`` 6D rotations: index 0 the global orientation (camera frame), then
            SMPL's 23 body joints (``SMPL_JOINTS[1:]``, SMPL's local rotations).
        betas: ``(B, 10)`` shape coefficients (0 = the template).
        translation: optional ``(B, 3)`` pelvis position in the camera frame (metres).

    The model's arrays are non-persistent buffers: they never enter a ``state_dict`` (so never a
    checkpoint). ``.double()`` gives a float64 model (outputs follow the buffers' dtype).
    """

    name = "smpl"
    pose_size = (NUM_SMPL_ROTATIONS, 6)
    shape_size = NUM_BETAS
    shape_name = "betas"

    def __init__(self, model_path: str | os.PathLike | None = None, gender: str = "neutral",
                 h36m_regressor=None, keypoint_vertices: Mapping[str, int] | None = None,
                 head_top_vertex: int | None = None, topology: str = "full",
                 render_vertices: int = RENDER_VERTICES, device: torch.device | str | None = None):
        super().__init__()
        require_smplx()
        if topology not in SMPL_TOPOLOGIES:
            raise ConfigError(f"SMPL topology must be one of {SMPL_TOPOLOGIES}, got {topology!r}")
        if render_vertices < 4:
            raise ConfigError(f"render_vertices must be at least 4, got {render_vertices}")
        self.topology = topology
        path = resolve_model_path(model_path, gender)
        data = load_model_data(path)
        self.model_path = path
        with contextlib.redirect_stdout(io.StringIO()):  # smplx prints a warning for 10-beta models
            layer = smplx.SMPLLayer(model_path=str(path), data_struct=Struct(**data), num_betas=NUM_BETAS)
        for key in ("v_template", "shapedirs", "posedirs", "J_regressor", "lbs_weights", "parents"):
            self.register_buffer(key, getattr(layer, key).clone(), persistent=False)
        self.register_buffer("full_faces", layer.faces_tensor.clone().long(), persistent=False)
        if topology == "full":
            keep, faces = np.arange(len(data["v_template"])), data["f"]
        else:
            keep, faces = decimate(data["v_template"], data["weights"], data["f"], render_vertices)
        self.register_buffer("render_index", torch.as_tensor(keep, dtype=torch.long), persistent=False)
        self.register_buffer("faces", torch.as_tensor(faces, dtype=torch.long), persistent=False)
        self.register_buffer("smpl_to_camera", SMPL_TO_CAMERA.clone(), persistent=False)
        num_vertices = int(self.v_template.shape[0])

        if h36m_regressor is not None:
            self.register_buffer("h36m_regressor", load_h36m_regressor(h36m_regressor, num_vertices), persistent=False)
        else:
            self.h36m_regressor = None
        if head_top_vertex is None:
            head_top_vertex = int(self.v_template[:, 1].argmax())
        if not 0 <= head_top_vertex < num_vertices:
            raise ConfigError(f"head_top_vertex {head_top_vertex} is outside the {num_vertices} vertices")
        self.head_top_vertex = int(head_top_vertex)
        self.register_buffer("h36m_joints", torch.tensor(
            [-1 if j == "head_top" else j for j in H36M_FROM_SMPL]), persistent=False)

        if keypoint_vertices is None:
            keypoint_vertices = SMPLX_VERTEX_IDS["smplh"] if num_vertices == SMPL_NUM_VERTICES else {}
            if not keypoint_vertices:
                log.warning("%s: %d vertices, not SMPL's %d: face and foot keypoints are NaN "
                            "(pass keypoint_vertices)", path, num_vertices, SMPL_NUM_VERTICES)
        # (source kind, index): joints gathered from the 24 SMPL joints, vertices from the mesh.
        coco_joint, coco_vertex, coco_slot_j, coco_slot_v = [], [], [], []
        for slot, source in enumerate(COCO_FROM_SMPL):
            if isinstance(source, int):
                coco_slot_j.append(slot)
                coco_joint.append(source)
            elif source in keypoint_vertices:
                vertex = int(keypoint_vertices[source])
                if not 0 <= vertex < num_vertices:
                    raise ConfigError(f"keypoint vertex {source}={vertex} is outside the {num_vertices} vertices")
                coco_slot_v.append(slot)
                coco_vertex.append(vertex)
        for key, value in (("coco_joint", coco_joint), ("coco_vertex", coco_vertex),
                           ("coco_slot_j", coco_slot_j), ("coco_slot_v", coco_slot_v)):
            self.register_buffer(key, torch.tensor(value, dtype=torch.long), persistent=False)
        self.to(device)

    @property
    def num_vertices(self) -> int:
        """Vertices of the output mesh (the topology's)."""
        return int(self.render_index.shape[0])

    def neutral_shape(self, batch: int, device=None) -> torch.Tensor:
        """``(batch, 10)`` betas of SMPL's template (all 0)."""
        return torch.zeros(batch, NUM_BETAS, device=device)

    def _check_inputs(self, pose: torch.Tensor, betas: torch.Tensor, translation) -> None:
        check_shape("pose", pose, (None, NUM_SMPL_ROTATIONS, 6))
        check_shape("betas", betas, (pose.shape[0], NUM_BETAS))
        if translation is not None:
            check_shape("translation", translation, (pose.shape[0], 3))
        if not all_finite(pose) or not all_finite(betas):
            raise MaskposeError("pose and betas must be finite (found NaN or Inf)")

    def skeleton(self, pose: torch.Tensor, betas: torch.Tensor, translation: torch.Tensor | None = None):
        """``(vertices (B, 6890, 3), smpl_joints (B, 24, 3))`` in the camera frame: the *full* mesh
        and SMPL's own 24 joints (what the H36M and COCO joints are taken from)."""
        self._check_inputs(pose, betas, translation)
        dtype = self.v_template.dtype
        rotations = sixd_to_rotmat(pose.to(dtype))  # (B, 24, 3, 3)
        # The global orientation is applied in the camera frame below, so SMPL's root stays at rest.
        local = torch.cat([torch.eye(3, dtype=dtype, device=pose.device).expand(pose.shape[0], 1, 3, 3),
                           rotations[:, 1:]], dim=1)
        vertices, joints = smpl_lbs(betas.to(dtype), local, self.v_template, self.shapedirs, self.posedirs,
                                    self.J_regressor, self.parents, self.lbs_weights, pose2rot=False)
        root = joints[:, :1]
        to_camera = rotations[:, 0] @ self.smpl_to_camera  # (B, 3, 3)
        offset = translation.to(dtype)[:, None] if translation is not None else 0.0

        def place(points: torch.Tensor) -> torch.Tensor:
            return (points - root) @ to_camera.transpose(1, 2) + offset

        return place(vertices), place(joints)

    def forward(self, pose: torch.Tensor, betas: torch.Tensor, translation: torch.Tensor | None = None) -> BodyOutput:
        vertices, smpl_joints = self.skeleton(pose, betas, translation)
        if self.h36m_regressor is not None:
            joints = torch.einsum("jv,bvc->bjc", self.h36m_regressor.to(vertices.dtype), vertices)
        else:
            joints = smpl_joints[:, self.h36m_joints.clamp(min=0)]
            slot = H36M_FROM_SMPL.index("head_top")
            joints = torch.cat([joints[:, :slot], vertices[:, self.head_top_vertex][:, None], joints[:, slot + 1:]], 1)
        coco = vertices.new_full((vertices.shape[0], len(COCO_WITH_FEET), 3), float("nan"))
        coco = coco.index_copy(1, self.coco_slot_j, smpl_joints[:, self.coco_joint])
        coco = coco.index_copy(1, self.coco_slot_v, vertices[:, self.coco_vertex])
        if self.topology != "full":
            vertices = vertices[:, self.render_index]
        return BodyOutput(vertices, self.faces, joints, coco)

    def posed_vertices(self, pose: torch.Tensor, betas: torch.Tensor,
                       translation: torch.Tensor | None = None) -> torch.Tensor:
        """``forward(...).vertices`` (SMPL's joints come with its vertices, so nothing is skipped)."""
        vertices, _ = self.skeleton(pose, betas, translation)
        return vertices[:, self.render_index] if self.topology != "full" else vertices


__all__ = [
    "COCO_FROM_SMPL", "H36M_FROM_SMPL", "NUM_BETAS", "NUM_SMPL_ROTATIONS", "RENDER_VERTICES", "SMPL_JOINTS",
    "SMPL_MODEL_ENV", "SMPL_TOPOLOGIES", "SMPL_TO_CAMERA", "SMPLBody", "decimate", "load_h36m_regressor", "load_model_data", "require_smplx",
    "resolve_model_path", "smpl_axis_angle_from_pose", "smpl_pose_from_axis_angle",
]

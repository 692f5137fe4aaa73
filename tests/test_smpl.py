"""The body-model interface, the SMPL body (on a synthetic SMPL-format model, never the real one)
and the SMPL parameters of SPIN's .npz files.

Tests that need ``smplx`` skip without it (``pip install maskpose[smpl]``).
"""

from __future__ import annotations

import pickle

import cv2
import numpy as np
import pytest
import roma
import torch

import maskpose.body.smpl_body as smpl_body
from maskpose.body.anny_body import AnnyBody
from maskpose.body.interface import BODY_MODELS, BodyModel, BodyOutput
from maskpose.body.registry import make_body
from maskpose.body.rotations import identity_sixd, rotvec_to_sixd
from maskpose.body.smpl_body import (
    COCO_FROM_SMPL,
    H36M_FROM_SMPL,
    SMPL_MODEL_ENV,
    SMPLBody,
    smpl_axis_angle_from_pose,
    smpl_pose_from_axis_angle,
)
from maskpose.conventions import H36M_JOINTS
from maskpose.data.adapters import import_npz
from maskpose.data.dataset import MaskposeDataset, read_meta
from maskpose.errors import ConfigError, MaskposeError
from maskpose.render.camera import fit_translation, intrinsics
from maskpose.render.silhouette import SilhouetteRenderer
from maskpose.render.zbuffer import silhouette_mask
from smpl_model import write_smpl_model


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    """A 192-vertex synthetic SMPL model and its keypoint vertex ids."""
    pytest.importorskip("smplx")
    path = tmp_path_factory.mktemp("smpl") / "SMPL_NEUTRAL.pkl"
    return path, write_smpl_model(path, subdivisions=1)


@pytest.fixture(scope="module")
def fine_model_file(tmp_path_factory):
    """A 1,344-vertex synthetic model: more than the decimated topology's budget."""
    pytest.importorskip("smplx")
    path = tmp_path_factory.mktemp("smpl") / "fine.pkl"
    return path, write_smpl_model(path, subdivisions=3)


@pytest.fixture(scope="module")
def body(model_file):
    path, ids = model_file
    return SMPLBody(path, keypoint_vertices=ids, topology="full")


def _random_pose(batch: int, seed: int = 0, scale: float = 0.4) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return rotvec_to_sixd(scale * torch.randn(batch, 24, 3, generator=generator))


# ------------------------------------------------------------------------------ interface, registry
@pytest.mark.parametrize("name", BODY_MODELS)
def test_both_bodies_implement_the_interface(name, request):
    assert BODY_MODELS == ("anny", "smpl")
    model = make_body("anny") if name == "anny" else request.getfixturevalue("body")
    assert isinstance(model, AnnyBody if name == "anny" else SMPLBody) and isinstance(model, BodyModel)
    expected = {"anny": ("anny", (18, 6), 6, "phenotypes"), "smpl": ("smpl", (24, 6), 10, "betas")}[name]
    assert (model.name, model.pose_size, model.shape_size, model.shape_name) == expected
    out = model(identity_sixd(2, *model.pose_size[:1]), model.neutral_shape(2))
    assert isinstance(out, BodyOutput)
    assert out.vertices.shape == (2, model.num_vertices, 3) and out.faces is model.faces
    assert out.joints.shape == (2, 17, 3) and out.coco.shape == (2, 23, 3)


def test_registry_refuses_unknown_names_and_arguments():
    with pytest.raises(ConfigError, match="unknown body model 'smplx'.*anny, smpl"):
        make_body("smplx")
    with pytest.raises(ConfigError, match="'anny'.*colour"):
        make_body("anny", colour="red")


def test_smpl_needs_the_extra_and_a_model_file(monkeypatch, tmp_path):
    monkeypatch.setattr(smpl_body, "smplx", None)
    with pytest.raises(ConfigError, match=r"needs the smpl extra: pip install maskpose\[smpl\]"):
        make_body("smpl", model_path=tmp_path / "SMPL_NEUTRAL.pkl")
    monkeypatch.undo()
    pytest.importorskip("smplx")
    monkeypatch.delenv(SMPL_MODEL_ENV, raising=False)
    with pytest.raises(ConfigError, match=f"needs a model file.*{SMPL_MODEL_ENV}"):
        SMPLBody()
    monkeypatch.setenv(SMPL_MODEL_ENV, str(tmp_path))
    with pytest.raises(ConfigError, match=r"SMPL_NEUTRAL\.pkl: SMPL model file does not exist"):
        SMPLBody()


def test_bad_model_files_are_refused_by_name(model_file, tmp_path):
    path, _ = model_file
    with open(path, "rb") as f:
        data = pickle.load(f)
    (tmp_path / "junk.pkl").write_bytes(b"not a pickle")
    with pytest.raises(ConfigError, match=r"junk\.pkl: cannot read the SMPL model"):
        SMPLBody(tmp_path / "junk.pkl")
    with open(tmp_path / "nokey.pkl", "wb") as f:
        pickle.dump({k: v for k, v in data.items() if k != "weights"}, f)
    with pytest.raises(ConfigError, match=r"nokey\.pkl: not an SMPL model: missing key\(s\) \['weights'\]"):
        SMPLBody(tmp_path / "nokey.pkl")
    with open(tmp_path / "shape.pkl", "wb") as f:
        pickle.dump(dict(data, posedirs=data["posedirs"][..., :100]), f)
    with pytest.raises(ConfigError, match=r"shape\.pkl: SMPL key 'posedirs' has shape \(192, 3, 100\)"):
        SMPLBody(tmp_path / "shape.pkl")
    np.savez(tmp_path / "model.npz", **data)  # the same arrays as .npz load too
    out = SMPLBody(tmp_path / "model.npz", topology="full")(identity_sixd(1, 24), torch.zeros(1, 10))
    assert out.vertices.shape == (1, 192, 3)
    with pytest.raises(ConfigError, match="topology"):
        SMPLBody(path, topology="coarse")


# ---------------------------------------------------------------------------------- SMPL forward
def test_forward_shapes_inputs_and_no_model_data_in_state_dict(body, model_file):
    out = body(_random_pose(3), torch.randn(3, 10), torch.tensor([[0.0, 0.0, 3.0]]).repeat(3, 1))
    assert out.vertices.shape == (3, 192, 3) and out.faces.shape == (288, 3) and out.faces.dtype == torch.int64
    assert out.vertices.dtype == out.joints.dtype == out.coco.dtype == torch.float32
    assert body.state_dict() == {} and list(body.parameters()) == []  # SMPL's arrays never reach a checkpoint
    with pytest.raises(MaskposeError, match=r"pose must have shape \(\*, 24, 6\)"):
        body(identity_sixd(1, 18), torch.zeros(1, 10))
    with pytest.raises(MaskposeError, match=r"betas must have shape \(1, 10\)"):
        body(identity_sixd(1, 24), torch.zeros(1, 6))
    with pytest.raises(MaskposeError, match="finite"):
        body(identity_sixd(1, 24), torch.full((1, 10), float("nan")))
    # Without keypoint vertices (not SMPL's 6,890-vertex topology) face and foot points are NaN.
    plain = SMPLBody(model_file[0], topology="full")(identity_sixd(1, 24), torch.zeros(1, 10)).coco[0]
    by_joint = torch.tensor([isinstance(s, int) for s in COCO_FROM_SMPL])
    assert torch.isfinite(plain[by_joint]).all() and torch.isnan(plain[~by_joint]).all()


def test_identity_pose_is_upright_facing_the_camera_with_the_pelvis_at_translation(body):
    translation = torch.tensor([[0.2, -0.1, 3.0]])
    out = body(identity_sixd(1, 24), torch.zeros(1, 10), translation)
    joints, coco = out.joints[0], out.coco[0]
    name = {n: i for i, n in enumerate(H36M_JOINTS)}
    torch.testing.assert_close(joints[0], translation[0])  # the pelvis at translation
    head, pelvis = joints[name["head"]], joints[name["pelvis"]]
    assert head[1] < pelvis[1] - 0.5  # up is -y
    assert joints[name["l_ankle"], 1] > pelvis[1] + 0.5
    assert joints[name["l_shoulder"], 0] > joints[name["r_shoulder"], 0]  # the subject's left on +x
    assert coco[0, 2] < joints[name["neck"], 2] - 0.05  # the nose toward the camera (-z)
    # A half turn about the vertical turns the body away.
    turn = torch.cat([rotvec_to_sixd(torch.tensor([[0.0, np.pi, 0.0]]))[:, None], identity_sixd(1, 23)], dim=1)
    away = body(turn, torch.zeros(1, 10), translation)
    assert away.coco[0, 0, 2] > away.joints[0, name["neck"], 2] + 0.05
    assert away.joints[0, name["l_shoulder"], 0] < away.joints[0, name["r_shoulder"], 0]


def test_matches_smplx_with_spin_parameters_and_the_documented_joint_map(body, model_file):
    """SMPLBody(smpl_pose_from_axis_angle(SPIN pose)) is smplx's own forward (axis-angle, about the
    root) moved to put the pelvis at translation; H36M and COCO follow the documented tables."""
    smplx = pytest.importorskip("smplx")  # the reference implementation
    path, ids = model_file
    reference = smplx.SMPL(model_path=str(path), vertex_ids=ids, use_hands=False)
    axis_angle = 0.5 * torch.randn(2, 72, generator=torch.Generator().manual_seed(1))
    betas = torch.randn(2, 10, generator=torch.Generator().manual_seed(2))
    translation = torch.tensor([[0.1, 0.2, 4.0], [-0.3, 0.0, 5.0]])
    ref = reference(global_orient=axis_angle[:, :3], body_pose=axis_angle[:, 3:], betas=betas)
    ref_vertices = ref.vertices - ref.joints[:, :1] + translation[:, None]
    ref_joints = ref.joints[:, :24] - ref.joints[:, :1] + translation[:, None]

    pose = smpl_pose_from_axis_angle(axis_angle)
    out = body(pose, betas, translation)
    vertices, smpl_joints = body.skeleton(pose, betas, translation)
    torch.testing.assert_close(out.vertices, ref_vertices, atol=1e-5, rtol=0)
    torch.testing.assert_close(smpl_joints, ref_joints, atol=1e-5, rtol=0)
    for i, source in enumerate(H36M_FROM_SMPL):
        expected = vertices[:, body.head_top_vertex] if source == "head_top" else smpl_joints[:, source]
        torch.testing.assert_close(out.joints[:, i], expected)
    for i, source in enumerate(COCO_FROM_SMPL):
        expected = vertices[:, ids[source]] if isinstance(source, str) else smpl_joints[:, source]
        torch.testing.assert_close(out.coco[:, i], expected)
    assert body.head_top_vertex == int(body.v_template[:, 1].argmax())
    torch.testing.assert_close(smpl_axis_angle_from_pose(pose), axis_angle, atol=1e-5, rtol=0)


def test_spin_global_orientation_maps_smpl_up_to_camera_up():
    """SPIN's identity orientation keeps SMPL's Y-up frame (upside down in OpenCV); maskpose's
    identity is upright: the conversion is the half turn about x."""
    converted = roma.special_gramschmidt(smpl_pose_from_axis_angle(torch.zeros(1, 72)).reshape(1, 24, 3, 2))
    torch.testing.assert_close(converted[0, 0], smpl_body.SMPL_TO_CAMERA)
    torch.testing.assert_close(converted[0, 1:], torch.eye(3).expand(23, 3, 3))


def test_gradients_reach_the_vertices_from_pose_and_betas(model_file):
    path, ids = model_file
    body = SMPLBody(path, keypoint_vertices=ids, topology="full").double()
    pose = _random_pose(1, seed=3).double().requires_grad_(True)
    betas = (0.5 * torch.randn(1, 10, generator=torch.Generator().manual_seed(4))).double().requires_grad_(True)
    translation = torch.tensor([[0.0, 0.0, 3.0]], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda p, b: body(p, b, translation).vertices, (pose, betas),
                                    eps=1e-6, atol=1e-5, fast_mode=True)
    out = body(pose, betas, translation)
    grad_pose, grad_betas = torch.autograd.grad(out.vertices.square().sum(), (pose, betas))
    assert (grad_pose.abs().sum(-1) > 0).all() and (grad_betas.abs() > 0).all()  # every rotation, every beta


def test_h36m_joints_from_a_supplied_regressor(model_file, tmp_path):
    path, ids = model_file
    rng = np.random.default_rng(5)
    regressor = rng.uniform(0, 1, (17, 192)) * (rng.uniform(0, 1, (17, 192)) < 0.1)
    regressor /= regressor.sum(1, keepdims=True)
    np.save(tmp_path / "J_regressor_h36m.npy", regressor)
    pose, betas, translation = _random_pose(2, seed=6), torch.randn(2, 10), torch.tensor([[0.0, 0.0, 3.0]] * 2)
    full = SMPLBody(path, h36m_regressor=tmp_path / "J_regressor_h36m.npy", topology="full")
    out = full(pose, betas, translation)
    expected = torch.einsum("jv,bvc->bjc", torch.tensor(regressor, dtype=torch.float32), out.vertices)
    torch.testing.assert_close(out.joints, expected)
    coarse = SMPLBody(path, h36m_regressor=regressor, topology="decimated", render_vertices=100)
    assert coarse.num_vertices <= 100
    torch.testing.assert_close(coarse(pose, betas, translation).joints, expected)  # from the full mesh
    with pytest.raises(ConfigError, match=r"shape \(17, 192\), got \(17, 100\)"):
        SMPLBody(path, h36m_regressor=regressor[:, :100])


# ---------------------------------------------------------------------------- rendering topology
def test_decimated_topology_renders_the_full_silhouette(fine_model_file):
    path, ids = fine_model_file
    full = SMPLBody(path, keypoint_vertices=ids, topology="full")
    coarse = SMPLBody(path, keypoint_vertices=ids, topology="decimated", render_vertices=800)
    assert full.num_vertices == 1344 and coarse.num_vertices <= 800
    pose, betas = _random_pose(4, seed=7, scale=0.3), 0.5 * torch.randn(4, 10)
    pose[:, 0] = identity_sixd(4)
    res = 64
    K = intrinsics(2.0 * res, res, batch=4)
    translation = fit_translation(full(pose, betas).vertices, K, res, fill=0.85)
    dense, sparse = full(pose, betas, translation), coarse(pose, betas, translation)
    torch.testing.assert_close(sparse.joints, dense.joints)  # joints do not depend on the topology
    torch.testing.assert_close(sparse.vertices, dense.vertices[:, coarse.render_index])
    exact = silhouette_mask(dense.vertices, dense.faces, K, res)[:, 0] > 0
    assert exact.sum((1, 2)).min() > 200
    # The differentiable silhouette of either topology against the exact mask of the full mesh.
    for mesh in (dense, sparse):
        soft = SilhouetteRenderer(mesh.faces, res)(mesh.vertices.detach().requires_grad_(True), K)
        drawn = soft[:, 0] >= 0.5
        iou = (drawn & exact).sum((1, 2)) / (drawn | exact).sum((1, 2))
        assert iou.min() > 0.95, f"IoU {iou.tolist()} with {mesh.vertices.shape[1]} vertices"
    # The decimated mesh is closed: every edge is shared by an even number of faces.
    edges = torch.sort(coarse.faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), dim=1).values
    assert (torch.unique(edges, dim=0, return_counts=True)[1] % 2 == 0).all()


# ------------------------------------------------------------------------------- SPIN .npz import
def test_npz_import_keeps_smpl_parameters(tmp_path):
    root = tmp_path / "images"
    root.mkdir()
    n = 3
    names = []
    for i in range(n):
        image = np.zeros((80, 100, 3), np.uint8)
        image[30:70, 30:70] = (200, 100, 50)
        cv2.imwrite(str(root / f"img_{i}.png"), image)
        names.append(f"img_{i}.png")
    rng = np.random.default_rng(0)
    pose, shape = rng.normal(size=(n, 72)), rng.normal(size=(n, 10))
    base = dict(imgname=np.array(names), center=np.full((n, 2), 50.0), scale=np.full(n, 0.3))
    np.savez(tmp_path / "spin.npz", **base, pose=pose, shape=shape, has_smpl=np.array([1.0, 0.0, 1.0]))
    out = import_npz(tmp_path / "spin.npz", root, tmp_path / "ds", res=32)
    assert set(read_meta(out)["fields"]) == {"image", "smpl_pose", "smpl_betas", "has_smpl"}
    stored = MaskposeDataset(out)
    np.testing.assert_allclose(np.load(out / "smpl_pose.npy")[[0, 2]], pose[[0, 2]], rtol=1e-6)
    np.testing.assert_allclose(np.load(out / "smpl_betas.npy")[[0, 2]], shape[[0, 2]], rtol=1e-6)
    assert np.isnan(np.load(out / "smpl_pose.npy")[1]).all()  # no SMPL fit: NaN, never zeros
    assert np.isnan(np.load(out / "smpl_betas.npy")[1]).all()
    assert np.load(out / "has_smpl.npy").tolist() == [1, 0, 1]
    assert stored[0]["smpl_pose"].shape == (72,) and stored[2]["has_smpl"] == 1.0

    # `betas` for `shape`, no has_smpl: the field stays absent; without SMPL keys none are written.
    np.savez(tmp_path / "betas.npz", **base, pose=pose.reshape(n, 24, 3), betas=shape)
    fields = read_meta(import_npz(tmp_path / "betas.npz", root, tmp_path / "ds2", res=32))["fields"]
    assert set(fields) == {"image", "smpl_pose", "smpl_betas"}
    np.savez(tmp_path / "plain.npz", **base)
    assert set(read_meta(import_npz(tmp_path / "plain.npz", root, tmp_path / "ds3", res=32))["fields"]) == {"image"}
    np.savez(tmp_path / "bad.npz", **base, pose=pose[:, :69])
    with pytest.raises(MaskposeError, match=r"bad\.npz: key 'pose' has shape \(3, 69\)"):
        import_npz(tmp_path / "bad.npz", root, tmp_path / "ds4", res=32)
    np.savez(tmp_path / "inf.npz", **base, betas=np.full((n, 10), np.inf))
    with pytest.raises(MaskposeError, match=r"inf\.npz: key 'betas'.*infinite"):
        import_npz(tmp_path / "inf.npz", root, tmp_path / "ds5", res=32)

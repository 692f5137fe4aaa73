"""The Anny body model wrapper, rotations, the pose sampler and the pose prior."""

import math

import pytest
import roma
import torch

from maskpose.body.anny_body import ANNY_TO_CAMERA, AnnyBody, load_anny
from maskpose.body.limits import (
    ANNY_BONE_OF_JOINT,
    ARTICULATED_JOINTS,
    H36M_FROM_ANNY,
    HingeLimit,
    limit_of,
)
from maskpose.body.rotations import (
    identity_sixd,
    rotmat_to_sixd,
    rotvec_to_sixd,
    sixd_to_rotmat,
    sixd_to_rotvec,
)
from maskpose.body.sampler import (
    PoseSampler,
    _limit_tables,
    hinge_axis,
    joint_angles,
    pose_prior_loss,
)
from maskpose.conventions import H36M_JOINTS
from maskpose.errors import MaskposeError


@pytest.fixture(scope="module")
def full_body():
    return AnnyBody("anny")


def test_h36m_joints_are_anny_bone_heads(body):
    pose, phenotypes = PoseSampler(seed=3).sample(4)
    translation = torch.tensor([[0.1, -0.2, 3.0]]).repeat(4, 1)
    out = body(pose, phenotypes, translation)

    # Reference: Anny's own forward with the same local-ref deltas, then the camera mapping.
    anny = load_anny("notoes_collapse10pc")
    index = {name: i for i, name in enumerate(anny.bone_labels)}
    rotations = sixd_to_rotmat(pose).double()
    delta = torch.eye(4, dtype=torch.float64).repeat(4, len(anny.bone_labels), 1, 1)
    for k, joint in enumerate(ARTICULATED_JOINTS[1:], start=1):
        delta[:, index[ANNY_BONE_OF_JOINT[joint]], :3, :3] = rotations[:, k]
    ref = anny(pose_parameters=delta, phenotype_kwargs=phenotypes.double())
    to_camera = rotations[:, 0] @ ANNY_TO_CAMERA.double()
    for j, bone in enumerate(H36M_FROM_ANNY):
        if bone == "head_top":
            continue
        expected = ref["bone_poses"][:, index[bone], :3, 3, None]
        expected = (to_camera @ expected)[..., 0] + translation.double()
        torch.testing.assert_close(out.joints[:, j].double(), expected, atol=1e-5, rtol=0)


def test_posed_vertices_are_the_forward_vertices(body):
    # The other people of a synthetic frame are posed without joints and surface points: the
    # same vertices, to the bit, with and without a translation.
    pose, phenotypes = PoseSampler(seed=5).sample(6)
    translation = torch.tensor([[0.3, 0.1, 4.0]]).repeat(6, 1)
    for shift in (None, translation):
        expected = body(pose, phenotypes, shift).vertices
        assert torch.equal(body.posed_vertices(pose, phenotypes, shift), expected)
    with pytest.raises(MaskposeError, match="phenotypes must lie in"):
        body.posed_vertices(pose, phenotypes + 2.0)


def test_topologies_give_identical_joints(body, full_body):
    pose, phenotypes = PoseSampler(seed=5).sample(3)
    small, full = body(pose, phenotypes), full_body(pose, phenotypes)
    assert small.vertices.shape[1] == 1229 and full.vertices.shape[1] == 13718
    torch.testing.assert_close(small.joints, full.joints, atol=1e-5, rtol=0)
    torch.testing.assert_close(small.coco, full.coco, atol=1e-5, rtol=0)


def test_head_top_is_topmost_vertex_at_rest(full_body):
    out = full_body(identity_sixd(1, 18), torch.full((1, 6), 0.5))
    top = out.vertices[0, out.vertices[0, :, 1].argmin()]  # camera y points down
    torch.testing.assert_close(out.joints[0, H36M_JOINTS.index("head")], top, atol=1e-5, rtol=0)


def test_camera_convention_upright_facing_camera(body):
    out = body(identity_sixd(1, 18), torch.full((1, 6), 0.5), torch.tensor([[0.0, 0.0, 3.0]]))
    j = {name: out.joints[0, i] for i, name in enumerate(H36M_JOINTS)}
    assert j["head"][1] < j["thorax"][1] < j["pelvis"][1] < j["l_ankle"][1]  # y down
    assert j["l_shoulder"][0] > j["r_shoulder"][0]  # facing the camera: the subject's left is +x
    nose = out.coco[0, 0]
    assert nose[2] < j["head"][2]  # the nose points toward the camera (-z)
    torch.testing.assert_close(j["pelvis"], torch.tensor([0.0, 0.0, 3.0]))


def test_gradients_reach_every_rotation_and_phenotype(body):
    pose, phenotypes = PoseSampler(seed=7).sample(2)
    pose.requires_grad_(True)
    phenotypes = phenotypes.clone().requires_grad_(True)
    out = body(pose, phenotypes)
    (out.vertices.square().sum()).backward()
    assert torch.isfinite(pose.grad).all() and torch.isfinite(phenotypes.grad).all()
    assert (pose.grad.abs().sum((0, 2)) > 0).all(), "a rotation gets no gradient from the vertices"
    assert (phenotypes.grad.abs().sum(0) > 0).all()

    pose.grad = None
    phenotypes.grad = None
    out = body(pose, phenotypes)
    (out.joints.square().sum() + out.coco.square().sum()).backward()
    per_joint = pose.grad.abs().sum((0, 2))
    # No joint or keypoint lies beyond the wrists, so only their rotations get no joint gradient.
    wrists = {ARTICULATED_JOINTS.index("l_wrist"), ARTICULATED_JOINTS.index("r_wrist")}
    for k, name in enumerate(ARTICULATED_JOINTS):
        if k not in wrists:
            assert per_joint[k] > 0, f"{name} gets no gradient from the joints"
    assert (phenotypes.grad.abs().sum(0) > 0).all()


def test_sixd_round_trip():
    rotvec = torch.randn(100, 3, generator=torch.Generator().manual_seed(0))
    rotmat = roma.rotvec_to_rotmat(rotvec)
    torch.testing.assert_close(sixd_to_rotmat(rotmat_to_sixd(rotmat)), rotmat, atol=1e-5, rtol=0)
    torch.testing.assert_close(
        roma.rotvec_to_rotmat(sixd_to_rotvec(rotvec_to_sixd(rotvec))), rotmat, atol=1e-5, rtol=0
    )
    # Any 6D vector maps to a proper rotation.
    r = sixd_to_rotmat(torch.randn(50, 6))
    torch.testing.assert_close(r @ r.transpose(1, 2), torch.eye(3).expand(50, 3, 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.linalg.det(r), torch.ones(50), atol=1e-5, rtol=0)


def test_sampler_stays_within_every_limit():
    pose, phenotypes = PoseSampler(seed=11).sample(10_000)
    angles = joint_angles(pose)
    _, ball_ranges, _, _, hinge_ranges = _limit_tables()
    eps = 1e-4
    assert (angles["euler"] >= ball_ranges[..., 0] - eps).all()
    assert (angles["euler"] <= ball_ranges[..., 1] + eps).all()
    assert (angles["flexion"] >= hinge_ranges[:, 0] - eps).all()
    assert (angles["flexion"] <= hinge_ranges[:, 1] + eps).all()
    assert angles["off_axis"].max() < 1e-3
    assert pose_prior_loss(pose, reduction="none").max() < 1e-8
    # The ranges are used, not just respected: samples reach near both ends of the knee range.
    knee = angles["flexion"][:, 2]
    assert knee.min() < math.radians(5) and knee.max() > math.radians(140)
    assert phenotypes.min() >= 0 and phenotypes.max() <= 1
    assert pose.shape == (10_000, 18, 6)


def test_sampler_is_seeded():
    a, b, c = PoseSampler(seed=1).sample(5), PoseSampler(seed=1).sample(5), PoseSampler(seed=2).sample(5)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_prior_penalises_hyperextension_and_pulls_back():
    knee = ARTICULATED_JOINTS.index("l_knee")
    assert isinstance(limit_of("l_knee"), HingeLimit)
    pose = identity_sixd(1, 18)
    pose[0, knee] = rotvec_to_sixd(hinge_axis("l_knee") * math.radians(-30))  # bent the wrong way
    pose.requires_grad_(True)
    loss = pose_prior_loss(pose)
    assert loss > 0.2  # (30 deg)^2 in rad^2 ~ 0.27
    loss.backward()
    stepped = (pose - 0.1 * pose.grad).detach()
    assert pose_prior_loss(stepped) < loss.detach()
    assert pose_prior_loss(identity_sixd(1, 18)) == 0


def test_elbow_flexion_brings_the_hand_up(body):
    pose = identity_sixd(1, 18)
    pose[0, ARTICULATED_JOINTS.index("l_elbow")] = rotvec_to_sixd(hinge_axis("l_elbow") * 1.2)
    rest = body(identity_sixd(1, 18), torch.full((1, 6), 0.5))
    bent = body(pose, torch.full((1, 6), 0.5))
    wrist, elbow = H36M_JOINTS.index("l_wrist"), H36M_JOINTS.index("l_elbow")
    assert bent.joints[0, wrist, 1] < rest.joints[0, wrist, 1] - 0.1  # the hand rises (y down)
    torch.testing.assert_close(bent.joints[0, elbow], rest.joints[0, elbow])
    # The forearm keeps its length.
    length = lambda o: (o.joints[0, wrist] - o.joints[0, elbow]).norm()  # noqa: E731
    torch.testing.assert_close(length(bent), length(rest), atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "pose_shape, pheno, message",
    [
        ((2, 17, 6), torch.full((2, 6), 0.5), "pose must have shape"),
        ((2, 18, 6), torch.full((2, 5), 0.5), "phenotypes must have shape"),
        ((2, 18, 6), torch.full((2, 6), 1.5), "phenotypes must lie in"),
        ((2, 18, 6), torch.full((2, 6), float("nan")), "finite"),
    ],
)
def test_bad_input_names_the_problem(body, pose_shape, pheno, message):
    pose = torch.randn(pose_shape)
    with pytest.raises(MaskposeError, match=message):
        body(pose, pheno)


def test_sampler_rejects_bad_ranges():
    with pytest.raises(MaskposeError, match="phenotype range"):
        PoseSampler(phenotype_range={"age": (0.5, 1.2)})
    with pytest.raises(MaskposeError, match="unknown phenotype"):
        PoseSampler(phenotype_range={"shoe_size": (0.1, 0.2)})


def test_cached_surface_data_equals_a_fresh_computation(full_body):
    from maskpose.body.anny_body import (
        _surface_point_data,
        surface_cache_path,
        surface_point_data,
    )

    cached = surface_point_data()
    assert surface_cache_path().exists()
    fresh = _surface_point_data(load_anny("anny"))
    assert cached.keys() == fresh.keys()
    for key in fresh:
        assert torch.equal(cached[key], fresh[key]), key


def test_one_per_seed_sampler_matches_one_sampler_per_seed():
    # The realistic domain's other people: one batch whose i-th sample comes from seed i's own
    # generator, bit for bit what a sampler per seed gives; the count must match the seeds.
    seeds = [3, 11, 3, 40]
    pose, phenotypes = PoseSampler.one_per_seed(seeds, spread=0.5).sample(len(seeds))
    singles = [PoseSampler(seed=s, spread=0.5).sample(1) for s in seeds]
    assert torch.equal(pose, torch.cat([p for p, _ in singles]))
    assert torch.equal(phenotypes, torch.cat([f for _, f in singles]))
    with pytest.raises(MaskposeError, match="one sample per seed"):
        PoseSampler.one_per_seed(seeds).sample(2)

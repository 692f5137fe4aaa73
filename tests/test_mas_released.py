"""The released Mask-as-Supervision code's pieces: its skeleton mask, one-sided skeleton term,
geodesic weights and symmetry losses (docs/design.md §1.2)."""

import math

import numpy as np
import pytest
import torch

from maskpose.conventions import H36M_ARM_BONES, H36M_BONES, H36M_FLIP, H36M_JOINTS
from maskpose.errors import MaskposeError
from maskpose.masks import (
    H36M_SYMMETRIC_BONE_PAIRS,
    RELEASED_ARM_WIDTH,
    RELEASED_BONE_PAIRS,
    RELEASED_EXTENSION_BONES,
    RELEASED_GEODESIC_PARAMS,
    RELEASED_SIGMA_64,
    SKELETON_THRESHOLD,
    BoneSymmetryLoss,
    CentreSymmetryLoss,
    GeodesicWeights,
    JointMaskSupervision,
    MaskSupervisionLoss,
    SkeletonMask,
    bone_symmetry_loss,
    centre_symmetry_loss,
    geodesic_weights,
    geodesic_weights_torch,
    mask_supervision_loss,
    released_sigma,
    released_style,
    skeleton_mask,
)
from maskpose.typing import GEODESIC_MODES, SKELETON_TERMS

# --- skeleton mask -----------------------------------------------------------------------------


def test_released_lines_and_indices():
    lines, widths = released_style()
    # The released code's cal_links extension: parents [7,7,7,7,0,0,1,4], children [1,4,11,14,2,5,14,11].
    assert RELEASED_EXTENSION_BONES == ((7, 1), (7, 4), (7, 11), (7, 14), (0, 2), (0, 5), (1, 14), (4, 11))
    names = [(H36M_JOINTS[a], H36M_JOINTS[b]) for a, b in RELEASED_EXTENSION_BONES]
    assert names == [("spine", "r_hip"), ("spine", "l_hip"), ("spine", "l_shoulder"), ("spine", "r_shoulder"),
                     ("pelvis", "r_knee"), ("pelvis", "l_knee"), ("r_hip", "r_shoulder"), ("l_hip", "l_shoulder")]
    # 16 H36M-17 bones (the released 17 less its thorax-neck split) + 8 extension lines.
    assert lines == H36M_BONES + RELEASED_EXTENSION_BONES and len(lines) == 24
    assert widths.shape == (24,)
    # The released code doubles the exponent of lines 11, 12, 14, 15: upper and lower arms.
    assert H36M_ARM_BONES == (11, 12, 14, 15)
    assert [H36M_BONES[i] for i in H36M_ARM_BONES] == [(11, 12), (12, 13), (14, 15), (15, 16)]
    thin = torch.isclose(widths, torch.tensor(1 / math.sqrt(2)))
    assert thin.nonzero().flatten().tolist() == [11, 12, 14, 15]
    assert (widths[~thin] == 1.0).all()
    assert RELEASED_ARM_WIDTH == pytest.approx(1 / math.sqrt(2), abs=1e-15)
    # The extension list is a parameter.
    custom, w = released_style(extra_bones=[(0, 10)], arm_width=0.5)
    assert custom[-1] == (0, 10) and len(custom) == 17 and float(w[11]) == 0.5


def test_released_sigma():
    # exp(-d²/0.003) in [-1, 1] coordinates on the 256 px mask: σ = √0.003 · 255 / 2 px.
    assert released_sigma(256) == pytest.approx(math.sqrt(0.003) * 127.5)
    assert RELEASED_SIGMA_64 == pytest.approx(released_sigma(256) / 4) and 1.7 < RELEASED_SIGMA_64 < 1.8
    # The normalised width reproduces the released exponent at the mask size.
    d = 0.04  # in [-1, 1] units
    px = d * (64 - 1) / 2
    assert math.exp(-(px / released_sigma(64)) ** 2) == pytest.approx(math.exp(-d * d / 0.003))
    with pytest.raises(MaskposeError, match="size"):
        released_sigma(1)


def _arm_and_leg_joints() -> torch.Tensor:
    """All joints at (0, 0) but a horizontal right forearm at y = 32 and a horizontal left shin at y = 10."""
    joints = torch.zeros(1, 17, 2, dtype=torch.float64)
    joints[0, 15] = torch.tensor([20.0, 32.0])  # r_elbow
    joints[0, 16] = torch.tensor([44.0, 32.0])  # r_wrist
    joints[0, 5] = torch.tensor([20.0, 10.0])  # l_knee
    joints[0, 6] = torch.tensor([44.0, 10.0])  # l_ankle
    return joints


def test_released_arm_width_is_sigma_over_sqrt2():
    sigma = 3.0 * math.sqrt(2)  # so that σ/√2 = 3 px lands on a pixel centre
    joints = _arm_and_leg_joints()
    released = SkeletonMask((64, 64), sigma=sigma, style="released")(joints)[0, 0]
    paper = SkeletonMask((64, 64), sigma=sigma, style="paper")(joints)[0, 0]
    # A pixel σ/√2 = 3 px below the middle of the forearm: exp(-1) in the released style (to the
    # float32 precision of the module's width buffer) ...
    assert float(released[35, 32]) == pytest.approx(math.exp(-1), abs=1e-7)
    # ... exp(-1/2) with the paper's width (its sum adds < 1e-3 of the upper arm, 12 px away).
    assert float(paper[35, 32]) == pytest.approx(math.exp(-0.5), abs=1e-3)
    # Leg lines keep the full σ: a pixel 4 px below the shin's middle gets exp(-(4/σ)²).
    d = 4.0  # pixel (row 14, col 32)
    assert float(released[14, 32]) == pytest.approx(math.exp(-(d / sigma) ** 2), abs=1e-7)
    assert float(released.max()) == pytest.approx(1.0)


def test_released_torso_lines_drawn():
    joints = torch.full((1, 17, 2), 60.0)  # the joints not placed below sit in a far corner
    joints[0, 1] = torch.tensor([10.0, 40.0])  # r_hip
    joints[0, 14] = torch.tensor([10.0, 10.0])  # r_shoulder
    joints[0, 7] = torch.tensor([30.0, 25.0])  # spine
    joints[0, 0] = torch.tensor([30.0, 40.0])  # pelvis
    joints[0, 2] = torch.tensor([30.0, 62.0])  # r_knee
    released = SkeletonMask((64, 64), sigma=RELEASED_SIGMA_64, style="released")(joints)[0, 0]
    paper = SkeletonMask((64, 64), sigma=RELEASED_SIGMA_64, style="paper")(joints)[0, 0]
    # Middles of r_hip - r_shoulder (1, 14), pelvis - r_knee (0, 2) and spine - r_hip (7, 1).
    for x, y in [(10, 25), (30, 51), (20, 32.5)]:
        assert float(released[round(y), x]) > 0.9 and float(paper[round(y), x]) < 1e-3


# --- one-sided skeleton term -------------------------------------------------------------------


def test_skeleton_terms_registered():
    assert SKELETON_TERMS == ("two_sided", "one_sided", "released") and SKELETON_THRESHOLD == 0.1
    assert "released" in GEODESIC_MODES and "offset" in GEODESIC_MODES


def test_one_sided_zero_inside_positive_outside():
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., 1:7, 1:7] = 1
    inside = torch.zeros(1, 1, 8, 8)
    inside[..., 3:5, 2:6] = 1  # a hard skeleton lying inside the mask, covering part of it
    assert float(mask_supervision_loss(mask, inside, skeleton_term="one_sided")) == 0.0
    assert float(mask_supervision_loss(mask, inside)) == pytest.approx((36 - 8) / 64)
    # Faint tails below the threshold cost nothing either.
    faint = torch.where(inside > 0, inside, 0.05)
    assert float(mask_supervision_loss(mask, faint, skeleton_term="one_sided")) == 0.0
    # Sticking out of the mask costs M_skel² per pixel outside.
    out = inside.clone()
    out[..., 0, 3] = 0.8
    out[..., 7, 4] = 0.5
    expected = (0.8**2 + 0.5**2) / 64
    assert float(mask_supervision_loss(mask, out, skeleton_term="one_sided")) == pytest.approx(expected)
    # And the mask pixels the skeleton does not reach never count: growing the mask leaves it be.
    big = torch.ones(1, 1, 8, 8)
    assert float(mask_supervision_loss(big, inside, skeleton_term="one_sided")) == 0.0
    assert float(mask_supervision_loss(big, inside)) > float(mask_supervision_loss(mask, inside))


def test_one_sided_matches_formula_and_defaults_unchanged():
    g = torch.Generator().manual_seed(0)
    mask = (torch.rand(3, 1, 10, 12, generator=g) > 0.5).float()
    skel = torch.rand(3, 1, 10, 12, generator=g)
    weights = 1 + torch.rand(3, 1, 10, 12, generator=g)
    phys = torch.rand(3, 1, 10, 12, generator=g)
    for tau in (0.1, 0.3):
        gate = (skel > tau).float()
        skel_term = ((weights * (mask - skel)).square() * gate).mean(dim=(1, 2, 3))
        phys_term = (weights * (mask - phys)).square().mean(dim=(1, 2, 3))  # the physique term stays two-sided
        got = mask_supervision_loss(mask, skel, phys, weights, 0.5, 2.0, "none", "one_sided", tau)
        assert torch.allclose(got, 0.5 * skel_term + 2.0 * phys_term)
    # The default is the paper's two-sided term, bit for bit the former formula.
    former = ((weights * (mask - skel)).square().mean(dim=(1, 2, 3))).mean()
    assert torch.equal(mask_supervision_loss(mask, skel, weights=weights), former)
    assert torch.equal(MaskSupervisionLoss()(mask, skel, None, weights), former)


def test_one_sided_gradcheck_and_gate_passes_no_gradient():
    # Joints through the skeleton mask to the one-sided loss, in float64; the gate is a constant.
    joints = torch.tensor([[[2.3, 3.1], [8.6, 4.2], [5.1, 9.4]]], dtype=torch.float64, requires_grad=True)
    mask = torch.zeros(1, 1, 12, 12, dtype=torch.float64)
    mask[..., 2:8, 1:10] = 1
    weights = 1 + torch.linspace(0, 1, 144, dtype=torch.float64).reshape(1, 1, 12, 12)
    bones = [(0, 1), (1, 2)]

    def loss(j):
        skel = skeleton_mask(j, bones, 1.5, (12, 12), reduce="max")
        return mask_supervision_loss(mask, skel, weights=weights, skeleton_term="one_sided")

    skel = skeleton_mask(joints, bones, 1.5, (12, 12), reduce="max").detach()
    assert ((skel - SKELETON_THRESHOLD).abs() > 1e-4).all()  # no pixel on the step: finite differences hold
    assert torch.autograd.gradcheck(loss, (joints,), eps=1e-6, atol=1e-6)
    # The gradient equals that of the squared error on a fixed support.
    support = (skel > SKELETON_THRESHOLD).double()
    fixed = (support * (weights * (mask - skeleton_mask(joints, bones, 1.5, (12, 12), reduce="max"))).square()).mean()
    (g_fixed,) = torch.autograd.grad(fixed, joints)
    (g_loss,) = torch.autograd.grad(loss(joints), joints)
    assert torch.allclose(g_loss, g_fixed)


def _released_reference(skel, gt, weight=None, tau=0.1):
    """The released code's skeleton term as its training step computes it (read from
    ``compute_mask_reconstruction_loss(..., use_clip=True)`` and the loop's ``.mean()`` of each
    loss): without a weight the MSE is reduced to a scalar first, then times the gate map."""
    gate = (skel > tau).to(skel.dtype)
    if weight is None:
        return ((skel - gt) ** 2).mean() * gate  # a scalar times a map: the loop takes its mean
    return (skel - gt) ** 2 * gate * weight


def test_released_term_is_the_released_codes_arithmetic():
    g = torch.Generator().manual_seed(3)
    mask = (torch.rand(4, 1, 10, 12, generator=g) > 0.5).double()
    weights = 1 + torch.rand(4, 1, 10, 12, generator=g, dtype=torch.float64)
    for w in (None, weights):
        skel = torch.rand(4, 1, 10, 12, generator=g, dtype=torch.float64, requires_grad=True)
        ours = mask_supervision_loss(mask, skel, weights=w, skeleton_term="released")
        theirs = _released_reference(skel, mask, w).mean()
        assert torch.allclose(ours, theirs, rtol=1e-12, atol=0)
        (g_ours,) = torch.autograd.grad(ours, skel)
        (g_theirs,) = torch.autograd.grad(theirs, skel)
        assert torch.allclose(g_ours, g_theirs, rtol=1e-12, atol=1e-15)
    # Without G the gate only rescales: the gradient is the two-sided term's, times the support
    # fraction; inside-mask pixels off the skeleton still pull (unlike "one_sided").
    skel = torch.rand(4, 1, 10, 12, generator=g, dtype=torch.float64, requires_grad=True)
    (g_released,) = torch.autograd.grad(mask_supervision_loss(mask, skel, skeleton_term="released"), skel)
    (g_two,) = torch.autograd.grad(mask_supervision_loss(mask, skel), skel)
    fraction = float((skel.detach() > SKELETON_THRESHOLD).double().mean())
    assert 0 < fraction < 1 and torch.allclose(g_released, fraction * g_two, rtol=1e-12, atol=0)
    (g_one,) = torch.autograd.grad(mask_supervision_loss(mask, skel, skeleton_term="one_sided"), skel)
    assert bool(((g_one == 0) & (g_released != 0)).any())


def test_joint_mask_supervision_one_sided():
    objective = JointMaskSupervision((16, 16), sigma=1.0, bones=[(0, 1)], skeleton_term="one_sided")
    assert objective.loss.skeleton_term == "one_sided" and "one_sided" in repr(objective.loss)
    joints = torch.tensor([[[3.0, 8.0], [12.0, 8.0]]])
    wide = torch.zeros(1, 1, 16, 16)
    wide[..., 4:13, :] = 1  # a body much wider than the line: the line's whole support lies inside
    one = float(objective(joints, wide))
    two = float(JointMaskSupervision((16, 16), sigma=1.0, bones=[(0, 1)])(joints, wide))
    assert 0 < one < two  # only the line's flanks count (1 - M_skel)², not the uncovered body


def test_skeleton_term_bad_inputs():
    mask = torch.zeros(1, 1, 4, 4)
    with pytest.raises(MaskposeError, match="skeleton_term"):
        mask_supervision_loss(mask, mask, skeleton_term="both")
    with pytest.raises(MaskposeError, match="skeleton_threshold"):
        mask_supervision_loss(mask, mask, skeleton_term="one_sided", skeleton_threshold=-0.1)
    with pytest.raises(MaskposeError, match="skeleton_threshold"):
        MaskSupervisionLoss(skeleton_threshold=float("nan"))
    with pytest.raises(MaskposeError, match="skeleton_term"):
        JointMaskSupervision(skeleton_term="one-sided")


# --- geodesic weights, released form ------------------------------------------------------------


def _line_mask() -> np.ndarray:
    mask = np.zeros((5, 7), bool)
    mask[2, 1:6] = True
    return mask


def _line_mask_expected() -> np.ndarray:
    # Inside: D = |col - 3| from the centroid (2, 3), D_max = 2 -> exp(2 D / 2) + 1 + 20.
    # Outside: 3 · D_bg / max D_bg + 20, D_bg the Euclidean distance to the row, max √5 (corners).
    expected = np.empty((5, 7))
    for r in range(5):
        for c in range(7):
            if r == 2 and 1 <= c <= 5:
                expected[r, c] = math.exp(abs(c - 3)) + 1 + 20
            else:
                dc = max(0, 1 - c, c - 5)
                d_bg = math.hypot(r - 2, dc)
                expected[r, c] = 3 * d_bg / math.sqrt(5) + 20
    return expected


def test_released_geodesic_hand_computed():
    expected = _line_mask_expected()
    got = geodesic_weights(_line_mask(), mode="released")
    assert got.dtype == np.float32 and np.allclose(got, expected, atol=1e-5)
    assert got[2, 3] == pytest.approx(22.0) and got[0, 0] == pytest.approx(23.0)
    # numpy, the batched torch wrapper and the module agree.
    other = np.zeros((5, 7), bool)
    other[0:3, 0:2] = True
    masks = torch.from_numpy(np.stack([_line_mask(), other])[:, None].astype(np.float32))
    batched = geodesic_weights_torch(masks, mode="released")
    assert batched.shape == (2, 1, 5, 7) and batched.dtype == torch.float32
    assert np.array_equal(batched[0, 0].numpy(), got)
    assert np.array_equal(batched[1, 0].numpy(), geodesic_weights(other, mode="released"))
    assert torch.equal(GeodesicWeights("released")(masks), batched)
    assert "released_params" in repr(GeodesicWeights("released"))


def test_released_geodesic_params_and_edge_cases():
    mask = _line_mask()
    assert RELEASED_GEODESIC_PARAMS == (2.0, 1.0, 3.0, 20.0)
    # (a, b, c, d) = (1, 0, 0, 0): only exp(D / D_max) on the mask, 0 outside.
    bare = geodesic_weights(mask, mode="released", released_params=(1, 0, 0, 0))
    assert np.allclose(bare[2, 1:6], np.exp(np.abs(np.arange(1, 6) - 3) / 2)) and (bare[~mask] == 0).all()
    t = geodesic_weights_torch(torch.from_numpy(mask)[None, None], "released", released_params=(1, 0, 0, 0))
    assert np.allclose(t[0, 0].numpy(), bare)
    # `outside` is a paper/offset parameter: the released form does not use it.
    assert np.array_equal(geodesic_weights(mask, "released", outside=5.0), geodesic_weights(mask, "released"))
    # A mask that fills the image has no background: finite, e^(2D/D_max) + 21.
    full = geodesic_weights(np.ones((3, 3), bool), mode="released")
    assert np.isfinite(full).all() and full[1, 1] == pytest.approx(22.0)
    # A one-pixel mask (D_max = 0) and an unreachable blob (treated as the farthest).
    single = np.zeros((5, 5), bool)
    single[2, 2] = True
    assert geodesic_weights(single, "released")[2, 2] == pytest.approx(22.0)
    two = np.zeros((12, 12), bool)
    two[1:7, 1:7] = True
    two[10, 10] = True
    assert geodesic_weights(two, "released")[10, 10] == pytest.approx(math.exp(2) + 21)
    # The former "released" meaning lives on as "offset"; the default mode is unchanged.
    assert np.allclose(geodesic_weights(mask, "offset")[mask], geodesic_weights(mask)[mask] + 1)
    for bad in [(1, 2, 3), (1, 2, 3, float("inf")), "abcd"]:
        with pytest.raises(MaskposeError, match="released_params"):
            geodesic_weights(mask, "released", released_params=bad)
    with pytest.raises(MaskposeError, match="mode"):
        GeodesicWeights("exp")


# --- symmetry ---------------------------------------------------------------------------------


def _mirror_skeleton(batch: int = 3, seed: int = 0) -> torch.Tensor:
    """H36M-17 joints mirror-symmetric about the plane x = 0 (left = mirrored right)."""
    g = torch.Generator().manual_seed(seed)
    joints = torch.randn(batch, 17, 3, generator=g, dtype=torch.float64) * 0.3
    for centre in (0, 7, 8, 9, 10):
        joints[:, centre, 0] = 0.0
    mirror = torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
    for left, right in [(4, 1), (5, 2), (6, 3), (11, 14), (12, 15), (13, 16)]:
        joints[:, left] = joints[:, right] * mirror
    return joints


def test_bone_symmetry_zero_for_mirror_skeleton():
    joints = _mirror_skeleton()
    assert float(bone_symmetry_loss(joints)) == pytest.approx(0.0, abs=1e-24)
    assert bone_symmetry_loss(joints, reduction="none").shape == (3,)
    # The hips' midpoint lies on the mirror plane at the pelvis when the pelvis is put there.
    joints[:, 0] = (joints[:, 1] + joints[:, 4]) / 2
    joints[:, 8] = (joints[:, 11] + joints[:, 14]) / 2
    assert float(centre_symmetry_loss(joints)) == pytest.approx(0.0, abs=1e-24)


def test_bone_symmetry_analytic_value():
    joints = _mirror_skeleton(batch=2)
    # Lengthen the left forearm (l_elbow 12 -> l_wrist 13) of sample 0 by 0.05 along itself.
    bone = joints[0, 13] - joints[0, 12]
    joints[0, 13] = joints[0, 12] + bone * (1 + 0.05 / bone.norm())
    per_sample = bone_symmetry_loss(joints, reduction="none")
    assert per_sample[0] == pytest.approx(0.05**2 / 6) and per_sample[1] == pytest.approx(0.0, abs=1e-24)
    assert float(bone_symmetry_loss(joints)) == pytest.approx(0.05**2 / 12)
    assert float(bone_symmetry_loss(joints, reduction="sum")) == pytest.approx(0.05**2 / 6)
    assert torch.allclose(BoneSymmetryLoss(reduction="none")(joints), per_sample)
    # The 6 default pairs: left against right, hips from the pelvis, shoulders from the thorax.
    assert H36M_SYMMETRIC_BONE_PAIRS[0] == ((0, 4), (0, 1)) and H36M_SYMMETRIC_BONE_PAIRS[3] == ((8, 11), (8, 14))
    for left, right in H36M_SYMMETRIC_BONE_PAIRS:
        assert H36M_JOINTS[left[1]].startswith("l_") and H36M_JOINTS[right[1]].startswith("r_")
        assert tuple(H36M_FLIP[j] for j in left) == right


def test_released_bone_pairs_reproduce_released_formula():
    # compute_bone_sym_loss: bones kp[[16,15,13,12,3,2,6,5]] - kp[[15,14,12,11,2,1,5,4]],
    # then MSE of bones [0, 2, 4, 6] against [1, 3, 5, 7].
    kp = torch.randn(4, 17, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    bone = (kp[:, [16, 15, 13, 12, 3, 2, 6, 5]] - kp[:, [15, 14, 12, 11, 2, 1, 5, 4]]).norm(dim=2)
    released = torch.nn.functional.mse_loss(bone[:, [0, 2, 4, 6]], bone[:, [1, 3, 5, 7]])
    assert torch.allclose(bone_symmetry_loss(kp, RELEASED_BONE_PAIRS), released)
    # compute_kp_sym_loss: MSE of the shoulder and hip midpoints against thorax and pelvis.
    centre = (kp[:, [11, 1]] + kp[:, [14, 4]]) / 2
    released_kp = torch.nn.functional.mse_loss(centre, kp[:, [8, 0]])
    assert torch.allclose(centre_symmetry_loss(kp), released_kp)
    assert torch.allclose(CentreSymmetryLoss()(kp), released_kp)


def test_symmetry_gradcheck():
    joints = torch.randn(2, 17, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    joints.requires_grad_(True)
    assert torch.autograd.gradcheck(bone_symmetry_loss, (joints,), eps=1e-6, atol=1e-6)
    assert torch.autograd.gradcheck(centre_symmetry_loss, (joints,), eps=1e-6, atol=1e-6)
    # A zero-length bone gives a zero subgradient, not NaN.
    flat = torch.zeros(1, 17, 3, requires_grad=True)
    bone_symmetry_loss(flat).backward()
    assert torch.isfinite(flat.grad).all()


def test_symmetry_bad_inputs():
    with pytest.raises(MaskposeError, match="joints3d"):
        bone_symmetry_loss(torch.zeros(2, 17, 2))
    with pytest.raises(MaskposeError, match="joints3d"):
        bone_symmetry_loss(torch.zeros(2, 17, 3, dtype=torch.long))
    with pytest.raises(MaskposeError, match="outside 0..9"):
        bone_symmetry_loss(torch.zeros(2, 10, 3))
    with pytest.raises(MaskposeError, match="pairs"):
        bone_symmetry_loss(torch.zeros(2, 17, 3), pairs=[])
    with pytest.raises(MaskposeError, match="pairs"):
        BoneSymmetryLoss(pairs=[(0, 1)])
    with pytest.raises(MaskposeError, match="centres"):
        centre_symmetry_loss(torch.zeros(2, 17, 3), centres=[(0, 1)])
    with pytest.raises(MaskposeError, match="centres"):
        CentreSymmetryLoss(centres=[(20, 1, 0)])(torch.zeros(1, 17, 3))


def test_released_style_draws_lines_to_further_landmarks_at_width_one():
    """Bones after the 16 of H36M_BONES (the joint head's extra landmarks) follow the released
    lines at width 1: the same mask as the custom style with those lines and widths."""
    torch.manual_seed(0)
    joints = torch.rand(2, 19, 2) * 60 + 2
    extra = ((3, 17), (6, 18))
    lines, widths = released_style()
    released = SkeletonMask((64, 64), sigma=1.5, bones=H36M_BONES + extra, style="released")
    custom = SkeletonMask((64, 64), sigma=1.5, bones=lines + extra, style="custom", reduce="max",
                          limb_widths=torch.cat([widths, torch.ones(2)]))
    assert released.bones == lines + extra
    assert torch.equal(released(joints), custom(joints))
    with pytest.raises(MaskposeError, match="defined for H36M_BONES"):
        SkeletonMask((64, 64), bones=((0, 1), (1, 2)), style="released")

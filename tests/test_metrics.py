"""maskpose.eval: pose metrics against analytic cases and scipy references, flips, SPP."""

import math

import numpy as np
import pytest
import torch
from scipy.linalg import orthogonal_procrustes
from scipy.spatial.transform import Rotation

from maskpose.conventions import H36M_BONES, H36M_FLIP
from maskpose.errors import MaskposeError
from maskpose.eval import (
    AUC_THRESHOLDS_MM,
    MPJPE,
    PAMPJPE,
    ambiguity_ratio,
    auc,
    best_flip,
    error_2d,
    fit_spp,
    flip_aware,
    flip_joints,
    labelled_subset,
    mpjpe,
    n_mpjpe,
    pa_mpjpe,
    pck,
    pose_metrics,
    procrustes_align,
    silhouette_iou,
)
from maskpose.eval.spp import RIDGE_GRID

# Typical H36M bone lengths (m), same order as H36M_BONES.
_BONE_LEN = torch.tensor([0.13, 0.45, 0.44, 0.13, 0.45, 0.44, 0.23, 0.25, 0.12, 0.11,
                          0.15, 0.28, 0.25, 0.15, 0.28, 0.25], dtype=torch.float64)
# Rest directions (x right, y down, z forward) of each bone in a standing pose.
_REST = torch.tensor([[-1, 0, 0], [0, 1, 0], [0, 1, 0], [1, 0, 0], [0, 1, 0], [0, 1, 0],
                      [0, -1, 0], [0, -1, 0], [0, -1, 0], [0, -1, 0],
                      [1, 0, 0], [0, 1, 0], [0, 1, 0], [-1, 0, 0], [0, 1, 0], [0, 1, 0]],
                     dtype=torch.float64)


def random_poses(n: int, seed: int = 0) -> torch.Tensor:
    """``(n, 17, 3)`` H36M poses in metres, pelvis near (0, 0, 4): rest directions plus noise."""
    gen = torch.Generator().manual_seed(seed)
    dirs = _REST[None] + 0.6 * torch.randn(n, 16, 3, generator=gen, dtype=torch.float64)
    dirs = dirs / dirs.norm(dim=-1, keepdim=True)
    joints = torch.zeros(n, 17, 3, dtype=torch.float64)
    for k, (a, b) in enumerate(H36M_BONES):
        joints[:, b] = joints[:, a] + _BONE_LEN[k] * dirs[:, k]
    root = torch.tensor([0.0, 0.0, 4.0], dtype=torch.float64) + 0.3 * torch.randn(n, 1, 3, generator=gen,
                                                                                 dtype=torch.float64)
    return joints + root


def test_translation_gives_zero_mpjpe_after_pelvis_alignment():
    gt = random_poses(4)
    pred = gt + torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64)
    assert float(mpjpe(pred, gt)) == pytest.approx(0.0, abs=1e-9)
    # Without alignment the error is the translation, in mm (inputs in metres).
    assert float(mpjpe(pred, gt, root=None)) == pytest.approx(1000 * math.sqrt(0.14), rel=1e-9)
    assert MPJPE(reduction="none")(pred, gt).shape == (4,)


def test_root_index_is_a_parameter():
    gt = random_poses(2)
    pred = gt.clone()
    pred[:, 5] += torch.tensor([0.0, 0.0, 0.17], dtype=torch.float64)
    # Aligning at the moved joint moves every other joint by 170 mm: 16 of 17 joints.
    assert float(mpjpe(pred, gt, root=5)) == pytest.approx(170.0 * 16 / 17)
    assert float(mpjpe(pred, gt, root=0)) == pytest.approx(170.0 / 17)


def test_similarity_copy_gives_zero_pa_mpjpe_but_not_mpjpe():
    gt = random_poses(8, seed=1)
    rot = torch.from_numpy(Rotation.random(8, random_state=3).as_matrix())
    pred = 0.7 * gt @ rot.transpose(1, 2) + torch.tensor([1.0, 2.0, -3.0], dtype=torch.float64)
    assert float(pa_mpjpe(pred, gt)) == pytest.approx(0.0, abs=1e-6)
    assert float(PAMPJPE()(pred.float(), gt.float())) < 1e-2  # float32 path, sub-micron
    assert float(mpjpe(pred, gt)) > 50.0


def test_pa_mpjpe_matches_scipy_orthogonal_procrustes():
    gt = random_poses(6, seed=2)
    gen = torch.Generator().manual_seed(5)
    rot = torch.from_numpy(Rotation.random(6, random_state=4).as_matrix())
    pred = 1.2 * gt @ rot.transpose(1, 2) + 0.05 * torch.randn(gt.shape, generator=gen, dtype=torch.float64)
    ours = pa_mpjpe(pred, gt, reduction="none")
    for i in range(6):
        a = pred[i].numpy() - pred[i].numpy().mean(0)
        b = gt[i].numpy() - gt[i].numpy().mean(0)
        r, ssum = orthogonal_procrustes(a, b)
        assert np.linalg.det(r) > 0  # small noise: the unconstrained optimum is a rotation
        aligned = (ssum / (a * a).sum()) * a @ r + gt[i].numpy().mean(0)
        ref = 1000 * np.linalg.norm(aligned - gt[i].numpy(), axis=1).mean()
        assert float(ours[i]) == pytest.approx(ref, rel=1e-8, abs=1e-8)


def test_procrustes_recovers_a_known_similarity_exactly():
    gt = random_poses(4, seed=13)
    rot = torch.from_numpy(Rotation.random(4, random_state=14).as_matrix())
    scale = torch.tensor([0.5, 1.0, 1.7, 3.0], dtype=torch.float64)[:, None, None]
    shift = torch.tensor([0.3, -1.2, 4.0], dtype=torch.float64)
    pred = scale * gt @ rot.transpose(1, 2) + shift  # pred = s R gt + t: the inverse map aligns it
    torch.testing.assert_close(procrustes_align(pred, gt), gt, rtol=0, atol=1e-12)
    # Without scale, the rotation and translation are still undone, the size is not.
    aligned = procrustes_align(pred, gt, scale=False)
    centred = gt - gt.mean(1, keepdim=True)
    torch.testing.assert_close(aligned - aligned.mean(1, keepdim=True), scale * centred, rtol=0, atol=1e-12)


def test_procrustes_disparity_matches_scipy_spatial_procrustes():
    from scipy.spatial import procrustes

    gt = random_poses(5, seed=15)
    gen = torch.Generator().manual_seed(16)
    rot = torch.from_numpy(Rotation.random(5, random_state=17).as_matrix())
    pred = 0.8 * gt @ rot.transpose(1, 2) + 0.03 * torch.randn(gt.shape, generator=gen, dtype=torch.float64)
    aligned = procrustes_align(pred, gt)
    for i in range(5):
        # scipy standardises both sets (centred, unit norm) and fits the second to the first.
        _, _, disparity = procrustes(gt[i].numpy(), pred[i].numpy())
        centred = gt[i] - gt[i].mean(0)
        ours = float((aligned[i] - gt[i]).square().sum() / centred.square().sum())
        assert ours == pytest.approx(disparity, rel=1e-9)


def test_procrustes_on_degenerate_poses_is_finite():
    gt = random_poses(3, seed=18)
    collapsed = torch.ones_like(gt) * 0.2  # all joints at one point: no scale to fit
    torch.testing.assert_close(procrustes_align(collapsed, gt), gt.mean(1, keepdim=True).expand_as(gt))
    line = torch.linspace(0, 1, 17, dtype=torch.float64)[None, :, None] * torch.tensor([1.0, 2.0, 3.0],
                                                                                     dtype=torch.float64)
    aligned = procrustes_align(line.expand(3, 17, 3), gt)
    assert torch.isfinite(aligned).all()
    # A collinear set is aligned to gt's principal direction: better than leaving it unaligned.
    assert float(pa_mpjpe(line.expand(3, 17, 3), gt)) < float(mpjpe(line.expand(3, 17, 3), gt, root=None))


def test_pa_mpjpe_excludes_reflections():
    gt = random_poses(3, seed=6)
    mirror = gt * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
    ours = pa_mpjpe(mirror, gt, reduction="none")
    # Reference: the best proper rotation (Kabsch, scipy), then the optimal scale for it.
    for i in range(3):
        p = mirror[i].numpy() - mirror[i].numpy().mean(0)
        g = gt[i].numpy() - gt[i].numpy().mean(0)
        rot, _ = Rotation.align_vectors(g, p)
        rp = rot.apply(p)
        s = (rp * g).sum() / (p * p).sum()
        ref = 1000 * np.linalg.norm(s * rp - g, axis=1).mean()
        assert float(ours[i]) == pytest.approx(ref, rel=1e-6)
        # An improper map would fit the mirror exactly; the metric must not allow that.
        assert float(ours[i]) > 10.0
    aligned = procrustes_align(mirror, gt)
    assert torch.isfinite(aligned).all()


def test_n_mpjpe_removes_scale_only():
    gt = random_poses(3, seed=7)
    root = gt[:, :1]
    scaled = (gt - root) * 1.3 + root + 0.2
    assert float(n_mpjpe(scaled, gt)) == pytest.approx(0.0, abs=1e-9)
    assert float(mpjpe(scaled, gt)) > 50.0
    rot = torch.from_numpy(Rotation.from_euler("y", 40, degrees=True).as_matrix())
    rotated = (gt - root) @ rot.T + root
    assert float(n_mpjpe(rotated, gt)) > 10.0  # a rotation is not undone by N-MPJPE


def _constructed_errors() -> tuple[torch.Tensor, torch.Tensor, list[float]]:
    """gt and pred whose root-aligned joint errors are 0 (pelvis) and 10 j - 2.5 mm."""
    gt = random_poses(1, seed=8)
    errors_mm = [0.0] + [10.0 * j - 2.5 for j in range(1, 17)]
    offsets = torch.zeros(1, 17, 3, dtype=torch.float64)
    offsets[0, :, 2] = torch.tensor(errors_mm, dtype=torch.float64) / 1000
    return gt + offsets, gt, errors_mm


def test_pck_and_auc_on_constructed_errors():
    pred, gt, errors = _constructed_errors()
    expected_pck = 100 * sum(e <= 150 for e in errors) / 17  # 7.5 .. 147.5 in, 157.5 out
    assert float(pck(pred, gt)) == pytest.approx(expected_pck)
    assert float(pck(pred, gt, threshold=50.0)) == pytest.approx(100 * 6 / 17)
    assert len(AUC_THRESHOLDS_MM) == 31 and AUC_THRESHOLDS_MM[-1] == 150.0
    expected_auc = 100 * np.mean([sum(e <= t for e in errors) / 17 for t in np.arange(0, 151, 5)])
    assert float(auc(pred, gt)) == pytest.approx(expected_auc)
    assert float(auc(gt, gt)) == pytest.approx(100.0) and float(pck(gt, gt)) == pytest.approx(100.0)
    metrics = pose_metrics(pred, gt)
    assert set(metrics) == {"mpjpe", "pa_mpjpe", "n_mpjpe", "pck", "auc"}
    assert metrics["mpjpe"] == pytest.approx(np.mean(errors))


def test_error_2d_and_silhouette_iou():
    gt = torch.zeros(2, 3, 2)
    pred = gt + torch.tensor([3.0, 4.0])
    assert float(error_2d(pred, gt)) == pytest.approx(5.0)
    valid = torch.tensor([[True, False, False], [True, True, True]])
    pred[0, 1:] += 100.0  # unlabelled joints do not count
    assert error_2d(pred, gt, valid, reduction="none").tolist() == pytest.approx([5.0, 5.0])
    assert float(error_2d(pred, gt, reduction="none")[0]) == pytest.approx((5 + 2 * math.hypot(103, 104)) / 3)
    a = torch.zeros(1, 1, 8, 8)
    b = torch.zeros(1, 1, 8, 8)
    a[..., 0:4, 0:4] = 1  # 16 px
    b[..., 0:4, 2:6] = 1  # 16 px, 8 shared
    assert float(silhouette_iou(a, b)) == pytest.approx(8 / 24)
    assert float(silhouette_iou(torch.zeros_like(a), torch.zeros_like(a))) == 1.0  # both empty


def test_metric_bad_inputs_raise_clear_errors():
    gt = random_poses(2)
    bad = gt.clone()
    bad[0, 3, 1] = float("nan")
    with pytest.raises(MaskposeError, match="NaN"):
        mpjpe(bad, gt)
    with pytest.raises(MaskposeError, match="NaN"):
        pa_mpjpe(gt, bad)
    with pytest.raises(MaskposeError, match=r"pred must have shape \(\*, \*, 3\)"):
        mpjpe(gt[..., :2], gt[..., :2])
    with pytest.raises(MaskposeError, match="same shape"):
        mpjpe(gt[:, :16], gt)
    with pytest.raises(MaskposeError, match="root joint 20"):
        mpjpe(gt, gt, root=20)
    with pytest.raises(MaskposeError, match="valid marks no joint"):
        error_2d(gt[..., :2], gt[..., :2], torch.zeros(2, 17, dtype=torch.bool))


def test_flip_permutes_labels_only_and_ambiguity_ratio():
    gt = random_poses(10, seed=9)
    gen = torch.Generator().manual_seed(1)
    pred = gt + 0.01 * torch.randn(gt.shape, generator=gen, dtype=torch.float64)
    flipped_ids = [0, 3, 7]
    pred[flipped_ids] = flip_joints(pred[flipped_ids])
    # Label permutation only: the set of points is unchanged, the pelvis keeps its place.
    assert torch.equal(flip_joints(flip_joints(pred)), pred)
    assert torch.equal(flip_joints(pred)[:, 0], pred[:, 0])
    assert torch.equal(flip_joints(pred)[:, 1], pred[:, H36M_FLIP[1]])

    assert ambiguity_ratio(pred, gt) == pytest.approx(0.3)
    _, used = best_flip(pred, gt)
    assert used.nonzero().flatten().tolist() == flipped_ids
    with_flip = float(flip_aware(mpjpe, pred, gt))
    without = float(mpjpe(pred, gt))
    assert with_flip < 30.0 < without  # ~23 mm of root-aligned noise vs swapped limbs
    assert float(flip_aware(pa_mpjpe, pred, gt)) < float(pa_mpjpe(pred, gt))
    assert ambiguity_ratio(gt, gt) == 0.0  # ties keep the prediction
    with pytest.raises(MaskposeError, match="permutation"):
        flip_joints(pred, flip=(0, 1, 2))


def _synthetic_landmarks(joints: torch.Tensor, seed: int) -> torch.Tensor:
    """L = 2J landmarks near, not on, the joints: each joint pulled 30 % toward its parent, plus
    bone midpoints shifted sideways, plus 1 cm noise. No mapping = read landmarks[:, :J]."""
    gen = torch.Generator().manual_seed(seed)
    parent = {b: a for a, b in H36M_BONES}
    near = joints.clone()
    for j, p in parent.items():
        near[:, j] = 0.7 * joints[:, j] + 0.3 * joints[:, p]
    mids = [(joints[:, a] + joints[:, b]) / 2 + torch.tensor([0.03, 0.0, 0.0], dtype=joints.dtype)
            for a, b in H36M_BONES]
    extra = torch.stack(mids + [joints[:, 8] + 0.05], dim=1)  # 16 midpoints + one above the thorax
    landmarks = torch.cat([near, extra], dim=1)  # (N, 34, 3)
    return landmarks + 0.01 * torch.randn(landmarks.shape, generator=gen, dtype=joints.dtype)


@pytest.mark.parametrize("kind", ["linear", "mlp"])
def test_spp_with_one_percent_labels_lowers_mpjpe(kind):
    joints = random_poses(3000, seed=10)
    landmarks = _synthetic_landmarks(joints, seed=11)
    labelled = labelled_subset(3000, fraction=0.01, seed=0)
    assert len(labelled) == 30
    test_ids = torch.ones(3000, dtype=torch.bool)
    test_ids[labelled] = False
    spp = fit_spp(landmarks, joints, fraction=0.01, kind=kind, seed=0, **({"steps": 200} if kind == "mlp" else {}))
    before = float(mpjpe(landmarks[test_ids, :17], joints[test_ids]))
    after = float(mpjpe(spp(landmarks[test_ids]).detach(), joints[test_ids]))
    assert before > 40.0
    assert after < 0.6 * before, (before, after)
    assert (spp.linear if kind == "mlp" else spp).ridge in RIDGE_GRID  # the cross-validated pick is recorded


def test_spp_shrinks_towards_the_identity_when_the_landmarks_are_the_joints():
    """Landmarks that already are the joints (plus noise), 8 labelled samples: the ridge fit
    towards zero weights pulls every joint towards the landmark mean and adds a third to the error; the
    default (identity prior, ridge by cross-validation) keeps the landmarks, picking a large
    weight. Where the landmarks are biased (the test above) it picks a small one and corrects them."""
    joints = random_poses(400, seed=20)
    landmarks = joints + 0.02 * torch.randn(joints.shape, generator=torch.Generator().manual_seed(21),
                                            dtype=joints.dtype)
    before = float(mpjpe(landmarks, joints))
    zero = fit_spp(landmarks, joints, k=8, seed=0, ridge=1e-3, prior="zero")
    default = fit_spp(landmarks, joints, k=8, seed=0)
    assert float(mpjpe(zero(landmarks).detach(), joints)) > 1.3 * before
    assert float(mpjpe(default(landmarks).detach(), joints)) < 1.05 * before
    assert default.ridge >= 10.0
    biased = _synthetic_landmarks(random_poses(300, seed=22), seed=23)
    assert fit_spp(biased, random_poses(300, seed=22), k=30, seed=0).ridge <= 1.0
    with pytest.raises(MaskposeError, match="prior"):
        fit_spp(landmarks, joints, k=8, prior="mean")
    with pytest.raises(MaskposeError, match="ridge"):
        fit_spp(landmarks, joints, k=8, ridge="auto")


def test_spp_bad_inputs():
    with pytest.raises(MaskposeError, match="landmarks"):
        fit_spp(torch.zeros(10, 34, 2), torch.zeros(10, 17, 3), k=5)
    nan = torch.zeros(10, 34, 3)
    nan[0, 0, 0] = float("nan")
    with pytest.raises(MaskposeError, match="NaN"):
        fit_spp(nan, torch.zeros(10, 17, 3), k=5)
    with pytest.raises(MaskposeError, match="k must be"):
        fit_spp(torch.zeros(10, 34, 3), torch.zeros(10, 17, 3), k=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_metrics_on_cuda_match_cpu():
    gt = random_poses(5, seed=12).float()
    pred = (gt + 0.05 * torch.randn(gt.shape, generator=torch.Generator().manual_seed(0))).float()
    for fn in (mpjpe, pa_mpjpe, n_mpjpe, pck, auc):
        cpu = fn(pred, gt)
        gpu = fn(pred.cuda(), gt.cuda())
        assert gpu.device.type == "cuda"
        assert float(gpu) == pytest.approx(float(cpu), rel=1e-4, abs=1e-3)

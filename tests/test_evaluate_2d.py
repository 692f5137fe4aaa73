"""``evaluate`` on real data with 2D keypoints only: the keypoint metrics of maskpose.eval.keypoints
(analytic cases with NaN labels and flips), the floors of constant predictions (against a numpy
computation by hand), ``evaluate_model`` on 2D-only and 3D+2D datasets, the refusals, the shipped
checkpoint end to end on a COCO import, and the CLI's ``--json`` keys (docs/evaluation.md)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from maskpose.cli import app
from maskpose.conventions import H36M_FLIP, H36M_JOINTS
from maskpose.data.adapters import import_coco, import_folder
from maskpose.data.dataset import DatasetWriter, MaskposeDataset
from maskpose.errors import DataError, MaskposeError
from maskpose.eval import (
    LIMB_JOINTS,
    PCK2D,
    Error2DPx,
    Error2DPxFlip,
    PCK2DFlip,
    error_2d,
    error_2d_px,
    error_2d_px_flip,
    mean_pose_2d,
    pck_2d,
    pck_2d_flip,
)
from maskpose.models.regressor import ModelConfig, PoseRegressor
from maskpose.train.evaluate import (
    PCK2D_FRACTIONS,
    collect_predictions,
    evaluate_checkpoint,
    evaluate_model,
    floor_metrics,
    joint_metrics,
    keypoint_metrics,
    to_data_pixels,
)

NAN = float("nan")
COCO = Path(__file__).parent / "data" / "coco"
SHIPPED = Path(__file__).parents[1] / "src" / "maskpose" / "assets" / "source_studio_64.pt"
FRACTIONS = ("0.05", "0.1", "0.2")
KEYS_2D = {*(f"pck2d@{f}" for f in FRACTIONS), *(f"pck2d_flip@{f}" for f in FRACTIONS), "error2d_px",
           "num_keypoints", "num_scored_2d"}
KEYS_FLOOR = {*(f"floor_mean_pose_pck2d@{f}" for f in FRACTIONS), *(f"floor_mean_pose_pck2d_flip@{f}" for f in FRACTIONS),
              "floor_mean_pose_error2d_px", "floor_mean_mask_iou", "floor_source"}
KEYS_3D = {"mpjpe", "pa_mpjpe", "n_mpjpe", "pck", "auc", "mpjpe_flip", "pa_mpjpe_flip", "ambiguity_ratio", "num_scored"}


# ---------------------------------------------------------------------------------------- the metrics
def test_limb_joints_are_the_twelve_coco_limbs():
    names = {H36M_JOINTS[j] for j in LIMB_JOINTS}
    assert len(LIMB_JOINTS) == 12 and names == {f"{s}_{part}" for s in "lr" for part in
                                                ("hip", "knee", "ankle", "shoulder", "elbow", "wrist")}
    assert sorted(H36M_FLIP[j] for j in LIMB_JOINTS) == sorted(LIMB_JOINTS)  # closed under the flip


def test_pck_and_error_on_known_distances_ignore_unlabelled_keypoints():
    # sample 0: distances 5, 6, (NaN label), 1; sample 1: distance 10 and three NaN labels;
    # sample 2: nothing labelled (excluded, count 0)
    gt = torch.tensor([[[0.0, 0.0], [10.0, 0.0], [NAN, NAN], [4.0, 4.0]],
                       [[1.0, 1.0], [NAN, NAN], [NAN, 3.0], [NAN, NAN]],
                       [[NAN, NAN]] * 4])
    pred = torch.tensor([[[3.0, 4.0], [10.0, 6.0], [99.0, 99.0], [4.0, 5.0]],
                         [[7.0, 9.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]],
                         [[0.0, 0.0]] * 4])
    score = pck_2d(pred, gt, 5.0)
    assert score.count.tolist() == [3, 1, 0]
    assert score.value.item() == pytest.approx(2 / 4)  # 5 and 1 are within 5 px; 6 and 10 are not
    per_sample = pck_2d(pred, gt, 5.0, reduction="none").value
    assert per_sample[:2].tolist() == pytest.approx([2 / 3, 0.0]) and torch.isnan(per_sample[2])
    assert pck_2d(pred, gt, 5.0, reduction="sum").value.item() == 2.0
    assert pck_2d(pred, gt, 10.0).value.item() == 1.0  # <= threshold counts
    assert pck_2d(pred, gt, 4.99).value.item() == pytest.approx(1 / 4)

    error = error_2d_px(pred, gt)
    assert error.value.item() == pytest.approx((5 + 6 + 1 + 10) / 4)  # pooled over the 4 keypoints
    per_sample = error_2d_px(pred, gt, reduction="none").value
    assert per_sample[:2].tolist() == pytest.approx([4.0, 10.0]) and torch.isnan(per_sample[2])
    assert error_2d_px(pred, gt, reduction="sum").value.item() == pytest.approx(22.0)
    # per sample, error_2d over the labelled keypoints is the same number
    valid = torch.isfinite(gt[:2]).all(-1)
    assert torch.allclose(per_sample[:2], error_2d(pred[:2], gt[:2].nan_to_num(0.0), valid, reduction="none"))

    # a subset of the joints: only 0 and 3 (distances 5, 1 and 10)
    assert pck_2d(pred, gt, 5.0, joints=[0, 3]).value.item() == pytest.approx(2 / 3)
    assert error_2d_px(pred, gt, joints=[0, 3]).count.tolist() == [2, 1, 0]
    # the modules give the functions' numbers
    assert PCK2D(5.0)(pred, gt).value.item() == score.value.item()
    assert Error2DPx(joints=[0, 3])(pred, gt).value.item() == pytest.approx(16 / 3)


def test_flip_aware_keypoints_take_the_better_labelling_per_sample():
    gt = torch.zeros(2, 17, 2)
    gt[:, :, 0] = torch.arange(17.0) * 10  # joint j at x = 10 j
    pred = gt.clone()
    pred[0] = gt[0, list(H36M_FLIP)]  # sample 0: left and right swapped; sample 1 exact
    pred[0, 3] += torch.tensor([0.0, 2.0])  # and one joint 2 px off
    gt[1, 5] = NAN
    swapped = sum(1 for j in range(17) if H36M_FLIP[j] != j)
    assert pck_2d(pred, gt, 1.0).value.item() == pytest.approx((17 - swapped + 16) / 33)
    flip = pck_2d_flip(pred, gt, 1.0)
    assert flip.value.item() == pytest.approx((16 + 16) / 33) and flip.count.tolist() == [17, 16]
    assert pck_2d_flip(pred, gt, 1.0, joints=LIMB_JOINTS).value.item() == pytest.approx((11 + 11) / 23)
    assert error_2d_px_flip(pred, gt).value.item() == pytest.approx(2.0 / 33)
    assert error_2d_px_flip(pred, gt, reduction="none").value.tolist() == pytest.approx([2 / 17, 0.0])
    assert error_2d_px(pred, gt).value.item() > 10.0
    assert PCK2DFlip(1.0)(pred, gt).value.item() == flip.value.item()
    assert Error2DPxFlip()(pred, gt).value.item() == pytest.approx(2.0 / 33)


def test_keypoint_metrics_refuse_bad_inputs_with_one_line():
    gt, pred = torch.zeros(2, 17, 2), torch.zeros(2, 17, 2)
    cases = [
        (lambda: pck_2d(pred, torch.full((2, 17, 2), float("inf")), 1.0), "infinite"),
        (lambda: pck_2d(pred.clone().fill_(NAN), gt, 1.0), "pred contains NaN"),
        (lambda: pck_2d(pred[:, :5], gt, 1.0), "same shape"),
        (lambda: pck_2d(pred, gt, -1.0), "threshold must be a finite number"),
        (lambda: pck_2d(pred, gt, NAN), "threshold must be a finite number"),
        (lambda: pck_2d(pred, gt, 1.0, joints=[0, 17]), "joints must be distinct indices"),
        (lambda: pck_2d_flip(pred, gt, 1.0, flip=(0, 1)), "flip must be a permutation"),
        (lambda: pck_2d(pred, torch.full_like(gt, NAN), 1.0), "the mean is undefined"),
        (lambda: pck_2d(pred, gt, 1.0, reduction="avg"), "reduction must be one of"),
    ]
    for call, message in cases:
        with pytest.raises(MaskposeError, match=message) as info:
            call()
        assert "\n" not in str(info.value)
    # nothing labelled: per-sample and summed values are still defined (NaN, 0), with count 0
    empty = pck_2d(pred, torch.full_like(gt, NAN), 1.0, reduction="sum")
    assert empty.value.item() == 0.0 and empty.count.tolist() == [0, 0]


def test_mean_pose_2d_is_the_nanmean_of_the_normalised_keypoints():
    rng = np.random.default_rng(0)
    y = rng.uniform(0, 40, (6, 17, 2)).astype(np.float32)
    y[rng.random((6, 17)) < 0.3] = np.nan
    y[:, 10] = np.nan  # never labelled: the centre of the labelled keypoints
    mean = mean_pose_2d(torch.from_numpy(y), 40.0).numpy()
    u = (y + 0.5) / 40.0
    expected = np.empty((17, 2))
    for j in range(17):
        expected[j] = np.nanmean(u[:, j], axis=0) if j != 10 else np.nanmean(u.reshape(-1, 2), axis=0)
    np.testing.assert_allclose(mean, expected, rtol=1e-5)
    assert mean_pose_2d(torch.full((2, 17, 2), NAN), 40.0).eq(0.5).all()


# ---------------------------------------------------------------------------------------- floors by hand
def _write(path, joints2d, masks, joints3d=None):
    n, res = len(joints2d), masks.shape[-1]
    rng = np.random.default_rng(1)
    fields = ["image", "joints2d", "mask"] + (["joints3d"] if joints3d is not None else [])
    batch = {"image": rng.integers(0, 255, (n, res, res, 3), dtype=np.uint8), "joints2d": joints2d, "mask": masks}
    if joints3d is not None:
        batch["joints3d"] = joints3d
    with DatasetWriter(path, n, (res, res), fields, domain="real", split="test") as writer:
        writer.write(0, batch)
    return Path(path)


def _random_split(n, res, seed):
    rng = np.random.default_rng(seed)
    joints = rng.uniform(0, res - 1, (n, 17, 2)).astype(np.float32)
    joints[rng.random((n, 17)) < 0.3] = np.nan
    joints[:, [7, 10]] = np.nan  # spine and head top: COCO has none
    masks = np.zeros((n, res, res), np.uint8)
    for i in range(n):
        x0, y0 = rng.integers(0, res // 2, 2)
        w, h = rng.integers(res // 4, res // 2, 2)
        masks[i, y0:y0 + h, x0:x0 + w] = 1
    return joints, masks


def _hand_pose_floor(gt, pred, side):
    limb = list(LIMB_JOINTS)
    g, labelled = gt[:, limb], np.isfinite(gt[:, limb]).all(-1)
    dist = np.linalg.norm(pred[:, limb] - np.nan_to_num(g), axis=-1)
    dist_flip = np.linalg.norm(pred[:, list(H36M_FLIP)][:, limb] - np.nan_to_num(g), axis=-1)
    out = {"floor_mean_pose_error2d_px": float(dist[labelled].mean())}
    for f in PCK2D_FRACTIONS:
        hits = ((dist <= f * side) & labelled).sum(1)
        hits_flip = ((dist_flip <= f * side) & labelled).sum(1)
        out[f"floor_mean_pose_pck2d@{f:g}"] = float(100 * hits.sum() / labelled.sum())
        out[f"floor_mean_pose_pck2d_flip@{f:g}"] = float(100 * np.maximum(hits, hits_flip).sum() / labelled.sum())
    return out


def _same(got, expected):
    """Equal keys, the numbers to float32 precision, the rest exactly."""
    assert set(got) == set(expected)
    for key, value in expected.items():
        assert got[key] == (pytest.approx(value, rel=1e-5) if isinstance(value, float) else value), key


def _hand_iou(mean_mask, masks):
    inter = (mean_mask & masks.astype(bool)).sum((1, 2))
    union = (mean_mask | masks.astype(bool)).sum((1, 2))
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


def test_floors_match_a_hand_computation_two_fold_and_from_a_training_split(tmp_path):
    res, n = 32, 7
    joints, masks = _random_split(n, res, 0)
    joints[[0, 3]] = np.random.default_rng(2).uniform(0, res - 1, (2, 17, 2))  # each half labels every joint
    joints[6] = np.nan  # a sample without any label: not scored
    data = _write(tmp_path / "test", joints, masks)

    # 2-fold: the first half (3 samples)'s means predict the second (4), and the other way round
    first, second = np.arange(n // 2), np.arange(n // 2, n)
    pred = np.empty_like(joints)
    ious = np.empty(n)
    for train, test in ((first, second), (second, first)):
        pred[test] = np.nanmean(joints[train] / res, axis=0) * res  # the mean normalised pose, in pixels
        ious[test] = _hand_iou(masks[train].mean(0) > 0.5, masks[test])
    expected = _hand_pose_floor(joints, pred, res) | {"floor_mean_mask_iou": float(100 * ious.mean()),
                                                      "floor_source": "2-fold"}
    got = floor_metrics(data)
    assert set(got) == KEYS_FLOOR
    _same(got, expected)

    # a separate training split at another resolution: its means, scored on the whole set (pixel
    # centres at integer coordinates: u = (y + 0.5) / side)
    train_joints, train_masks = _random_split(9, 48, 3)
    train_joints[0] = np.random.default_rng(4).uniform(0, 47, (17, 2))
    split = _write(tmp_path / "train", train_joints, train_masks)
    pred = np.broadcast_to(np.nanmean((train_joints + 0.5) / 48, axis=0) * res - 0.5, joints.shape)
    mean_mask = torch.nn.functional.interpolate(torch.from_numpy(train_masks[:, None].astype(np.float32)),
                                                size=(res, res), mode="nearest")[:, 0].numpy().mean(0) > 0.5
    expected = _hand_pose_floor(joints, pred, res) | {"floor_mean_mask_iou": float(100 * _hand_iou(mean_mask, masks).mean()),
                                                      "floor_source": str(split)}
    _same(floor_metrics(data, split), expected)

    # fewer than 2 samples: no 2-fold floors, and no crash
    single = _write(tmp_path / "single", joints[:1], masks[:1])
    assert floor_metrics(single) == dict.fromkeys(KEYS_FLOOR)
    assert floor_metrics(single, split)["floor_source"] == str(split)


# ---------------------------------------------------------------------------------------- evaluate_model
@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return PoseRegressor(ModelConfig(resolution=16, width=8, hidden=16, heads=("joints",)))


def test_evaluate_model_on_2d_only_data_maps_the_keypoints_to_the_crop_pixels(tmp_path, tiny_model):
    joints, masks = _random_split(6, 32, 5)
    joints[0, list(LIMB_JOINTS)] = np.random.default_rng(6).uniform(0, 31, (12, 2))
    data = _write(tmp_path / "real", joints, masks)
    metrics = evaluate_model(tiny_model, data, batch_size=4)
    assert set(metrics) == KEYS_2D | KEYS_FLOOR | {"num_samples"}  # a joint head: no silhouette IoU
    assert metrics["num_samples"] == 6 and metrics["floor_source"] == "2-fold"
    limb = np.isfinite(joints[:, list(LIMB_JOINTS)]).all(-1)
    assert metrics["num_keypoints"] == limb.sum() and metrics["num_scored_2d"] == limb.any(1).sum()

    # the model runs at 16 px, the crops are 32 px: x_data = (x_model + 0.5) * 2 - 0.5
    model_px = collect_predictions(tiny_model, MaskposeDataset(data))["joints2d"][:, :17]
    pred = (model_px.numpy() + 0.5) * 2 - 0.5
    np.testing.assert_allclose(to_data_pixels(model_px, 16, (32, 32)).numpy(), pred, rtol=1e-6)
    dist = np.linalg.norm(pred[:, list(LIMB_JOINTS)] - np.nan_to_num(joints[:, list(LIMB_JOINTS)]), axis=-1)
    assert metrics["error2d_px"] == pytest.approx(dist[limb].mean(), rel=1e-5)
    for f in PCK2D_FRACTIONS:
        assert metrics[f"pck2d@{f:g}"] == pytest.approx(100 * ((dist <= f * 32) & limb).sum() / limb.sum())
        assert metrics[f"pck2d@{f:g}"] <= metrics[f"pck2d_flip@{f:g}"]
    # the floors are the model-free ones, the mask IoU at the model's resolution (as silhouette_iou)
    assert {k: metrics[k] for k in KEYS_FLOOR} == floor_metrics(data, mask_res=16)
    # a separate floor split
    assert evaluate_model(tiny_model, data, floor_data=data)["floor_source"] == str(data)


def test_evaluate_model_with_3d_and_2d_keeps_the_3d_keys_and_adds_the_2d_ones(tmp_path, tiny_model):
    joints, masks = _random_split(5, 16, 7)
    joints3d = np.random.default_rng(8).normal(0, 0.3, (5, 17, 3)).astype(np.float32)
    data = _write(tmp_path / "both", joints, masks, joints3d)
    metrics = evaluate_model(tiny_model, data)
    assert set(metrics) == KEYS_3D | KEYS_2D | KEYS_FLOOR | {"num_samples"}
    preds = collect_predictions(tiny_model, MaskposeDataset(data))
    assert {k: metrics[k] for k in KEYS_3D} == joint_metrics(preds["joints3d"], torch.from_numpy(joints3d))
    assert {k: metrics[k] for k in KEYS_2D} == pytest.approx(
        keypoint_metrics(preds["joints2d"][:, :17], torch.from_numpy(joints), 16), rel=1e-6)


def test_evaluate_refuses_what_it_cannot_score_with_one_line(tmp_path, tiny_model):
    joints, masks = _random_split(3, 16, 9)
    unlabelled = joints.copy()
    unlabelled[:, list(LIMB_JOINTS)] = np.nan  # only the head and the pelvis labelled
    cases = {
        "no limb": (_write(tmp_path / "nolimb", unlabelled, masks), {}, "no labelled limb keypoint"),
    }
    with DatasetWriter(tmp_path / "masks", 3, (16, 16), ["image", "mask"]) as writer:
        writer.write(0, {"image": np.zeros((3, 16, 16, 3), np.uint8), "mask": masks})
    cases["masks only, joint head"] = (tmp_path / "masks", {}, "joint-head model draws no silhouette")
    with DatasetWriter(tmp_path / "images", 3, (16, 16), ["image"]) as writer:
        writer.write(0, {"image": np.zeros((3, 16, 16, 3), np.uint8)})
    cases["images only"] = (tmp_path / "images", {}, "needs 3D ground truth .* or masks")
    good = _write(tmp_path / "good", joints, masks)
    cases["floor split without joints2d"] = (good, {"floor_data": tmp_path / "masks"}, "floor split has no joints2d")
    cases["floor split without limbs"] = (good, {"floor_data": tmp_path / "nolimb"}, "labels no limb keypoint")
    for name, (path, kwargs, message) in cases.items():
        with pytest.raises(DataError, match=message) as info:
            evaluate_model(tiny_model, path, **kwargs)
        named = str(kwargs.get("floor_data", path))
        assert "\n" not in str(info.value) and named in str(info.value), name


# ---------------------------------------------------------------------------------------- the shipped model
@pytest.fixture(scope="module")
def coco64(tmp_path_factory):
    return import_coco(COCO / "person_keypoints.json", COCO, tmp_path_factory.mktemp("coco") / "coco", res=64,
                       split="test")


def test_the_shipped_checkpoint_on_a_coco_import(coco64):
    metrics = evaluate_checkpoint(SHIPPED, coco64)
    assert set(metrics) == KEYS_2D | KEYS_FLOOR | {"silhouette_iou", "num_samples"}
    assert metrics["num_samples"] == metrics["num_scored_2d"] == 3 and 0 < metrics["num_keypoints"] <= 36
    assert metrics["floor_source"] == "2-fold"
    for prefix in ("pck2d@", "pck2d_flip@", "floor_mean_pose_pck2d@", "floor_mean_pose_pck2d_flip@"):
        values = [metrics[prefix + f] for f in FRACTIONS]
        assert all(0.0 <= v <= 100.0 for v in values) and values == sorted(values), (prefix, values)
    for f in FRACTIONS:
        assert metrics[f"pck2d@{f}"] <= metrics[f"pck2d_flip@{f}"]
    assert 0.0 < metrics["error2d_px"] < 64 and 0.0 < metrics["floor_mean_pose_error2d_px"] < 64
    assert 0.0 <= metrics["silhouette_iou"] <= 100.0 and 0.0 <= metrics["floor_mean_mask_iou"] <= 100.0


def test_cli_evaluate_prints_the_floors_and_writes_every_key(coco64, tmp_path):
    out = tmp_path / "m.json"
    result = CliRunner().invoke(app, ["evaluate", str(SHIPPED), "--data", str(coco64), "--json", str(out),
                                      "--floor-data", str(coco64)])
    assert result.exit_code == 0, result.output
    metrics = json.loads(out.read_text())
    assert set(metrics) == KEYS_2D | KEYS_FLOOR | {"silhouette_iou", "num_samples"}
    assert metrics["floor_source"] == str(coco64)
    assert f"(mean-pose floor {metrics['floor_mean_pose_pck2d@0.1']:.2f} %)" in result.output
    assert f"(mean-mask floor {metrics['floor_mean_mask_iou']:.2f} %)" in result.output
    assert "pck2d@0.1" in result.output and "error2d_px" in result.output

    images_only = tmp_path / "images"
    with DatasetWriter(images_only, 2, (16, 16), ["image"]) as writer:
        writer.write(0, {"image": np.zeros((2, 16, 16, 3), np.uint8)})
    refused = CliRunner().invoke(app, ["evaluate", str(SHIPPED), "--data", str(images_only)])
    assert refused.exit_code == 2 and "needs 3D ground truth" in refused.output
    assert "Traceback" not in refused.output


def test_a_mesh_model_scores_a_masks_only_split_on_its_silhouettes(coco64, tmp_path):
    """The COCO import without its keypoints (a video's extracted crops look like this): the same
    silhouette IoU and mean-mask floor as with them, and no 2D keys."""
    data = MaskposeDataset(coco64)
    fields = [f for f in data.fields if f != "joints2d"]
    masks_only = tmp_path / "masks"
    with DatasetWriter(masks_only, len(data), data.resolution, fields) as writer:
        writer.write(0, {f: np.asarray(data.arrays[f]) for f in fields})
    full, only = evaluate_checkpoint(SHIPPED, coco64), evaluate_checkpoint(SHIPPED, masks_only)
    assert set(only) == {"silhouette_iou", "num_samples", "floor_mean_mask_iou", "floor_source"}
    for key in only:
        assert only[key] == full[key], key
    printed = CliRunner().invoke(app, ["evaluate", str(SHIPPED), "--data", str(masks_only)])
    assert printed.exit_code == 0, printed.output
    assert "silhouette_iou" in printed.output and "mean-mask floor" in printed.output


def test_folder_import_with_keypoints_maps_them_into_the_crop(tmp_path):
    """A folder import with ``--keypoints``: COCO keypoints in image pixels become H36M joints2d in
    crop pixels (hand-computed crop: mask box x 20-39, y 10-69 -> centre (29.5, 39.5), side 72,
    canvas origin (-6, 4), scale 36/72), NaN where unlabelled; an image without a file is all NaN;
    malformed files are refused."""
    from PIL import Image

    images, masks, keypoints = (tmp_path / d for d in ("images", "masks", "kp"))
    for folder in (images, masks, keypoints):
        folder.mkdir()
    mask = np.zeros((80, 100), np.uint8)
    mask[10:70, 20:40] = 255
    for stem in ("a", "b"):
        Image.fromarray(np.full((80, 100, 3), 128, np.uint8)).save(images / f"{stem}.png")
        Image.fromarray(mask).save(masks / f"{stem}.png")
    kp = np.zeros((17, 3))
    kp[11] = (29.5, 39.5, 2)  # left hip at the box centre
    kp[12] = (21.5, 11.5, 1)  # right hip
    (keypoints / "a.json").write_text(json.dumps({"keypoints": kp.ravel().tolist()}))
    out = import_folder(images, masks, tmp_path / "ds", res=36, keypoints_dir=keypoints)
    joints = MaskposeDataset(out).arrays["joints2d"]
    l_hip, r_hip = H36M_JOINTS.index("l_hip"), H36M_JOINTS.index("r_hip")
    np.testing.assert_allclose(joints[0, l_hip], [17.5, 17.5], atol=1e-5)
    np.testing.assert_allclose(joints[0, r_hip], [(21.5 + 0.5 + 6) * 0.5 - 0.5, (11.5 + 0.5 - 4) * 0.5 - 0.5],
                               atol=1e-5)
    assert np.isnan(joints[0, H36M_JOINTS.index("l_knee")]).all() and np.isnan(joints[1]).all()
    (keypoints / "a.json").write_text(json.dumps([1, 2, 3]))
    with pytest.raises(DataError, match="17 COCO"):
        import_folder(images, masks, tmp_path / "ds2", res=36, keypoints_dir=keypoints)
    with pytest.raises(DataError, match="keypoint folder does not exist"):
        import_folder(images, masks, tmp_path / "ds3", res=36, keypoints_dir=tmp_path / "none")


def test_iou_and_its_floor_count_only_the_pixels_inside_the_photo(tmp_path):
    """Real crops carry ``valid`` (the crop pixels inside the photo): the silhouette IoU and the
    mean-mask floor ignore the padding, where the mask is unknown. Hand case, 8x8, 2-fold: sample 0's
    mask is columns 0-3, sample 1's columns 0-5; the padding is columns 4-7 of sample 1 only."""
    from maskpose.train.evaluate import floor_metrics

    masks = np.zeros((2, 8, 8), np.uint8)
    masks[0, :, :4] = 1
    masks[1, :, :6] = 1
    valid = np.ones((2, 8, 8), np.uint8)
    valid[1, :, 4:] = 0
    masks[1] *= valid[1]  # a real mask is cropped by the photo too: columns 0-3 seen
    rng = np.random.default_rng(0)
    batch = {"image": rng.integers(0, 255, (2, 8, 8, 3), dtype=np.uint8), "mask": masks, "valid": valid,
             "joints2d": np.full((2, 17, 2), 4.0, np.float32)}
    with DatasetWriter(tmp_path / "v", 2, (8, 8), list(batch), domain="real", split="test") as writer:
        writer.write(0, batch)
    # fold 1: sample 1's mask (columns 0-3) predicted for sample 0 -> IoU 1; fold 2: sample 0's
    # mask (columns 0-3) for sample 1, inside the photo (columns 0-3) -> IoU 1. Without valid the
    # second would still be 1 here, so also check a prediction that covers the padding:
    assert floor_metrics(tmp_path / "v", mask_res=8)["floor_mean_mask_iou"] == pytest.approx(100.0)
    masks2 = masks.copy()
    masks2[0, :, :] = 1  # sample 0 all on: its mean predicted for sample 1 covers the padding
    batch["mask"] = masks2
    with DatasetWriter(tmp_path / "w", 2, (8, 8), list(batch), domain="real", split="test") as writer:
        writer.write(0, batch)
    # fold 1: columns 0-3 against all-on sample 0 -> 32/64; fold 2: all-on x valid = columns 0-3
    # against sample 1's columns 0-3 -> 1 (it would be 32/64 if the padding counted).
    assert floor_metrics(tmp_path / "w", mask_res=8)["floor_mean_mask_iou"] == pytest.approx(100.0 * (0.5 + 1.0) / 2)


def test_the_silhouette_iou_of_a_real_crop_ignores_the_padding(coco64):
    """The model's silhouette over the crop's padding (``valid`` = 0) is not a false positive."""
    from maskpose.eval import silhouette_iou
    from maskpose.train.checkpoint import load_model

    data = MaskposeDataset(coco64)
    assert data.has("valid")
    model, _ = load_model(SHIPPED)
    preds = collect_predictions(model, data)
    inside = 100.0 * float(silhouette_iou(preds["silhouette"] * preds["valid"], preds["mask"]))
    assert evaluate_checkpoint(SHIPPED, coco64)["silhouette_iou"] == pytest.approx(inside)

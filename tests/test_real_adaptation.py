"""Mask-only adaptation on real crops: the crop's padding (``valid``), occlusion-aware weighting of
false positives, the ``anchor`` to the source model, and splitting a dataset by source image."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from maskpose.apps.demo import SMALL_SOURCE, shipped_checkpoint
from maskpose.data.adapters import crop_valid, import_coco, import_folder
from maskpose.data.batching import load_batch
from maskpose.data.dataset import MaskposeDataset, read_meta, write_dataset
from maskpose.data.split import split_dataset, split_groups, split_in_time
from maskpose.errors import ConfigError, DataError
from maskpose.topology import silhouette_alignment_loss, topology_alignment_loss
from maskpose.topology.baselines import bce_loss, pixel_l1_loss, pixel_l2_loss, point_chamfer_loss, soft_iou_loss
from maskpose.topology.loss import chamfer_of_binary
from maskpose.train.config import TrainConfig
from maskpose.train.loop import Trainer
from maskpose.train.objectives import Objective
from maskpose.train.pipeline import Prediction

SILHOUETTE_LOSSES = ("ls", "lt", "l1", "l2", "bce", "soft_iou", "chamfer_points")
PLAIN = {"ls": silhouette_alignment_loss, "lt": topology_alignment_loss, "l1": pixel_l1_loss, "l2": pixel_l2_loss,
         "bce": bce_loss, "soft_iou": soft_iou_loss, "chamfer_points": point_chamfer_loss}


# ---------------------------------------------------------------------------------------------
# valid: written by the importers


def _photo(path: Path, height: int = 40, width: int = 60) -> None:
    rng = np.random.default_rng(0)
    cv2.imwrite(str(path), rng.integers(0, 255, (height, width, 3), dtype=np.uint8))


def _expected_corner_valid(corner: str) -> np.ndarray:
    """The analytic valid map of a 20x20 box at a corner of a 60x40 photo, margin 1.2, res 12:
    the crop is 24 px, from 2 px outside the photo (x0 = y0 = -2 at the top left; 38, 18 at the
    bottom right, reaching 2 px past W = 60, H = 40); each output pixel averages a 2x2 block, so
    the outer row and column of output pixels lie wholly outside the photo, every other wholly inside."""
    valid = np.ones((12, 12), np.uint8)
    if corner == "top-left":
        valid[0, :] = valid[:, 0] = 0
    else:
        valid[-1, :] = valid[:, -1] = 0
    return valid


def test_import_coco_writes_valid_and_image_index(tmp_path):
    for name in ("p.png", "q.png"):
        _photo(tmp_path / name)
    kp = [0.0] * 51
    kp[0:3] = [5.0, 5.0, 2]  # the nose, labelled

    def person(ann_id, image_id, x, y):
        polygon = [x + 2, y + 2, x + 18, y + 2, x + 18, y + 18, x + 2, y + 18]
        return {"id": ann_id, "image_id": image_id, "bbox": [x, y, 20, 20], "segmentation": [polygon],
                "keypoints": kp, "num_keypoints": 1, "iscrowd": 0, "area": 256}

    coco = {"images": [{"id": 7, "file_name": "p.png", "height": 40, "width": 60},
                       {"id": 3, "file_name": "q.png", "height": 40, "width": 60}],
            "annotations": [person(1, 7, 0, 0), person(2, 7, 40, 20), person(3, 3, 0, 0)]}
    (tmp_path / "c.json").write_text(json.dumps(coco))
    out = import_coco(tmp_path / "c.json", tmp_path, tmp_path / "ds", res=12, margin=1.2)
    meta = read_meta(out)
    assert meta["fields"]["valid"] == {"shape": [12, 12], "dtype": "uint8"}
    assert meta["fields"]["image_index"] == {"shape": [], "dtype": "int32"}
    valid, mask = np.load(out / "valid.npy"), np.load(out / "mask.npy")
    # Sorted by image id: image 3 (position 1 in the JSON) first, then image 7's two people.
    np.testing.assert_array_equal(np.load(out / "image_index.npy"), [1, 0, 0])
    assert meta["attrs"]["annotation_ids"] == [3, 1, 2]
    for k, corner in enumerate(("top-left", "top-left", "bottom-right")):
        np.testing.assert_array_equal(valid[k], _expected_corner_valid(corner))
    assert not (mask.astype(bool) & ~valid.astype(bool)).any()  # a mask lies inside its photo
    # The batch carries valid as (B, 1, H, W), resized like the mask.
    batch = load_batch(MaskposeDataset(out), torch.arange(3), 24, "cpu")
    assert batch["valid"].shape == (3, 1, 24, 24) and batch["valid"].dtype == torch.float32
    np.testing.assert_array_equal(batch["valid"][0, 0, ::2, ::2].numpy(), valid[0])


def test_import_folder_writes_valid(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for stem, (x, y) in {"a": (0, 0), "b": (40, 20)}.items():
        _photo(tmp_path / "images" / f"{stem}.png")
        mask = np.zeros((40, 60), np.uint8)
        mask[y:y + 20, x:x + 20] = 255
        cv2.imwrite(str(tmp_path / "masks" / f"{stem}.png"), mask)
    out = import_folder(tmp_path / "images", tmp_path / "masks", tmp_path / "ds", res=12, margin=1.2)
    valid = np.load(out / "valid.npy")
    np.testing.assert_array_equal(valid[0], _expected_corner_valid("top-left"))
    np.testing.assert_array_equal(valid[1], _expected_corner_valid("bottom-right"))
    # A crop wholly inside the photo is valid everywhere.
    assert crop_valid((40, 60), (30.0, 20.0), 20.0, 10).all()


# ---------------------------------------------------------------------------------------------
# the objective


def _objective(losses, **changes) -> Objective:
    return Objective(TrainConfig(mode="adapt", data="unused", losses=losses, **changes))


def _pred(silhouette: torch.Tensor) -> Prediction:
    b = silhouette.shape[0]
    return Prediction(joints3d=torch.zeros(b, 17, 3), joints2d=torch.zeros(b, 17, 2), silhouette=silhouette)


def _scene(size: int = 32):
    """A soft silhouette (a blurred box) that overlaps a target mask, and a valid map that cuts
    off the left quarter of the crop (the padding of a person at the photo's left edge)."""
    ys, xs = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32),
                            indexing="ij")
    box = lambda x0, x1, y0, y1, soft: (torch.sigmoid((xs - x0) / soft) * torch.sigmoid((x1 - xs) / soft)
                                        * torch.sigmoid((ys - y0) / soft) * torch.sigmoid((y1 - ys) / soft))
    silhouette = torch.stack([box(3, 20, 6, 26, 0.8), box(5, 24, 4, 22, 0.6)])[:, None]
    valid = torch.ones(2, 1, size, size)
    valid[..., : size // 4] = 0
    mask = (torch.stack([box(9, 22, 8, 25, 0.1), box(10, 26, 5, 24, 0.1)])[:, None] > 0.5).float() * valid
    return silhouette, mask, valid


@pytest.mark.parametrize("weight", [1.0, 0.3])
@pytest.mark.parametrize("name", SILHOUETTE_LOSSES)
def test_silhouette_pixels_off_the_photo_get_no_gradient(name, weight):
    silhouette, mask, valid = _scene()
    silhouette.requires_grad_(True)
    objective = _objective({name: 1.0}, false_positive_weight=weight)
    loss, _ = objective(_pred(silhouette), {"mask": mask, "valid": valid})
    loss.backward()
    grad = silhouette.grad
    assert torch.isfinite(grad).all()
    assert (grad[valid == 0] == 0).all()  # exactly: the camera never saw the padding
    assert grad[valid == 1].abs().sum() > 0


@pytest.mark.parametrize("name", SILHOUETTE_LOSSES)
def test_batches_without_valid_are_scored_as_before(name):
    silhouette, mask, _ = _scene()
    objective = _objective({name: 1.0})
    outputs = []
    for batch in ({"mask": mask}, {"mask": mask, "valid": torch.ones_like(mask)}):
        s = silhouette.clone().requires_grad_(True)
        loss, _ = objective(_pred(s), batch)
        loss.backward()
        outputs.append((loss.detach(), s.grad))
    reference = silhouette.clone().requires_grad_(True)
    plain = PLAIN[name](reference, mask, **({"binarization": "soft", "temperature": 0.1} if name in ("ls", "lt") else {}))
    plain.backward()
    for loss, grad in outputs:  # bit for bit: the plain loss of the silhouette itself
        assert torch.equal(loss, plain.detach()) and torch.equal(grad, reference.grad)


def test_the_weighted_chamfer_at_weight_one_is_the_chamfer_and_weighs_one_term():
    """``chamfer_of_binary(A, B, w) = w ||S2D(1-B) A|| / |A| + ||S2D(1-A) B|| / |B|``: bit for bit the
    plain loss at w = 1; at w = 0 the mask-to-silhouette term alone, which with the same term of
    (B, A) sums to the plain loss; linear in w between."""
    silhouette, mask, _ = _scene()
    a, b = (silhouette > 0.5).float(), mask
    plain = chamfer_of_binary(a, b)
    assert torch.equal(chamfer_of_binary(a, b, false_positive_weight=1.0), plain)
    target_term = chamfer_of_binary(a, b, false_positive_weight=0.0)
    pred_term = chamfer_of_binary(b, a, false_positive_weight=0.0)
    assert float(pred_term.sum()) > 0 and float(target_term.sum()) > 0
    torch.testing.assert_close(target_term + pred_term, plain)
    torch.testing.assert_close(chamfer_of_binary(a, b, false_positive_weight=0.3), 0.3 * pred_term + target_term)


@pytest.mark.parametrize("name", ["ls", "lt", "l1", "l2", "bce", "chamfer_points"])
def test_the_false_positive_weight_scales_one_direction_linearly(name):
    """``loss(w) = mask term + w * false-positive term``: the midpoint of w = 0 and the plain loss
    (w = 1) is w = 0.5, so the weighted forms agree with the plain ones."""
    silhouette, mask, _ = _scene()
    values = {w: float(_objective({name: 1.0}, false_positive_weight=w)(_pred(silhouette), {"mask": mask})[0])
              for w in (0.0, 0.5, 1.0)}
    assert values[0.5] == pytest.approx((values[0.0] + values[1.0]) / 2, rel=1e-5, abs=1e-6)
    assert values[0.0] < values[1.0]


def test_false_positive_weight_zero_forgives_a_larger_silhouette():
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., 10:20, 12:18] = 1
    larger = torch.zeros_like(mask)
    larger[..., 6:26, 8:24] = 1  # strictly contains the mask (a body behind an occluder)
    for name in ("l1", "l2", "bce", "soft_iou", "ls"):
        forgiving = float(_objective({name: 1.0}, false_positive_weight=0.0)(_pred(larger), {"mask": mask})[0])
        plain = float(_objective({name: 1.0})(_pred(larger), {"mask": mask})[0])
        assert forgiving == pytest.approx(0.0, abs=1e-5), name
        assert plain > 0.05 and plain == float(PLAIN[name](larger, mask)), name
    # soft IoU: the weighted union
    soft = torch.full_like(mask, 0.5)
    w = 0.25
    expected = 1 - ((soft * mask).sum() + 1e-6) / ((mask + w * soft * (1 - mask)).sum() + 1e-6)
    got = _objective({"soft_iou": 1.0}, false_positive_weight=w)(_pred(soft), {"mask": mask})[0]
    assert float(got) == pytest.approx(float(expected), rel=1e-6)


def test_false_positive_weight_is_validated():
    for bad in (-0.1, float("nan"), "x", True):
        with pytest.raises(ConfigError, match="false_positive_weight"):
            TrainConfig(mode="adapt", data="d", false_positive_weight=bad).validate()
    assert TrainConfig().false_positive_weight == 1.0


# ---------------------------------------------------------------------------------------------
# the anchor to the source model


def _tiny_target(path: Path, n: int = 4, res: int = 64) -> Path:
    rng = np.random.default_rng(1)
    masks = np.zeros((n, res, res), np.uint8)
    masks[:, 12:54, 24:40] = 1
    return write_dataset(path, {"image": rng.integers(0, 255, (n, res, res, 3), dtype=np.uint8), "mask": masks})


@pytest.fixture(scope="module")
def small_source():
    path = shipped_checkpoint(SMALL_SOURCE)
    if path is None:
        pytest.skip("the small source checkpoint is not shipped")
    return str(path)


def test_anchor_is_zero_at_the_source_and_grows_when_the_model_moves(small_source, tmp_path):
    torch.set_num_threads(1)
    data = _tiny_target(tmp_path / "target")
    config = TrainConfig(mode="adapt", data=str(data), out=str(tmp_path / "run"), init_checkpoint=small_source,
                         losses={"ls": 1.0, "anchor": 1.0}, steps=1, batch_size=2, lr=1e-2)
    trainer = Trainer(config, progress=False)
    source = trainer.anchor_model
    assert source is not None and not source.training
    assert not any(p.requires_grad for p in source.parameters())
    batch = trainer.add_anchor(load_batch(trainer.data, torch.arange(4), trainer.res, "cpu"))
    anchor = lambda: float(trainer.objective.terms["anchor"](trainer.predict(batch), batch).detach())
    assert anchor() == 0.0  # the model is its source
    before = [p.detach().clone() for p in source.parameters()]
    record = trainer.train_step()  # adapts the model, never its source
    assert "anchor" in record and all(torch.equal(a, b) for a, b in zip(before, source.parameters()))
    with torch.no_grad():
        pred = trainer.predict(batch).params
        expected = ((pred.phenotypes - batch["anchor_phenotypes"]).square().mean()
                    + (pred.scale.log() - batch["anchor_scale"].log()).square().mean())
        assert anchor() == pytest.approx(float(expected)) and anchor() > 0
        # Along one direction away from the source, the anchor grows (quadratically near it).
        generator = torch.Generator().manual_seed(0)
        direction = [torch.randn(p.shape, generator=generator) for p in source.parameters()]
        values = []
        for eps in (1e-4, 1e-3, 1e-2):
            for p, p0, d in zip(trainer.model.parameters(), source.parameters(), direction):
                p.copy_(p0 + eps * d)
            values.append(anchor())
    assert 0.0 < values[0] < values[1] < values[2]
    # Without the anchor loss no source copy is kept.
    plain = Trainer(TrainConfig(**{**config.to_dict(), "losses": {"ls": 1.0}, "out": str(tmp_path / "run2")}),
                    progress=False)
    assert plain.anchor_model is None


def test_anchor_needs_adapt_from_a_checkpoint(tmp_path):
    with pytest.raises(ConfigError, match="anchor"):
        TrainConfig(mode="pretrain", data="d", losses={"joints3d": 1.0, "anchor": 1.0}).validate()
    with pytest.raises(ConfigError, match="anchor.*init_checkpoint"):
        TrainConfig(mode="adapt", data="d", losses={"ls": 1.0, "anchor": 1.0}).validate()
    silhouette, mask, _ = _scene()
    with pytest.raises(ConfigError, match="mesh head"):
        _objective({"anchor": 1.0})(_pred(silhouette), {"mask": mask})


# ---------------------------------------------------------------------------------------------
# splitting by source image


def _grouped(path: Path, image_index=(0, 0, 1, 2, 2, 2, 3, 4, 5, 5), n: int = 10, frame_index=None) -> Path:
    n = n if image_index is None else len(image_index)
    rng = np.random.default_rng(2)
    arrays = {"image": rng.integers(0, 255, (n, 8, 8, 3), dtype=np.uint8),
              "mask": (rng.random((n, 8, 8)) > 0.5).astype(np.uint8),
              "valid": np.ones((n, 8, 8), np.uint8),
              "joints2d": rng.normal(size=(n, 17, 2)).astype(np.float32)}
    if image_index is not None:
        arrays["image_index"] = np.asarray(image_index, np.int32)
    if frame_index is not None:
        arrays["frame_index"] = np.asarray(frame_index, np.int32)
    return write_dataset(path, arrays, domain="coco", split="test", attrs={"annotation_ids": list(range(100, 100 + n)),
                                                                        "adapter": "coco"})


def test_split_keeps_the_people_of_one_image_together(tmp_path):
    source = _grouped(tmp_path / "ds")
    result = split_dataset(source, tmp_path / "a", tmp_path / "b", fraction=0.5, seed=0)
    assert result["by"] == "image_index"
    index = np.load(source / "image_index.npy")
    a, b = np.array(result["a"]["indices"]), np.array(result["b"]["indices"])
    assert sorted(np.concatenate([a, b]).tolist()) == list(range(len(index)))
    assert not set(index[a]) & set(index[b])
    assert len(a) >= 5 and len(b) >= 1  # A takes whole images until it holds half the samples
    for part, rows in (("a", a), ("b", b)):
        meta = read_meta(tmp_path / part)
        assert set(meta["fields"]) == set(read_meta(source)["fields"]) and meta["domain"] == "coco"
        for name in meta["fields"]:  # every field copied as stored
            np.testing.assert_array_equal(np.load(tmp_path / part / f"{name}.npy"), np.load(source / f"{name}.npy")[rows])
        assert meta["attrs"]["annotation_ids"] == [100 + i for i in rows]
        assert meta["attrs"]["split"]["source_indices"] == rows.tolist() and meta["attrs"]["adapter"] == "coco"
    # Deterministic: the same seed gives the same parts, byte for byte.
    again = split_dataset(source, tmp_path / "a2", tmp_path / "b2", fraction=0.5, seed=0)
    assert again["a"]["indices"] == result["a"]["indices"]
    assert (tmp_path / "a2" / "image.npy").read_bytes() == (tmp_path / "a" / "image.npy").read_bytes()
    # Other seeds give other (still whole-image) splits.
    seen = set()
    for seed in range(8):
        pa, pb = split_groups(len(index), index, 0.5, seed)
        assert not set(index[pa]) & set(index[pb])
        seen.add(tuple(pa))
    assert len(seen) > 1


def test_split_without_image_index_is_by_sample(tmp_path):
    source = _grouped(tmp_path / "ds", image_index=None)
    result = split_dataset(source, tmp_path / "a", tmp_path / "b", fraction=0.3, seed=1)
    assert result["by"] == "sample" and result["a"]["num_samples"] == 3 and result["b"]["num_samples"] == 7


def test_a_video_s_crops_are_split_in_time(tmp_path):
    """Crops with a frame_index (a video's extraction) and no image_index: A the earliest frames
    until it holds half the samples, B the later ones, whatever the seed."""
    frames = (7, 0, 0, 3, 3, 3, 5, 9, 9, 11)  # samples per frame: 0:2, 3:3, 5:1, 7:1, 9:2, 11:1
    source = _grouped(tmp_path / "ds", image_index=None, n=len(frames), frame_index=frames)
    result = split_dataset(source, tmp_path / "a", tmp_path / "b", fraction=0.5, seed=3)
    assert result["by"] == "frame_index"
    # frames 0 and 3 hold 5 of the 10 samples: A stops there
    assert result["a"]["indices"] == [1, 2, 3, 4, 5] and result["b"]["indices"] == [0, 6, 7, 8, 9]
    assert result["a"]["num_groups"] == 2 and result["b"]["num_groups"] == 4
    np.testing.assert_array_equal(np.load(tmp_path / "b" / "frame_index.npy"), [7, 5, 9, 9, 11])
    a, b = split_in_time(np.asarray(frames), 0.6)  # 6 samples: through frame 5
    assert a.tolist() == [1, 2, 3, 4, 5, 6] and b.tolist() == [0, 7, 8, 9]
    a, b = split_in_time(np.asarray(frames), 0.01)  # at least one frame on each side
    assert a.tolist() == [1, 2] and len(b) == 8
    a, b = split_in_time(np.asarray(frames), 0.99)
    assert b.tolist() == [9]
    with pytest.raises(DataError, match="one video frame"):
        split_in_time(np.array([4, 4, 4]), 0.5)
    with pytest.raises(ConfigError, match="fraction"):
        split_in_time(np.asarray(frames), 0.0)


def test_split_errors(tmp_path):
    source = _grouped(tmp_path / "ds")
    with pytest.raises(ConfigError, match="fraction"):
        split_dataset(source, tmp_path / "a", tmp_path / "b", fraction=1.0)
    with pytest.raises(ConfigError, match="same folder"):
        split_dataset(source, tmp_path / "a", tmp_path / "a")
    with pytest.raises(ConfigError, match="being split"):
        split_dataset(source, source, tmp_path / "b")
    with pytest.raises(DataError, match="cannot split"):
        split_dataset(_grouped(tmp_path / "one", image_index=(4, 4, 4)), tmp_path / "a", tmp_path / "b")
    with pytest.raises(DataError, match="does not exist"):
        split_dataset(tmp_path / "missing", tmp_path / "a", tmp_path / "b")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_cli_split(tmp_path):
    from maskpose.cli import app

    runner = CliRunner()
    source = _grouped(tmp_path / "ds")
    ok = runner.invoke(app, ["data", "split", str(source), "--fraction", "0.5", "--seed", "0",
                             "--out-a", str(tmp_path / "a"), "--out-b", str(tmp_path / "b")])
    assert ok.exit_code == 0, ok.output
    assert "samples from" in ok.output and "images" in ok.output
    assert len(MaskposeDataset(tmp_path / "a")) + len(MaskposeDataset(tmp_path / "b")) == 10
    (tmp_path / "file").write_text("x")
    cases = {
        "fraction": (["--fraction", "1.5"], "fraction must be a number in (0, 1)"),
        "nan": (["--fraction", "nan"], "fraction must be a number in (0, 1)"),
        "same": (["--out-b", str(tmp_path / "a")], "same folder"),
        "file": (["--out-a", str(tmp_path / "file")], "file"),
        "seed": (["--seed", "-1"], "seed must be an integer >= 0"),
    }
    for name, (extra, message) in cases.items():
        args = ["data", "split", str(source), "--out-a", str(tmp_path / "a"), "--out-b", str(tmp_path / "b"), *extra]
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (name, result.output)
        assert message in result.output and "Traceback" not in result.output, (name, result.output)
        assert len([line for line in result.output.strip().splitlines() if line.startswith("error:")]) == 1, name
    missing = runner.invoke(app, ["data", "split", str(tmp_path / "none"), "--out-a", str(tmp_path / "x"),
                                  "--out-b", str(tmp_path / "y")])
    assert missing.exit_code == 2 and "does not exist" in missing.output


# ---------------------------------------------------------------------------------------------
# a real video: adapt on its earlier frames, score on its later ones


def test_mask_only_adaptation_on_a_real_video_raises_iou_on_its_later_frames(tmp_path):
    """100 frames of OpenCV's vtest.avi (tests/data/video): the extracted crops split in time
    (A the first 144 crops, B the last 139), the shipped 64 px studio model adapted on A with
    masks only (L_S + L_T + prior, the demo's schedule, the occlusion-aware weight 0.25 of false
    positives: the best of the recipes measured on the whole vtest.avi, docs/benchmark.md), 200
    steps of batch 8. Its silhouettes fit B's masks better (48.0 -> 59.0 % when written)."""
    from dataclasses import replace

    from maskpose.apps.demo import demo_adapt_run
    from maskpose.data.video import ExtractionConfig, extract_video
    from maskpose.train.evaluate import evaluate_checkpoint
    from maskpose.train.loop import train

    clip = Path(__file__).parent / "data" / "video" / "vtest_375_474.avi"
    crops = extract_video(clip, tmp_path / "crops", ExtractionConfig(resolution=64)).path
    parts = split_dataset(crops, tmp_path / "a", tmp_path / "b", 0.5)
    assert parts["by"] == "frame_index"
    last_a = max(np.load(tmp_path / "a" / "frame_index.npy"))
    assert last_a < min(np.load(tmp_path / "b" / "frame_index.npy"))  # no frame on both sides
    source = shipped_checkpoint(SMALL_SOURCE)
    config = replace(demo_adapt_run(), data=str(tmp_path / "a"), out=str(tmp_path / "run"), init_checkpoint=str(source),
                     steps=200, batch_size=8, fit_iterations=8, false_positive_weight=0.25, log_every=200,
                     checkpoint_every=200, seed=0)
    adapted = train(config, progress=False).checkpoint
    before = evaluate_checkpoint(source, tmp_path / "b", floor_data=tmp_path / "a")
    after = evaluate_checkpoint(adapted, tmp_path / "b", floor_data=tmp_path / "a")
    assert after["silhouette_iou"] > before["silhouette_iou"] + 5.0, (before["silhouette_iou"], after["silhouette_iou"])


def test_import_coco_occlusion_aware_marks_other_people_as_unknown(tmp_path):
    """With ``occlusion_aware``, ``valid`` is also 0 where another person of the same photo (crowds
    included, other categories not) covers the crop outside this person's own mask; elsewhere it
    is the plain import's. The other person's mask in this crop is read from a second import of
    it with this person's box."""
    _photo(tmp_path / "p.png")
    _photo(tmp_path / "q.png")
    kp = [0.0] * 51
    kp[0:3] = [12.0, 12.0, 2]

    def square(x0, y0, x1, y1):
        return [[x0, y0, x1, y0, x1, y1, x0, y1]]

    def ann(ann_id, image_id, bbox, seg, **extra):
        return {"id": ann_id, "image_id": image_id, "bbox": bbox, "segmentation": seg, "keypoints": kp,
                "num_keypoints": 1, "iscrowd": 0, "area": 100, "category_id": 1, **extra}

    box = [2, 2, 20, 20]
    people = [ann(1, 7, box, square(4, 4, 18, 20)),                      # the person
              ann(2, 7, [12, 8, 20, 20], square(14, 8, 30, 26)),           # a second person, overlapping
              ann(3, 7, [0, 20, 10, 10], square(0, 20, 9, 30), iscrowd=1),  # a crowd region: an occluder too
              ann(4, 7, [0, 0, 8, 8], square(0, 0, 8, 8), category_id=2),  # not a person: ignored
              ann(5, 3, box, square(0, 0, 40, 40))]                        # another photo: ignored
    images = [{"id": 7, "file_name": "p.png", "height": 40, "width": 60},
              {"id": 3, "file_name": "q.png", "height": 40, "width": 60}]
    categories = [{"id": 1, "name": "person"}, {"id": 2, "name": "dog"}]
    (tmp_path / "c.json").write_text(json.dumps({"images": images, "annotations": people, "categories": categories}))
    plain = import_coco(tmp_path / "c.json", tmp_path, tmp_path / "plain", res=24, margin=1.2)
    aware = import_coco(tmp_path / "c.json", tmp_path, tmp_path / "aware", res=24, margin=1.2, occlusion_aware=True)
    assert read_meta(aware)["attrs"]["occlusion_aware"] and not read_meta(plain)["attrs"]["occlusion_aware"]
    ids = read_meta(aware)["attrs"]["annotation_ids"]
    own = ids.index(1)
    # the occluders in the person's crop: persons 2 and 3, cut out with the person's box
    union = square(14, 8, 30, 26)[0], square(0, 20, 9, 30)[0]
    (tmp_path / "o.json").write_text(json.dumps({"images": images[:1], "categories": categories, "annotations": [
        ann(9, 7, box, list(union))]}))
    covered = np.load(import_coco(tmp_path / "o.json", tmp_path, tmp_path / "o", res=24, margin=1.2) / "mask.npy")[0]
    mask = np.load(aware / "mask.npy")[own].astype(bool)
    valid_plain = np.load(plain / "valid.npy")[own].astype(bool)
    valid_aware = np.load(aware / "valid.npy")[own].astype(bool)
    np.testing.assert_array_equal(valid_aware, valid_plain & ~(covered.astype(bool) & ~mask))
    assert (valid_plain & ~valid_aware).sum() > 20 and not (mask & ~valid_aware).any()
    np.testing.assert_array_equal(np.load(aware / "mask.npy"), np.load(plain / "mask.npy"))
    alone = ids.index(5)  # the only person of its photo: nothing changes
    np.testing.assert_array_equal(np.load(aware / "valid.npy")[alone], np.load(plain / "valid.npy")[alone])

"""Dataset format, reader, adapters (SPIN npz, COCO, folder), inspection and the data CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from maskpose.data.adapters import (
    COCO_TO_H36M,
    SPIN24_TO_H36M,
    coco_to_h36m,
    crop,
    decode_rle,
    import_coco,
    import_folder,
    import_npz,
    polygons_to_mask,
)
from maskpose.data.dataset import MaskposeDataset, dataset_ready, read_meta, write_dataset
from maskpose.data.inspect import dataset_contact_sheet, dataset_stats
from maskpose.errors import DataError
from maskpose.io import atomic_write, atomic_write_json

COCO = Path(__file__).parent / "data" / "coco"


def _tiny_dataset(path: Path, n: int = 10, res: int = 16, labels: bool = True) -> Path:
    rng = np.random.default_rng(0)
    arrays = {
        "image": rng.integers(0, 255, (n, res, res, 3), dtype=np.uint8),
        "mask": np.zeros((n, res, res), np.uint8),
    }
    arrays["mask"][:, 4:12, 6:10] = 1
    if labels:
        arrays["joints2d"] = rng.uniform(0, res - 1, (n, 17, 2)).astype(np.float32)
        arrays["joints3d"] = rng.normal(size=(n, 17, 3)).astype(np.float32)
    return write_dataset(path, arrays, domain="tiny", split="test")


# ---------------------------------------------------------------------------------------------
# Reader


def test_dataset_ready_matches_domain_size_resolution_and_labels(tmp_path):
    labelled = _tiny_dataset(tmp_path / "l", n=4, res=16)
    unlabelled = _tiny_dataset(tmp_path / "u", n=4, res=16, labels=False)
    assert dataset_ready(labelled, "tiny", 4, 16, labels=True)
    assert dataset_ready(unlabelled, "tiny", 4, 16) and not dataset_ready(unlabelled, "tiny", 4, 16, labels=True)
    for domain, n, res in (("studio", 4, 16), ("tiny", 5, 16), ("tiny", 4, 32)):
        assert not dataset_ready(labelled, domain, n, res)
    assert not dataset_ready(tmp_path / "missing", "tiny", 4, 16)
    (tmp_path / "torn").mkdir()
    (tmp_path / "torn" / "meta.json").write_text("{")
    assert not dataset_ready(tmp_path / "torn", "tiny", 4, 16)


def test_subsets_and_shards_are_disjoint_and_cover(tmp_path):
    ds = MaskposeDataset(_tiny_dataset(tmp_path / "d", n=10))
    for world in (1, 2, 3, 4):
        shards = [ds.shard(r, world) for r in range(world)]
        seen = np.concatenate([s.indices for s in shards])
        assert sorted(seen.tolist()) == list(range(10))  # cover, and no index twice
        assert sum(len(s) for s in shards) == 10
        assert max(len(s) for s in shards) - min(len(s) for s in shards) <= 1
    sub = ds.subset([7, 2, 5])
    assert sub.indices.tolist() == [7, 2, 5] and int(sub[0]["index"]) == 7
    halves = [sub.shard(0, 2), sub.shard(1, 2)]
    assert sorted(np.concatenate([h.indices for h in halves]).tolist()) == [2, 5, 7]
    np.testing.assert_array_equal(ds[3]["joints2d"].numpy(), np.load(ds.path / "joints2d.npy")[3])
    with pytest.raises(DataError, match="rank 2"):
        ds.shard(2, 2)


def test_missing_array_is_named(tmp_path):
    path = _tiny_dataset(tmp_path / "d")
    (path / "mask.npy").unlink()
    with pytest.raises(DataError, match=r"mask\.npy.*missing"):
        MaskposeDataset(path)
    with pytest.raises(DataError, match=r"mask\.npy.*missing"):
        dataset_stats(path)
    (path / "meta.json").unlink()
    with pytest.raises(DataError, match="no meta.json"):
        MaskposeDataset(path)


# ---------------------------------------------------------------------------------------------
# SPIN npz


def _spin_fixture(tmp_path: Path, n: int = 3, res_src: int = 100):
    """Images with a bright square at a known place, and SPIN arrays describing it."""
    root = tmp_path / "images"
    (root / "sub").mkdir(parents=True)
    rng = np.random.default_rng(1)
    names, centers, scales, parts, S = [], [], [], [], []
    for i in range(n):
        image = np.zeros((res_src, res_src + 20, 3), np.uint8)
        cx, cy = 40 + 10 * i, 50
        image[cy - 10:cy + 11, cx - 10:cx + 11] = (200, 100, 50)
        name = f"sub/img_{i}.png"
        cv2.imwrite(str(root / name), image)
        names.append(name)
        centers.append([cx, cy])
        scales.append(60 / 200)  # a 60 px box
        part = np.zeros((24, 3))
        part[:, :2] = rng.uniform(cx - 25, cx + 25, (24, 2))
        part[:, 2] = 1.0
        part[5, 2] = 0.0  # left ankle (SPIN index 5) not labelled
        parts.append(part)
        joints = np.concatenate([rng.normal(size=(24, 3)), np.ones((24, 1))], axis=1)
        joints[17, 3] = 0.0  # jaw missing (H36M neck/nose)
        S.append(joints)
    arrays = dict(imgname=np.array(names), center=np.array(centers, float), scale=np.array(scales),
                  part=np.array(parts), S=np.array(S))
    return root, arrays


def test_npz_round_trip(tmp_path):
    root, arrays = _spin_fixture(tmp_path)
    np.savez(tmp_path / "h36m_test.npz", **arrays)
    out = import_npz(tmp_path / "h36m_test.npz", root, tmp_path / "ds", res=64)
    meta = read_meta(out)
    assert meta["domain"] == "h36m_test" and set(meta["fields"]) == {"image", "joints3d", "joints2d"}
    images, joints2d, joints3d = (np.load(out / f"{k}.npy") for k in ("image", "joints2d", "joints3d"))
    # The 60 px box fills the 64 px crop: the 21 px square is centred and ~22 px wide.
    square = images.max(-1) > 100
    for m in square:
        ys, xs = np.nonzero(m)
        assert abs(xs.mean() - 31.5) < 1.0 and abs(ys.mean() - 31.5) < 1.0
        assert 20 <= xs.max() - xs.min() + 1 <= 24
    # Joints follow the crop transform, mapped to H36M-17; missing ones are NaN (never zeros).
    s = 64 / 60
    expected = (arrays["part"][:, list(SPIN24_TO_H36M), :2] - arrays["center"][:, None]) * s + 31.5
    labelled = arrays["part"][:, list(SPIN24_TO_H36M), 2] > 0
    np.testing.assert_allclose(joints2d[labelled], expected[labelled], atol=0.6)
    assert np.isnan(joints2d[:, 6]).all()  # l_ankle <- SPIN 5, confidence 0
    assert np.isnan(joints3d[:, 9]).all() and np.isfinite(joints3d[:, [0, 1, 10]]).all()
    np.testing.assert_allclose(joints3d[:, 3], arrays["S"][:, 0, :3], rtol=1e-6)  # r_ankle <- SPIN 0


def test_npz_errors(tmp_path):
    root, arrays = _spin_fixture(tmp_path, n=2)
    no_scale = {k: v for k, v in arrays.items() if k != "scale"}
    np.savez(tmp_path / "bad.npz", **no_scale)
    with pytest.raises(DataError, match=r"bad\.npz.*missing key.*scale"):
        import_npz(tmp_path / "bad.npz", root, tmp_path / "ds")
    bad_shape = dict(arrays, S=np.zeros((2, 24, 3)))  # 24 joints without confidence
    np.savez(tmp_path / "shape.npz", **bad_shape)
    with pytest.raises(DataError, match=r"shape\.npz.*'S'"):
        import_npz(tmp_path / "shape.npz", root, tmp_path / "ds")
    (root / "sub" / "img_1.png").write_bytes(b"not a png")
    np.savez(tmp_path / "ok.npz", **arrays)
    with pytest.raises(DataError, match=r"img_1\.png.*cannot read"):
        import_npz(tmp_path / "ok.npz", root, tmp_path / "ds")
    with pytest.raises(DataError, match="does not exist"):
        import_npz(tmp_path / "none.npz", root, tmp_path / "ds")


# ---------------------------------------------------------------------------------------------
# COCO


def test_coco_round_trip(tmp_path):
    out = import_coco(COCO / "person_keypoints.json", COCO, tmp_path / "coco", res=64)
    coco = json.loads((COCO / "person_keypoints.json").read_text())
    expected = [a for a in coco["annotations"] if a["num_keypoints"] > 0 and not a["iscrowd"]]
    meta = read_meta(out)
    assert meta["num_samples"] == len(expected) == 3
    assert set(meta["fields"]) == {"image", "mask", "joints2d", "valid", "image_index"}
    images, masks, joints = (np.load(out / f"{k}.npy") for k in ("image", "mask", "joints2d"))
    for ann, _image, mask, j in zip(sorted(expected, key=lambda a: (a["image_id"], a["id"])), images, masks, joints):
        # Re-derive the mask independently: rasterise the polygon in the full image and crop.
        info = next(i for i in coco["images"] if i["id"] == ann["image_id"])
        full = polygons_to_mask(ann["segmentation"], info["height"], info["width"])
        x0, y0, w, h = ann["bbox"]
        assert abs(full.sum() - ann["area"]) / ann["area"] < 0.1  # rasteriser agrees with COCO's area
        side = max(w, h) * 1.2
        ref_img = cv2.cvtColor(cv2.imread(str(COCO / info["file_name"])), cv2.COLOR_BGR2RGB)
        _, ref, _ = crop(ref_img, (x0 + (w - 1) / 2, y0 + (h - 1) / 2), side, 64, full)
        assert np.array_equal(mask, ref)
        coverage = mask.mean()
        assert 0.1 < coverage < 0.8
        # Labelled joints land on (or right next to) the person's mask.
        kp = np.asarray(ann["keypoints"], float).reshape(17, 3)
        valid = np.isfinite(j).all(1)
        assert valid.sum() >= 6 and np.isnan(j[10]).all() and np.isnan(j[7]).all()  # head top, spine
        dilated = cv2.dilate(mask, np.ones((7, 7), np.uint8))
        pts = np.clip(np.rint(j[valid]).astype(int), 0, 63)
        assert dilated[pts[:, 1], pts[:, 0]].mean() >= 0.8
        # Left/right are not swapped: l_shoulder (11) comes from COCO 5.
        if kp[5, 2] > 0:
            s = 64 / side
            np.testing.assert_allclose(j[11], (kp[5, :2] - [x0 + (w - 1) / 2, y0 + (h - 1) / 2]) * s + 31.5,
                                       atol=s + 0.6)


def test_coco_keeps_only_the_person_category(tmp_path):
    coco = json.loads((COCO / "person_keypoints.json").read_text())
    person = next(a for a in coco["annotations"] if a["num_keypoints"] > 0 and not a["iscrowd"])
    coco["categories"] = [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}]
    coco["annotations"].append({**person, "id": 9001, "category_id": 3})  # a car with keypoints
    (tmp_path / "ann.json").write_text(json.dumps(coco))
    meta = read_meta(import_coco(tmp_path / "ann.json", COCO, tmp_path / "a", res=32))
    assert meta["num_samples"] == 3 and 9001 not in meta["attrs"]["annotation_ids"]
    assert meta["attrs"]["skipped_other_categories"] == 1
    coco["categories"] = [{"id": 3, "name": "pedestrian"}]  # no category named person: keep them all
    (tmp_path / "own.json").write_text(json.dumps(coco))
    assert read_meta(import_coco(tmp_path / "own.json", COCO, tmp_path / "b", res=32))["num_samples"] == 4


def test_coco_helpers():
    # Polygon raster (cv2.fillPoly includes the border): corners 2..11 cover 10x10 pixel centres.
    m = polygons_to_mask([[2, 2, 11, 2, 11, 11, 2, 11]], 20, 20)
    assert m[2:12, 2:12].all() and m.sum() == 100
    # RLE (column-major), list and compressed forms ("3250O" is pycocotools' encoding of the list).
    rle = {"counts": [3, 2, 5, 2, 4], "size": [4, 4]}
    dense = decode_rle(rle, 4, 4)
    assert dense.sum() == 4 and dense[3, 0] and dense[0, 1]
    assert np.array_equal(decode_rle({"counts": "3250O", "size": [4, 4]}, 4, 4), dense)
    # COCO -> H36M: the table built from the joint names is the published one; midpoints, nose, missing.
    assert COCO_TO_H36M == ((11, 12), 12, 14, 16, 11, 13, 15, None, (5, 6), 0, None, 5, 7, 9, 6, 8, 10)
    kp = np.zeros((1, 17, 3))
    kp[0, :, :2] = np.arange(34).reshape(17, 2)
    kp[0, :, 2] = 2
    kp[0, 12, 2] = 0  # right hip not labelled -> pelvis missing too
    h = coco_to_h36m(kp)[0]
    assert np.isnan(h[0]).all() and np.isnan(h[1]).all()
    np.testing.assert_allclose(h[8], (kp[0, 5, :2] + kp[0, 6, :2]) / 2)
    np.testing.assert_allclose(h[9], kp[0, 0, :2])


def test_coco_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match=r"bad\.json.*not valid JSON"):
        import_coco(bad, COCO, tmp_path / "o")
    images = tmp_path / "img"
    images.mkdir()
    shutil.copy(COCO / "person_keypoints.json", tmp_path / "ann.json")
    (images / "000000000785.jpg").write_bytes(b"\xff\xd8 truncated")
    with pytest.raises(DataError, match=r"000000000785\.jpg.*cannot read"):
        import_coco(tmp_path / "ann.json", images, tmp_path / "o")


# ---------------------------------------------------------------------------------------------
# Folder of images + masks


def _folder_fixture(tmp_path: Path, n: int = 3):
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir(parents=True)
    masks.mkdir(parents=True)
    for i in range(n):
        image = np.full((80, 60, 3), 30, np.uint8)
        mask = np.zeros((80, 60), np.uint8)
        mask[20 + i:60, 10 + 2 * i:30] = 255
        image[mask > 0] = (10, 200, 90)
        cv2.imwrite(str(images / f"p{i}.jpg" if i else images / f"p{i}.png"), image[..., ::-1])
        cv2.imwrite(str(masks / f"p{i}.png"), mask if i != 1 else (mask > 0).astype(np.uint8))  # 0/255 and 0/1
    return images, masks


def test_folder_round_trip(tmp_path):
    images, masks = _folder_fixture(tmp_path)
    out = import_folder(images, masks, tmp_path / "ds", res=32)
    meta = read_meta(out)
    assert meta["num_samples"] == 3 and meta["attrs"]["stems"] == ["p0", "p1", "p2"]
    image, mask = np.load(out / "image.npy"), np.load(out / "mask.npy")
    for img, m in zip(image, mask):
        green = (img[..., 1] > 120) & (img[..., 0] < 80)
        assert (green == m.astype(bool)).mean() > 0.97  # the mask sits on the person's pixels
        ys, xs = np.nonzero(m)
        assert abs(ys.mean() - 15.5) < 2 and abs(xs.mean() - 15.5) < 2  # crop centred on the mask
        assert (ys.max() - ys.min() + 1) > 32 / 1.2 - 3  # larger side fills 1/margin of the crop


def test_folder_errors(tmp_path):
    images, masks = _folder_fixture(tmp_path)
    cv2.imwrite(str(masks / "p2.png"), np.zeros((40, 60), np.uint8) + 255)
    with pytest.raises(DataError, match=r"p2\.png.*mask is 60x40.*80"):
        import_folder(images, masks, tmp_path / "ds")
    cv2.imwrite(str(masks / "p2.png"), np.zeros((80, 60), np.uint8))
    with pytest.raises(DataError, match=r"p2\.png.*empty"):
        import_folder(images, masks, tmp_path / "ds")
    (masks / "p2.png").unlink()
    with pytest.raises(DataError, match=r"no mask for 1 image.*p2\.jpg"):
        import_folder(images, masks, tmp_path / "ds")
    images2, masks2 = _folder_fixture(tmp_path / "b")
    (images2 / "p0.png").write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"p0\.png.*cannot read the image"):
        import_folder(images2, masks2, tmp_path / "ds")


# ---------------------------------------------------------------------------------------------
# Inspection and CLI


def test_stats_and_contact_sheet(tmp_path):
    path = _tiny_dataset(tmp_path / "d", n=5)
    stats = dataset_stats(path)
    assert stats["num_samples"] == 5 and stats["resolution"] == [16, 16]
    assert stats["mask_coverage"]["mean"] == pytest.approx(32 / 256)
    assert stats["labels"] == ["joints3d", "joints2d"] and stats["joints2d"]["inside_fraction"] == 1.0
    sheet = dataset_contact_sheet(path, tmp_path / "sheet.png", n=4, cell=32)
    image = cv2.imread(str(sheet))
    assert image.shape == (64, 64, 3)
    assert (image[..., 1] == 255).any()  # mask outline drawn in green


def test_cli(tmp_path):
    from maskpose.cli import app

    runner = CliRunner()
    images, masks = _folder_fixture(tmp_path)
    result = runner.invoke(app, ["data", "import", "folder", str(images), str(masks), "--out",
                                 str(tmp_path / "ds"), "--res", "32"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["data", "stats", str(tmp_path / "ds"), "--json", str(tmp_path / "s.json")])
    assert result.exit_code == 0 and "3 samples at 32x32" in result.output
    assert json.loads((tmp_path / "s.json").read_text())["num_samples"] == 3
    result = runner.invoke(app, ["data", "show", str(tmp_path / "ds"), "--n", "3", "--out", str(tmp_path / "s.png")])
    assert result.exit_code == 0 and (tmp_path / "s.png").exists()
    result = runner.invoke(app, ["data", "import", "coco", str(COCO / "person_keypoints.json"), "--images",
                                 str(COCO), "--out", str(tmp_path / "coco"), "--res", "48"])
    assert result.exit_code == 0, result.output
    # Bad input: one clear line, exit code 2, no traceback.
    result = runner.invoke(app, ["data", "stats", str(tmp_path / "missing")])
    assert result.exit_code == 2 and "does not exist" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["synth", "--out", str(tmp_path / "x"), "--domain", "nope", "--n", "1"])
    assert result.exit_code == 2 and "unknown domain 'nope'" in result.output


def test_atomic_write_failure_keeps_the_old_file(tmp_path):
    target = tmp_path / "meta.json"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_write(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["meta.json"]


def test_atomic_writers_do_not_share_a_temp_file(tmp_path):
    target = tmp_path / "state.json"
    with atomic_write(target) as first, atomic_write(target) as second:
        assert first != second and first.parent == second.parent == tmp_path
        first.write_text("first")
        second.write_text("second")
    # the outer writer finishes last, so its content wins; no temporary file is left
    assert target.read_text() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]
    atomic_write_json(target, {"a": 1})
    assert json.loads(target.read_text()) == {"a": 1} and target.read_text().endswith("\n")


def test_atomic_writers_in_threads(tmp_path):
    """Writers in two threads, both inside their block at the same time: each finishes, one wins."""
    import threading

    target, barrier, temps = tmp_path / "w.json", threading.Barrier(2), []

    def write(text):
        with atomic_write(target) as tmp:
            temps.append(tmp)
            tmp.write_text(text)
            barrier.wait(timeout=10)

    threads = [threading.Thread(target=write, args=(t,)) for t in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert len(set(temps)) == 2 and target.read_text() in ("a", "b")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.json"]

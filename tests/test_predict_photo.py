"""``maskpose predict`` on full photographs with several people (``--masks``, ``--boxes``): every
person cropped as the importers crop, predicted, and mapped back onto the photo; and non-square
inputs of the single-crop path padded to a square, not squashed.

Uses the small shipped checkpoint (64 px studio model) and the two COCO photos in tests/data/coco,
with masks rasterised from their polygons."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from maskpose.apps.demo import SMALL_SOURCE, shipped_checkpoint
from maskpose.apps.predict import (
    CropPredictor,
    crop_box,
    crop_camera,
    crop_to_frame,
    predict_to_folder,
    silhouette_to_photo,
)
from maskpose.cli import app
from maskpose.data.adapters import crop, polygons_to_mask, read_image, square_box, transform_points

COCO = Path(__file__).parent / "data" / "coco"
CHECKPOINT = shipped_checkpoint(SMALL_SOURCE)
RES = 64  # the small checkpoint's resolution
PHOTOS = {"000000000785": (425, 640), "000000040083": (333, 500)}  # stem: (H, W)
#: People per photo, numbered as their masks are (1, 2, ... in annotation order).
PEOPLE = {"000000000785": [1], "000000040083": [1, 2, 3]}

pytestmark = pytest.mark.skipif(CHECKPOINT is None, reason="the small shipped checkpoint is absent")


def _cli(*args) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["predict", str(CHECKPOINT), *[str(a) for a in args]])
    return result.exit_code, result.output


def _coco_masks() -> dict[str, list[np.ndarray]]:
    coco = json.loads((COCO / "person_keypoints.json").read_text())
    images = {img["id"]: img for img in coco["images"]}
    masks: dict[str, list[np.ndarray]] = {}
    for ann in coco["annotations"]:
        info = images[ann["image_id"]]
        masks.setdefault(Path(info["file_name"]).stem, []).append(
            polygons_to_mask(ann["segmentation"], info["height"], info["width"]))
    return masks


def _write_mask(path: Path, mask: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), mask.astype(np.uint8) * 255)
    return path


def _expected_crop_box(box_xyxy, margin: float = 1.2) -> list[float]:
    """The importers' crop of a box, computed here independently of ``crop_box``."""
    x0, y0, x1, y1 = box_xyxy
    cx, cy, side = square_box((x0, y0, x1 - x0, y1 - y0), margin)
    side_px = int(np.ceil(side))
    cx0, cy0 = round(cx - (side_px - 1) / 2), round(cy - (side_px - 1) / 2)
    return [float(cx0), float(cy0), float(cx0 + side_px), float(cy0 + side_px)]


def _records(folder: Path, stem: str) -> dict[int, dict]:
    return {k: json.loads((folder / f"{stem}_person{k}.json").read_text()) for k in PEOPLE[stem]}


@pytest.fixture(scope="module")
def masks_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("masks")
    for stem, masks in _coco_masks().items():
        for k, mask in enumerate(masks, 1):
            _write_mask(folder / f"{stem}_{k}.png", mask)
    return folder


@pytest.fixture(scope="module")
def masks_run(masks_dir, tmp_path_factory) -> Path:
    """Both photos (a folder) with their folder of masks, PLY meshes on."""
    out = tmp_path_factory.mktemp("pred_masks")
    code, output = _cli("--input", COCO, "--masks", masks_dir, "--out", out)
    assert code == 0, output
    assert "4 person(s) in 2 photo(s)" in output
    return out


# ---------------------------------------------------------------------------------------------
# masks and boxes


def test_masks_give_one_json_per_person_in_photo_pixels(masks_run, masks_dir):
    expected = {f"{stem}_person{k}.json" for stem, people in PEOPLE.items() for k in people}
    assert {p.name for p in masks_run.glob("*.json")} == expected
    masks = _coco_masks()
    for stem, (h, w) in PHOTOS.items():
        for k, record in _records(masks_run, stem).items():
            mask = masks[stem][k - 1]
            ys, xs = np.nonzero(mask)
            assert record["box_xyxy"] == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
            assert record["crop_box"] == _expected_crop_box(record["box_xyxy"])
            assert record["input_size_hw"] == [h, w] and record["name"] == f"{stem}.jpg"
            assert record["source"] == f"{stem}_{k}.png" and record["joint_order"] == "h36m-17"
            joints = np.asarray(record["joints2d_px"])
            assert joints.shape == (17, 2) and np.asarray(record["joints3d_m"]).shape == (17, 3)
            # In photo pixels: inside the person's crop, and centred near the person's box.
            x0, y0, x1, y1 = record["crop_box"]
            assert (joints[:, 0] >= x0).all() and (joints[:, 0] <= x1).all(), (stem, k, joints)
            assert (joints[:, 1] >= y0).all() and (joints[:, 1] <= y1).all(), (stem, k, joints)
            bx0, by0, bx1, by1 = record["box_xyxy"]
            centre = np.array([(bx0 + bx1 - 1) / 2, (by0 + by1 - 1) / 2])
            assert np.linalg.norm(joints.mean(0) - centre) < 0.2 * (x1 - x0), (stem, k)
            # The crop camera sees the crop box: its principal point is the crop's centre.
            K = np.asarray(record["crop_camera_K"])
            np.testing.assert_allclose(K[:2, 2], [(x0 + x1 - 1) / 2, (y0 + y1 - 1) / 2], atol=1e-4)
            np.testing.assert_allclose(K, crop_camera(128.0, record["crop_box"], RES), atol=1e-4)
            assert 0.0 <= record["silhouette_iou"] <= 1.0
            assert (masks_run / f"{stem}_person{k}.ply").is_file()
    # The one large, unoccluded person is matched by its silhouette to a useful degree.
    assert _records(masks_run, "000000000785")[1]["silhouette_iou"] > 0.3


def test_occlusion_aware_skips_the_other_people_only_where_they_are(masks_dir, tmp_path):
    """With --occlusion-aware, a person's pixels that another person covers outside its own mask
    are unknown to refinement and to the IoU. In 000000040083 only person 2's crop holds such
    pixels (its neighbours' masks reach into it), so with refinement only person 2's fit changes;
    the others, and the photo of one person, come out the same to the bit."""
    runs = {}
    for name, flags in (("plain", []), ("aware", ["--occlusion-aware"])):
        code, output = _cli("--input", COCO, "--masks", masks_dir, "--out", tmp_path / name, "--refine", 5, "--no-ply",
                            *flags)
        assert code == 0, output
        runs[name] = {stem: _records(tmp_path / name, stem) for stem in PHOTOS}
    for stem in PHOTOS:
        for k in PEOPLE[stem]:
            plain, aware = runs["plain"][stem][k], runs["aware"][stem][k]
            covered = (stem, k) == ("000000040083", 2)
            assert (aware["joints2d_px"] != plain["joints2d_px"]) == covered, (stem, k)
            assert (aware["iou_before"] != plain["iou_before"]) <= covered  # the IoU may change only there


def test_overlay_is_the_photo_with_every_person_drawn(masks_run):
    for stem, (h, w) in PHOTOS.items():
        overlay = cv2.cvtColor(cv2.imread(str(masks_run / f"{stem}_overlay.png")), cv2.COLOR_BGR2RGB)
        photo = read_image(COCO / f"{stem}.jpg")
        assert overlay.shape == (h, w, 3)
        drawn = np.zeros((h, w), bool)
        for record in _records(masks_run, stem).values():
            x0, y0, x1, y1 = (int(v) for v in record["crop_box"])
            inside = np.zeros((h, w), bool)
            inside[max(y0, 0) : max(y1, 0), max(x0, 0) : max(x1, 0)] = True
            assert (overlay[inside] != photo[inside]).any(-1).mean() > 0.01  # this person's drawing
            drawn |= cv2.dilate(inside.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
        # Nothing is drawn away from the people: the photo there is untouched.
        assert (overlay[~drawn] == photo[~drawn]).all()


def test_crop_to_photo_mapping_is_exact():
    image = read_image(COCO / "000000000785.jpg")
    mask = _coco_masks()["000000000785"][0]
    ys, xs = np.nonzero(mask)
    cx, cy, side = square_box((xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1))
    _, _, affine = crop(image, (cx, cy), side, RES)
    box = crop_box(affine, RES)
    assert box.tolist() == _expected_crop_box((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1))
    # The crop's centre maps exactly onto the crop box's centre, within half a pixel of the mask's.
    centre = crop_to_frame(np.array([(RES - 1) / 2, (RES - 1) / 2]), box, RES)
    assert centre.tolist() == [(box[0] + box[2] - 1) / 2, (box[1] + box[3] - 1) / 2]
    assert np.abs(centre - [cx, cy]).max() <= 0.5
    # crop_to_frame inverts the crop's affine everywhere.
    points = np.random.default_rng(0).uniform(0, 640, (50, 2))
    np.testing.assert_allclose(crop_to_frame(transform_points(points, affine), box, RES), points, atol=1e-9)
    # At scale 1 the crop is the photo's pixels at crop_box.
    pixels, _, affine1 = crop(image, (300.0, 200.0), float(RES), RES)
    bx0, by0, bx1, by1 = (int(v) for v in crop_box(affine1, RES))
    assert bx1 - bx0 == RES and (pixels == image[by0:by1, bx0:bx1]).all()
    # The silhouette warps back by the inverse affine: at an integer scale, each crop pixel becomes
    # a scale x scale block of photo pixels, centred where crop_to_frame puts the crop pixel.
    sil = np.random.default_rng(1).random((RES, RES)) > 0.5
    _, _, affine3 = crop(image, (300.0, 200.0), 3.0 * RES, RES)
    bx0, by0, bx1, by1 = (int(v) for v in crop_box(affine3, RES))
    assert bx1 - bx0 == 3 * RES and bx0 >= 0 and by0 >= 0 and bx1 <= 640 and by1 <= 425
    photo_sil = silhouette_to_photo(sil, affine3, image.shape[:2])
    assert (photo_sil[by0:by1, bx0:bx1] == np.kron(sil, np.ones((3, 3), bool))).all()
    assert photo_sil.sum() == 9 * sil.sum()  # nothing outside the crop


def _pasted_photo(tmp_path: Path):
    """A photo made by pasting a known crop, 3x upscaled (nearest), into a larger canvas, with the box
    whose 1.2-margin crop is exactly the pasted region (side 160 * 1.2 = 192 = 3 * 64)."""
    photo = read_image(COCO / "000000000785.jpg")
    known, _, _ = crop(photo, (390.0, 218.0), 400.0, RES)
    canvas = np.full((420, 560, 3), 90, np.uint8)
    px0, py0 = 250, 140  # where the pasted region starts
    canvas[py0 : py0 + 3 * RES, px0 : px0 + 3 * RES] = known.repeat(3, 0).repeat(3, 1)
    path = tmp_path / "pasted.png"
    assert cv2.imwrite(str(path), cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
    box = [px0 + 16, py0 + 16, px0 + 176, py0 + 176]
    assert _expected_crop_box(box) == [px0, py0, px0 + 3 * RES, py0 + 3 * RES]
    return known, path, box, [px0, py0, px0 + 3 * RES, py0 + 3 * RES]


def test_a_pasted_crop_predicts_as_the_crop_itself(tmp_path):
    known, path, box, region = _pasted_photo(tmp_path)
    direct = CropPredictor(CHECKPOINT)(torch.from_numpy(known).permute(2, 0, 1)[None].float() / 255.0)[0]
    expected = crop_to_frame(direct["joints2d"], region, RES)
    (tmp_path / "boxes.json").write_text(json.dumps({"boxes": [box]}))
    code, output = _cli("--input", path, "--boxes", tmp_path / "boxes.json", "--out", tmp_path / "by_box", "--no-ply")
    assert code == 0, output
    record = json.loads((tmp_path / "by_box" / "pasted_person1.json").read_text())
    assert record["crop_box"] == [float(v) for v in region] and "silhouette_iou" not in record
    assert np.abs(np.asarray(record["joints2d_px"]) - expected).max() < 1.5
    np.testing.assert_allclose(record["joints3d_m"], direct["joints3d"], atol=1e-4)
    # The same person given by a mask of that extent: the same crop, the same joints.
    mask = np.zeros((420, 560), bool)
    mask[box[1] : box[3], box[0] : box[2]] = True
    _write_mask(tmp_path / "m" / "pasted_1.png", mask)
    code, output = _cli("--input", path, "--masks", tmp_path / "m", "--out", tmp_path / "by_mask", "--no-ply")
    assert code == 0, output
    by_mask = json.loads((tmp_path / "by_mask" / "pasted_person1.json").read_text())
    assert by_mask["crop_box"] == record["crop_box"] and by_mask["joints2d_px"] == record["joints2d_px"]
    assert 0.0 < by_mask["silhouette_iou"] <= 1.0


def test_boxes_give_one_json_per_person(tmp_path):
    coco = json.loads((COCO / "person_keypoints.json").read_text())
    boxes = [[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in coco["annotations"] if a["image_id"] == 40083)]
    (tmp_path / "boxes.json").write_text(json.dumps(boxes))
    code, output = _cli("--input", COCO / "000000040083.jpg", "--boxes", tmp_path / "boxes.json",
                        "--out", tmp_path / "out", "--no-ply")
    assert code == 0, output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "000000040083_overlay.png", "000000040083_person1.json", "000000040083_person2.json",
        "000000040083_person3.json"]
    for k, record in _records(tmp_path / "out", "000000040083").items():
        assert record["box_xyxy"] == pytest.approx(boxes[k - 1]) and record["source"] == f"box {k}"
        assert record["crop_box"] == _expected_crop_box(boxes[k - 1])
        joints = np.asarray(record["joints2d_px"])
        x0, y0, x1, y1 = record["crop_box"]
        assert ((joints >= [x0, y0]) & (joints <= [x1, y1])).all()
    assert cv2.imread(str(tmp_path / "out" / "000000040083_overlay.png")).shape == (333, 500, 3)


def test_a_folder_with_boxes_by_photo_name_and_masks_beside_the_photos(masks_run, masks_dir, tmp_path):
    coco = json.loads((COCO / "person_keypoints.json").read_text())
    boxes = {}
    for ann in coco["annotations"]:
        x, y, w, h = ann["bbox"]
        boxes.setdefault(ann["image_id"], []).append([x, y, x + w, y + h])
    by_name = {"000000000785.jpg": boxes[785], "000000040083": {"boxes": boxes[40083]}}  # a name, a stem
    (tmp_path / "boxes.json").write_text(json.dumps(by_name))
    code, output = _cli("--input", COCO, "--boxes", tmp_path / "boxes.json", "--out", tmp_path / "b", "--no-ply")
    assert code == 0 and "4 person(s) in 2 photo(s)" in output, output
    # Photos and their masks in one folder: the masks are not taken for photos.
    together = tmp_path / "together"
    together.mkdir()
    for stem in PHOTOS:
        (together / f"{stem}.jpg").write_bytes((COCO / f"{stem}.jpg").read_bytes())
    for mask in masks_dir.iterdir():
        (together / mask.name).write_bytes(mask.read_bytes())
    code, output = _cli("--input", together, "--masks", together, "--out", tmp_path / "m", "--no-ply")
    assert code == 0 and "4 person(s) in 2 photo(s)" in output, output
    for stem in PHOTOS:
        assert _records(tmp_path / "m", stem) == _records(masks_run, stem)


def test_a_label_image_and_a_folder_of_any_pngs(masks_run, tmp_path):
    masks = _coco_masks()["000000040083"]
    labels = np.zeros(masks[0].shape, np.uint8)
    for k, mask in enumerate(masks, 1):
        labels[mask] = k
    assert cv2.imwrite(str(tmp_path / "labels.png"), labels)
    code, output = _cli("--input", COCO / "000000040083.jpg", "--masks", tmp_path / "labels.png",
                        "--out", tmp_path / "out", "--no-ply")
    assert code == 0, output
    folder = _records(masks_run, "000000040083")
    for k, record in _records(tmp_path / "out", "000000040083").items():
        assert record["source"] == f"label {k}"
        if (labels == k).sum() == masks[k - 1].sum():  # not overlapped by a later person's label
            assert record["crop_box"] == folder[k]["crop_box"]
            assert record["joints2d_px"] == folder[k]["joints2d_px"]
            assert record["silhouette_iou"] == folder[k]["silhouette_iou"]
    # One photo, masks under any PNG names: people 1, 2, ... in name order.
    _write_mask(tmp_path / "any" / "skier.png", _coco_masks()["000000000785"][0])
    code, output = _cli("--input", COCO / "000000000785.jpg", "--masks", tmp_path / "any",
                        "--out", tmp_path / "any_out", "--no-ply")
    assert code == 0, output
    record = json.loads((tmp_path / "any_out" / "000000000785_person1.json").read_text())
    assert record["source"] == "skier.png"
    assert record["joints2d_px"] == _records(masks_run, "000000000785")[1]["joints2d_px"]


def _bad_masks(t: Path, mask: np.ndarray) -> list:
    _write_mask(t / "m" / "000000000785_1.png", mask)
    return ["--input", COCO / "000000000785.jpg", "--masks", t / "m"]


def _bad_boxes(t: Path, text: str, photo: str = "000000000785.jpg") -> list:
    (t / "b.json").write_text(text)
    return ["--input", COCO / photo, "--boxes", t / "b.json"]


def _missing_mask(t: Path) -> list:
    _write_mask(t / "m" / "000000000785_1.png", _coco_masks()["000000000785"][0])
    return ["--input", COCO, "--masks", t / "m"]


ERRORS = {
    "mask_size": (lambda t: _bad_masks(t, np.ones((100, 120), bool)),
                  r"000000000785_1\.png: mask is 120x100 px, the photo 000000000785\.jpg is 640x425"),
    "empty_mask": (lambda t: _bad_masks(t, np.zeros((425, 640), bool)), r"000000000785_1\.png: mask is empty"),
    "no_mask_for_photo": (_missing_mask, r"no mask found for the photo 000000040083\.jpg \(expected "
                                         r"000000040083_<k>\.png\)"),
    "no_png_at_all": (lambda t: ((t / "m").mkdir(), ["--input", COCO / "000000000785.jpg", "--masks", t / "m"])[1],
                      r"no mask found for the photo 000000000785\.jpg"),
    "empty_label_image": (lambda t: (cv2.imwrite(str(t / "l.png"), np.zeros((425, 640), np.uint8)),
                                     ["--input", COCO / "000000000785.jpg", "--masks", t / "l.png"])[1],
                          r"l\.png: label image is empty"),
    "label_image_for_a_folder": (lambda t: (cv2.imwrite(str(t / "l.png"), np.ones((425, 640), np.uint8)),
                                            ["--input", COCO, "--masks", t / "l.png"])[1],
                                 r"a label image goes with one photo"),
    "box_of_three": (lambda t: _bad_boxes(t, "[[1, 2, 3]]"), r"box 1 of 000000000785\.jpg must be \[x0, y0, x1, y1\]"),
    "box_inverted": (lambda t: _bad_boxes(t, "[[10, 10, 50, 50], [60, 10, 20, 90]]"),
                     r"box 2 of 000000000785\.jpg must be .* x1 > x0"),
    "box_not_numbers": (lambda t: _bad_boxes(t, '{"boxes": [["a", 1, 2, 3]]}'), r"box 1 .* must be \[x0"),
    "boxes_not_a_list": (lambda t: _bad_boxes(t, '{"boxes": 3}'), r"boxes must be a non-empty list"),
    "boxes_empty": (lambda t: _bad_boxes(t, "[]"), r"boxes must be a non-empty list"),
    "boxes_not_json": (lambda t: _bad_boxes(t, "[[1, 2"), r"b\.json: not valid JSON"),
    "box_outside": (lambda t: _bad_boxes(t, "[[700, 10, 800, 100]]"),
                    r"box 1 \[700, 10, 800, 100\] lies outside the photo 000000000785\.jpg \(640x425 px\)"),
    "one_box_list_for_a_folder": (lambda t: _bad_boxes(t, "[[1, 2, 30, 40]]", ""),
                                  r"one list of boxes for a folder of photos"),
    "masks_and_boxes": (lambda t: _bad_boxes(t, "[[1, 2, 30, 40]]") + ["--masks", t], r"not both"),
    "masks_with_video": (lambda t: ["--video", t / "v.mp4", "--masks", t], r"--masks and --boxes go with --input"),
    "occlusion_aware_with_boxes": (lambda t: _bad_boxes(t, "[[1, 2, 30, 40]]") + ["--occlusion-aware"],
                                   r"--occlusion-aware goes with --masks"),
}


@pytest.mark.parametrize("case", ERRORS)
def test_errors_are_one_clear_line(tmp_path, case):
    build, pattern = ERRORS[case]
    code, output = _cli(*build(tmp_path), "--out", tmp_path / "out")
    assert code == 2, output
    assert "Traceback" not in output and len(output.strip().splitlines()) == 1, output
    assert re.search(pattern, output), output
    assert not (tmp_path / "out").exists()  # refused before anything is written


# ---------------------------------------------------------------------------------------------
# single crops: non-square inputs are padded, not squashed


def test_a_non_square_image_is_padded_not_squashed(tmp_path):
    photo = read_image(COCO / "000000000785.jpg")
    folder = tmp_path / "in"
    folder.mkdir()
    cases = {"wide": (photo[60:360, 20:620], (0, 150)),  # 2:1, 600x300: 150 rows above and below
             "tall": (photo[0:400, 301:501], (100, 0))}  # 1:2, 200x400: 100 columns left and right
    for name, (image, (left, top)) in cases.items():
        h, w = image.shape[:2]
        side = max(h, w)
        square = np.zeros((side, side, 3), np.uint8)
        square[top : top + h, left : left + w] = image
        for file, array in ((f"{name}.png", image), (f"{name}_square.png", square)):
            assert cv2.imwrite(str(folder / file), cv2.cvtColor(np.ascontiguousarray(array), cv2.COLOR_RGB2BGR))
    assert predict_to_folder(CHECKPOINT, folder, tmp_path / "out", write_ply=False) == 4
    for name, (image, (left, top)) in cases.items():
        record = json.loads((tmp_path / "out" / f"{name}.png.json").read_text())
        square = json.loads((tmp_path / "out" / f"{name}_square.png.json").read_text())
        assert set(record) == {"name", "joints3d_m", "joints2d_px", "joints2d_frame", "input_size_hw", "joint_order",
                               "translation_m", "phenotypes"}  # the single-crop format, unchanged
        assert record["input_size_hw"] == list(image.shape[:2])
        # The model saw the same pixels: the same 3D joints, and 2D joints shifted by the padding.
        np.testing.assert_allclose(record["joints3d_m"], square["joints3d_m"], atol=1e-6)
        np.testing.assert_allclose(np.asarray(record["joints2d_px"]),
                                   np.asarray(square["joints2d_px"]) - [left, top], atol=1e-4)
        joints = np.asarray(record["joints2d_px"])
        assert np.ptp(joints[:, 0]) > 1 and np.ptp(joints[:, 1]) > 1  # a real prediction
        overlay = cv2.imread(str(tmp_path / "out" / f"{name}.png_overlay.png"))
        assert overlay.shape[0] == overlay.shape[1]  # drawn on the padded square the model saw

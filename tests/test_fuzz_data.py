"""A corpus of bad (and borderline good) inputs for the data verbs, run through the CLI.

One parametrised test per verb: ``data import npz|coco|folder``, ``data show``, ``data stats``,
``synth`` and ``predict``. Every case builds its input in ``tmp_path`` (8-32 px images) and expects
either exit code 2 with a one-line message naming the problem (``Err``), or exit code 0 and a
result that is checked (``Ok``). A failing import over an existing dataset must leave it as it was.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from maskpose.cli import app
from maskpose.data.dataset import MaskposeDataset, read_meta, write_dataset


@dataclasses.dataclass
class Err:
    """Exit code 2, and ``pattern`` (a regex) in the output: the message naming the problem."""

    pattern: str


@dataclasses.dataclass
class Ok:
    """Exit code 0, then ``check(tmp_path, output)`` asserts the result."""

    check: Callable[[Path, str], None]


def _run(tmp_path: Path, args: list[str], expect) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args])
    output = result.output
    if isinstance(expect, Err):
        assert result.exit_code == 2, f"exit {result.exit_code}: {output}\n{result.exception!r}"
        assert "Traceback" not in output
        assert re.search(expect.pattern, output, re.S), output
    else:
        assert result.exit_code == 0, f"exit {result.exit_code}: {output}\n{result.exception!r}"
        expect.check(tmp_path, output)
    return output


# ---------------------------------------------------------------------------------------------
# fixtures


def _png(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array)
    return path


def _person(size=(16, 16), value=200) -> tuple[np.ndarray, np.ndarray]:
    h, w = size
    image = np.full((h, w, 3), 40, np.uint8)
    mask = np.zeros((h, w), np.uint8)
    mask[h // 4: 3 * h // 4, w // 3: 2 * w // 3] = 255
    image[mask > 0] = value
    return image, mask


def _truncate(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _old_dataset(tmp_path: Path) -> Path:
    arrays = {"image": np.full((2, 8, 8, 3), 77, np.uint8), "mask": np.ones((2, 8, 8), np.uint8)}
    return write_dataset(tmp_path / "out", arrays, domain="old")


def _old_intact(tmp_path: Path) -> None:
    path = tmp_path / "out"
    assert read_meta(path)["domain"] == "old" and len(MaskposeDataset(path)) == 2
    assert np.all(np.load(path / "image.npy") == 77)
    assert not [p for p in path.iterdir() if p.name.startswith(".")]


def _dataset(tmp_path: Path, n=3, res=16, labels=True, **changes) -> Path:
    rng = np.random.default_rng(0)
    arrays = {"image": rng.integers(0, 255, (n, res, res, 3), dtype=np.uint8), "mask": np.zeros((n, res, res), np.uint8)}
    arrays["mask"][:, 4:12, 5:11] = 1
    if labels:
        arrays["joints2d"] = rng.uniform(0, res - 1, (n, 17, 2)).astype(np.float32)
        arrays["joints3d"] = rng.normal(size=(n, 17, 3)).astype(np.float32)
    arrays.update(changes)
    return write_dataset(tmp_path / "ds", arrays, domain="tiny")


def _edit_meta(path: Path, **changes) -> Path:
    meta = json.loads((path / "meta.json").read_text())
    meta.update(changes)
    (path / "meta.json").write_text(json.dumps(meta))
    return path


def _raw_write(path: Path, name: str, array: np.ndarray) -> None:
    """Overwrite a stored array in place (what a foreign tool could leave behind)."""
    np.save(path / f"{name}.npy", array)


# ---------------------------------------------------------------------------------------------
# data import npz


def _npz_inputs(tmp_path: Path, n=2, **keys) -> Path:
    root = tmp_path / "img"
    for i in range(n):
        _png(root / f"s{i}.png", _person()[0])
    data = {"imgname": np.array([f"s{i}.png" for i in range(n)]), "center": np.full((n, 2), 7.5),
            "scale": np.full(n, 12 / 200)}
    part = np.zeros((n, 24, 3), np.float32)
    part[:, :, :2], part[:, :, 2] = 7.5, 1.0
    joints = np.zeros((n, 24, 4), np.float32)
    joints[:, :, 3] = 1.0
    data.update(part=part, S=joints)
    data.update(keys)
    data = {k: v for k, v in data.items() if v is not None}
    np.savez(tmp_path / "in.npz", **data)
    return tmp_path / "in.npz"


def _npz_args(tmp_path: Path, npz: Path | None = None, *extra) -> list:
    return ["data", "import", "npz", npz or tmp_path / "in.npz", "--images", tmp_path / "img",
            "--out", tmp_path / "out", "--res", "16", *extra]


def _not_zip(t):
    _npz_inputs(t)
    (t / "in.npz").write_text("hello, not a zip")
    return _npz_args(t)


def _npy_renamed(t):
    _npz_inputs(t)
    np.save(t / "x.npy", np.zeros(3))
    (t / "x.npy").rename(t / "in.npz")
    return _npz_args(t)


def _truncated_zip(t):
    _truncate(_npz_inputs(t))
    return _npz_args(t)


def _npz_with(**keys):
    def build(t):
        _npz_inputs(t, **keys)
        return _npz_args(t)
    return build


def _npz_ok_check(t, output):
    data = MaskposeDataset(t / "out")
    assert len(data) == 2 and set(data.fields) == {"image", "joints3d", "joints2d"}
    # the box centre (7.5, 7.5) maps to the crop centre; a joint with confidence 0 is NaN
    j2 = np.load(t / "out" / "joints2d.npy")
    np.testing.assert_allclose(j2[:, 0], 7.5, atol=0.6)
    assert np.isnan(np.load(t / "out" / "joints3d.npy")[0, 1]).all()


def _npz_ok(t):
    joints = np.zeros((2, 24, 4), np.float32)
    joints[:, :, 3] = 1.0
    joints[0, 2, 3] = 0.0  # SPIN joint 2 (H36M r_hip) not labelled
    joints[1, 5, :3] = np.nan  # NaN marks a missing joint too: kept
    _npz_inputs(t, S=joints)
    return _npz_args(t)


def _npz_over_existing(t):
    _old_dataset(t)
    _npz_inputs(t)
    _truncate(t / "img" / "s1.png")
    return _npz_args(t)


def _npz_out_is_file(t):
    _npz_inputs(t)
    (t / "out").write_text("x")
    return _npz_args(t)


def _npz_margin(value):
    def build(t):
        _npz_inputs(t)
        return _npz_args(t, None, "--margin", value)
    return build


NPZ_CASES = {
    "not_a_zip": (_not_zip, Err(r"in\.npz: cannot read the \.npz")),
    "npy_renamed_npz": (_npy_renamed, Err(r"in\.npz: holds a single \.npy array")),
    "truncated_zip": (_truncated_zip, Err(r"in\.npz: cannot read the \.npz")),
    "missing_keys": (_npz_with(center=None, scale=None), Err(r"in\.npz: missing key\(s\) \['center', 'scale'\]")),
    "scale_inf": (_npz_with(scale=np.array([0.06, np.inf])), Err(r"key 'scale' of sample 1 holds non-finite")),
    "scale_nan": (_npz_with(scale=np.array([np.nan, 0.06])), Err(r"key 'scale' of sample 0 holds non-finite")),
    "scale_zero": (_npz_with(scale=np.array([0.06, 0.0])), Err(r"scale of sample 1 is 0; .*must be positive")),
    "scale_negative": (_npz_with(scale=np.array([-1.0, 0.06])), Err(r"scale of sample 0 is -1; .*must be positive")),
    "scale_huge": (_npz_with(scale=np.array([1e7, 0.06])), Err(r"sample 0 \(s0\.png, scale 1e\+07\): crop side 2e\+09")),
    "center_inf": (_npz_with(center=np.array([[7.5, np.inf], [7.5, 7.5]])), Err(r"key 'center' of sample 0")),
    "center_shape": (_npz_with(center=np.zeros((3, 2))), Err(r"center \(3, 2\) and scale \(2,\) do not match")),
    "joints3d_inf": (_npz_with(S=np.full((2, 24, 4), np.inf, np.float32)), Err(r"key 'S' of sample 0 holds infinite")),
    "joints2d_inf": (_npz_with(part=np.full((2, 24, 3), np.inf, np.float32)), Err(r"key 'part' of sample 0 holds inf")),
    "joints_bad_shape": (_npz_with(S=np.zeros((2, 5, 4))), Err(r"key 'S' has shape \(2, 5, 4\)")),
    "margin_zero": (_npz_margin("0"), Err(r"margin must lie in \[0\.5, 4\], got 0\.0")),
    "margin_nan": (_npz_margin("nan"), Err(r"margin must lie in .*got nan")),
    "image_missing": (lambda t: (_npz_inputs(t), (t / "img" / "s1.png").unlink(), _npz_args(t))[-1],
                      Err(r"s1\.png: image file does not exist")),
    "out_is_file": (_npz_out_is_file, Err(r"--out .*out: exists and is a file")),
    "failure_keeps_old_dataset": (_npz_over_existing, Err(r"s1\.png: cannot read the image.*truncated")),
    "good_with_missing_joints": (_npz_ok, Ok(_npz_ok_check)),
}


@pytest.mark.parametrize("case", NPZ_CASES)
def test_import_npz(tmp_path, case):
    build, expect = NPZ_CASES[case]
    _run(tmp_path, build(tmp_path), expect)
    if case == "failure_keeps_old_dataset":
        _old_intact(tmp_path)
    if case == "out_is_file":
        assert (tmp_path / "out").read_text() == "x"


# ---------------------------------------------------------------------------------------------
# data import coco


def _coco(t: Path, annotations=None, images=None, raw=None) -> list:
    folder = t / "img"
    image, _ = _person((24, 24))
    _png(folder / "a.png", image)
    poly = [6.0, 4.0, 17.0, 4.0, 17.0, 19.0, 6.0, 19.0]
    kp = [0] * 51
    kp[15:18] = [8, 6, 2]  # l_shoulder labelled
    ann = {"id": 1, "image_id": 10, "bbox": [6, 4, 12, 16], "segmentation": [poly], "num_keypoints": 1,
           "keypoints": kp, "iscrowd": 0}
    doc = {"images": images if images is not None else [{"id": 10, "file_name": "a.png", "height": 24, "width": 24}],
           "annotations": [ann] if annotations is None else [dict(ann, **a) for a in annotations]}
    for a in doc["annotations"]:
        for key in [k for k, v in a.items() if v is None]:
            del a[key]
    (t / "ann.json").write_text(raw if raw is not None else json.dumps(doc))
    return ["data", "import", "coco", t / "ann.json", "--images", folder, "--out", t / "out", "--res", "16"]


def _coco_ok_check(t, output):
    meta = read_meta(t / "out")
    assert meta["num_samples"] == 1 and meta["attrs"]["annotation_ids"] == [1]
    mask = np.load(t / "out" / "mask.npy")[0]
    assert 0.2 < mask.mean() < 0.8


def _coco_skip_check(t, output):
    meta = read_meta(t / "out")
    assert meta["attrs"]["annotation_ids"] == [1] and meta["attrs"]["skipped_empty_masks"] == 1
    assert meta["attrs"]["skipped_short_polygons"] == 1
    assert np.load(t / "out" / "mask.npy").any(axis=(1, 2)).all()  # no empty mask written


def _coco_rle_ok_check(t, output):
    mask = np.load(t / "out" / "mask.npy")[0]
    assert mask.any() and read_meta(t / "out")["num_samples"] == 1


def _rle_full(t):
    # a 24x24 RLE (column-major): columns 6..17, rows 4..19 set
    counts = []
    flat = np.zeros((24, 24), bool)
    flat[4:20, 6:18] = True
    col = flat.T.reshape(-1)
    value, run = False, 0
    for v in col:
        if v == value:
            run += 1
        else:
            counts.append(run)
            value, run = v, 1
    counts.append(run)
    return _coco(t, annotations=[{"segmentation": {"counts": counts, "size": [24, 24]}}])


def _coco_over_existing(t):
    _old_dataset(t)
    args = _coco(t)
    _truncate(t / "img" / "a.png")
    return args


COCO_CASES = {
    "not_json": (lambda t: _coco(t, raw="{oops"), Err(r"ann\.json: not valid JSON")),
    "json_list": (lambda t: _coco(t, raw="[1, 2]"), Err(r"ann\.json: must hold a JSON object")),
    "no_images_key": (lambda t: _coco(t, raw='{"annotations": []}'), Err(r"ann\.json: missing key 'images'")),
    "image_without_id": (lambda t: _coco(t, images=[{"file_name": "a.png"}]), Err(r"images\[0\] needs an 'id'")),
    "annotation_without_image_id": (lambda t: _coco(t, annotations=[{"image_id": None}]),
                                    Err(r"annotation 1: has no 'image_id'")),
    "unknown_image": (lambda t: _coco(t, annotations=[{"image_id": 99}]), Err(r"refers to unknown image 99")),
    "image_id_a_list": (lambda t: _coco(t, annotations=[{"image_id": [10]}]),
                        Err(r"annotation 1: image_id must be an integer or a string, got \[10\]")),
    "num_keypoints_text": (lambda t: _coco(t, annotations=[{"num_keypoints": "many"}]),
                           Err(r"annotation 1: num_keypoints must be a number, got 'many'")),
    "rle_bad_character": (lambda t: _coco(t, annotations=[{"segmentation": {"counts": "3!!", "size": [24, 24]}}]),
                          Err(r"annotation 1: RLE string holds the character '!'")),
    "rle_truncated_string": (lambda t: _coco(t, annotations=[{"segmentation": {"counts": "32o", "size": [24, 24]}}]),
                             Err(r"annotation 1: RLE string is truncated")),
    "rle_beyond_image": (lambda t: _coco(t, annotations=[{"segmentation": {"counts": [500, 200], "size": [24, 24]}}]),
                         Err(r"RLE counts cover 700 pixels, the image has 24x24 = 576")),
    "rle_wrong_size": (lambda t: _coco(t, annotations=[{"segmentation": {"counts": [576], "size": [20, 24]}}]),
                       Err(r"RLE size \[20, 24\] does not match the image 24x24")),
    "rle_negative": (lambda t: _coco(t, annotations=[{"segmentation": {"counts": [600, -24], "size": [24, 24]}}]),
                     Err(r"RLE counts hold a negative run")),
    "polygon_two_points_only": (lambda t: _coco(t, annotations=[{"segmentation": [[6, 4, 17, 19]]}]),
                                Err(r"no person annotation passes the filters \(1 skipped for an empty mask\)")),
    "polygon_odd_length": (lambda t: _coco(t, annotations=[{"segmentation": [[6, 4, 17, 19, 3]]}]),
                           Err(r"polygon 0 must be a flat list")),
    "polygon_nan": (lambda t: _coco(t, annotations=[{"segmentation": [[6, 4, 17, "x", 3, 3]]}]),
                    Err(r"polygon 0 must be a flat list")),
    "bbox_malformed": (lambda t: _coco(t, annotations=[{"bbox": [1, 2, "w"]}]), Err(r"bbox must be \[x, y, width")),
    "keypoints_short": (lambda t: _coco(t, annotations=[{"keypoints": [1, 2, 3]}]),
                        Err(r"keypoints must be a list of 51 numbers")),
    "image_truncated": (lambda t: (_coco(t), _truncate(t / "img" / "a.png"))[0], Err(r"a\.png: cannot read the image")),
    "size_disagrees": (lambda t: _coco(t, images=[{"id": 10, "file_name": "a.png", "height": 30, "width": 24}]),
                       Err(r"a\.png: image is 24x24, the JSON says 24x30")),
    "margin_too_small": (lambda t: _coco(t) + ["--margin", "0.5"], Err(r"margin must lie in \[1, 4\], got 0\.5")),
    "one_good_one_empty": (lambda t: _coco(t, annotations=[{}, {"id": 2, "segmentation": [[1, 1, 2, 2]],
                                                                "bbox": [0, 0, 20, 20]}]),
                           Ok(_coco_skip_check)),
    "good_polygon": (lambda t: _coco(t), Ok(_coco_ok_check)),
    "good_rle": (_rle_full, Ok(_coco_rle_ok_check)),
    "failure_keeps_old_dataset": (_coco_over_existing, Err(r"a\.png: cannot read the image")),
}


@pytest.mark.parametrize("case", COCO_CASES)
def test_import_coco(tmp_path, case, caplog):
    build, expect = COCO_CASES[case]
    _run(tmp_path, build(tmp_path), expect)
    if case == "one_good_one_empty":  # the skips are counted aloud, not silent
        assert "skipped 1 annotation(s) whose mask is empty" in caplog.text and "left out 1 polygon(s)" in caplog.text
    if case == "failure_keeps_old_dataset":
        _old_intact(tmp_path)


# ---------------------------------------------------------------------------------------------
# data import folder


def _folder(t: Path, n=2, size=(16, 16), mask_ext=".png", image_ext=".png") -> list:
    for i in range(n):
        image, mask = _person(size)
        _png(t / "img" / f"p{i}{image_ext}", image)
        _png(t / "msk" / f"p{i}{mask_ext}", mask if i % 2 == 0 else mask // 255)  # 0/255 and 0/1
    return ["data", "import", "folder", t / "img", t / "msk", "--out", t / "out", "--res", "16"]


def _folder_ok_check(t, output):
    data = MaskposeDataset(t / "out")
    assert len(data) == 2
    masks = np.load(t / "out" / "mask.npy")
    assert set(np.unique(masks).tolist()) == {0, 1}
    images = np.load(t / "out" / "image.npy")
    on = images[masks.astype(bool)].mean()
    assert abs(on - 200) < 15  # the person's pixels sit under the mask


def _sixteen_bit(t):
    args = _folder(t, n=1)
    grey = np.full((16, 16), 32768, np.uint16)  # mid-grey at 16 bits: 128 at 8 bits, not white
    _png(t / "img" / "p0.png", grey)
    return args


def _sixteen_bit_check(t, output):
    images = np.load(t / "out" / "image.npy")
    assert abs(float(images.mean()) - 128) < 2


def _bad_mask_values(t):
    args = _folder(t, n=1)
    mask = _person()[1]
    mask[mask > 0] = 128
    mask[0, 0] = 255
    _png(t / "msk" / "p0.png", mask)
    return args


def _jpeg_mask(t):
    args = _folder(t, n=1)
    (t / "msk" / "p0.png").unlink()
    mask = _person()[1]
    mask[6, 6] = 0
    cv2.imwrite(str(t / "msk" / "p0.jpg"), mask, [cv2.IMWRITE_JPEG_QUALITY, 50])
    return args


def _readonly_out(t, monkeypatch):
    args = _folder(t)
    (t / "out").mkdir()
    import maskpose.io

    real = os.access
    monkeypatch.setattr(maskpose.io.os, "access", lambda p, mode: real(p, mode) and not (Path(p) == t / "out" and mode & os.W_OK))
    return args


def _folder_over_existing(t):
    _old_dataset(t)
    args = _folder(t, n=3)
    _truncate(t / "img" / "p2.png")
    return args


FOLDER_CASES = {
    "truncated_png": (lambda t: (_folder(t), _truncate(t / "img" / "p1.png"))[0],
                      Err(r"p1\.png: cannot read the image \(corrupt or truncated")),
    "truncated_jpeg": (lambda t: (_folder(t, image_ext=".jpg"), _truncate(t / "img" / "p0.jpg"))[0],
                       Err(r"p0\.jpg: cannot read the image \(corrupt or truncated")),
    "truncated_mask": (lambda t: (_folder(t), _truncate(t / "msk" / "p0.png"))[0], Err(r"p0\.png: cannot read the mask")),
    "degenerate_image": (lambda t: _folder(t, n=1, size=(1, 40)), Err(r"p0\.png: image is 40x1 px")),
    "margin_below_1": (lambda t: _folder(t) + ["--margin", "0.9"], Err(r"margin must lie in \[1, 4\], got 0\.9")),
    "margin_above_4": (lambda t: _folder(t) + ["--margin", "5"], Err(r"margin must lie in \[1, 4\], got 5\.0")),
    "margin_nan": (lambda t: _folder(t) + ["--margin", "nan"], Err(r"margin must lie in \[1, 4\], got nan")),
    "mask_values_128": (_bad_mask_values, Err(r"p0\.png: mask holds values \{0, 128, 255\}")),
    "mask_jpeg_noise": (_jpeg_mask, Err(r"p0\.jpg: mask holds values \{0, .*\}; a mask must be \{0, 1\} or \{0, 255\}")),
    "image_without_mask": (lambda t: (_folder(t), (t / "msk" / "p1.png").unlink())[0],
                           Err(r"msk: no mask for 1 image\(s\), e\.g\. p1\.png")),
    "empty_mask": (lambda t: (_folder(t), _png(t / "msk" / "p0.png", np.zeros((16, 16), np.uint8)))[0],
                   Err(r"p0\.png: mask is empty")),
    "mask_size_differs": (lambda t: (_folder(t), _png(t / "msk" / "p0.png", np.full((8, 16), 255, np.uint8)))[0],
                          Err(r"p0\.png: mask is 16x8, its image p0\.png is 16x16")),
    "no_image_folder": (lambda t: ["data", "import", "folder", t / "nope", t / "msk", "--out", t / "out"],
                        Err(r"nope: image folder does not exist")),
    "no_images": (lambda t: ((t / "img").mkdir(), (t / "msk").mkdir(),
                             ["data", "import", "folder", t / "img", t / "msk", "--out", t / "out"])[-1],
                  Err(r"img: no image files")),
    "out_is_file": (lambda t: (_folder(t), (t / "out").write_text("x"))[0], Err(r"--out .*out: exists and is a file")),
    "out_read_only": (_readonly_out, Err(r"--out .*out: folder .*out is not writable")),
    "failure_keeps_old_dataset": (_folder_over_existing, Err(r"p2\.png: cannot read the image")),
    "good_0_1_and_0_255": (_folder, Ok(_folder_ok_check)),
    "good_16_bit_image": (_sixteen_bit, Ok(_sixteen_bit_check)),
}


@pytest.mark.parametrize("case", FOLDER_CASES)
def test_import_folder(tmp_path, case, monkeypatch):
    build, expect = FOLDER_CASES[case]
    args = build(tmp_path, monkeypatch) if case == "out_read_only" else build(tmp_path)
    _run(tmp_path, args, expect)
    if case == "failure_keeps_old_dataset":
        _old_intact(tmp_path)
    if isinstance(expect, Err) and case != "failure_keeps_old_dataset":
        out = tmp_path / "out"
        assert not out.is_dir() or not any(out.iterdir())  # nothing half-written


# ---------------------------------------------------------------------------------------------
# data show and data stats (shared malformed datasets)


def _meta_list(t):
    (_dataset(t) / "meta.json").write_text("[1, 2, 3]")
    return t / "ds"


BROKEN_DATASETS = {
    "missing": (lambda t: t / "nope", r"nope: dataset folder does not exist"),
    "meta_not_json": (lambda t: ((_dataset(t) / "meta.json").write_text("{"), t / "ds")[1], r"meta\.json: not valid JSON"),
    "meta_is_list": (_meta_list, r"meta\.json: must hold a JSON object, got a list"),
    "meta_no_fields": (lambda t: _edit_meta(_dataset(t), fields=None), r"meta\.json: 'fields' must be an object"),
    "schema_version": (lambda t: _edit_meta(_dataset(t), schema_version=7), r"schema version 7 is not supported"),
    "unknown_field": (lambda t: _edit_meta(_dataset(t), fields={"image": {"shape": [16, 16, 3], "dtype": "uint8"},
                                                                 "colour": {"shape": [3], "dtype": "uint8"}}),
                      r"meta\.json: unknown field 'colour'"),
    "no_meta": (lambda t: ((_dataset(t) / "meta.json").unlink(), t / "ds")[1], r"ds: no meta\.json"),
    "npy_missing": (lambda t: ((_dataset(t) / "image.npy").unlink(), t / "ds")[1],
                    r"image\.npy: array listed in meta\.json is missing"),
    "npy_shape": (lambda t: (_raw_write(_dataset(t), "image", np.zeros((2, 16, 16, 3), np.uint8)), t / "ds")[1],
                  r"image\.npy: shape \(2, 16, 16, 3\) does not match meta\.json \(3, 16, 16, 3\)"),
    "npy_dtype": (lambda t: (_raw_write(_dataset(t), "image", np.zeros((3, 16, 16, 3), np.float32)), t / "ds")[1],
                  r"image\.npy: dtype float32 does not match meta\.json uint8"),
    "npy_garbage": (lambda t: ((_dataset(t) / "image.npy").write_bytes(b"\x93NUMPY garbage"), t / "ds")[1],
                    r"image\.npy: cannot read the array"),
}


def _sheet_check(t, output):
    sheet = cv2.imread(str(t / "sheet.png"))
    assert sheet.shape == (32, 32, 3) and (sheet[..., 1] == 255).any()  # 2x2 tiles of 16, green outlines


SHOW_CASES = {
    **{name: (lambda t, b=b: ["data", "show", b(t), "--out", t / "sheet.png"], Err(p))
       for name, (b, p) in BROKEN_DATASETS.items()},
    "out_is_folder": (lambda t: (_dataset(t), (t / "sheet.png").mkdir(), ["data", "show", t / "ds", "--out",
                                                                           t / "sheet.png"])[-1],
                      Err(r"--out .*sheet\.png: is a folder")),
    "out_bad_extension": (lambda t: ["data", "show", _dataset(t), "--out", t / "sheet.txt"],
                          Err(r"--out .*sheet\.txt: extension '\.txt' is not one of \.png, \.jpg")),
    "out_parent_is_file": (lambda t: ((t / "f").write_text("x"), ["data", "show", _dataset(t), "--out",
                                                                   t / "f" / "sheet.png"])[-1],
                           Err(r"--out .*sheet\.png: .*f is a file, not a folder")),
    "good": (lambda t: ["data", "show", _dataset(t), "--n", "4", "--cell", "16", "--out", t / "sheet.png"],
             Ok(_sheet_check)),
    "good_mask_0_255": (lambda t: ["data", "show", _dataset(t, mask=np.full((3, 16, 16), 255, np.uint8)), "--n", "4",
                                   "--cell", "16", "--out", t / "sheet.png"], Ok(lambda t, o: None)),
}


@pytest.mark.parametrize("case", SHOW_CASES)
def test_data_show(tmp_path, case):
    build, expect = SHOW_CASES[case]
    _run(tmp_path, build(tmp_path), expect)
    if isinstance(expect, Err):
        assert not (tmp_path / "sheet.png").is_file()


def _stats_check(pattern, key=None, value=None):
    def check(t, output):
        assert re.search(pattern, output, re.S), output
        if key is not None:
            assert json.loads((t / "s.json").read_text())[key] == value
    return check


def _mask_values(values):
    mask = np.zeros((3, 16, 16), np.uint8)
    for k, v in enumerate(values):
        mask[:, k, :] = v
    return mask


def _nan_joints():
    joints = np.zeros((3, 17, 2), np.float32)
    joints[0, 3] = np.nan
    joints[2, 9:11] = np.nan
    return joints


STATS_CASES = {
    **{name: (lambda t, b=b: ["data", "stats", b(t)], Err(p)) for name, (b, p) in BROKEN_DATASETS.items()},
    "num_samples_zero": (lambda t: ["data", "stats", _edit_meta(_dataset(t), num_samples=0)],
                         Err(r"num_samples must be a positive integer, got 0")),
    "mask_values_0_1_255": (lambda t: ["data", "stats", _dataset(t, mask=_mask_values([0, 1, 255]))],
                            Err(r"mask\.npy: mask holds values \{0, 1, 255\}; a mask must be \{0, 1\} or \{0, 255\}")),
    "mask_values_soft": (lambda t: ["data", "stats", _dataset(t, mask=_mask_values([0, 3, 9]))],
                         Err(r"mask holds values \{0, 3, 9\}")),
    "joints_inf": (lambda t: ["data", "stats", _stats_inf(t)], Err(r"joints3d\.npy: sample 1 holds infinite values")),
    "json_is_folder": (lambda t: ((t / "s.json").mkdir(), ["data", "stats", _dataset(t), "--json", t / "s.json"])[-1],
                       Err(r"--json .*s\.json: is a folder")),
    "json_parent_is_file": (lambda t: ((t / "f").write_text(""), ["data", "stats", _dataset(t), "--json",
                                                                   t / "f" / "s.json"])[-1],
                            Err(r"--json .*s\.json: .*f is a file, not a folder")),
    "mask_0_255": (lambda t: ["data", "stats", _dataset(t, mask=_mask_values([0, 255])), "--json", t / "s.json"],
                   Ok(_stats_check(r"values \{0, 255\} \(read as \{0, 1\}\)", "mask_values", "{0, 255} (read as {0, 1})"))),
    "nan_joints_counted": (lambda t: ["data", "stats", _dataset(t, joints2d=_nan_joints()), "--json", t / "s.json"],
                           Ok(_stats_check(r"joints2d \(px\).*missing \(NaN\) joints: 3", "joints2d",
                                           {"missing_joints": 3, "min": [0.0, 0.0], "max": [0.0, 0.0],
                                            "inside_fraction": 1.0}))),
    "good": (lambda t: ["data", "stats", _dataset(t), "--json", t / "s.json"],
             Ok(_stats_check(r"3 samples at 16x16 px.*values \{0, 1\}", "num_samples", 3))),
}


def _stats_inf(t):
    path = _dataset(t)
    joints = np.load(path / "joints3d.npy")
    joints[1, 2, 0] = np.inf
    _raw_write(path, "joints3d", joints)
    return path


@pytest.mark.parametrize("case", STATS_CASES)
def test_data_stats(tmp_path, case):
    build, expect = STATS_CASES[case]
    _run(tmp_path, build(tmp_path), expect)


# ---------------------------------------------------------------------------------------------
# synth (tiny n)


def _full_disk(t, monkeypatch):
    _old_dataset(t)
    from maskpose.data import dataset

    def full(fd, size):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(dataset, "_preallocate", full)
    return ["synth", "--out", t / "out", "--n", "2", "--res", "16", "--no-geodesic", "--batch-size", "2"]


def _synth_check(t, output):
    data = MaskposeDataset(t / "out")
    assert len(data) == 2 and data.resolution == (16, 16) and data.has("joints3d")
    assert read_meta(t / "out")["domain"] == "studio"


SYNTH_CASES = {
    "out_is_file": (lambda t: ((t / "out").write_text("x"), ["synth", "--out", t / "out", "--n", "1"])[-1],
                    Err(r"--out .*out: exists and is a file")),
    "unknown_domain": (lambda t: ["synth", "--out", t / "out", "--domain", "nope", "--n", "1"],
                       Err(r"unknown domain 'nope'")),
    "bad_split": (lambda t: ["synth", "--out", t / "out", "--split", "val", "--n", "1"],
                  Err(r"--split must be train or test, got 'val'")),
    "n_zero": (lambda t: ["synth", "--out", t / "out", "--n", "0"], Err(r"Invalid value for '--n'")),
    "res_too_small": (lambda t: ["synth", "--out", t / "out", "--n", "1", "--res", "8"], Err(r"Invalid value for '--res'")),
    "full_disk_keeps_old_dataset": (_full_disk, Err(r"out: cannot allocate \d+ bytes for image\.npy.*No space left")),
    "good_tiny": (lambda t: ["synth", "--out", _old_dataset(t), "--n", "2", "--res", "16", "--no-geodesic",
                             "--batch-size", "2"], Ok(_synth_check)),
}


@pytest.mark.parametrize("case", SYNTH_CASES)
def test_synth(tmp_path, case, monkeypatch):
    build, expect = SYNTH_CASES[case]
    args = build(tmp_path, monkeypatch) if case == "full_disk_keeps_old_dataset" else build(tmp_path)
    _run(tmp_path, args, expect)
    if case == "full_disk_keeps_old_dataset":
        _old_intact(tmp_path)
    if case == "out_is_file":
        assert (tmp_path / "out").read_text() == "x"


# ---------------------------------------------------------------------------------------------
# predict


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    import torch

    from maskpose.models.regressor import ModelConfig, PoseRegressor
    from maskpose.train.checkpoint import save_checkpoint

    torch.manual_seed(0)
    config = ModelConfig(resolution=16, width=8, hidden=16, heads=("joints",))
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    return save_checkpoint(path, {"model": PoseRegressor(config).state_dict(),
                                  "config": {"model": dataclasses.asdict(config)}})


def _records(folder: Path) -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}


def _same_stem(t):
    image = _person()[0]
    _png(t / "in" / "a.png", image)
    cv2.imwrite(str(t / "in" / "a.jpg"), np.ascontiguousarray(image[::-1]))
    return t / "in"


def _same_stem_check(t, output):
    records = _records(t / "pred")
    assert set(records) == {"a.png.json", "a.jpg.json"}
    assert records["a.png.json"]["name"] == "a.png" and (t / "pred" / "a.jpg_overlay.png").exists()


def _sixteen_bit_input(t):
    return _png(t / "in" / "g.png", np.full((16, 16), 32768, np.uint16))


def _sixteen_bit_predict_check(t, output):
    overlay = cv2.imread(str(t / "pred" / "g.png_overlay.png"))
    assert abs(float(np.median(overlay)) - 128) < 3  # mid-grey, not almost white


def _two_datasets(t):
    rng = np.random.default_rng(1)
    small = rng.integers(0, 255, (2, 16, 16, 3), dtype=np.uint8)
    write_dataset(t / "d16", {"image": small})
    write_dataset(t / "d32", {"image": small.repeat(2, axis=1).repeat(2, axis=2)})  # the same images at 2x
    return t / "d32"


def _dataset_frame_check(t, output):
    # d32 (nearest 2x of d16) resized back to the model's 16 px is d16 exactly, so the model sees the
    # same pixels; its joints must come out in d32's pixel frame: x32 = (x16 + 0.5) * 2 - 0.5.
    result = CliRunner().invoke(app, ["predict", str(t / "model.pt"), "--input", str(t / "d16"), "--out",
                                      str(t / "pred16"), "--no-ply"])
    assert result.exit_code == 0, result.output
    for name in ("000000.json", "000001.json"):
        r16, r32 = json.loads((t / "pred16" / name).read_text()), json.loads((t / "pred" / name).read_text())
        j16, j32 = np.asarray(r16["joints2d_px"]), np.asarray(r32["joints2d_px"])
        assert r32["input_size_hw"] == [32, 32] and r16["input_size_hw"] == [16, 16]
        np.testing.assert_allclose(j32, (j16 + 0.5) * 2 - 0.5, atol=1e-3)
        assert np.ptp(j16) > 0  # a real prediction, not a constant


def _png_frame_check(t, output):
    record = _records(t / "pred")["w.png.json"]
    assert record["input_size_hw"] == [8, 32]


PREDICT_CASES = {
    "input_missing": (lambda t: t / "nope", Err(r"nope: input does not exist")),
    "empty_folder": (lambda t: ((t / "in").mkdir(), t / "in")[1], Err(r"in: folder has no images")),
    "truncated_png": (lambda t: _truncate(_png(t / "in" / "a.png", _person()[0])).parent,
                      Err(r"a\.png: cannot read the image \(corrupt or truncated")),
    "garbage_jpg": (lambda t: ((t / "in").mkdir(), (t / "in" / "b.jpg").write_bytes(b"\xff\xd8garbage"), t / "in")[2],
                    Err(r"b\.jpg: cannot read the image")),
    "broken_dataset": (lambda t: _meta_list(t), Err(r"meta\.json: must hold a JSON object, got a list")),
    "out_is_file": (lambda t: ((t / "pred").write_text("x"), _png(t / "in" / "a.png", _person()[0]))[1],
                    Err(r"error: .*File exists: .*pred")),
    "same_stem_png_and_jpg": (_same_stem, Ok(_same_stem_check)),
    "sixteen_bit_grey_png": (_sixteen_bit_input, Ok(_sixteen_bit_predict_check)),
    "wide_png_frame": (lambda t: _png(t / "in" / "w.png", np.full((8, 32, 3), 90, np.uint8)), Ok(_png_frame_check)),
    "dataset_joints_in_input_pixels": (_two_datasets, Ok(_dataset_frame_check)),
}


@pytest.mark.parametrize("case", PREDICT_CASES)
def test_predict(tmp_path, case, checkpoint):
    shutil.copy(checkpoint, tmp_path / "model.pt")
    inputs = PREDICT_CASES[case][0](tmp_path)
    _run(tmp_path, ["predict", tmp_path / "model.pt", "--input", inputs, "--out", tmp_path / "pred", "--no-ply"],
         PREDICT_CASES[case][1])

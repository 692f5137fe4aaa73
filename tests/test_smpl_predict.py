"""``maskpose predict`` with SMPL checkpoints (issue 15): images, datasets, photos with boxes or masks,
the crop predictor of the video path, and the SMPL model file (flag, saved path, environment), on the
synthetic SMPL-format model of ``tests/smpl_model.py`` (never the real SMPL).

Everything here needs ``smplx`` (``pip install maskpose[smpl]``) and skips without it.
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
import trimesh

from maskpose.apps.predict import CropPredictor, person_record, predict_photos, predict_to_folder
from maskpose.data.dataset import MaskposeDataset
from maskpose.errors import ConfigError
from maskpose.models.regressor import ModelConfig
from maskpose.train.checkpoint import load_checkpoint, save_checkpoint
from maskpose.train.config import TrainConfig
from maskpose.train.loop import train
from smpl_model import make_smpl_data, write_smpl_model
from test_smpl_training import make_smpl_dataset

RES = 32
TINY = ModelConfig(resolution=RES, width=8, hidden=16)
#: 3 cells per box face: 1,344 vertices, more than the decimated topology's 1,200, so the PLY
#: (full topology) and the rendered mesh (decimated) differ.
SUBDIVISIONS = 3


@pytest.fixture(scope="module")
def smpl_file(tmp_path_factory):
    pytest.importorskip("smplx")
    path = tmp_path_factory.mktemp("smpl") / "SMPL_NEUTRAL.pkl"
    write_smpl_model(path, subdivisions=SUBDIVISIONS)
    return path


@pytest.fixture(scope="module")
def full_vertices():
    return len(make_smpl_data(SUBDIVISIONS)[0]["v_template"])


@pytest.fixture(scope="module")
def smpl_data(smpl_file, tmp_path_factory):
    return make_smpl_dataset(tmp_path_factory.mktemp("data") / "smpl", smpl_file, n=4)


@pytest.fixture(scope="module")
def checkpoint(smpl_file, smpl_data, tmp_path_factory):
    config = TrainConfig(data=str(smpl_data), out=str(tmp_path_factory.mktemp("run")), steps=1, batch_size=4,
                         body="smpl", smpl_model=str(smpl_file), model=TINY)
    return train(config, progress=False).checkpoint


@pytest.fixture
def no_env(monkeypatch):
    monkeypatch.delenv("MASKPOSE_SMPL_MODEL", raising=False)


def _moved_checkpoint(checkpoint, tmp_path):
    """The checkpoint as another machine sees it: its saved SMPL model path does not exist there."""
    state = load_checkpoint(checkpoint)
    state["config"]["smpl_model"] = str(tmp_path / "elsewhere" / "SMPL_NEUTRAL.pkl")
    return save_checkpoint(tmp_path / "moved.pt", state)


def _check_smpl_record(record: dict) -> None:
    assert record["body"] == "smpl" and "phenotypes" not in record
    assert len(record["betas"]) == 10 and np.isfinite(record["betas"]).all()
    assert np.asarray(record["joints3d_m"]).shape == (17, 3) and np.isfinite(record["joints3d_m"]).all()
    assert np.isfinite(record["translation_m"]).all()


def test_predict_a_dataset_with_the_smpl_body(checkpoint, smpl_data, full_vertices, tmp_path, no_env):
    assert predict_to_folder(checkpoint, smpl_data, tmp_path / "pred") == 4
    for i in range(4):
        record = json.loads((tmp_path / "pred" / f"{i:06d}.json").read_text())
        _check_smpl_record(record)
        mesh = trimesh.load(tmp_path / "pred" / f"{i:06d}.ply", process=False)
        assert len(mesh.vertices) == full_vertices  # the PLY holds the full mesh, not the decimated one
        assert (tmp_path / "pred" / f"{i:06d}_overlay.png").is_file()


def test_cli_predict_images_and_the_model_file(checkpoint, smpl_data, smpl_file, tmp_path, no_env):
    from typer.testing import CliRunner

    from maskpose.cli import app

    images = tmp_path / "images"
    images.mkdir()
    sample = MaskposeDataset(smpl_data, fields=["image"])[0]["image"]
    rgb = (sample.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    assert cv2.imwrite(str(images / "person.png"), cv2.cvtColor(cv2.resize(rgb, (48, 64)), cv2.COLOR_RGB2BGR))
    runner = CliRunner()
    result = runner.invoke(app, ["predict", str(checkpoint), "--input", str(images), "--out", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output  # the model file saved in the checkpoint
    record = json.loads((tmp_path / "a" / "person.png.json").read_text())
    _check_smpl_record(record)
    assert record["input_size_hw"] == [64, 48]

    moved = _moved_checkpoint(checkpoint, tmp_path)
    missing = runner.invoke(app, ["predict", str(moved), "--input", str(images), "--out", str(tmp_path / "b")])
    assert missing.exit_code == 2
    line = missing.output.strip()
    assert "\n" not in line and line.startswith(f"error: checkpoint {moved} was trained with body 'smpl'")
    assert "SMPL model file does not exist" in line and "--smpl-model PATH" in line
    assert not (tmp_path / "b").exists()  # refused before anything is written

    given = runner.invoke(app, ["predict", str(moved), "--input", str(images), "--out", str(tmp_path / "c"),
                                "--smpl-model", str(smpl_file), "--no-ply"])
    assert given.exit_code == 0, given.output
    assert json.loads((tmp_path / "c" / "person.png.json").read_text())["joints3d_m"] == record["joints3d_m"]
    assert not list((tmp_path / "c").glob("*.ply"))


def test_the_environment_names_the_model_file(checkpoint, smpl_data, smpl_file, tmp_path, monkeypatch):
    moved = _moved_checkpoint(checkpoint, tmp_path)
    monkeypatch.setenv("MASKPOSE_SMPL_MODEL", str(smpl_file))
    assert predict_to_folder(moved, smpl_data, tmp_path / "env", write_ply=False) == 4
    monkeypatch.setenv("MASKPOSE_SMPL_MODEL", str(tmp_path / "none.pkl"))
    with pytest.raises(ConfigError, match="was trained with body 'smpl': .*none.pkl: SMPL model file does not exist"):
        predict_to_folder(moved, smpl_data, tmp_path / "env2")


def test_predict_photos_with_boxes_and_masks(checkpoint, smpl_data, tmp_path, no_env):
    data = MaskposeDataset(smpl_data, fields=["image", "mask"])
    photo = np.zeros((80, 120, 3), np.uint8)
    masks = tmp_path / "masks"
    masks.mkdir()
    boxes = []
    for k, x0 in enumerate((4, 70), 1):
        sample = data[k - 1]
        photo[20 : 20 + RES, x0 : x0 + RES] = (sample["image"].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        mask = np.zeros(photo.shape[:2], np.uint8)
        mask[20 : 20 + RES, x0 : x0 + RES] = sample["mask"][0].numpy().astype(np.uint8) * 255
        cv2.imwrite(str(masks / f"photo_{k}.png"), mask)
        ys, xs = np.nonzero(mask)
        boxes.append([float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)])
    cv2.imwrite(str(tmp_path / "photo.png"), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
    (tmp_path / "boxes.json").write_text(json.dumps(boxes))
    by_box = predict_photos(checkpoint, tmp_path / "photo.png", tmp_path / "boxes", boxes=tmp_path / "boxes.json")
    by_mask = predict_photos(checkpoint, tmp_path / "photo.png", tmp_path / "masked", masks=masks, write_ply=False)
    assert (by_box.people, by_mask.people) == (2, 2)
    for k in (1, 2):
        entry = json.loads((tmp_path / "boxes" / f"photo_person{k}.json").read_text())
        _check_smpl_record(entry)
        assert (tmp_path / "boxes" / f"photo_person{k}.ply").is_file()
        masked = json.loads((tmp_path / "masked" / f"photo_person{k}.json").read_text())
        _check_smpl_record(masked)
        assert 0.0 <= masked["silhouette_iou"] <= 1.0
    assert (tmp_path / "masked" / "photo_overlay.png").is_file()


def test_the_video_path_poses_smpl_crops(checkpoint, smpl_data, full_vertices, no_env):
    predictor = CropPredictor(checkpoint, "cpu", meshes=True)
    assert predictor.body.name == "smpl" and predictor.body.num_vertices <= 1200  # trained: decimated
    assert predictor.export_body.num_vertices == full_vertices
    images = torch.stack([MaskposeDataset(smpl_data, fields=["image"])[i]["image"] for i in range(3)])
    records = predictor(images)
    assert len(records) == 3
    for record in records:
        assert record["betas"].shape == (10,) and record["vertices"].shape == (full_vertices, 3)
        assert record["silhouette"].shape == (RES, RES)
        entry = person_record(record, 1, (0.0, 0.0, 64.0, 64.0), RES, predictor.focal)  # one per-frame JSON entry
        assert entry["body"] == "smpl" and len(entry["betas"]) == 10 and "phenotypes" not in entry

"""Models that see the image times the person mask (``TrainConfig.masked_input``) outside
training: ``predict`` feeds them masked crops and refuses inputs without masks, fine-tuning
keeps them masked, and the milder pose mixture of the real-photo source data.

The masked-input checkpoint is the small shipped one with ``masked_input`` set in its saved
config: the weights do not matter here, only what the network is fed."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from maskpose.apps.demo import SMALL_SOURCE, shipped_checkpoint
from maskpose.apps.predict import CropPredictor, model_input, predict_to_folder
from maskpose.bench.peers import _Model as _PeersModel
from maskpose.body.sampler import PoseDistribution, PoseSampler
from maskpose.cli import app
from maskpose.data.dataset import MaskposeDataset, write_dataset
from maskpose.errors import ConfigError, DataError
from maskpose.synth.realistic import MixedPoses
from maskpose.train.checkpoint import load_checkpoint, load_model, save_checkpoint
from maskpose.train.config import TrainConfig
from maskpose.train.evaluate import evaluate_checkpoint
from tiny_data import make_dataset

CHECKPOINT = shipped_checkpoint(SMALL_SOURCE)
RES = 64

pytestmark = pytest.mark.skipif(CHECKPOINT is None, reason="the small shipped checkpoint is absent")


@pytest.fixture(scope="module")
def masked_checkpoint(tmp_path_factory) -> Path:
    state = load_checkpoint(CHECKPOINT)
    state["config"] = {**state["config"], "masked_input": True}
    return save_checkpoint(tmp_path_factory.mktemp("masked") / "checkpoint.pt", state)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, body) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data") / "d", n=6, res=RES, seed=3, body=body)


def test_predict_feeds_a_masked_model_the_image_times_the_mask(masked_checkpoint, dataset, tmp_path):
    predict_to_folder(masked_checkpoint, dataset, tmp_path / "masked", write_ply=False)
    predict_to_folder(CHECKPOINT, dataset, tmp_path / "plain", write_ply=False)
    data = MaskposeDataset(dataset)
    images = torch.stack([data[i]["image"] for i in range(len(data))])
    masks = torch.stack([data[i]["mask"][0] for i in range(len(data))])
    assert bool(((masks == 0) | (masks == 1)).all()) and 0 < float(masks.float().mean()) < 1
    model, _ = load_model(CHECKPOINT)
    model.eval()
    with torch.no_grad():
        expected = model(images * masks[:, None]).mesh.pose
        plain = model(images).mesh.pose
    assert not torch.allclose(expected, plain)  # the mask changes what the network sees
    for i in range(len(data)):
        name = f"{i:06d}"
        masked = json.loads((tmp_path / "masked" / f"{name}.json").read_text())
        unmasked = json.loads((tmp_path / "plain" / f"{name}.json").read_text())
        assert masked["joints2d_px"] != unmasked["joints2d_px"]
    # the masked checkpoint's records are those of the plain weights fed the masked images
    predictor = CropPredictor(masked_checkpoint)
    records = predictor(images, masks)
    reference = CropPredictor(CHECKPOINT)(images * masks[:, None], masks)
    for got, want in zip(records, reference):
        assert np.array_equal(got["joints2d"], want["joints2d"])
        assert got["iou"] == want["iou"]


def test_model_input():
    images, masks = torch.rand(2, 3, 4, 4), (torch.rand(2, 4, 4) > 0.5).to(torch.uint8)
    assert model_input(images, None, False) is images
    assert torch.equal(model_input(images, masks, True), images * masks[:, None].float())
    with pytest.raises(DataError, match="masked_input"):
        model_input(images, None, True)


def test_a_masked_model_without_masks_is_one_clear_line(masked_checkpoint, dataset, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    from PIL import Image

    Image.fromarray(np.zeros((RES, RES, 3), np.uint8)).save(folder / "a.png")
    result = CliRunner().invoke(app, ["predict", str(masked_checkpoint), "--input", str(folder),
                                      "--out", str(tmp_path / "o")])
    assert result.exit_code != 0
    line = result.output.strip().splitlines()[-1]
    assert "masked_input" in line and "no masks" in line and "Traceback" not in result.output
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps([[4, 4, 40, 60]]))
    photo = folder / "a.png"
    result = CliRunner().invoke(app, ["predict", str(masked_checkpoint), "--input", str(photo), "--boxes",
                                      str(boxes), "--out", str(tmp_path / "p")])
    assert result.exit_code != 0 and "--boxes gives no masks" in result.output.strip().splitlines()[-1]


def test_fine_tuning_keeps_a_masked_model_masked(masked_checkpoint):
    saved = load_checkpoint(masked_checkpoint)["config"]
    inherited = TrainConfig(mode="adapt", init_checkpoint=str(masked_checkpoint)).inherit_from_checkpoint(saved)
    assert inherited.masked_input
    plain = load_checkpoint(CHECKPOINT)["config"]
    assert not TrainConfig(mode="adapt").inherit_from_checkpoint(plain).masked_input
    # a plain model may be fine-tuned to masked input on purpose
    assert TrainConfig(mode="pretrain", masked_input=True).inherit_from_checkpoint(plain, "x", {"masked_input"}).masked_input
    with pytest.raises(ConfigError, match="masked_input: false would feed it plain images"):
        TrainConfig(mode="adapt").inherit_from_checkpoint(saved, "ckpt", {"masked_input"})


class _FakeMotion:
    description = {"fake": True}

    def sample(self, n, seed=0):
        return torch.zeros(n, 18, 6), torch.full((n, 6), 0.5)


def test_mixed_poses_with_the_milder_sampler():
    distribution = PoseDistribution(spread=0.5, max_yaw_deg=30.0)
    mixed = MixedPoses(0.5, motion=_FakeMotion(), distribution=distribution)
    pose, phen = mixed.sample(64, seed=11)
    reference, ref_phen = PoseSampler.facing_camera(11, distribution).sample(64)
    picked = torch.from_numpy(np.random.default_rng(11).random(64) < 0.5)
    assert 0 < int(picked.sum()) < 64
    assert torch.equal(pose[~picked], reference[~picked]) and torch.equal(phen[~picked], ref_phen[~picked])
    assert bool((pose[picked] == 0).all())
    assert mixed.description["sampler"] == {"facing_camera": asdict(distribution)}
    assert "sampler" not in MixedPoses(0.5, motion=_FakeMotion()).description


def test_bench_peers_and_evaluate_feed_the_masked_images(masked_checkpoint, dataset, tmp_path):
    """The masked checkpoint on a dataset scores as the plain weights on that dataset's images
    already multiplied by their masks."""
    source = MaskposeDataset(dataset)
    arrays = {name: np.asarray(array) for name, array in source.arrays.items()}
    arrays["image"] = arrays["image"] * arrays["mask"][..., None]
    premasked = write_dataset(tmp_path / "premasked", arrays, domain="tiny")
    got = _PeersModel(masked_checkpoint, "cpu").predict(MaskposeDataset(dataset), 4)
    want = _PeersModel(CHECKPOINT, "cpu").predict(MaskposeDataset(premasked), 4)
    assert all(torch.equal(a, b) for a, b in zip(got, want))
    assert evaluate_checkpoint(masked_checkpoint, dataset) == evaluate_checkpoint(CHECKPOINT, premasked)

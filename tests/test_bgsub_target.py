"""The ``bgsub`` adaptation target (issue 14): masks from the project's background subtraction on
synthetic static-camera videos, labels from the renderer in perspective crop cameras."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from maskpose.bench.adapt import BenchConfig, target_splits
from maskpose.bench.common import _Log
from maskpose.data.dataset import read_meta
from maskpose.errors import ConfigError
from maskpose.synth.bgsub import BgsubConfig, _video_seed, video_samples
from maskpose.synth.domains import get_domain
from maskpose.synth.generator import SynthesisConfig, generate

RES = 48
pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py



@pytest.fixture(scope="module")
def test_split(tmp_path_factory, body):
    return generate(tmp_path_factory.mktemp("bgsub") / "test", "bgsub", 24, RES, 0, "test", True, body=body)


def _arrays(path):
    meta = read_meta(path)
    return {name: np.load(path / f"{name}.npy") for name in meta["fields"]}


def test_fields_and_the_crop_camera(test_split):
    a = _arrays(test_split)
    assert set(a) == {"image", "mask", "intrinsics", "geodesic", "crop_box", "valid", "frame_index", "track_id",
                      "merged", "joints3d", "joints2d", "pose", "phenotypes", "translation"}
    assert a["image"].shape == (24, RES, RES, 3) and a["mask"].dtype == np.uint8 and set(np.unique(a["mask"])) <= {0, 1}
    K = a["intrinsics"]
    assert np.allclose(K[:, 0, 2], (RES - 1) / 2) and np.allclose(K[:, 1, 2], (RES - 1) / 2)  # centred crops
    side = a["crop_box"][:, 2] - a["crop_box"][:, 0]
    assert np.allclose(K[:, 0, 0], 0.9 * 320 * RES / side, rtol=1e-5)  # f res / side of the extractor's box
    assert not (a["mask"] & (1 - a["valid"])).any()  # never mask outside the frame


def test_labels_project_onto_the_crop_and_match_the_body(test_split, body):
    a = _arrays(test_split)
    J, uv, K = a["joints3d"].astype(np.float64), a["joints2d"], a["intrinsics"]
    proj = J[..., :2] / J[..., 2:] * K[:, None, [0, 1], [0, 1]] + K[:, None, :2, 2]
    assert np.abs(proj - uv).max() < 1e-3
    inside = (uv >= 0).all(-1) & (uv <= RES - 1).all(-1)
    assert inside.mean() > 0.8
    on_mask = [a["mask"][i, int(round(y)), int(round(x))] for i in range(len(uv)) for (x, y), ok
               in zip(uv[i], inside[i]) if ok]
    assert np.mean(on_mask) > 0.6  # the labelled person is where the mask is
    # the pose turned by the crop camera gives the stored joints (rotation about the camera centre)
    with torch.no_grad():
        out = body(torch.from_numpy(a["pose"]), torch.from_numpy(a["phenotypes"]))
    rebuilt = out.joints.numpy() + a["translation"][:, None]
    assert np.abs(rebuilt - a["joints3d"]).max() < 2e-3


def test_masks_are_the_extractors_not_the_renders(body):
    settings = BgsubConfig(people=(2, 2), mocap_share=0.0)
    samples = []
    with tempfile.TemporaryDirectory() as tmp:
        for v in range(2):
            seed, rng = _video_seed(0, "bgsub", "train", v)
            folder = Path(tmp) / str(v)
            folder.mkdir()
            found, summary = video_samples(folder, settings, seed, rng, RES, body, "cpu", labels=False)
            samples += found
            assert summary["kept"] == len(found) and summary["extracted"] >= len(found)
    ious = np.array([(s["mask"] & s["exact"]).sum() / max(1, (s["mask"] | s["exact"]).sum()) for s in samples])
    assert len(ious) > 20
    assert 0.5 < ious.mean() < 0.97  # close to the person, with the extractor's errors
    assert (ious < 0.999).mean() > 0.8  # almost never the exact render
    assert ious.min() > 0.0


def test_same_seed_same_bytes_and_splits_use_other_videos(tmp_path, body, test_split):
    a = generate(tmp_path / "a", "bgsub", 10, RES, 0, "test", True, body=body)
    b = generate(tmp_path / "b", "bgsub", 10, RES, 0, "test", True, body=body)
    train = generate(tmp_path / "train", "bgsub", 10, RES, 0, "train", False, body=body)
    for name in ("image", "mask", "joints3d", "intrinsics"):
        assert hashlib.sha256((a / f"{name}.npy").read_bytes()).digest() == \
            hashlib.sha256((b / f"{name}.npy").read_bytes()).digest()
    # the first samples do not depend on n
    assert np.array_equal(np.load(a / "mask.npy"), np.load(test_split / "mask.npy")[:10])
    seeds = {v["seed"] for v in read_meta(a)["attrs"]["videos"]}
    assert seeds.isdisjoint(v["seed"] for v in read_meta(train)["attrs"]["videos"])
    assert "joints3d" not in read_meta(train)["fields"]


def test_generate_refuses_what_bgsub_cannot_do(tmp_path, body):
    with pytest.raises(ConfigError, match="pose source"):
        generate(tmp_path / "x", "bgsub", 4, RES, pose_source=object(), body=body)
    with pytest.raises(ConfigError, match="extras"):
        generate(tmp_path / "y", "bgsub", 4, RES, config=SynthesisConfig(extras=True), body=body)
    assert get_domain("bgsub").generator is not None


def test_bench_target_splits_take_bgsub(tmp_path, body):
    cfg = BenchConfig(resolution=RES, targets=("bgsub", "bgsub+erode1")).validate()
    splits = target_splits(cfg, tmp_path / "bgsub+erode1", "bgsub+erode1", {"train": 8, "test": 6}, body,
                           _Log("test", lambda _: None))
    train = Path(splits["train"])
    assert "joints3d" in read_meta(train)["fields"]  # the oracle fine-tunes on the train split's labels
    assert read_meta(train)["attrs"]["mask_degradation"]["name"] == "erode1"
    clean = generate(tmp_path / "clean", "bgsub", 8, RES, cfg.data_seed, "train", True, body=body)
    assert np.load(train / "mask.npy").sum() < np.load(clean / "mask.npy").sum()
    assert np.array_equal(np.load(train / "image.npy"), np.load(clean / "image.npy"))

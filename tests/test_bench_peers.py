"""``maskpose bench peers`` without MediaPipe: a fake peer script, run through the real subprocess
path, writes known landmarks; the scores must come out exactly."""

from __future__ import annotations

import importlib.util
import json
import sys
import textwrap

import numpy as np
import pytest
from typer.testing import CliRunner

from maskpose.bench import peers
from maskpose.bench.peers import PeersConfig, mediapipe_to_h36m, parse_adapted, resolve_peer_python, run_peers
from maskpose.cli import app
from maskpose.conventions import H36M_JOINTS
from maskpose.errors import ConfigError
from maskpose.train.evaluate import evaluate_checkpoint

#: The fake peer: the dataset's own joints as MediaPipe landmarks for the even samples, nothing for
#: the odd ones (its own copy of the H36M -> MediaPipe mapping of docs/peers.md).
FAKE_PEER = textwrap.dedent('''
    import sys
    from pathlib import Path
    import numpy as np

    H36M = ("pelvis", "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "spine", "thorax",
            "neck", "head", "l_shoulder", "l_elbow", "l_wrist", "r_shoulder", "r_elbow", "r_wrist")
    MP = {"r_hip": 24, "r_knee": 26, "r_ankle": 28, "l_hip": 23, "l_knee": 25, "l_ankle": 27,
          "l_shoulder": 11, "l_elbow": 13, "l_wrist": 15, "r_shoulder": 12, "r_elbow": 14, "r_wrist": 16}
    data, out = Path(sys.argv[1]), Path(sys.argv[2])
    j2 = np.load(data / "joints2d.npy")
    n = len(j2)
    j3 = np.load(data / "joints3d.npy") if (data / "joints3d.npy").exists() else np.zeros((n, 17, 3))
    detected = np.arange(n) % 2 == 0
    lm = np.full((n, 33, 2), np.nan, np.float32)
    world = np.full((n, 33, 3), np.nan, np.float32)
    for name, k in MP.items():
        lm[:, k] = j2[:, H36M.index(name)]
        world[:, k] = j3[:, H36M.index(name)] * 1.3 + 0.2  # a similarity transform: PA-MPJPE stays 0
    lm[~detected] = np.nan
    world[~detected] = np.nan
    vis = np.where(detected[:, None], 0.9, np.nan).astype(np.float32) * np.ones((1, 33), np.float32)
    np.savez(out, detected=detected, landmarks2d=lm, visibility=vis, world=world,
             mediapipe_version=np.array("fake"), model_complexity=np.array(1))
''')


@pytest.fixture
def fake_peer(tmp_path):
    path = tmp_path / "fake_peer.py"
    path.write_text(FAKE_PEER)
    return path


def _config(tmp_path, fake_peer, **changes) -> PeersConfig:
    return PeersConfig(targets=("studio",), n=4, resolution=64, out=str(tmp_path / "out"), peer_python=sys.executable,
                       worker=str(fake_peer), **changes)


def test_fake_peer_scores_exactly(tmp_path, fake_peer):
    ckpt, _ = peers.default_checkpoint()
    payload = run_peers(_config(tmp_path, fake_peer, adapted={"studio": str(ckpt)}), printer=lambda _: None)
    entry = payload["datasets"]["studio"]
    mp, mine = entry["methods"]["mediapipe"], entry["methods"]["maskpose"]
    assert mp["detected"] == 2 and mp["detection_rate"] == 50.0
    assert mp["pck2d@0.1"] == 50.0 and mp["pck2d@0.05"] == 50.0  # misses count as failures
    assert mp["pck2d_detected@0.1"] == 100.0 and mp["error2d_px_detected"] == pytest.approx(0.0, abs=1e-4)
    assert mp["pa_mpjpe_count"] == 2 and mp["pa_mpjpe"] == pytest.approx(0.0, abs=1e-3)
    assert mine["detection_rate"] == 100.0 and mine["pa_mpjpe_count"] == 4 and mine["pa_mpjpe"] > 1.0
    assert mine["num_keypoints"] == mp["num_keypoints"] == 4 * 12
    assert mine["pck2d_on_peer_detected@0.1"] is not None
    assert entry["methods"]["maskpose_adapted"]["pck2d@0.1"] == mine["pck2d@0.1"]  # the same checkpoint
    assert (tmp_path / "out" / "bench_peers.md").read_text().count("| studio |") == 3


def test_the_refined_row_is_what_evaluate_refine_reports(tmp_path, fake_peer):
    ckpt, _ = peers.default_checkpoint()
    payload = run_peers(_config(tmp_path, fake_peer, refine=5), printer=lambda _: None)
    entry = payload["datasets"]["studio"]
    methods = entry["methods"]
    for method, refine in (("maskpose", 0), ("maskpose_refined", 5)):
        metrics = evaluate_checkpoint(ckpt, entry["path"], refine=refine)
        for f in ("0.05", "0.1", "0.2"):
            assert methods[method][f"pck2d@{f}"] == pytest.approx(metrics[f"pck2d@{f}"])
    assert methods["maskpose_refined"]["pa_mpjpe"] != methods["maskpose"]["pa_mpjpe"]
    assert (tmp_path / "out" / "bench_peers.md").read_text().count("| studio | maskpose_refined |") == 1
    with pytest.raises(ConfigError, match="refine must be an int >= 0"):
        _config(tmp_path, fake_peer, refine=-1).validate()


def test_missing_peer_is_one_clear_line(tmp_path, monkeypatch, fake_peer):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a, **k: None if name == "mediapipe" else real_find_spec(name, *a, **k))
    monkeypatch.delenv(peers.PEER_PYTHON_ENV, raising=False)
    with pytest.raises(ConfigError, match=r"pip install mediapipe==0\.10\.14") as err:
        resolve_peer_python(PeersConfig())
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="no such interpreter"):
        resolve_peer_python(PeersConfig(peer_python=str(tmp_path / "nope" / "python")))
    monkeypatch.setenv(peers.PEER_PYTHON_ENV, sys.executable)
    assert resolve_peer_python(PeersConfig()) == sys.executable


@pytest.mark.skipif(importlib.util.find_spec("mediapipe") is not None, reason="mediapipe is installed here")
def test_failing_peer_names_the_dataset(tmp_path):
    """The real worker in an interpreter without mediapipe: exit 2 and one line, named by dataset."""
    data = tmp_path / "data"
    data.mkdir()
    with pytest.raises(ConfigError, match=r"peer on dataset thermal failed \(exit 2\): .*cannot import mediapipe") as err:
        peers.run_peer(sys.executable, peers.WORKER, data, tmp_path / "x.npz", "thermal")
    assert "\n" not in str(err.value)


def test_config_errors():
    assert parse_adapted(["a=x.pt", "b=y.pt"]) == {"a": "x.pt", "b": "y.pt"}
    with pytest.raises(ConfigError, match="NAME=PATH"):
        parse_adapted(["nopath"])
    with pytest.raises(ConfigError, match="match no dataset"):
        PeersConfig(targets=("studio",), adapted={"thermal": __file__}).validate()
    with pytest.raises(ConfigError, match="unknown target"):
        PeersConfig(targets=("nowhere",)).validate()
    with pytest.raises(ConfigError, match="JSON:IMAGES"):
        PeersConfig(coco=("only.json",)).validate()
    assert PeersConfig(targets=("studio",), real=("/a/studio", "/b/x")).dataset_names() == ["studio", "studio-2", "x"]


def test_landmark_mapping():
    lm = np.arange(33 * 2, dtype=np.float64).reshape(1, 33, 2)
    h = mediapipe_to_h36m(lm)
    assert np.array_equal(h[0, H36M_JOINTS.index("l_wrist")], lm[0, 15])
    assert np.array_equal(h[0, H36M_JOINTS.index("r_ankle")], lm[0, 28])
    assert np.allclose(h[0, H36M_JOINTS.index("pelvis")], (lm[0, 23] + lm[0, 24]) / 2)


def test_cli_json(tmp_path, fake_peer, monkeypatch):
    monkeypatch.setattr(peers, "WORKER", fake_peer)
    out, js = tmp_path / "cli", tmp_path / "peers.json"
    result = CliRunner().invoke(app, ["bench", "peers", "--quick", "--targets", "studio", "--n", "4", "--res", "64",
                                      "--peer-python", sys.executable, "--out", str(out), "--json", str(js)])
    assert result.exit_code == 0, result.output
    payload = json.loads(js.read_text())
    assert {"benchmark", "config", "checkpoint", "peer", "pa_joints", "datasets", "table"} <= set(payload)
    assert payload["config"]["n"] == 4 and payload["config"]["resolution"] == 64
    methods = payload["datasets"]["studio"]["methods"]
    assert set(methods) == {"mediapipe", "maskpose"}
    for m in methods.values():
        assert {"detection_rate", "pck2d@0.05", "pck2d@0.1", "pck2d@0.2", "pa_mpjpe", "pa_mpjpe_count"} <= set(m)
    assert len(payload["pa_joints"]) == 13
    bad = CliRunner().invoke(app, ["bench", "peers", "--targets", "studio", "--adapted", "x"])
    assert bad.exit_code == 2 and "NAME=PATH" in bad.output

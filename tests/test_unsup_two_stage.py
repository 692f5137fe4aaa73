"""Mask as Supervision, the released recipe (issue 13): the two-stage train-unsup, its options
(released skeleton, one-sided term, released geodesic weights, symmetry, masked input, a pretrained
ψ, depth hypotheses), SPP from the CLI, and the two-stage ``bench unsup``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from maskpose.cli import app
from maskpose.conventions import H36M_BONES
from maskpose.errors import ConfigError, DataError
from maskpose.eval.spp import fit_spp
from maskpose.masks.geodesic import geodesic_weights_torch
from maskpose.masks.physique import PhysiqueNet
from maskpose.masks.skeleton import released_style
from maskpose.masks.symmetry import bone_symmetry_loss, centre_symmetry_loss
from maskpose.models.integral import hypothesis_cross_entropy, winner_takes_all_l1
from maskpose.models.regressor import ModelConfig, PoseRegressor
from maskpose.train.checkpoint import load_checkpoint
from maskpose.train.config import TrainConfig
from maskpose.train.evaluate import collect_predictions, joint_metrics, spp_metrics
from maskpose.train.loop import Trainer, train
from maskpose.train.objectives import HYPOTHESIS_CHOICE_WEIGHT, Objective
from maskpose.train.pipeline import joint_prediction
from tiny_data import make_dataset

RES = 32
JOINTS = ModelConfig(resolution=RES, width=8, hidden=32, heads=("joints",), num_landmarks=17)
INTEGRAL = ModelConfig(resolution=RES, width=8, hidden=32, heads=("joints",), num_landmarks=17,
                       joint_head="integral", depth_hypotheses=3)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("unsup")
    source = make_dataset(root / "source", 12, res=RES, seed=0)
    target = make_dataset(root / "target", 10, res=RES, seed=1, tint=(90.0, 200.0, 60.0))
    return {"source": str(source), "target": str(target), "root": root}


def _run(data, out, **changes) -> TrainConfig:
    base = dict(mode="train-unsup", data=data["target"], out=str(out), steps=2, batch_size=4, log_every=1,
                checkpoint_every=100, losses={"mas": 1.0, "symmetry": 0.1}, model=JOINTS)
    return TrainConfig(**{**base, **changes})


# ---------------------------------------------------------------------------------------- config
@pytest.mark.parametrize("changes, message", [
    ({"stage1_steps": 2}, "needs source_data"),
    ({"stage1_steps": 2, "source_data": "S", "init_checkpoint": "C"}, "set stage1_steps to 0"),
    ({"mode": "pretrain", "stage1_steps": 2, "source_data": "S", "losses": {"joints3d": 1.0}}, "other modes"),
    ({"mode": "pretrain", "source_ratio": 0.5, "source_data": "S", "losses": {"joints3d": 1.0}}, "not pretrain"),
    ({"mas_style": "fancy"}, "mas_style must be one of"),
    ({"mas_skeleton_term": "both"}, "mas_skeleton_term must be one of"),
    ({"mas_geodesic_form": "exp"}, "mas_geodesic_form must be one of"),
    ({"mas_physique_checkpoint": "/no/such/psi.pt"}, "does not exist"),
    ({"masked_input": "yes"}, "masked_input must be true or false"),
    ({"stage1_steps": -1}, "stage1_steps must be an int"),
])
def test_two_stage_options_are_validated(data, tmp_path, changes, message):
    with pytest.raises(ConfigError, match=message):
        _run(data, tmp_path / "r", **changes).validate()


# ---------------------------------------------------------------------------------------- two stages
def test_two_stage_run_trains_stage1_then_stage2_with_source_batches(data, tmp_path):
    """stage1_steps > 0: a supervised run in out/stage1 on the source, then stage 2 from its
    checkpoint with the mask terms, the symmetry loss and a supervised source batch every step."""
    result = train(_run(data, tmp_path / "run", stage1_steps=3, source_data=data["source"], source_ratio=1.0),
                   progress=False)
    stage1 = load_checkpoint(tmp_path / "run" / "stage1" / "checkpoint.pt")
    assert stage1["config"]["mode"] == "pretrain" and stage1["step"] == 3
    assert stage1["config"]["data"] == data["source"] and stage1["config"]["losses"] == {"joints3d": 1.0, "joints2d": 1.0}
    saved = load_checkpoint(result.checkpoint)["config"]
    assert saved["init_checkpoint"] == str(tmp_path / "run" / "stage1" / "checkpoint.pt") and saved["stage1_steps"] == 0
    for record in result.history:
        assert {"mas", "symmetry", "source_joints3d", "source_joints2d"} <= set(record)
    # resuming the finished pair trains nothing more and gives the same weights
    again = train(_run(data, tmp_path / "run", stage1_steps=3, source_data=data["source"], source_ratio=1.0),
                  progress=False)
    a, b = load_checkpoint(result.checkpoint)["model"], load_checkpoint(again.checkpoint)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_stage2_starts_from_the_stage1_weights(data, tmp_path):
    first = train(TrainConfig(mode="pretrain", data=data["source"], out=str(tmp_path / "s1"), steps=2, batch_size=4,
                              losses={"joints3d": 1.0, "joints2d": 1.0}, model=JOINTS), progress=False)
    trainer = Trainer(_run(data, tmp_path / "s2", init_checkpoint=str(first.checkpoint), source_data=data["source"],
                           source_ratio=1.0))
    saved = load_checkpoint(first.checkpoint)["model"]
    assert all(torch.equal(v, saved[k]) for k, v in trainer.model.state_dict().items())
    assert trainer.source is not None and "params" not in trainer.source_objective.weights  # a joint head


# ---------------------------------------------------------------------------------------- objective options
def test_released_style_draws_the_released_lines_with_the_landmark_extras(data):
    objective = Objective(_run(data, "x", mas_style="released", model=replace_landmarks(20)))
    lines, widths = released_style()
    skeleton = objective.mas.skeleton
    assert skeleton.reduce == "max" and skeleton.bones[:len(lines)] == lines
    assert len(skeleton.bones) == len(lines) + 3  # landmarks 17, 18, 19 joined as in the paper style
    assert torch.equal(skeleton.limb_widths[:len(lines)], widths) and bool((skeleton.limb_widths[len(lines):] == 1).all())
    paper = Objective(_run(data, "x", model=replace_landmarks(20)))
    assert paper.mas.skeleton.reduce == "sum" and paper.mas.skeleton.bones[:len(H36M_BONES)] == tuple(H36M_BONES)


def replace_landmarks(n: int) -> ModelConfig:
    return ModelConfig(**{**JOINTS.to_dict(), "num_landmarks": n, "blocks": tuple(JOINTS.blocks),
                          "heads": tuple(JOINTS.heads)})


def _batch(data, n=4):
    from maskpose.data.batching import load_batch
    from maskpose.data.dataset import MaskposeDataset

    return load_batch(MaskposeDataset(data["target"]), torch.arange(n), RES, "cpu")


def test_one_sided_term_counts_only_the_skeleton_support(data):
    """``mas_skeleton_term: one_sided`` is the loss's one-sided term (pixels where M_skel > 0.1): for
    the true joints it leaves out the silhouette a thin skeleton cannot cover, which the two-sided
    term counts."""
    from maskpose.masks.loss import mask_supervision_loss

    batch = _batch(data)
    joints = batch["joints2d"]
    terms = {}
    for term in ("one_sided", "two_sided"):
        objective = Objective(_run(data, "x", mas_physique=False, mas_geodesic=False, mas_skeleton_term=term,
                                   mas_style="released", mas_sigma=1.0))
        terms[term] = float(objective.mas(joints, batch["mask"]))
        skeleton = objective.mas.skeleton(joints)
        assert terms[term] == pytest.approx(float(mask_supervision_loss(batch["mask"], skeleton, skeleton_term=term)))
    # Mask pixels away from the skeleton's support (a loose garment, a wider body) change the
    # two-sided term only.
    objective = Objective(_run(data, "x", mas_physique=False, mas_geodesic=False, mas_skeleton_term="one_sided",
                               mas_style="released", mas_sigma=1.0))
    wider = torch.where(objective.mas.skeleton(joints) < 0.05, torch.ones_like(batch["mask"]), batch["mask"])
    assert float(objective.mas(joints, wider)) == pytest.approx(terms["one_sided"], rel=1e-6)
    two = Objective(_run(data, "x", mas_physique=False, mas_geodesic=False, mas_style="released", mas_sigma=1.0))
    assert float(two.mas(joints, wider)) > 2 * terms["two_sided"]


def test_released_geodesic_form_is_computed_from_the_mask(data):
    batch = _batch(data)
    objective = Objective(_run(data, "x", mas_physique=False, mas_geodesic_form="released"))
    pred = joint_prediction(PoseRegressor(JOINTS)(batch["image"]).joints, RES)
    expected = objective.mas(pred.joints2d, batch["mask"],
                             geodesic_weights_torch(batch["mask"], mode="released").sqrt())
    assert torch.allclose(objective._mas(pred, batch), expected)
    stored = Objective(_run(data, "x", mas_physique=False))
    assert torch.allclose(stored._mas(pred, batch), stored.mas(pred.joints2d, batch["mask"], batch.get("geodesic")))


def test_symmetry_term_is_the_bone_symmetry_loss_of_the_17_joints(data):
    batch = _batch(data)
    objective = Objective(_run(data, "x", losses={"symmetry": 1.0}, model=replace_landmarks(20)))
    pred = joint_prediction(PoseRegressor(replace_landmarks(20))(batch["image"]).joints, RES)
    joints = pred.joints3d[:, :17]
    expected = bone_symmetry_loss(joints) + centre_symmetry_loss(joints)
    assert torch.allclose(objective._symmetry(pred, batch), expected)
    loss, parts = objective(pred, batch)
    assert parts == {"symmetry": pytest.approx(float(expected.detach()))}


def test_pretrained_physique_net_is_loaded(data, tmp_path):
    torch.manual_seed(3)
    psi = PhysiqueNet()
    path = tmp_path / "psi.pt"
    torch.save(psi.state_dict(), path)  # the format masks train-physique writes
    loaded = PhysiqueNet.load(path)
    objective = Objective(_run(data, "x", mas_physique_checkpoint=str(path)))
    fresh = Objective(_run(data, "x"))
    mine = objective.mas.physique.state_dict()
    assert all(torch.equal(mine[k], v) for k, v in loaded.state_dict().items())
    assert not all(torch.equal(fresh.mas.physique.state_dict()[k], v) for k, v in loaded.state_dict().items())


def test_depth_hypotheses_train_winner_takes_all(data):
    batch = _batch(data)
    objective = Objective(_run(data, "x", mode="pretrain", losses={"joints3d": 1.0}, model=INTEGRAL))
    out = PoseRegressor(INTEGRAL)(batch["image"]).joints
    pred = joint_prediction(out, RES)
    loss, winner = winner_takes_all_l1(out.hypotheses[:, :, :17], batch["joints3d"])
    expected = loss + HYPOTHESIS_CHOICE_WEIGHT * hypothesis_cross_entropy(out.hypothesis_logits, winner)
    assert torch.allclose(objective._joints3d(pred, batch), expected)


def test_masked_input_feeds_the_image_times_the_mask(data, tmp_path):
    trainer = Trainer(_run(data, tmp_path / "m", masked_input=True))
    batch = _batch(data)
    assert torch.equal(trainer.network_input(batch), batch["image"] * batch["mask"])
    assert torch.equal(Trainer(_run(data, tmp_path / "n")).network_input(batch), batch["image"])
    without_mask = {k: v for k, v in batch.items() if k != "mask"}
    with pytest.raises(DataError, match="masked_input"):
        trainer.network_input(without_mask)


# ---------------------------------------------------------------------------------------- SPP
def test_spp_metrics_match_a_manual_fit(data, tmp_path):
    run = train(TrainConfig(mode="pretrain", data=data["source"], out=str(tmp_path / "p"), steps=2, batch_size=4,
                            losses={"joints3d": 1.0, "joints2d": 1.0}, model=replace_landmarks(20)), progress=False)
    metrics = spp_metrics(run.checkpoint, data["target"], data["source"], 0.5)
    from maskpose.data.dataset import MaskposeDataset
    from maskpose.train.checkpoint import load_model

    model, _ = load_model(run.checkpoint)

    def root_relative(path):
        d = MaskposeDataset(path)
        landmarks = collect_predictions(model, d, with_silhouettes=False)["landmarks"]
        gt = torch.from_numpy(np.asarray(d.arrays["joints3d"][d.indices], dtype=np.float32))
        return landmarks - landmarks[:, :1], gt - gt[:, :1]

    landmarks, gt = root_relative(data["source"])
    spp = fit_spp(landmarks, gt, fraction=0.5)
    test_landmarks, test_gt = root_relative(data["target"])
    expected = joint_metrics(spp(test_landmarks).detach(), test_gt)
    assert metrics["mpjpe"] == pytest.approx(expected["mpjpe"], rel=1e-5)
    assert metrics["spp_labelled"] == 6 and metrics["spp_fraction"] == 0.5
    # fitted on the very split it is scored on, SPP with every label beats the raw landmarks
    raw = joint_metrics(collect_predictions(model, MaskposeDataset(data["source"]))["joints3d"], gt)
    assert spp_metrics(run.checkpoint, data["source"], data["source"], 1.0)["mpjpe"] < raw["mpjpe"]

    json_path = tmp_path / "m.json"
    result = CliRunner().invoke(app, ["evaluate", str(run.checkpoint), "--data", data["target"], "--spp-data",
                                      data["source"], "--spp-fraction", "0.5", "--json", str(json_path)])
    assert result.exit_code == 0, result.output
    assert "after SPP" in result.output
    saved = json.loads(json_path.read_text())
    assert saved["spp_mpjpe"] == pytest.approx(metrics["mpjpe"], rel=1e-6) and "mpjpe" in saved
    bad = CliRunner().invoke(app, ["evaluate", str(run.checkpoint), "--data", data["target"], "--spp-data",
                                   data["source"], "--spp-fraction", "0"])
    assert bad.exit_code != 0 and "--spp-fraction" in bad.output


# ---------------------------------------------------------------------------------------- CLI
def test_train_unsup_cli_runs_both_stages(data, tmp_path):
    out = tmp_path / "cli"
    result = CliRunner().invoke(app, ["train-unsup", "--data", data["target"], "--source-data", data["source"],
                                      "--stage1-steps", "2", "--source-ratio", "1", "--steps", "2", "--batch-size",
                                      "4", "--res", str(RES), "--out", str(out), "--loss", "mas=1",
                                      "--loss", "symmetry=0.1", "--head", "mesh"])
    assert result.exit_code == 0, result.output
    saved = load_checkpoint(out / "checkpoint.pt")["config"]
    assert saved["model"]["heads"] == ["mesh"] and saved["source_ratio"] == 1.0
    assert load_checkpoint(out / "stage1" / "checkpoint.pt")["config"]["losses"] == {"joints3d": 1.0, "joints2d": 1.0,
                                                                                      "params": 0.5}
    bad = CliRunner().invoke(app, ["train-unsup", "--data", data["target"], "--out", str(tmp_path / "b"),
                                   "--stage1-steps", "2"])
    assert bad.exit_code != 0 and "needs source_data" in bad.output

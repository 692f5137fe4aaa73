"""SMPL as a training option (issue 15): config, losses, checkpoints, the loop and the CLI on the
synthetic SMPL-format model of ``tests/smpl_model.py`` (never the real SMPL).

Everything here needs ``smplx`` (``pip install maskpose[smpl]``) and skips without it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from maskpose.body.rotations import rotvec_to_sixd
from maskpose.body.smpl_body import SMPLBody, smpl_axis_angle_from_pose
from maskpose.data.dataset import write_dataset
from maskpose.errors import ConfigError
from maskpose.models.regressor import MeshHeadOutput, ModelConfig, PoseRegressor
from maskpose.render.camera import fit_translation, intrinsics, project
from maskpose.render.zbuffer import silhouette_mask
from maskpose.train.checkpoint import load_checkpoint, load_model, save_checkpoint
from maskpose.train.config import TrainConfig
from maskpose.train.loop import Trainer, train
from maskpose.train.objectives import Objective
from smpl_model import write_smpl_model

RES = 32
TINY = ModelConfig(resolution=RES, width=8, hidden=16)


@pytest.fixture(scope="module")
def smpl_file(tmp_path_factory):
    pytest.importorskip("smplx")
    path = tmp_path_factory.mktemp("smpl") / "SMPL_NEUTRAL.pkl"
    write_smpl_model(path, subdivisions=1)
    return path


def make_smpl_dataset(path, model_path, n: int = 8, seed: int = 0):
    """Posed synthetic SMPL bodies: exact masks, projected joints, SPIN-style SMPL parameters (one
    sample without them: ``has_smpl`` 0 and NaN)."""
    body = SMPLBody(model_path)
    generator = torch.Generator().manual_seed(seed)
    rotvec = 0.3 * torch.randn(n, 24, 3, generator=generator)
    rotvec[:, 0] = 0.2 * torch.randn(n, 3, generator=generator)  # roughly upright, facing the camera
    pose = rotvec_to_sixd(rotvec)
    betas = 0.5 * torch.randn(n, 10, generator=generator)
    K = intrinsics(1.5 * RES, RES, batch=n)
    with torch.no_grad():
        translation = fit_translation(body(pose, betas).vertices, K, RES)
        out = body(pose, betas, translation)
        mask = silhouette_mask(out.vertices, out.faces, K, RES)[:, 0]
    fg, bg = torch.tensor([200.0, 120.0, 80.0]), torch.tensor([30.0, 60.0, 90.0])
    image = (mask[..., None] * fg + (1 - mask[..., None]) * bg).byte().numpy()
    smpl_pose = smpl_axis_angle_from_pose(pose).numpy()
    smpl_betas = betas.numpy().copy()
    has_smpl = np.ones(n, dtype=np.uint8)
    has_smpl[-1] = 0
    smpl_pose[-1], smpl_betas[-1] = np.nan, np.nan
    arrays = {"image": image, "mask": mask.byte().numpy(), "joints3d": out.joints.numpy(),
              "joints2d": project(out.joints, K).numpy(), "intrinsics": K.numpy(), "smpl_pose": smpl_pose,
              "smpl_betas": smpl_betas, "has_smpl": has_smpl}
    return write_dataset(path, arrays, domain="tiny-smpl")


@pytest.fixture(scope="module")
def smpl_data(smpl_file, tmp_path_factory):
    return make_smpl_dataset(tmp_path_factory.mktemp("data") / "smpl", smpl_file)


def _config(smpl_file, data, out, **kw) -> TrainConfig:
    return TrainConfig(**{"data": str(data), "out": str(out), "steps": 3, "batch_size": 4, "log_every": 1,
                          "body": "smpl", "smpl_model": str(smpl_file), "model": TINY, **kw})


def test_config_follows_the_body():
    anny = TrainConfig(data="x", model=TINY)
    assert anny.body == "anny" and anny.model == TINY and anny.model.to_dict() == TINY.to_dict()
    assert "shape_activation" not in TINY.to_dict()  # a default model saves the dict it always did
    smpl = TrainConfig(data="x", body="smpl", model=TINY)
    assert (smpl.model.num_rotations, smpl.model.num_phenotypes, smpl.model.shape_activation) == (24, 10, "none")
    assert ModelConfig.from_dict(smpl.model.to_dict()) == smpl.model
    assert ModelConfig.from_dict({"resolution": 32}).shape_activation == "sigmoid"  # missing: the default
    assert TrainConfig(mode="adapt", body="smpl", data="x").losses == {"ls": 1.0, "lt": 1.0, "phenotype_prior": 0.01}
    assert TrainConfig(mode="adapt", data="x").losses == {"ls": 1.0, "lt": 1.0, "prior": 0.1}
    with pytest.raises(ConfigError, match="unknown body 'mano'"):
        TrainConfig(data="x", body="mano").validate()
    with pytest.raises(ConfigError, match="prior loss holds Anny's joint limits"):
        TrainConfig(mode="adapt", data="x", body="smpl", losses={"ls": 1.0, "prior": 0.1}).validate()
    with pytest.raises(ConfigError, match="fit_every"):
        TrainConfig(mode="adapt", data="x", body="smpl", fit_every=2).validate()
    with pytest.raises(ConfigError, match="model.num_rotations is 24, body 'anny' needs 18"):
        TrainConfig(data="x", model=smpl.model).validate()
    with pytest.raises(ConfigError, match="shape_activation must be one of"):
        ModelConfig(shape_activation="relu").validate()


def test_smpl_needs_its_model_file_before_any_work(monkeypatch, tmp_path):
    pytest.importorskip("smplx")
    monkeypatch.delenv("MASKPOSE_SMPL_MODEL", raising=False)
    with pytest.raises(ConfigError, match="needs a model file"):
        TrainConfig(data="x", body="smpl").validate()
    with pytest.raises(ConfigError, match="SMPL model file does not exist"):
        TrainConfig(data="x", body="smpl", smpl_model=str(tmp_path / "none.pkl")).validate()


def test_smpl_params_loss_skips_unknown_samples():
    pytest.importorskip("smplx")
    objective = Objective(TrainConfig(data="x", body="smpl", losses={"params": 1.0, "phenotype_prior": 1.0}))
    assert objective.param_fields == ("smpl_pose", "smpl_betas")
    pose = rotvec_to_sixd(0.3 * torch.randn(3, 24, 3, generator=torch.Generator().manual_seed(1)))
    betas = torch.randn(3, 10)
    batch = {"smpl_pose": smpl_axis_angle_from_pose(pose), "smpl_betas": betas.clone(),
             "has_smpl": torch.tensor([1.0, 0.0, 1.0])}
    batch["smpl_pose"][2, 5] = float("nan")  # unknown: NaN, whatever has_smpl says
    wrong = pose.clone()
    wrong[1:] += 1.0  # rows 1 and 2 are not labelled
    params = MeshHeadOutput(wrong, betas, torch.ones(3), torch.zeros(3, 2))
    assert objective._params(type("P", (), {"params": params})(), batch).item() == pytest.approx(0.0, abs=1e-10)
    wrong[0] += 1.0
    assert objective._params(type("P", (), {"params": params})(), batch).item() > 0.1
    prior = objective._phenotype_prior(type("P", (), {"params": params})(), batch)
    assert prior.item() == pytest.approx(float(betas.square().mean()))


def test_smpl_pretrain_then_adapt(smpl_file, smpl_data, tmp_path):
    pretrained = train(_config(smpl_file, smpl_data, tmp_path / "pre", lr=3e-3), progress=False)
    state = load_checkpoint(pretrained.checkpoint)
    assert state["config"]["body"] == "smpl" and state["config"]["smpl_model"] == str(smpl_file)
    assert state["body"] == {"name": "smpl", "pose_size": [24, 6], "shape_size": 10}
    assert not any(k.endswith(("v_template", "shapedirs", "posedirs", "J_regressor", "lbs_weights"))
                   for k in state["model"])  # no SMPL model data in a checkpoint
    losses = [record["loss"] for record in pretrained.history]
    assert len(losses) == 3 and all(math.isfinite(v) for v in losses) and losses[-1] != losses[0]
    assert {"joints3d", "joints2d", "params"} <= set(pretrained.history[0])

    adapted = train(_config(smpl_file, smpl_data, tmp_path / "adapt", mode="adapt", steps=2, model=ModelConfig(),
                            init_checkpoint=str(pretrained.checkpoint)), progress=False)
    state = load_checkpoint(adapted.checkpoint)
    assert state["config"]["body"] == "smpl" and state["config"]["model"] == load_checkpoint(
        pretrained.checkpoint)["config"]["model"]  # inherited from the init checkpoint
    losses = [record["loss"] for record in adapted.history]
    assert set(adapted.history[0]) >= {"ls", "lt", "phenotype_prior"}
    assert all(math.isfinite(v) for v in losses) and losses[-1] != losses[0]
    model, _ = load_model(adapted.checkpoint, body="smpl")
    assert model.config.num_rotations == 24


def test_checkpoints_refuse_the_other_body(smpl_file, smpl_data, tmp_path):
    # An Anny checkpoint as older versions wrote it: no body in its config.
    anny_config = TrainConfig(data=str(smpl_data), model=TINY).to_dict()
    del anny_config["body"]
    anny_ckpt = save_checkpoint(tmp_path / "anny.pt", {"model": PoseRegressor(TINY).state_dict(),
                                                       "config": anny_config})
    with pytest.raises(ConfigError, match=f"checkpoint {anny_ckpt} was trained with body 'anny'; this run uses 'smpl'"):
        Trainer(_config(smpl_file, smpl_data, tmp_path / "a", mode="adapt", model=ModelConfig(),
                        init_checkpoint=str(anny_ckpt)), progress=False)
    smpl_ckpt = train(_config(smpl_file, smpl_data, tmp_path / "s", steps=1), progress=False).checkpoint
    with pytest.raises(ConfigError, match="was trained with body 'smpl'; this run uses 'anny'"):
        Trainer(TrainConfig(mode="adapt", data=str(smpl_data), out=str(tmp_path / "b"),
                            init_checkpoint=str(smpl_ckpt)), progress=False)
    with pytest.raises(ConfigError, match="was trained with body 'smpl'; this run uses 'anny'"):
        load_model(smpl_ckpt, body="anny")
    load_model(anny_ckpt, body="anny")  # a missing body is Anny


def test_cli_pretrain_and_evaluate_smpl(smpl_file, smpl_data, tmp_path):
    from typer.testing import CliRunner

    from maskpose.cli import app

    runner = CliRunner()
    out = tmp_path / "cli"
    result = runner.invoke(app, ["pretrain", "--body", "smpl", "--smpl-model", str(smpl_file), "--data",
                                 str(smpl_data), "--out", str(out), "--steps", "2", "--batch-size", "4",
                                 "--res", "32"])
    assert result.exit_code == 0, result.output
    assert load_checkpoint(out / "checkpoint.pt")["config"]["body"] == "smpl"
    result = runner.invoke(app, ["evaluate", str(out / "checkpoint.pt"), "--data", str(smpl_data),
                                 "--smpl-model", str(smpl_file)])
    assert result.exit_code == 0, result.output
    assert "mpjpe" in result.output and "silhouette_iou" in result.output
    refused = runner.invoke(app, ["adapt", "--init", str(out / "checkpoint.pt"), "--data", str(smpl_data),
                                  "--out", str(tmp_path / "anny"), "--steps", "1"])
    assert refused.exit_code != 0 and "trained with body 'smpl'; this run uses 'anny'" in refused.output
    predicted = runner.invoke(app, ["predict", str(out / "checkpoint.pt"), "--input", str(smpl_data),
                                    "--out", str(tmp_path / "pred"), "--no-ply"])  # tests/test_smpl_predict.py
    assert predicted.exit_code == 0, predicted.output

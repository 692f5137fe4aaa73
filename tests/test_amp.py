"""Mixed precision in training (``TrainConfig.precision``, issue 15): the config and its flag, a bf16
run on the CPU against the float32 one, float32 inside the body model, the renderer and the losses,
and CUDA runs (skipped without CUDA)."""

from __future__ import annotations

import math

import pytest
import torch

from maskpose.errors import ConfigError
from maskpose.models.regressor import ModelConfig
from maskpose.train.checkpoint import load_checkpoint
from maskpose.train.config import TrainConfig
from maskpose.train.loop import Trainer, train
from maskpose.typing import PRECISIONS
from tiny_data import make_dataset

RES = 32
TINY = ModelConfig(resolution=RES, width=8, hidden=16)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from maskpose.body.anny_body import AnnyBody

    root = tmp_path_factory.mktemp("amp")
    body = AnnyBody()
    return {"source": make_dataset(root / "source", 8, res=RES, seed=0, body=body),
            "target": make_dataset(root / "target", 8, res=RES, seed=1, labels=False, body=body)}


def _config(data, out, **kw) -> TrainConfig:
    return TrainConfig(**{"data": str(data["source"]), "out": str(out), "steps": 2, "batch_size": 4, "log_every": 1,
                          "model": TINY, **kw})


@pytest.fixture(scope="module")
def float32_run(data, tmp_path_factory):
    return train(_config(data, tmp_path_factory.mktemp("f32")), progress=False)


def test_precision_config_and_flag(tmp_path):
    assert PRECISIONS == ("float32", "bf16", "fp16")
    assert TrainConfig().precision == "float32"
    assert TrainConfig(data="x", precision="bf16").validate().precision == "bf16"  # bf16 autocast runs on the CPU
    with pytest.raises(ConfigError, match=r"precision must be one of \('float32', 'bf16', 'fp16'\), got 'half'"):
        TrainConfig(data="x", precision="half").validate()
    with pytest.raises(ConfigError, match="precision fp16 needs a CUDA device, device is 'cpu'"):
        TrainConfig(data="x", precision="fp16").validate()
    with pytest.raises(ConfigError, match="precision must be a string"):
        TrainConfig(data="x", precision=16).validate()
    assert TrainConfig.from_flags("pretrain", None, data="x", precision="bf16").precision == "bf16"
    assert TrainConfig.from_flags("pretrain", None, data="x", precision=None).precision == "float32"
    yaml_file = tmp_path / "amp.yaml"
    yaml_file.write_text("precision: bf16\n")
    assert TrainConfig.from_flags("pretrain", yaml_file, data="x").precision == "bf16"
    yaml_file.write_text("precision: double\n")
    with pytest.raises(ConfigError, match="precision must be one of"):
        TrainConfig.from_flags("pretrain", yaml_file, data="x").validate()


def test_cli_precision_flag(data, tmp_path):
    from typer.testing import CliRunner

    from maskpose.cli import app

    runner = CliRunner()
    out = tmp_path / "cli"
    result = runner.invoke(app, ["pretrain", "--data", str(data["source"]), "--out", str(out), "--steps", "1",
                                 "--batch-size", "4", "--res", str(RES), "--precision", "bf16"])
    assert result.exit_code == 0, result.output
    assert load_checkpoint(out / "checkpoint.pt")["config"]["precision"] == "bf16"
    refused = runner.invoke(app, ["pretrain", "--data", str(data["source"]), "--out", str(tmp_path / "fp16"),
                                  "--steps", "1", "--precision", "fp16"])
    assert refused.exit_code != 0 and "precision fp16 needs a CUDA device" in refused.output


def test_float32_is_the_plain_forward(data, float32_run, tmp_path):
    trainer = Trainer(_config(data, tmp_path / "plain"), progress=False)
    assert trainer.autocast_dtype is None and trainer.scaler is None
    images = torch.rand(2, 3, RES, RES, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        got, want = trainer.forward(trainer.net, images), trainer.net(images)
    for name, tensor in want.mesh.tensors().items():
        assert torch.equal(getattr(got.mesh, name), tensor)
    # An unchanged float32 run: the same seed gives the same losses, step for step.
    again = train(_config(data, tmp_path / "again"), progress=False)
    assert [r["loss"] for r in again.history] == [r["loss"] for r in float32_run.history]


def test_bf16_pretrain_on_the_cpu(data, float32_run, tmp_path):
    result = train(_config(data, tmp_path / "bf16", precision="bf16"), progress=False)
    losses = [record["loss"] for record in result.history]
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)
    # Step 1 sees the same weights and batch as the float32 run: only the forward's precision differs.
    assert losses[0] == pytest.approx(float32_run.history[0]["loss"], rel=0.05)
    state = load_checkpoint(result.checkpoint)
    assert state["config"]["precision"] == "bf16" and "scaler" not in state
    assert all(v.dtype == torch.float32 for v in state["model"].values() if v.is_floating_point())


def test_body_renderer_and_losses_run_in_float32_under_autocast(data, float32_run, tmp_path):
    config = _config(data, tmp_path / "adapt", mode="adapt", model=ModelConfig(),
                     init_checkpoint=str(float32_run.checkpoint), precision="bf16")
    config.data = str(data["target"])
    trainer = Trainer(config, progress=False)
    assert trainer.renderer is not None and trainer.autocast_dtype == torch.bfloat16
    seen: dict[str, list] = {"net": [], "body": [], "renderer": [], "objective": []}

    def spy(name, module):
        forward = module.forward

        def wrapped(*args, **kwargs):
            tensors = [a for a in args if isinstance(a, torch.Tensor)]
            tensors += [getattr(a, "silhouette", None) for a in args if hasattr(a, "silhouette")]
            seen[name].append((torch.is_autocast_enabled("cpu"), {t.dtype for t in tensors if t is not None}))
            return forward(*args, **kwargs)

        module.forward = wrapped

    spy("body", trainer.body)
    spy("renderer", trainer.renderer)
    spy("objective", trainer.objective)
    hook = trainer.model.encoder.stem[0].register_forward_hook(  # the first convolution
        lambda module, args, out: seen["net"].append((torch.is_autocast_enabled("cpu"), {out.dtype})))
    try:
        record = trainer.train_step()
    finally:
        hook.remove()
    assert math.isfinite(record["loss"]) and {"ls", "lt"} <= set(record)
    assert seen["net"] and all(on and dtypes == {torch.bfloat16} for on, dtypes in seen["net"])
    for name in ("body", "renderer", "objective"):
        assert seen[name], name
        assert all(not on and dtypes == {torch.float32} for on, dtypes in seen[name]), (name, seen[name])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_on_cuda(data, tmp_path, precision):
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    config = _config(data, tmp_path / precision, device="cuda", precision=precision, steps=3)
    result = train(config, progress=False)
    assert all(math.isfinite(r["loss"]) for r in result.history)
    state = load_checkpoint(result.checkpoint)
    assert state["config"]["precision"] == precision
    assert ("scaler" in state) == (precision == "fp16")
    resumed = train(TrainConfig(**{**config.to_dict(), "steps": 4}), progress=False)  # the scaler resumes too
    assert resumed.steps == 4 and math.isfinite(resumed.history[-1]["loss"])
    f32 = train(_config(data, tmp_path / "f32", device="cuda", steps=1), progress=False)
    assert result.history[0]["loss"] == pytest.approx(f32.history[0]["loss"], rel=0.05)

"""Faults around training runs (signals, kills, locks, failing disks, hostile checkpoints) and the
numerics of the mask and silhouette losses in corner cases (half precision, nothing visible, NaN)."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from typer.testing import CliRunner

from maskpose.cli import app
from maskpose.conventions import H36M_BONES
from maskpose.device import resolve_device
from maskpose.errors import ConfigError, MaskposeError
from maskpose.masks.geodesic import geodesic_weights_torch
from maskpose.masks.skeleton import skeleton_mask
from maskpose.models.regressor import ModelConfig
from maskpose.render.camera import intrinsics
from maskpose.render.silhouette import render_silhouette
from maskpose.synth.generator import generate
from maskpose.topology import silhouette_alignment_loss, topology_alignment_loss
from maskpose.train.checkpoint import load_checkpoint, load_model
from maskpose.train.config import TrainConfig
from maskpose.train.loop import CHECKPOINT_NAME, LOCK_NAME, LOG_NAME, Trainer, TrainingTerminated, train

# The joint head (no body model, no renderer) keeps these runs fast; the loop is the same.
TINY = ModelConfig(resolution=32, width=8, hidden=16, heads=("joints",))
TINY_LOSSES = {"joints3d": 1.0, "joints2d": 1.0}
TINY_YAML = ("model: {resolution: 32, width: 8, hidden: 16, heads: [joints]}\nlosses: {joints3d: 1, joints2d: 1}\n"
             "batch_size: 2\n")


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("faults") / "source", "studio", 6, 32, 0, "train")


@pytest.fixture(scope="module")
def checkpoint(source, tmp_path_factory):
    return train(tiny_config(source, tmp_path_factory.mktemp("run"), steps=1), progress=False).checkpoint


def tiny_config(data, out, **kw) -> TrainConfig:
    base = dict(mode="pretrain", data=str(data), out=str(out), steps=4, batch_size=2, model=TINY,
                losses=dict(TINY_LOSSES), log_every=1, checkpoint_every=100)
    base.update(kw)
    return TrainConfig(**base)


def logged_steps(out) -> list[int]:
    return [json.loads(line)["step"] for line in (out / LOG_NAME).read_text().splitlines()]


# ---------------------------------------------------------------------------------------- checkpoints
class _CreatesAFile:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def test_a_checkpoint_with_pickled_code_is_refused_without_running_it(tmp_path):
    victim = tmp_path / "pwned.txt"
    evil = tmp_path / "evil.pt"
    torch.save({"model": _CreatesAFile(victim), "config": {"model": {}}}, evil)
    assert not victim.exists()
    with pytest.raises(ConfigError, match=r"evil\.pt: refused to load: .*could run code") as info:
        load_checkpoint(evil)
    assert "\n" not in str(info.value)
    code = CliRunner().invoke(app, ["evaluate", str(evil), "--data", str(tmp_path)])
    assert code.exit_code == 2 and "refused to load" in code.output
    assert not victim.exists()


@pytest.mark.parametrize("change, message", [
    (lambda c: c["model"].update(colour=1), "unknown model key"),
    (lambda c: c.pop("model"), "has no 'model' entry"),
    (lambda c: c.update(model=5), "model must be a mapping"),
    (lambda c: c["model"].update(width=0), "model.width must be an int >= 1"),
    (lambda c: c.update(focal=float("nan")), "focal must be a finite number >= 0"),
    (lambda c: c.update(focal=-3.0), "focal must be a finite number >= 0"),
    (lambda c: c.update(focal="big"), "focal must be a finite number >= 0"),
])
def test_a_checkpoint_with_a_bad_saved_config_names_the_checkpoint(checkpoint, tmp_path, change, message):
    state = torch.load(checkpoint, weights_only=True)
    change(state["config"])
    bad = tmp_path / "bad.pt"
    torch.save(state, bad)
    for load in (load_checkpoint, load_model):
        with pytest.raises(ConfigError, match=message) as info:
            load(bad)
        assert str(info.value).startswith(f"{bad}:")


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ConfigError, match="'frob' is not a torch device"):
        resolve_device("frob")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match=r"device 'cuda' is not available on this machine "
                                              r"\(torch.cuda.is_available\(\) is False\)"):
            resolve_device("cuda")


# ---------------------------------------------------------------------------------------- runs
def test_sigterm_saves_a_checkpoint_as_ctrl_c_does(source, tmp_path, monkeypatch):
    original = Trainer.train_step

    def step_then_terminate(self):
        record = original(self)
        if self.step == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return record

    monkeypatch.setattr(Trainer, "train_step", step_then_terminate)
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(TrainingTerminated):
        train(tiny_config(source, tmp_path / "run", steps=6), progress=False)
    assert signal.getsignal(signal.SIGTERM) is before  # the handler is the run's only
    assert load_checkpoint(tmp_path / "run" / CHECKPOINT_NAME)["step"] == 2
    monkeypatch.undo()
    assert train(tiny_config(source, tmp_path / "run", steps=6), progress=False).steps == 6
    assert logged_steps(tmp_path / "run") == [1, 2, 3, 4, 5, 6]


def test_a_resumed_run_does_not_log_steps_twice(source, tmp_path, monkeypatch):
    original = Trainer.train_step

    def crash_before_step_four(self):
        if self.step == 3:
            raise RuntimeError("power cut")
        return original(self)

    monkeypatch.setattr(Trainer, "train_step", crash_before_step_four)
    out = tmp_path / "run"
    with pytest.raises(RuntimeError, match="power cut"):
        train(tiny_config(source, out, checkpoint_every=2), progress=False)
    assert logged_steps(out) == [1, 2, 3] and load_checkpoint(out / CHECKPOINT_NAME)["step"] == 2
    (out / LOG_NAME).open("a").write('{"step": 4, "lo')  # a torn last line too
    monkeypatch.undo()
    result = train(tiny_config(source, out, checkpoint_every=2), progress=False)
    assert logged_steps(out) == [1, 2, 3, 4]
    assert [h["step"] for h in result.history] == [1, 2, 3, 4]


def test_a_run_folder_is_locked_and_a_stale_lock_is_taken_over(source, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    with open(out / LOCK_NAME, "w") as held:
        held.write("12345\n")
        held.flush()
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another run is training here
        with pytest.raises(ConfigError, match=r"another run \(pid 12345\) is training in this folder"):
            train(tiny_config(source, out), progress=False)
        assert not (out / CHECKPOINT_NAME).exists()
        config = tmp_path / "c.yaml"
        config.write_text(TINY_YAML)
        result = CliRunner().invoke(app, ["pretrain", "--data", str(source), "--out", str(out), "--steps", "1",
                                          "--config", str(config)])
        assert result.exit_code == 2 and "another run (pid 12345)" in result.output
    (out / LOCK_NAME).write_text("999999999\n")  # left by a dead process: nobody holds it
    assert train(tiny_config(source, out), progress=False).steps == 4


def test_a_failed_checkpoint_save_keeps_the_previous_one_and_no_temporary_file(source, tmp_path, monkeypatch):
    real_save = torch.save
    calls = []

    def disk_fills_up(obj, path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 2:  # the second checkpoint: the disk is full half-way through
            with open(path, "wb") as f:
                f.write(b"half a checkpoint")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(torch, "save", disk_fills_up)
    out = tmp_path / "run"
    config = tmp_path / "c.yaml"
    config.write_text(TINY_YAML + "checkpoint_every: 2\n")
    result = CliRunner().invoke(app, ["pretrain", "--data", str(source), "--out", str(out), "--steps", "4",
                                      "--config", str(config)])
    assert result.exit_code == 2, result.output
    assert "checkpoint not written" in result.output and "No space left on device" in result.output
    monkeypatch.undo()
    assert load_checkpoint(out / CHECKPOINT_NAME)["step"] == 2
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_weights_of_an_uninterrupted_one(source, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(TINY_YAML + "steps: 24\ncheckpoint_every: 3\nlog_every: 1\n")
    out = tmp_path / "killed"
    command = [sys.executable, "-m", "maskpose", "pretrain", "--data", str(source), "--out", str(out),
               "--config", str(config)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not (out / CHECKPOINT_NAME).exists():
            assert proc.poll() is None and time.monotonic() < deadline, "no checkpoint before the run ended"
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    killed_at = load_checkpoint(out / CHECKPOINT_NAME)["step"]
    assert 3 <= killed_at < 24
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        straight = train(TrainConfig.from_flags("pretrain", config, data=str(source), out=str(tmp_path / "straight")),
                         progress=False)
    finally:
        torch.set_num_threads(threads)
    a, _ = load_model(straight.checkpoint)
    b, state = load_model(out / CHECKPOINT_NAME)
    assert state["step"] == 24
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(pa, pb), f"{name} differs after kill and resume (killed at step {killed_at})"
    assert logged_steps(out) == list(range(1, 25))


# ---------------------------------------------------------------------------------------- numerics
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_skeleton_mask_in_half_precision_is_finite_and_matches_float32(dtype):
    corner = torch.tensor([[[10.0, 10.0], [10.0, 10.0], [0.0, 0.0], [31.0, 31.0], [31.0, 0.0], [31.0, 0.0]]])
    bones = [(0, 1), (2, 3), (4, 5), (1, 2)]  # coinciding joints, the border, a corner
    for joints in (corner, torch.rand(3, 17, 2, generator=torch.Generator().manual_seed(0)) * 31):
        used = bones if joints.shape[1] == 6 else H36M_BONES
        half = joints.to(dtype).requires_grad_(True)
        mask = skeleton_mask(half, used, sigma=2.0, size=(32, 32))
        assert mask.dtype == dtype and torch.isfinite(mask).all()
        mask.float().square().sum().backward()
        assert torch.isfinite(half.grad).all() and half.grad.abs().sum() > 0
        reference = skeleton_mask(half.detach().float(), used, sigma=2.0, size=(32, 32))
        torch.testing.assert_close(mask.float(), reference, atol=2e-2, rtol=1e-2)


@pytest.mark.parametrize("mode", ["contour", "splat"])
@pytest.mark.parametrize("where", ["collapsed", "behind", "off-screen"])
def test_silhouette_with_no_visible_face_has_a_zero_gradient_not_none(mode, where):
    triangle = torch.tensor([[[0.0, 0.0, 3.0], [0.3, 0.0, 3.0], [0.0, 0.3, 3.0]]])
    faces = torch.tensor([[0, 1, 2], [0, 2, 1]])
    vertices = {"collapsed": torch.zeros(1, 3, 3) + torch.tensor([0.0, 0.0, 3.0]),
                "behind": triangle * torch.tensor([1.0, 1.0, -1.0]),
                "off-screen": triangle + torch.tensor([100.0, 0.0, 0.0])}[where].requires_grad_(True)
    K = intrinsics(32.0, 32, batch=1)
    soft = render_silhouette(vertices, faces, K, 32, mode=mode, behind="cull")
    soft.sum().backward()
    assert torch.equal(vertices.grad, torch.zeros_like(vertices))
    visible = triangle.clone().requires_grad_(True)
    render_silhouette(visible, faces, K, 32, mode=mode, behind="cull").sum().backward()
    assert visible.grad.abs().sum() > 0  # the fix leaves visible meshes alone


@pytest.mark.parametrize("loss", [silhouette_alignment_loss, topology_alignment_loss])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
@pytest.mark.parametrize("which", ["pred", "target"])
def test_topology_losses_refuse_non_finite_masks(loss, bad, which):
    pred, target = torch.rand(2, 1, 16, 16), (torch.rand(2, 1, 16, 16) > 0.5).float()
    {"pred": pred, "target": target}[which][1, 0, 3, 4] = bad
    with pytest.raises(MaskposeError, match=f"{which} contains 1 NaN or infinite value"):
        loss(pred, target)


def test_geodesic_weights_on_an_empty_batch_and_in_bfloat16():
    masks = torch.zeros(2, 1, 3, 5)
    masks[..., 1, :] = 1
    empty = geodesic_weights_torch(masks[:0])
    assert empty.shape == (0, 1, 3, 5) and empty.dtype == torch.float32
    with pytest.raises(MaskposeError, match="mode must be one of"):
        geodesic_weights_torch(masks[:0], mode="nope")
    for dtype in (torch.bfloat16, torch.float16):
        weights = geodesic_weights_torch(masks.to(dtype))
        assert weights.dtype == dtype
        torch.testing.assert_close(weights.float(), geodesic_weights_torch(masks), atol=1e-2, rtol=1e-2)
    with pytest.raises(MaskposeError, match="masks must be a torch.Tensor"):
        geodesic_weights_torch(masks.numpy())

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

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from maskpose.cli import app
from maskpose.conventions import H36M_BONES
from maskpose.data.dataset import MaskposeDataset, write_dataset
from maskpose.device import resolve_device
from maskpose.errors import ConfigError, DataError, MaskposeError
from maskpose.masks.geodesic import geodesic_weights_torch
from maskpose.masks.skeleton import skeleton_mask
from maskpose.models.regressor import ModelConfig
from maskpose.render.camera import intrinsics
from maskpose.render.silhouette import render_silhouette
from maskpose.synth.generator import generate
from maskpose.topology import silhouette_alignment_loss, topology_alignment_loss
from maskpose.train.checkpoint import load_checkpoint, load_model
from maskpose.train.config import TrainConfig
from maskpose.train.loop import CHECKPOINT_NAME, LOCK_NAME, LOG_NAME, Trainer, TrainingTerminated, step_indices, train

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


def crash_after_step(monkeypatch, step: int) -> None:
    """Make every run raise ``RuntimeError("power cut")`` once it has done ``step`` steps."""
    original = Trainer.train_step

    def crash(self):
        if self.step == step:
            raise RuntimeError("power cut")
        return original(self)

    monkeypatch.setattr(Trainer, "train_step", crash)


def test_a_resumed_run_does_not_log_steps_twice(source, tmp_path, monkeypatch):
    crash_after_step(monkeypatch, 3)
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


def _kill_after_first_checkpoint_then_rerun(command: list[str], out) -> int:
    """Run ``command`` (one thread), SIGKILL it as soon as its first checkpoint exists, check it died
    mid-run, then run the same command again to completion. Returns the step it was killed at."""
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
    return killed_at


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_weights_of_an_uninterrupted_one(source, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(TINY_YAML + "steps: 24\ncheckpoint_every: 3\nlog_every: 1\n")
    out = tmp_path / "killed"
    command = [sys.executable, "-m", "maskpose", "pretrain", "--data", str(source), "--out", str(out),
               "--config", str(config)]
    killed_at = _kill_after_first_checkpoint_then_rerun(command, out)

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


# ---------------------------------------------------------------------------------------- labels and masks
MASK_LOSS_NAMES = ("ls", "lt", "l1", "l2", "bce", "soft_iou", "chamfer_points", "mas", "silhouette_sup")
MESH = ModelConfig(resolution=32, width=8, hidden=16)  # mesh and joint heads: every loss applies


def variant(source, path, **changes):
    """A copy of the dataset ``source`` with some arrays replaced (``name=function(array)``)."""
    data = MaskposeDataset(source)
    arrays = {name: np.array(array) for name, array in data.arrays.items()}
    for name, change in changes.items():
        arrays[name] = change(arrays[name])
    return write_dataset(path, arrays, domain="x")


def all_nan(array):
    return np.full_like(array, np.nan)


@pytest.mark.parametrize("field, loss", [("joints3d", "joints3d"), ("joints2d", "joints2d")]
                         + [("mask", name) for name in MASK_LOSS_NAMES])
def test_a_dataset_without_a_usable_value_of_a_needed_field_is_refused_before_training(source, tmp_path, field,
                                                                                         loss):
    blank = (lambda a: np.zeros_like(a)) if field == "mask" else all_nan
    data = variant(source, tmp_path / "data", **{field: blank})
    out = tmp_path / "run"
    with pytest.raises(DataError) as info:
        Trainer(tiny_config(data, out, model=MESH, losses={loss: 1.0}), progress=False)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{data}: field {field!r}")
    assert ("is empty in every one" if field == "mask" else "is missing (NaN) in every one") in message
    assert repr(loss) in message and not out.exists()


def test_a_loss_of_weight_zero_needs_nothing_and_labels_known_somewhere_are_enough(source, tmp_path):
    def one_known(array):
        array = all_nan(array)
        array[3, 5] = 0.25
        return array

    data = variant(source, tmp_path / "data", joints3d=all_nan, joints2d=one_known)
    assert Trainer(tiny_config(data, tmp_path / "run", losses={"joints3d": 0.0, "joints2d": 1.0}), progress=False)


def test_an_infinite_label_is_refused_at_setup_naming_the_sample(source, tmp_path):
    def one_inf(array):
        array = array.copy()
        array[4, 2, 1] = np.inf
        return array

    data = tmp_path / "data"
    variant(source, tmp_path / "ok", joints3d=lambda a: a)  # written fine, then the Inf put in on disk
    (tmp_path / "ok").rename(data)
    array = np.load(data / "joints3d.npy", mmap_mode="r+")
    array[:] = one_inf(np.array(array))
    array.flush()
    del array
    with pytest.raises(DataError, match=r"joints3d\.npy: sample 4 holds infinite values"):
        Trainer(tiny_config(data, tmp_path / "run"), progress=False)
    assert not (tmp_path / "run").exists()


def empty_masks(*rows):
    def change(mask):
        mask = mask.copy()
        mask[list(rows)] = 0
        return mask
    return change


def test_more_than_half_of_the_masks_empty_is_refused(source, tmp_path):
    data = variant(source, tmp_path / "data", mask=empty_masks(0, 2, 3, 5))
    with pytest.raises(DataError, match=r"field 'mask' is empty in 4 of the 6 samples \(more than half\).*'mas'"):
        Trainer(tiny_config(data, tmp_path / "run", losses={"mas": 1.0}), progress=False)


@pytest.mark.parametrize("batch_size", [2, 1])
def test_samples_with_an_empty_mask_are_skipped_and_counted(source, tmp_path, batch_size):
    empty = (1, 4)
    data = variant(source, tmp_path / "data", mask=empty_masks(*empty))
    config = tiny_config(data, tmp_path / "run", steps=6, batch_size=batch_size, losses={"mas": 1.0},
                         checkpoint_every=3)
    drawn = [step_indices(0, k, 6, batch_size).tolist() for k in range(6)]
    counts = np.cumsum([sum(i in empty for i in batch) for batch in drawn]).tolist()
    assert counts[-1] > 0
    result = train(config, progress=False)
    assert result.empty_masks_skipped == counts[-1]
    records = [json.loads(line) for line in (tmp_path / "run" / LOG_NAME).read_text().splitlines()]
    assert [r["empty_masks_skipped"] for r in records] == counts == [h["empty_masks_skipped"] for h in result.history]
    for record, batch in zip(records, drawn):
        if all(i in empty for i in batch):  # nothing left to learn from: no update, no mask loss
            assert record["loss"] == 0.0 and "mas" not in record
        else:
            assert record["mas"] > 0 and np.isfinite(record["loss"])
    # A run without empty masks logs and saves nothing new.
    clean = train(tiny_config(source, tmp_path / "clean", steps=1, losses={"mas": 1.0}), progress=False)
    assert clean.empty_masks_skipped == 0 and "empty_masks_skipped" not in clean.history[0]
    assert "empty_masks_skipped" not in load_checkpoint(clean.checkpoint)


def test_the_count_of_skipped_masks_survives_a_resume(source, tmp_path, monkeypatch):
    data = variant(source, tmp_path / "data", mask=empty_masks(1, 4))
    config = dict(steps=6, losses={"mas": 1.0}, checkpoint_every=2)
    straight = train(tiny_config(data, tmp_path / "straight", **config), progress=False)
    crash_after_step(monkeypatch, 4)
    with pytest.raises(RuntimeError):
        train(tiny_config(data, tmp_path / "run", **config), progress=False)
    monkeypatch.undo()
    resumed = train(tiny_config(data, tmp_path / "run", **config), progress=False)
    assert resumed.empty_masks_skipped == straight.empty_masks_skipped > 0
    assert resumed.history == [dict(h, time_s=r["time_s"]) for h, r in zip(straight.history, resumed.history)]


# ---------------------------------------------------------------------------------------- adapt: kill and resume
ADAPT_YAML = "losses: {mas: 1}\nbatch_size: 2\n"


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("faults") / "target", "thermal", 6, 32, 1, "train", labels=False)


def same_weights(a_path, b_path, context=""):
    a, _ = load_model(a_path)
    b, _ = load_model(b_path)
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(pa, pb), f"{name} differs {context}"


@pytest.mark.slow
def test_a_killed_adapt_run_resumes_to_the_weights_of_an_uninterrupted_one(checkpoint, target, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(ADAPT_YAML + "steps: 24\ncheckpoint_every: 3\nlog_every: 1\n")
    out = tmp_path / "killed"
    command = [sys.executable, "-m", "maskpose", "adapt", "--init", str(checkpoint), "--data", str(target),
               "--out", str(out), "--config", str(config)]
    killed_at = _kill_after_first_checkpoint_then_rerun(command, out)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        straight = train(TrainConfig.from_flags("adapt", config, data=str(target), out=str(tmp_path / "straight"),
                                                init_checkpoint=str(checkpoint)), progress=False)
    finally:
        torch.set_num_threads(threads)
    assert load_checkpoint(out / CHECKPOINT_NAME)["step"] == 24
    same_weights(straight.checkpoint, out / CHECKPOINT_NAME, f"after kill and resume (killed at step {killed_at})")
    assert logged_steps(out) == list(range(1, 25))


def test_an_adapt_run_whose_checkpoint_write_dies_half_way_resumes_to_the_uninterrupted_weights(
        checkpoint, target, tmp_path, monkeypatch):
    def config(out):
        return TrainConfig(mode="adapt", data=str(target), out=str(out), steps=6, batch_size=2,
                           losses={"mas": 1.0}, init_checkpoint=str(checkpoint), log_every=1, checkpoint_every=2)

    straight = train(config(tmp_path / "straight"), progress=False)
    real_save, calls = torch.save, []

    def dies_writing_the_second(obj, path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 2:
            with open(path, "wb") as f:
                f.write(b"PK\x03\x04 half a checkpoint")
            raise OSError(errno.EIO, "Input/output error")
        return real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(torch, "save", dies_writing_the_second)
    out = tmp_path / "run"
    with pytest.raises(OSError, match="checkpoint not written"):
        train(config(out), progress=False)
    monkeypatch.undo()
    assert load_checkpoint(out / CHECKPOINT_NAME)["step"] == 2  # the previous checkpoint, intact
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
    resumed = train(config(out), progress=False)
    assert resumed.steps == 6 and logged_steps(out) == [1, 2, 3, 4, 5, 6]
    same_weights(straight.checkpoint, resumed.checkpoint, "after a failed checkpoint write and a resume")


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

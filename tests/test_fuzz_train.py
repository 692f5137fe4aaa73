"""A fuzz corpus of the training verbs: every bad argument or config file gives exit 2 and a one-line
``error: …`` naming the problem (never a traceback), and a few valid inputs give a correct result.

One parametrised test per verb; the cases are built in ``tmp_path`` from tiny 32 px datasets and a
checkpoint of a 2-step pretraining. ``demo`` is only checked for argument and path validation (its
cases all fail before any data are generated).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from maskpose.cli import app
from maskpose.data.dataset import write_dataset
from maskpose.models.regressor import ModelConfig
from maskpose.synth.generator import generate
from maskpose.train.checkpoint import load_checkpoint
from maskpose.train.config import DEFAULT_LOSSES, TrainConfig
from maskpose.train.loop import train

TINY = ModelConfig(resolution=32, width=8, hidden=16)
TINY_YAML = "model: {resolution: 32, width: 8, hidden: 16}\nbatch_size: 2\n"
NO_CUDA = "cuda:99" if torch.cuda.is_available() else "cuda"


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    source = generate(root / "source", "studio", 6, 32, 0, "train")
    target = generate(root / "target", "thermal", 6, 32, 1, "train", labels=False)
    run = train(TrainConfig(mode="pretrain", data=str(source), out=str(root / "ckpt"), steps=2, batch_size=2,
                            model=TINY, log_every=1), progress=False)
    return {"source": source, "target": target, "ckpt": run.checkpoint}


def invoke(args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def checkpoint_variant(tmp_path, ckpt, change):
    """A copy of ``ckpt`` with its saved config changed by ``change(config)``."""
    state = torch.load(ckpt, weights_only=True)
    change(state["config"])
    path = tmp_path / "variant.pt"
    torch.save(state, path)
    return path


def expect_error(code, output, *needles):
    assert code == 2, f"exit {code}, output:\n{output}"
    assert "Traceback" not in output, output
    assert all(n.lower() in output.lower() for n in needles), f"{needles} not in:\n{output}"


# ---------------------------------------------------------------------------------------- pretrain
PRETRAIN_FLAG_CASES = {
    "steps-0": (["--steps", "0"], ["steps must be an int >= 1"]),
    "steps-negative": (["--steps", "-3"], ["steps must be an int >= 1", "-3"]),
    "steps-text": (["--steps", "abc"], ["--steps"]),
    "batch-0": (["--batch-size", "0"], ["batch_size must be an int >= 1"]),
    "lr-inf": (["--lr", "inf"], ["lr must be a finite number > 0", "inf"]),
    "lr-nan": (["--lr", "nan"], ["lr must be a finite number", "nan"]),
    "lr-0": (["--lr", "0"], ["lr must be a finite number > 0"]),
    "seed-negative": (["--seed", "-1"], ["seed must be an int in [0"]),
    "res-0": (["--res", "0"], ["resolution must be an int in [16, 2048]", "got 0"]),
    "res-7": (["--res", "7"], ["resolution must be an int in [16, 2048]", "got 7"]),
    "res-huge": (["--res", "100000"], ["resolution must be an int in [16, 2048]"]),
    "device-cuda": (["--device", NO_CUDA], [f"device '{NO_CUDA}' is not available on this machine"]),
    "device-frob": (["--device", "frob"], ["device 'frob' is not a torch device"]),
    "device-empty": (["--device", ""], ["device must be a name"]),
    "loss-nan": (["--loss", "joints3d=nan"], ["loss weight joints3d must be a finite number", "nan"]),
    "loss-inf": (["--loss", "joints3d=inf"], ["loss weight joints3d must be a finite number"]),
    "loss-negative": (["--loss", "joints3d=-1"], ["loss weight joints3d", ">= 0"]),
    "loss-all-zero": (["--loss", "joints3d=0", "--loss", "params=0"], ["at least one loss weight must be > 0"]),
    "loss-unknown": (["--loss", "chamfr=1"], ["unknown loss name", "chamfr"]),
    "loss-not-number": (["--loss", "joints3d=abc"], ["--loss", "must be a number"]),
    "config-missing": (["--config", "{tmp}/missing.yaml"], ["config file does not exist"]),
    "out-is-file": (["--out", "{tmp}/file.txt"], ["is a file"]),
    "out-below-file": (["--out", "{tmp}/file.txt/run"], ["lies below the file"]),
    "data-missing": (["--data", "{tmp}/nowhere"], ["nowhere"]),
}

PRETRAIN_YAML_CASES = {
    "steps-text": ("steps: abc\n", ["steps must be an int", "'abc'"]),
    "steps-float": ("steps: 2.5\n", ["steps must be an int", "2.5"]),
    "batch-bool": ("batch_size: true\n", ["batch_size must be an int", "True"]),
    "log-every-0": ("log_every: 0\n", ["log_every must be an int >= 1"]),
    "checkpoint-every-0": ("checkpoint_every: 0\n", ["checkpoint_every must be an int >= 1"]),
    "lr-inf": ("lr: .inf\n", ["lr must be a finite number"]),
    "lr-text": ("lr: fast\n", ["lr must be a finite number", "'fast'"]),
    "weight-decay-negative": ("weight_decay: -1.0\n", ["weight_decay must be a finite number >= 0"]),
    "focal-nan": ("focal: .nan\n", ["focal must be a finite number"]),
    "mas-sigma-0": ("mas_sigma: 0\n", ["mas_sigma must be a finite number > 0"]),
    "temperature-0": ("topology_temperature: 0\n", ["topology_temperature must be a finite number > 0"]),
    "binarization": ("topology_binarization: hard\n", ["topology_binarization must be one of"]),
    "source-ratio-2": ("source_ratio: 2\n", ["source_ratio", "2"]),
    "bool-text": ("mas_physique: maybe\n", ["mas_physique must be true or false"]),
    "device-int": ("device: 3\n", ["device must be a string"]),
    "losses-text": ("losses: {joints3d: x}\n", ["loss weight joints3d must be a finite number", "'x'"]),
    "losses-nan": ("losses: {joints3d: .nan, joints2d: 1}\n", ["loss weight joints3d", "nan"]),
    "losses-zero": ("losses: {joints3d: 0, joints2d: 0}\n", ["at least one loss weight must be > 0"]),
    "losses-not-mapping": ("losses: 5\n", ["losses must be a mapping"]),
    "losses-unknown": ("losses: {joints4d: 1}\n", ["unknown loss name", "joints4d"]),
    "model-int": ("model: 5\n", ["model must be a mapping", "5"]),
    "model-unknown-key": ("model: {colour: 1}\n", ["unknown model key", "colour"]),
    "model-res-7": ("model: {resolution: 7}\n", ["model.resolution must be an int in [16, 2048]"]),
    "model-res-text": ("model: {resolution: big}\n", ["model.resolution", "'big'"]),
    "model-width-0": ("model: {width: 0}\n", ["model.width must be an int >= 1"]),
    "model-hidden-float": ("model: {hidden: 1.5}\n", ["model.hidden must be an int"]),
    "model-heads": ("model: {heads: [face]}\n", ["model.heads must be a non-empty subset"]),
    "model-heads-empty": ("model: {heads: []}\n", ["model.heads must be a non-empty subset"]),
    "model-blocks-int": ("model: {blocks: 3}\n", ["model.blocks must be a list"]),
    "model-blocks-zero": ("model: {blocks: [1, 0]}\n", ["model.blocks must be 1 to 8 block counts"]),
    "model-bottleneck": ("model: {bottleneck: 2}\n", ["model.bottleneck must be true or false"]),
    "unknown-key": ("frob: 1\n", ["unknown config key", "frob"]),
    "mode-conflict": ("mode: adapt\n", ["mode is 'adapt' in the config file", "pretrain"]),
    "fit-in-pretrain": ("fit_every: 2\n", ["fitting in the loop"]),
    "not-mapping": ("- a\n- b\n", ["must be a mapping"]),
    "invalid-yaml": ("steps: [\n", ["not valid YAML"]),
}


@pytest.mark.parametrize("case", [f"flag:{k}" for k in PRETRAIN_FLAG_CASES] + [f"yaml:{k}" for k in PRETRAIN_YAML_CASES]
                         + ["valid:yaml-number-strings"])
def test_pretrain_corpus(case, assets, tmp_path):
    kind, name = case.split(":")
    (tmp_path / "file.txt").write_text("x")
    out = tmp_path / "run"
    args = {"--data": assets["source"], "--out": out}
    extra = []
    if kind == "flag":
        flags, needles = PRETRAIN_FLAG_CASES[name]
        flags = [f.format(tmp=tmp_path) for f in flags]
        for key, value in zip(flags[::2], flags[1::2]):
            if key in args:
                args[key] = value
            else:
                extra += [key, value]
    elif kind == "yaml":
        text, needles = PRETRAIN_YAML_CASES[name]
        extra = ["--config", write(tmp_path, "c.yaml", text)]
    else:  # YAML 1.1 reads 1e-3 as a string: it is accepted as the number it spells
        extra = ["--config", write(tmp_path, "c.yaml", TINY_YAML + "steps: 1\nlr: 1e-3\n")]
        code, output = invoke(["pretrain", *sum(([k, v] for k, v in args.items()), []), *extra])
        assert code == 0, output
        saved = load_checkpoint(out / "checkpoint.pt")["config"]
        assert saved["lr"] == 1e-3 and saved["steps"] == 1 and saved["losses"] == DEFAULT_LOSSES["pretrain"]
        return
    code, output = invoke(["pretrain", *sum(([k, v] for k, v in args.items()), []), *extra])
    expect_error(code, output, *needles)
    assert not (out / "checkpoint.pt").exists()  # nothing trained on bad input (steps 0 included)


# ---------------------------------------------------------------------------------------- adapt
def _no_model(cfg):
    del cfg["model"]


ADAPT_CASES = {
    "no-target": (lambda a, t: ["--init", a["ckpt"], "--out", t / "run"], ["no target"]),
    "data-and-video": (lambda a, t: ["--init", a["ckpt"], "--data", a["target"], "--video", t / "v.mp4",
                                     "--out", t / "run"], ["not both"]),
    "init-missing": (lambda a, t: ["--init", t / "none.pt", "--data", a["target"], "--out", t / "run"],
                     ["none.pt", "checkpoint does not exist"]),
    "init-text": (lambda a, t: ["--init", write(t, "x.pt", "not torch"), "--data", a["target"], "--out", t / "run"],
                  ["x.pt", "not a readable maskpose checkpoint"]),
    "init-directory": (lambda a, t: ["--init", t, "--data", a["target"], "--out", t / "run"],
                       ["checkpoint is not a file"]),
    "init-unknown-model-key": (
        lambda a, t: ["--init", checkpoint_variant(t, a["ckpt"], lambda c: c["model"].update(colour=1)),
                      "--data", a["target"], "--out", t / "run"], ["variant.pt", "unknown model key", "colour"]),
    "init-no-model": (lambda a, t: ["--init", checkpoint_variant(t, a["ckpt"], _no_model), "--data", a["target"],
                                    "--out", t / "run"], ["variant.pt", "has no 'model' entry"]),
    "init-bad-model": (
        lambda a, t: ["--init", checkpoint_variant(t, a["ckpt"], lambda c: c["model"].update(resolution=3)),
                      "--data", a["target"], "--out", t / "run"], ["variant.pt", "model.resolution"]),
    "init-nan-focal": (lambda a, t: ["--init", checkpoint_variant(t, a["ckpt"], lambda c: c.update(focal=float("nan"))),
                                     "--data", a["target"], "--out", t / "run"], ["variant.pt", "focal", "nan"]),
    "init-negative-focal": (lambda a, t: ["--init", checkpoint_variant(t, a["ckpt"], lambda c: c.update(focal=-5.0)),
                                          "--data", a["target"], "--out", t / "run"], ["variant.pt", "focal", "-5"]),
    "supervised-loss": (lambda a, t: ["--init", a["ckpt"], "--data", a["target"], "--out", t / "run",
                                      "--loss", "joints3d=1"], ["supervised losses"]),
    "ratio-without-source": (lambda a, t: ["--init", a["ckpt"], "--data", a["target"], "--out", t / "run",
                                           "--source-ratio", "0.5"], ["source_ratio > 0 needs source_data"]),
    "ratio-2": (lambda a, t: ["--init", a["ckpt"], "--data", a["target"], "--out", t / "run",
                              "--source-ratio", "2"], ["source_ratio"]),
    "steps-0": (lambda a, t: ["--init", a["ckpt"], "--data", a["target"], "--out", t / "run", "--steps", "0"],
                ["steps must be an int >= 1"]),
    "lr-negative": (lambda a, t: ["--init", a["ckpt"], "--data", a["target"], "--out", t / "run", "--lr", "-1"],
                    ["lr must be a finite number > 0"]),
    "device-cuda": (lambda a, t: ["--init", a["ckpt"], "--data", a["target"], "--out", t / "run",
                                  "--device", NO_CUDA], ["is not available on this machine"]),
    "device-frob": (lambda a, t: ["--init", a["ckpt"], "--data", a["target"], "--out", t / "run",
                                  "--device", "frob"], ["'frob' is not a torch device"]),
    "loss-weights-zero": (lambda a, t: ["--init", a["ckpt"], "--data", a["target"], "--out", t / "run",
                                        "--loss", "ls=0", "--loss", "lt=0"], ["at least one loss weight"]),
    "yaml-mode-conflict": (lambda a, t: ["--init", a["ckpt"], "--data", a["target"], "--out", t / "run",
                                         "--config", write(t, "c.yaml", "mode: pretrain\n")],
                           ["mode is 'pretrain' in the config file"]),
    "yaml-other-model": (lambda a, t: ["--init", a["ckpt"], "--data", a["target"], "--out", t / "run",
                                       "--config", write(t, "c.yaml", "model: {width: 16}\n")],
                         ["width is 8 in the checkpoint"]),
    "fit-every-negative": (lambda a, t: ["--init", a["ckpt"], "--data", a["target"], "--out", t / "run",
                                         "--config", write(t, "c.yaml", "fit_every: -1\n")], ["fit_every"]),
}


@pytest.mark.parametrize("case", list(ADAPT_CASES) + ["valid:yaml-without-mode"])
def test_adapt_corpus(case, assets, tmp_path):
    if case.startswith("valid:"):
        # A YAML without a mode line is read under adapt: adapt's mask losses, not pretrain's.
        yaml_file = write(tmp_path, "c.yaml", "steps: 1\nbatch_size: 2\n")
        code, output = invoke(["adapt", "--init", assets["ckpt"], "--data", assets["target"], "--out",
                               tmp_path / "run", "--config", yaml_file])
        assert code == 0, output
        saved = load_checkpoint(tmp_path / "run" / "checkpoint.pt")["config"]
        assert saved["losses"] == DEFAULT_LOSSES["adapt"] and saved["mode"] == "adapt"
        assert saved["model"] == TINY.to_dict()  # inherited from --init
        return
    build, needles = ADAPT_CASES[case]
    code, output = invoke(["adapt", *build(assets, tmp_path)])
    expect_error(code, output, *needles)
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


# ---------------------------------------------------------------------------------------- train-unsup
UNSUP_CASES = {
    "steps-0": (["--steps", "0"], ["steps must be an int >= 1"]),
    "res-7": (["--res", "7"], ["resolution must be an int in [16, 2048]"]),
    "res-0": (["--res", "0"], ["resolution must be an int in [16, 2048]"]),
    "mas-zero": (["--loss", "mas=0"], ["at least one loss weight must be > 0"]),
    "mas-nan": (["--loss", "mas=nan"], ["loss weight mas", "nan"]),
    "batch-negative": (["--batch-size", "-2"], ["batch_size must be an int >= 1"]),
    "device-cuda": (["--device", NO_CUDA], ["is not available on this machine"]),
    "device-frob": (["--device", "frob"], ["'frob' is not a torch device"]),
    "yaml-mode-conflict": (["--config", "mode: pretrain\n"], ["mode is 'pretrain' in the config file"]),
    "yaml-sigma-nan": (["--config", "mas_sigma: .nan\n"], ["mas_sigma must be a finite number > 0"]),
    "yaml-checkpoint-every-0": (["--config", "checkpoint_every: 0\n"], ["checkpoint_every must be an int >= 1"]),
    "yaml-model-int": (["--config", "model: 5\n"], ["model must be a mapping"]),
    "data-without-masks": (None, ["lacks field", "mask"]),
}


@pytest.mark.parametrize("case", list(UNSUP_CASES) + ["valid:yaml-without-mode"])
def test_train_unsup_corpus(case, assets, tmp_path):
    out = tmp_path / "run"
    if case.startswith("valid:"):
        yaml_file = write(tmp_path, "c.yaml", TINY_YAML + "steps: 1\n")
        code, output = invoke(["train-unsup", "--data", assets["target"], "--out", out, "--config", yaml_file])
        assert code == 0, output
        saved = load_checkpoint(out / "checkpoint.pt")["config"]
        assert saved["losses"] == DEFAULT_LOSSES["train-unsup"] and saved["model"]["heads"] == ["joints"]
        return
    flags, needles = UNSUP_CASES[case]
    data = assets["target"]
    if flags is None:  # a dataset of images only
        data = write_dataset(tmp_path / "images", {"image": np.zeros((2, 32, 32, 3), np.uint8)}, domain="x")
        flags = []
    if flags and flags[0] == "--config":
        flags = ["--config", write(tmp_path, "c.yaml", flags[1])]
    code, output = invoke(["train-unsup", "--data", data, "--out", out, *flags])
    expect_error(code, output, *needles)
    assert not (out / "checkpoint.pt").exists()


# ---------------------------------------------------------------------------------------- evaluate
EVALUATE_CASES = {
    "batch-size-negative": (["--batch-size", "-1"], ["--batch-size must be an int >= 1", "-1"]),
    "batch-size-0": (["--batch-size", "0"], ["--batch-size must be an int >= 1"]),
    "json-directory": (["--json", "{tmp}"], ["--json", "is a directory"]),
    "json-below-file": (["--json", "{tmp}/file.txt/m.json"], ["--json", "lies below the file"]),
    "checkpoint-missing": (["CKPT={tmp}/none.pt"], ["checkpoint does not exist"]),
    "checkpoint-garbage": (["CKPT={tmp}/file.txt"], ["not a readable maskpose checkpoint"]),
    "device-cuda": (["--device", NO_CUDA], ["is not available on this machine"]),
    "device-frob": (["--device", "frob"], ["'frob' is not a torch device"]),
    "data-missing": (["--data", "{tmp}/nowhere"], ["nowhere"]),
}


@pytest.mark.parametrize("case", list(EVALUATE_CASES) + ["valid:json", "valid:masks-only"])
def test_evaluate_corpus(case, assets, tmp_path):
    (tmp_path / "file.txt").write_text("x")
    if case == "valid:masks-only":  # an unlabelled target: its masks against the mesh head's silhouettes
        json_path = tmp_path / "metrics.json"
        code, output = invoke(["evaluate", assets["ckpt"], "--data", assets["target"], "--json", json_path])
        assert code == 0, output
        metrics = json.loads(json_path.read_text())
        assert set(metrics) == {"silhouette_iou", "num_samples", "floor_mean_mask_iou", "floor_source"}, metrics
        assert metrics["num_samples"] == 6 and 0.0 <= metrics["silhouette_iou"] <= 100.0
        return
    if case.startswith("valid:"):
        json_path = tmp_path / "new" / "metrics.json"
        code, output = invoke(["evaluate", assets["ckpt"], "--data", assets["source"], "--json", json_path,
                               "--batch-size", "4"])
        assert code == 0, output
        metrics = json.loads(json_path.read_text())
        assert metrics["num_samples"] == 6 and metrics["mpjpe"] > 0 and "pa_mpjpe" in metrics
        return
    flags, needles = EVALUATE_CASES[case]
    ckpt, data, extra = assets["ckpt"], assets["source"], []
    for flag in (f.format(tmp=tmp_path) for f in flags):
        if flag.startswith("CKPT="):
            ckpt = flag[5:]
        elif flag == "TARGET":
            data = assets["target"]
        else:
            extra.append(flag)
    if extra[:1] == ["--data"]:
        data, extra = extra[1], extra[2:]
    code, output = invoke(["evaluate", ckpt, "--data", data, *extra])
    expect_error(code, output, *needles)


# ---------------------------------------------------------------------------------------- masks train-physique
PHYSIQUE_CASES = {
    "steps-0": (["--steps", "0"], ["--steps"]),
    "size-4": (["--size", "4"], ["--size"]),
    "batch-0": (["--batch-size", "0"], ["--batch-size"]),
    "sigma-0": (["--sigma", "0"], ["--sigma must be a finite number of pixels > 0"]),
    "sigma-nan": (["--sigma", "nan"], ["--sigma must be a finite number", "nan"]),
    "sigma-inf": (["--sigma", "inf"], ["--sigma must be a finite number", "inf"]),
    "device-cuda": (["--device", NO_CUDA], ["is not available on this machine"]),
    "device-frob": (["--device", "frob"], ["'frob' is not a torch device"]),
    "out-directory": (["--out", "{tmp}"], ["--out", "is a directory"]),
    "out-below-file": (["--out", "{tmp}/file.txt/psi.pt"], ["--out", "lies below the file"]),
}


@pytest.mark.parametrize("case", list(PHYSIQUE_CASES) + ["valid:tiny"])
def test_masks_train_physique_corpus(case, tmp_path):
    (tmp_path / "file.txt").write_text("x")
    out = tmp_path / "psi.pt"
    base = ["--steps", "1", "--size", "16", "--batch-size", "2", "--eval-samples", "2"]
    if case.startswith("valid:"):
        code, output = invoke(["masks", "train-physique", "--out", out, *base])
        assert code == 0, output
        state = torch.load(out, weights_only=True)
        assert state and all(torch.is_tensor(v) for v in state.values())
        assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt", "psi.pt"]  # no temporary file
        return
    flags, needles = PHYSIQUE_CASES[case]
    flags = [f.format(tmp=tmp_path) for f in flags]
    args = ["--out", out, *base]
    for key, value in zip(flags[::2], flags[1::2]):
        if key in args:
            args[args.index(key) + 1] = value
        else:
            args += [key, value]
    code, output = invoke(["masks", "train-physique", *args])
    expect_error(code, output, *needles)
    assert not out.exists()


# ---------------------------------------------------------------------------------------- demo (validation only)
DEMO_CASES = {
    "target-unknown": (["--target", "frob"], ["unknown domain 'frob'"]),
    "adapt-steps-0": (["--adapt-steps", "0"], ["--adapt-steps must be an int >= 1"]),
    "adapt-steps-negative": (["--adapt-steps", "-5"], ["--adapt-steps must be an int >= 1", "-5"]),
    "device-cuda": (["--device", NO_CUDA], ["is not available on this machine"]),
    "device-frob": (["--device", "frob"], ["'frob' is not a torch device"]),
    "out-file": (["--out", "{tmp}/file.txt"], ["--out", "is a file"]),
    "out-below-file": (["--out", "{tmp}/file.txt/demo"], ["--out", "lies below the file"]),
}


@pytest.mark.parametrize("case", list(DEMO_CASES))
def test_demo_corpus(case, tmp_path):
    (tmp_path / "file.txt").write_text("x")
    flags, needles = DEMO_CASES[case]
    flags = [f.format(tmp=tmp_path) for f in flags]
    if "--out" not in flags:
        flags += ["--out", str(tmp_path / "demo")]
    code, output = invoke(["demo", *flags])
    expect_error(code, output, *needles)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]  # refused before writing anything


# ---------------------------------------------------------------------------------------- labels a loss needs
def _blanked(tmp_path, dataset, **changes):
    """A copy of ``dataset`` with arrays replaced: ``name="nan"`` (all NaN), ``"zero"`` (all empty)
    or a list of rows to empty."""
    arrays = {p.stem: np.load(p) for p in dataset.glob("*.npy")}
    for name, how in changes.items():
        if how == "nan":
            arrays[name] = np.full_like(arrays[name], np.nan)
        elif how == "zero":
            arrays[name] = np.zeros_like(arrays[name])
        else:
            arrays[name][how] = 0
    return write_dataset(tmp_path / "blanked", arrays, domain="x")


LABEL_CASES = {
    "pretrain-joints3d-nan": ("pretrain", "source", {"joints3d": "nan"}, ["--loss", "joints3d=1"],
                              ["field 'joints3d' is missing (NaN) in every one", "['joints3d']"]),
    "pretrain-joints2d-nan": ("pretrain", "source", {"joints2d": "nan"}, ["--loss", "joints2d=1"],
                              ["field 'joints2d' is missing (NaN) in every one", "['joints2d']"]),
    "pretrain-pose-nan": ("pretrain", "source", {"pose": "nan"}, [], ["field 'pose' is missing", "params"]),
    "adapt-masks-empty": ("adapt", "target", {"mask": "zero"}, [], ["field 'mask' is empty in every one", "'ls'"]),
    "adapt-masks-mostly-empty": ("adapt", "target", {"mask": [0, 1, 2, 4]}, [],
                                 ["field 'mask' is empty in 4 of the 6 samples (more than half)"]),
    "unsup-masks-empty": ("train-unsup", "target", {"mask": "zero"}, [], ["field 'mask' is empty", "['mas']"]),
}


@pytest.mark.parametrize("case", list(LABEL_CASES))
def test_a_dataset_without_the_labels_of_its_losses_is_refused(case, assets, tmp_path):
    mode, which, changes, flags, needles = LABEL_CASES[case]
    data = _blanked(tmp_path, assets[which], **changes)
    out = tmp_path / "run"
    config = write(tmp_path, "c.yaml", TINY_YAML if mode != "adapt" else "batch_size: 2\n")
    init = ["--init", assets["ckpt"]] if mode == "adapt" else []
    code, output = invoke([mode, *init, "--data", data, "--out", out, "--config", config, "--steps", "1", *flags])
    expect_error(code, output, str(data), *needles)
    assert len(output.strip().splitlines()) == 1 and not out.exists()


# ---------------------------------------------------------------------------------------- masks extract / synth-video
def _read_only(monkeypatch, folder):
    """``folder`` reads as not writable (``os.access``: root may write anywhere, so chmod is not enough)."""
    import os
    from pathlib import Path

    import maskpose.io

    folder.mkdir(exist_ok=True)
    real = os.access
    monkeypatch.setattr(maskpose.io.os, "access",
                        lambda p, mode: real(p, mode) and not (Path(p) == folder and mode & os.W_OK))


VIDEO_OUT_CASES = {
    "extract:out-is-file": (["--out", "{tmp}/file.txt"], None, ["--out", "file.txt", "is a file"]),
    "extract:out-below-file": (["--out", "{tmp}/file.txt/crops"], None, ["--out", "file.txt", "is a file"]),
    "extract:out-read-only": (["--out", "{tmp}/locked"], "locked", ["--out", "locked", "is not writable"]),
    "extract:out-inside-read-only": (["--out", "{tmp}/locked/crops"], "locked", ["locked", "is not writable"]),
    "extract:sheet-directory": (["--sheet", "{tmp}"], None, ["--sheet", "is a folder"]),
    "extract:sheet-below-file": (["--sheet", "{tmp}/file.txt/s.png"], None, ["--sheet", "file.txt", "is a file"]),
    "extract:sheet-read-only": (["--sheet", "{tmp}/locked/s.png"], "locked", ["--sheet", "locked", "is not writable"]),
    "synth-video:out-is-file": (["--out", "{tmp}/file.txt"], None, ["--out", "file.txt", "is a file"]),
    "synth-video:out-below-file": (["--out", "{tmp}/file.txt/v"], None, ["--out", "file.txt", "is a file"]),
    "synth-video:out-read-only": (["--out", "{tmp}/locked"], "locked", ["--out", "locked", "is not writable"]),
    "synth-video:out-inside-read-only": (["--out", "{tmp}/locked/v"], "locked", ["locked", "is not writable"]),
}


@pytest.mark.parametrize("case", list(VIDEO_OUT_CASES))
def test_masks_video_output_paths_are_checked_before_any_work(case, tmp_path, monkeypatch):
    verb, _ = case.split(":")
    flags, locked, needles = VIDEO_OUT_CASES[case]
    (tmp_path / "file.txt").write_text("x")
    if locked:
        _read_only(monkeypatch, tmp_path / locked)
    flags = [f.format(tmp=tmp_path) for f in flags]
    if "--out" not in flags:
        flags += ["--out", str(tmp_path / "crops")]
    video = tmp_path / "missing.mp4"  # never opened: the paths are refused first
    args = ["masks", "extract", video, *flags] if verb == "extract" else ["masks", "synth-video", "--frames", "2",
                                                                          *flags]
    before = sorted(p.name for p in tmp_path.iterdir())
    code, output = invoke(args)
    expect_error(code, output, *needles)
    assert "missing.mp4" not in output
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written

"""The training configs shipped in docs/configs load and validate as the commands read them
(``TrainConfig.from_flags``), and paper 000's recipe holds the paper's numbers (issue 15).

Data paths are placeholders given on the command line, so the configs are validated with fake
ones and on the CPU (a config's ``device: cuda`` is checked for its type only here)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from maskpose.models.regressor import ModelConfig
from maskpose.train.config import TrainConfig, load_yaml_mapping

CONFIGS = Path(__file__).resolve().parents[1] / "docs" / "configs"
#: Configs of ``maskpose bench`` (a BenchConfig, not a TrainConfig), by file-name prefix.
BENCH_PREFIX = "bench_"
TRAIN_CONFIGS = sorted(p for p in CONFIGS.glob("*.yaml") if not p.name.startswith(BENCH_PREFIX))
PAPER000 = sorted(CONFIGS.glob("paper000_*.yaml"))


def test_the_configs_are_there():
    names = {p.name for p in PAPER000}
    assert {"paper000_pretrain_resnet50_224.yaml", "paper000_adapt_resnet50_224.yaml",
            "paper000_pretrain_resnet50_224_smpl.yaml", "paper000_adapt_resnet50_224_smpl.yaml"} <= names
    assert set(PAPER000) <= set(TRAIN_CONFIGS)


def _mode(path: Path) -> str:
    return load_yaml_mapping(path).get("mode", "pretrain")


@pytest.mark.parametrize("path", TRAIN_CONFIGS, ids=lambda p: p.name)
def test_train_config_loads_and_validates(path, tmp_path, monkeypatch):
    mode = _mode(path)
    flags = {"data": str(tmp_path / "data"), "out": str(tmp_path / "run")}
    if float(load_yaml_mapping(path).get("source_ratio", 0)) > 0:
        flags["source_data"] = str(tmp_path / "source")  # --source-data (the replay of the recipe)
    config = TrainConfig.from_flags(mode, path, **flags)  # as `maskpose <mode> --config PATH` reads it
    config._check_types()
    # Everything else validates on this machine's CPU (the file's device is the user's GPU).
    local = replace(config, device="cpu")
    if config.body == "smpl":
        pytest.importorskip("smplx")
        from smpl_model import write_smpl_model

        model = tmp_path / "SMPL_NEUTRAL.pkl"
        write_smpl_model(model)
        monkeypatch.setenv("MASKPOSE_SMPL_MODEL", str(model))
    local.validate()
    assert config.device in ("cpu", "cuda")


@pytest.mark.parametrize("path", PAPER000, ids=lambda p: p.name)
def test_paper000_recipe_holds_the_papers_numbers(path, tmp_path):
    mode = _mode(path)
    config = TrainConfig.from_flags(mode, path, data=str(tmp_path / "data"))
    resnet50 = replace(ModelConfig.resnet50(), stem_pool=True)  # a standard ResNet-50: 224 px, 3-4-6-3 bottlenecks
    model = config.model
    assert (model.resolution, model.width, model.blocks, model.bottleneck, model.stem_pool, model.hidden) == (
        resnet50.resolution, resnet50.width, resnet50.blocks, resnet50.bottleneck, resnet50.stem_pool, resnet50.hidden)
    assert config.batch_size == 16  # paper: batch 16, Adam (the only optimiser)
    assert config.precision in ("float32", "bf16")  # fp16 needs CUDA; bf16 also runs on the CPU
    if mode == "adapt":
        assert config.lr == 1e-6  # paper: adaptation lr 1e-6
        assert config.losses["ls"] == 1.0 and config.losses["lt"] == 1.0  # paper: L_S + L_T
        assert config.source_ratio > 0  # source replay
        # paper: fitting in the loop every 4th step (not available with body smpl: refused there)
        assert config.fit_every == (4 if config.body == "anny" else 0)
    else:
        assert mode == "pretrain"
    assert config.body == ("smpl" if path.stem.endswith("_smpl") else "anny")
    if config.body == "smpl":
        assert (config.model.num_rotations, config.model.num_phenotypes) == (24, 10)  # the head follows the body


def test_pretrain_and_adapt_models_match(tmp_path):
    """An adapt config sets the model explicitly: it must equal its pretrain config's (the model
    of the --init checkpoint), or `maskpose adapt` refuses the run."""
    for suffix in ("", "_smpl"):
        pre = TrainConfig.from_flags("pretrain", CONFIGS / f"paper000_pretrain_resnet50_224{suffix}.yaml", data="x")
        ada = TrainConfig.from_flags("adapt", CONFIGS / f"paper000_adapt_resnet50_224{suffix}.yaml", data="x")
        assert pre.model == ada.model and pre.body == ada.body and pre.smpl_topology == ada.smpl_topology
        assert ada.inherit_from_checkpoint(pre.to_dict(), "pretrain", explicit={"model"}) is ada


# ---------------------------------------------------------------------------------------------
# docs/reproduce.md: every command it gives exists, with every flag it passes

REPRODUCE = CONFIGS.parent / "reproduce.md"


def _doc_commands(text: str) -> list[list[str]]:
    """The ``maskpose ...`` command lines of a markdown text: in ```bash blocks (continuation lines
    joined, comments dropped) and in inline code spans, as token lists without ``maskpose``."""
    import re
    import shlex

    lines = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        lines += block.replace("\\\n", " ").splitlines()
    lines += re.findall(r"`(maskpose [^`]+)`", text)
    commands = []
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if line.startswith("maskpose "):
            commands.append(shlex.split(line.replace("...", ""))[1:])
    return commands


def test_reproduce_commands_exist():
    import typer

    from maskpose.cli import app

    root = typer.main.get_command(app)  # groups have .commands, commands .params
    commands = _doc_commands(REPRODUCE.read_text())
    assert len(commands) >= 20
    for tokens in commands:
        command, rest = root, list(tokens)
        while hasattr(command, "commands") and rest and rest[0] in command.commands:
            command = command.commands[rest.pop(0)]
        assert not hasattr(command, "commands"), f"maskpose {' '.join(tokens)}: not a command"
        known = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
        flags = {t.split("=", 1)[0] for t in rest if t.startswith("--")}
        assert flags <= known, f"maskpose {' '.join(tokens)}: unknown flag(s) {sorted(flags - known)}"
        for name in (t for t in rest if t.startswith("docs/configs/")):
            assert (CONFIGS.parent.parent / name).is_file(), name


def test_reproduce_is_linked_from_the_readme():
    assert "docs/reproduce.md" in (CONFIGS.parent.parent / "README.md").read_text()

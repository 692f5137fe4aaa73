"""The shipped real-photo model (``source_realistic_64.pt``) and the recipe that rebuilds it:
the shipped file is what the recipe trains, a small rebuild is deterministic and ships only the
model, and the model beats the studio model on realistic crops it never saw."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from maskpose.apps.demo import SHIPPED_SOURCE, shipped_checkpoint
from maskpose.apps.photo_source import (
    PHOTO_RECIPES,
    PHOTO_SOURCE,
    SHIPPED_KEYS,
    PhotoSourceRecipe,
    build_photo_source,
)
from maskpose.cli import app
from maskpose.errors import ConfigError
from maskpose.synth.generator import SynthesisConfig, generate
from maskpose.train.checkpoint import at_resolution, load_checkpoint, load_model, save_checkpoint
from maskpose.train.evaluate import evaluate_checkpoint

PHOTO = shipped_checkpoint(PHOTO_SOURCE)
STUDIO = shipped_checkpoint(SHIPPED_SOURCE)

pytestmark = pytest.mark.skipif(PHOTO is None or STUDIO is None, reason="a shipped checkpoint is absent")


def test_the_shipped_file_is_the_recipes_model():
    assert set(torch.load(PHOTO, weights_only=True)) == set(SHIPPED_KEYS)
    state = load_checkpoint(PHOTO)
    config, recipe = state["config"], PhotoSourceRecipe()
    assert config["masked_input"] is True and config["mode"] == "pretrain"
    assert state["step"] == config["steps"] == recipe.steps
    assert (config["batch_size"], config["lr"], config["lr_schedule"]) == (recipe.batch_size, recipe.lr, "cosine")
    assert config["model"] == load_checkpoint(STUDIO)["config"]["model"]  # fine-tuned, same network
    assert config["model"]["resolution"] == recipe.resolution


@pytest.mark.parametrize("threads", [1, 2])
def test_a_small_rebuild_is_deterministic_and_ships_only_the_model(tmp_path, threads):
    recipe = PhotoSourceRecipe(samples=8, steps=2, batch_size=4, threads=threads)
    first = build_photo_source(tmp_path / "a", recipe, progress=False)
    second = build_photo_source(tmp_path / "b", recipe, progress=False)
    a, b = load_checkpoint(first), load_checkpoint(second)
    assert set(torch.load(first, weights_only=True)) == set(SHIPPED_KEYS)
    assert a["step"] == 2 and a["config"]["masked_input"] is True
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    studio = load_checkpoint(STUDIO)["model"]
    assert not all(torch.equal(a["model"][k], studio[k]) for k in studio)  # it trained
    assert a["config"]["init_checkpoint"] == str(STUDIO)
    # a second call reuses the finished data and run
    assert build_photo_source(tmp_path / "a", recipe, progress=False) == first


def test_the_cli_refuses_bad_numbers(tmp_path):
    result = CliRunner().invoke(app, ["build-photo-source", "--out", str(tmp_path / "o"), "--steps", "0"])
    assert result.exit_code != 0 and "--steps must be an int >= 1, got 0" in result.output
    assert not (tmp_path / "o").exists()


@pytest.fixture(scope="module")
def realistic_test(tmp_path_factory) -> Path:
    """Realistic crops of another seed and split than the training data, poses of the recipe's
    distribution from another sampler seed."""
    recipe = PhotoSourceRecipe()
    return generate(tmp_path_factory.mktemp("r") / "test", "realistic", 48, recipe.resolution, 101, "test",
                    config=SynthesisConfig(geodesic=False), pose_source=recipe.poses.sampler(101))


def test_it_beats_the_studio_model_on_unseen_realistic_crops(realistic_test):
    photo = evaluate_checkpoint(PHOTO, realistic_test)
    studio = evaluate_checkpoint(STUDIO, realistic_test)
    assert photo["pck2d@0.1"] > studio["pck2d@0.1"] + 10.0
    assert photo["silhouette_iou"] > studio["silhouette_iou"] + 5.0
    assert photo["pa_mpjpe"] < studio["pa_mpjpe"]


def test_the_recipes_poses():
    recipe = PhotoSourceRecipe()
    pose, _ = recipe.pose_source().sample(8)
    assert torch.equal(pose, recipe.poses.sampler(recipe.seed * 1000).sample(8)[0])
    mixed = replace(recipe, motion_share=0.5).pose_source()
    assert mixed.motion_share == 0.5 and mixed.distribution == recipe.poses


def test_recipe_changes_reach_the_run():
    run = replace(PhotoSourceRecipe(), steps=7, lr=1e-4).run("d", "i", "o")
    assert (run.steps, run.lr, run.masked_input, run.init_checkpoint) == (7, 1e-4, True, "i")


def test_at_resolution_keeps_the_weights_and_the_field_of_view(tmp_path):
    state = load_checkpoint(STUDIO)
    focused = save_checkpoint(tmp_path / "f.pt", {**state, "config": {**state["config"], "focal": 128.0}})
    moved = load_checkpoint(at_resolution(focused, 128, tmp_path / "m.pt"))
    assert moved["config"]["model"] == {**state["config"]["model"], "resolution": 128}
    assert moved["config"]["focal"] == 256.0 and moved["step"] == 0
    assert all(torch.equal(moved["model"][k], v) for k, v in state["model"].items())
    model, _ = load_model(tmp_path / "m.pt")
    assert model(torch.zeros(1, 3, 128, 128)) is not None  # the weights read the new size
    assert load_checkpoint(at_resolution(STUDIO, 96, tmp_path / "z.pt"))["config"]["focal"] == 0.0
    with pytest.raises(ConfigError, match="resolution"):
        at_resolution(STUDIO, 7, tmp_path / "bad.pt")


def test_a_recipe_at_another_resolution_starts_from_its_model_moved_there(tmp_path):
    recipe = PhotoSourceRecipe(resolution=48, init=PHOTO_SOURCE, samples=8, steps=2, batch_size=4)
    built = build_photo_source(tmp_path, recipe, progress=False)
    assert built.name == "source_realistic_48.pt" == recipe.shipped_name()
    state = load_checkpoint(built)
    assert state["config"]["model"]["resolution"] == 48 and state["config"]["masked_input"] is True
    init = load_checkpoint(state["config"]["init_checkpoint"])
    assert all(torch.equal(init["model"][k], v) for k, v in load_checkpoint(PHOTO)["model"].items())
    assert PHOTO_RECIPES[64] == PhotoSourceRecipe() and PHOTO_RECIPES[64].shipped_name() == PHOTO_SOURCE
    assert (PHOTO_RECIPES[128].resolution, PHOTO_RECIPES[128].init) == (128, PHOTO_SOURCE)


def test_a_second_stage_fine_tunes_the_first_stages_model_on_its_own_crops(tmp_path):
    second = PhotoSourceRecipe(samples=8, steps=2, batch_size=4, seed=8, lr=1e-4)
    recipe = PhotoSourceRecipe(samples=8, steps=2, batch_size=4, then=second)
    built = build_photo_source(tmp_path, recipe, progress=False)
    assert built == tmp_path / "then" / PHOTO_SOURCE
    first, last = load_checkpoint(tmp_path / PHOTO_SOURCE), load_checkpoint(built)
    assert last["config"]["init_checkpoint"] == str(tmp_path / PHOTO_SOURCE) and last["config"]["lr"] == 1e-4
    assert not all(torch.equal(first["model"][k], v) for k, v in last["model"].items())  # it trained on
    stage1, stage2 = np.load(tmp_path / "data" / "image.npy"), np.load(tmp_path / "then" / "data" / "image.npy")
    assert stage1.shape == stage2.shape and not np.array_equal(stage1, stage2)  # other crops (seed 8)
    # with_every_stage, which the CLI's --steps, --samples and --device go through, reaches every stage
    assert [r.steps for r in (PHOTO_RECIPES[128].with_every_stage(steps=3),
                              PHOTO_RECIPES[128].with_every_stage(steps=3).then)] == [3, 3]


def test_the_cli_refuses_a_resolution_without_a_recipe(tmp_path):
    result = CliRunner().invoke(app, ["build-photo-source", "--out", str(tmp_path / "o"), "--resolution", "96"])
    assert result.exit_code != 0 and "--resolution must be one of [64, 128]" in result.output


PHOTO_128 = shipped_checkpoint(PHOTO_RECIPES[128].shipped_name())


@pytest.mark.skipif(PHOTO_128 is None, reason="the 128 px real-photo model is absent")
def test_the_shipped_128_px_file_is_its_recipes_model():
    assert set(torch.load(PHOTO_128, weights_only=True)) == set(SHIPPED_KEYS)
    state, recipe = load_checkpoint(PHOTO_128), PHOTO_RECIPES[128]
    config, last = state["config"], recipe.then  # the shipped file is the second stage's
    assert config["masked_input"] is True and state["step"] == config["steps"] == last.steps
    assert (config["batch_size"], config["lr"], config["lr_schedule"]) == (last.batch_size, last.lr, "cosine")
    # the 64 px real-photo model's network, moved to 128 px
    assert config["model"] == {**load_checkpoint(PHOTO)["config"]["model"], "resolution": 128}
    assert Path(config["init_checkpoint"]).name == recipe.shipped_name()  # from the first stage's model


@pytest.mark.skipif(PHOTO_128 is None, reason="the 128 px real-photo model is absent")
def test_the_128_px_model_beats_the_64_px_one_on_unseen_realistic_crops(tmp_path):
    recipe = PHOTO_RECIPES[128]
    test = generate(tmp_path / "test", "realistic", 48, 128, 101, "test", config=SynthesisConfig(geodesic=False),
                    pose_source=recipe.poses.sampler(101))
    sharp, coarse = evaluate_checkpoint(PHOTO_128, test), evaluate_checkpoint(PHOTO, test)
    assert sharp["pa_mpjpe"] < coarse["pa_mpjpe"] and sharp["pck2d@0.05"] > coarse["pck2d@0.05"]

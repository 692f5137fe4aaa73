"""The shipped real-photo model (``source_realistic_64.pt``) and the recipe that rebuilds it:
the shipped file is what the recipe trains, a small rebuild is deterministic and ships only the
model, and the model beats the studio model on realistic crops it never saw."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from maskpose.apps.demo import SHIPPED_SOURCE, shipped_checkpoint
from maskpose.apps.photo_source import PHOTO_SOURCE, SHIPPED_KEYS, PhotoSourceRecipe, build_photo_source
from maskpose.cli import app
from maskpose.synth.generator import SynthesisConfig, generate
from maskpose.train.checkpoint import load_checkpoint
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


def test_a_small_rebuild_is_deterministic_and_ships_only_the_model(tmp_path):
    recipe = PhotoSourceRecipe(samples=8, steps=2, batch_size=4)
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

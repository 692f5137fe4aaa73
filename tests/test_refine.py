"""Per-image refinement (``maskpose predict --refine N``): each prediction's body parameters fitted
to its mask (:func:`maskpose.train.fitting.fit_to_masks`, the fitting in the loop of
``Trainer.fit_parameters``) on datasets with masks, photos with ``--masks`` and the video path.

A tiny 32 px mesh-head model pretrained two steps on a tiny dataset: its silhouettes are poor, so
refinement has something to fix."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from maskpose.apps.predict import VIDEO_REFINE, CropPredictor, predict_photos, predict_to_folder
from maskpose.body.anny_body import AnnyBody
from maskpose.body.sampler import PoseSampler
from maskpose.cli import app
from maskpose.data.batching import load_batch
from maskpose.data.dataset import MaskposeDataset
from maskpose.errors import ConfigError, DataError
from maskpose.models.regressor import MeshHeadOutput, ModelConfig
from maskpose.render.camera import intrinsics
from maskpose.render.silhouette import SilhouetteRenderer
from maskpose.train.config import KNOWN_LOSSES, TrainConfig, default_losses
from maskpose.train.evaluate import evaluate_checkpoint
from maskpose.train.fitting import fit_to_masks
from maskpose.train.loop import Trainer, train
from maskpose.train.objectives import JOINT_TERMS, Objective
from maskpose.train.pipeline import batch_intrinsics, mesh_prediction
from maskpose.train.refine import REFINE_PIXEL_WEIGHT, MaskRefiner, refine_losses
from tiny_data import make_dataset

torch.set_num_threads(1)

RES = 32
TINY = ModelConfig(resolution=RES, width=8, hidden=16)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("data") / "tiny", 8, res=RES, seed=1)


@pytest.fixture(scope="module")
def checkpoint(data, tmp_path_factory):
    return train(TrainConfig(mode="pretrain", data=str(data), steps=2, batch_size=4,
                             out=str(tmp_path_factory.mktemp("run")), model=TINY), progress=False).checkpoint


def _joint_head_checkpoint(data, tmp_path):
    """A tiny model with the joint head alone (no body parameters to refine)."""
    return train(TrainConfig(mode="pretrain", data=str(data), steps=1, batch_size=4, out=str(tmp_path / "j"),
                             losses={"joints3d": 1.0}, model=ModelConfig(resolution=RES, width=8, hidden=16,
                                                                         heads=("joints",))),
                 progress=False).checkpoint


def _records(folder):
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


def test_refinement_raises_the_mean_iou_on_a_dataset(checkpoint, data, tmp_path):
    result = CliRunner().invoke(app, ["predict", str(checkpoint), "--input", str(data), "--out", str(tmp_path / "r"),
                                      "--refine", "10", "--no-ply"])
    assert result.exit_code == 0, result.output
    assert "refined 10 iterations" in result.stdout
    plain = predict_to_folder(checkpoint, data, tmp_path / "p", write_ply=False)
    assert plain == 8
    refined, unrefined = _records(tmp_path / "r"), _records(tmp_path / "p")
    assert len(refined) == len(unrefined) == 8
    for r, u in zip(refined, unrefined):
        assert {"iou", "iou_before", "iou_after", "refine_iterations"} <= set(r)
        assert r["refine_iterations"] == 10 and r["iou"] == r["iou_after"]
        assert "iou_before" not in u and u["iou"] == r["iou_before"]  # refinement starts at the regressor's output
        assert all(0.0 <= v <= 1.0 for v in r["phenotypes"])  # Anny's phenotypes stay in range
        assert r["joints3d_m"] != u["joints3d_m"]  # the written joints are the refined body's
    before = np.mean([r["iou_before"] for r in refined])
    after = np.mean([r["iou_after"] for r in refined])
    assert after > before + 0.1, f"mean IoU {before:.3f} -> {after:.3f}"
    assert sum(r["iou_after"] > r["iou_before"] for r in refined) >= 6


def test_fit_parameters_is_fit_to_masks_and_the_old_loop(checkpoint, data, tmp_path):
    """``Trainer.fit_parameters`` is ``fit_to_masks`` with the run's settings, bit for bit the loop
    it replaced (copied here as it was)."""
    trainer = Trainer(TrainConfig(mode="adapt", data=str(data), init_checkpoint=str(checkpoint), out=str(tmp_path / "a"),
                                  fit_every=2, fit_iterations=4, batch_size=4), progress=False)
    batch = load_batch(trainer.data, torch.arange(4), trainer.res, trainer.device)
    with torch.no_grad():
        mesh_out = trainer.model(batch["image"]).mesh
    start = {k: v.clone() for k, v in mesh_out.tensors().items()}
    new = trainer.fit_parameters(batch, mesh_out)
    for k, v in mesh_out.tensors().items():
        assert torch.equal(v, start[k])  # the prediction is not changed
    # the loop as it was in Trainer.fit_parameters before fit_to_masks
    params = {k: v.detach().clone().requires_grad_(True) for k, v in mesh_out.tensors().items()}
    optimizer = torch.optim.Adam(params.values(), lr=trainer.config.fit_lr)
    K = batch_intrinsics(batch, trainer.res, trainer.config.focal_px, trainer.device)
    for _ in range(trainer.config.fit_iterations):
        current = MeshHeadOutput(**dict(params, phenotypes=params["phenotypes"].clamp(0.0, 1.0),
                                        scale=params["scale"].clamp_min(1e-3)))
        loss, _ = trainer.objective(mesh_prediction(current, trainer.body, K, trainer.res, trainer.renderer), batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        params["phenotypes"].clamp_(0.0, 1.0)
        params["scale"].clamp_(min=1e-3)
    for k, v in new.tensors().items():
        assert torch.equal(v, params[k].detach()), k
    # the loss falls
    history = []
    fit_to_masks(mesh_out, batch, trainer.body, trainer.renderer, trainer.objective, trainer.res,
                 trainer.config.focal_px, 10, trainer.config.fit_lr, history=history)
    assert len(history) == 10 and max(history[-3:]) < history[0]

    # A training step's own loss as the first iteration (start_loss): the same fit, bit for bit,
    # and the step's graph is kept for its backward.
    outputs = trainer.forward(trainer.net, trainer.network_input(batch))
    step_loss, _ = trainer.objective(trainer._prediction(outputs, batch), batch)
    reused = trainer.fit_parameters(batch, outputs.mesh, start_loss=step_loss)
    for k, v in new.tensors().items():
        assert torch.equal(v, reused.tensors()[k]), k
    step_loss.backward()
    assert all(p.grad is not None for p in trainer.net.parameters() if p.requires_grad)


def test_objectives_without_joint_terms_score_a_prediction_without_joints():
    # Fitting poses the vertices alone when no term reads the joints (Objective.reads_joints):
    # every such term gives the same value on that prediction as on the full one, and the terms
    # that read joints are the ones JOINT_TERMS names.
    res = 32
    body = AnnyBody()
    renderer = SilhouetteRenderer(body.faces, res)
    pose, phenotypes = PoseSampler(seed=0).sample(2)
    mesh = MeshHeadOutput(pose=pose, phenotypes=phenotypes, scale=torch.full((2,), 0.8), offset=torch.zeros(2, 2))
    K = intrinsics(1.2 * res, (res, res), batch=2)
    batch = {"mask": (torch.rand(2, 1, res, res, generator=torch.Generator().manual_seed(0)) > 0.5).float(),
             "pose": pose, "phenotypes": phenotypes, "anchor_phenotypes": phenotypes,
             "anchor_scale": torch.full((2,), 0.8)}
    full = mesh_prediction(mesh, body, K, res, renderer)
    bare = mesh_prediction(mesh, body, K, res, renderer, joints=False)
    assert bare.joints3d is None and bare.joints2d is None and torch.equal(bare.vertices, full.vertices)
    assert torch.equal(bare.silhouette, full.silhouette)
    for name in KNOWN_LOSSES:
        config = TrainConfig(mode="adapt", losses={name: 1.0}, model=ModelConfig(resolution=res))
        objective = Objective(config)
        assert objective.reads_joints == (name in JOINT_TERMS)
        if name not in JOINT_TERMS:
            assert torch.equal(objective(bare, batch)[0], objective(full, batch)[0]), name


def test_refine_losses_are_the_adapt_losses_plus_the_pixel_term():
    assert refine_losses("anny") == {**default_losses("adapt", "anny"), "l2": REFINE_PIXEL_WEIGHT}
    assert refine_losses("smpl", 0.0) == default_losses("adapt", "smpl")
    assert refine_losses("anny", 7.0)["l2"] == 7.0
    with pytest.raises(ConfigError, match="pixel weight must be >= 0"):
        refine_losses("anny", -1.0)


def _photo(data, tmp_path):
    """A 60x90 photo with two tiny-dataset people pasted in, one cut by the photo's left border
    (its crop is padded), and their masks."""
    samples = MaskposeDataset(data, fields=["image", "mask"])
    photo = np.zeros((60, 90, 3), np.uint8)
    folder = tmp_path / "masks"
    folder.mkdir()
    for k, (sample, x0) in enumerate(((samples[0], -6), (samples[1], 50)), 1):
        image = (sample["image"].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        mask = np.zeros(photo.shape[:2], np.uint8)
        lo = max(x0, 0)
        photo[14 : 14 + RES, lo : x0 + RES] = image[:, lo - x0 :]
        mask[14 : 14 + RES, lo : x0 + RES] = sample["mask"][0].numpy().astype(np.uint8)[:, lo - x0 :] * 255
        cv2.imwrite(str(folder / f"photo_{k}.png"), mask)
    cv2.imwrite(str(tmp_path / "photo.png"), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
    return tmp_path / "photo.png", folder


def test_photos_with_masks_are_refined(checkpoint, data, tmp_path):
    photo, masks = _photo(data, tmp_path)
    plain = predict_photos(checkpoint, photo, tmp_path / "plain", masks=masks, write_ply=False)
    refined = predict_photos(checkpoint, photo, tmp_path / "refined", masks=masks, write_ply=False, refine=10)
    assert (plain.refine, plain.iou_before, refined.refine, refined.people) == (0, None, 10, 2)
    assert refined.iou_after > refined.iou_before
    for k in (1, 2):
        p = json.loads((tmp_path / "plain" / f"photo_person{k}.json").read_text())
        r = json.loads((tmp_path / "refined" / f"photo_person{k}.json").read_text())
        assert "iou_before" not in p and r["iou_before"] == p["iou"] and r["iou_after"] == r["iou"]
        assert 0.0 <= r["silhouette_iou"] <= 1.0 and r["refine_iterations"] == 10
    result = CliRunner().invoke(app, ["predict", str(checkpoint), "--input", str(photo), "--masks", str(masks),
                                      "--out", str(tmp_path / "cli"), "--refine", "5", "--no-ply"])
    assert result.exit_code == 0, result.output
    assert "refined 5 iterations: mean silhouette IoU" in result.stdout


def test_the_iou_counts_only_pixels_inside_the_photo(checkpoint):
    """A silhouette on the crop's padding neither helps nor hurts the IoU."""
    predictor = CropPredictor(checkpoint)
    images = torch.rand(1, 3, RES, RES)
    record = predictor(images, torch.ones(1, RES, RES, dtype=torch.uint8))[0]
    valid = torch.zeros(1, RES, RES, dtype=torch.uint8)
    valid[:, :, RES // 2 :] = 1
    half = predictor(images, valid.clone(), valid)[0]
    sil = record["silhouette"]
    assert record["iou"] == pytest.approx(sil.mean())
    assert half["iou"] == pytest.approx(sil[:, RES // 2 :].mean())


def test_the_video_path_refines_by_default(checkpoint, tmp_path):
    from maskpose.apps.predict import ExtractionConfig, predict_video
    from maskpose.synth.video import render_static_camera_sequence

    video, _, _ = render_static_camera_sequence(tmp_path / "v.mp4", frames=24, people=1, res=(160, 120), seed=0)
    extraction = ExtractionConfig(method="knn", detect_shadows=False, warmup=8, min_track_length=5)
    default = predict_video(checkpoint, video, tmp_path / "a.mp4", tmp_path / "a", extraction=extraction)
    off = predict_video(checkpoint, video, tmp_path / "b.mp4", tmp_path / "b", extraction=extraction, refine=0)
    assert default.refine == VIDEO_REFINE and off.refine == 0 and off.iou_before is None
    assert default.samples > 10 and default.iou_after > default.iou_before
    people = [p for f in sorted((tmp_path / "a").glob("*.json")) for p in json.loads(f.read_text())["people"]]
    plain = [p for f in sorted((tmp_path / "b").glob("*.json")) for p in json.loads(f.read_text())["people"]]
    assert len(people) == len(plain) == default.samples
    assert all(p["refine_iterations"] == VIDEO_REFINE and p["iou"] == p["iou_after"] for p in people)
    assert [p["iou_before"] for p in people] == [p["iou"] for p in plain]
    assert all("iou_before" not in p for p in plain)


def test_smpl_checkpoints_refine_betas_unclamped(tmp_path, monkeypatch):
    pytest.importorskip("smplx")
    from smpl_model import write_smpl_model
    from test_smpl_training import make_smpl_dataset

    monkeypatch.delenv("MASKPOSE_SMPL_MODEL", raising=False)
    smpl_file = tmp_path / "SMPL_NEUTRAL.pkl"
    write_smpl_model(smpl_file, subdivisions=1)
    smpl_data = make_smpl_dataset(tmp_path / "smpl", smpl_file, n=4)
    checkpoint = train(TrainConfig(data=str(smpl_data), out=str(tmp_path / "run"), steps=1, batch_size=4,
                                   body="smpl", smpl_model=str(smpl_file), model=TINY), progress=False).checkpoint
    predictor = CropPredictor(checkpoint, refine=5)
    refiner = predictor.refiner
    assert isinstance(refiner, MaskRefiner) and not refiner.clamp_phenotypes
    assert "prior" not in refiner.losses and refiner.losses.get("phenotype_prior", 0) > 0
    assert predict_to_folder(checkpoint, smpl_data, tmp_path / "pred", write_ply=False, refine=5) == 4
    for record in _records(tmp_path / "pred"):
        assert record["body"] == "smpl" and len(record["betas"]) == 10 and np.isfinite(record["betas"]).all()
        assert record["refine_iterations"] == 5 and 0.0 <= record["iou_after"] <= 1.0


@pytest.mark.parametrize("case", ["negative", "folder", "no-masks", "boxes", "joint-head"])
def test_bad_refine_requests_are_one_clear_line(case, checkpoint, data, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), np.zeros((RES, RES, 3), np.uint8))
    boxes = tmp_path / "boxes.json"
    boxes.write_text("[[2, 2, 20, 30]]")
    ckpt = checkpoint
    if case == "no-masks":
        target = make_dataset(tmp_path / "nomask", 2, res=RES, seed=3, masks=False)
    if case == "joint-head":
        ckpt = _joint_head_checkpoint(data, tmp_path)
    args, expected = {
        "negative": (["--input", str(data), "--refine", "-1"], "--refine must be >= 0"),
        "folder": (["--input", str(folder), "--refine", "3"], "a folder of images has no masks"),
        "no-masks": (["--input", str(tmp_path / "nomask"), "--refine", "3"], "this dataset has no mask field"),
        "boxes": (["--input", str(folder / "a.png"), "--boxes", str(boxes), "--refine", "3"], "give --masks, not --boxes"),
        "joint-head": (["--input", str(data), "--refine", "3"], "has the joint head"),
    }[case]
    result = CliRunner().invoke(app, ["predict", str(ckpt), *args, "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], result.stderr
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").glob("*.json"))
    if case in ("folder", "no-masks"):
        with pytest.raises(DataError):
            predict_to_folder(ckpt, folder if case == "folder" else target, tmp_path / "api", refine=1)
    if case == "joint-head":
        with pytest.raises(ConfigError, match="joint head"):
            CropPredictor(ckpt, refine=2)


# ------------------------------------------------------------------ evaluate --refine N
def test_evaluate_with_refine_scores_the_bodies_fitted_to_the_masks(checkpoint, data, tmp_path):
    plain = evaluate_checkpoint(checkpoint, data)
    refined = evaluate_checkpoint(checkpoint, data, refine=20)
    assert "refine_iterations" not in plain and refined["refine_iterations"] == 20
    assert refined["silhouette_iou"] > plain["silhouette_iou"] + 5.0, (plain["silhouette_iou"], refined["silhouette_iou"])
    assert refined["mpjpe"] != plain["mpjpe"]  # every key is read from the fitted body
    assert evaluate_checkpoint(checkpoint, data, refine=0) == plain
    out = tmp_path / "m.json"
    result = CliRunner().invoke(app, ["evaluate", str(checkpoint), "--data", str(data), "--refine", "20",
                                      "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "refine_iterations" in result.output
    assert json.loads(out.read_text()) == pytest.approx(refined)


@pytest.mark.parametrize("case", ["negative", "no-masks", "joint-head", "with-spp"])
def test_bad_evaluate_refine_requests_are_one_clear_line(case, checkpoint, data, tmp_path):
    ckpt, target = checkpoint, data
    if case == "no-masks":
        target = make_dataset(tmp_path / "nomask", 2, res=RES, seed=3, masks=False)
    if case == "joint-head":
        ckpt = _joint_head_checkpoint(data, tmp_path)
    refine, expected = {"negative": ("-1", "--refine must be >= 0"), "no-masks": ("3", "this split has no masks"),
                        "joint-head": ("3", "has the joint head"), "with-spp": ("3", "do not combine")}[case]
    extra = ["--spp-data", str(data)] if case == "with-spp" else []
    result = CliRunner().invoke(app, ["evaluate", str(ckpt), "--data", str(target), "--refine", refine, *extra])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], result.stderr
    if case in ("no-masks", "joint-head"):
        with pytest.raises(DataError if case == "no-masks" else ConfigError):
            evaluate_checkpoint(ckpt, target, refine=3)

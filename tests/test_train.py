"""The training loop end to end on tiny data: learning, adaptation, resume, DDP, predict, bad input."""

import json
import os
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
import trimesh

from maskpose.apps.predict import predict_to_folder
from maskpose.data.dataset import MaskposeDataset
from maskpose.errors import ConfigError, DataError
from maskpose.models.regressor import ModelConfig
from maskpose.train.checkpoint import load_model
from maskpose.train.config import TrainConfig
from maskpose.train.evaluate import collect_predictions
from maskpose.train.loop import Trainer, train
from tiny_data import make_dataset

SMALL = ModelConfig(resolution=64, width=16, hidden=128)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    from maskpose.body.anny_body import AnnyBody

    body = AnnyBody()
    return {
        "source": make_dataset(root / "source", 48, seed=0, body=body),
        "target": make_dataset(root / "target", 24, seed=1, labels=False, body=body, tint=(90.0, 200.0, 160.0)),
        "target_test": make_dataset(root / "target_test", 16, seed=2, body=body, tint=(90.0, 200.0, 160.0)),
        "no_masks": make_dataset(root / "no_masks", 8, seed=3, labels=False, masks=False, body=body),
    }


def config(**kw) -> TrainConfig:
    base = dict(model=SMALL, batch_size=8, log_every=1, checkpoint_every=1000, lr=3e-3)
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def source_model(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("pretrain")
    trainer = Trainer(config(mode="pretrain", data=str(data["source"]), out=str(out), steps=40), progress=False)
    before = trainer.dataset_loss()
    result = trainer.run()
    result.loss_before, result.loss_after = before, trainer.dataset_loss()
    return result


def test_pretrain_lowers_training_loss(source_model):
    assert len(source_model.history) == 40
    before, after = source_model.loss_before, source_model.loss_after
    assert after < 0.9 * before, f"training loss did not fall: {before:.4f} -> {after:.4f}"


def _target_iou(model, data_path):
    ds = MaskposeDataset(data_path)
    preds = collect_predictions(model, ds)
    from maskpose.eval import silhouette_iou

    return float(silhouette_iou(preds["silhouette"], preds["mask"]))


def test_adapt_with_topology_losses_raises_target_iou(tmp_path):
    """The shipped source model adapted to thermal images with L_S + L_T on their masks only."""
    from maskpose.apps.demo import SMALL_SOURCE, DemoConfig, shipped_checkpoint
    from maskpose.synth.generator import generate

    demo = DemoConfig()
    source = shipped_checkpoint(SMALL_SOURCE)
    assert source is not None, "the package ships its source checkpoint"
    target = generate(tmp_path / "thermal", "thermal", 24, 64, seed=5, split="train", labels=False,
                      pose_source=demo.pose_source(1))
    before_model, _ = load_model(source)
    before = _target_iou(before_model, target)
    result = train(TrainConfig(mode="adapt", data=str(target), out=str(tmp_path / "adapt"), steps=30,
                               init_checkpoint=str(source), model=before_model.config, batch_size=8,
                               lr=demo.adapt.lr, losses=dict(demo.adapt.losses), fit_every=demo.adapt.fit_every,
                               fit_iterations=demo.adapt.fit_iterations), progress=False)
    after_model, _ = load_model(result.checkpoint)
    after = _target_iou(after_model, target)
    assert after > before + 0.03, f"target silhouette IoU {before:.3f} -> {after:.3f}"


def test_resume_matches_uninterrupted_run(data, tmp_path):
    straight = train(config(data=str(data["source"]), out=str(tmp_path / "a"), steps=6), progress=False)
    train(config(data=str(data["source"]), out=str(tmp_path / "b"), steps=3), progress=False)
    resumed = train(config(data=str(data["source"]), out=str(tmp_path / "b"), steps=6), progress=False)
    a, _ = load_model(straight.checkpoint)
    b, _ = load_model(resumed.checkpoint)
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(pa, pb), f"{name} differs after resume"
    assert resumed.steps == 6


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _batch_gradients(trainer: Trainer) -> dict[str, torch.Tensor]:
    """Gradients of step 0's loss (each rank on its share of the global batch; DDP averages)."""
    batch = trainer._rank_batch(trainer.data, 0)
    loss, _ = trainer.objective(trainer.predict(batch), batch)
    loss.backward()
    grads = {k: p.grad.clone() for k, p in trainer.model.named_parameters() if p.grad is not None}
    grads["batch_index"] = batch["index"].clone()
    return grads


def _ddp_worker(rank, world, port, cfg_dict, out_file):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    trainer = Trainer(TrainConfig.from_dict(cfg_dict), progress=False)
    grads = _batch_gradients(trainer)
    torch.save(grads, f"{out_file}.{rank}")
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()


def test_ddp_two_processes_match_one_process(data, tmp_path):
    """Adam turns tiny float differences of near-zero gradients into full-size steps, so the
    comparison is on the averaged gradients of the same global batch, not on updated weights."""
    cfg = config(data=str(data["source"]), steps=1, out=str(tmp_path / "ddp"))
    ctx = mp.get_context("spawn")
    port = _free_port()
    out_file = tmp_path / "ddp_grads.pt"
    procs = [ctx.Process(target=_ddp_worker, args=(r, 2, port, cfg.to_dict(), str(out_file))) for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
        assert p.exitcode == 0
    ddp = torch.load(f"{out_file}.0", weights_only=True)
    other_rank = torch.load(f"{out_file}.1", weights_only=True)
    torch.set_num_threads(1)
    single = _batch_gradients(Trainer(config(data=str(data["source"]), steps=1, out=str(tmp_path / "one")),
                                      progress=False))
    # Each rank saw its own half of the global batch, and the halves make up the whole.
    halves = [ddp.pop("batch_index").tolist(), other_rank.pop("batch_index").tolist()]
    assert len(halves[0]) == len(halves[1]) == cfg.batch_size // 2 and not set(halves[0]) & set(halves[1])
    assert sorted(halves[0] + halves[1]) == sorted(single.pop("batch_index").tolist())
    assert set(ddp) == set(single) and len(single) > 10
    for name, grad in single.items():
        assert grad.abs().max() > 0, f"{name} has no gradient"
        torch.testing.assert_close(ddp[name], grad, atol=1e-6, rtol=1e-4, msg=f"{name} differs")


def test_predict_writes_json_and_ply_that_load_back(data, source_model, tmp_path):
    count = predict_to_folder(source_model.checkpoint, data["target_test"], tmp_path / "pred")
    assert count == 16
    record = json.loads((tmp_path / "pred" / "000003.json").read_text())
    assert np.asarray(record["joints3d_m"]).shape == (17, 3)
    mesh = trimesh.load(tmp_path / "pred" / "000003.ply", process=False)
    assert mesh.vertices.shape == (13718, 3) and mesh.faces.shape == (27420, 3)
    # The PLY is the predicted body: its pelvis-relative extent is that of a person.
    assert 1.0 < np.ptp(mesh.vertices[:, 1]) < 2.3
    assert (tmp_path / "pred" / "000003_overlay.png").exists()


def test_bad_input_is_refused_before_training(data, source_model, tmp_path):
    with pytest.raises(ConfigError, match="unknown loss"):
        Trainer(config(mode="adapt", data=str(data["target"]), losses={"chamfr": 1.0}, out=str(tmp_path / "x")))
    with pytest.raises(DataError, match="needs masks|lacks field"):
        Trainer(config(mode="adapt", data=str(data["no_masks"]), out=str(tmp_path / "y"),
                       init_checkpoint=str(source_model.checkpoint)))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no meta.json"):
        Trainer(config(data=str(empty), out=str(tmp_path / "z")))
    other = ModelConfig(resolution=64, width=32, hidden=128)
    with pytest.raises(ConfigError, match="width is 16 in the checkpoint"):
        Trainer(TrainConfig(mode="adapt", data=str(data["target"]), out=str(tmp_path / "w"), model=other,
                            init_checkpoint=str(source_model.checkpoint)))
    with pytest.raises(ConfigError, match="supervised losses"):
        Trainer(config(mode="adapt", data=str(data["target"]), losses={"joints3d": 1.0}, out=str(tmp_path / "v")))
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_adapt_mixes_supervised_source_batches(data, source_model, tmp_path):
    cfg = config(mode="adapt", data=str(data["target"]), out=str(tmp_path / "mix"), steps=4,
                 init_checkpoint=str(source_model.checkpoint), source_data=str(data["source"]), source_ratio=0.5)
    history = train(cfg, progress=False).history
    mixed = [h for h in history if "source_joints3d" in h]
    # The draw is seeded per step: some steps take a source batch, some do not.
    assert 0 < len(mixed) < len(history)
    assert all(h["loss"] > h["source_joints3d"] for h in mixed)


def test_missing_joint_labels_are_ignored_not_nan():
    from maskpose.train.objectives import _masked_l1

    pred = torch.zeros(2, 17, 3, requires_grad=True)
    gt = torch.ones(2, 17, 3)
    gt[0, 5] = float("nan")  # a joint the source annotation lacks
    loss = _masked_l1(pred, gt)
    loss.backward()
    assert torch.isfinite(loss) and loss.item() == pytest.approx(1.0)
    assert pred.grad[0, 5].abs().sum() == 0 and torch.isfinite(pred.grad).all()
    assert _masked_l1(pred, torch.full((2, 17, 3), float("nan"))).item() == 0.0


def test_topology_binarization_option_reaches_the_losses():
    """Same hard forward value either way; the soft gradient stays near the 0.5 level set while the
    straight-through one also reaches saturated pixels."""
    from maskpose.train.objectives import Objective
    from maskpose.train.pipeline import Prediction

    with pytest.raises(ConfigError, match="topology_binarization"):
        TrainConfig(mode="adapt", data="x", topology_binarization="hard").validate()
    with pytest.raises(ConfigError, match="topology_temperature"):
        TrainConfig(mode="adapt", data="x", topology_temperature=0.0).validate()
    assert TrainConfig(mode="adapt", data="x").validate().topology_binarization == "soft"
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    # A soft disc (radius 8, edge 1 px wide) and a target disc moved 4 px to the right.
    soft = torch.sigmoid(8.0 - ((yy - 16) ** 2 + (xx - 14) ** 2).sqrt())[None, None]
    mask = (((yy - 16) ** 2 + (xx - 18) ** 2).sqrt() <= 8).float()[None, None]
    values, grads = {}, {}
    for mode in ("straight_through", "soft"):
        objective = Objective(TrainConfig(mode="adapt", data="x", losses={"ls": 1.0, "lt": 1.0},
                                          topology_binarization=mode, topology_temperature=0.1))
        silhouette = soft.clone().requires_grad_(True)
        pred = Prediction(joints3d=torch.zeros(1, 17, 3), joints2d=torch.zeros(1, 17, 2), silhouette=silhouette)
        values[mode], _ = objective(pred, {"mask": mask})
        values[mode].backward()
        grads[mode] = silhouette.grad[0, 0]
    assert torch.allclose(values["soft"], values["straight_through"])
    saturated = (soft[0, 0] - 0.5).abs() > 0.45
    share = {mode: float(g[saturated].abs().mean() / g.abs().max()) for mode, g in grads.items()}
    assert share["straight_through"] > 0.01
    assert share["soft"] < 0.2 * share["straight_through"]  # the soft gradient fades away from the edge
    # both move the disc toward the target: grow on its right edge, shrink on its left
    for g in grads.values():
        assert g[16, 22] < 0 < g[16, 6]


def test_init_checkpoint_model_and_focal_are_inherited_unless_the_config_sets_others(data, source_model, tmp_path):
    """Library and CLI alike: an unset model / focal comes from --init; a different one is refused."""
    from typer.testing import CliRunner

    from maskpose.cli import app
    from maskpose.train.checkpoint import load_checkpoint

    saved = load_checkpoint(source_model.checkpoint)["config"]
    plain = TrainConfig(mode="adapt", data=str(data["target"]), out=str(tmp_path / "lib"),
                        init_checkpoint=str(source_model.checkpoint), batch_size=4, steps=1)
    inherited = plain.inherit_from_checkpoint(saved)
    assert inherited.model == SMALL and inherited.focal == saved["focal"] and plain.model == ModelConfig()
    assert Trainer(plain, progress=False).config.model == SMALL  # train() inherits too
    with pytest.raises(ConfigError, match="focal is 0.0 in the checkpoint, 120.0 in the config"):
        Trainer(TrainConfig(**{**vars(plain), "focal": 120.0}), progress=False)
    # A model the user set explicitly, even to the defaults, is compared, not overwritten.
    with pytest.raises(ConfigError, match="width is 16 in the checkpoint, 32 in the config"):
        plain.inherit_from_checkpoint(saved, explicit={"model"})

    runner = CliRunner()
    base = ["adapt", "--init", str(source_model.checkpoint), "--data", str(data["target"]), "--steps", "1",
            "--batch-size", "4"]
    ok = runner.invoke(app, [*base, "--out", str(tmp_path / "cli")])
    assert ok.exit_code == 0, ok.output
    assert load_checkpoint(tmp_path / "cli" / "checkpoint.pt")["config"]["model"] == SMALL.to_dict()
    yaml_file = tmp_path / "model.yaml"
    yaml_file.write_text("model: {resolution: 64}\n")  # a partial model: the other fields are defaults
    refused = runner.invoke(app, [*base, "--out", str(tmp_path / "cli2"), "--config", str(yaml_file)])
    assert refused.exit_code == 2
    assert "width is 16 in the checkpoint, 32 in the config" in refused.output
    assert not (tmp_path / "cli2").exists()


def test_joint_head_outputs_and_weak_perspective_camera():
    """The joint head reads landmarks and a weak-perspective camera straight from one MLP (no
    heatmaps): near the rest values at initialisation, and exactly the last layer's bias when its
    weights are zero; its projection maps a landmark at the camera offset to the crop centre."""
    from maskpose.models.regressor import MEAN_SCALE, JointHead, JointHeadOutput, PoseRegressor, RegressorOutput
    from maskpose.train.pipeline import joint_prediction

    torch.manual_seed(0)
    head = JointHead(feature_dim=8, num_landmarks=20, hidden=16)
    out = head(torch.randn(3, 8))
    assert isinstance(out, JointHeadOutput)
    assert out.landmarks.shape == (3, 20, 3) and out.scale.shape == (3,) and out.offset.shape == (3, 2)
    assert out.landmarks.abs().max() < 0.05 and out.offset.abs().max() < 0.05
    assert torch.allclose(out.scale, torch.full((3,), MEAN_SCALE), rtol=0.05)

    bias = torch.randn(20 * 3 + 3) * 0.1
    with torch.no_grad():
        head.mlp[-1].weight.zero_()
        head.mlp[-1].bias.copy_(bias)
    out = head(torch.randn(2, 8))
    assert torch.equal(out.landmarks, bias[:60].reshape(20, 3).expand(2, -1, -1))
    assert torch.allclose(out.scale, MEAN_SCALE * torch.exp(bias[60]).expand(2))
    assert torch.equal(out.offset, bias[61:63].expand(2, -1))

    res = 32
    landmarks = torch.zeros(1, 20, 3)
    landmarks[0, 1, :2] = torch.tensor([0.5, -0.25])  # metres from the root
    camera = JointHeadOutput(landmarks=landmarks, scale=torch.tensor([0.8]), offset=torch.zeros(1, 2))
    pred = joint_prediction(camera, res)
    assert pred.joints3d.shape == (1, 17, 3) and pred.joints2d.shape == (1, 20, 2)
    centre = (res - 1) / 2  # pixel-centre convention: the crop centre is (res - 1) / 2
    assert torch.allclose(pred.joints2d[0, 0], torch.tensor([centre, centre]))
    expected = (0.8 * torch.tensor([0.5, -0.25]) + 1.0) * res / 2 - 0.5
    assert torch.allclose(pred.joints2d[0, 1], expected)

    model = PoseRegressor(ModelConfig(resolution=32, width=8, hidden=16, heads=("joints",)))
    result = model(torch.rand(2, 3, 32, 32))
    assert isinstance(result, RegressorOutput) and result.mesh is None
    assert result.joints.landmarks.shape == (2, 34, 3)


@pytest.mark.parametrize("res", [32, 96])
def test_load_batch_rescales_joints2d_and_intrinsics_with_the_image(data, res):
    """Resizing a 64 px dataset to ``res``: the resized K projects the 3D joints onto the resized
    2D joints, both following x' = (x + 0.5) * f - 0.5 (pixel centres)."""
    from maskpose.data.batching import load_batch
    from maskpose.render.camera import project

    ds = MaskposeDataset(data["source"])
    indices = torch.arange(4)
    native = load_batch(ds, indices, 64, "cpu")
    resized = load_batch(ds, indices, res, "cpu")
    f = res / 64
    assert resized["image"].shape == (4, 3, res, res) and resized["mask"].shape == (4, 1, res, res)
    assert set(resized["mask"].unique().tolist()) <= {0.0, 1.0}
    assert torch.allclose(resized["joints2d"], (native["joints2d"] + 0.5) * f - 0.5, atol=1e-4)
    K, K0 = resized["intrinsics"], native["intrinsics"]
    assert torch.allclose(K[:, 0, 0], K0[:, 0, 0] * f) and torch.allclose(K[:, 1, 1], K0[:, 1, 1] * f)
    assert torch.allclose(K[:, :2, 2], (K0[:, :2, 2] + 0.5) * f - 0.5)
    assert torch.allclose(project(resized["joints3d"], K), resized["joints2d"], atol=1e-3)
    assert torch.equal(resized["joints3d"], native["joints3d"])  # 3D labels do not depend on the crop size


def test_model_config_from_partial_mapping_and_unknown_keys(tmp_path):
    assert ModelConfig.from_dict({"resolution": 32}) == ModelConfig(resolution=32)
    assert ModelConfig.from_dict({"heads": ["joints"], "blocks": [2, 2]}).blocks == (2, 2)
    with pytest.raises(ConfigError, match=r"unknown model key\(s\) \['widht'\]"):
        ModelConfig.from_dict({"widht": 8})
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text("data: x\nmodel: {resolution: 32}\n")
    assert TrainConfig.from_yaml(yaml_file).model == ModelConfig(resolution=32)
    yaml_file.write_text("data: x\nmodel: {resolutoin: 32}\n")
    with pytest.raises(ConfigError, match="unknown model key"):
        TrainConfig.from_yaml(yaml_file)


def test_demo_templates_rebuild_the_shipped_source_config_and_share_the_pose_distribution(tmp_path):
    """The demo's source run is the shipped checkpoint's (every stored key but the paths), and the
    demo's and the benchmark's splits draw from the one ``PoseDistribution``."""
    from maskpose.apps.demo import DemoConfig, shipped_checkpoint, source_config
    from maskpose.bench.adapt import BenchConfig
    from maskpose.body.sampler import PoseDistribution, PoseSampler
    from maskpose.train.checkpoint import load_checkpoint

    stored = load_checkpoint(shipped_checkpoint())["config"]
    rebuilt = source_config(DemoConfig(), tmp_path / "d", tmp_path / "o").to_dict()
    assert {k: v for k, v in stored.items() if k not in ("data", "out") and rebuilt[k] != v} == {}
    # The realistic demo adapts the shipped 128 px real-photo model: its network is that model's.
    realistic = DemoConfig.realistic()
    photo = shipped_checkpoint(realistic.shipped())
    if photo is not None:
        assert load_checkpoint(photo)["config"]["model"] == realistic.model().to_dict()
    assert DemoConfig().poses == BenchConfig().poses == PoseDistribution(spread=0.6, max_yaw_deg=45.0)
    explicit = PoseSampler(seed=7, spread=0.6, global_orient_range={"yaw": (-45.0, 45.0), "pitch": (-10.0, 10.0),
                                                                    "roll": (-8.0, 8.0)})
    for a, b in zip(PoseDistribution().sampler(7).sample(3), explicit.sample(3)):
        assert torch.equal(a, b)
    assert DemoConfig().adapt.fit_every == 4 and BenchConfig().adapt.fit_every == 0
    assert BenchConfig.full().adapt.fit_every == 4


def test_joint_metrics_score_the_labelled_joints_and_match_pose_metrics_when_all_are():
    """``evaluate`` on real data: NaN marks a missing joint (the importers write it); each sample is
    scored on its labelled joints. With every joint labelled, the numbers are pose_metrics' own."""
    from maskpose.conventions import H36M_FLIP
    from maskpose.eval import ambiguity_ratio, flip_aware, mpjpe, pa_mpjpe, pose_metrics
    from maskpose.train.evaluate import joint_metrics

    gen = torch.Generator().manual_seed(0)
    gt = torch.randn(12, 17, 3, generator=gen) * 0.3
    pred = gt + 0.05 * torch.randn(12, 17, 3, generator=gen)
    full = joint_metrics(pred, gt)
    expected = pose_metrics(pred, gt) | {
        "mpjpe_flip": float(flip_aware(mpjpe, pred, gt)), "pa_mpjpe_flip": float(flip_aware(pa_mpjpe, pred, gt)),
        "ambiguity_ratio": 100.0 * ambiguity_ratio(pred, gt)}
    assert {k: full[k] for k in expected} == expected and full["num_scored"] == 12

    # spine (7) and head top (10) unknown on every sample, as the COCO importer writes them;
    # one sample also misses its pelvis and cannot be scored
    missing = gt.clone()
    missing[:, [7, 10]] = float("nan")
    missing[3, 0] = float("nan")
    keep = [j for j in range(17) if j not in (7, 10)]
    rows = [i for i in range(12) if i != 3]
    flip = [keep.index(H36M_FLIP[j]) for j in keep]
    sub_pred, sub_gt = pred[rows][:, keep], gt[rows][:, keep]
    partial = joint_metrics(pred, missing)
    assert partial["num_scored"] == 11
    assert partial["mpjpe"] == pytest.approx(float(mpjpe(sub_pred, sub_gt)), rel=1e-6)
    assert partial["pa_mpjpe"] == pytest.approx(float(pa_mpjpe(sub_pred, sub_gt)), rel=1e-6)
    assert partial["pa_mpjpe_flip"] == pytest.approx(float(flip_aware(pa_mpjpe, sub_pred, sub_gt, flip)), rel=1e-6)
    with pytest.raises(DataError, match="no sample has its pelvis"):
        joint_metrics(pred, torch.full_like(gt, float("nan")))

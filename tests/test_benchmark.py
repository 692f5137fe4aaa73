"""The adaptation benchmark (micro configuration end to end, resume) and the UAP domains."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from maskpose.bench import adapt as bench
from maskpose.bench.adapt import BenchConfig, run_adapt_benchmark
from maskpose.conventions import seed_key
from maskpose.errors import ConfigError

MICRO = BenchConfig().updated(dict(
    resolution=32, width=8, hidden=32, source_train=12, source_heldout=8, source={"steps": 3, "batch_size": 4},
    targets=("uap-16",), target_train=6, target_test=5, uap_steps=2, uap_batch=4,
    variants=("source", "l2", "ls_lt"), seeds=(0,), adapt={"steps": 2, "batch_size": 2}, curve_points=2,
    curve_variants=("ls_lt",), eval_batch=8,
))


@pytest.fixture(scope="module")
def micro_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    lines: list[str] = []
    payload = run_adapt_benchmark(MICRO, out / "run", json_path=out / "result.json", printer=lines.append)
    return out, payload, lines


def test_micro_benchmark_writes_json_table_and_plots(micro_run):
    out, payload, lines = micro_run
    run = out / "run"
    saved = json.loads((out / "result.json").read_text())
    assert saved["complete"] and saved["results"] == payload["results"]
    row = saved["results"]["uap-16"]
    for variant in ("source", "l2", "ls_lt"):
        entry = row[variant]
        for key in ("pa_mpjpe_mean", "pa_mpjpe_std", "mpjpe_mean", "mpjpe_std", "silhouette_iou_mean"):
            assert np.isfinite(entry[key]), (variant, key)
        assert set(entry["per_seed"]) == {"0"}
        assert entry["per_seed"]["0"]["pa_mpjpe"] == entry["pa_mpjpe_mean"]
    # the curve variant is evaluated along its run; its last point is the cell's result
    curve = saved["cells"]["uap-16|ls_lt|0"]["curve"]
    assert [p["step"] for p in curve] == [1, 2]
    assert curve[-1]["pa_mpjpe"] == row["ls_lt"]["pa_mpjpe_mean"]
    table = (run / "bench_adapt.md").read_text()
    body = [line for line in table.splitlines() if line.startswith("| ")]
    assert "uap-16" in body[0]
    assert [line.split("|")[1].strip() for line in body[1:4]] == ["source", "l2", "ls_lt"]
    assert "±" in body[1]
    assert (run / "bench_adapt_bars.png").stat().st_size > 0
    assert (run / "bench_adapt_steps.png").stat().st_size > 0
    assert any("cell" in line for line in lines)
    # the UAP of the target respects its budget
    delta = np.load(run / "uap" / "uap-16.npy")
    assert np.abs(delta).max() <= 16 / 255


def test_resume_skips_finished_cells(micro_run, monkeypatch):
    out, payload, _ = micro_run
    run = out / "run"
    state = json.loads((run / "bench_adapt.json").read_text())
    kept = state["cells"]["uap-16|source|0"]
    del state["cells"]["uap-16|l2|0"]  # as if the run had stopped before this cell
    (run / "bench_adapt.json").write_text(json.dumps(state))
    calls = []
    original = bench.run_cell

    def counting(cfg, target, variant, seed, *args, **kwargs):
        calls.append((target, variant, seed))
        return original(cfg, target, variant, seed, *args, **kwargs)

    monkeypatch.setattr(bench, "run_cell", counting)
    lines: list[str] = []
    again = run_adapt_benchmark(MICRO, run, printer=lines.append, plots=False)
    assert calls == [("uap-16", "l2", 0)]
    assert again["complete"] and again["cells"]["uap-16|source|0"] == kept
    assert any("reusing" in line for line in lines)  # data and the source model are reused too
    # a different configuration in the same folder is refused
    from maskpose.errors import ConfigError

    with pytest.raises(ConfigError, match="another configuration"):
        run_adapt_benchmark(MICRO.updated({"adapt": {"lr": 1e-3}}), run, printer=lines.append, plots=False)
    # a folder written before a run field existed resumes when the field is at its default, and only then
    state = json.loads((run / "bench_adapt.json").read_text())
    del state["config"]["adapt"]["false_positive_weight"]
    (run / "bench_adapt.json").write_text(json.dumps(state))
    assert run_adapt_benchmark(MICRO, run, printer=lines.append, plots=False)["complete"]
    with pytest.raises(ConfigError, match=r"another configuration.*false_positive_weight"):
        run_adapt_benchmark(MICRO.updated({"adapt": {"false_positive_weight": 0.5}}), run, printer=lines.append,
                            plots=False)


def test_bench_config_constructors():
    quick, full = BenchConfig.quick().validate(), BenchConfig.full().validate()
    assert set(quick.targets) < set(full.targets) == set(bench.ALL_TARGETS)
    assert quick.variants[:4] == ("source", "l2", "ls", "ls_lt") and "oracle" in quick.variants
    assert full.variants == bench.VARIANT_ORDER and full.seeds == (0, 1)
    with pytest.raises(Exception, match="unknown variant"):
        replace(quick, variants=("nope",)).validate()


# ---------------------------------------------------------------------- UAP
@pytest.fixture(scope="module")
def uap_setup(micro_run):
    from maskpose.body.anny_body import AnnyBody
    from maskpose.data.dataset import MaskposeDataset
    from maskpose.train.checkpoint import load_model

    out, payload, _ = micro_run
    model, _ = load_model(payload["source_checkpoint"])
    data = MaskposeDataset(out / "run" / "data" / "studio" / "heldout")
    return model, data, AnnyBody()


def test_uap_respects_the_budget_and_is_deterministic(uap_setup):
    from maskpose.train.attack import compute_uap

    model, data, body = uap_setup
    for eps in (4, 8):
        a = compute_uap(model, data, eps, steps=3, batch_size=4, seed=1, body=body)
        b = compute_uap(model, data, eps, steps=3, batch_size=4, seed=1, body=body)
        assert a.dtype == np.float32 and a.shape == (32, 32, 3)
        assert float(np.abs(a).max()) <= eps / 255  # exactly, compared in float64
        np.testing.assert_array_equal(a, b)
    c = compute_uap(model, data, 8, steps=3, batch_size=4, seed=2, body=body)
    assert not np.array_equal(c, a)
    assert all(p.requires_grad for p in model.parameters())  # the model is left as it was


def test_uap_beats_random_sign_noise(uap_setup):
    from maskpose.synth.uap import random_sign_perturbation
    from maskpose.train.attack import compute_uap, perturbed_error

    model, data, body = uap_setup
    eps = 16
    delta = compute_uap(model, data, eps, steps=12, batch_size=8, seed=0, body=body)
    clean = perturbed_error(model, data, None, body=body)
    attacked = perturbed_error(model, data, delta, body=body)
    noise = [perturbed_error(model, data, random_sign_perturbation(delta.shape, eps, seed=s), body=body)
             for s in range(3)]
    assert attacked - clean > max(noise) - clean
    assert attacked > clean


def test_uap_domain_adds_the_perturbation_and_clips():
    from maskpose.errors import ConfigError
    from maskpose.synth.domains import apply_domain
    from maskpose.synth.uap import random_sign_perturbation

    images = np.array([[[[0, 128, 255]] * 4] * 4], dtype=np.uint8)  # (1, 4, 4, 3)
    delta = random_sign_perturbation((4, 4, 3), 8, seed=0) * 255  # pixel units
    out = apply_domain("uap-8", images, perturbation=delta)
    expected = np.clip(np.rint(images.astype(np.float32) + delta[None]), 0, 255)
    np.testing.assert_array_equal(out, expected)
    assert out.dtype == np.uint8 and out.max() <= 255
    with pytest.raises(ConfigError, match="needs a perturbation"):
        apply_domain("uap-4", images)
    with pytest.raises(ConfigError, match="budget"):
        apply_domain("uap-4", images, perturbation=delta)  # 8 > 4


def test_mas_ablation_switches_reach_the_objective():
    from maskpose.models.regressor import ModelConfig
    from maskpose.train.config import TrainConfig
    from maskpose.train.objectives import Objective

    model = ModelConfig(resolution=32, width=8, hidden=32, heads=("joints",))
    full = Objective(TrainConfig(mode="train-unsup", data="x", model=model))
    bare = Objective(TrainConfig(mode="train-unsup", data="x", model=model, mas_physique=False, mas_geodesic=False))
    assert full.mas.physique is not None and full.mas_geodesic
    assert bare.mas.physique is None and not bare.mas_geodesic
    assert len(list(bare.parameters())) == 0 < len(list(full.parameters()))
    torch.manual_seed(0)
    joints = torch.rand(2, 34, 2) * 32
    mask = (torch.rand(2, 1, 32, 32) > 0.5).float()
    geodesic = torch.rand(2, 1, 32, 32) * 5
    from maskpose.train.pipeline import Prediction

    pred = Prediction(joints3d=torch.zeros(2, 17, 3), joints2d=joints)
    with_g = bare(pred, {"mask": mask, "geodesic": geodesic})[0]
    without = bare(pred, {"mask": mask})[0]
    assert torch.allclose(with_g, without)  # G is ignored when switched off


def test_bench_config_from_yaml_overrides_and_refuses_bad_files(tmp_path):
    from maskpose.errors import ConfigError

    good = tmp_path / "b.yaml"
    good.write_text("unsup: {steps: 12}\nunsup_seeds: [3, 4]\nadapt: {topology_binarization: straight_through}\n"
                    "poses: {spread: 0.5}\n")
    cfg = BenchConfig.quick().updated_from_yaml(good).validate()
    assert cfg.unsup.steps == 12 and cfg.unsup_seeds == (3, 4) and cfg.adapt.topology_binarization == "straight_through"
    assert cfg.width == BenchConfig.quick().width  # untouched fields keep the base's value
    assert cfg.unsup.batch_size == BenchConfig.quick().unsup.batch_size and cfg.adapt.steps == 60
    assert cfg.poses.spread == 0.5 and cfg.poses.max_yaw_deg == 45.0
    moved = tmp_path / "m.yaml"
    moved.write_text("adapt_steps: 12\n")
    with pytest.raises(ConfigError, match=r"adapt_steps -> adapt\.steps"):
        BenchConfig.full().updated_from_yaml(moved)
    nested_bad = tmp_path / "n.yaml"
    nested_bad.write_text("adapt: {stepz: 12}\n")
    with pytest.raises(ConfigError, match="unknown BenchConfig adapt key"):
        BenchConfig.full().updated_from_yaml(nested_bad)
    bad_key = tmp_path / "k.yaml"
    bad_key.write_text("unsup_stepz: 12\n")
    with pytest.raises(ConfigError, match="unknown BenchConfig key"):
        BenchConfig.full().updated_from_yaml(bad_key)
    not_mapping = tmp_path / "l.yaml"
    not_mapping.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        BenchConfig.full().updated_from_yaml(not_mapping)
    with pytest.raises(ConfigError, match="does not exist"):
        BenchConfig.full().updated_from_yaml(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="topology_binarization"):
        BenchConfig.quick().updated({"adapt": {"topology_binarization": "hard"}}).validate()
    # YAML 1.2 floats: "1e-3" is a number (PyYAML alone reads it as a string), in both config trees
    exponent = tmp_path / "e.yaml"
    exponent.write_text("oracle_lr: 1e-3\nprior_weight: 5E-2\nadapt: {lr: 3e-4, fit_lr: 2.5e-2}\n")
    cfg = BenchConfig.quick().updated_from_yaml(exponent).validate()
    assert (cfg.oracle_lr, cfg.prior_weight, cfg.adapt.lr, cfg.adapt.fit_lr) == (1e-3, 5e-2, 3e-4, 2.5e-2)
    for bad in ({"oracle_lr": "fast"}, {"oracle_lr": 0.0}, {"prior_weight": -1.0}, {"oracle_lr": float("nan")}):
        with pytest.raises(ConfigError, match=next(iter(bad))):  # refused before any data is generated
            BenchConfig.quick().updated(bad).validate()


def test_micro_unsup_benchmark_runs_the_two_stage_protocol_on_both_heads(tmp_path):
    """One stage-1 model per head; stage 2 from it with source batches; SPP on the full model; the
    control from scratch; ``results[target][head][variant]`` with the documented keys."""
    from maskpose.bench.unsup import run_unsup_benchmark
    from maskpose.train.checkpoint import load_checkpoint

    micro = MICRO.updated(dict(unsup_train=8, unsup_target_train=8, unsup_test=5, unsup_stage1={"steps": 2, "batch_size": 4},
                               unsup={"steps": 2, "batch_size": 2}, unsup_seeds=(0,), unsup_targets=("thermal",),
                               unsup_variants=("stage1", "full", "no_psi_no_g", "no_masks", "spp_5", "scratch")))
    lines: list[str] = []
    payload = run_unsup_benchmark(micro, tmp_path / "run", json_path=tmp_path / "u.json", printer=lines.append)
    assert payload["complete"]
    saved = json.loads((tmp_path / "u.json").read_text())
    for head in ("joints", "mesh"):
        for variant in ("stage1", "full", "no_psi_no_g", "no_masks", "spp_5", "scratch"):
            entry = saved["results"]["thermal"][head][variant]
            for key in ("mpjpe_mean", "mpjpe_flip_mean", "pa_mpjpe_mean", "ambiguity_ratio_mean"):
                assert np.isfinite(entry[key]), (head, variant, key)
            assert entry["mpjpe_flip_mean"] <= entry["mpjpe_mean"] + 1e-6  # the flip picks the better side
        runs = tmp_path / "run" / "runs"
        stage1 = runs / "stage1" / head / "checkpoint.pt"
        full = load_checkpoint(runs / "thermal" / head / "full" / "seed0" / "checkpoint.pt")["config"]
        assert full["init_checkpoint"] == str(stage1) and full["source_ratio"] == 1.0
        assert full["mas_style"] == "released" and full["mas_skeleton_term"] == "one_sided"
        assert full["losses"] == {"mas": micro.unsup_mas_weight, "symmetry": micro.unsup_symmetry_weight,
                                  **({"prior": micro.prior_weight} if head == "mesh" else {})}
        bare = load_checkpoint(runs / "thermal" / head / "no_psi_no_g" / "seed0" / "checkpoint.pt")["config"]
        assert not bare["mas_physique"] and not bare["mas_geodesic"]
        assert "mas" not in load_checkpoint(runs / "thermal" / head / "no_masks" / "seed0" / "checkpoint.pt")["config"]["losses"]
        scratch = load_checkpoint(runs / "thermal" / head / "scratch" / "seed0" / "checkpoint.pt")["config"]
        assert scratch["init_checkpoint"] == "" and scratch["source_ratio"] == 0.0
    assert saved["config"]["unsup_heads"] == ["joints", "mesh"]
    assert load_checkpoint(tmp_path / "run" / "runs" / "stage1" / "joints" / "checkpoint.pt")["config"]["model"][
        "joint_head"] == "integral"
    assert any("two-stage protocol" in line for line in lines)
    # the run resumes: every cell is found and nothing is trained again
    again = run_unsup_benchmark(micro, tmp_path / "run", printer=lines.append)
    assert again["cells"] == payload["cells"]
    with pytest.raises(ConfigError, match="unsup_heads"):
        replace(micro, unsup_heads=("both",)).validate()
    with pytest.raises(ConfigError, match="unsup_head -> unsup_heads"):
        micro.updated({"unsup_head": "mesh"})
    with pytest.raises(ConfigError, match="unsup target"):
        replace(micro, unsup_targets=("uap-8",)).validate()


def test_degraded_target_adapts_on_degraded_masks_and_tests_on_clean_labels(tmp_path):
    """``<domain>+<degradation>``: the train split's masks are those of the domain, eroded; the
    test split is the domain's own (the same bytes as ``occluded``'s)."""
    from maskpose.data.dataset import read_meta
    from maskpose.synth.degrade import degrade_masks
    from maskpose.synth.generator import generate

    cfg = MICRO.updated(dict(targets=("occluded+erode2",), variants=("source",), curve_variants=()))
    payload = run_adapt_benchmark(cfg, tmp_path / "run", json_path=tmp_path / "r.json")
    assert np.isfinite(payload["results"]["occluded+erode2"]["source"]["pa_mpjpe_mean"])
    train, test = (tmp_path / "run" / "data" / "occluded+erode2" / split for split in ("train", "test"))
    assert read_meta(train)["attrs"]["mask_degradation"]["name"] == "erode2"
    clean = generate(tmp_path / "clean", "occluded", cfg.target_train, cfg.resolution, 0, "train", True,
                     pose_source=cfg.poses.sampler(seed_key("0/occluded/train")))
    expected = degrade_masks(np.load(clean / "mask.npy"), "erode2", np.random.default_rng(0))
    np.testing.assert_array_equal(np.load(train / "mask.npy"), expected)
    assert np.load(test / "mask.npy").sum() > 0 and "mask_degradation" not in read_meta(test).get("attrs", {})


def test_unknown_target_degradation_is_refused():
    with pytest.raises(bench.ConfigError, match="blur3"):
        MICRO.updated(dict(targets=("thermal+blur3",))).validate()

"""``maskpose bench step`` and ``bench train``: they run at tiny sizes, report every key, and their
times and FLOPs are consistent. No timing thresholds here: speed goals belong in the benchmarks."""

from __future__ import annotations

import json
import math

import pytest
import torch
from typer.testing import CliRunner

from maskpose.bench.step import STAGES, bench_step
from maskpose.cli import app

COLUMNS = ("pretrain", "adapt", "adapt_fitting_step", "adapt_fitting_cycle")


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def _check_step(result: dict) -> None:
    assert {"ratio", "ratio_with_fitting", "ratio_fitting_step", "breakdown", "pretrain", "adapt",
            "adapt_fitting"} <= set(result)
    for key in ("ratio", "ratio_with_fitting", "ratio_fitting_step"):
        assert _positive(result[key]), key
    fit = result["adapt_fitting"]
    for value in (result["pretrain"]["step_ms"], result["adapt"]["step_ms"], fit["fitting_step_ms"], fit["cycle_ms"],
                  *fit["steps_ms"]):
        assert _positive(value)
    assert len(fit["steps_ms"]) == fit["fit_every"] == 4 and fit["fit_iterations"] == 8
    assert result["ratio"] == pytest.approx(result["adapt"]["step_ms"] / result["pretrain"]["step_ms"], rel=1e-3)
    assert result["ratio_with_fitting"] == pytest.approx(fit["cycle_ms"] / result["pretrain"]["step_ms"], rel=1e-3)
    assert result["pretrain"]["losses"] == {"joints3d": 1.0, "joints2d": 1.0, "params": 0.5}
    assert set(result["adapt"]["losses"]) == {"ls", "lt", "prior"}
    for column in COLUMNS:
        stages = result["breakdown"][column]
        assert set(stages) == {*STAGES, "total"}
        assert all(math.isfinite(v) and v >= 0 for v in stages.values()), (column, stages)
        assert _positive(stages["total"])
        # every step runs the network forward and backward, the body model and the optimiser
        for stage in ("encoder_forward", "encoder_backward", "body_forward", "optimizer"):
            assert _positive(stages[stage]), (column, stage)
        measured = sum(v for k, v in stages.items() if k not in ("total", "other"))
        assert measured <= stages["total"] * 1.05 + 0.5, (column, stages)
    for column in COLUMNS[1:]:  # adaptation: the renderer and the mask losses
        for stage in ("render_forward", "loss_forward", "loss_backward"):
            assert _positive(result["breakdown"][column][stage]), (column, stage)
    assert result["breakdown"]["pretrain"]["render_forward"] == 0
    assert result["breakdown"]["adapt"]["fitting"] == 0
    assert _positive(result["breakdown"]["adapt_fitting_step"]["fitting"])


def test_bench_step_python_api():
    result = bench_step(res=32, batch=2, repeats=1, warmup=0, threads=1)
    _check_step(result)
    assert (result["res"], result["batch"], result["threads"], result["device"]) == (32, 2, 1, "cpu")


def test_bench_step_cli_with_memory(tmp_path):
    out = tmp_path / "step.json"
    result = CliRunner().invoke(app, ["bench", "step", "--res", "32", "--batch", "2", "--repeats", "1", "--warmup", "0",
                                      "--threads", "1", "--memory", "--memory-steps", "1", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "ratio" in result.output and "encoder_backward" in result.output and "peak RSS" in result.output
    data = json.loads(out.read_text())
    _check_step(data)
    memory = data["memory"]
    assert all(_positive(memory[k]) for k in ("pretrain_mib", "adapt_mib", "baseline_mib"))
    assert memory["pretrain_mib"] > memory["baseline_mib"] and memory["adapt_mib"] > memory["baseline_mib"]

    bad = CliRunner().invoke(app, ["bench", "step", "--repeats", "0"])
    assert bad.exit_code == 2 and "repeats must be" in bad.output


def test_bench_train_quick_cli(tmp_path):
    out, plot = tmp_path / "train.json", tmp_path / "curves.png"
    result = CliRunner().invoke(app, ["bench", "train", "--quick", "--threads", "1", "--json", str(out),
                                      "--plot", str(plot)])
    assert result.exit_code == 0, result.output
    assert "images/s" in result.output and "flops_share" in result.output and "biggest loss" in result.output
    data = json.loads(out.read_text())
    assert (data["resolutions"], data["batches"]) == ([32, 48], [2, 4])
    assert len(data["cells"]) == 4 and data["default"] in data["cells"]
    for cell in data["cells"]:
        for key in ("images_per_s", "step_ms", "ms_per_image", "flops_per_image", "encoder_flops_per_image",
                    "peak_flops", "flops_share", "encoder_ms", "encoder_share", "encoder_time_share"):
            assert _positive(cell[key]), (cell["res"], cell["batch"], key)
        assert cell["encoder_flops_per_image"] <= cell["flops_per_image"]
        assert cell["images_per_s"] == pytest.approx(cell["batch"] / cell["step_ms"] * 1e3, rel=1e-2)
    flops = {(c["res"], c["batch"]): c["flops_per_image"] for c in data["cells"]}
    for batch in (2, 4):
        assert flops[(48, batch)] > flops[(32, batch)]  # more pixels, more work per image
    assert flops[(32, 2)] == pytest.approx(flops[(32, 4)], rel=0.05)  # per image: independent of the batch
    assert plot.exists() and plot.stat().st_size > 1000

    bad = CliRunner().invoke(app, ["bench", "train", "--quick", "--res", "32,x"])
    assert bad.exit_code == 2 and "--res and --batch" in bad.output


def test_bench_synth_sets_torch_and_opencv_threads_for_its_run_and_restores_them():
    """``bench synth --threads 1`` must run on one core: OpenCV keeps a pool of its own."""
    import cv2

    from maskpose.bench.synth import benchmark

    before_cv, before_torch = cv2.getNumThreads(), torch.get_num_threads()
    try:
        cv2.setNumThreads(3)
        result = benchmark(n=4, res=32, batch_size=4, domain="studio", threads=1)
        assert result["threads"] == 1 and result["opencv_threads"] == 1
        assert cv2.getNumThreads() == 3 and torch.get_num_threads() == before_torch
        assert result["frames_per_s"] > 0 and set(result["stages_ms_per_frame"]) >= {"anny", "rasterize"}
    finally:
        cv2.setNumThreads(before_cv)

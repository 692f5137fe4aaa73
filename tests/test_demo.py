"""The demo pipeline end to end at toy size: data, pretraining, adaptation, evaluation, report."""

import json
from dataclasses import replace

import pytest

from maskpose.apps.demo import (
    DemoConfig,
    demo_adapt_run,
    demo_source_run,
    metric_table_markdown,
    run_demo,
    shipped_checkpoint,
)
from maskpose.apps.photo_source import PHOTO_SOURCE
from maskpose.errors import ConfigError
from maskpose.train.checkpoint import at_resolution, load_checkpoint


def test_demo_writes_report_with_before_after_metrics(tmp_path):
    cfg = DemoConfig(out=str(tmp_path / "demo"), retrain_source=True, source_samples=16,
                     source=replace(demo_source_run(), steps=3, batch_size=8), target_train_samples=8,
                     target_test_samples=6, adapt=replace(demo_adapt_run(), steps=2, batch_size=4, fit_every=2,
                                                          fit_iterations=2),
                     overlay_count=3, resolution=32)
    report = run_demo(cfg)
    page = report.read_text()
    assert "PA-MPJPE" in page and page.count("data:image/png;base64,") == 2
    results = json.loads((tmp_path / "demo" / "results.json").read_text())
    for key in ("mpjpe", "pa_mpjpe", "silhouette_iou"):
        assert results["before"][key] >= 0 and results["after"][key] >= 0
    assert results["before"]["num_samples"] == 6
    # The adapted model differs from the source: adaptation ran and changed the predictions.
    assert results["before"]["mpjpe"] != results["after"]["mpjpe"]
    table = (tmp_path / "demo" / "metrics.md").read_text()
    assert table.startswith("| metric | source only | adapted")


def test_metric_table_lists_every_metric_present():
    before = {"mpjpe": 100.0, "pa_mpjpe": 80.0, "pck": 50.0}
    after = {"mpjpe": 90.0, "pa_mpjpe": 70.0, "pck": 60.0}
    table = metric_table_markdown(before, after)
    assert "| MPJPE (mm) | 100.0 | 90.0 |" in table and "| PCK@150 (%) | 50.0 | 60.0 |" in table
    assert "AUC" not in table


def test_the_realistic_demo_adapts_a_given_real_photo_model_on_masked_crops(tmp_path):
    # the 64 px real-photo model moved to 48 px stands in for the shipped 128 px one (same network)
    photo = shipped_checkpoint(PHOTO_SOURCE)
    source = at_resolution(photo, 48, tmp_path / "photo48.pt")
    cfg = DemoConfig.realistic(out=str(tmp_path / "demo"), resolution=48, source_checkpoint=str(source),
                               target_train_samples=8, target_test_samples=4, overlay_count=2,
                               adapt=replace(demo_adapt_run(), steps=2, batch_size=4, fit_every=0))
    report = run_demo(cfg)
    assert "photo48.pt" in report.read_text() and "realistic" in report.read_text()
    adapted = load_checkpoint(tmp_path / "demo" / "adapted" / "checkpoint.pt")
    assert adapted["config"]["masked_input"] is True  # the adaptation kept the model's masked input


def test_the_realistic_demo_refuses_to_retrain_its_source_itself(tmp_path):
    with pytest.raises(ConfigError, match="build-photo-source --resolution 128"):
        run_demo(DemoConfig.realistic(out=str(tmp_path / "demo"), retrain_source=True))
    assert not (tmp_path / "demo" / "data").exists()

"""``maskpose demo``: source model -> target domain adaptation with masks only -> report.html.

Steps (each with a progress bar): build a source split and one target domain (train: images and
masks; test: 3D ground truth), pretrain the source model (or load the small source checkpoint
shipped in the package, which ``maskpose demo --retrain-source`` reproduces), evaluate it on the
target, adapt it with L_S + L_T on the target's masks, evaluate again, and write ``report.html``
with the metric table, the loss curves and overlays before/after on the same target images.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
import shutil
import time
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from PIL import Image
from tqdm.auto import tqdm

from maskpose.apps.predict import draw_overlay
from maskpose.body.anny_body import AnnyBody
from maskpose.body.sampler import PoseDistribution
from maskpose.data.dataset import MaskposeDataset
from maskpose.device import torch_threads
from maskpose.errors import ConfigError
from maskpose.models.regressor import ModelConfig
from maskpose.synth.generator import SynthesisConfig, generate
from maskpose.train.checkpoint import load_model, saved_masked_input
from maskpose.train.config import MODE_RECIPES, TrainConfig
from maskpose.train.evaluate import collect_predictions, evaluate_checkpoint
from maskpose.train.loop import train

#: The source model shipped in the package: 64 px, trained on the ``studio`` domain
#: (``maskpose demo --retrain-source`` rebuilds it).
SHIPPED_SOURCE = "source_studio_64.pt"
#: The small 64 px model by that name (what the tests and quick benchmarks use).
SMALL_SOURCE = SHIPPED_SOURCE
#: The 128 px real-photo model (:meth:`DemoConfig.realistic`): masked input, the 64 px real-photo
#: model fine-tuned on 128 px ``realistic`` crops (``maskpose build-photo-source --resolution 128``,
#: :mod:`maskpose.apps.photo_source`; docs/benchmark.md, "Real photographs").
REALISTIC_SOURCE = "source_realistic_128.pt"


def demo_source_run() -> TrainConfig:
    """The demo's pretraining run (the shipped checkpoint's; data, out, seed, device and the model
    are filled in by :func:`source_config`)."""
    return TrainConfig(mode="pretrain", steps=1200, batch_size=32, lr=1e-3, log_every=25, checkpoint_every=250)


def demo_adapt_run() -> TrainConfig:
    """The demo's adaptation run (L_S + L_T with the pose prior, fitting in the loop every 4th step;
    data, out, init_checkpoint, seed, device and the model are filled in by :func:`adapt_config`)."""
    return TrainConfig(mode="adapt", steps=150, batch_size=16, losses={"ls": 1.0, "lt": 1.0, "prior": 0.1},
                       log_every=5, checkpoint_every=50, **MODE_RECIPES["adapt"])


@dataclass
class DemoConfig:
    """Every default of the demo in one place: the demo's own fields, and the two training runs as
    ``TrainConfig`` templates (``source``, ``adapt``) whose per-run fields (data, out,
    init_checkpoint, seed, device, model) the demo fills in from its own."""

    out: str = "demo_output"
    target_domain: str = "thermal"
    #: the source model's domain: ``studio`` (the shipped studio model, or trained by the demo with
    #: ``poses`` on ``retrain_source``) or ``realistic`` (the shipped real-photo model, :meth:`realistic`)
    source_domain: str = "studio"
    resolution: int = 64
    #: the encoder of the source model (with ``resolution``, see :meth:`model`)
    width: int = 32
    blocks: tuple[int, ...] = (1, 1, 1, 1)
    stem_pool: bool = False
    source_samples: int = 3000
    target_train_samples: int = 400
    target_test_samples: int = 200
    seed: int = 0
    # A milder pose distribution than the sampler's default, so a small CPU model learns it in minutes.
    poses: PoseDistribution = field(default_factory=PoseDistribution)
    source: TrainConfig = field(default_factory=demo_source_run)
    source_threads: int = 1  # the shipped checkpoint was trained with one thread (bit-exact reruns need the same)
    # CPU threads of everything after the source model (target data, evaluation, adaptation, report):
    # float sums depend on the thread count, so a fixed count prints the same numbers on any machine
    # (the README's were measured with two; None: torch's default, the machine's cores).
    threads: int | None = 2
    adapt: TrainConfig = field(default_factory=demo_adapt_run)
    retrain_source: bool = False
    #: a source checkpoint to adapt instead of the shipped one (e.g. a rebuilt real-photo model)
    source_checkpoint: str = ""
    device: str = "cpu"
    overlay_count: int = 8

    def model(self) -> ModelConfig:
        return ModelConfig(resolution=self.resolution, width=self.width, blocks=tuple(self.blocks),
                           stem_pool=self.stem_pool)

    @staticmethod
    def realistic(**changes) -> DemoConfig:
        """The demo from the shipped 128 px real-photo model (:data:`REALISTIC_SOURCE`; it sees the
        image times the mask, and so does its adaptation). Its ``retrain_source`` is refused here:
        ``maskpose build-photo-source --resolution 128`` rebuilds that model, and ``maskpose demo
        --realistic --retrain-source`` runs it before the demo."""
        return replace(DemoConfig(source_domain="realistic", resolution=128), **changes)

    def shipped(self) -> str:
        """The package file of this demo's source model (it may not be shipped)."""
        return SHIPPED_SOURCE if self.source_domain == "studio" and self.resolution == 64 else REALISTIC_SOURCE

    def source_poses(self):
        """The source split's pose source: the domain's own (``None``) for ``realistic``, the
        demo's milder distribution for ``studio``."""
        return self.pose_source(0) if self.source_domain == "studio" else None

    def pose_source(self, stream: int):
        """The demo's pose sampler for one split (``stream`` keeps splits apart)."""
        return self.poses.sampler(self.seed * 1000 + stream)


def source_config(cfg: DemoConfig, data: Path, out: Path) -> TrainConfig:
    """The pretraining run whose result is the shipped checkpoint (same config, same bytes)."""
    return replace(cfg.source, data=str(data), out=str(out), seed=cfg.seed, device=cfg.device, model=cfg.model())


def adapt_config(cfg: DemoConfig, data: Path, source_checkpoint: Path, out: Path) -> TrainConfig:
    """The adaptation run of the source model on the target's training split."""
    return replace(cfg.adapt, data=str(data), out=str(out), init_checkpoint=str(source_checkpoint), seed=cfg.seed,
                   device=cfg.device, losses=dict(cfg.adapt.losses), model=cfg.model())


def shipped_checkpoint(name: str = SHIPPED_SOURCE) -> Path | None:
    """A source model shipped in the package (default :data:`SHIPPED_SOURCE`), ``None`` if absent."""
    path = resources.files("maskpose") / "assets" / name
    return Path(str(path)) if path.is_file() else None


def _log(msg: str) -> None:
    print(f"[demo] {msg}", flush=True)


def check_output_folder(out: str | Path) -> Path:
    """``ConfigError`` unless ``out`` is a folder the demo can write (existing or to be created):
    not a file, and not below one."""
    out = Path(out)
    for path in (out, *out.parents):
        if path.exists():
            if not path.is_dir():
                what = "is a file" if path == out else f"lies below the file {path}"
                raise ConfigError(f"--out {out}: {what}; the demo writes a folder (data, runs, report.html)")
            if not os.access(path, os.W_OK | os.X_OK):
                raise ConfigError(f"--out {out}: {path} is not writable")
            break
    return out


def run_demo(cfg: DemoConfig) -> Path:
    start = time.time()
    out = check_output_folder(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    data_root = out / "data"

    if cfg.source_checkpoint:
        source_ckpt = Path(cfg.source_checkpoint)
    elif cfg.source_domain == "realistic" and (cfg.retrain_source or shipped_checkpoint(cfg.shipped()) is None):
        raise ConfigError(f"the demo's realistic source is the shipped {cfg.shipped()}; maskpose build-photo-source "
                          f"--resolution {cfg.resolution} rebuilds it (maskpose demo --realistic --retrain-source runs "
                          "that first)")
    else:
        source_ckpt = None if cfg.retrain_source else shipped_checkpoint(cfg.shipped())
    if source_ckpt is None:
        domain = cfg.source_domain
        _log(f"generating the source split: {domain}, {cfg.source_samples} samples at {cfg.resolution} px")
        source = generate(data_root / domain / "train", domain, cfg.source_samples, cfg.resolution,
                          cfg.seed, "train", config=SynthesisConfig(geodesic=domain == "studio"),
                          pose_source=cfg.source_poses(), progress=_bar(domain))
        _log(f"pretraining the source model ({cfg.source.steps} steps)")
        with torch_threads(cfg.source_threads):
            result = train(source_config(cfg, source, out / "source"))
        source_ckpt = result.checkpoint
    elif cfg.source_checkpoint:
        _log(f"using the source checkpoint {source_ckpt}")
    else:
        _log(f"using the shipped source checkpoint {source_ckpt.name} (`maskpose demo --retrain-source` rebuilds it)")

    with torch_threads(cfg.threads):
        return _adapt_and_report(cfg, out, data_root, source_ckpt, start)


def _adapt_and_report(cfg: DemoConfig, out: Path, data_root: Path, source_ckpt: Path, start: float) -> Path:
    """The demo after its source model: target splits, evaluation before and after adaptation, report."""
    _log(f"generating the target domain {cfg.target_domain!r}: train (images + masks), test (3D labels)")
    splits = {
        split: generate(data_root / cfg.target_domain / split, cfg.target_domain, n, cfg.resolution, cfg.seed,
                        split, labels=(split == "test"), pose_source=cfg.pose_source(stream), progress=_bar(split))
        for split, n, stream in (("train", cfg.target_train_samples, 1), ("test", cfg.target_test_samples, 2))
    }

    _log("evaluating the source model on the target test split")
    before = evaluate_checkpoint(source_ckpt, splits["test"], cfg.device)

    _log(f"adapting with {cfg.adapt.losses} on target masks ({cfg.adapt.steps} steps)")
    adapt_out = out / "adapted"
    shutil.rmtree(adapt_out, ignore_errors=True)
    adapted = train(adapt_config(cfg, splits["train"], source_ckpt, adapt_out))
    _log("evaluating the adapted model on the target test split")
    after = evaluate_checkpoint(adapted.checkpoint, splits["test"], cfg.device)

    results = {"target_domain": cfg.target_domain, "before": before, "after": after,
               "adaptation_history": adapted.history, "seconds": round(time.time() - start, 1)}
    (out / "results.json").write_text(json.dumps(results, indent=2))
    report = write_report(out, cfg, before, after, adapted.history, source_ckpt, adapted.checkpoint, splits["test"])
    _log(f"done in {time.time() - start:.0f} s: {report}")
    _log(f"target PA-MPJPE {before['pa_mpjpe']:.1f} mm -> {after['pa_mpjpe']:.1f} mm, "
         f"MPJPE {before['mpjpe']:.1f} -> {after['mpjpe']:.1f}, "
         f"silhouette IoU {before.get('silhouette_iou', float('nan')):.1f} -> {after.get('silhouette_iou', float('nan')):.1f} %")
    return report


def _bar(name: str):
    state = {}

    def progress(done: int, total: int) -> None:
        if "bar" not in state:
            state["bar"] = tqdm(total=total, desc=f"synth {name}", dynamic_ncols=True)
        state["bar"].update(done - state["bar"].n)
        if done >= total:
            state["bar"].close()

    return progress


# ---------------------------------------------------------------------- report
METRIC_ROWS = (("mpjpe", "MPJPE (mm)"), ("pa_mpjpe", "PA-MPJPE (mm)"), ("n_mpjpe", "N-MPJPE (mm)"),
               ("pck", "PCK@150 (%)"), ("auc", "AUC (%)"), ("silhouette_iou", "silhouette IoU (%)"),
               ("ambiguity_ratio", "ambiguity ratio (%)"))


def metric_table_markdown(before: dict, after: dict) -> str:
    lines = ["| metric | source only | adapted (L_S + L_T) |", "|---|---|---|"]
    for key, label in METRIC_ROWS:
        if key in before:
            lines.append(f"| {label} | {before[key]:.1f} | {after[key]:.1f} |")
    return "\n".join(lines)


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def _loss_curves(history: list[dict]) -> str:

    fig = Figure(figsize=(6, 3))
    ax = fig.subplots()
    steps = [h["step"] for h in history]
    for key in sorted({k for h in history for k in h} - {"step", "time_s"}):
        ax.plot(steps, [h.get(key, np.nan) for h in history], label=key)
    ax.set_xlabel("adaptation step")
    ax.set_yscale("log")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    encoded = _png(fig)
    return encoded


def _overlays(checkpoints: list[Path], test_split: Path, count: int, device: str) -> str:
    """One PNG: rows = target images, columns = input, source-only overlay, adapted overlay."""

    data = MaskposeDataset(test_split).subset(np.arange(count))
    body = AnnyBody(device=device)
    columns = []
    images = None
    for ckpt in checkpoints:
        model, state = load_model(ckpt, device)
        preds = collect_predictions(model, data, device, body=body,
                                    masked_input=saved_masked_input(state["config"]))
        if images is None:
            images = torch.stack([data[i]["image"] for i in range(len(data))])
            columns.append([draw_overlay(img, torch.full((17, 2), -100.0), None) for img in images])
        columns.append([draw_overlay(images[i], preds["joints2d"][i, :17], preds["silhouette"][i, 0])
                        for i in range(len(data))])
    w, h = columns[0][0].size
    sheet = Image.new("RGB", (w * len(columns), h * len(data)), "white")
    for c, column in enumerate(columns):
        for r, tile in enumerate(column):
            sheet.paste(tile, (c * w, r * h))
    buf = io.BytesIO()
    sheet.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def write_report(out: Path, cfg: DemoConfig, before: dict, after: dict, history: list[dict],
                 source_ckpt: Path, adapted_ckpt: Path, test_split: Path) -> Path:
    rows = "".join(
        f"<tr><td>{html.escape(label)}</td><td>{before[key]:.1f}</td><td>{after[key]:.1f}</td></tr>"
        for key, label in METRIC_ROWS if key in before
    )
    curves = _loss_curves(history)
    overlays = _overlays([source_ckpt, adapted_ckpt], test_split, cfg.overlay_count, cfg.device)
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>maskpose demo</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 10px;text-align:right}}td:first-child{{text-align:left}}</style></head>
<body><h1>maskpose demo: adapting to <code>{html.escape(cfg.target_domain)}</code> with masks only</h1>
<p>Source model <code>{html.escape(source_ckpt.name)}</code>, trained on the synthetic
<code>{html.escape(cfg.source_domain)}</code> domain; adapted with
<code>{html.escape(json.dumps(cfg.adapt.losses))}</code> on {cfg.target_train_samples} target images and their
masks (no labels), {cfg.adapt.steps} steps; evaluated on {cfg.target_test_samples} held-out target images with
3D ground truth.</p>
<h2>Metrics on the target test split</h2>
<table><tr><th>metric</th><th>source only</th><th>adapted</th></tr>{rows}</table>
<h2>Adaptation losses</h2><img src="data:image/png;base64,{curves}">
<h2>Before / after on the same target images</h2>
<p>Columns: input, source-only prediction, adapted prediction (mesh silhouette tinted, skeleton drawn;
the subject's left side in red).</p>
<img src="data:image/png;base64,{overlays}">
</body></html>"""
    path = out / "report.html"
    path.write_text(page)
    (out / "metrics.md").write_text(metric_table_markdown(before, after) + "\n")
    return path

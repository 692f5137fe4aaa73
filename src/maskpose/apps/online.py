"""Online self-adaptation on a static-camera stream (``maskpose adapt --video V --online``).

The model adapts while frames arrive. Per frame, in this order:

1. **masks**: background subtraction and tracking as :mod:`maskpose.data.video` does them
   (:func:`~maskpose.data.video.foreground_frames`, :class:`~maskpose.data.video.GreedyTracker`),
   in one causal pass: the first ``warmup`` frames only prime the background model (a live stream
   cannot be rewound), and each person's square crop box is smoothed over its track's last
   ``smooth_window`` boxes only (:func:`~maskpose.data.video.crop_boxes` of the recent boxes,
   whose last entry averages the trailing half window), not a centred window as offline;
   tracks are not filtered by length (their length is not known yet);
2. **prediction** with the model as adapted so far (:func:`~maskpose.apps.predict.predict_crops`):
   one JSON line per frame in ``OUT/predictions.jsonl``, written and flushed as the frame is
   done: ``{"frame", "people": [{"person" (the track id), "crop_box", "merged", "joints3d_m",
   "joints2d_px" (frame pixels), "crop_camera_K", "translation_m", "phenotypes" (or "betas"),
   "iou"}], "buffer", "updates"}``; ``iou`` is the silhouette IoU against the crop's extracted
   mask over the crop's pixels inside the frame;
3. **replay buffer**: the frame's crops (image, mask, valid pixels) join a buffer of the
   ``buffer_size`` most recent ones (the oldest leave); a merged blob of several people is
   predicted but not added (one body cannot fit it), nor a crop whose mask is empty;
4. **adaptation**: every ``update_every`` frames (once the buffer holds ``min_buffer`` crops),
   ``update_steps`` optimisation steps, each on ``batch_size`` crops drawn from the buffer by
   :func:`~maskpose.train.loop.step_indices` (a pure function of ``(seed, step)``, as the
   training loop draws its batches);
5. **checkpoint** every ``checkpoint_every`` frames, and when the stream ends or is stopped
   (Ctrl-C or SIGTERM: the frame in progress is finished first; a second signal stops at once).

**The step.** The adapt objective of :mod:`maskpose.train` (an
:class:`~maskpose.train.objectives.Objective` of the adapt losses, by default L_S + L_T + 0.1
prior for Anny, ``phenotype_prior`` for SMPL; the ``anchor`` term too when asked for, with a
frozen copy of the initial model) and Adam at ``MODE_RECIPES["adapt"]["lr"]`` (1e-4): forward,
:func:`~maskpose.train.pipeline.mesh_prediction` with the differentiable silhouette renderer,
objective, backward, optimiser step, exactly the calls of
:meth:`~maskpose.train.loop.Trainer.train_step`. The Trainer itself is not used: it trains on a
fixed dataset folder whose batch of step ``k`` is drawn from its fixed size, and here the data is
a buffer that changes every frame; rebuilding a dataset folder for every update would cost
more than the update. What the Trainer adds beyond that step (distributed ranks, mixed
precision, source batches, fitting in the loop) is not offered online.

**Checkpoint and resume.** ``OUT/checkpoint.pt`` is a model checkpoint (``maskpose predict`` and
``evaluate`` read it) that also holds the optimiser, the replay buffer, the step and update
counts and the last frame processed. Run again with the same ``--out`` and settings and the run
resumes: a video *file* is read from its start again, its frames up to the saved one only
passing through background subtraction and tracking (no prediction, no update), so the
background model and the tracks are exactly those of an uninterrupted run, and from the next
frame on everything (predictions, weights) is the same as an uninterrupted run's on the CPU.
``predictions.jsonl`` is cut back to the saved frame first. A live stream (camera index or URL)
cannot be replayed: it resumes with the saved model, optimiser and buffer, a fresh background
warm-up, new tracks, and frame numbers that continue after the saved one.

**Inputs.** A video file (through :class:`~maskpose.data.video.FrameSource`), a camera index
(``0``, ``1``, ...) or a stream URL (``rtsp://...``, ``http://...``) read with
``cv2.VideoCapture``. A live stream is read at the adapter's pace: frames the adapter does not
keep up with are dropped by the capture, not queued.
"""

from __future__ import annotations

import collections
import copy
import dataclasses
import json
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from maskpose.apps.predict import checkpoint_bodies, person_record, predict_crops, smpl_model_path
from maskpose.data.video import (
    ExtractionConfig,
    FrameSource,
    GreedyTracker,
    crop_square,
    foreground_frames,
    frame_valid,
)
from maskpose.device import resolve_device
from maskpose.errors import ConfigError, DataError
from maskpose.io import atomic_write_text
from maskpose.render.silhouette import SilhouetteRenderer
from maskpose.train.checkpoint import load_checkpoint, load_model, save_checkpoint, saved_body, saved_masked_input
from maskpose.train.config import MODE_RECIPES, TrainConfig, default_losses
from maskpose.train.loop import Termination, step_indices
from maskpose.train.objectives import ANCHOR_KEYS, Objective
from maskpose.train.pipeline import intrinsics, masked_images, mesh_prediction

CHECKPOINT_NAME = "checkpoint.pt"
PREDICTIONS_NAME = "predictions.jsonl"
SUMMARY_NAME = "online.json"


@dataclass(frozen=True)
class OnlineConfig:
    """The settings of online adaptation, with their defaults in one place (the CLI maps its flags
    onto them). ``losses`` ``None``: the adapt defaults of the checkpoint's body; ``lr``: the adapt
    recipe's."""

    buffer_size: int = 256  # crops kept (the most recent)
    update_every: int = 4  # frames between adaptation rounds (k)
    update_steps: int = 1  # optimisation steps per round
    batch_size: int = 8  # crops per step, drawn from the buffer
    min_buffer: int = 8  # no update before the buffer holds this many crops
    checkpoint_every: int = 100  # frames between checkpoints
    lr: float = MODE_RECIPES["adapt"]["lr"]
    losses: dict | None = None
    seed: int = 0
    max_frames: int | None = None  # stop after this many frames of the stream (warm-up included)

    def __post_init__(self) -> None:
        for name in ("buffer_size", "update_every", "batch_size", "min_buffer", "checkpoint_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"online {name} must be an int >= 1, got {value!r}")
        if isinstance(self.update_steps, bool) or not isinstance(self.update_steps, int) or self.update_steps < 0:
            raise ConfigError(f"online update_steps must be an int >= 0, got {self.update_steps!r}")
        if self.min_buffer > self.buffer_size:
            raise ConfigError(f"online min_buffer ({self.min_buffer}) exceeds buffer_size ({self.buffer_size})")
        if self.max_frames is not None and (isinstance(self.max_frames, bool) or not isinstance(self.max_frames, int)
                                            or self.max_frames < 1):
            raise ConfigError(f"online max_frames must be an int >= 1, got {self.max_frames!r}")

    def resume_key(self) -> dict:
        """The fields a resumed run must share with the saved one (``max_frames`` may differ)."""
        d = asdict(self)
        d.pop("max_frames")
        return d


@dataclass
class OnlineResult:
    """What :func:`adapt_online` did in this session: frames processed (after any replay), people
    (crops) predicted, adaptation rounds and steps (in total, over every session), the processing
    rate, where it wrote, where it resumed (the frame after the saved one; ``None``: a fresh run),
    whether it was stopped by a signal, and the mean crop IoU of this session's predictions."""

    frames: int
    people: int
    updates: int
    steps: int
    fps: float
    checkpoint: Path
    predictions: Path
    resumed_at: int | None
    stopped: bool
    mean_iou: float | None
    last_frame: int


# --------------------------------------------------------------------------------------------
# streams


class CaptureStream:
    """Frames of a camera (``index``) or a stream URL through ``cv2.VideoCapture``, read once, as
    they come (a live stream cannot be rewound): ``(frame_index, rgb_frame)`` from 0, the same
    interface as :class:`~maskpose.data.video.FrameSource` for one pass."""

    live = True

    def __init__(self, spec: int | str, max_frames: int | None = None):
        self.spec, self.max_frames = spec, max_frames
        self.path = None
        self.cap = cv2.VideoCapture(spec)
        if not self.cap.isOpened():
            self.cap.release()
            raise DataError(f"{self.name}: cannot open the {'camera' if isinstance(spec, int) else 'stream'}")
        ok, frame = self.cap.read()
        if not ok or frame is None:
            self.cap.release()
            raise DataError(f"{self.name}: no frame could be read")
        self._first = frame
        self.height, self.width = frame.shape[:2]
        fps = self.cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and fps > 0 else None

    @property
    def name(self) -> str:
        return f"camera {self.spec}" if isinstance(self.spec, int) else str(self.spec)

    def __len__(self) -> int:
        return 0

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        i = 0
        try:
            while self.max_frames is None or i < self.max_frames:
                if self._first is not None:
                    frame, self._first = self._first, None
                else:
                    ok, frame = self.cap.read()
                    if not ok or frame is None:
                        break
                if frame.shape[:2] != (self.height, self.width):
                    raise DataError(f"{self.name}: frame {i} has size {frame.shape[:2]}, the first "
                                    f"{(self.height, self.width)}")
                yield i, cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB if frame.ndim == 2 else cv2.COLOR_BGR2RGB)
                i += 1
        finally:
            self.cap.release()


def open_stream(spec, max_frames: int | None = None):
    """The frames of ``spec``: a video file (:class:`~maskpose.data.video.FrameSource`, replayable),
    a camera index (an int, or a string of digits) or a stream URL (``scheme://...``)
    (:class:`CaptureStream`, live)."""
    if isinstance(spec, int) or (isinstance(spec, str) and spec.isdigit()):
        return CaptureStream(int(spec), max_frames)
    if isinstance(spec, str) and "://" in spec:
        return CaptureStream(spec, max_frames)
    source = FrameSource(spec, max_frames)
    source.live = False
    return source


# --------------------------------------------------------------------------------------------
# causal crop boxes


def trailing_crop_box(boxes, config: ExtractionConfig) -> np.ndarray:
    """The square crop box ``(4,)`` (x0, y0, x1, y1, integer-valued) of a track's latest detection,
    using its past boxes only: the centre and side (longer box side times ``1 + 2 margin``)
    averaged over the last ``smooth_window // 2 + 1`` boxes, which is the last entry of
    :func:`~maskpose.data.video.crop_boxes` over the whole track (its centred window shrinks to
    the trailing half at the end), rounded as it rounds."""
    b = np.asarray(boxes, float).reshape(-1, 4)[-(config.smooth_window // 2 + 1):]
    cx, cy = ((b[:, 0] + b[:, 2]) / 2).mean(), ((b[:, 1] + b[:, 3]) / 2).mean()
    side = (np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]) * (1 + 2 * config.margin)).mean()
    side = max(np.round(side), 2)
    x0, y0 = np.round(cx - side / 2), np.round(cy - side / 2)
    return np.array([x0, y0, x0 + side, y0 + side])


# --------------------------------------------------------------------------------------------
# the replay buffer


class ReplayBuffer:
    """The ``size`` most recent crops: ``image`` ``(res, res, 3)``, ``mask`` and ``valid``
    ``(res, res)`` uint8, with their frame and track."""

    FIELDS = ("image", "mask", "valid", "frame", "track")

    def __init__(self, size: int):
        self.items: collections.deque = collections.deque(maxlen=size)

    def __len__(self) -> int:
        return len(self.items)

    def add(self, image: np.ndarray, mask: np.ndarray, valid: np.ndarray, frame: int, track: int) -> None:
        self.items.append((image, mask, valid, int(frame), int(track)))

    def batch(self, indices: torch.Tensor, device) -> dict[str, torch.Tensor]:
        """The crops at ``indices`` as a training batch: ``image`` ``(B, 3, res, res)`` in [0, 1],
        ``mask`` and ``valid`` ``(B, 1, res, res)`` float32."""
        rows = [self.items[int(i)] for i in indices]
        image = torch.from_numpy(np.stack([r[0] for r in rows])).permute(0, 3, 1, 2).float() / 255.0
        mask = torch.from_numpy(np.stack([r[1] for r in rows])).float()[:, None]
        valid = torch.from_numpy(np.stack([r[2] for r in rows])).float()[:, None]
        return {"image": image.to(device), "mask": mask.to(device), "valid": valid.to(device)}

    def state(self) -> dict[str, torch.Tensor]:
        """The buffer as plain tensors (a weights-only checkpoint)."""
        if not self.items:
            return {}
        columns = list(zip(*self.items))
        return {name: torch.from_numpy(np.stack(column) if k < 3 else np.asarray(column, np.int64))
                for k, (name, column) in enumerate(zip(self.FIELDS, columns))}

    def load(self, state: dict) -> None:
        self.items.clear()
        if not state:
            return
        arrays = [state[name].numpy() for name in self.FIELDS]
        for row in zip(*arrays):
            self.add(row[0].copy(), row[1].copy(), row[2].copy(), int(row[3]), int(row[4]))


# --------------------------------------------------------------------------------------------
# the adapter


class OnlineAdapter:
    """A source model adapting on a stream (module docstring). Build it, then :meth:`run`.

    Args:
        init_checkpoint: the source model (mesh head).
        out: the run folder (``checkpoint.pt``, ``predictions.jsonl``, ``online.json``); a run
            there is resumed.
        config: :class:`OnlineConfig`.
        extraction: background subtraction and crop settings
            (:class:`~maskpose.data.video.ExtractionConfig`; its resolution becomes the model's).
        device: torch device.
        smpl_model: the SMPL model file of a checkpoint trained with body ``smpl``.
    """

    def __init__(self, init_checkpoint: str | Path, out: str | Path, config: OnlineConfig | None = None,
                 extraction: ExtractionConfig | None = None, device="cpu", smpl_model: str | Path | None = None):
        self.config = config or OnlineConfig()
        self.device = resolve_device(device)
        self.out = Path(out)
        if self.out.exists() and not self.out.is_dir():
            raise ConfigError(f"out {self.out}: is a file; an online run writes a folder")
        self.init_checkpoint = str(init_checkpoint)
        self.model, state = load_model(init_checkpoint, self.device)
        if "mesh" not in self.model.config.heads:
            raise ConfigError(f"{init_checkpoint}: online adaptation fits rendered silhouettes to masks; the model "
                              "has no mesh head")
        saved = state["config"]
        self.res = self.model.config.resolution
        self.extraction = dataclasses.replace(extraction or ExtractionConfig(), resolution=self.res, rewind=False)
        body = saved_body(saved)
        losses = dict(self.config.losses) if self.config.losses else default_losses("adapt", body)
        self.train_config = TrainConfig(
            mode="adapt", data="<stream>", init_checkpoint=self.init_checkpoint, out=str(self.out), losses=losses,
            lr=self.config.lr, batch_size=self.config.batch_size, seed=self.config.seed, device=str(device),
            body=body, smpl_model=smpl_model_path(saved, smpl_model),
            h36m_regressor=saved.get("h36m_regressor", "") or "", smpl_topology=saved.get("smpl_topology", "decimated"),
            masked_input=saved_masked_input(saved), model=self.model.config,
            focal=float(saved.get("focal", 0.0) or 0.0))
        self.train_config.validate()  # losses, body (SMPL: the extra and its file), device
        self.focal = self.train_config.focal_px
        self.body, _ = checkpoint_bodies(init_checkpoint, state, self.device, smpl_model)
        self.objective = Objective(self.train_config).to(self.device)
        self.renderer = SilhouetteRenderer(self.body.faces, self.res, behind="cull").to(self.device)
        self.anchor_model = None
        if losses.get("anchor", 0) > 0:
            self.anchor_model = copy.deepcopy(self.model).eval()
            for p in self.anchor_model.parameters():
                p.requires_grad_(False)
        params = [p for p in self.model.parameters() if p.requires_grad] + list(self.objective.parameters())
        self.optimizer = torch.optim.Adam(params, lr=self.config.lr)
        self.buffer = ReplayBuffer(self.config.buffer_size)
        self.steps = 0  # optimisation steps so far
        self.updates = 0  # adaptation rounds so far
        self.frames_done = 0  # frames processed (after warm-up), over every session
        self.last_frame = -1  # the last frame processed (stream numbering)
        self.stream_name: str | None = None
        self.history: list[dict] = []

    # ------------------------------------------------------------------ state
    def _identity(self) -> dict:
        return {"init_checkpoint": self.init_checkpoint, "online": self.config.resume_key(),
                "extraction": {k: v for k, v in asdict(self.extraction).items() if k != "max_frames"},
                "losses": self.train_config.losses}

    def save(self) -> Path:
        path = self.out / CHECKPOINT_NAME
        save_checkpoint(path, {
            "model": self.model.state_dict(),
            "objective": self.objective.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "step": self.steps,
            "config": self.train_config.to_dict(),
            "history": json.dumps(self.history),
            "online": {"identity": json.dumps(self._identity(), sort_keys=True), "updates": self.updates,
                       "frames_done": self.frames_done, "last_frame": self.last_frame,
                       "stream": self.stream_name or "", "buffer": self.buffer.state()},
        })
        return path

    def _resume(self) -> bool:
        path = self.out / CHECKPOINT_NAME
        if not path.exists():
            return False
        state = load_checkpoint(path, map_location=self.device)
        online = state.get("online")
        if not isinstance(online, dict):
            raise ConfigError(f"{path}: not an online adaptation run (choose another --out)")
        mine = json.dumps(self._identity(), sort_keys=True)
        if online["identity"] != mine:
            theirs, ours = json.loads(online["identity"]), json.loads(mine)
            differing = sorted(k for k in ours if theirs.get(k) != ours[k])
            raise ConfigError(f"{path}: an online run with other settings is already there (differs in {differing}); "
                              "choose another --out or delete it")
        self.model.load_state_dict(state["model"])
        self.objective.load_state_dict(state["objective"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.steps = int(state["step"])
        self.history = json.loads(state.get("history", "[]"))
        self.updates, self.frames_done = int(online["updates"]), int(online["frames_done"])
        self.last_frame = int(online["last_frame"])
        self.stream_name = online.get("stream") or None
        self.buffer.load(online.get("buffer") or {})
        return True

    # ------------------------------------------------------------------ one frame
    def _crops(self, fg, tracker: GreedyTracker, first_id: int, frame_size: tuple[int, int]):
        """``(track, box, merged, image, mask, valid)`` of each detection of a processed frame, after
        the tracker has seen it (detection ids from ``first_id``)."""
        track_of = {t.detections[-1]: t for t in tracker.live if t.frames and t.frames[-1] == fg.index}
        crops = []
        for k, detection in enumerate(fg.detections):
            track = track_of.get(first_id + k)
            if track is None:
                continue
            box = trailing_crop_box(track.boxes, self.extraction)
            full = np.zeros(fg.frame.shape[:2], np.uint8)
            x0, y0, x1, y1 = detection.box
            full[y0:y1, x0:x1] = detection.patch
            mask = (crop_square(full * 255, box, self.res) >= 128).astype(np.uint8)
            image = crop_square(fg.frame, box, self.res)
            crops.append((track.id, box, bool(track.merged[-1]), image, mask, frame_valid(box, frame_size, self.res)))
        return crops

    @torch.no_grad()
    def predict(self, crops) -> list[dict]:
        """Records of the crops with the current model (eval mode; IoU against their masks)."""
        images = torch.from_numpy(np.stack([c[3] for c in crops])).permute(0, 3, 1, 2).float() / 255.0
        masks = torch.from_numpy(np.stack([c[4] for c in crops]))
        valid = torch.from_numpy(np.stack([c[5] for c in crops]))
        self.model.eval()
        return predict_crops(self.model, images, self.focal, self.body, None, masks, valid,
                             masked_input=self.train_config.masked_input)

    def update(self) -> dict:
        """One adaptation round: ``update_steps`` steps on batches drawn from the buffer."""
        self.model.train()
        record = {}
        for _ in range(self.config.update_steps):
            indices = step_indices(self.config.seed, self.steps, len(self.buffer), self.config.batch_size)
            batch = self.buffer.batch(indices, self.device)
            if self.anchor_model is not None:
                with torch.no_grad():
                    source = self.anchor_model(masked_images(batch, self.train_config.masked_input)).mesh
                batch[ANCHOR_KEYS[0]], batch[ANCHOR_KEYS[1]] = source.phenotypes, source.scale
            loss, parts = self.step(batch)
            self.steps += 1
            record = {"step": self.steps, "loss": loss, **parts}
        self.updates += 1
        self.model.eval()
        return record

    def step(self, batch: dict) -> tuple[float, dict]:
        """One optimisation step on ``batch`` (the calls of ``Trainer.train_step``, float32)."""
        K = intrinsics(self.focal, self.res, batch=batch["image"].shape[0], device=self.device)
        self.optimizer.zero_grad(set_to_none=True)
        outputs = self.model(masked_images(batch, self.train_config.masked_input))
        pred = mesh_prediction(outputs.mesh, self.body, K, self.res, self.renderer)
        loss, parts = self.objective(pred, batch)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach()), parts

    @torch.no_grad()
    def buffer_loss(self) -> float:
        """The objective over the whole buffer with the current model (no update; in order)."""
        if not len(self.buffer):
            raise DataError("the replay buffer is empty")
        total = 0.0
        for start in range(0, len(self.buffer), self.config.batch_size):
            indices = torch.arange(start, min(start + self.config.batch_size, len(self.buffer)))
            batch = self.buffer.batch(indices, self.device)
            if self.anchor_model is not None:
                source = self.anchor_model(masked_images(batch, self.train_config.masked_input)).mesh
                batch[ANCHOR_KEYS[0]], batch[ANCHOR_KEYS[1]] = source.phenotypes, source.scale
            K = intrinsics(self.focal, self.res, batch=len(indices), device=self.device)
            outputs = self.model(masked_images(batch, self.train_config.masked_input))
            loss, _ = self.objective(mesh_prediction(outputs.mesh, self.body, K, self.res, self.renderer), batch)
            total += float(loss) * len(indices)
        return total / len(self.buffer)

    # ------------------------------------------------------------------ the stream
    def run(self, stream, progress: Callable[[int, float], None] | None = None) -> OnlineResult:
        """Adapt on ``stream`` (a path, a camera index or a URL: :func:`open_stream`; or a source it
        opened) until it ends or a signal stops it; returns what this session did."""
        source = stream if hasattr(stream, "live") else open_stream(
            str(stream) if isinstance(stream, Path) else stream, self.config.max_frames)
        self.out.mkdir(parents=True, exist_ok=True)
        resumed = self._resume()
        if resumed and not source.live and self.stream_name and self.stream_name != source.name:
            raise ConfigError(f"{self.out / CHECKPOINT_NAME}: the saved run adapted on {self.stream_name}, not "
                              f"{source.name}; choose another --out")
        self.stream_name = source.name
        predictions = self.out / PREDICTIONS_NAME
        _truncate_predictions(predictions, self.last_frame if resumed else -1)
        replay_until = self.last_frame if resumed and not source.live else -1
        offset = self.last_frame + 1 if resumed and source.live else 0
        resumed_at = self.last_frame + 1 if resumed else None
        tracker = GreedyTracker(self.extraction, (source.width, source.height))
        frame_size = (source.height, source.width)
        next_id = frames = people = 0
        ious: list[float] = []
        stopped = False
        start = None
        with open(predictions, "a") as lines, Termination((signal.SIGINT, signal.SIGTERM)) as stop:
            for fg in foreground_frames(source, self.extraction):
                ids = list(range(next_id, next_id + len(fg.detections)))
                tracker.update(fg.index, [d.box for d in fg.detections], ids)
                first_id, next_id = next_id, next_id + len(ids)
                index = fg.index + offset
                if index <= replay_until:  # resuming a file: the background and the tracks only
                    continue
                if start is None:
                    start = time.perf_counter()
                crops = self._crops(fg, tracker, first_id, frame_size)
                entries = []
                if crops:
                    for crop, record in zip(crops, self.predict(crops)):
                        track, box, merged = crop[:3]
                        entry = person_record(record, track, box, self.res, self.focal)
                        entries.append({"person": entry.pop("track_id"), "merged": merged, **entry})
                        if "iou" in record:
                            ious.append(record["iou"])
                    for track, _, merged, image, mask, valid in crops:
                        if not merged and mask.any():
                            self.buffer.add(image, mask, valid, index, track)
                self.frames_done += 1
                self.last_frame = index
                frames += 1
                people += len(entries)
                if (self.frames_done % self.config.update_every == 0 and self.config.update_steps
                        and len(self.buffer) >= self.config.min_buffer):
                    record = self.update()
                    self.history.append({"frame": index, **record})
                lines.write(json.dumps({"frame": index, "people": entries, "buffer": len(self.buffer),
                                        "updates": self.updates}) + "\n")
                lines.flush()
                if self.frames_done % self.config.checkpoint_every == 0:
                    self.save()
                if progress is not None:
                    progress(index, frames / max(time.perf_counter() - start, 1e-9))
                if stop.requested:
                    stopped = True
                    break
        elapsed = time.perf_counter() - start if start is not None else 0.0
        checkpoint = self.save()
        fps = frames / elapsed if elapsed > 0 else 0.0
        result = OnlineResult(frames, people, self.updates, self.steps, round(fps, 3), checkpoint, predictions,
                              resumed_at, stopped, float(np.mean(ious)) if ious else None, self.last_frame)
        summary = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(result).items()}
        summary.update(stream=source.name, threads=torch.get_num_threads(), device=str(self.device),
                       resolution=self.res, frame_size=[source.width, source.height])
        atomic_write_text(self.out / SUMMARY_NAME, json.dumps(summary, indent=1))
        return result


def adapt_online(init_checkpoint: str | Path, stream, out: str | Path, config: OnlineConfig | None = None,
                 extraction: ExtractionConfig | None = None, device="cpu", smpl_model: str | Path | None = None,
                 progress: Callable[[int, float], None] | None = None) -> OnlineResult:
    """Adapt ``init_checkpoint`` online on ``stream`` (a video file, a camera index, a URL), writing
    to ``out`` (module docstring); a run already in ``out`` resumes."""
    return OnlineAdapter(init_checkpoint, out, config, extraction, device, smpl_model).run(stream, progress)


def _truncate_predictions(path: Path, last_frame: int) -> None:
    """Keep the lines of ``predictions.jsonl`` up to ``last_frame`` (written before the checkpoint a
    resumed run starts from), dropping later ones and a torn last line; ``last_frame < 0``: empty."""
    if not path.exists():
        return
    if last_frame < 0:
        path.write_text("")
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            keep = int(json.loads(line)["frame"]) <= last_frame
        except (ValueError, TypeError, KeyError):
            keep = False
        if keep:
            kept.append(line)
    atomic_write_text(path, "".join(f"{line}\n" for line in kept))


__all__ = ["OnlineConfig", "OnlineResult", "OnlineAdapter", "ReplayBuffer", "CaptureStream", "open_stream",
           "adapt_online"]

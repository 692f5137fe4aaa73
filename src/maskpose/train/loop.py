"""The one training loop (SPIN style): pretrain, adapt, train-unsup and oracle differ only in their
config (losses, data, initial weights).

Determinism: the batch of step ``k`` is drawn from a generator seeded by ``(seed, k)``, so a run
resumed from a checkpoint sees exactly the batches an uninterrupted run would, and ends with the
same weights on the CPU. Distributed runs (``torchrun``) split each global batch across ranks and
average gradients, so N processes match one process on the combined batch.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import fcntl
import json
import logging
import math
import os
import signal
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from maskpose.data.batching import load_batch
from maskpose.data.dataset import LABEL_FIELDS, MaskposeDataset
from maskpose.device import resolve_device
from maskpose.errors import ConfigError, DataError
from maskpose.io import atomic_write_text
from maskpose.models.regressor import MeshHeadOutput, PoseRegressor, RegressorOutput
from maskpose.render.silhouette import SilhouetteRenderer
from maskpose.train.checkpoint import load_checkpoint, load_model, save_checkpoint
from maskpose.train.config import DEFAULT_LOSSES, MASK_LOSSES, SUPERVISED_LOSSES, TrainConfig
from maskpose.train.fitting import fit_to_masks
from maskpose.train.objectives import ANCHOR_KEYS, Objective, param_fields
from maskpose.train.pipeline import batch_intrinsics, build_body, joint_prediction, masked_images, mesh_prediction

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.pt"
LOG_NAME = "log.jsonl"
#: The run folder's lock file: holds the pid of the run using the folder, locked with ``fcntl.flock``
#: while it trains (the kernel drops the lock when the process dies, so a stale file is taken over).
LOCK_NAME = "run.lock"


class TrainingTerminated(KeyboardInterrupt):
    """SIGTERM during a run: handled like Ctrl-C (the checkpoint is saved, the run can resume)."""


@dataclass
class TrainResult:
    out: Path
    checkpoint: Path
    steps: int
    history: list[dict]
    #: Samples left out of the mask losses because their mask is empty (counted once per step drawn).
    empty_masks_skipped: int = 0


# ---------------------------------------------------------------------- distributed helpers
def distributed_context() -> tuple[int, int]:
    """``(rank, world_size)``; initialises the process group under ``torchrun`` (gloo on the CPU,
    NCCL on GPUs) and is a no-op for a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
    return dist.get_rank(), dist.get_world_size()


def step_indices(seed: int, step: int, size: int, batch_size: int) -> torch.Tensor:
    """The global batch of a step: ``batch_size`` distinct indices (with repeats only when the
    dataset is smaller than a batch), a pure function of ``(seed, step)``."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + step)
    if size >= batch_size:
        return torch.randperm(size, generator=gen)[:batch_size]
    return torch.randint(size, (batch_size,), generator=gen)


# ---------------------------------------------------------------------- the run
class Trainer:
    """Builds everything a run needs from its config, checking inputs before any training."""

    def __init__(self, config: TrainConfig, progress: bool = True):
        config = config.validate()
        if config.init_checkpoint:  # model and focal come with the initial weights
            saved = load_checkpoint(config.init_checkpoint)["config"]
            config = config.inherit_from_checkpoint(saved, config.init_checkpoint).validate()
        self.config = config
        out = Path(config.out)
        blocker = next((p for p in (out, *out.parents) if p.exists() and not p.is_dir()), None)
        if blocker is not None:  # found before the data, the model and the body are loaded
            raise ConfigError(f"out {out}: {'is a file' if blocker == out else f'lies below the file {blocker}'}; "
                              "a run writes a folder (checkpoint, logs)")
        self.progress = progress
        self.device = resolve_device(config.device)
        self.rank, self.world = distributed_context()
        self.res = config.model.resolution
        torch.manual_seed(config.seed)

        self.data = MaskposeDataset(config.data)
        self.objective = Objective(config).to(self.device)
        #: Per sample of ``data``, whether its mask is empty (None: no mask loss, or no empty mask).
        self.empty_mask = self._check_fields(self.data, self.objective, config.data)
        self.empty_masks_skipped = 0
        self.source = None
        self.source_objective = None
        if config.mode in ("adapt", "train-unsup") and config.source_ratio > 0:
            self.source = MaskposeDataset(config.source_data)
            self.source_objective = Objective(TrainConfig(
                mode="pretrain", data=config.source_data, model=config.model,
                losses=supervised_losses(config.model, self.source.fields, config.body),
                body=config.body
            )).to(self.device)
            self._check_fields(self.source, self.source_objective, config.source_data)

        self.model = self._initial_model().to(self.device)
        #: The ``anchor`` loss's reference: a frozen copy of the init checkpoint's model (eval mode,
        #: no gradient, never trained or saved; a resumed run rebuilds it from init_checkpoint).
        self.anchor_model = self._anchor_model()
        self.body = self.renderer = None
        if "mesh" in config.model.heads:
            self.body = build_body(config.body, self.device, config.smpl_model, config.h36m_regressor,
                                   config.smpl_topology)
            if self.objective.needs_silhouette:
                # Vertices behind the camera (a wild early prediction) are culled, not an error.
                self.renderer = SilhouetteRenderer(self.body.faces, self.res, behind="cull").to(self.device)

        params = [p for p in self.model.parameters() if p.requires_grad] + list(self.objective.parameters())
        self.optimizer = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
        # Mixed precision (config.precision): the network's forward under autocast at this dtype (None:
        # float32, no autocast); fp16 also scales the loss. The body, renderer and losses stay float32.
        self.autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(config.precision)
        self.scaler = torch.amp.GradScaler(self.device.type) if config.precision == "fp16" else None
        self.out = Path(config.out)
        self.fits: dict[int, dict[str, torch.Tensor]] = {}  # sample index -> fitted body parameters
        self.step = 0
        self.history: list[dict] = []
        self._maybe_resume()
        self.net = (DistributedDataParallel(self.model) if self.world > 1 else self.model)

    def _check_fields(self, data: MaskposeDataset, objective: Objective, path: str) -> np.ndarray | None:
        """Refuse, before training, a dataset that lacks a field the losses read, or whose field holds
        no usable value in any sample (every joint NaN, every mask empty); returns which samples have
        an empty mask (None when no mask loss is used or no mask is empty)."""
        needed = {"image"}
        if objective.needs_labels:
            needed |= {"joints3d", "joints2d"}
            if "params" in objective.weights:
                needed |= set(objective.param_fields)
        if objective.needs_silhouette or "mas" in objective.weights:
            needed.add("mask")
        missing = sorted(needed - set(data.fields))
        if missing:
            hint = " (a target dataset needs masks)" if "mask" in missing else ""
            raise DataError(f"{path}: dataset lacks field(s) {missing} needed by losses {sorted(objective.weights)}{hint}")
        if len(data) == 0:
            raise DataError(f"{path}: dataset is empty")
        users: dict[str, list[str]] = {}  # field -> the losses (weight > 0) that read it
        for name in (n for n, weight in objective.weights.items() if weight > 0):
            for field in objective.param_fields if name == "params" else _LOSS_FIELDS.get(name, ()):
                users.setdefault(field, []).append(name)
        empty = None
        for field, losses in users.items():
            usable = _usable_samples(data, field, self.res)
            if not usable.any():
                what = "is empty" if field == "mask" else "is missing (NaN)"
                raise DataError(f"{path}: field {field!r} {what} in every one of the {len(data)} samples; "
                                f"loss(es) {sorted(losses)} need it")
            if field == "mask" and not usable.all():
                count = int((~usable).sum())
                if 2 * count > len(data):
                    raise DataError(f"{path}: field 'mask' is empty in {count} of the {len(data)} samples (more "
                                    f"than half) at {self.res} px; loss(es) {sorted(losses)} need a person in the mask")
                log.warning("%s: %d of %d masks are empty at %d px; the mask losses skip them",
                            path, count, len(data), self.res)
                empty = ~usable
        return empty

    def _initial_model(self) -> PoseRegressor:
        cfg = self.config
        if cfg.init_checkpoint:
            model, _ = load_model(cfg.init_checkpoint, "cpu", expect=cfg.model)
        else:
            model = PoseRegressor(cfg.model)
        if cfg.freeze_encoder:
            for p in model.encoder.parameters():
                p.requires_grad_(False)
        return model

    def _anchor_model(self) -> PoseRegressor | None:
        """The source model the ``anchor`` loss compares with (adapt with an init checkpoint and a
        positive anchor weight; the config validation enforces both), else None. Copied before any
        resume, so it is the init checkpoint's model however far the run has got."""
        if self.config.mode != "adapt" or self.config.losses.get("anchor", 0) <= 0:
            return None
        source = copy.deepcopy(self.model).eval()
        for p in source.parameters():
            p.requires_grad_(False)
        return source

    @torch.no_grad()
    def add_anchor(self, batch: dict) -> dict:
        """Add the source model's shape and camera scale on the batch's images (the ``anchor``
        loss's :data:`~maskpose.train.objectives.ANCHOR_KEYS`) when the anchor loss is on; returns
        the batch."""
        if self.anchor_model is not None:
            source = self.anchor_model(self.network_input(batch)).mesh
            batch[ANCHOR_KEYS[0]], batch[ANCHOR_KEYS[1]] = source.phenotypes, source.scale
        return batch

    def _maybe_resume(self) -> None:
        path = self.out / CHECKPOINT_NAME
        if not path.exists():
            return
        state = load_checkpoint(path, map_location=self.device)
        saved = dict(state["config"])
        mine = self.config.to_dict()
        defaults = TrainConfig().to_dict()  # fields added since the checkpoint was written
        differing = sorted(k for k in mine if k not in ("steps", "device", "log_every", "checkpoint_every", "out", "smpl_model")
                           and saved.get(k, defaults[k]) != mine[k])
        if differing:
            raise ConfigError(f"{path}: a run with a different config is already there (differs in {differing}); "
                              "choose another --out or delete it")
        self.model.load_state_dict(state["model"])
        self.objective.load_state_dict(state["objective"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
        self.history = json.loads(state.get("history", "[]"))
        self.fits = _unstack_fits(state.get("fits"))
        self.empty_masks_skipped = int(state.get("empty_masks_skipped", 0))
        log.info("resumed %s at step %d", path, self.step)

    def save(self) -> Path:
        path = self.out / CHECKPOINT_NAME
        if self.rank == 0:
            state = {
                "model": self.model.state_dict(),
                "objective": self.objective.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "step": self.step,
                "config": self.config.to_dict(),
                "history": json.dumps(self.history),
                "fits": _stack_fits(self.fits),
            }
            if self.empty_mask is not None:
                state["empty_masks_skipped"] = self.empty_masks_skipped
            if self.scaler is not None:
                state["scaler"] = self.scaler.state_dict()
            save_checkpoint(path, state)
        return path

    # ------------------------------------------------------------------ one step
    def network_input(self, batch: dict) -> torch.Tensor:
        """The images the network sees: ``image``, times ``mask`` with ``masked_input`` (the
        released Mask-as-Supervision recipe: the background is blanked out)."""
        return masked_images(batch, self.config.masked_input)

    def predict(self, batch: dict):
        return self._prediction(self.forward(self.net, self.network_input(batch)), batch)

    def forward(self, net, images: torch.Tensor) -> RegressorOutput:
        """``net(images)``, under ``torch.autocast`` at ``config.precision`` (float32: the plain call).
        The head outputs come back as float32 and autocast ends here, so the body model, the
        silhouette renderer and the losses always run in float32."""
        if self.autocast_dtype is None:
            return net(images)
        with torch.autocast(self.device.type, dtype=self.autocast_dtype):
            outputs = net(images)
        return _float32(outputs)

    def backward(self, loss: torch.Tensor) -> None:
        """``loss.backward()``, scaled by the fp16 gradient scaler when there is one."""
        (loss if self.scaler is None else self.scaler.scale(loss)).backward()

    def _prediction(self, outputs: RegressorOutput, batch: dict):
        if outputs.mesh is not None:
            K = batch_intrinsics(batch, self.res, self.config.focal_px, self.device)
            return mesh_prediction(outputs.mesh, self.body, K, self.res, self.renderer)
        return joint_prediction(outputs.joints, self.res)

    def _rank_batch(self, data: MaskposeDataset, step: int, salt: int = 0) -> dict:
        indices = step_indices(self.config.seed + salt, step, len(data), self.config.batch_size)
        return load_batch(data, indices[self.rank :: self.world], self.res, self.device)

    _FIT_KEYS = ("pose", "phenotypes", "scale", "offset")  # the fields of MeshHeadOutput, in order

    def fit_parameters(self, batch: dict, mesh_out: MeshHeadOutput,
                       start_loss: torch.Tensor | None = None) -> MeshHeadOutput:
        """Refine predicted body parameters on the mask losses alone (the model is not touched):
        :func:`~maskpose.train.fitting.fit_to_masks` with the run's objective, ``fit_iterations``
        and ``fit_lr`` (Anny only: the config refuses fitting for SMPL); ``start_loss``: the
        step's own objective on ``mesh_out``, reused by the first iteration."""
        return fit_to_masks(mesh_out, batch, self.body, self.renderer, self.objective, self.res, self.config.focal_px,
                            self.config.fit_iterations, self.config.fit_lr, start_loss=start_loss)

    def _fit_loss(self, batch: dict, mesh_out: MeshHeadOutput) -> torch.Tensor | None:
        """Pull the prediction toward the stored fits of the batch's samples (pseudo-labels)."""
        rows = [i for i, index in enumerate(batch["index"].tolist()) if index in self.fits]
        if not rows:
            return None
        fits = {k: torch.stack([self.fits[int(batch["index"][i])][k] for i in rows]).to(self.device)
                for k in self._FIT_KEYS}
        pick = torch.tensor(rows, device=self.device)
        return (F.mse_loss(mesh_out.pose[pick], fits["pose"])
                + F.mse_loss(mesh_out.phenotypes[pick], fits["phenotypes"])
                + F.mse_loss(torch.log(mesh_out.scale[pick]), torch.log(fits["scale"]))
                + F.mse_loss(mesh_out.offset[pick], fits["offset"]))

    def _target_indices(self) -> torch.Tensor:
        """The global batch of this step, less the samples whose mask is empty (counted): on an empty
        mask the topology losses are a constant and the pixel losses pull the silhouette to nothing."""
        indices = step_indices(self.config.seed, self.step, len(self.data), self.config.batch_size)
        if self.empty_mask is None:
            return indices
        empty = torch.from_numpy(self.empty_mask)[indices]
        self.empty_masks_skipped += int(empty.sum())
        return indices[~empty]

    def train_step(self) -> dict:
        cfg = self.config
        indices = self._target_indices()
        if len(indices) < self.world:  # every sample drawn has an empty mask: no update (no source batch)
            self.step += 1
            return {"step": self.step, "loss": 0.0, "empty_masks_skipped": self.empty_masks_skipped}
        batch = self.add_anchor(load_batch(self.data, indices[self.rank :: self.world], self.res, self.device))
        mixed = False
        if self.source is not None:
            gen = torch.Generator().manual_seed(cfg.seed * 7919 + self.step)  # the same on every rank
            mixed = float(torch.rand((), generator=gen)) < cfg.source_ratio
        self.optimizer.zero_grad(set_to_none=True)
        # With a source batch too, the target pass accumulates locally and the source pass's
        # backward synchronises both (DDP allows one forward per synchronised backward).
        sync_later = self.net.no_sync() if (mixed and self.world > 1) else contextlib.nullcontext()
        with sync_later:
            outputs = self.forward(self.net, self.network_input(batch))
            loss, parts = self.objective(self._prediction(outputs, batch), batch)
            if cfg.fit_every and self.step % cfg.fit_every == 0:
                # fit from this step's own forward and loss (the weights are those of the update
                # to come): no second forward of the network, and none of the first fitting iteration
                fitted = self.fit_parameters(batch, outputs.mesh, start_loss=loss).tensors()
                for i, index in enumerate(batch["index"].tolist()):
                    self.fits[int(index)] = {k: v[i].cpu() for k, v in fitted.items()}
            if cfg.fit_every:
                fit_loss = self._fit_loss(batch, outputs.mesh)
                if fit_loss is not None:
                    loss = loss + cfg.fit_weight * fit_loss
                    parts["fit"] = float(fit_loss.detach())
            self.backward(loss)
        if mixed:
            source_batch = self._rank_batch(self.source, self.step, salt=1)
            source_loss, source_parts = self.source_objective(self.predict(source_batch), source_batch)
            self.backward(source_loss)
            loss = loss.detach() + source_loss.detach()
            parts.update({f"source_{k}": v for k, v in source_parts.items()})
        if cfg.lr_schedule == "cosine":  # a function of the step alone, so a resumed run matches
            lr = cfg.lr * (0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * self.step / cfg.steps)))
            for group in self.optimizer.param_groups:
                group["lr"] = lr
        if self.scaler is None:
            self.optimizer.step()
        else:  # fp16: unscale, skip the step on inf/NaN gradients, adapt the scale
            self.scaler.step(self.optimizer)
            self.scaler.update()
        self.step += 1
        record = {"step": self.step, "loss": float(loss.detach()), **parts}
        if self.empty_mask is not None:
            record["empty_masks_skipped"] = self.empty_masks_skipped
        return record

    @torch.no_grad()
    def dataset_loss(self, batch_size: int | None = None) -> float:
        """Mean objective over the whole training dataset (in order, no update): a noise-free
        measure of training progress."""
        batch_size = batch_size or self.config.batch_size
        total, count = 0.0, 0
        for start in range(0, len(self.data), batch_size):
            indices = torch.arange(start, min(start + batch_size, len(self.data)))
            if self.empty_mask is not None:  # as in training: empty masks are left out
                indices = indices[~torch.from_numpy(self.empty_mask)[indices]]
                if not len(indices):
                    continue
            batch = self.add_anchor(load_batch(self.data, indices, self.res, self.device))
            loss, _ = self.objective(self.predict(batch), batch)
            total += float(loss) * len(indices)
            count += len(indices)
        return total / count

    # ------------------------------------------------------------------ the loop
    def run(self) -> TrainResult:
        cfg = self.config
        self.out.mkdir(parents=True, exist_ok=True)
        with _run_lock(self.out) if self.rank == 0 else contextlib.nullcontext(), Termination() as termination:
            if self.rank == 0:
                _truncate_log(self.out / LOG_NAME, self.step)
            return self._run(cfg, termination)

    def _run(self, cfg: TrainConfig, termination: Termination) -> TrainResult:
        writer = _summary_writer(self.out) if self.rank == 0 else None
        log_file = open(self.out / LOG_NAME, "a") if self.rank == 0 else None
        bar = tqdm(total=cfg.steps, initial=self.step, desc=f"{cfg.mode}", disable=not self.progress or self.rank != 0,
                   dynamic_ncols=True)
        start = time.time()
        try:
            while self.step < cfg.steps:
                record = self.train_step()
                bar.update(1)
                bar.set_postfix(loss=f"{record['loss']:.4f}")
                if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                    record["time_s"] = round(time.time() - start, 2)
                    self.history.append(record)
                    if log_file:
                        log_file.write(json.dumps(record) + "\n")
                        log_file.flush()
                    if writer:
                        for key, value in record.items():
                            if key != "step":
                                writer.add_scalar(f"{cfg.mode}/{key}", value, self.step)
                if self.step % cfg.checkpoint_every == 0:
                    self.save()
                termination.check()
        except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (TrainingTerminated)
            # No run loses work: keep what was trained so far; running again resumes here.
            self.save()
            raise
        finally:
            bar.close()
            if writer:
                writer.close()
            if log_file:
                log_file.close()
        checkpoint = self.save()
        return TrainResult(self.out, checkpoint, self.step, self.history, self.empty_masks_skipped)


#: The fields each loss reads: a dataset where one holds nothing usable is refused before training.
#: (``params`` reads the body model's parameters: ``Objective.param_fields``.)
_LOSS_FIELDS = {"joints3d": ("joints3d",), "joints2d": ("joints2d",),
                **{name: ("mask",) for name in (*MASK_LOSSES, "silhouette_sup")}}
_SCAN_VALUES = 1 << 22  # values per chunk when scanning an array (16 MiB as float32)


def _usable_samples(data: MaskposeDataset, field: str, res: int) -> np.ndarray:
    """Per sample of ``data``, whether ``field`` holds something a loss can use: a mask with a person
    pixel once resized to the model resolution ``res`` (nearest, as ``load_batch`` resizes), a label
    with at least one known joint (all its coordinates finite). Streams the memory-mapped array in
    chunks, never loading it whole; an infinite label is refused naming the file and the sample."""
    array = data.arrays[field]
    per_sample = max(1, int(np.prod(array.shape[1:])))
    chunk = max(1, _SCAN_VALUES // per_sample)
    usable = np.zeros(len(data), dtype=bool)
    for start in range(0, len(data), chunk):
        rows = data.indices[start : start + chunk]
        values = np.asarray(array[rows])
        if field == "mask":
            masks = torch.from_numpy(values > 0).float()[:, None]
            if data.resolution[1] != res:
                masks = F.interpolate(masks, size=(res, res), mode="nearest")
            usable[start : start + len(rows)] = (masks.flatten(1).amax(1) > 0).numpy()
            continue
        infinite = np.isinf(values).reshape(len(rows), -1).any(1)
        if infinite.any():
            raise DataError(f"{data.path / (field + '.npy')}: sample {int(rows[infinite.argmax()])} holds infinite "
                            "values (a missing joint is NaN; Inf is not allowed)")
        finite = np.isfinite(values)
        if finite.ndim > 2:  # a joint (or rotation) is known when all its coordinates are
            finite = finite.all(-1)
        usable[start : start + len(rows)] = finite.reshape(len(rows), -1).any(1)
    return usable


@contextlib.contextmanager
def _run_lock(out: Path):
    """Hold ``out/run.lock`` (``fcntl.flock``, with this pid inside) for the block; ``ConfigError``
    naming the other run's pid when another process holds it. A lock file left by a dead process
    is not locked (the kernel released it) and is taken over."""
    path = out / LOCK_NAME
    handle = open(path, "a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            handle.seek(0)
            pid = handle.read().strip() or "unknown"
            raise ConfigError(f"{out}: another run (pid {pid}) is training in this folder ({path} is locked); "
                              "wait for it to finish or choose another --out") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            handle.flush()
            fcntl.flock(handle, fcntl.LOCK_UN)
    finally:
        handle.close()


class Termination:
    """Stop signals during a run (default SIGTERM; main thread only: elsewhere Python cannot install
    signal handlers). The first signal is noted (``requested``) and the loop stops after the step
    it interrupts (logged, checkpointed if due), raising :class:`TrainingTerminated` from
    :meth:`check`, so a terminated run saves its checkpoint as Ctrl-C does and loses no log record;
    a second signal raises at once. Online adaptation also routes SIGINT here, to finish its frame."""

    def __init__(self, signals: tuple[int, ...] = (signal.SIGTERM,)):
        self.signals = tuple(signals)
        self.requested = False
        self.previous: dict[int, object] = {}

    def __enter__(self) -> Termination:
        if threading.current_thread() is threading.main_thread():
            for sig in self.signals:
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, previous in self.previous.items():  # None: a handler installed outside Python, restored as the default
            signal.signal(sig, signal.SIG_DFL if previous is None else previous)

    def _handle(self, signum, frame):
        if self.requested:
            raise TrainingTerminated(f"terminated by signal {signum}")
        self.requested = True

    def check(self) -> None:
        if self.requested:
            raise TrainingTerminated(f"terminated by {' or '.join(signal.Signals(s).name for s in self.signals)}")


def _truncate_log(path: Path, step: int) -> None:
    """Drop the records of ``log.jsonl`` after ``step`` (logged after the last checkpoint by a run
    that was then killed, and about to be logged again by the resumed run) and any torn last line."""
    if not path.exists():
        return
    kept, changed = [], False
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
            keep = isinstance(record, dict) and int(record.get("step", 0)) <= step
        except (ValueError, TypeError):
            keep = False
        if keep:
            kept.append(line)
        else:
            changed = True
    if changed:
        atomic_write_text(path, "".join(f"{line}\n" for line in kept))


def _stack_fits(fits: dict[int, dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Fits as plain tensors for a weights-only checkpoint."""
    if not fits:
        return {}
    indices = sorted(fits)
    stacked = {k: torch.stack([fits[i][k] for i in indices]) for k in fits[indices[0]]}
    stacked["index"] = torch.tensor(indices)
    return stacked


def _unstack_fits(stacked: dict | None) -> dict[int, dict[str, torch.Tensor]]:
    if not stacked:
        return {}
    keys = [k for k in stacked if k != "index"]
    return {int(i): {k: stacked[k][row] for k in keys} for row, i in enumerate(stacked["index"].tolist())}


def _summary_writer(out: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is a dependency, but logging must never stop a run
        return None
    return SummaryWriter(str(out / "tensorboard"))


def supervised_losses(model, fields=None, body: str = "anny") -> dict[str, float]:
    """The supervised losses of a source batch for a model of these heads: the pretrain defaults,
    less ``params`` without the mesh head (a joint-head model has no body parameters) or when the
    source dataset's ``fields`` (when given) lack the body's parameters (a real source such as
    Human3.6M without SMPL fits: it trains on its joints alone)."""
    losses = dict(DEFAULT_LOSSES["pretrain"])
    if "mesh" not in model.heads or (fields is not None and not set(param_fields(body)) <= set(fields)):
        losses.pop("params", None)
    return losses


def stage1_config(config: TrainConfig) -> TrainConfig:
    """Stage 1 of train-unsup's two-stage recipe: the run's own config (model, seed, batch, lr,
    device, body, precision, masked input, ...) as a supervised ``pretrain`` on ``source_data`` for
    ``stage1_steps`` steps, in ``out/stage1``, without source batches or an initial checkpoint."""
    return replace(config, mode="pretrain", data=config.source_data, out=str(Path(config.out) / "stage1"),
                   losses=supervised_losses(config.model, MaskposeDataset(config.source_data).fields, config.body),
                   steps=config.stage1_steps, source_data="", source_ratio=0.0, init_checkpoint="", stage1_steps=0)


def _float32(outputs: RegressorOutput) -> RegressorOutput:
    """The head outputs of an autocast forward, cast to float32 (``None`` heads stay ``None``)."""
    def cast(head):
        return None if head is None else type(head)(**{k: v.float() for k, v in head.tensors().items()})

    return RegressorOutput(**{name: cast(head) for name, head in vars(outputs).items()})


def train(config: TrainConfig, progress: bool = True) -> TrainResult:
    """Run (or resume) the training described by ``config``; returns where it wrote its checkpoint.

    A train-unsup config with ``stage1_steps > 0`` runs both stages of the released recipe: stage 1
    (:func:`stage1_config`, resumable in ``out/stage1``), then stage 2 in ``out`` from its checkpoint."""
    if config.mode == "train-unsup" and config.stage1_steps > 0:
        config.validate()
        first = Trainer(stage1_config(config), progress).run()
        config = replace(config, stage1_steps=0, init_checkpoint=str(first.checkpoint))
    return Trainer(config, progress).run()


__all__ = ["train", "Trainer", "Termination", "TrainingTerminated", "TrainConfig", "TrainResult", "step_indices",
           "LABEL_FIELDS", "SUPERVISED_LOSSES"]

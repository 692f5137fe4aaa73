"""Checkpoints: written atomically (temp file + ``os.replace``), the config saved inside, loaded
with ``weights_only=True`` so loading never executes pickled code.

The body model a checkpoint was trained with is its config's ``body`` (a checkpoint written before
SMPL was a training option has none: ``"anny"``); :func:`save_checkpoint` also records it with the
head sizes as the state's ``"body"`` entry (name, pose size, shape size). Never any body-model data:
the SMPL body keeps its arrays in non-persistent buffers, outside every ``state_dict``.
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Mapping
from pathlib import Path

import torch

from maskpose.body.interface import BODY_MODELS
from maskpose.errors import ConfigError
from maskpose.io import atomic_write
from maskpose.models.regressor import ModelConfig, PoseRegressor


def save_checkpoint(path: str | Path, state: dict) -> Path:
    """Write ``state`` (tensors, numbers, strings, lists, dicts) atomically to ``path``.

    A failed write (a full disk, a read-only folder) raises ``OSError`` naming ``path`` and leaves
    the previous checkpoint there as it was, with no temporary file beside it."""
    path = Path(path)
    config = state.get("config")
    if "body" not in state and isinstance(config, Mapping) and isinstance(config.get("model"), Mapping):
        model = config["model"]
        state = {**state, "body": {"name": saved_body(config), "pose_size": [model.get("num_rotations"), 6],
                                   "shape_size": model.get("num_phenotypes")}}
    try:
        with atomic_write(path) as tmp:
            torch.save(state, tmp)
    except OSError as err:
        raise OSError(err.errno, f"{path}: checkpoint not written ({err.strerror or err}); "
                                 "the previous checkpoint, if any, is kept") from err
    return path


_TORCH_BOILERPLATE = ("Weights only load failed", "Check the documentation", "Please file an issue")


def _first_line(err: BaseException) -> str:
    """The informative line of an error message (torch's weights-only errors are paragraphs whose
    first and last lines are the same advice every time)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith(_TORCH_BOILERPLATE)]
    text = (useful or lines or [type(err).__name__])[0]
    return text.removeprefix("WeightsUnpickler error:").strip() or type(err).__name__


def saved_masked_input(config: Mapping) -> bool:
    """Whether the model of a checkpoint's saved config sees the image times the person mask
    (``TrainConfig.masked_input``; absent in older checkpoints: no). Such a model needs the mask
    with every input."""
    return bool(config.get("masked_input", False))


def saved_body(config: Mapping) -> str:
    """The body model of a saved config: its ``body``, ``"anny"`` when it has none (written before
    SMPL was a training option)."""
    return config.get("body", "anny") if isinstance(config, Mapping) else "anny"


def check_body(path: str | Path, config: Mapping, body: str) -> None:
    """``ConfigError`` unless the checkpoint at ``path`` (saved config ``config``) was trained with
    the body model ``body``."""
    trained = saved_body(config)
    if trained != body:
        raise ConfigError(f"checkpoint {path} was trained with body {trained!r}; this run uses {body!r}")


def check_saved_config(path: str | Path, config) -> None:
    """``ConfigError`` naming the checkpoint unless its saved config has a valid ``model`` mapping
    and a finite ``focal`` >= 0 (when present)."""
    if not isinstance(config, Mapping):
        raise ConfigError(f"{path}: the checkpoint's config is not a mapping (got {type(config).__name__})")
    if "model" not in config:
        raise ConfigError(f"{path}: the checkpoint's config has no 'model' entry")
    try:
        ModelConfig.from_dict(config["model"])
    except (ConfigError, TypeError) as err:
        raise ConfigError(f"{path}: the checkpoint's model configuration is invalid: {err}") from None
    body = saved_body(config)
    if not isinstance(body, str) or body not in BODY_MODELS:
        raise ConfigError(f"{path}: the checkpoint's body must be one of {BODY_MODELS}, got {body!r}")
    focal = config.get("focal", 0.0)
    if focal is None:
        return
    if isinstance(focal, bool) or not isinstance(focal, (int, float)) or not math.isfinite(focal) or focal < 0:
        raise ConfigError(f"{path}: the checkpoint's focal must be a finite number >= 0 (0: the default), got {focal!r}")


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """The state saved by :func:`save_checkpoint`, read with ``weights_only=True`` (pickled code is
    refused, never run); ``ConfigError`` naming ``path`` for a missing, unreadable or malformed
    checkpoint (including its saved model configuration and focal)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: checkpoint does not exist")
    if not path.is_file():
        raise ConfigError(f"{path}: checkpoint is not a file")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if "GLOBAL" in str(err):  # weights_only refuses anything but tensors and plain data
            raise ConfigError(f"{path}: refused to load: the file holds pickled objects other than tensors and "
                              f"plain data, which could run code ({_first_line(err)})") from None
        raise ConfigError(f"{path}: not a readable maskpose checkpoint ({_first_line(err)})") from None
    except Exception as err:  # corrupt file, not a torch file
        raise ConfigError(f"{path}: not a readable maskpose checkpoint ({_first_line(err)})") from None
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise ConfigError(f"{path}: not a maskpose checkpoint (missing 'model' or 'config')")
    check_saved_config(path, state["config"])
    return state


def load_model(path: str | Path, device="cpu", expect: ModelConfig | None = None,
               body: str | None = None) -> tuple[PoseRegressor, dict]:
    """Build the regressor saved in a checkpoint. With ``expect``, refuse a checkpoint of another
    model configuration (naming the differing fields) instead of failing inside ``load_state_dict``;
    with ``body``, one trained with another body model (:func:`check_body`)."""
    state = load_checkpoint(path, map_location=device)
    if body is not None:
        check_body(path, state["config"], body)
    saved = ModelConfig.from_dict(state["config"]["model"])
    if expect is not None and saved != expect:
        diff = {k: (v, getattr(expect, k)) for k, v in vars(saved).items() if getattr(expect, k) != v}
        raise ConfigError(f"{path}: checkpoint model configuration differs from the requested one: "
                          + ", ".join(f"{k} is {a} in the checkpoint, {b} requested" for k, (a, b) in diff.items()))
    model = PoseRegressor(saved).to(device)
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, TypeError, AttributeError) as err:
        raise ConfigError(f"{path}: weights do not fit the saved model configuration ({_first_line(err)})") from None
    return model, state


def at_resolution(checkpoint: str | Path, resolution: int, out: str | Path) -> Path:
    """``checkpoint`` saved as a model of input ``resolution`` pixels, written to ``out``: the start
    of a fine-tuning run at another resolution than the model was trained at.

    The weights are unchanged: the encoder is convolutional and its heads read globally pooled
    features, so they fit any input size. Only the saved ``model.resolution`` changes, and a saved
    focal length (pixels) with it, by ``resolution / old``: the same field of view. A saved focal of
    0 already means twice the resolution. No optimiser state or history is kept.

    Raises:
        ConfigError: ``resolution`` is not a valid input size of this encoder (``ModelConfig``)."""
    state = load_checkpoint(checkpoint)
    config = dict(state["config"])
    model = ModelConfig.from_dict(config["model"])
    old = model.resolution
    config["model"] = {**config["model"], "resolution": resolution}
    ModelConfig.from_dict(config["model"]).validate()
    focal = float(config.get("focal", 0.0) or 0.0)
    config["focal"] = focal * resolution / old
    return save_checkpoint(out, {"model": state["model"], "config": config, "step": 0})

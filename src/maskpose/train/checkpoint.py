"""Checkpoints: written atomically (temp file + ``os.replace``), the config saved inside, loaded
with ``weights_only=True`` so loading never executes pickled code."""

from __future__ import annotations

from pathlib import Path

import torch

from maskpose.errors import ConfigError
from maskpose.io import atomic_write
from maskpose.models.regressor import ModelConfig, PoseRegressor


def save_checkpoint(path: str | Path, state: dict) -> Path:
    """Write ``state`` (tensors, numbers, strings, lists, dicts) atomically to ``path``."""
    path = Path(path)
    with atomic_write(path) as tmp:
        torch.save(state, tmp)
    return path


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: checkpoint does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # corrupt file, pickled code, not a torch file
        raise ConfigError(f"{path}: not a readable maskpose checkpoint ({err})") from None
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise ConfigError(f"{path}: not a maskpose checkpoint (missing 'model' or 'config')")
    return state


def load_model(path: str | Path, device="cpu", expect: ModelConfig | None = None) -> tuple[PoseRegressor, dict]:
    """Build the regressor saved in a checkpoint. With ``expect``, refuse a checkpoint of another
    model configuration (naming the differing fields) instead of failing inside ``load_state_dict``."""
    state = load_checkpoint(path, map_location=device)
    saved = ModelConfig.from_dict(state["config"]["model"])
    if expect is not None and saved != expect:
        diff = {k: (v, getattr(expect, k)) for k, v in vars(saved).items() if getattr(expect, k) != v}
        raise ConfigError(f"{path}: checkpoint model configuration differs from the requested one: "
                          + ", ".join(f"{k} is {a} in the checkpoint, {b} requested" for k, (a, b) in diff.items()))
    model = PoseRegressor(saved).to(device)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as err:
        raise ConfigError(f"{path}: weights do not fit the saved model configuration ({err})") from None
    return model, state

"""Input validation shared by the topology functions: one clear ``MaskposeError`` per problem."""

from __future__ import annotations

import torch

from maskpose.errors import ConfigError, MaskposeError, all_finite, check_shape
from maskpose.typing import BINARIZATIONS, KERNELS, Binarization, Kernel

#: Default gradient through the 0.5 threshold: the one training uses (``TrainConfig``, docs/design.md §9).
DEFAULT_BINARIZATION: Binarization = "soft"
#: Default temperature of the ``"soft"`` gradient, as in training.
DEFAULT_TEMPERATURE = 0.1


def check_mask(name: str, mask) -> None:
    """Raise ``MaskposeError`` unless ``mask`` is a finite floating-point ``(B, 1, H, W)`` tensor."""
    if not isinstance(mask, torch.Tensor):
        raise MaskposeError(f"{name} must be a torch.Tensor of shape (B, 1, H, W), got {type(mask).__name__}")
    if mask.ndim != 4:
        raise MaskposeError(
            f"{name} must be 4-D with shape (B, 1, H, W), got {mask.ndim}-D shape {tuple(mask.shape)}")
    check_shape(name, mask, (None, 1, None, None))
    if not mask.is_floating_point():
        raise MaskposeError(f"{name} must be a floating-point tensor (values in [0, 1]), got {mask.dtype}")
    if mask.shape[0] == 0 or mask.shape[2] == 0 or mask.shape[3] == 0:
        raise MaskposeError(f"{name} must not be empty, got shape {tuple(mask.shape)}")
    if not all_finite(mask):
        bad = int((~torch.isfinite(mask)).sum())
        raise MaskposeError(f"{name} contains {bad} NaN or infinite value(s); masks must be finite, in [0, 1]")


def check_pair(pred_name: str, pred, target_name: str, target) -> None:
    """Both masks valid, with the same shape (and device)."""
    check_mask(pred_name, pred)
    check_mask(target_name, target)
    if pred.shape != target.shape:
        raise MaskposeError(
            f"{pred_name} and {target_name} must have the same shape, "
            f"got {tuple(pred.shape)} and {tuple(target.shape)}")
    if pred.device != target.device:
        raise MaskposeError(
            f"{pred_name} and {target_name} must be on the same device, got {pred.device} and {target.device}")


def check_options(kernel: Kernel, iterations: int | None, binarization: Binarization, temperature: float) -> None:
    """Validate the options shared by every function of the chain."""
    if kernel not in KERNELS:
        raise ConfigError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    if iterations is not None and (isinstance(iterations, bool) or not isinstance(iterations, int)
                                   or iterations < 0):
        raise ConfigError(f"iterations must be a non-negative int or None, got {iterations!r}")
    if binarization not in BINARIZATIONS:
        raise ConfigError(f"binarization must be one of {BINARIZATIONS}, got {binarization!r}")
    if not temperature > 0:
        raise ConfigError(f"temperature must be > 0, got {temperature!r}")

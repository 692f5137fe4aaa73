"""Exceptions for bad input. Every module raises these (or ValueError) with a message that names
the file, argument or tensor at fault; the CLI prints the message as one line, without a traceback.

Also the shared argument checks of every layer: :func:`check_shape`, :func:`all_finite`,
:func:`check_reduction` and :func:`reduce` (the one batch reduction of every loss and metric)."""

from __future__ import annotations

import math

from maskpose.typing import REDUCTIONS, Reduction


class MaskposeError(ValueError):
    """Bad input: the message names the problem and where it is."""


class DataError(MaskposeError):
    """A dataset, image, mask, video or annotation file is missing, unreadable or malformed."""


class ConfigError(MaskposeError):
    """A configuration value, checkpoint or loss name does not fit."""


def all_finite(tensor) -> bool:
    """``bool(torch.isfinite(tensor).all())``, from the tensor's minimum and maximum.

    NaN propagates through both and an infinity is one of them, so the answer is the same; on the
    CPU it is about 20x faster than ``isfinite`` (which runs element by element) followed by a
    bool ``all``. It runs on every mask, vertex and camera check of a training step.
    """
    if not tensor.is_floating_point() or tensor.numel() == 0:
        return True
    low, high = tensor.detach().aminmax()
    return math.isfinite(float(low)) and math.isfinite(float(high))


def check_shape(name: str, tensor, expected: tuple) -> None:
    """Raise ``MaskposeError`` unless ``tensor.shape`` matches ``expected``.

    ``expected`` holds ints or ``None`` (any size), e.g. ``(None, 17, 3)``.
    """
    shape = tuple(tensor.shape)
    if len(shape) != len(expected) or any(e is not None and e != s for e, s in zip(expected, shape)):
        pretty = "(" + ", ".join("*" if e is None else str(e) for e in expected) + ")"
        raise MaskposeError(f"{name} must have shape {pretty}, got {shape}")


def check_tensor(name: str, tensor, expected: tuple, floating: bool = False, finite: str | None = None) -> None:
    """Raise ``MaskposeError`` unless ``tensor`` is a tensor of shape ``expected`` (as in :func:`check_shape`).

    Args:
        name: the argument's name, for the message.
        tensor: the value to check.
        expected: ints or ``None`` (any size) per dimension.
        floating: also require a floating-point dtype.
        finite: also require finite values; the word naming them in the message (e.g. ``"values"``,
            ``"coordinates"``), ``None`` to skip the check.

    Example:
        >>> import torch
        >>> check_tensor("joints", torch.zeros(2, 17, 3), (None, 17, 3), floating=True, finite="coordinates")
        >>> check_tensor("joints", torch.zeros(2, 17, 2), (None, 17, 3))
        Traceback (most recent call last):
        ...
        maskpose.errors.MaskposeError: joints must have shape (*, 17, 3), got (2, 17, 2)
    """
    if not hasattr(tensor, "shape") or not hasattr(tensor, "is_floating_point"):
        raise MaskposeError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
    check_shape(name, tensor, expected)
    if floating and not tensor.is_floating_point():
        raise MaskposeError(f"{name} must be a floating-point tensor, got {tensor.dtype}")
    if finite is not None and not all_finite(tensor):
        raise MaskposeError(f"{name} contains NaN or infinite {finite}")


def check_reduction(reduction: Reduction) -> None:
    """Raise ``ConfigError`` unless ``reduction`` is one of ``maskpose.typing.REDUCTIONS``."""
    if reduction not in REDUCTIONS:
        raise ConfigError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")


def reduce(values, reduction: Reduction):
    """Reduce per-sample values ``(B,)`` over the batch: ``"mean"``, ``"sum"`` or ``"none"`` (unchanged).

    The one reduction of every maskpose loss and metric.

    Args:
        values: ``(B,)`` tensor of per-sample values.
        reduction: ``"mean"`` (scalar), ``"sum"`` (scalar) or ``"none"`` (``values`` itself).

    Raises:
        ConfigError: ``reduction`` is not one of the three (the message names it).

    Example:
        >>> import torch
        >>> v = torch.tensor([1.0, 2.0, 6.0])
        >>> reduce(v, "mean").item(), reduce(v, "sum").item(), reduce(v, "none").tolist()
        (3.0, 9.0, [1.0, 2.0, 6.0])
    """
    check_reduction(reduction)
    if reduction == "mean":
        return values.mean()
    if reduction == "sum":
        return values.sum()
    return values

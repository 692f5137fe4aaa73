"""Device names: one check that turns ``--device`` into a ``torch.device`` or a clear error; and
the intra-op thread count for a block of work (:func:`torch_threads`).

Core layer: imports only torch and :mod:`maskpose.errors`, so every layer (synthesis, training,
the apps) resolves devices the same way.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from maskpose.errors import ConfigError


def resolve_device(name) -> torch.device:
    """The ``torch.device`` of a device name (``cpu``, ``cuda``, ``cuda:1``, ``mps``), or
    ``ConfigError`` when the name is not a device or the device is not available on this machine.
    Every training verb, ``evaluate``, ``predict`` and the demo resolve their ``--device`` here."""
    if isinstance(name, torch.device):
        device = name
    else:
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"device must be a name such as 'cpu', 'cuda' or 'cuda:1', got {name!r}")
        try:
            device = torch.device(name)
        except (RuntimeError, ValueError, TypeError):
            raise ConfigError(f"device {name!r} is not a torch device; expected cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r} is not available on this machine (torch.cuda.is_available() is False)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"device {name!r} is not available on this machine "
                              f"({torch.cuda.device_count()} CUDA device(s): cuda:0..)")
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise ConfigError(f"device {name!r} is not available on this machine "
                              "(torch.backends.mps.is_available() is False)")
    elif device.type != "cpu":
        raise ConfigError(f"device {name!r} is not supported; expected cpu, cuda, cuda:N or mps")
    return device


__all__ = ["resolve_device"]


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[int]:
    """``torch.set_num_threads(threads)`` for the block (``None``: leave it), restored after;
    yields the number of threads in use."""
    if threads is not None and threads < 1:
        raise ConfigError(f"threads must be >= 1, got {threads}")
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(previous)

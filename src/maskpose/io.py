"""Atomic file writes: a reader sees the old file or the new one, never a half-written one.

Everything maskpose writes that a later run reads back (checkpoints, dataset metadata, benchmark
state, perturbations) goes through :func:`atomic_write`. This module imports nothing from maskpose
but :mod:`maskpose.errors`.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one step.

    The temporary file is unique to this call (two writers never share it), lies in the same folder
    (so ``os.replace`` is atomic) and is removed when the block raises, so a failed write (a full
    disk, an interrupt) leaves ``path`` as it was and no stray temporary file behind.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> with atomic_write(folder / "a.txt") as tmp:
        ...     _ = tmp.write_text("new")
        >>> (folder / "a.txt").read_text(), sorted(p.name for p in folder.iterdir())
        ('new', ['a.txt'])
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (:func:`atomic_write`)."""
    with atomic_write(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def atomic_write_json(path: str | os.PathLike, payload: Any) -> Path:
    """Write ``payload`` as indented JSON (with a final newline) to ``path`` atomically."""
    return atomic_write_text(path, json.dumps(payload, indent=2) + "\n")


__all__ = ["atomic_write", "atomic_write_json", "atomic_write_text"]

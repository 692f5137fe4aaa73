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

from maskpose.errors import ConfigError


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


def _writable_folder(folder: Path, option: str, path: Path) -> None:
    """``folder`` exists (or can be created) and can be written to; ``ConfigError`` names ``path``."""
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise ConfigError(f"{option} {path}: {probe} is a file, not a folder")
    if probe.exists() and not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(f"{option} {path}: folder {probe} is not writable")


def check_output_file(path: str | os.PathLike, option: str = "--out", suffixes: tuple[str, ...] | None = None) -> Path:
    """Refuse, before any work, an output file that cannot be written: ``path`` is a folder, its
    folder is a file or read-only, or (with ``suffixes``) its extension is not one of them.
    Raises ``ConfigError`` naming the option and the path; returns ``Path(path)``."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{option} {path}: is a folder; give a file name"
                          + (f" ending in {' or '.join(suffixes)}" if suffixes else ""))
    if suffixes is not None and path.suffix.lower() not in suffixes:
        raise ConfigError(f"{option} {path}: extension {path.suffix or '(none)'!r} is not one of {', '.join(suffixes)}")
    if path.exists() and not os.access(path, os.W_OK):
        raise ConfigError(f"{option} {path}: file is not writable")
    _writable_folder(path.parent, option, path)
    return path


def check_output_folder(path: str | os.PathLike, option: str = "--out") -> Path:
    """Refuse, before any work, an output folder that cannot be written: ``path`` is an existing
    file, or it (or the folder it would be created in) is read-only. ``ConfigError`` names the path."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{option} {path}: exists and is a file, not a folder")
    _writable_folder(path, option, path)
    return path


__all__ = ["atomic_write", "atomic_write_json", "atomic_write_text", "check_output_file", "check_output_folder"]

"""Split a dataset in two, keeping the people of one photo together (``maskpose data split``).

Adapting on crops of one half of a real dataset and scoring on the other half is an honest
held-out test only if no photo lies in both: two people of one photo share its background, light
and camera. :func:`split_dataset` therefore splits by the field ``image_index`` (the source photo
of each crop; :func:`maskpose.data.adapters.import_coco` writes it) when the dataset has it, and
by sample otherwise.

The split is a pure function of the dataset and ``(fraction, seed)``: the groups (photos, or
samples) are shuffled by a generator seeded with ``seed``, and part A takes groups in that order
until it holds at least ``fraction`` of the samples; part B takes the rest. Each part keeps at
least one group. Within a part, samples keep their order in the source dataset.

Crops of one video (``maskpose masks extract`` records each crop's ``frame_index``, and no
``image_index``) are split **in time** instead (:func:`split_in_time`): neighbouring frames show the
same people in nearly the same pose, so a shuffle would put near-copies of every held-out crop in
part A. Part A takes the earliest frames until it holds at least ``fraction`` of the samples, part B
the later ones; ``seed`` plays no part.

Both parts are written with :class:`~maskpose.data.dataset.DatasetWriter` (every field of the
source is copied as stored, in chunks: the source is streamed, never loaded whole). ``meta.json``
keeps the source's domain, split and attributes; an attribute that is a per-sample list (a list
of ``num_samples`` entries, such as the COCO adapter's ``annotation_ids`` or the folder
adapter's ``stems``) is cut to the part's samples, and ``split`` records the provenance:
source path, part, fraction, seed, what was split by, and each sample's ``source_indices``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from maskpose.data.dataset import DatasetWriter, MaskposeDataset
from maskpose.errors import ConfigError, DataError

#: Samples copied at once.
_CHUNK = 256


def _check_fraction(fraction) -> None:
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not math.isfinite(fraction) \
            or not 0.0 < fraction < 1.0:
        raise ConfigError(f"fraction must be a number in (0, 1) (the share of samples in part A), got {fraction!r}")


def split_groups(num_samples: int, groups: np.ndarray | None, fraction: float = 0.5,
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The sample indices ``(a, b)`` of a split (each sorted): whole groups only (``groups``: a
    group id per sample, e.g. ``image_index``; ``None``: every sample its own group), part A the
    shortest prefix of the seeded shuffle of the groups that holds at least ``fraction`` of the
    samples, both parts at least one group. ``ConfigError`` for a fraction outside (0, 1) or a
    negative seed, ``DataError`` when there are fewer than two groups."""
    _check_fraction(fraction)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be an integer >= 0, got {seed!r}")
    ids = np.arange(num_samples) if groups is None else np.asarray(groups).reshape(-1)
    if len(ids) != num_samples:
        raise DataError(f"{len(ids)} group ids for {num_samples} samples")
    unique, members = np.unique(ids, return_inverse=True)
    if len(unique) < 2:
        what = "source image" if groups is not None else "sample"
        raise DataError(f"cannot split {num_samples} sample(s) of one {what} into two parts "
                        "(the people of one image stay together)")
    order = np.random.default_rng(int(seed)).permutation(len(unique))
    counts = np.bincount(members, minlength=len(unique))[order]
    taken = int(np.searchsorted(np.cumsum(counts), fraction * num_samples - 1e-9) + 1)
    taken = min(max(taken, 1), len(unique) - 1)
    in_a = np.zeros(len(unique), dtype=bool)
    in_a[order[:taken]] = True
    part_a = in_a[members]
    return np.flatnonzero(part_a), np.flatnonzero(~part_a)


def split_in_time(frame_index: np.ndarray, fraction: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """The sample indices ``(a, b)`` of a split in time (each sorted): part A the samples of the
    earliest frames, whole frames only, until it holds at least ``fraction`` of the samples; part
    B those of the later frames; both at least one frame. ``ConfigError`` for a fraction outside
    (0, 1), ``DataError`` when the samples come from fewer than two frames."""
    _check_fraction(fraction)
    frames = np.asarray(frame_index).reshape(-1)
    unique, counts = np.unique(frames, return_counts=True)
    if len(unique) < 2:
        raise DataError(f"cannot split {len(frames)} sample(s) of one video frame in time into two parts")
    taken = int(np.searchsorted(np.cumsum(counts), fraction * len(frames) - 1e-9) + 1)
    taken = min(max(taken, 1), len(unique) - 1)
    part_a = frames <= unique[taken - 1]
    return np.flatnonzero(part_a), np.flatnonzero(~part_a)


def split_dataset(path: str | os.PathLike, out_a: str | os.PathLike, out_b: str | os.PathLike,
                  fraction: float = 0.5, seed: int = 0) -> dict:
    """Split the dataset at ``path`` into two datasets ``out_a`` and ``out_b`` (see the module
    docstring: by ``image_index`` when the dataset has it, else in time by ``frame_index`` when it
    has that, else by sample).

    Returns a summary: ``by`` (``"image_index"``, ``"frame_index"`` or ``"sample"``), and for each part ``a`` / ``b``
    its ``path``, ``num_samples``, ``num_groups`` and ``indices`` (in the source). ``ConfigError``
    for a bad fraction or seed, an output that is the source or the other output; ``DataError``
    for a missing or unreadable dataset, or one that cannot be split (a single image)."""
    path, out_a, out_b = Path(path), Path(out_a), Path(out_b)
    data = MaskposeDataset(path)
    source = path.resolve()
    for name, out in (("out_a", out_a), ("out_b", out_b)):
        if out.resolve() == source:
            raise ConfigError(f"{name} {out} is the dataset being split; write the parts elsewhere")
        if source in out.resolve().parents:
            raise ConfigError(f"{name} {out} lies inside the dataset being split; write the parts elsewhere")
    if out_a.resolve() == out_b.resolve():
        raise ConfigError(f"out_a and out_b are the same folder ({out_a}); the two parts need two folders")
    for name, out in (("out_a", out_a), ("out_b", out_b)):  # both, before part A is written
        if out.exists() and not out.is_dir():
            raise DataError(f"{name} {out}: exists and is a file (a dataset is a folder)")
    by = "image_index" if data.has("image_index") else "frame_index" if data.has("frame_index") else "sample"
    groups = np.asarray(data.arrays[by]) if by != "sample" else None
    if by == "frame_index":
        a, b = split_in_time(groups, fraction)
    else:
        a, b = split_groups(len(data), groups, fraction, seed)
    meta = data.meta
    summary: dict = {"by": by}
    for part, indices, out in (("a", a, out_a), ("b", b, out_b)):
        attrs = {key: ([value[i] for i in indices] if isinstance(value, list) and len(value) == len(data) else value)
                 for key, value in meta.get("attrs", {}).items()}
        attrs["split"] = {"source": str(path), "part": part, "fraction": float(fraction), "seed": int(seed), "by": by,
                          "source_indices": indices.tolist()}
        with DatasetWriter(out, len(indices), tuple(meta["resolution"]), list(data.fields), meta.get("domain", "unknown"),
                           meta.get("split", "train"), attrs) as writer:
            for start in range(0, len(indices), _CHUNK):
                rows = indices[start : start + _CHUNK]
                writer.write(start, {name: np.asarray(array[rows]) for name, array in data.arrays.items()})
        summary[part] = {"path": str(out), "num_samples": len(indices),
                         "num_groups": len(np.unique(groups[indices])) if groups is not None else len(indices),
                         "indices": indices.tolist()}
    return summary


__all__ = ["split_dataset", "split_groups", "split_in_time"]

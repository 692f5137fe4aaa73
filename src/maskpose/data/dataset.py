"""The maskpose dataset format: one folder of memory-mappable ``.npy`` arrays plus ``meta.json``.

Layout::

    DIR/meta.json        schema version, sample count, resolution, domain, split, fields, attrs
    DIR/image.npy        (N, H, W, 3) uint8             always present
    DIR/mask.npy         (N, H, W)    uint8 in {0, 1}    person mask (the target-domain supervision)
    DIR/joints3d.npy     (N, 17, 3)   float32            H36M-17, camera frame, metres
    DIR/joints2d.npy     (N, 17, 2)   float32            pixels, origin top-left
    DIR/intrinsics.npy   (N, 3, 3)    float32            crop intrinsics
    DIR/pose.npy         (N, 18, 6)   float32            body parameters where known
    DIR/phenotypes.npy   (N, 6)       float32
    DIR/translation.npy  (N, 3)       float32
    DIR/geodesic.npy     (N, H, W)    float16            geodesic weights of the mask (method 2)
    DIR/frame_index.npy  (N,)         int32              source video frame of each crop (video adapter)
    DIR/track_id.npy     (N,)         int32              person track of each crop (video adapter)
    DIR/crop_box.npy     (N, 4)       float32            crop x0, y0, x1, y1 in source-frame pixels

Missing labels are explicit: a field that is not in ``meta.json`` does not exist for that dataset
(never zeros). Arrays are opened with ``mmap_mode="r"``, so datasets stream from disk and are never
loaded whole. ``meta.json`` is written last and atomically: a folder without it is an unfinished
write and is refused.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from maskpose.errors import DataError
from maskpose.io import atomic_write_text

SCHEMA_VERSION = 1
FORMAT_NAME = "maskpose-dataset"


@dataclass(frozen=True)
class FieldSpec:
    """Per-sample shape (``None`` entries take the resolution) and numpy dtype of a field."""

    shape: tuple
    dtype: str


def standard_fields(height: int, width: int) -> dict[str, FieldSpec]:
    """The known fields and their per-sample shapes at a resolution."""
    return {
        "image": FieldSpec((height, width, 3), "uint8"),
        "mask": FieldSpec((height, width), "uint8"),
        "joints3d": FieldSpec((17, 3), "float32"),
        "joints2d": FieldSpec((17, 2), "float32"),
        "intrinsics": FieldSpec((3, 3), "float32"),
        "pose": FieldSpec((18, 6), "float32"),
        "phenotypes": FieldSpec((6,), "float32"),
        "translation": FieldSpec((3,), "float32"),
        "geodesic": FieldSpec((height, width), "float16"),
        "depth": FieldSpec((height, width), "float16"),
        "parts": FieldSpec((height, width), "uint8"),
        # provenance of crops taken from a video (maskpose.data.video); not labels
        "frame_index": FieldSpec((), "int32"),
        "track_id": FieldSpec((), "int32"),
        "crop_box": FieldSpec((4,), "float32"),
    }


#: Fields that are ground truth (absent on target-domain training splits).
LABEL_FIELDS = ("joints3d", "joints2d", "pose", "phenotypes", "translation")


class DatasetWriter:
    """Writes a dataset of a known size, batch by batch, straight into memory-mapped arrays.

    Args:
        path: output folder (created).
        num_samples: N, the final number of samples.
        resolution: ``(H, W)``.
        fields: names of the fields to write (``image`` always included); see ``standard_fields``.
        domain, split: recorded in ``meta.json``.
        attrs: free JSON-serialisable metadata (generator settings, seed, licences, ...).

    Use as a context manager, or call ``close()``; ``meta.json`` is written only once every
    sample has been written.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        num_samples: int,
        resolution: tuple[int, int],
        fields: Iterable[str],
        domain: str = "unknown",
        split: str = "train",
        attrs: Mapping[str, Any] | None = None,
    ):
        if num_samples <= 0:
            raise DataError(f"{path}: a dataset needs at least one sample, got num_samples={num_samples}")
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / "meta.json").unlink(missing_ok=True)  # an overwrite is unfinished until closed
        self.num_samples = int(num_samples)
        self.resolution = (int(resolution[0]), int(resolution[1]))
        known = standard_fields(*self.resolution)
        names = ["image"] + [f for f in fields if f != "image"]
        unknown = [f for f in names if f not in known]
        if unknown:
            raise DataError(f"{path}: unknown dataset field(s) {unknown}; known: {sorted(known)}")
        self.specs = {name: known[name] for name in names}
        self.arrays = {
            name: np.lib.format.open_memmap(
                self.path / f"{name}.npy", mode="w+", dtype=spec.dtype, shape=(self.num_samples, *spec.shape)
            )
            for name, spec in self.specs.items()
        }
        self.domain, self.split = domain, split
        self.attrs = dict(attrs or {})
        self.written = np.zeros(self.num_samples, dtype=bool)

    def write(self, start: int, batch: Mapping[str, Any]) -> None:
        """Write samples ``start : start + n`` from a mapping field -> array-like ``(n, ...)``."""
        missing = [f for f in self.specs if f not in batch]
        if missing:
            raise DataError(f"{self.path}: batch is missing field(s) {missing}")
        sizes = {len(batch[f]) for f in self.specs}
        if len(sizes) != 1:
            raise DataError(f"{self.path}: fields of one batch have different lengths {sorted(sizes)}")
        n = sizes.pop()
        if start < 0 or start + n > self.num_samples:
            raise DataError(f"{self.path}: samples {start}:{start + n} exceed num_samples={self.num_samples}")
        for name, spec in self.specs.items():
            value = batch[name]
            if isinstance(value, torch.Tensor):
                value = value.detach().cpu().numpy()
            value = np.asarray(value)
            if value.shape[1:] != spec.shape:
                raise DataError(
                    f"{self.path}: field {name!r} has per-sample shape {value.shape[1:]}, expected {spec.shape}"
                )
            self.arrays[name][start : start + n] = value.astype(spec.dtype, copy=False)
        self.written[start : start + n] = True

    def close(self) -> Path:
        """Flush the arrays and write ``meta.json`` (atomically). Returns the dataset folder."""
        if not self.written.all():
            raise DataError(
                f"{self.path}: only {int(self.written.sum())} of {self.num_samples} samples were written"
            )
        for array in self.arrays.values():
            array.flush()
        meta = {
            "format": FORMAT_NAME,
            "schema_version": SCHEMA_VERSION,
            "num_samples": self.num_samples,
            "resolution": list(self.resolution),
            "domain": self.domain,
            "split": self.split,
            "fields": {n: {"shape": list(s.shape), "dtype": s.dtype} for n, s in self.specs.items()},
            "attrs": self.attrs,
        }
        atomic_write_text(self.path / "meta.json", json.dumps(meta, indent=2))
        self.arrays.clear()
        return self.path

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()


def write_dataset(path, arrays: Mapping[str, Any], domain="unknown", split="train", attrs=None) -> Path:
    """Write a whole in-memory dataset at once (small datasets, tests, adapters)."""
    image = np.asarray(arrays["image"])
    with DatasetWriter(path, len(image), image.shape[1:3], arrays.keys(), domain, split, attrs) as writer:
        writer.write(0, arrays)
    return Path(path)


def read_meta(path: str | os.PathLike) -> dict:
    """Read and validate ``meta.json`` of a dataset folder."""
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"{path}: dataset folder does not exist")
    meta_path = path / "meta.json"
    if not meta_path.exists():
        raise DataError(f"{path}: no meta.json (not a maskpose dataset, or its writing did not finish)")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as err:
        raise DataError(f"{meta_path}: not valid JSON ({err})") from None
    if meta.get("format") != FORMAT_NAME:
        raise DataError(f"{meta_path}: format is {meta.get('format')!r}, expected {FORMAT_NAME!r}")
    if meta.get("schema_version") != SCHEMA_VERSION:
        raise DataError(
            f"{meta_path}: schema version {meta.get('schema_version')} is not supported (expected {SCHEMA_VERSION})"
        )
    return meta


class MaskposeDataset(Dataset):
    """A torch ``Dataset`` over a dataset folder; arrays are memory-mapped, never loaded whole.

    Args:
        path: the dataset folder.
        fields: fields to return (default: all present). Asking for an absent field is an error.
        indices: optional subset of sample indices.

    Each item is a dict: ``image`` ``(3, H, W)`` float32 in [0, 1], ``mask`` ``(1, H, W)`` float32,
    ``geodesic``/``depth`` ``(1, H, W)`` float32, ``parts`` ``(H, W)`` int64, the labels as
    float32 tensors of their stored shape, and ``index`` (the sample's index in the folder).
    """

    def __init__(self, path: str | os.PathLike, fields: Sequence[str] | None = None,
                 indices: Sequence[int] | np.ndarray | None = None):
        self.path = Path(path)
        self.meta = read_meta(self.path)
        present = list(self.meta["fields"])
        wanted = present if fields is None else list(fields)
        absent = [f for f in wanted if f not in present]
        if absent:
            raise DataError(f"{self.path}: dataset has no field(s) {absent} (present: {present})")
        n = int(self.meta["num_samples"])
        self.arrays: dict[str, np.ndarray] = {}
        for name in wanted:
            file = self.path / f"{name}.npy"
            if not file.exists():
                raise DataError(f"{file}: array listed in meta.json is missing")
            array = np.load(file, mmap_mode="r")
            expected = (n, *self.meta["fields"][name]["shape"])
            if tuple(array.shape) != tuple(expected):
                raise DataError(f"{file}: shape {tuple(array.shape)} does not match meta.json {tuple(expected)}")
            self.arrays[name] = array
        self.indices = np.arange(n) if indices is None else np.asarray(indices, dtype=np.int64)
        if len(self.indices) and (self.indices.min() < 0 or self.indices.max() >= n):
            raise DataError(f"{self.path}: subset indices out of range [0, {n})")

    @property
    def fields(self) -> list[str]:
        return list(self.arrays)

    @property
    def resolution(self) -> tuple[int, int]:
        return tuple(self.meta["resolution"])

    def has(self, field: str) -> bool:
        return field in self.arrays

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, item: int) -> dict[str, torch.Tensor]:
        index = int(self.indices[item])
        out: dict[str, torch.Tensor] = {"index": torch.tensor(index)}
        for name, array in self.arrays.items():
            value = np.array(array[index])  # copy out of the memory map
            if name == "image":
                out[name] = torch.from_numpy(value).permute(2, 0, 1).float() / 255.0
            elif name in ("mask", "geodesic", "depth"):
                out[name] = torch.from_numpy(value.astype(np.float32))[None]
            elif name == "parts":
                out[name] = torch.from_numpy(value.astype(np.int64))
            else:
                out[name] = torch.from_numpy(value.astype(np.float32))
        return out

    def subset(self, indices: Sequence[int] | np.ndarray) -> MaskposeDataset:
        """A dataset over ``indices`` (positions within this dataset)."""
        return MaskposeDataset(self.path, self.fields, self.indices[np.asarray(indices, dtype=np.int64)])

    def shard(self, rank: int, world_size: int) -> MaskposeDataset:
        """The ``rank``-th of ``world_size`` interleaved, disjoint shards (for distributed runs)."""
        if not 0 <= rank < world_size:
            raise DataError(f"shard rank {rank} must lie in [0, {world_size})")
        return self.subset(np.arange(rank, len(self), world_size))

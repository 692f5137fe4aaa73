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
    DIR/merged.npy       (N,)         uint8              1 where the crop's blob holds several people (video)
    DIR/smpl_pose.npy    (N, 72)      float32            SMPL axis-angle pose (SPIN's), NaN where unknown
    DIR/smpl_betas.npy   (N, 10)      float32            SMPL shape coefficients, NaN where unknown
    DIR/has_smpl.npy     (N,)         uint8              1 where the SMPL parameters are known
    DIR/valid.npy        (N, H, W)    uint8 in {0, 1}    1 where the crop pixel lies inside the source photo
                                                        (real-data adapters: 0 on a crop's zero padding)
    DIR/image_index.npy  (N,)         int32              source photo of each crop (several people of one
                                                        photo share it; COCO adapter)

Missing labels are explicit: a field that is not in ``meta.json`` does not exist for that dataset
(never zeros). Arrays are opened with ``mmap_mode="r"``, so datasets stream from disk and are never
loaded whole. ``meta.json`` is written last and atomically: a folder without it is an unfinished
write and is refused.

A write that fails (bad input found half-way, a full disk, an exception in the producer) leaves the
folder as it was, an older dataset included: :class:`DatasetWriter` builds the arrays in a hidden
``.writing-*`` folder inside it, their bytes allocated up front, and moves them into place only
when every sample is written. Reading checks ``meta.json`` (an object with the known fields, their
shapes and dtypes), each array's shape and dtype, mask values (``{0, 1}``, or ``{0, 255}`` read as
``{0, 1}``) and labels (NaN is a missing joint; Inf is refused).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import tempfile
import weakref
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
        "merged": FieldSpec((), "uint8"),
        # SMPL parameters of real data (SPIN's .npz: maskpose.data.adapters.import_npz)
        "smpl_pose": FieldSpec((72,), "float32"),
        "smpl_betas": FieldSpec((10,), "float32"),
        "has_smpl": FieldSpec((), "uint8"),
        # real photographs (maskpose.data.adapters): where a crop sees the photo (its padding is
        # not seen by the camera, nor by the mask), and which photo a crop comes from
        "valid": FieldSpec((height, width), "uint8"),
        "image_index": FieldSpec((), "int32"),
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

    Use as a context manager, or call ``close()`` (``abort()`` on failure); ``meta.json`` is
    written only once every sample has been written.

    **A failed write never destroys what was at ``path``.** The arrays are built in a hidden
    temporary folder inside ``path`` (``.writing-*``, on the same file system, so the final moves
    are renames); what ``path`` held (an older dataset, other files) stays readable until
    ``close()``, which moves the new arrays in and writes ``meta.json`` last. A failure (an
    exception inside the ``with`` block, ``abort()``, or a writer dropped unclosed) removes the
    temporary folder, and ``path`` itself if this writer created it. ``path`` being an existing
    file is refused before anything is written. The arrays' bytes are allocated on disk up front
    (``posix_fallocate``), so a full disk raises ``OSError`` here instead of killing the process
    with SIGBUS when a memory-mapped page is first written.
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
        self.num_samples = int(num_samples)
        self.resolution = (int(resolution[0]), int(resolution[1]))
        if min(self.resolution) <= 0:
            raise DataError(f"{path}: resolution must be positive, got {self.resolution}")
        known = standard_fields(*self.resolution)
        names = ["image"] + [f for f in fields if f != "image"]
        unknown = [f for f in names if f not in known]
        if unknown:
            raise DataError(f"{path}: unknown dataset field(s) {unknown}; known: {sorted(known)}")
        self.specs = {name: known[name] for name in names}
        self.domain, self.split = domain, split
        self.attrs = dict(attrs or {})
        self.written = np.zeros(self.num_samples, dtype=bool)
        self.arrays: dict[str, np.memmap] = {}
        self._tmp, created = _start_output(self.path)
        self._cleanup = weakref.finalize(self, _discard, self._tmp, self.path if created else None)
        try:
            need = sum(int(np.prod((self.num_samples, *s.shape), dtype=np.int64)) * np.dtype(s.dtype).itemsize
                       for s in self.specs.values())
            for name, spec in self.specs.items():
                self.arrays[name] = _allocated_memmap(self._tmp / f"{name}.npy", spec.dtype,
                                                      (self.num_samples, *spec.shape), self.path, need)
        except BaseException:
            self.abort()
            raise

    def write(self, start: int, batch: Mapping[str, Any]) -> None:
        """Write samples ``start : start + n`` from a mapping field -> array-like ``(n, ...)``."""
        if not self._cleanup.alive:
            raise DataError(f"{self.path}: the dataset writer is already closed")
        missing = [f for f in self.specs if f not in batch]
        if missing:
            raise DataError(f"{self.path}: batch is missing field(s) {missing}")
        sizes = {len(batch[f]) for f in self.specs}
        if len(sizes) != 1:
            raise DataError(f"{self.path}: fields of one batch have different lengths {sorted(sizes)}")
        n = sizes.pop()
        if start < 0 or start + n > self.num_samples:
            raise DataError(f"{self.path}: samples {start}:{start + n} exceed num_samples={self.num_samples}")
        values = {}
        for name, spec in self.specs.items():
            value = batch[name]
            if isinstance(value, torch.Tensor):
                value = value.detach().cpu().numpy()
            value = np.asarray(value)
            if value.shape[1:] != spec.shape:
                raise DataError(
                    f"{self.path}: field {name!r} has per-sample shape {value.shape[1:]}, expected {spec.shape}"
                )
            if name in FINITE_FIELDS and np.isinf(value).any():
                bad = start + int(np.isinf(value.reshape(n, -1)).any(1).argmax())
                raise DataError(f"{self.path}: field {name!r} of sample {bad} holds infinite values "
                                f"(a missing joint is NaN; Inf is not allowed)")
            values[name] = value
        for name, value in values.items():
            self.arrays[name][start : start + n] = value.astype(self.specs[name].dtype, copy=False)
        self.written[start : start + n] = True

    def close(self) -> Path:
        """Flush the arrays, move them into place and write ``meta.json`` (atomically, last).
        Returns the dataset folder."""
        if not self._cleanup.alive:
            raise DataError(f"{self.path}: the dataset writer is already closed")
        if not self.written.all():
            count = int(self.written.sum())
            self.abort()
            raise DataError(f"{self.path}: only {count} of {self.num_samples} samples were written")
        try:
            for array in self.arrays.values():
                array.flush()
            self.arrays.clear()
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
            atomic_write_text(self._tmp / "meta.json", json.dumps(meta, indent=2))
        except BaseException:
            self.abort()
            raise
        # The swap: from here on the old dataset is replaced file by file, meta.json last, so a
        # reader sees the old dataset, then an unfinished folder (refused), then the new one.
        (self.path / "meta.json").unlink(missing_ok=True)
        for name in self.specs:
            os.replace(self._tmp / f"{name}.npy", self.path / f"{name}.npy")
        for name in standard_fields(*self.resolution):
            if name not in self.specs:
                (self.path / f"{name}.npy").unlink(missing_ok=True)  # a field of the old dataset
        os.replace(self._tmp / "meta.json", self.path / "meta.json")
        self._cleanup.detach()
        shutil.rmtree(self._tmp, ignore_errors=True)
        return self.path

    def abort(self) -> None:
        """Drop what was written: remove the temporary folder (and ``path`` if this writer created
        it and it is empty); what was at ``path`` before stays as it was. Idempotent."""
        self.arrays.clear()
        self._cleanup()

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


#: Float fields that must be finite or NaN (NaN marks a missing joint; Inf is always an error).
FINITE_FIELDS = ("joints3d", "joints2d", "intrinsics", "pose", "phenotypes", "translation", "crop_box",
                 "smpl_pose", "smpl_betas")


def _start_output(path: Path) -> tuple[Path, bool]:
    """Check the output folder and make the temporary folder inside it; returns it and whether
    ``path`` was created here. Refuses a path that is a file, or a folder that cannot be written,
    before any work."""
    if path.exists() and not path.is_dir():
        raise DataError(f"{path}: the output exists and is not a folder (a dataset is a folder); "
                        "choose another path or remove the file")
    created = not path.exists()
    try:
        path.mkdir(parents=True, exist_ok=True)
        _remove_stale(path)
        tmp = Path(tempfile.mkdtemp(prefix=f"{_TMP_PREFIX}{socket.gethostname()}-{os.getpid()}-", dir=path))
    except OSError as err:
        if created:
            _discard(path / ".none", path)
        raise DataError(f"{path}: cannot write the dataset folder ({err.strerror or err})") from None
    return tmp, created


_TMP_PREFIX = ".writing-"


def _remove_stale(path: Path) -> None:
    """Remove the temporary folders that writers on this host left in ``path`` when their process
    died (killed, power cut): named ``.writing-HOST-PID-*``, HOST this host and PID not running."""
    host = socket.gethostname()
    for entry in path.iterdir():
        if not entry.name.startswith(_TMP_PREFIX) or not entry.is_dir():
            continue
        parts = entry.name[len(_TMP_PREFIX):].rsplit("-", 2)
        if len(parts) != 3 or parts[0] != host or not parts[1].isdigit() or int(parts[1]) == os.getpid():
            continue
        try:
            os.kill(int(parts[1]), 0)
        except ProcessLookupError:
            shutil.rmtree(entry, ignore_errors=True)
        except (PermissionError, OverflowError):
            pass  # alive under another user, or not a pid


def _discard(tmp: Path, created: Path | None) -> None:
    shutil.rmtree(tmp, ignore_errors=True)
    if created is not None:
        try:
            created.rmdir()  # only if empty: never remove anything but what this writer made
        except OSError:
            pass


def _preallocate(fd: int, size: int) -> None:
    """Reserve ``size`` bytes of the open file ``fd`` on disk (raises ``OSError`` ENOSPC when the
    disk is full). File systems without ``fallocate`` support are left sparse."""
    try:
        os.posix_fallocate(fd, 0, size)
    except AttributeError:  # no posix_fallocate on this platform
        return
    except OSError as err:
        if err.errno in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            return
        raise


def _allocated_memmap(file: Path, dtype: str, shape: tuple, final: Path, need: int) -> np.memmap:
    """A new ``.npy`` file of ``shape``, its bytes allocated on disk, opened as a writable memmap."""
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": shape}
    with open(file, "wb") as f:
        if len(repr(header)) > 65000:  # the 1.0 header's length field is 16 bits
            np.lib.format.write_array_header_2_0(f, header)
        else:
            np.lib.format.write_array_header_1_0(f, header)
        offset = f.tell()
        size = offset + int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        try:
            _preallocate(f.fileno(), size)
        except OSError as err:
            raise OSError(err.errno, f"{final}: cannot allocate {size} bytes for {file.name} "
                                     f"({need / 2**20:.1f} MiB for the whole dataset): {err.strerror}") from None
        f.truncate(size)
    return np.memmap(file, dtype=dtype, mode="r+", offset=offset, shape=shape)


def write_dataset(path, arrays: Mapping[str, Any], domain="unknown", split="train", attrs=None) -> Path:
    """Write a whole in-memory dataset at once (small datasets, tests, adapters)."""
    image = np.asarray(arrays["image"])
    with DatasetWriter(path, len(image), image.shape[1:3], arrays.keys(), domain, split, attrs) as writer:
        writer.write(0, arrays)
    return Path(path)


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def open_array(path: Path, name: str, meta: dict) -> np.ndarray:
    """Memory-map ``path/name.npy`` read-only and check it against ``meta.json`` (shape and dtype)."""
    file = path / f"{name}.npy"
    if not file.is_file():
        raise DataError(f"{file}: array listed in meta.json is missing")
    try:
        array = np.load(file, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise DataError(f"{file}: cannot read the array ({err})") from None
    expected = (int(meta["num_samples"]), *meta["fields"][name]["shape"])
    if tuple(array.shape) != tuple(expected):
        raise DataError(f"{file}: shape {tuple(array.shape)} does not match meta.json {tuple(expected)}")
    if array.dtype != np.dtype(meta["fields"][name]["dtype"]):
        raise DataError(f"{file}: dtype {array.dtype} does not match meta.json {meta['fields'][name]['dtype']}")
    return array


def mask_values(mask: np.ndarray, file: Path | str, what: str = "") -> np.ndarray:
    """A stored mask as ``{0, 1}``: ``{0, 1}`` is kept, ``{0, 255}`` divided by 255; any other value
    is a ``DataError`` that names ``file`` and the values found."""
    top = int(mask.max()) if mask.size else 0
    if top <= 1:
        return mask
    values = np.unique(mask)
    if top == 255 and len(values) <= 2:
        return (mask // 255).astype(mask.dtype)
    shown = ", ".join(str(int(v)) for v in values[:8]) + (", ..." if len(values) > 8 else "")
    raise DataError(f"{file}: mask{what} holds values {{{shown}}}; a mask must be {{0, 1}} or {{0, 255}}")


def dataset_ready(path: str | os.PathLike, domain: str, n: int, res: int, labels: bool = False) -> bool:
    """Whether ``path`` holds a finished dataset (``meta.json`` is written last) of this domain,
    size and square resolution, with ``joints3d`` when ``labels``: one that a run may reuse
    instead of generating it again (a missing or unreadable ``meta.json``: ``False``)."""
    try:
        info = json.loads((Path(path) / "meta.json").read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return (int(info.get("num_samples", -1)) == n and list(info.get("resolution", [])) == [res, res]
            and info.get("domain") == domain and (not labels or "joints3d" in info.get("fields", {})))


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
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{meta_path}: not valid JSON ({err})") from None
    if not isinstance(meta, dict):
        raise DataError(f"{meta_path}: must hold a JSON object, got a {type(meta).__name__}")
    if meta.get("format") != FORMAT_NAME:
        raise DataError(f"{meta_path}: format is {meta.get('format')!r}, expected {FORMAT_NAME!r}")
    if meta.get("schema_version") != SCHEMA_VERSION:
        raise DataError(
            f"{meta_path}: schema version {meta.get('schema_version')!r} is not supported (expected {SCHEMA_VERSION})"
        )
    n = meta.get("num_samples")
    if not isinstance(n, int) or isinstance(n, bool) or n <= 0:
        raise DataError(f"{meta_path}: num_samples must be a positive integer, got {n!r}")
    res = meta.get("resolution")
    if not (isinstance(res, list) and len(res) == 2 and all(isinstance(v, int) and v > 0 for v in res)):
        raise DataError(f"{meta_path}: resolution must be [H, W] (positive integers), got {res!r}")
    fields = meta.get("fields")
    if not isinstance(fields, dict) or "image" not in fields:
        raise DataError(f"{meta_path}: 'fields' must be an object of {{name: {{shape, dtype}}}} that includes "
                        f"'image', got {_short(fields)}")
    known = standard_fields(*res)
    for name, spec in fields.items():
        if name not in known:
            raise DataError(f"{meta_path}: unknown field {name!r}; known: {sorted(known)}")
        want = known[name]
        shape = spec.get("shape") if isinstance(spec, dict) else None
        dtype = spec.get("dtype") if isinstance(spec, dict) else None
        if shape != list(want.shape) or dtype != want.dtype:
            raise DataError(f"{meta_path}: field {name!r} is {_short(spec)}; at resolution {res} it must be "
                            f"{{'shape': {list(want.shape)}, 'dtype': {want.dtype!r}}}")
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
        self.arrays: dict[str, np.ndarray] = {name: open_array(self.path, name, self.meta) for name in wanted}
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
            if name == "mask":
                value = mask_values(value, self.path / "mask.npy", f" of sample {index}")
            elif name in FINITE_FIELDS and np.isinf(value).any():
                raise DataError(f"{self.path / (name + '.npy')}: sample {index} holds infinite values "
                                "(a missing joint is NaN; Inf is not allowed)")
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

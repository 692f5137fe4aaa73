"""Adapters from common preprocessed forms of real data to the maskpose dataset format.

* :func:`import_npz` — SPIN-style ``.npz`` (Human3.6M, MPI-INF-3DHP, 3DPW): ``imgname``, ``center``,
  ``scale`` (bounding box side ``200 * scale`` pixels), optional 3D joints ``S`` and 2D ``part``,
  optional SMPL parameters ``pose`` / ``shape`` (or ``betas``) / ``has_smpl``.
* :func:`import_coco` — COCO keypoints JSON with polygon (or RLE) person masks plus an image folder;
  one sample per person annotation.
* :func:`import_folder` — a folder of images with a folder of masks, matched by file stem.

Every sample is a square crop around the person (the given box, or the mask's box, times a
margin), resized to ``res``; keypoints and masks go through exactly the same transform as the
image. The crop maps a source pixel ``(x, y)`` (pixel centres at integers, as everywhere in
maskpose) to ``((x - x0 + 0.5) * res / side - 0.5, ...)`` with ``x0`` the crop's first source
pixel (the crop is centred on the box to the nearest pixel); :func:`crop` returns that affine.
A crop that reaches past the photo is zero-padded there; :func:`import_coco` and
:func:`import_folder` store where it is not as the field ``valid`` (:func:`crop_valid`), so that a
loss can leave the padding out (the camera never saw it, and the mask is 0 there).

Joint conventions, mapped to H36M-17 (:data:`maskpose.conventions.H36M_JOINTS`) where
possible. **Missing labels are explicit**: a label the source lacks is not written at all (the
field is absent), and a single joint the source lacks (zero confidence, not annotated, or not in
its skeleton) is stored as ``NaN`` — never as zeros.

* SPIN's 24 joints (``S (N, 24, 4)``, ``part (N, 24, 3)``, last column the confidence):
  :data:`SPIN24_TO_H36M` (SPIN's own H36M mapping: thorax = "Neck (LSP)", neck/nose = "Jaw (H36M)",
  head = "Head (H36M)").
* 17-joint inputs: ``convention="h36m"`` (already H36M-17) or ``"mpi_inf_3dhp"`` (the test-set
  order; its "head" joint stands in for neck/nose and "head_top" for the head).
* COCO-17 (:data:`COCO_TO_H36M`): limbs map directly; pelvis is the hip midpoint, thorax the
  shoulder midpoint, neck/nose the nose; spine and head top are missing (NaN). These are
  approximations (COCO hips sit lower and wider than H36M's).

3D joints are stored as given by the source (metres; the camera frame for SPIN's H36M and
MPI-INF-3DHP files). The crop intrinsics of real images are unknown, so ``intrinsics`` is not
written.
"""

from __future__ import annotations

import json
import logging
import os
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from maskpose.conventions import COCO_JOINTS, H36M_JOINTS
from maskpose.data.dataset import DatasetWriter
from maskpose.errors import ConfigError, DataError

log = logging.getLogger(__name__)

#: SPIN's 24-joint index of every H36M-17 joint.
SPIN24_TO_H36M: tuple[int, ...] = (14, 2, 1, 0, 3, 4, 5, 16, 12, 17, 18, 9, 10, 11, 8, 7, 6)
#: MPI-INF-3DHP 17-joint (test-set order) index of every H36M-17 joint.
MPI3DHP17_TO_H36M: tuple[int, ...] = (14, 8, 9, 10, 11, 12, 13, 15, 1, 16, 0, 5, 6, 7, 2, 3, 4)
#: COCO-17 joints standing in for the H36M-17 joints of another name (a pair: their midpoint);
#: None: COCO has no such joint. Every other H36M-17 joint is the COCO joint of the same name.
_COCO_STAND_INS: dict[str, str | tuple[str, str] | None] = {
    "pelvis": ("l_hip", "r_hip"), "spine": None, "thorax": ("l_shoulder", "r_shoulder"), "neck": "nose", "head": None,
}


def _coco_source(joint: str) -> int | tuple[int, int] | None:
    source = _COCO_STAND_INS.get(joint, joint)
    if source is None:
        return None
    if isinstance(source, tuple):
        return COCO_JOINTS.index(source[0]), COCO_JOINTS.index(source[1])
    return COCO_JOINTS.index(source)


#: COCO-17 source of every H36M-17 joint: an index, a pair (midpoint), or None (missing).
COCO_TO_H36M: tuple = tuple(_coco_source(joint) for joint in H36M_JOINTS)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
_BATCH = 256


# --------------------------------------------------------------------------------------------
# Reading and cropping


#: Sanity bounds on inputs: the smallest image side, the largest aspect ratio, the crop margin
#: of the box-based importers, and the largest crop side as a multiple of the image diagonal.
MIN_IMAGE_SIDE = 4
MAX_ASPECT = 20.0
MARGIN_RANGE = (1.0, 4.0)
NPZ_MARGIN_RANGE = (0.5, 4.0)
MAX_CROP_DIAGONALS = 8.0
RES_RANGE = (8, 4096)


def _decode(path: Path, flags: int, what: str) -> np.ndarray:
    """Decode an image file completely (a truncated or corrupt file is an error, not a partial
    image filled with grey) with OpenCV ``flags``."""
    if not path.is_file():
        raise DataError(f"{path}: {what} file does not exist")
    try:
        with Image.open(path) as im:
            im.load()  # decodes every byte: raises on truncated JPEG/PNG data
    except UnidentifiedImageError:
        pass  # a format Pillow does not know; OpenCV may still read it
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise DataError(f"{path}: cannot read the {what} (corrupt or truncated file: {err})") from None
    image = cv2.imread(str(path), flags)
    if image is None:
        raise DataError(f"{path}: cannot read the {what} (unsupported or corrupt file)")
    return image


def check_image_size(shape: Sequence[int], path: str | os.PathLike) -> None:
    """Refuse degenerate images: a side under :data:`MIN_IMAGE_SIDE` px or an aspect ratio over
    :data:`MAX_ASPECT`."""
    h, w = int(shape[0]), int(shape[1])
    if min(h, w) < MIN_IMAGE_SIDE or max(h, w) / min(h, w) > MAX_ASPECT:
        raise DataError(f"{path}: image is {w}x{h} px; expected sides of at least {MIN_IMAGE_SIDE} px and "
                        f"an aspect ratio of at most {MAX_ASPECT:g}")


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an RGB image ``(H, W, 3)`` uint8 (16-bit files scaled to 8 bits); :class:`DataError`
    names the file if it cannot (missing, corrupt, truncated)."""
    image = _decode(Path(path), cv2.IMREAD_COLOR, "image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """Read a person mask ``(H, W)`` bool from an image whose values are ``{0, 1}`` or ``{0, 255}``
    (colour masks: the largest colour channel). Any other value (e.g. JPEG noise, a soft matte)
    is a :class:`DataError` that names the file and the values found."""
    path = Path(path)
    mask = _decode(path, cv2.IMREAD_UNCHANGED, "mask")
    if mask.ndim == 3:
        mask = mask[..., :3].max(-1) if mask.shape[-1] >= 3 else mask[..., 0]
    values = np.unique(mask)
    if not (set(values.tolist()) <= {0, 1} or set(values.tolist()) <= {0, 255}):
        shown = ", ".join(f"{v:g}" for v in values[:8].tolist()) + (", ..." if len(values) > 8 else "")
        raise DataError(f"{path}: mask holds values {{{shown}}}; a mask must be {{0, 1}} or {{0, 255}} "
                        "(save masks as PNG, not JPEG)")
    return mask > 0


def _check_range(name: str, value: float, bounds: tuple[float, float]) -> None:
    if not (bounds[0] <= value <= bounds[1]):  # False for NaN too
        raise ConfigError(f"{name} must lie in [{bounds[0]:g}, {bounds[1]:g}], got {value!r}")


def _check_common(res: int, margin: float, margin_range: tuple[float, float] = MARGIN_RANGE) -> None:
    if isinstance(res, bool) or not isinstance(res, (int, np.integer)) or not RES_RANGE[0] <= res <= RES_RANGE[1]:
        raise ConfigError(f"res must be an integer in [{RES_RANGE[0]}, {RES_RANGE[1]}], got {res!r}")
    _check_range("margin", float(margin), margin_range)


def _check_crop(side: float, shape: Sequence[int], where: str) -> None:
    """Refuse a crop side that is not finite, under 1 px, or over :data:`MAX_CROP_DIAGONALS`
    image diagonals (before any canvas is allocated)."""
    diagonal = float(np.hypot(shape[0], shape[1]))
    if not np.isfinite(side) or side < 1.0 or side > MAX_CROP_DIAGONALS * diagonal:
        raise DataError(f"{where}: crop side {side:g} px is outside [1, {MAX_CROP_DIAGONALS:g} x the image "
                        f"diagonal = {MAX_CROP_DIAGONALS * diagonal:.0f}] px")


def square_box(box: Sequence[float], margin: float = 1.2) -> tuple[float, float, float]:
    """``(cx, cy, side)`` of the square crop around an ``(x0, y0, width, height)`` box."""
    x0, y0, w, h = (float(v) for v in box)
    return x0 + (w - 1) / 2, y0 + (h - 1) / 2, max(w, h, 1.0) * margin


def crop(image: np.ndarray, center: Sequence[float], side: float, res: int, mask: np.ndarray | None = None):
    """Square crop (zero padding outside the image) resized to ``res``.

    Returns ``(image (res, res, 3) uint8, mask (res, res) uint8 or None, affine (2, 3))``. Large
    crops are reduced with area averaging (no aliasing); the mask is averaged the same way and
    thresholded at 0.5.
    """
    side_px = max(1, int(np.ceil(side)))
    # Canvas of side_px source pixels centred on ``center`` (to the nearest pixel: an exact copy,
    # so image and mask stay aligned), zero outside the image.
    x0, y0 = int(round(center[0] - (side_px - 1) / 2)), int(round(center[1] - (side_px - 1) / 2))
    shift = np.array([[1.0, 0.0, -x0], [0.0, 1.0, -y0]])
    canvas = cv2.warpAffine(image, shift, (side_px, side_px), flags=cv2.INTER_NEAREST,
                            borderMode=cv2.BORDER_CONSTANT)
    interp = cv2.INTER_AREA if side_px > res else cv2.INTER_LINEAR
    out = cv2.resize(canvas, (res, res), interpolation=interp)
    out_mask = crop_mask(mask, center, side, res) if mask is not None else None
    s = res / side_px
    affine = np.array([[s, 0.0, (0.5 - x0) * s - 0.5], [0.0, s, (0.5 - y0) * s - 0.5]])
    return out, out_mask, affine


def crop_mask(mask: np.ndarray, center: Sequence[float], side: float, res: int) -> np.ndarray:
    """The crop :func:`crop` takes with these arguments of a photo-sized ``(H, W)`` mask:
    ``(res, res)`` uint8 {0, 1}, zero outside the photo, area-averaged like the image and
    thresholded at 0.5."""
    side_px = max(1, int(np.ceil(side)))
    x0, y0 = int(round(center[0] - (side_px - 1) / 2)), int(round(center[1] - (side_px - 1) / 2))
    shift = np.array([[1.0, 0.0, -x0], [0.0, 1.0, -y0]])
    canvas = cv2.warpAffine(mask.astype(np.float32), shift, (side_px, side_px), flags=cv2.INTER_NEAREST,
                            borderMode=cv2.BORDER_CONSTANT)
    interp = cv2.INTER_AREA if side_px > res else cv2.INTER_LINEAR
    return (cv2.resize(canvas, (res, res), interpolation=interp) > 0.5).astype(np.uint8)


def crop_valid(shape: Sequence[int], center: Sequence[float], side: float, res: int,
               others: np.ndarray | None = None, own: np.ndarray | None = None) -> np.ndarray:
    """Where the crop :func:`crop` takes with these arguments sees the photo: ``(res, res)`` uint8,
    1 on output pixels inside an image of ``shape`` ``(H, W, ...)``, 0 on its zero padding.

    Computed exactly as :func:`crop` computes the mask, from an all-ones mask of the photo (same
    canvas, same resizing, threshold 0.5), so a crop's mask is always inside its ``valid`` map.

    With ``others``, the ``(H, W)`` mask of the photo's other people, and ``own``, this person's
    cropped ``(res, res)`` mask: also 0 where the others cover the crop outside ``own`` (there the
    photo may show another person in front, so whether this person is there is unknown; the
    occlusion-aware crops of ``import_coco`` and ``predict_photos``)."""
    valid = crop_mask(np.ones((int(shape[0]), int(shape[1])), np.uint8), center, side, res)
    if others is None:
        return valid
    if own is None:
        raise ValueError("crop_valid: others needs own, the person's cropped mask")
    covered = crop_mask(others, center, side, res).astype(bool)
    return (valid.astype(bool) & ~(covered & ~own.astype(bool))).astype(np.uint8)


def transform_points(points: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Apply a ``(2, 3)`` affine to ``(..., 2)`` points (NaN stays NaN)."""
    return points @ affine[:, :2].T + affine[:, 2]


# --------------------------------------------------------------------------------------------
# Joint mappings


def spin24_to_h36m(joints: np.ndarray) -> np.ndarray:
    """``(N, 24, D+1)`` joints with confidence -> ``(N, 17, D)`` H36M-17, NaN where confidence is 0."""
    return _with_confidence(joints[:, list(SPIN24_TO_H36M)])


def _with_confidence(joints: np.ndarray) -> np.ndarray:
    values = joints[..., :-1].astype(np.float32).copy()
    values[joints[..., -1] <= 0] = np.nan
    return values


def coco_to_h36m(keypoints: np.ndarray) -> np.ndarray:
    """COCO ``(N, 17, 3)`` keypoints ``(x, y, v)`` -> ``(N, 17, 2)`` H36M-17, NaN where missing or
    not labelled (``v == 0``); midpoints need both ends."""
    kp = keypoints[..., :2].astype(np.float32).copy()
    kp[keypoints[..., 2] <= 0] = np.nan
    out = np.full((len(kp), 17, 2), np.nan, np.float32)
    for j, source in enumerate(COCO_TO_H36M):
        if source is None:
            continue
        if isinstance(source, tuple):
            out[:, j] = (kp[:, source[0]] + kp[:, source[1]]) / 2
        else:
            out[:, j] = kp[:, source]
    return out


def _to_h36m(joints: np.ndarray, convention: str, name: str, path: Path) -> np.ndarray:
    """Map an ``(N, J, C)`` joint array (last column the confidence if C is 3 or 4) to H36M-17."""
    dims = 2 if name == "part" else 3
    if joints.ndim != 3 or joints.shape[1] not in (17, 24) or joints.shape[-1] not in (dims, dims + 1) \
            or (joints.shape[1] == 24 and joints.shape[-1] != dims + 1):
        raise DataError(f"{path}: key {name!r} has shape {joints.shape}; expected (N, 24, {dims + 1}) "
                        f"(SPIN joints with confidence) or (N, 17, {dims}|{dims + 1})")
    if joints.shape[1] == 24:
        return spin24_to_h36m(joints)
    order = {"h36m": tuple(range(17)), "mpi_inf_3dhp": MPI3DHP17_TO_H36M}.get(convention)
    if order is None:
        raise DataError(f"{path}: unknown joint convention {convention!r}; expected 'h36m' or 'mpi_inf_3dhp'")
    joints = joints[:, list(order)]
    if joints.shape[-1] == dims + 1:
        return _with_confidence(joints)
    return joints[..., :dims].astype(np.float32)


# --------------------------------------------------------------------------------------------
# SPIN npz


def import_npz(
    npz_path: str | os.PathLike,
    image_root: str | os.PathLike,
    out_dir: str | os.PathLike,
    res: int = 128,
    convention: str = "h36m",
    margin: float = 1.0,
    limit: int | None = None,
    domain: str | None = None,
    split: str = "test",
) -> Path:
    """Import a SPIN-style ``.npz``.

    Args:
        npz_path: the file; keys ``imgname`` (paths relative to ``image_root``), ``center``
            ``(N, 2)``, ``scale`` ``(N,)`` are required; ``S`` (3D joints with confidence, SPIN's
            24 or 17 joints) and ``part`` (2D joints with confidence) are optional, and so are
            SMPL parameters: ``pose`` ``(N, 72)`` axis-angle (SPIN's: global orientation in the
            camera frame, then SMPL's 23 joints), ``shape`` (SPIN's name) or ``betas`` ``(N, 10)``,
            and ``has_smpl`` ``(N,)``. They are stored as they are in the fields ``smpl_pose``,
            ``smpl_betas`` and ``has_smpl`` (``maskpose.body.smpl_body.smpl_pose_from_axis_angle``
            turns ``smpl_pose`` into the SMPL body's 6D pose); a sample with ``has_smpl == 0``
            gets ``NaN`` parameters (SPIN stores zeros there), an absent key an absent field.
        image_root: folder the ``imgname`` paths are relative to.
        out_dir: dataset folder to write.
        res: crop size.
        convention: joint order of 17-joint arrays: ``"h36m"`` or ``"mpi_inf_3dhp"`` (24-joint
            arrays are always SPIN's order).
        margin: extra factor on SPIN's box (``200 * scale`` already includes SPIN's 1.2 margin).
        limit: import only the first ``limit`` samples.
        domain, split: recorded in ``meta.json`` (domain defaults to the file's stem).
    """
    npz_path, image_root = Path(npz_path), Path(image_root)
    _check_common(res, margin, NPZ_MARGIN_RANGE)
    if not npz_path.is_file():
        raise DataError(f"{npz_path}: file does not exist")
    if not image_root.is_dir():
        raise DataError(f"{image_root}: image folder does not exist")
    try:
        data = np.load(npz_path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise DataError(f"{npz_path}: cannot read the .npz (not a NumPy .npz archive, or corrupt: {err})") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise DataError(f"{npz_path}: holds a single .npy array {getattr(data, 'shape', '')}, not an .npz archive "
                        "with keys imgname, center, scale")
    try:
        with data:
            missing = [k for k in ("imgname", "center", "scale") if k not in data.files]
            if missing:
                raise DataError(f"{npz_path}: missing key(s) {missing} (present: {sorted(data.files)})")
            names = [v.decode() if isinstance(v, bytes) else str(v) for v in np.asarray(data["imgname"]).reshape(-1)]
            center = np.asarray(data["center"], np.float64)
            scale = np.asarray(data["scale"], np.float64).reshape(-1)
            raw3d = np.asarray(data["S"]) if "S" in data.files else None
            raw2d = np.asarray(data["part"]) if "part" in data.files else None
            smpl, smpl_keys = _read_smpl(data, npz_path, len(names))
    except (ValueError, TypeError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise DataError(f"{npz_path}: cannot read the .npz arrays ({err})") from None
    if center.shape != (len(names), 2) or scale.shape != (len(names),):
        raise DataError(f"{npz_path}: center {center.shape} and scale {scale.shape} do not match "
                        f"imgname ({len(names)},): expected ({len(names)}, 2) and ({len(names)},)")
    joints3d = _to_h36m(raw3d, convention, "S", npz_path) if raw3d is not None else None
    part = _to_h36m(raw2d, convention, "part", npz_path) if raw2d is not None else None
    for name, array in (("S", joints3d), ("part", part)):
        if array is not None and len(array) != len(names):
            raise DataError(f"{npz_path}: key {name!r} has {len(array)} rows, imgname has {len(names)}")
    n = len(names) if limit is None else min(limit, len(names))
    if n <= 0:
        raise DataError(f"{npz_path}: no samples")
    _check_values(npz_path, "center", center[:n], allow_nan=False)
    _check_values(npz_path, "scale", scale[:n], allow_nan=False)
    bad = np.flatnonzero(~(scale[:n] > 0))
    if len(bad):
        raise DataError(f"{npz_path}: scale of sample {bad[0]} is {scale[bad[0]]:g}; scale (box side / 200 px) "
                        "must be positive")
    for name, array in (("S", joints3d), ("part", part)):
        if array is not None:
            _check_values(npz_path, name, array[:n], allow_nan=True)
    for name, array in smpl.items():
        _check_values(npz_path, smpl_keys[name], array[:n], allow_nan=True)
    fields = ["image"] + (["joints3d"] if joints3d is not None else []) + (["joints2d"] if part is not None else [])
    fields += list(smpl)
    attrs = {"source": str(npz_path), "adapter": "npz", "convention": convention, "margin": margin,
             "missing_joints": "NaN"}
    with DatasetWriter(out_dir, n, (res, res), fields, domain or npz_path.stem, split, attrs) as writer:
        for start in range(0, n, _BATCH):
            batch: dict[str, list] = {f: [] for f in fields}
            for i in range(start, min(n, start + _BATCH)):
                image = read_image(image_root / names[i])
                check_image_size(image.shape, image_root / names[i])
                side = 200.0 * scale[i] * margin
                _check_crop(side, image.shape, f"{npz_path}: sample {i} ({names[i]}, scale {scale[i]:g})")
                img, _, affine = crop(image, center[i], side, res)
                batch["image"].append(img)
                if joints3d is not None:
                    batch["joints3d"].append(joints3d[i])
                if part is not None:
                    batch["joints2d"].append(transform_points(part[i], affine))
                for name, array in smpl.items():
                    batch[name].append(array[i])
            writer.write(start, {k: np.stack(v) for k, v in batch.items()})
    return Path(out_dir)


#: SPIN's SMPL keys -> dataset fields (``betas`` is accepted for ``shape``).
_SMPL_KEYS = {"pose": "smpl_pose", "shape": "smpl_betas", "betas": "smpl_betas", "has_smpl": "has_smpl"}


def _read_smpl(data, path: Path, count: int) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The SMPL parameters of a SPIN ``.npz`` as dataset fields (only those present): ``smpl_pose``
    ``(N, 72)``, ``smpl_betas`` ``(N, 10)`` (``NaN`` where ``has_smpl`` is 0), ``has_smpl`` ``(N,)``;
    and the key each field came from."""
    if "shape" in data.files and "betas" in data.files:
        raise DataError(f"{path}: holds both 'shape' and 'betas'; SMPL betas must come from one key")
    shapes = {"smpl_pose": (72,), "smpl_betas": (10,), "has_smpl": ()}
    out: dict[str, np.ndarray] = {}
    keys: dict[str, str] = {}
    for key, field in _SMPL_KEYS.items():
        if key not in data.files:
            continue
        keys[field] = key
        array = np.asarray(data[key])
        if field == "smpl_pose" and array.shape[1:] == (24, 3):
            array = array.reshape(len(array), 72)
        if array.shape != (count, *shapes[field]) or not np.issubdtype(array.dtype, np.number):
            pretty = ", ".join(str(d) for d in (count, *shapes[field]))
            raise DataError(f"{path}: key {key!r} has shape {array.shape} ({array.dtype}), expected ({pretty}) "
                            f"numbers (imgname has {count} rows)")
        out[field] = array.astype(np.float64 if field != "has_smpl" else np.float32)
    if "has_smpl" in out:
        has = out["has_smpl"]
        if not np.isin(has, (0.0, 1.0)).all():
            raise DataError(f"{path}: key 'has_smpl' must hold 0 or 1, got {sorted(set(np.unique(has).tolist()))[:8]}")
        out["has_smpl"] = has.astype(np.uint8)
        for field in ("smpl_pose", "smpl_betas"):
            if field in out:
                out[field][has == 0] = np.nan  # no SMPL fit for that sample: missing, never zeros
    return out, keys


def _check_values(path: Path, key: str, array: np.ndarray, allow_nan: bool) -> None:
    """Refuse infinite values (and NaN unless ``allow_nan``: NaN marks a missing joint), naming
    the key and the first bad sample."""
    bad = np.isinf(array) if allow_nan else ~np.isfinite(array)
    if bad.any():
        sample = int(np.argwhere(bad)[0][0]) if array.ndim else 0
        raise DataError(f"{path}: key {key!r} of sample {sample} holds "
                        f"{'infinite' if allow_nan else 'non-finite'} values"
                        + (" (a missing joint is NaN or zero confidence; Inf is not allowed)" if allow_nan else ""))


# --------------------------------------------------------------------------------------------
# COCO


def decode_rle(rle: dict, height: int, width: int) -> np.ndarray:
    """Decode a COCO RLE (``counts`` as a list or a compressed string) to an ``(H, W)`` bool mask.

    Raises :class:`DataError` for a malformed RLE: no ``counts``, a ``size`` other than
    ``[height, width]``, a corrupt compressed string, negative counts, or counts that do not cover
    exactly ``height * width`` pixels."""
    if not isinstance(rle, dict) or "counts" not in rle:
        raise DataError(f"RLE segmentation must be an object with 'counts' and 'size', got {_short(rle)}")
    size = rle.get("size")
    if size is not None and [int(v) for v in size] != [height, width]:
        raise DataError(f"RLE size {list(size)} does not match the image {height}x{width} (height, width)")
    counts = rle["counts"]
    if isinstance(counts, bytes):
        counts = counts.decode("ascii", errors="replace")
    if isinstance(counts, str):
        counts = _rle_string_to_counts(counts)
    elif not isinstance(counts, list) or not all(isinstance(c, int) and not isinstance(c, bool) for c in counts):
        raise DataError(f"RLE counts must be a string or a list of integers, got {_short(counts)}")
    counts = np.asarray(counts, np.int64)
    if (counts < 0).any():
        raise DataError(f"RLE counts hold a negative run ({int(counts.min())})")
    total = int(counts.sum())
    if total != height * width:
        raise DataError(f"RLE counts cover {total} pixels, the image has {height}x{width} = {height * width}")
    flat = np.zeros(height * width, bool)
    pos, value = 0, False
    for c in counts.tolist():
        if value:
            flat[pos:pos + c] = True
        pos += c
        value = not value
    return flat.reshape(width, height).T  # COCO RLE is column-major


def _short(value, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _rle_string_to_counts(s: str) -> list[int]:
    """pycocotools' compressed RLE string (LEB128-like, 5 bits per char, delta after index 2)."""
    counts: list[int] = []
    p = 0
    while p < len(s):
        x, k, more = 0, 0, True
        while more:
            if p >= len(s):
                raise DataError(f"RLE string is truncated (its last value is unfinished): {_short(s)}")
            c = ord(s[p]) - 48
            if not 0 <= c < 64:
                raise DataError(f"RLE string holds the character {s[p]!r}, outside the compressed alphabet "
                                f"('0' to 'o'): {_short(s)}")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def polygons_to_mask(polygons: Iterable[Sequence[float]], height: int, width: int) -> np.ndarray:
    """Rasterise COCO polygons ``[[x0, y0, x1, y1, ...], ...]`` with ``cv2.fillPoly`` (sub-pixel
    vertices, 4 fractional bits). Polygons of fewer than 3 points are left out (see
    :func:`check_polygons`, which counts them)."""
    mask = np.zeros((height, width), np.uint8)
    polys = [np.round(np.asarray(p, np.float64).reshape(-1, 2) * 16).astype(np.int32)
             for p in polygons if len(p) >= 6]
    if polys:
        cv2.fillPoly(mask, polys, 1, lineType=cv2.LINE_8, shift=4)
    return mask.astype(bool)


def check_polygons(polygons, where: str) -> int:
    """Refuse malformed COCO polygons (not a list of lists of an even number of finite numbers
    within ±1e6 px); returns how many have fewer than 3 points (left out of the mask)."""
    if not isinstance(polygons, list):
        raise DataError(f"{where}: segmentation must be a list of polygons or an RLE object, got {_short(polygons)}")
    short = 0
    for k, poly in enumerate(polygons):
        if not isinstance(poly, list) or len(poly) % 2 or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in poly):
            raise DataError(f"{where}: polygon {k} must be a flat list [x0, y0, x1, y1, ...] of an even number "
                            f"of numbers, got {_short(poly)}")
        values = np.asarray(poly, np.float64)
        if not np.isfinite(values).all() or (np.abs(values) > 1e6).any():
            raise DataError(f"{where}: polygon {k} holds non-finite or huge coordinates {_short(poly)}")
        short += len(poly) < 6
    return short


def _coco_mask(seg, height: int, width: int, where: str) -> tuple[np.ndarray, int]:
    """The person mask of one annotation and the number of polygons left out (< 3 points)."""
    if isinstance(seg, dict):
        try:
            return decode_rle(seg, height, width), 0
        except DataError as err:
            raise DataError(f"{where}: {err}") from None
        except (TypeError, ValueError) as err:
            raise DataError(f"{where}: malformed RLE segmentation ({err})") from None
    short = check_polygons(seg, where)
    return polygons_to_mask(seg, height, width), short


def _coco_box(ann: dict, where: str) -> list[float]:
    box = ann.get("bbox")
    try:
        values = [float(v) for v in box]
    except (TypeError, ValueError):
        values = []
    if len(values) != 4 or not np.isfinite(values).all() or values[2] <= 0 or values[3] <= 0:
        raise DataError(f"{where}: bbox must be [x, y, width, height] with finite values and a positive size, "
                        f"got {_short(box)}")
    return values


def import_coco(
    json_path: str | os.PathLike,
    image_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    res: int = 128,
    margin: float = 1.2,
    min_keypoints: int = 1,
    min_size: float = 16.0,
    limit: int | None = None,
    domain: str = "coco",
    split: str = "train",
    occlusion_aware: bool = False,
) -> Path:
    """Import COCO person annotations: one cropped sample per person.

    Args:
        json_path: COCO keypoints JSON (``images``, ``annotations`` with ``bbox``,
            ``segmentation``, ``keypoints``).
        image_dir: folder with the images (``file_name``).
        out_dir: dataset folder to write (fields ``image``, ``mask``, ``joints2d`` in H36M-17 with
            NaN for joints COCO lacks or did not label, see the module docstring; ``valid``, 1 where
            the crop lies inside the photo, 0 on its padding; ``image_index``, the position of the
            person's photo in the JSON's ``images`` list, shared by the people of one photo).
        res, margin: crop size and margin around the person's box.
        min_keypoints: skip annotations with fewer labelled keypoints; crowd annotations and
            annotations without a segmentation are always skipped, and so are those of another
            category than the person, where the JSON's ``categories`` name one ``"person"``
            (counted in the dataset's ``skipped_other_categories``).
        min_size: skip boxes whose larger side is below this (pixels).
        limit: import at most this many persons.
        occlusion_aware: ``valid`` is also 0 where another person of the same photo (any person
            annotation with a mask, crowds and the filtered-out ones included) covers the crop
            outside this person's own mask. There the photo may show the other person in front,
            so whether this person's body is there is unknown. The mask losses and the IoU
            (which read ``valid``) then neither reward nor punish a body behind another person.
    """
    json_path, image_dir = Path(json_path), Path(image_dir)
    _check_common(res, margin)
    if not json_path.is_file():
        raise DataError(f"{json_path}: file does not exist")
    if not image_dir.is_dir():
        raise DataError(f"{image_dir}: image folder does not exist")
    try:
        coco = json.loads(json_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{json_path}: not valid JSON ({err})") from None
    if not isinstance(coco, dict):
        raise DataError(f"{json_path}: must hold a JSON object with 'images' and 'annotations', "
                        f"got a {type(coco).__name__}")
    for key in ("images", "annotations"):
        if key not in coco:
            raise DataError(f"{json_path}: missing key {key!r}")
        if not isinstance(coco[key], list):
            raise DataError(f"{json_path}: {key!r} must be a list, got {type(coco[key]).__name__}")
    images: dict = {}
    positions: dict = {}  # image id -> its position in the JSON's images list (the image_index field)
    for k, img in enumerate(coco["images"]):
        if not isinstance(img, dict) or not isinstance(img.get("id"), (int, str)) \
                or not isinstance(img.get("file_name"), str):
            raise DataError(f"{json_path}: images[{k}] needs an 'id' and a 'file_name', got {_short(img)}")
        images[img["id"]] = img
        positions[img["id"]] = k
    persons = _person_categories(coco.get("categories"))
    chosen, other_categories = [], 0
    for k, ann in enumerate(coco["annotations"]):
        where = f"{json_path}: annotation {ann.get('id', f'#{k}') if isinstance(ann, dict) else f'#{k}'}"
        if not isinstance(ann, dict):
            raise DataError(f"{where}: must be an object, got {_short(ann)}")
        count = ann.get("num_keypoints", 0)
        if isinstance(count, bool) or not isinstance(count, (int, float)):
            raise DataError(f"{where}: num_keypoints must be a number, got {_short(count)}")
        if ann.get("iscrowd", 0) or not ann.get("segmentation") or count < min_keypoints:
            continue
        if not _is_person(ann, persons):
            other_categories += 1  # an instances JSON's other objects, keypoints or not
            continue
        if "bbox" not in ann or max(_coco_box(ann, where)[2:]) < min_size:
            continue
        if "image_id" not in ann:
            raise DataError(f"{where}: has no 'image_id'")
        if not isinstance(ann["image_id"], (int, str)):
            raise DataError(f"{where}: image_id must be an integer or a string, got {_short(ann['image_id'])}")
        if ann["image_id"] not in images:
            raise DataError(f"{where}: refers to unknown image {ann['image_id']!r}")
        keypoints = ann.get("keypoints", [0] * 51)
        if not isinstance(keypoints, list) or len(keypoints) != 51:
            raise DataError(f"{where}: keypoints must be a list of 51 numbers (17 x, y, v), got "
                            f"{len(keypoints) if isinstance(keypoints, list) else _short(keypoints)}")
        try:
            kp = np.asarray(keypoints, np.float64)
        except (TypeError, ValueError):
            raise DataError(f"{where}: keypoints must be numbers, got {_short(keypoints)}") from None
        if not np.isfinite(kp).all():
            raise DataError(f"{where}: keypoints hold non-finite values")
        chosen.append(ann)
    chosen.sort(key=lambda a: (isinstance(a["image_id"], str), a["image_id"], a.get("id", 0)))
    # Masks are checked before anything is written: malformed ones are refused, empty ones skipped
    # (and counted); polygons of fewer than 3 points are left out (and counted).
    kept, empty, short_polygons = [], 0, 0
    for ann in chosen:
        if limit is not None and len(kept) >= limit:
            break
        info = images[ann["image_id"]]
        h, w = _coco_image_size(info, image_dir)
        mask, short = _coco_mask(ann["segmentation"], h, w, f"{json_path}: annotation {ann.get('id')}")
        short_polygons += short
        cx, cy, side = square_box(ann["bbox"], margin)
        _check_crop(side, (h, w), f"{json_path}: annotation {ann.get('id')}")
        side_px = max(1, int(np.ceil(side)))
        x0, y0 = int(round(cx - (side_px - 1) / 2)), int(round(cy - (side_px - 1) / 2))
        if not mask[max(y0, 0):max(y0 + side_px, 0), max(x0, 0):max(x0 + side_px, 0)].any():
            empty += 1
            continue
        kept.append(ann)
    if empty or short_polygons:
        log.warning("%s: skipped %d annotation(s) whose mask is empty inside the crop; left out %d polygon(s) "
                    "of fewer than 3 points", json_path, empty, short_polygons)
    if not kept:
        raise DataError(f"{json_path}: no person annotation passes the filters"
                        + (f" ({empty} skipped for an empty mask)" if empty else ""))
    fields = ["image", "mask", "joints2d", "valid", "image_index"]
    attrs = {"source": str(json_path), "adapter": "coco", "margin": margin, "missing_joints": "NaN",
             "joints2d": "H36M-17 from COCO-17 (pelvis/thorax as midpoints; spine, head top missing)",
             "annotation_ids": [a.get("id") for a in kept], "skipped_empty_masks": empty,
             "skipped_short_polygons": short_polygons, "skipped_other_categories": other_categories,
             "valid": "1 where the crop lies inside the photo, 0 on its zero padding"
                      + (" and where another person covers the crop outside this person's mask" if occlusion_aware
                         else ""),
             "occlusion_aware": bool(occlusion_aware),
             "image_index": "position of the person's photo in the JSON's images list"}
    others_of = _other_people(coco["annotations"], persons) if occlusion_aware else {}
    decoded: dict = {}  # the current photo's person masks, decoded once for all its people

    def people_masks(image_id, h: int, w: int) -> list[tuple[dict, np.ndarray]]:
        if image_id not in decoded:
            decoded.clear()
            decoded[image_id] = [(other, _coco_mask(other["segmentation"], h, w,
                                                    f"{json_path}: annotation {other.get('id')}")[0].astype(bool))
                                 for other in others_of.get(image_id, [])]
        return decoded[image_id]

    cache: dict = {}
    small = 0
    with DatasetWriter(out_dir, len(kept), (res, res), fields, domain, split, attrs) as writer:
        for i, ann in enumerate(kept):
            info = images[ann["image_id"]]
            if ann["image_id"] not in cache:
                cache.clear()
                cache[ann["image_id"]] = read_image(image_dir / info["file_name"])
                check_image_size(cache[ann["image_id"]].shape, image_dir / info["file_name"])
            image = cache[ann["image_id"]]
            h, w = image.shape[:2]
            if (info.get("height", h), info.get("width", w)) != (h, w):
                raise DataError(f"{image_dir / info['file_name']}: image is {w}x{h}, the JSON says "
                                f"{info.get('width')}x{info.get('height')}")
            mask, _ = _coco_mask(ann["segmentation"], h, w, f"{json_path}: annotation {ann.get('id')}")
            cx, cy, side = square_box(ann["bbox"], margin)
            img, msk, affine = crop(image, (cx, cy), side, res, mask)
            small += not msk.any()  # a person too small to cover half an output pixel anywhere
            kp = np.asarray(ann.get("keypoints", [0] * 51), np.float64).reshape(1, 17, 3)
            joints = transform_points(coco_to_h36m(kp)[0], affine)
            others = _others_mask(people_masks(ann["image_id"], h, w), ann) if occlusion_aware else None
            writer.write(i, {"image": img[None], "mask": msk[None], "joints2d": joints[None],
                             "valid": crop_valid(image.shape, (cx, cy), side, res, others, msk)[None],
                             "image_index": np.array([positions[ann["image_id"]]], np.int32)})
        if small:
            log.warning("%s: %d of %d mask(s) are empty after resizing to %d px (persons too small)",
                        json_path, small, len(kept), res)
        writer.attrs["empty_masks_after_resize"] = small
    return Path(out_dir)


def _other_people(annotations: list, persons: set | None) -> dict:
    """``{image_id: [annotation, ...]}``: every person annotation with a mask (crowds and those the
    import's filters drop included), the possible occluders of :func:`import_coco`'s
    ``occlusion_aware``."""
    out: dict = {}
    for ann in annotations:
        if isinstance(ann, dict) and ann.get("segmentation") and "image_id" in ann and _is_person(ann, persons):
            out.setdefault(ann["image_id"], []).append(ann)
    return out


def _is_person(ann: dict, persons: set | None) -> bool:
    """Whether ``ann`` is of a person category (:func:`_person_categories`; ``None``: every one is;
    an annotation without ``category_id`` counts as a person)."""
    return persons is None or ann.get("category_id", next(iter(persons))) in persons


def _others_mask(people: list[tuple[dict, np.ndarray]], ann: dict) -> np.ndarray | None:
    """The union of the decoded person masks of ``people`` other than ``ann`` (``None``: none)."""
    others = [mask for other, mask in people if other is not ann]
    return np.logical_or.reduce(others).astype(np.uint8) if others else None


def _person_categories(categories) -> set | None:
    """The ids of the COCO ``categories`` named ``"person"``; ``None`` (keep every annotation)
    when the JSON lists no categories or none of them is the person (a keypoints file of its own
    naming)."""
    if not isinstance(categories, list):
        return None
    ids = {c.get("id") for c in categories if isinstance(c, dict) and c.get("name") == "person"}
    return ids or None


def _coco_image_size(info: dict, image_dir: Path) -> tuple[int, int]:
    """``(height, width)`` of a COCO image: from the JSON, else from the file's header."""
    h, w = info.get("height"), info.get("width")
    if isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0:
        check_image_size((h, w), image_dir / info["file_name"])
        return h, w
    path = image_dir / info["file_name"]
    try:
        with Image.open(path) as im:
            w, h = im.size
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise DataError(f"{path}: cannot read the image ({err})") from None
    check_image_size((h, w), path)
    return h, w


# --------------------------------------------------------------------------------------------
# Folder of images + folder of masks


def _files_by_stem(folder: Path, what: str) -> dict[str, Path]:
    if not folder.is_dir():
        raise DataError(f"{folder}: {what} folder does not exist")
    files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
            if path.stem in files:
                raise DataError(f"{path}: two {what} files share the stem {path.stem!r} ({files[path.stem].name})")
            files[path.stem] = path
    return files


def import_folder(
    image_dir: str | os.PathLike,
    mask_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    res: int = 128,
    margin: float = 1.2,
    domain: str = "folder",
    split: str = "train",
    keypoints_dir: str | os.PathLike | None = None,
) -> Path:
    """Import a folder of images and a folder of person masks matched by file stem
    (``images/a.jpg`` with ``masks/a.png``). Each sample is a square crop around its mask's
    bounding box. Every image needs a mask of the same size; an empty mask is an error.

    With ``keypoints_dir``, ``<stem>.json`` there holds the person's 17 COCO keypoints in image
    pixels: ``[x1, y1, v1, ..., x17, y17, v17]`` or ``{"keypoints": [...]}`` (``v = 0``:
    unlabelled). They are stored as ``joints2d`` (H36M-17 in crop pixels, NaN where missing, as
    :func:`import_coco` writes them); an image without a file gets all-NaN keypoints.

    ``valid`` is written too: 1 where the crop lies inside the photo, 0 on its zero padding."""
    image_dir, mask_dir = Path(image_dir), Path(mask_dir)
    _check_common(res, margin)
    keypoints = _folder_keypoints(Path(keypoints_dir)) if keypoints_dir is not None else None
    images, masks = _files_by_stem(image_dir, "image"), _files_by_stem(mask_dir, "mask")
    if not images:
        raise DataError(f"{image_dir}: no image files ({', '.join(IMAGE_SUFFIXES)})")
    missing = [s for s in images if s not in masks]
    if missing:
        raise DataError(f"{mask_dir}: no mask for {len(missing)} image(s), e.g. {images[missing[0]].name} "
                        f"(masks are matched by file stem)")
    extra = [s for s in masks if s not in images]
    if extra:
        log.warning("%s: %d mask(s) without an image ignored, e.g. %s", mask_dir, len(extra), masks[extra[0]].name)
    stems = sorted(images)
    # Every mask is read and checked, and every image's size, before anything is written.
    boxes = {}
    for stem in stems:
        mask = read_mask(masks[stem])
        size = _image_size(images[stem])
        check_image_size(size, images[stem])
        if mask.shape != size:
            raise DataError(f"{masks[stem]}: mask is {mask.shape[1]}x{mask.shape[0]}, its image "
                            f"{images[stem].name} is {size[1]}x{size[0]}")
        ys, xs = np.nonzero(mask)
        if len(ys) == 0:
            raise DataError(f"{masks[stem]}: mask is empty (no person to crop around)")
        boxes[stem] = (xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)
    attrs = {"source": [str(image_dir), str(mask_dir)], "adapter": "folder", "margin": margin, "stems": stems,
             "valid": "1 where the crop lies inside the photo, 0 on its zero padding"}
    fields = ["image", "mask", "valid"]
    if keypoints is not None:
        fields.append("joints2d")
        attrs["keypoints"] = str(keypoints_dir)
        unmatched = [s for s in keypoints if s not in images]
        if unmatched:
            log.warning("%s: %d keypoint file(s) without an image ignored, e.g. %s.json", keypoints_dir,
                        len(unmatched), unmatched[0])
    with DatasetWriter(out_dir, len(stems), (res, res), fields, domain, split, attrs) as writer:
        for i, stem in enumerate(stems):
            image, mask = read_image(images[stem]), read_mask(masks[stem])
            if mask.shape != image.shape[:2]:  # the header and the decoded image disagree
                raise DataError(f"{images[stem]}: image decodes to {image.shape[1]}x{image.shape[0]}, its mask "
                                f"{masks[stem].name} is {mask.shape[1]}x{mask.shape[0]}")
            cx, cy, side = square_box(boxes[stem], margin)
            img, msk, affine = crop(image, (cx, cy), side, res, mask)
            sample = {"image": img[None], "mask": msk[None], "valid": crop_valid(image.shape, (cx, cy), side, res)[None]}
            if keypoints is not None:
                kp = keypoints.get(stem)
                sample["joints2d"] = (np.full((1, 17, 2), np.nan, np.float32) if kp is None
                                      else transform_points(coco_to_h36m(kp[None]), affine).astype(np.float32))
            writer.write(i, sample)
    return Path(out_dir)


def _folder_keypoints(folder: Path) -> dict[str, np.ndarray]:
    """``stem -> (17, 3)`` COCO keypoints of every ``*.json`` in ``folder`` (checked: 51 finite
    numbers, ``v`` in {0, 1, 2})."""
    if not folder.is_dir():
        raise DataError(f"{folder}: keypoint folder does not exist")
    out = {}
    for path in sorted(folder.glob("*.json")):
        try:
            value = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise DataError(f"{path}: not a readable JSON file ({err})") from None
        if isinstance(value, dict):
            value = value.get("keypoints")
        try:
            kp = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            kp = np.zeros(0)
        if kp.shape != (51,) or not np.isfinite(kp).all() or not np.isin(kp[2::3], (0, 1, 2)).all():
            raise DataError(f"{path}: keypoints must be 17 COCO [x, y, v] triples (51 finite numbers, v in 0/1/2), "
                            f"got {_short(value)}")
        out[path.stem] = kp.reshape(17, 3)
    if not out:
        raise DataError(f"{folder}: no keypoint files (<image stem>.json)")
    return out


def _image_size(path: Path) -> tuple[int, int]:
    """``(height, width)`` of an image file from its header (no decoding); OpenCV's full decode
    for formats Pillow does not know."""
    try:
        with Image.open(path) as im:
            w, h = im.size
            if im.format == "JPEG" or "exif" in im.info:
                orientation = im.getexif().get(0x0112, 1)
                if orientation in (5, 6, 7, 8):  # OpenCV applies the EXIF rotation when it decodes
                    w, h = h, w
            return h, w
    except UnidentifiedImageError:
        return read_image(path).shape[:2]
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise DataError(f"{path}: cannot read the image (corrupt or truncated file: {err})") from None


__all__ = [
    "COCO_TO_H36M", "MPI3DHP17_TO_H36M", "SPIN24_TO_H36M", "coco_to_h36m", "crop", "crop_valid",
    "check_image_size", "check_polygons", "decode_rle", "import_coco", "import_folder", "import_npz",
    "polygons_to_mask", "read_image",
    "read_mask", "spin24_to_h36m", "square_box", "transform_points",
]

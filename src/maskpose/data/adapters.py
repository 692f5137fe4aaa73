"""Adapters from common preprocessed forms of real data to the maskpose dataset format.

* :func:`import_npz` — SPIN-style ``.npz`` (Human3.6M, MPI-INF-3DHP, 3DPW): ``imgname``, ``center``,
  ``scale`` (bounding box side ``200 * scale`` pixels), optional 3D joints ``S`` and 2D ``part``.
* :func:`import_coco` — COCO keypoints JSON with polygon (or RLE) person masks plus an image folder;
  one sample per person annotation.
* :func:`import_folder` — a folder of images with a folder of masks, matched by file stem.

Every sample is a square crop around the person (the given box, or the mask's box, times a
margin), resized to ``res``; keypoints and masks go through exactly the same transform as the
image. The crop maps a source pixel ``(x, y)`` (pixel centres at integers, as everywhere in
maskpose) to ``((x - x0 + 0.5) * res / side - 0.5, ...)`` with ``x0`` the crop's first source
pixel (the crop is centred on the box to the nearest pixel); :func:`crop` returns that affine.

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
from collections.abc import Iterable, Sequence
from pathlib import Path

import cv2
import numpy as np

from maskpose.conventions import COCO_JOINTS, H36M_JOINTS
from maskpose.data.dataset import DatasetWriter
from maskpose.errors import DataError

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


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an RGB image ``(H, W, 3)`` uint8; :class:`DataError` names the file if it cannot."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: image file does not exist")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DataError(f"{path}: cannot read the image (unsupported or corrupt file)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """Read a person mask ``(H, W)`` bool: any image; foreground is above half its maximum value
    (so both 0/1 and 0/255 PNGs work). :class:`DataError` names the file if it cannot."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: mask file does not exist")
    mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if mask is None:
        raise DataError(f"{path}: cannot read the mask (unsupported or corrupt file)")
    if mask.ndim == 3:
        mask = mask[..., :3].max(-1) if mask.shape[-1] >= 3 else mask[..., 0]
    top = float(mask.max())
    return mask > top / 2 if top > 0 else np.zeros(mask.shape, bool)


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
    out_mask = None
    if mask is not None:
        m = cv2.warpAffine(mask.astype(np.float32), shift, (side_px, side_px), flags=cv2.INTER_NEAREST,
                           borderMode=cv2.BORDER_CONSTANT)
        out_mask = (cv2.resize(m, (res, res), interpolation=interp) > 0.5).astype(np.uint8)
    s = res / side_px
    affine = np.array([[s, 0.0, (0.5 - x0) * s - 0.5], [0.0, s, (0.5 - y0) * s - 0.5]])
    return out, out_mask, affine


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
            24 or 17 joints) and ``part`` (2D joints with confidence) are optional.
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
    if not npz_path.is_file():
        raise DataError(f"{npz_path}: file does not exist")
    try:
        data = np.load(npz_path, allow_pickle=False)
    except (ValueError, OSError) as err:
        raise DataError(f"{npz_path}: cannot read the .npz ({err})") from None
    with data:
        missing = [k for k in ("imgname", "center", "scale") if k not in data.files]
        if missing:
            raise DataError(f"{npz_path}: missing key(s) {missing} (present: {sorted(data.files)})")
        names = [str(n) for n in data["imgname"]]
        center = np.asarray(data["center"], np.float64)
        scale = np.asarray(data["scale"], np.float64).reshape(-1)
        n = len(names) if limit is None else min(limit, len(names))
        if center.shape != (len(names), 2) or scale.shape != (len(names),):
            raise DataError(f"{npz_path}: center {center.shape} and scale {scale.shape} do not match "
                            f"imgname ({len(names)},): expected ({len(names)}, 2) and ({len(names)},)")
        joints3d = _to_h36m(np.asarray(data["S"]), convention, "S", npz_path) if "S" in data.files else None
        part = _to_h36m(np.asarray(data["part"]), convention, "part", npz_path) if "part" in data.files else None
    for name, array in (("S", joints3d), ("part", part)):
        if array is not None and len(array) != len(names):
            raise DataError(f"{npz_path}: key {name!r} has {len(array)} rows, imgname has {len(names)}")
    if n == 0:
        raise DataError(f"{npz_path}: no samples")
    fields = ["image"] + (["joints3d"] if joints3d is not None else []) + (["joints2d"] if part is not None else [])
    attrs = {"source": str(npz_path), "adapter": "npz", "convention": convention, "margin": margin,
             "missing_joints": "NaN"}
    with DatasetWriter(out_dir, n, (res, res), fields, domain or npz_path.stem, split, attrs) as writer:
        for start in range(0, n, _BATCH):
            batch: dict[str, list] = {f: [] for f in fields}
            for i in range(start, min(n, start + _BATCH)):
                image = read_image(image_root / names[i])
                img, _, affine = crop(image, center[i], 200.0 * scale[i] * margin, res)
                batch["image"].append(img)
                if joints3d is not None:
                    batch["joints3d"].append(joints3d[i])
                if part is not None:
                    batch["joints2d"].append(transform_points(part[i], affine))
            writer.write(start, {k: np.stack(v) for k, v in batch.items()})
    return Path(out_dir)


# --------------------------------------------------------------------------------------------
# COCO


def decode_rle(rle: dict, height: int, width: int) -> np.ndarray:
    """Decode a COCO RLE (``counts`` as a list or a compressed string) to an ``(H, W)`` bool mask."""
    counts = rle["counts"]
    if isinstance(counts, str):
        counts = _rle_string_to_counts(counts)
    flat = np.zeros(height * width, bool)
    pos, value = 0, False
    for c in counts:
        if value:
            flat[pos:pos + c] = True
        pos += c
        value = not value
    return flat.reshape(width, height).T  # COCO RLE is column-major


def _rle_string_to_counts(s: str) -> list[int]:
    """pycocotools' compressed RLE string (LEB128-like, 5 bits per char, delta after index 2)."""
    counts: list[int] = []
    p = 0
    while p < len(s):
        x, k, more = 0, 0, True
        while more:
            c = ord(s[p]) - 48
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
    vertices, 4 fractional bits)."""
    mask = np.zeros((height, width), np.uint8)
    polys = [np.round(np.asarray(p, np.float64).reshape(-1, 2) * 16).astype(np.int32)
             for p in polygons if len(p) >= 6]
    if polys:
        cv2.fillPoly(mask, polys, 1, lineType=cv2.LINE_8, shift=4)
    return mask.astype(bool)


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
) -> Path:
    """Import COCO person annotations: one cropped sample per person.

    Args:
        json_path: COCO keypoints JSON (``images``, ``annotations`` with ``bbox``,
            ``segmentation``, ``keypoints``).
        image_dir: folder with the images (``file_name``).
        out_dir: dataset folder to write (fields ``image``, ``mask``, ``joints2d`` in H36M-17 with
            NaN for joints COCO lacks or did not label; see the module docstring).
        res, margin: crop size and margin around the person's box.
        min_keypoints: skip annotations with fewer labelled keypoints; crowd annotations and
            annotations without a segmentation are always skipped.
        min_size: skip boxes whose larger side is below this (pixels).
        limit: import at most this many persons.
    """
    json_path, image_dir = Path(json_path), Path(image_dir)
    if not json_path.is_file():
        raise DataError(f"{json_path}: file does not exist")
    try:
        coco = json.loads(json_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{json_path}: not valid JSON ({err})") from None
    for key in ("images", "annotations"):
        if key not in coco:
            raise DataError(f"{json_path}: missing key {key!r}")
    images = {img["id"]: img for img in coco["images"]}
    chosen = []
    for ann in coco["annotations"]:
        if ann.get("iscrowd", 0) or not ann.get("segmentation") or ann.get("num_keypoints", 0) < min_keypoints:
            continue
        if "bbox" not in ann or max(ann["bbox"][2:]) < min_size:
            continue
        if ann["image_id"] not in images:
            raise DataError(f"{json_path}: annotation {ann.get('id')} refers to unknown image {ann['image_id']}")
        chosen.append(ann)
    chosen.sort(key=lambda a: (a["image_id"], a.get("id", 0)))
    if limit is not None:
        chosen = chosen[:limit]
    if not chosen:
        raise DataError(f"{json_path}: no person annotation passes the filters")
    fields = ["image", "mask", "joints2d"]
    attrs = {"source": str(json_path), "adapter": "coco", "margin": margin, "missing_joints": "NaN",
             "joints2d": "H36M-17 from COCO-17 (pelvis/thorax as midpoints; spine, head top missing)",
             "annotation_ids": [a.get("id") for a in chosen]}
    cache: dict[int, np.ndarray] = {}
    with DatasetWriter(out_dir, len(chosen), (res, res), fields, domain, split, attrs) as writer:
        for i, ann in enumerate(chosen):
            info = images[ann["image_id"]]
            if ann["image_id"] not in cache:
                cache.clear()
                cache[ann["image_id"]] = read_image(image_dir / info["file_name"])
            image = cache[ann["image_id"]]
            h, w = image.shape[:2]
            if (info.get("height", h), info.get("width", w)) != (h, w):
                raise DataError(f"{image_dir / info['file_name']}: image is {w}x{h}, the JSON says "
                                f"{info.get('width')}x{info.get('height')}")
            seg = ann["segmentation"]
            mask = decode_rle(seg, h, w) if isinstance(seg, dict) else polygons_to_mask(seg, h, w)
            cx, cy, side = square_box(ann["bbox"], margin)
            img, msk, affine = crop(image, (cx, cy), side, res, mask)
            kp = np.asarray(ann.get("keypoints", [0] * 51), np.float64).reshape(1, 17, 3)
            joints = transform_points(coco_to_h36m(kp)[0], affine)
            writer.write(i, {"image": img[None], "mask": msk[None], "joints2d": joints[None]})
    return Path(out_dir)


# --------------------------------------------------------------------------------------------
# Folder of images + folder of masks


def _files_by_stem(folder: Path, what: str) -> dict[str, Path]:
    if not folder.is_dir():
        raise DataError(f"{folder}: {what} folder does not exist")
    files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() in IMAGE_SUFFIXES:
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
) -> Path:
    """Import a folder of images and a folder of person masks matched by file stem
    (``images/a.jpg`` with ``masks/a.png``). Each sample is a square crop around its mask's
    bounding box. Every image needs a mask of the same size; an empty mask is an error."""
    image_dir, mask_dir = Path(image_dir), Path(mask_dir)
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
    attrs = {"source": [str(image_dir), str(mask_dir)], "adapter": "folder", "margin": margin, "stems": stems}
    with DatasetWriter(out_dir, len(stems), (res, res), ["image", "mask"], domain, split, attrs) as writer:
        for i, stem in enumerate(stems):
            image, mask = read_image(images[stem]), read_mask(masks[stem])
            if mask.shape != image.shape[:2]:
                raise DataError(f"{masks[stem]}: mask is {mask.shape[1]}x{mask.shape[0]}, its image "
                                f"{images[stem].name} is {image.shape[1]}x{image.shape[0]}")
            ys, xs = np.nonzero(mask)
            if len(ys) == 0:
                raise DataError(f"{masks[stem]}: mask is empty (no person to crop around)")
            box = (xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)
            cx, cy, side = square_box(box, margin)
            img, msk, _ = crop(image, (cx, cy), side, res, mask)
            writer.write(i, {"image": img[None], "mask": msk[None]})
    return Path(out_dir)


__all__ = [
    "COCO_TO_H36M", "MPI3DHP17_TO_H36M", "SPIN24_TO_H36M", "coco_to_h36m", "crop",
    "decode_rle", "import_coco", "import_folder", "import_npz", "polygons_to_mask", "read_image",
    "read_mask", "spin24_to_h36m", "square_box", "transform_points",
]

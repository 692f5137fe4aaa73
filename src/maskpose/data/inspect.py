"""Look at a dataset folder: summary statistics and a contact sheet (``maskpose data stats/show``).

Both stream the memory-mapped arrays in chunks and never load a dataset whole.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from maskpose.conventions import H36M_BONES, H36M_JOINTS
from maskpose.data.dataset import LABEL_FIELDS, open_array, read_meta
from maskpose.errors import DataError
from maskpose.io import check_output_file

_CHUNK = 1024


def _open(path: Path, name: str, meta: dict) -> np.ndarray:
    return open_array(path, name, meta)


def dataset_stats(path: str | os.PathLike) -> dict[str, Any]:
    """Counts, fields, resolution, mask coverage and label ranges of a dataset folder.

    Returns a JSON-serialisable dict: ``num_samples``, ``resolution``, ``domain``, ``split``,
    ``fields`` (name -> ``[shape, dtype]``), ``labels`` (which label fields exist),
    ``mask_coverage`` (``mean``/``min``/``max`` fraction of pixels), ``empty_masks`` and, where
    present, ``joints3d`` (per-axis min/max in metres), ``joints2d`` (min/max pixels and the share
    of joints inside the image).
    """
    path = Path(path)
    meta = read_meta(path)
    n = int(meta["num_samples"])
    height, width = meta["resolution"]
    stats: dict[str, Any] = {
        "path": str(path), "num_samples": n, "resolution": [height, width],
        "domain": meta.get("domain"), "split": meta.get("split"),
        "fields": {k: [v["shape"], v["dtype"]] for k, v in meta["fields"].items()},
        "labels": [f for f in LABEL_FIELDS if f in meta["fields"]],
    }
    arrays = {name: _open(path, name, meta) for name in meta["fields"]}
    if "mask" in arrays:
        covers, found = [], set()
        for i in range(0, n, _CHUNK):
            chunk = np.asarray(arrays["mask"][i:i + _CHUNK])
            found.update(int(v) for v in np.unique(chunk))
            if not found <= {0, 1} and not found <= {0, 255}:
                shown = ", ".join(str(v) for v in sorted(found)[:8]) + (", ..." if len(found) > 8 else "")
                raise DataError(f"{path / 'mask.npy'}: mask holds values {{{shown}}}; a mask must be "
                                "{0, 1} or {0, 255}")
            covers.append((chunk > 0).mean(axis=(1, 2)))
        cover = np.concatenate(covers)
        stats["mask_coverage"] = {"mean": float(cover.mean()), "min": float(cover.min()), "max": float(cover.max())}
        stats["empty_masks"] = int((cover == 0).sum())
        stats["mask_values"] = "{0, 255} (read as {0, 1})" if 255 in found else "{0, 1}"
    for name in ("joints3d", "joints2d"):
        if name not in arrays:
            continue
        lo, hi, inside, total, missing = None, None, 0, 0, 0
        for i in range(0, n, _CHUNK):
            chunk = np.asarray(arrays[name][i:i + _CHUNK], dtype=np.float64)
            if np.isinf(chunk).any():
                bad = i + int(np.isinf(chunk.reshape(len(chunk), -1)).any(1).argmax())
                raise DataError(f"{path / (name + '.npy')}: sample {bad} holds infinite values "
                                "(a missing joint is NaN; Inf is not allowed)")
            flat = chunk.reshape(-1, chunk.shape[-1])
            missing += int(np.isnan(flat).any(1).sum())
            flat = flat[np.isfinite(flat).all(1)]
            if len(flat) == 0:
                continue
            lo = flat.min(0) if lo is None else np.minimum(lo, flat.min(0))
            hi = flat.max(0) if hi is None else np.maximum(hi, flat.max(0))
            if name == "joints2d":
                inside += int(((flat >= 0) & (flat <= [width - 1, height - 1])).all(1).sum())
                total += len(flat)
        stats[name] = {"missing_joints": missing}
        if lo is not None:
            stats[name].update(min=lo.round(4).tolist(), max=hi.round(4).tolist())
            if name == "joints2d":
                stats[name]["inside_fraction"] = inside / max(total, 1)
    if "image" in arrays:
        sample = np.asarray(arrays["image"][: min(n, 256)], dtype=np.float64)
        stats["image_mean"] = sample.mean(axis=(0, 1, 2)).round(2).tolist()
    return stats


def format_stats(stats: dict[str, Any]) -> str:
    """Human-readable lines for :func:`dataset_stats`."""
    lines = [
        f"{stats['path']}: {stats['num_samples']} samples at {stats['resolution'][0]}x{stats['resolution'][1]} px,"
        f" domain {stats['domain']}, split {stats['split']}",
        "fields: " + ", ".join(f"{k} {tuple(v[0])} {v[1]}" for k, v in stats["fields"].items()),
        "labels: " + (", ".join(stats["labels"]) or "none (images and masks only)"),
    ]
    if "mask_coverage" in stats:
        c = stats["mask_coverage"]
        lines.append(f"mask coverage: mean {c['mean']:.3f}, min {c['min']:.3f}, max {c['max']:.3f};"
                     f" empty masks: {stats['empty_masks']}; values {stats['mask_values']}")
    for name, unit, axes, digits in (("joints3d", "m", "xyz", 2), ("joints2d", "px", "xy", 1)):
        j = stats.get(name)
        if j is None:
            continue
        text = f"{name} ({unit}): " + (", ".join(f"{a} [{lo:.{digits}f}, {hi:.{digits}f}]"
                                                 for a, lo, hi in zip(axes, j["min"], j["max"]))
                                       if "min" in j else "no finite joint")
        if "inside_fraction" in j:
            text += f"; inside the image: {100 * j['inside_fraction']:.1f}%"
        lines.append(text + f"; missing (NaN) joints: {j['missing_joints']}")
    if "image_mean" in stats:
        lines.append("image mean (RGB, first 256): " + ", ".join(f"{v:.1f}" for v in stats["image_mean"]))
    return "\n".join(lines)


def dataset_contact_sheet(path: str | os.PathLike, out: str | os.PathLike, n: int = 16, columns: int | None = None,
                  cell: int = 128, seed: int | None = None) -> Path:
    """Write a PNG grid of ``n`` samples with their masks outlined (green) and 2D joints drawn
    (H36M-17 bones; left side blue, right side red) where the dataset has them.

    Args:
        path: dataset folder.
        out: PNG file to write.
        n: number of samples (the first ``n``, or ``n`` random ones when ``seed`` is given).
        columns: grid width (default ``ceil(sqrt(n))``).
        cell: size of each tile in pixels (images are resized to it).
    """

    path, out = Path(path), Path(out)
    check_output_file(out, "out", (".png", ".jpg", ".jpeg"))
    meta = read_meta(path)
    total = int(meta["num_samples"])
    n = max(1, min(n, total))
    indices = np.arange(n) if seed is None else np.sort(np.random.default_rng(seed).choice(total, n, replace=False))
    images = _open(path, "image", meta)
    masks = _open(path, "mask", meta) if "mask" in meta["fields"] else None
    joints = _open(path, "joints2d", meta) if "joints2d" in meta["fields"] else None
    columns = columns or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / columns))
    sheet = np.full((rows * cell, columns * cell, 3), 255, np.uint8)
    height, width = meta["resolution"]
    sx, sy = cell / width, cell / height
    for k, index in enumerate(indices):
        tile = cv2.resize(np.asarray(images[index]), (cell, cell), interpolation=cv2.INTER_NEAREST
                          if cell >= width else cv2.INTER_AREA)
        tile = np.ascontiguousarray(tile)
        if masks is not None:
            mask = cv2.resize(np.asarray(masks[index], np.uint8), (cell, cell), interpolation=cv2.INTER_NEAREST)
            contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
            cv2.drawContours(tile, contours, -1, (0, 255, 0), 1)
        if joints is not None:
            pts = np.asarray(joints[index], np.float64) * [sx, sy] + [(sx - 1) / 2, (sy - 1) / 2]
            for a, b in H36M_BONES:
                if np.isfinite(pts[[a, b]]).all():
                    left = H36M_JOINTS[b].startswith("l_")
                    right = H36M_JOINTS[b].startswith("r_")
                    colour = (60, 120, 255) if left else (255, 60, 60) if right else (255, 220, 0)
                    cv2.line(tile, tuple(int(round(v)) for v in pts[a]), tuple(int(round(v)) for v in pts[b]),
                             colour, 1, cv2.LINE_AA)
            for p in pts:
                if np.isfinite(p).all():
                    cv2.circle(tile, (int(round(p[0])), int(round(p[1]))), 2, (255, 255, 255), -1)
        r, c = divmod(k, columns)
        sheet[r * cell:(r + 1) * cell, c * cell:(c + 1) * cell] = tile
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
        raise DataError(f"{out}: cannot write the image (is the extension .png or .jpg?)")
    return out


__all__ = ["dataset_contact_sheet", "dataset_stats", "format_stats"]

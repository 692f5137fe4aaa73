"""Noisy-mask axis (issue 14): degrade the person masks of a target's train split.

A *target name* is ``<domain>`` or ``<domain>+<degradation>`` (:func:`parse_target`), e.g.
``motion+erode2``. The degradation acts on the train split's masks only (the supervision a
masks-only method sees); images, labels and the test split are unchanged, and the geodesic
weights, when stored, are recomputed from the degraded masks.

Degradations (:func:`degrade_masks`):

``erode{k}``, ``dilate{k}``
    OpenCV morphology (``cv2.erode``/``cv2.dilate``) with a disc kernel of radius ``k`` px, the
    pixels with ``x² + y² <= k²`` (:func:`disc_kernel`; OpenCV's own ``MORPH_ELLIPSE`` element is
    not symmetric under transposition for k >= 2, so it is not used); the image border counts as
    background for erosion. Equal to ``scipy.ndimage.binary_erosion``/``binary_dilation`` with
    ``skimage.morphology.disk(k)``.
``holes``
    1-4 elliptical holes strictly inside the mask: every hole pixel lies more than 1.5 px from the
    background, so the outline (the mask's boundary pixels and its filled shape) is kept.
``droplimb``
    One limb (an arm: upper arm, forearm, hand; or a leg: thigh, shin, foot), drawn among the
    limbs with visible pixels, is removed: its ``parts`` pixels when the dataset stores ``parts``,
    else the mask pixels near the projected limb segments of ``joints2d`` (within a radius of
    ``1.5 x`` the median half-thickness of the mask along the limb, plus 1 px).
``merge``
    Union with a second person's silhouette (another sample's mask), shifted horizontally (and by
    up to 10 % of the crop vertically) so the two boxes overlap by 10-50 % of the partner's width
    and the silhouettes touch or overlap (the partner is cropped by the frame).

Randomness: one ``numpy.random.Generator`` per sample from ``seed_sequence(seed, "degrade",
degradation, index)``, so the result does not depend on batching.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from maskpose.body.anny_body import AnnyBody
from maskpose.conventions import seed_sequence
from maskpose.data.dataset import DatasetWriter, mask_values, open_array, read_meta
from maskpose.errors import ConfigError, DataError, MaskposeError
from maskpose.masks import geodesic_weights
from maskpose.synth.appearance import PART_INDEX
from maskpose.synth.domains import get_domain
from maskpose.synth.generator import SynthesisConfig, generate

#: Degradation names without a size; ``erode{k}`` and ``dilate{k}`` take ``k`` px (1 to 16).
DEGRADATIONS = ("holes", "droplimb", "merge")
MORPHOLOGY = re.compile(r"^(erode|dilate)([1-9][0-9]?)$")
#: Limbs for ``droplimb``: their ``parts`` labels and their H36M-17 joint chains.
LIMB_PARTS = {
    "l_arm": ("l_upper_arm", "l_lower_arm", "l_hand"), "r_arm": ("r_upper_arm", "r_lower_arm", "r_hand"),
    "l_leg": ("l_upper_leg", "l_lower_leg", "l_foot"), "r_leg": ("r_upper_leg", "r_lower_leg", "r_foot"),
}
LIMB_JOINTS = {"l_arm": (11, 12, 13), "r_arm": (14, 15, 16), "l_leg": (4, 5, 6), "r_leg": (1, 2, 3)}


def check_degradation(name: str) -> str:
    """``name`` if it is a known degradation, else a :class:`ConfigError` listing them."""
    match = MORPHOLOGY.match(name)
    if name in DEGRADATIONS or (match and 1 <= int(match.group(2)) <= 16):
        return name
    raise ConfigError(f"unknown mask degradation {name!r}; known: erode<k>, dilate<k> (k = 1..16 px), "
                      f"{', '.join(DEGRADATIONS)}")


def parse_target(name: str) -> tuple[str, str | None]:
    """``"motion+erode2"`` -> ``("motion", "erode2")``; ``"cctv"`` -> ``("cctv", None)``.

    The domain must be registered and the degradation known (:class:`ConfigError` otherwise).
    """
    domain, sep, degradation = name.partition("+")
    get_domain(domain)
    if not sep:
        return domain, None
    if "+" in degradation:
        raise ConfigError(f"target {name!r}: one degradation at most (<domain>+<degradation>)")
    return domain, check_degradation(degradation)


def _rngs(rng, n: int) -> list[np.random.Generator]:
    if isinstance(rng, np.random.Generator):
        return [rng] * n
    rngs = list(rng)
    if len(rngs) != n:
        raise MaskposeError(f"need one generator per mask ({n}), got {len(rngs)}")
    return rngs


def degrade_masks(masks: np.ndarray, degradation: str, rng, *, parts: np.ndarray | None = None,
                  joints2d: np.ndarray | None = None, pool: np.ndarray | None = None,
                  **labels) -> np.ndarray:
    """Degrade ``masks (B, H, W)`` (returns new uint8 {0, 1} masks).

    Args:
        masks: person masks.
        degradation: ``erode{k}``, ``dilate{k}``, ``holes``, ``droplimb`` or ``merge``.
        rng: one ``numpy.random.Generator`` (shared, used in order) or one per mask.
        parts: ``(B, H, W)`` part labels (``droplimb``; preferred over ``joints2d``).
        joints2d: ``(B, 17, 2)`` H36M-17 pixels (``droplimb`` without ``parts``).
        pool: ``(M, H, W)`` masks the ``merge`` partner is drawn from (default ``masks``; a mask is
            never merged with itself when the pool is ``masks`` and holds more than one).
        labels: other labels are accepted and ignored.
    """
    check_degradation(degradation)
    masks = (np.asarray(masks) > 0).astype(np.uint8)
    if masks.ndim != 3:
        raise MaskposeError(f"masks must have shape (B, H, W), got {masks.shape}")
    rngs = _rngs(rng, len(masks))
    match = MORPHOLOGY.match(degradation)
    if match:
        k = int(match.group(2))
        kernel = disc_kernel(k)
        op = cv2.erode if match.group(1) == "erode" else cv2.dilate
        return np.stack([op(m, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0) for m in masks])
    if degradation == "holes":
        return np.stack([_holes(m, r) for m, r in zip(masks, rngs, strict=True)])
    if degradation == "droplimb":
        if parts is None and joints2d is None:
            raise ConfigError("droplimb needs the parts labels or joints2d of the masks")
        out = []
        for i, (m, r) in enumerate(zip(masks, rngs, strict=True)):
            out.append(_droplimb(m, r, None if parts is None else np.asarray(parts[i]),
                                 None if joints2d is None else np.asarray(joints2d[i], dtype=np.float64)))
        return np.stack(out)
    own = pool is None
    pool = masks if own else (np.asarray(pool) > 0).astype(np.uint8)
    out = []
    for i, (m, r) in enumerate(zip(masks, rngs, strict=True)):
        if own and len(pool) > 1:
            j = (i + 1 + int(r.integers(len(pool) - 1))) % len(pool)
        else:
            j = int(r.integers(len(pool)))
        out.append(_merge(m, pool[j], r))
    return np.stack(out)


def disc_kernel(k: int) -> np.ndarray:
    """``(2k + 1, 2k + 1)`` uint8 disc: the offsets with ``x² + y² <= k²``."""
    yy, xx = np.mgrid[-k:k + 1, -k:k + 1]
    return (xx * xx + yy * yy <= k * k).astype(np.uint8)


def _distance(mask: np.ndarray) -> np.ndarray:
    """Euclidean distance of every mask pixel to the nearest background pixel (the image border
    counts as background)."""
    padded = np.pad(mask, 1)
    return cv2.distanceTransform(padded, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]


def _holes(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = mask.copy()
    count = int(rng.integers(1, 5))
    res = max(mask.shape)
    for _ in range(count):
        radius = float(rng.uniform(1.0, max(1.5, 0.05 * res)))
        aspect, angle = float(rng.uniform(0.5, 1.0)), float(rng.uniform(0.0, 180.0))
        dist = _distance(out)  # holes already cut count as background: they stay apart
        ok = np.argwhere(dist > radius + 1.5)
        if len(ok) == 0:
            continue
        cy, cx = ok[int(rng.integers(len(ok)))]
        hole = np.zeros_like(out)
        axes = (max(1, int(round(radius))), max(1, int(round(radius * aspect))))
        cv2.ellipse(hole, (int(cx), int(cy)), axes, angle, 0, 360, 1, -1)
        # keep the outline exactly: only pixels farther than 1.5 px from the background
        out[(hole > 0) & (dist > 1.5)] = 0
    return out


def _segment_distance(height: int, width: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance of every pixel centre to the segment ``a``-``b`` (pixel coordinates ``(x, y)``)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    p = np.stack([xx, yy], -1)
    ab = b - a
    t = np.clip(((p - a) @ ab) / max(float(ab @ ab), 1e-12), 0.0, 1.0)
    return np.linalg.norm(p - (a + t[..., None] * ab), axis=-1)


def limb_region(mask: np.ndarray, joints2d: np.ndarray, limb: str) -> np.ndarray:
    """The mask pixels ``droplimb`` removes for ``limb`` from ``joints2d (17, 2)``: within
    ``1.5 x`` the median half-thickness of the mask along the limb (sampled on its outer 70 %),
    plus 1 px, of its projected segments."""
    height, width = mask.shape
    chain = joints2d[list(LIMB_JOINTS[limb])]
    if not np.isfinite(chain).all():
        return np.zeros(mask.shape, bool)
    dist = _distance(mask)
    samples = []
    for a, b in zip(chain[:-1], chain[1:], strict=True):
        for s in np.linspace(0.0, 1.0, 8):
            x, y = a + s * (b - a)
            xi, yi = int(round(x)), int(round(y))
            if 0 <= xi < width and 0 <= yi < height:
                samples.append(dist[yi, xi])
    samples = samples[len(samples) * 3 // 10:]  # skip the root of the limb (inside the trunk)
    thickness = float(np.median([s for s in samples if s > 0])) if any(s > 0 for s in samples) else 1.0
    radius = 1.5 * thickness + 1.0
    near = np.zeros(mask.shape, bool)
    for a, b in zip(chain[:-1], chain[1:], strict=True):
        near |= _segment_distance(height, width, a, b) <= radius
    return near & (mask > 0)


def _droplimb(mask: np.ndarray, rng: np.random.Generator, parts: np.ndarray | None,
              joints2d: np.ndarray | None) -> np.ndarray:
    regions = {}
    for limb, names in LIMB_PARTS.items():
        if parts is not None:
            region = np.isin(parts, [PART_INDEX[n] for n in names]) & (mask > 0)
        else:
            region = limb_region(mask, joints2d, limb)
        if region.any():
            regions[limb] = region
    if not regions:
        return mask.copy()
    limb = sorted(regions)[int(rng.integers(len(regions)))]
    out = mask.copy()
    out[regions[limb]] = 0
    return out


def _shift(mask: np.ndarray, dx: int, dy: int) -> np.ndarray:
    height, width = mask.shape
    out = np.zeros_like(mask)
    ys, xs = slice(max(0, dy), min(height, height + dy)), slice(max(0, dx), min(width, width + dx))
    yd, xd = slice(max(0, -dy), min(height, height - dy)), slice(max(0, -dx), min(width, width - dx))
    out[ys, xs] = mask[yd, xd]
    return out


def _merge(mask: np.ndarray, partner: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``mask`` united with ``partner`` shifted sideways (to the roomier side of the frame with
    probability 0.75) so that the boxes overlap by 10-50 % of the partner's width, then further
    until the two silhouettes touch (8-connectivity)."""
    if not mask.any() or not partner.any():
        return np.maximum(mask, partner)
    mx, px = np.nonzero(mask.any(0))[0], np.nonzero(partner.any(0))[0]
    roomier = 1 if mask.shape[1] - 1 - mx[-1] > mx[0] else -1  # the side with more of the frame left
    side = roomier if rng.random() < 0.75 else -roomier
    overlap = float(rng.uniform(0.1, 0.5))
    dy = int(round(rng.uniform(-0.1, 0.1) * mask.shape[0]))
    width = int(px[-1] - px[0] + 1)
    if side > 0:  # partner to the right: its left edge at the mask's right edge, minus the overlap
        dx = int(mx[-1] + 1 - px[0] - round(overlap * width))
    else:
        dx = int(mx[0] - 1 - px[-1] + round(overlap * width))
    grown = cv2.dilate(mask, np.ones((3, 3), np.uint8))
    moved = _shift(partner, dx, dy)
    for _ in range(2 * mask.shape[1]):  # slide toward the mask until the silhouettes touch
        if (moved & grown).any():
            break
        dx -= side
        moved = _shift(partner, dx, dy)
    return np.maximum(mask, moved)


def sample_rngs(seed: int, degradation: str, indices: Sequence[int]) -> list[np.random.Generator]:
    """The per-sample generators of a degradation."""
    return [np.random.default_rng(seed_sequence(seed, "degrade", degradation, int(i))) for i in indices]


def degrade_dataset(path, degradation: str, seed: int = 0, chunk: int = 256) -> Path:
    """Degrade the masks of the dataset at ``path`` (and recompute its ``geodesic`` weights when
    stored); the degradation and seed are recorded in ``meta.json`` attrs (``mask_degradation``).
    ``droplimb`` uses the stored ``parts``, else ``joints2d``.

    The degraded dataset is written through :class:`~maskpose.data.dataset.DatasetWriter`, so a
    failure leaves the dataset as it was; masks stored as {0, 255} are read as {0, 1}.
    """
    check_degradation(degradation)
    path = Path(path)
    meta = read_meta(path)
    attrs = dict(meta.get("attrs", {}))
    if "mask_degradation" in attrs:
        raise DataError(f"{path}: masks already degraded ({attrs['mask_degradation']})")
    fields = list(meta["fields"])
    arrays = {name: open_array(path, name, meta) for name in fields}
    labels = {}
    if degradation == "droplimb":
        if "parts" in arrays:
            labels["parts"] = arrays["parts"]
        elif "joints2d" in arrays:
            labels["joints2d"] = arrays["joints2d"]
        else:
            raise DataError(f"{path}: droplimb needs a dataset with parts or joints2d")
    masks = mask_values(np.asarray(arrays["mask"]), path / "mask.npy")
    rngs = sample_rngs(seed, degradation, range(len(masks)))
    degraded = degrade_masks(masks, degradation, rngs, **labels)
    attrs["mask_degradation"] = {"name": degradation, "seed": int(seed)}
    num_samples = int(meta["num_samples"])
    with DatasetWriter(path, num_samples, tuple(meta["resolution"]), fields, meta.get("domain", "unknown"),
                       meta.get("split", "train"), attrs) as writer:
        for start in range(0, num_samples, chunk):
            stop = min(start + chunk, num_samples)
            batch = {name: np.asarray(array[start:stop]) for name, array in arrays.items()}
            batch["mask"] = degraded[start:stop]
            if "geodesic" in batch:
                batch["geodesic"] = np.stack([geodesic_weights(m) if m.any() else np.ones(m.shape, np.float32)
                                              for m in degraded[start:stop]])
            writer.write(start, batch)
    return path


def generate_target(out_dir, target: str, n: int, res: int = 128, seed: int = 0, split: str = "train",
                    labels: bool = True, config: SynthesisConfig | None = None, *, body=None, **kwargs) -> Path:
    """One split of a target: :func:`~maskpose.synth.generator.generate` of the target's domain, then,
    when the target names a degradation (``motion+erode2``), :func:`degrade_dataset` of its masks
    with ``seed``. The images and labels are the domain's own, so ``motion+erode2`` differs from
    ``motion`` (same seed and split) in its masks alone. ``droplimb`` renders with the synthesis
    extras (``depth``, ``parts``; they stay the clean render) so the limb is removed exactly, except
    for a domain that writes its own datasets (``bgsub``), whose limbs are found from ``joints2d``."""
    domain, degradation = parse_target(target)
    config = config if config is not None else SynthesisConfig()
    renders_parts = get_domain(domain).generator is None
    if degradation == "droplimb" and not config.extras and renders_parts:
        config = replace(config, extras=True)
    path = generate(out_dir, domain, n, res, seed, split, labels, config, body=body, **kwargs)
    if degradation is not None:
        degrade_dataset(path, degradation, seed)
    return path


def generate_target_splits(root, target: str, n_train: int, n_test: int, res: int = 128, seed: int = 0,
                           config: SynthesisConfig | None = None, *, train_labels: bool | None = None, body=None,
                           **kwargs) -> dict[str, Path]:
    """Write ``root/<target>/train`` (:func:`generate_target`: masks degraded when the target names
    a degradation) and ``root/<target>/test`` (labelled, undegraded): a drop-in for
    :func:`~maskpose.synth.generator.generate_domain_splits` that also takes target names.

    The samples are those of the domain (seeds come from the domain name, not the target's): the
    test split of ``motion+erode2`` equals that of ``motion``, and the train split's images equal
    ``motion``'s. ``train_labels`` defaults to labels on the source domain ``studio`` only (as in
    ``generate_domain_splits``).
    """
    domain, _ = parse_target(target)
    if train_labels is None:
        train_labels = domain == "studio"
    config = config if config is not None else SynthesisConfig()
    base = Path(root) / target
    if body is None:
        body = AnnyBody(device=config.device)
    train = generate_target(base / "train", target, n_train, res, seed, "train", train_labels, config, body=body,
                            **kwargs)
    test = generate(base / "test", domain, n_test, res, seed, "test", True, config, body=body, **kwargs)
    return {"train": train, "test": test}


__all__ = ["DEGRADATIONS", "LIMB_JOINTS", "LIMB_PARTS", "check_degradation", "degrade_dataset", "disc_kernel", "degrade_masks",
           "generate_target", "generate_target_splits", "limb_region", "parse_target", "sample_rngs"]

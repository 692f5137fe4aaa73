"""Realism for synthetic people (in the spirit of SURREAL): varied backgrounds and camera effects.

Everything here is pure and seeded: all randomness comes from the ``numpy.random.Generator`` that
is passed in, and the same generator state gives the same bytes. Images are ``(H, W, 3)`` RGB.

Procedural backgrounds
    Each generator is ``(rng, res) -> (res, res, 3) float32 in [0, 1]``; pixel sizes below are at
    128 px and scale with ``res``. Shapes are drawn with OpenCV on ``uint8`` (sub-pixel
    coordinates), noise is interpolated with ``cv2.warpAffine``; each takes about 1 ms at 128 px.

    :func:`dead_leaves_background`
        The dead-leaves model: 150-300 opaque discs, ellipses (aspect 0.3-1) and rotated
        rectangles painted back to front over a palette-coloured canvas. Radii follow a power law
        ``p(r) ∝ r^-α`` with ``α`` in 1.8-2.6 between 2 px and 10-35 % of the crop; colours come
        from a palette of 2-5 random colours, each leaf shaded by 0.55-1.15 and jittered
        (std 0.04). With probability 0.5 a slight Gaussian blur (sigma 0.4-1.0 px).
    :func:`fractal_noise_background`
        Fractal (Perlin-like) value noise: 3-6 octaves (fewer when the finest cells would be under
        2 px) of interpolated random grids (bicubic, bilinear from the third octave on; base grid
        2-4 cells, the cell count doubling per octave, each grid at a random sub-cell offset),
        amplitudes ``persistence^k`` with persistence 0.35-0.75; ridged (``|2n - 1|``) with
        probability 0.3; normalised to [0, 1] and mapped through a ramp of 2-3 random colours
        (random hues, saturation 0.05-0.9, values evenly from 0.05-0.45 to 0.55-0.95, either way
        round), with a mild second low-frequency per-channel tint (amplitude 0.04-0.12).
    :func:`shapes_background`
        Clutter over a linear gradient (random angle, two colours): 8-30 anti-aliased shapes and
        lines (axis-aligned boxes, rotated boxes, discs, ellipses, triangles, filled or outlined
        1-3 px, and lines 1-4 px), then a mild multiplicative low-frequency shading (amplitude
        0.1-0.3) and with probability 0.5 a slight blur (sigma 0.3-0.8 px).
    :func:`gradient_background`
        A room: wall above a horizon at 40-85 % of the height, tilted by up to ±6°, floor below.
        The wall has a vertical or (probability 0.5) radial light falloff of depth 0.1-0.4; the
        floor darkens toward the horizon by 0.1-0.45; with probability 0.5 a skirting board
        (1-4 px); mild texture: low-frequency multiplicative noise (amplitude 0.05-0.2) plus fine
        grain (std 0.005-0.02).
    :func:`procedural_background`
        One of the four, picked uniformly (one ``rng.integers(4)`` draw, then the generator's).

User photographs
    :class:`PhotoBackgrounds` lists the images (png, jpg, jpeg, bmp, webp; recursive, sorted by
    relative path) of a folder, checks each header once, loads the pixels lazily and caches each
    photo (``uint8``, bounded LRU) downscaled so that its shorter side is at most 512 px (EXIF
    orientation applied). :meth:`PhotoBackgrounds.crop` takes a square of side 25-100 % of the
    shorter side at a random position, flips it horizontally with probability 0.5 and resizes it
    (``cv2.INTER_AREA``; ``INTER_LINEAR`` when enlarging).

Camera effects
    :func:`camera_effects` (and :class:`CameraEffects`, whose defaults are the figures here) acts
    on ``(B, H, W, 3)`` uint8 images with one generator per sample. Each sample draws *all* its
    numbers first, always the same ones in the same order (:meth:`CameraEffects.draw`: 19
    uniforms then one 63-bit seed for the noise field), so whether one effect happens never
    shifts another's draws, and the generator is left in the same state whatever was applied.
    Applied in this order (pixel sizes at 128 px, scaled with ``H``):

    1. motion blur (p 0.3): normalised line kernel (:func:`motion_kernel`), length 3-9 px, angle
       0-180°;
    2. defocus (p 0.2): Gaussian blur, sigma 0.5-1.5 px;
    3. vignetting (p 0.2): gain ``1 - depth * (r / r_corner)^2``, depth 0.1-0.35;
    4. colour jitter (always): white balance (red and blue gains 0.92-1.08), saturation 0.75-1.25,
       hue rotation about the grey axis ±8°, contrast 0.8-1.2 about the mean luma, brightness
       ±0.06, gamma 0.8-1.25 (log-uniform);
    5. sensor noise (p 0.7): Gaussian, std 1-8 /255 at mid-grey, Poisson-like: the variance is
       ``std² ((1 - shot) + shot x / 0.5)`` with a shot fraction 0-1, independent per pixel and
       channel (:func:`sensor_noise`; normals from a 65536-level quantile table), then rounding
       to uint8;
    6. JPEG re-compression (p 0.5): ``cv2.imencode``/``imdecode`` at quality 30-95.

    ``strength`` scales every magnitude linearly toward the identity (blur lengths and sigmas,
    vignetting depth, each colour parameter's distance from neutral, gamma's logarithm, noise std,
    ``100 - quality``; gains clamped at 0, quality at 1); the probabilities stay. ``strength=0`` returns an unchanged copy (the draws still happen).
"""

from __future__ import annotations

import functools
import math
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image, ImageOps

from maskpose.errors import ConfigError, DataError, MaskposeError

#: Reference resolution of the pixel sizes quoted in the module docstring.
REFERENCE_RES = 128


def _check_res(res: int) -> int:
    if int(res) != res or res < 4:
        raise ConfigError(f"background resolution must be an integer >= 4, got {res!r}")
    return int(res)


def _to_float(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float32) * np.float32(1.0 / 255.0)


def _to_uint8(image: np.ndarray) -> np.ndarray:
    """Round float ``[0, 1]`` to uint8 (saturating)."""
    return cv2.convertScaleAbs(np.maximum(image, 0.0), alpha=255.0)


def _hsv(hue, sat, val) -> np.ndarray:
    """``(n, 3)`` float32 RGB of HSV arrays (hue in degrees, saturation and value in [0, 1])."""
    hsv = np.stack(np.broadcast_arrays(hue, sat, val), -1).astype(np.float32).reshape(1, -1, 3)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0]


def _colours(rng: np.random.Generator, n: int, sat=(0.05, 0.8), val=(0.15, 0.95)) -> np.ndarray:
    """``(n, 3)`` float32 random RGB colours (uniform hue, saturation and value in the ranges)."""
    return _hsv(rng.uniform(0.0, 360.0, n), rng.uniform(*sat, n), rng.uniform(*val, n))


@functools.lru_cache(maxsize=16)
def _grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Read-only float32 pixel-centre coordinates in [0, 1], broadcastable: ``y (H, 1)``, ``x (1, W)``."""
    y = ((np.arange(height, dtype=np.float32) + 0.5) / height)[:, None]
    x = ((np.arange(width, dtype=np.float32) + 0.5) / width)[None, :]
    y.flags.writeable = x.flags.writeable = False
    return y, x


def _octave(rng: np.random.Generator, res: int, cells: int, channels: int = 1,
            interpolation: int = cv2.INTER_CUBIC) -> np.ndarray:
    """``(res, res, channels)`` float32 smooth value noise: a random ``(cells + 3)²`` grid
    interpolated (bicubic by default), ``cells`` cells across, at a random sub-cell offset (so
    octaves do not share one grid)."""
    small = rng.random((cells + 3, cells + 3, channels), dtype=np.float32)
    oy, ox = rng.uniform(1.0, 2.0, 2)
    step = cells / res
    warp = np.array([[step, 0.0, ox + 0.5 * step - 0.5], [0.0, step, oy + 0.5 * step - 0.5]], np.float32)
    out = cv2.warpAffine(small, warp, (res, res), flags=interpolation | cv2.WARP_INVERSE_MAP,
                         borderMode=cv2.BORDER_REFLECT)
    return out.reshape(res, res, channels)


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(image, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)


# --------------------------------------------------------------------------------------------
# Procedural backgrounds

_SUBPIXEL = 4  # fixed-point bits of the cv2 drawing coordinates


def _fixed(values: np.ndarray) -> np.ndarray:
    return np.round(values * (1 << _SUBPIXEL)).astype(np.int64)


def _boxes(cx, cy, half_w, half_h, angle_rad) -> np.ndarray:
    """``(n, 4, 2)`` corners of rotated boxes (fixed point)."""
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], np.float64)
    dx = corners[None, :, 0] * half_w[:, None]
    dy = corners[None, :, 1] * half_h[:, None]
    x = cx[:, None] + dx * c[:, None] - dy * s[:, None]
    y = cy[:, None] + dx * s[:, None] + dy * c[:, None]
    return _fixed(np.stack([x, y], -1)).astype(np.int32)


def dead_leaves_background(rng: np.random.Generator, res: int) -> np.ndarray:
    """Dead-leaves image ``(res, res, 3)`` float32 in [0, 1] (see the module docstring)."""
    res = _check_res(res)
    palette = _colours(rng, int(rng.integers(2, 6)))
    n = int(rng.integers(150, 301))
    alpha = rng.uniform(1.8, 2.6)
    r_min, r_max = 2.0 * res / REFERENCE_RES, res * rng.uniform(0.1, 0.35)
    kind = rng.integers(0, 3, n)
    cx, cy = rng.uniform(-0.05 * res, 1.05 * res, (2, n))
    u = rng.random(n)
    a, b = r_min ** (1 - alpha), r_max ** (1 - alpha)
    radius = (a + u * (b - a)) ** (1 / (1 - alpha))  # inverse CDF of p(r) ~ r^-alpha on [r_min, r_max]
    aspect = rng.uniform(0.3, 1.0, n)
    angle = rng.uniform(0.0, 180.0, n)
    colour = palette[rng.integers(0, len(palette), n)] * rng.uniform(0.55, 1.15, (n, 1)) \
        + rng.normal(0.0, 0.04, (n, 3))
    blur = rng.random() < 0.5
    sigma = rng.uniform(0.4, 1.0) * res / REFERENCE_RES
    canvas = np.empty((res, res, 3), np.uint8)
    canvas[:] = np.clip(palette[0] * 255 + 0.5, 0, 255).astype(np.uint8)
    colours = np.clip(colour * 255 + 0.5, 0, 255).astype(np.int64).tolist()
    centres = _fixed(np.stack([cx, cy], -1)).tolist()
    axes = _fixed(np.stack([radius, radius * aspect], -1)).tolist()
    rad = _fixed(radius).tolist()
    boxes = _boxes(cx, cy, radius, radius * aspect, np.radians(angle))
    kinds, angles = kind.tolist(), angle.tolist()
    for i in range(n):
        if kinds[i] == 0:
            cv2.circle(canvas, centres[i], rad[i], colours[i], -1, cv2.LINE_8, _SUBPIXEL)
        elif kinds[i] == 1:
            cv2.ellipse(canvas, centres[i], axes[i], angles[i], 0, 360, colours[i], -1, cv2.LINE_8, _SUBPIXEL)
        else:
            cv2.fillConvexPoly(canvas, boxes[i], colours[i], cv2.LINE_8, _SUBPIXEL)
    if blur:
        canvas = _blur(canvas, sigma)
    return _to_float(canvas)


def fractal_noise_background(rng: np.random.Generator, res: int) -> np.ndarray:
    """Fractal value-noise image ``(res, res, 3)`` float32 in [0, 1] (see the module docstring)."""
    res = _check_res(res)
    cells = int(rng.integers(2, 5))
    octaves = min(int(rng.integers(3, 7)), max(1, int(math.log2(res / (2 * cells))) + 1))
    persistence = rng.uniform(0.35, 0.75)
    ridged = rng.random() < 0.3
    noise = _octave(rng, res, cells)
    for k in range(1, octaves):
        fine = cv2.INTER_CUBIC if k < 2 else cv2.INTER_LINEAR   # faint fine octaves: linear is enough
        noise += np.float32(persistence ** k) * _octave(rng, res, cells * 2 ** k, interpolation=fine)
    lo, hi = float(noise.min()), float(noise.max())
    noise = (noise[..., 0] - lo) * np.float32(1.0 / max(hi - lo, 1e-6))
    if ridged:
        noise = np.abs(2.0 * noise - 1.0)
    k = int(rng.integers(2, 4))
    hue, sat = rng.uniform(0.0, 360.0, k), rng.uniform(0.05, 0.9, k)
    dark, light = rng.uniform(0.05, 0.45), rng.uniform(0.55, 0.95)   # the ramp spans dark to light
    val = np.linspace(dark, light, k)
    stops = _hsv(hue, sat, val if rng.random() < 0.5 else val[::-1])
    ramp = np.linspace(0.0, 1.0, len(stops))
    levels = np.linspace(0.0, 1.0, 256)
    lut = np.stack([np.interp(levels, ramp, stops[:, c]) for c in range(3)], -1).astype(np.float32)
    index = _to_uint8(noise)
    image = cv2.LUT(cv2.merge([index, index, index]), lut[:, None, :])
    tint = (_octave(rng, res, int(rng.integers(2, 4)), 3) - 0.5) * np.float32(rng.uniform(0.04, 0.12))
    return np.clip(image + tint, 0.0, 1.0, out=image)


def shapes_background(rng: np.random.Generator, res: int) -> np.ndarray:
    """Shapes and lines over a gradient, ``(res, res, 3)`` float32 in [0, 1] (see the module docstring)."""
    res = _check_res(res)
    scale = res / REFERENCE_RES
    c0, c1 = _colours(rng, 2)
    theta = rng.uniform(0.0, 2 * math.pi)
    y, x = _grid(res, res)
    t = (x - 0.5) * np.float32(math.cos(theta)) + (y - 0.5) * np.float32(math.sin(theta)) + np.float32(0.5)
    base = c0 + (c1 - c0) * np.clip(t, 0.0, 1.0)[..., None]
    canvas = _to_uint8(base)
    n = int(rng.integers(8, 31))
    kind = rng.integers(0, 6, n)             # 0 box, 1 rotated box, 2 disc, 3 ellipse, 4 triangle, 5 line
    outline = rng.random(n) < 0.25
    thickness = rng.integers(1, 4, n)
    line_width = rng.integers(1, 5, n)
    cx, cy = rng.uniform(0.0, res, (2, n))
    size = res * rng.uniform(0.03, 0.3, (2, n))
    angle = rng.uniform(0.0, 180.0, n)
    tri = rng.uniform(-1.0, 1.0, (n, 3, 2))
    colours = np.clip(_colours(rng, n, sat=(0.0, 0.9), val=(0.05, 1.0)) * 255 + 0.5, 0, 255).astype(np.int64).tolist()
    shade_amp = rng.uniform(0.1, 0.3)
    shade = _octave(rng, res, int(rng.integers(2, 5)))
    blur = rng.random() < 0.5
    sigma = rng.uniform(0.3, 0.8) * scale
    boxes = _boxes(cx, cy, size[0], size[1], np.radians(angle))
    axis_boxes = _boxes(cx, cy, size[0], size[1], np.zeros(n))
    tris = _fixed(np.stack([cx, cy], -1)[:, None] + tri * size.T[:, None]).astype(np.int32)
    centres = _fixed(np.stack([cx, cy], -1)).tolist()
    axes = _fixed(size.T).tolist()
    kinds, outlines, angles = kind.tolist(), outline.tolist(), angle.tolist()
    widths = np.maximum(1, np.round(thickness * scale)).astype(np.int64).tolist()
    lines = np.maximum(1, np.round(line_width * scale)).astype(np.int64).tolist()
    aa = cv2.LINE_AA
    for i in range(n):
        fill = widths[i] if outlines[i] else -1
        if kinds[i] in (0, 1, 4):
            poly = (axis_boxes if kinds[i] == 0 else boxes if kinds[i] == 1 else tris)[i]
            if fill < 0:
                cv2.fillConvexPoly(canvas, poly, colours[i], aa, _SUBPIXEL)
            else:
                cv2.polylines(canvas, [poly], True, colours[i], fill, aa, _SUBPIXEL)
        elif kinds[i] == 2:
            cv2.circle(canvas, centres[i], axes[i][0], colours[i], fill, aa, _SUBPIXEL)
        elif kinds[i] == 3:
            cv2.ellipse(canvas, centres[i], axes[i], angles[i], 0, 360, colours[i], fill, aa, _SUBPIXEL)
        else:
            p, q = tris[i][0].tolist(), tris[i][1].tolist()
            cv2.line(canvas, p, q, colours[i], lines[i], aa, _SUBPIXEL)
    if blur:
        canvas = _blur(canvas, sigma)
    image = _to_float(canvas)
    image *= (1.0 + (shade - 0.5) * np.float32(2 * shade_amp))
    return np.clip(image, 0.0, 1.0, out=image)


def gradient_background(rng: np.random.Generator, res: int) -> np.ndarray:
    """Wall and floor with gradients and mild texture, ``(res, res, 3)`` float32 in [0, 1] (see the
    module docstring)."""
    res = _check_res(res)
    wall, floor = _colours(rng, 2, sat=(0.0, 0.6), val=(0.25, 0.95))
    horizon = rng.uniform(0.4, 0.85)
    tilt = math.tan(math.radians(rng.uniform(-6.0, 6.0)))
    radial = rng.random() < 0.5
    light_y, light_x = rng.uniform(-0.2, 0.5), rng.uniform(0.0, 1.0)
    wall_depth = rng.uniform(0.1, 0.4)
    floor_depth = rng.uniform(0.1, 0.45)
    board = rng.random() < 0.5
    board_px = rng.uniform(1.0, 4.0) * res / REFERENCE_RES
    board_colour = _colours(rng, 1, sat=(0.0, 0.4), val=(0.1, 0.9))[0]
    texture_amp = rng.uniform(0.05, 0.2)
    texture = _octave(rng, res, int(rng.integers(3, 9)))
    grain = rng.standard_normal((res, res), dtype=np.float32) * np.float32(rng.uniform(0.005, 0.02))
    y, x = _grid(res, res)
    line = np.float32(horizon) + np.float32(tilt) * (x - 0.5)     # (1, res) horizon height per column
    if radial:
        dist = np.sqrt((y - np.float32(light_y)) ** 2 + (x - np.float32(light_x)) ** 2) * np.float32(1 / 1.2)
        wall_gain = 1.0 - np.float32(wall_depth) * np.minimum(dist, 1.0)
    else:
        wall_gain = 1.0 - np.float32(wall_depth) * (y / np.maximum(line, 1e-3))
    below = np.clip((y - line) / np.maximum(1.0 - line, 1e-3), 0.0, 1.0)
    floor_gain = 1.0 - np.float32(floor_depth) * (1.0 - below)
    is_floor = y >= line
    band = ~is_floor & (y >= line - np.float32(board_px / res)) if board else np.zeros((res, res), bool)
    shade = 1.0 + (texture[..., 0] - 0.5) * np.float32(2 * texture_amp)
    weights = cv2.merge([np.where(is_floor | band, 0.0, wall_gain).astype(np.float32) * shade,
                         np.where(is_floor, floor_gain, 0.0).astype(np.float32) * shade,
                         band.astype(np.float32) * shade, grain])
    mixing = np.stack([wall, floor, board_colour, np.ones(3, np.float32)], 1)     # (3, 4)
    image = cv2.transform(weights, mixing)
    return np.clip(image, 0.0, 1.0, out=image)


#: The procedural generators, in the order :func:`procedural_background` indexes them.
GENERATORS: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "dead_leaves": dead_leaves_background,
    "fractal_noise": fractal_noise_background,
    "shapes": shapes_background,
    "gradient": gradient_background,
}
_GENERATOR_LIST = tuple(GENERATORS.values())


def procedural_background(rng: np.random.Generator, res: int) -> np.ndarray:
    """One of :data:`GENERATORS`, picked uniformly by ``rng.integers(4)``, then drawn from ``rng``."""
    return _GENERATOR_LIST[int(rng.integers(len(_GENERATOR_LIST)))](rng, res)


# --------------------------------------------------------------------------------------------
# User photographs

#: File name endings :class:`PhotoBackgrounds` lists (case-insensitive).
PHOTO_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def _load_photo(path: Path, max_short: int) -> np.ndarray:
    """RGB uint8 pixels of an image file, downscaled so that its shorter side is <= max_short."""
    with Image.open(path) as handle:
        handle.draft("RGB", (max_short, max_short))  # JPEG: decode at a reduced scale when possible
        image = ImageOps.exif_transpose(handle)
        if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):  # 16-bit / float greyscale
            grey = np.asarray(image, dtype=np.float32)
            if image.mode == "F":
                peak = max(float(grey.max()), 1e-6)
            else:
                peak = 65535.0 if grey.max() > 255 else 255.0
            pixels = np.repeat(np.clip(grey / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)[..., None], 3, -1)
        else:
            pixels = np.asarray(image.convert("RGB"))
    h, w = pixels.shape[:2]
    if min(h, w) == 0:
        raise OSError("empty image")
    scale = max_short / min(h, w)
    if scale < 1:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        pixels = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(pixels, dtype=np.uint8)


class PhotoBackgrounds:
    """Random square crops of the photographs in a folder (``--backgrounds DIR``).

    Args:
        folder: searched recursively for :data:`PHOTO_EXTENSIONS`; files are ordered by their
            path relative to ``folder`` (so the crops do not depend on the file system's order).
        max_short: each photo is cached downscaled so that its shorter side is at most this.
        cache_bytes: bound on the cached pixels (least recently used photos are dropped and
            reloaded when needed; this never changes a crop).

    Attributes:
        files: the readable image files (paths).
        skipped: how many files with an image ending could not be read (a header that does not
            open at construction, or pixels that fail to decode when first loaded).

    Raises:
        DataError: the folder does not exist, or holds no readable image.
    """

    def __init__(self, folder: str | Path, max_short: int = 512, cache_bytes: int = 1 << 30):
        self.folder = Path(folder)
        self.max_short, self.cache_bytes = int(max_short), int(cache_bytes)
        if not self.folder.is_dir():
            raise DataError(f"backgrounds folder {self.folder} does not exist or is not a folder")
        found = sorted((p for p in self.folder.rglob("*") if p.suffix.lower() in PHOTO_EXTENSIONS and p.is_file()),
                       key=lambda p: p.relative_to(self.folder).as_posix())
        self.files: list[Path] = []
        self.skipped = 0
        for path in found:
            try:
                with Image.open(path) as handle:
                    width, height = handle.size
                if width < 1 or height < 1:
                    raise OSError("empty image")
            except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
                self.skipped += 1
                continue
            self.files.append(path)
        if not self.files:
            what = f"no readable image ({self.skipped} unreadable)" if found else \
                f"no image files ({', '.join(e[1:] for e in PHOTO_EXTENSIONS)})"
            raise DataError(f"backgrounds folder {self.folder} holds {what}")
        self._bad: set[int] = set()
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cached_bytes = 0

    def __len__(self) -> int:
        return len(self.files)

    def __repr__(self) -> str:
        return f"PhotoBackgrounds({str(self.folder)!r}: {len(self.files)} photos, {self.skipped} skipped)"

    def __getstate__(self) -> dict:  # pickled into data-loader workers without the cache
        state = dict(self.__dict__)
        state["_cache"], state["_cached_bytes"] = OrderedDict(), 0
        return state

    def image(self, index: int) -> np.ndarray:
        """The cached ``(h, w, 3)`` uint8 pixels of ``files[index]`` (shorter side <= ``max_short``).

        A file whose pixels fail to decode is counted in :attr:`skipped` and the next readable
        file (in order, wrapping) is used instead; :class:`DataError` when none decodes.
        """
        n = len(self.files)
        for step in range(n):
            i = (int(index) + step) % n
            if i in self._bad:
                continue
            cached = self._cache.get(i)
            if cached is not None:
                self._cache.move_to_end(i)
                return cached
            try:
                pixels = _load_photo(self.files[i], self.max_short)
            except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
                self._bad.add(i)
                self.skipped += 1
                continue
            pixels.flags.writeable = False
            self._cache[i] = pixels
            self._cached_bytes += pixels.nbytes
            while self._cached_bytes > self.cache_bytes and len(self._cache) > 1:
                _, dropped = self._cache.popitem(last=False)
                self._cached_bytes -= dropped.nbytes
            return pixels
        raise DataError(f"backgrounds folder {self.folder}: none of its {n} images could be decoded")

    def crop(self, rng: np.random.Generator, res: int) -> np.ndarray:
        """A random crop ``(res, res, 3)`` float32 in [0, 1]: photo index (``rng.integers``), then
        four uniforms: side (25-100 % of the shorter side), y, x, flip (probability 0.5)."""
        res = _check_res(res)
        index = int(rng.integers(len(self.files)))
        u_side, u_y, u_x, u_flip = rng.random(4)
        photo = self.image(index)
        h, w = photo.shape[:2]
        side = max(1, int(round(min(h, w) * (0.25 + 0.75 * u_side))))
        y, x = int(u_y * (h - side + 1)), int(u_x * (w - side + 1))
        interpolation = cv2.INTER_AREA if side >= res else cv2.INTER_LINEAR
        out = cv2.resize(photo[y:y + side, x:x + side], (res, res), interpolation=interpolation)
        if u_flip < 0.5:
            out = out[:, ::-1]
        return _to_float(out)

    __call__ = crop


# --------------------------------------------------------------------------------------------
# Camera effects

#: ITU-R BT.601 luma weights (RGB).
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)
#: Number of uniforms each sample draws (then one integer seed for the noise field).
N_UNIFORMS = 19


@dataclass(frozen=True)
class EffectDraw:
    """One sample's camera effects, as applied (strength and image size already folded in).

    Zero means "not applied" for ``motion_length``, ``defocus_sigma``, ``vignette``, ``noise_std``
    and ``jpeg_quality``; the colour parameters are neutral at 0 (brightness, hue) or 1.
    """

    motion_length: float   # px
    motion_angle: float    # degrees
    defocus_sigma: float   # px
    vignette: float        # depth at the corners
    white_balance: tuple[float, float]  # red and blue gains
    saturation: float
    hue: float             # degrees
    contrast: float
    brightness: float      # additive, [0, 1] units
    gamma: float
    noise_std: float       # [0, 1] units, at mid-grey
    noise_shot: float      # fraction of the noise variance proportional to the signal
    noise_seed: int
    jpeg_quality: int


def _lerp(lo: float, hi: float, u: float) -> float:
    return float(lo + (hi - lo) * u)


@dataclass(frozen=True)
class CameraEffects:
    """Probabilities and ranges of the camera effects (defaults: the module docstring's).

    Pixel sizes are at 128 px and scale with the image height; colour ranges are (low, high)
    with the neutral value inside.
    """

    motion_blur: float = 0.3
    motion_length: tuple[float, float] = (3.0, 9.0)
    defocus: float = 0.2
    defocus_sigma: tuple[float, float] = (0.5, 1.5)
    vignette: float = 0.2
    vignette_depth: tuple[float, float] = (0.1, 0.35)
    white_balance: tuple[float, float] = (0.92, 1.08)
    saturation: tuple[float, float] = (0.75, 1.25)
    hue: tuple[float, float] = (-8.0, 8.0)
    contrast: tuple[float, float] = (0.8, 1.2)
    brightness: tuple[float, float] = (-0.06, 0.06)
    gamma: tuple[float, float] = (0.8, 1.25)
    noise: float = 0.7
    noise_std: tuple[float, float] = (1.0, 8.0)     # in 1/255 units
    noise_shot: tuple[float, float] = (0.0, 1.0)
    jpeg: float = 0.5
    jpeg_quality: tuple[int, int] = (30, 95)

    def __post_init__(self) -> None:
        for name in ("motion_blur", "defocus", "vignette", "noise", "jpeg"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"CameraEffects.{name} is a probability, got {getattr(self, name)}")
        for name in ("motion_length", "defocus_sigma", "vignette_depth", "white_balance", "saturation", "hue",
                     "contrast", "brightness", "gamma", "noise_std", "noise_shot", "jpeg_quality"):
            lo, hi = getattr(self, name)
            if not lo <= hi:
                raise ConfigError(f"CameraEffects.{name} must be a (low, high) range, got {(lo, hi)}")
        if min(self.motion_length[0], self.defocus_sigma[0], self.noise_std[0], self.vignette_depth[0]) < 0 \
                or min(self.white_balance[0], self.saturation[0], self.contrast[0], self.gamma[0]) <= 0 \
                or not 0 <= self.noise_shot[0] <= self.noise_shot[1] <= 1 or self.vignette_depth[1] > 1:
            raise ConfigError(f"CameraEffects ranges out of bounds: {self.params()}")
        if not 1 <= self.jpeg_quality[0] <= self.jpeg_quality[1] <= 100:
            raise ConfigError(f"CameraEffects.jpeg_quality must lie in 1..100, got {self.jpeg_quality}")

    def params(self) -> dict:
        """JSON-serialisable description (recorded in ``meta.json``)."""
        out = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
        out["order"] = ["motion_blur", "defocus", "vignette", "colour", "noise", "jpeg"]
        out["reference_res"] = REFERENCE_RES
        return out

    def draw(self, rng: np.random.Generator, height: int = REFERENCE_RES, strength: float = 1.0) -> EffectDraw:
        """One sample's effects: always :data:`N_UNIFORMS` uniforms, then one integer seed."""
        if strength < 0:
            raise ConfigError(f"camera effects strength must be >= 0, got {strength}")
        u = rng.random(N_UNIFORMS).tolist()
        seed = int(rng.integers(0, 2**63 - 1))
        s, px = float(strength), height / REFERENCE_RES

        def neutral(rng_range, ui, identity=1.0, log=False):
            """Scaled toward ``identity`` (in log space for ``log``; gains stay >= 0)."""
            lo, hi = rng_range
            if log:
                return math.exp(_lerp(math.log(lo), math.log(hi), ui) * s)
            value = identity + (_lerp(lo, hi, ui) - identity) * s
            return value if identity == 0.0 else max(value, 0.0)

        length = 1.0 + (_lerp(*self.motion_length, u[1]) * px - 1.0) * s if u[0] < self.motion_blur else 0.0
        quality = max(1, int(round(100 - (100 - _lerp(*self.jpeg_quality, u[18])) * s))) if u[17] < self.jpeg else 0
        return EffectDraw(
            motion_length=length if length >= 1.5 else 0.0,
            motion_angle=_lerp(0.0, 180.0, u[2]),
            defocus_sigma=_lerp(*self.defocus_sigma, u[4]) * px * s if u[3] < self.defocus else 0.0,
            vignette=_lerp(*self.vignette_depth, u[6]) * s if u[5] < self.vignette else 0.0,
            white_balance=(neutral(self.white_balance, u[7]), neutral(self.white_balance, u[8])),
            saturation=neutral(self.saturation, u[9]),
            hue=neutral(self.hue, u[10], 0.0),
            contrast=neutral(self.contrast, u[11]),
            brightness=neutral(self.brightness, u[12], 0.0),
            gamma=neutral(self.gamma, u[13], log=True),
            noise_std=_lerp(*self.noise_std, u[15]) / 255.0 * s if u[14] < self.noise else 0.0,
            noise_shot=_lerp(*self.noise_shot, u[16]),
            noise_seed=seed,
            jpeg_quality=quality if quality < 100 else 0,
        )

    def apply_one(self, image: np.ndarray, draw: EffectDraw) -> np.ndarray:
        """Apply one sample's ``draw`` to ``image (H, W, 3)`` uint8; returns a new uint8 image."""
        return _apply(image, draw)

    def apply(self, images: np.ndarray, rngs: Sequence[np.random.Generator], strength: float = 1.0) -> np.ndarray:
        """Camera effects on ``images (B, H, W, 3)`` uint8, one generator per sample; returns uint8
        of the same shape (a new array)."""
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise MaskposeError(f"images must be (B, H, W, 3) uint8, got {images.shape} {images.dtype}")
        if len(rngs) != len(images):
            raise MaskposeError(f"camera effects: need one generator per image ({len(images)}), got {len(rngs)}")
        draws = [self.draw(rng, images.shape[1], strength) for rng in rngs]
        if strength == 0:
            return images.copy()
        out = np.empty_like(images)
        for i, draw in enumerate(draws):
            out[i] = _apply(images[i], draw)
        return out


def motion_kernel(length: float, angle_deg: float) -> np.ndarray:
    """Normalised ``(k, k)`` float32 motion-blur kernel: a line of ``length`` px through the centre
    at ``angle_deg`` (``k`` the smallest odd size that holds it), sampled every 1/4 px and splatted
    bilinearly (so a horizontal line stays one pixel thin)."""
    k = int(math.ceil(length)) | 1
    c, half = (k - 1) / 2.0, max(length - 1.0, 0.0) / 2.0
    t = np.linspace(-half, half, max(2, int(math.ceil(4 * length))))
    x = c + t * math.cos(math.radians(angle_deg))
    y = c + t * math.sin(math.radians(angle_deg))
    x0, y0 = np.floor(x).astype(np.intp), np.floor(y).astype(np.intp)
    fx, fy = x - x0, y - y0
    kernel = np.zeros((k + 1, k + 1), np.float64)
    for dy, dx, w in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx), (1, 0, fy * (1 - fx)), (1, 1, fy * fx)):
        np.add.at(kernel, (y0 + dy, x0 + dx), w)
    kernel = kernel[:k, :k]
    return (kernel / kernel.sum()).astype(np.float32)


def colour_matrix(white_balance: tuple[float, float], saturation: float, hue_deg: float) -> np.ndarray:
    """``(3, 3)`` float32 RGB matrix: white-balance gains (red, blue), then a hue rotation about the
    grey axis, then saturation about the luma."""
    a = math.radians(hue_deg)
    c, s, k = math.cos(a), math.sin(a), 1.0 / 3.0
    t = math.sqrt(k)
    rotation = np.array([[c + (1 - c) * k, (1 - c) * k - t * s, (1 - c) * k + t * s],
                         [(1 - c) * k + t * s, c + (1 - c) * k, (1 - c) * k - t * s],
                         [(1 - c) * k - t * s, (1 - c) * k + t * s, c + (1 - c) * k]])
    sat = saturation * np.eye(3) + (1 - saturation) * np.outer(np.ones(3), _LUMA)
    gains = np.diag([white_balance[0], 1.0, white_balance[1]])
    return (sat @ rotation @ gains).astype(np.float32)


@functools.lru_cache(maxsize=16)
def _radius2(height: int, width: int) -> np.ndarray:
    y, x = _grid(height, width)
    r2 = (y - 0.5) ** 2 + (x - 0.5) ** 2
    r2 = (r2 / r2.max())[..., None].astype(np.float32)
    r2.flags.writeable = False
    return r2


@functools.cache
def _normal_table() -> np.ndarray:
    """Read-only ``(65536,)`` float32 standard-normal quantiles at ``(i + 0.5) / 65536``: a lookup
    by a random uint16 is a standard normal draw quantised to 65536 levels (tails cut at 4.3),
    four times faster than ``Generator.standard_normal``."""
    table = torch.special.ndtri((torch.arange(65536, dtype=torch.float64) + 0.5) / 65536).numpy()
    table = table.astype(np.float32)
    table.flags.writeable = False
    return table


def sensor_noise(image: np.ndarray, std: float, shot: float, rng: np.random.Generator) -> np.ndarray:
    """``image`` (float32, [0, 1] units) plus Gaussian noise of variance
    ``std² ((1 - shot) + shot * image / 0.5)`` per pixel and channel (std exactly ``std`` at
    mid-grey); not clipped. The normal draws are one ``rng.integers`` uint16 array looked up in a
    quantile table."""
    noise = np.take(_normal_table(), rng.integers(0, 65536, image.shape, dtype=np.uint16))
    if shot > 0:
        scale = np.maximum(image, 0.0) * np.float32(2 * shot * std * std)
        scale += np.float32((1 - shot) * std * std)
        noise *= np.sqrt(scale, out=scale)
    else:
        noise *= np.float32(std)
    noise += image
    return noise


def jpeg_roundtrip(image: np.ndarray, quality: int) -> np.ndarray:
    """``image (H, W, 3)`` uint8 RGB through OpenCV's JPEG encoder and decoder at ``quality``."""
    bgr = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR)
    ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise MaskposeError("JPEG encoding failed")
    return cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _apply(image: np.ndarray, d: EffectDraw) -> np.ndarray:
    # Every step below returns a fresh array or works on this call's own one, so the later steps
    # may work in place (the same values, without a temporary per step).
    x = _to_float(image)
    if d.motion_length:
        x = cv2.filter2D(x, -1, motion_kernel(d.motion_length, d.motion_angle), borderType=cv2.BORDER_REFLECT)
    if d.defocus_sigma > 0.05:
        x = _blur(x, d.defocus_sigma)
    if d.vignette:
        x *= 1.0 - np.float32(d.vignette) * _radius2(*x.shape[:2])
    if d.white_balance != (1.0, 1.0) or d.saturation != 1.0 or d.hue != 0.0:
        x = cv2.transform(x, colour_matrix(d.white_balance, d.saturation, d.hue))
    if d.contrast != 1.0 or d.brightness != 0.0:
        mean = float(np.dot(np.asarray(cv2.mean(x)[:3], np.float32), _LUMA))
        x *= np.float32(d.contrast)
        x += np.float32(mean * (1 - d.contrast) + d.brightness)
    if d.gamma != 1.0:
        x = cv2.pow(np.clip(x, 0.0, 1.0, out=x), d.gamma)
    if d.noise_std:
        x = sensor_noise(np.clip(x, 0.0, 1.0, out=x), d.noise_std, d.noise_shot, np.random.default_rng(d.noise_seed))
    out = _to_uint8(x)
    if d.jpeg_quality:
        out = jpeg_roundtrip(out, d.jpeg_quality)
    return out


#: The default effects.
DEFAULT_EFFECTS = CameraEffects()


def camera_effects(images: np.ndarray, rngs: Sequence[np.random.Generator], strength: float = 1.0,
                   effects: CameraEffects = DEFAULT_EFFECTS) -> np.ndarray:
    """Camera effects (module docstring) on ``images (B, H, W, 3)`` uint8, one generator per sample;
    returns uint8 of the same shape. ``strength=0`` returns an unchanged copy."""
    return effects.apply(images, rngs, strength)


__all__ = [
    "DEFAULT_EFFECTS", "GENERATORS", "N_UNIFORMS", "PHOTO_EXTENSIONS", "REFERENCE_RES", "CameraEffects",
    "EffectDraw", "PhotoBackgrounds", "camera_effects", "colour_matrix", "dead_leaves_background",
    "fractal_noise_background", "gradient_background", "jpeg_roundtrip", "motion_kernel", "procedural_background",
    "sensor_noise", "shapes_background",
]

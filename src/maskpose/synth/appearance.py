"""Synthesis renderer for data: RGB, exact mask, depth and part labels on top of the z-buffer.

Built on :func:`maskpose.render.zbuffer.rasterize` (exact, pure PyTorch): the mask is exactly the
set of pixels whose centre a front face of the mesh covers, and the RGB image uses the *same*
fragments, so image and mask can never be offset or flipped against each other.

Appearance (all vectorised over the batch and over the foreground pixels):

* **Part labels** (:data:`PART_NAMES`): every vertex gets the coarse body part of its dominant
  skinning bone (:func:`part_of_bone`); a pixel takes the part of the face vertex with the largest
  barycentric weight.
* **Clothing**: parts map to garment *slots* (skin, top, bottom, shoes, hair), chosen per sample
  (long or short sleeves, trousers or shorts, hair length). Each garment is a base colour mixed with
  a second colour by a procedural 3D texture evaluated at the pixel's *rest-pose* surface point, so
  the texture sticks to the body as it moves. Texture families differ per setting.
* **Shading**: Lambert, ``colour * (ambient + sum_l max(0, n . l) * light_l)`` with per-pixel
  normals interpolated from the posed mesh's vertex normals; one to three directional lights per
  sample.
* **Backgrounds**: procedural (gradients, wall/floor, smooth noise, clutter) and natural
  photographs that ship with scikit-image (:data:`PHOTOS`, people-free only), randomly cropped,
  flipped and colour-jittered.
* **Settings** (:data:`SETTINGS`): ``"studio"`` (the source domain), ``"scene"`` (unseen texture
  families, photographs, coloured lights: disjoint from studio's), ``"thermal"`` (temperature-like
  intensities; see :mod:`maskpose.synth.domains` for its documented statistics).

Randomness comes only from the per-sample ``numpy.random.Generator`` list passed to
:meth:`SynthesisRenderer.render`, so a sample looks the same whatever batch it is rendered in.
"""

from __future__ import annotations

import colorsys
import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import skimage.data
import torch
from PIL import Image

from maskpose.errors import ConfigError, MaskposeError

#: Part labels stored in the dataset's ``parts`` field (uint8; 0 is the background).
PART_NAMES: tuple[str, ...] = (
    "background", "head", "torso", "l_upper_arm", "r_upper_arm", "l_lower_arm", "r_lower_arm",
    "l_hand", "r_hand", "l_upper_leg", "r_upper_leg", "l_lower_leg", "r_lower_leg", "l_foot", "r_foot",
)
PART_INDEX = {name: i for i, name in enumerate(PART_NAMES)}

#: Garment slots a part is dressed in (chosen per sample).
SLOTS: tuple[str, ...] = ("skin", "top", "bottom", "shoes", "hair")
_SKIN, _TOP, _BOTTOM, _SHOES, _HAIR = range(5)

#: People-free natural photographs bundled with scikit-image (no download), per setting. The two
#: lists are disjoint: ``scene`` backgrounds are never seen in ``studio`` data.
PHOTOS: dict[str, tuple[str, ...]] = {
    "studio": ("brick.png", "grass.png", "gravel.png", "coffee.png", "coins.png", "moon.png", "page.png"),
    "scene": ("rocket.jpg", "chelsea.png", "hubble_deep_field.jpg", "ihc.png", "motorcycle_left.png",
              "motorcycle_right.png", "retina.jpg", "clock_motion.png", "text.png"),
}

#: Rendering settings (the render-type domains of :mod:`maskpose.synth.domains`).
SETTINGS: tuple[str, ...] = ("studio", "scene", "thermal", "realistic")

#: Texture families per setting: 0 solid, 1 stripes, 2 checker (studio); 3 dots, 4 camouflage
#: noise, 5 plaid (scene). Disjoint, so scene clothing is unseen in studio data. ``realistic``
#: (the photo-like source of real images) draws from all of them plus 6 smooth noise (fabric
#: folds, dirt) and 7 a gradient (faded cloth, shading a flat colour cannot give); solid is
#: listed twice so that plain garments, the commonest in photographs, come up most.
_PATTERNS = {"studio": (0, 1, 2), "scene": (3, 4, 5), "thermal": (0,), "realistic": (0, 0, 0, 1, 2, 3, 4, 5, 6, 7)}

#: Thermal rendering constants (intensities in [0, 1]); :mod:`maskpose.synth.domains` documents the
#: resulting statistics and tests check them.
THERMAL = {
    "skin": (0.85, 0.97),        # exposed skin: warmest
    "cloth": (0.66, 0.82),       # clothing: warm, a little cooler
    "hair": (0.55, 0.65),
    "shoes": (0.45, 0.55),
    "emissivity_floor": 0.7,     # intensity factor at grazing angles (1 facing the camera)
    "background": (0.10, 0.28),  # cool scene
    "background_variation": 0.06,  # amplitude of smooth background temperature variation
    "blur_sigma_at_128": 1.0,    # optics blur (pixels at 128 px; scales with resolution)
    "noise_std": 0.02,           # white sensor noise
    "column_noise_std": 0.008,   # fixed-pattern column noise (per image)
}


def part_of_bone(name: str) -> int:
    """Coarse part label (index into :data:`PART_NAMES`) of an Anny bone name."""
    side = "l_" if name.endswith(".L") else "r_" if name.endswith(".R") else ""
    base = name.split(".")[0]
    if base.startswith(("head", "eye", "neck")):
        return PART_INDEX["head"]
    if base.startswith(("root", "pelvis", "spine", "clavicle", "shoulder")):
        return PART_INDEX["torso"]
    if base.startswith("upperarm"):
        return PART_INDEX[side + "upper_arm"]
    if base.startswith("lowerarm"):
        return PART_INDEX[side + "lower_arm"]
    if base.startswith(("wrist", "finger", "metacarpal")):
        return PART_INDEX[side + "hand"]
    if base.startswith("upperleg"):
        return PART_INDEX[side + "upper_leg"]
    if base.startswith("lowerleg"):
        return PART_INDEX[side + "lower_leg"]
    if base.startswith(("foot", "toe")):
        return PART_INDEX[side + "foot"]
    raise MaskposeError(f"no body part for Anny bone {name!r}")


def vertex_parts(anny_model) -> torch.Tensor:
    """``(V,)`` int64 part label of every vertex: the part of its dominant skinning bone."""
    weights = anny_model.vertex_bone_weights
    indices = anny_model.vertex_bone_indices.long()
    dominant = indices.gather(1, weights.argmax(1, keepdim=True))[:, 0]
    bone_part = torch.tensor([part_of_bone(name) for name in anny_model.bone_labels], dtype=torch.int64)
    return bone_part[dominant.cpu()]


# --------------------------------------------------------------------------------------------
# Backgrounds


@functools.cache
def _photo(name: str, max_side: int = 320) -> np.ndarray | None:
    """A bundled scikit-image photograph as float32 RGB in [0, 1], longest side <= max_side."""
    path = Path(skimage.data.__file__).parent / name
    try:
        with Image.open(path) as handle:
            image = np.asarray(handle.convert("RGB"))
    except (OSError, ValueError):  # not shipped with this scikit-image version: skip it
        return None
    scale = max_side / max(image.shape[:2])
    if scale < 1:
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(image, dtype=np.float32) / 255.0


def photo_bank(setting: str) -> list[np.ndarray]:
    """The photographs of a setting that are available (loaded once per process)."""
    return [p for p in (_photo(n) for n in PHOTOS.get(setting, ())) if p is not None]


def _smooth_noise(rng: np.random.Generator, res: int, cells: int, channels: int = 3) -> np.ndarray:
    small = rng.random((cells, cells, channels), dtype=np.float32)
    out = cv2.resize(small, (res, res), interpolation=cv2.INTER_CUBIC)
    return out.reshape(res, res, channels)


def _random_colour(rng: np.random.Generator, sat=(0.1, 0.7), val=(0.2, 0.95)) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(rng.random(), rng.uniform(*sat), rng.uniform(*val)), dtype=np.float32)


def _photo_crop(rng: np.random.Generator, bank: list[np.ndarray], res: int) -> np.ndarray:
    photo = bank[int(rng.integers(len(bank)))]
    h, w = photo.shape[:2]
    side = int(min(h, w) * rng.uniform(0.35, 1.0))
    y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    crop = cv2.resize(photo[y:y + side, x:x + side], (res, res), interpolation=cv2.INTER_AREA
                      if side > res else cv2.INTER_LINEAR)
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    gain = rng.uniform(0.7, 1.2, size=3).astype(np.float32)
    return np.clip(crop * gain + rng.uniform(-0.08, 0.08), 0.0, 1.0)


def background(rng: np.random.Generator, res: int, setting: str = "studio") -> np.ndarray:
    """One random background ``(res, res, 3)`` float32 in [0, 1] for a setting."""
    bank = photo_bank(setting)
    kind = rng.random()
    if setting == "studio":
        if bank and kind < 0.4:
            return _photo_crop(rng, bank, res)
        top, bottom = _random_colour(rng), _random_colour(rng)
        t = np.linspace(0.0, 1.0, res, dtype=np.float32)[:, None, None]
        if kind < 0.7:  # backdrop: vertical gradient plus smooth noise
            image = top * (1 - t) + bottom * t
        else:  # wall and floor
            horizon = rng.uniform(0.55, 0.9)
            image = np.where(t < horizon, top * (0.8 + 0.2 * t), bottom * (0.7 + 0.3 * t))
            image = np.broadcast_to(image, (res, res, 3))
        noise = _smooth_noise(rng, res, int(rng.integers(2, 6))) - 0.5
        return np.clip(image + noise * rng.uniform(0.05, 0.25), 0.0, 1.0).astype(np.float32)
    if setting == "scene":
        image = _photo_crop(rng, bank, res) if bank and kind < 0.7 \
            else _smooth_noise(rng, res, int(rng.integers(3, 9)))
        # Clutter: random rectangles and ellipses (shapes never drawn in studio backgrounds).
        image = np.ascontiguousarray(image)
        for _ in range(int(rng.integers(0, 10))):
            colour = tuple(float(c) for c in _random_colour(rng, sat=(0.4, 1.0)))
            cx, cy = (int(v) for v in rng.integers(0, res, 2))
            sx, sy = (int(v) for v in rng.integers(res // 20 + 1, res // 4 + 2, 2))
            if rng.random() < 0.5:
                cv2.rectangle(image, (cx - sx, cy - sy), (cx + sx, cy + sy), colour, -1)
            else:
                cv2.ellipse(image, (cx, cy), (sx, sy), float(rng.uniform(0, 180)), 0, 360, colour, -1)
        tint = rng.uniform(0.75, 1.15, size=3).astype(np.float32)
        return np.clip(image * tint, 0.0, 1.0).astype(np.float32)
    if setting == "thermal":
        level = rng.uniform(*THERMAL["background"])
        variation = (_smooth_noise(rng, res, int(rng.integers(2, 5)), 1)[..., 0] - 0.5) * 2
        ground = np.linspace(0.0, 1.0, res, dtype=np.float32)[:, None] * rng.uniform(-0.03, 0.05)
        grey = level + variation * THERMAL["background_variation"] + ground
        return np.repeat(np.clip(grey, 0.0, 1.0)[..., None], 3, axis=-1).astype(np.float32)
    if setting == "realistic":  # the generator passes its own (see maskpose.synth.realistic); this is a fallback
        bank = photo_bank("studio") + photo_bank("scene")
        return _photo_crop(rng, bank, res) if bank and kind < 0.5 else background(rng, res, "studio")
    raise ConfigError(f"unknown rendering setting {setting!r}; expected one of {SETTINGS}")


# --------------------------------------------------------------------------------------------
# Per-sample appearance parameters


@dataclass
class Appearance:
    """Per-sample appearance of a batch (tensors with a leading batch dimension)."""

    slot_of_part: torch.Tensor   # (B, P) int64 garment slot of each part
    base: torch.Tensor           # (B, S, 3) base colour (thermal: temperature in all channels)
    alt: torch.Tensor            # (B, S, 3) second colour of the texture
    pattern: torch.Tensor        # (B, S) int64 texture family
    freq: torch.Tensor           # (B, S) texture frequency (cycles per metre)
    direction: torch.Tensor      # (B, S, 3) texture direction (unit)
    phase: torch.Tensor          # (B, S)
    hair_length: torch.Tensor    # (B,) metres below the head top that hair covers
    ambient: torch.Tensor        # (B, 3)
    light_dir: torch.Tensor      # (B, L, 3) unit vectors toward the lights (camera frame)
    light_colour: torch.Tensor   # (B, L, 3) (zero for unused lights)
    noise_std: torch.Tensor      # (B,) sensor noise std (studio/scene), in [0, 1] units
    column_noise: torch.Tensor   # (B, W) fixed-pattern column offsets (thermal)


_MAX_LIGHTS = 3
_SKIN_TONES = np.array(
    [[0.98, 0.84, 0.72], [0.93, 0.76, 0.62], [0.85, 0.64, 0.50], [0.72, 0.52, 0.38],
     [0.55, 0.38, 0.26], [0.40, 0.27, 0.18], [0.30, 0.20, 0.14]], dtype=np.float32)


def _garment_slots(upper_arm: int, lower_arm: int, lower_leg: int) -> np.ndarray:
    """``(P,)`` garment slot of every part: top on the torso, bottom on the thighs, shoes on the
    feet, the given slots on both arms and shins, skin elsewhere."""
    slots = np.zeros(len(PART_NAMES), dtype=np.int64)
    for name, slot in (("torso", _TOP), ("l_upper_leg", _BOTTOM), ("r_upper_leg", _BOTTOM),
                       ("l_foot", _SHOES), ("r_foot", _SHOES)):
        slots[PART_INDEX[name]] = slot
    for side in ("l_", "r_"):
        slots[PART_INDEX[side + "upper_arm"]] = upper_arm
        slots[PART_INDEX[side + "lower_arm"]] = lower_arm
        slots[PART_INDEX[side + "lower_leg"]] = lower_leg
    return slots


def _sample_appearance(rng: np.random.Generator, setting: str, res: int) -> dict[str, np.ndarray]:
    S = len(SLOTS)
    sleeves = rng.random()
    upper_arm = _TOP if sleeves > 0.15 else _SKIN
    lower_arm = _TOP if sleeves > 0.55 else _SKIN
    lower_leg = _BOTTOM if rng.random() > 0.35 else _SKIN
    slots = _garment_slots(upper_arm, lower_arm, lower_leg)
    patterns = _PATTERNS[setting]
    base = np.zeros((S, 3), np.float32)
    alt = np.zeros((S, 3), np.float32)
    if setting == "thermal":
        base[_SKIN] = rng.uniform(*THERMAL["skin"])
        base[_TOP], base[_BOTTOM] = rng.uniform(*THERMAL["cloth"], size=(2, 1))
        base[_SHOES] = rng.uniform(*THERMAL["shoes"])
        base[_HAIR] = rng.uniform(*THERMAL["hair"])
        alt[:] = base
    else:
        sat = (0.15, 0.75) if setting == "studio" else (0.55, 1.0)
        tone = _SKIN_TONES[int(rng.integers(len(_SKIN_TONES)))] * rng.uniform(0.92, 1.05)
        base[_SKIN] = alt[_SKIN] = _clip01(tone)
        for slot in (_TOP, _BOTTOM, _SHOES):
            base[slot] = _random_colour(rng, sat=sat, val=(0.15, 0.95))
            alt[slot] = _random_colour(rng, sat=sat, val=(0.15, 0.95))
        hair = _random_colour(rng, sat=(0.2, 0.6), val=(0.05, 0.5)) if rng.random() < 0.85 \
            else _random_colour(rng, sat=(0.0, 0.2), val=(0.6, 0.9))
        base[_HAIR] = alt[_HAIR] = hair
    pattern = np.array([0] + [patterns[int(rng.integers(len(patterns)))] for _ in range(S - 1)], np.int64)
    pattern[_HAIR] = 0
    direction = rng.normal(size=(S, 3)).astype(np.float32)
    direction /= _row_norms(direction) + 1e-8
    # Lights (camera frame; toward the camera is -z, up is -y).
    n_lights = 1 if setting == "studio" else int(rng.integers(2, _MAX_LIGHTS + 1))
    light_dir = np.zeros((_MAX_LIGHTS, 3), np.float32)
    light_colour = np.zeros((_MAX_LIGHTS, 3), np.float32)
    for k in range(n_lights):
        if setting == "studio":
            d = np.array([rng.uniform(-0.8, 0.8), rng.uniform(-0.9, 0.2), -1.0])
            colour = np.full(3, rng.uniform(0.45, 0.75))
        else:  # scene: coloured lights from anywhere in front of or beside the body
            d = np.array([rng.uniform(-1.5, 1.5), rng.uniform(-1.5, 0.8), rng.uniform(-1.0, 0.3)])
            colour = _random_colour(rng, sat=(0.2, 0.6), val=(0.35, 0.7))
        light_dir[k] = d / _norm(d)
        light_colour[k] = colour
    if setting == "studio":
        ambient = np.full(3, rng.uniform(0.3, 0.5), np.float32)
    elif setting == "scene":
        ambient = _random_colour(rng, sat=(0.1, 0.4), val=(0.15, 0.35))
    else:
        ambient = np.zeros(3, np.float32)
    column = rng.normal(0.0, THERMAL["column_noise_std"], size=res).astype(np.float32) \
        if setting == "thermal" else np.zeros(res, np.float32)
    return {
        "slot_of_part": slots, "base": base, "alt": alt, "pattern": pattern,
        "freq": rng.uniform(6.0, 20.0, size=S).astype(np.float32), "direction": direction,
        "phase": rng.uniform(0, 2 * math.pi, size=S).astype(np.float32),
        "hair_length": np.float32(rng.uniform(0.03, 0.12) if rng.random() < 0.9 else 0.0),
        "ambient": ambient.astype(np.float32), "light_dir": light_dir, "light_colour": light_colour,
        "noise_std": np.float32(rng.uniform(0.0, 3.0) / 255 if setting == "studio"
                                else rng.uniform(0.0, 5.0) / 255 if setting == "scene"
                                else THERMAL["noise_std"]),
        "column_noise": column,
    }


#: Garment colour families of the ``realistic`` setting, as (weight, hue, saturation, value)
#: ranges in HSV: neutrals (black, grey, white, beige), denim blues, earth tones, anything.
_REALISTIC_CLOTH = (
    (0.40, (0.0, 1.0), (0.0, 0.15), (0.04, 0.95)),
    (0.15, (0.56, 0.66), (0.3, 0.75), (0.15, 0.65)),
    (0.15, (0.03, 0.16), (0.25, 0.65), (0.15, 0.75)),
    (0.30, (0.0, 1.0), (0.35, 1.0), (0.2, 0.95)),
)
#: Natural hair colours (RGB, before a +-15 % brightness jitter): black, dark brown, brown,
#: blond, red, grey, white.
_HAIR_COLOURS = np.array(
    [[0.05, 0.04, 0.04], [0.16, 0.10, 0.07], [0.32, 0.21, 0.13], [0.72, 0.60, 0.38], [0.55, 0.25, 0.12],
     [0.55, 0.55, 0.55], [0.85, 0.85, 0.83]], dtype=np.float32)
_HAIR_WEIGHTS = np.array([0.35, 0.25, 0.15, 0.1, 0.05, 0.07, 0.03])


#: The colour families' probabilities, and below the cumulative tables of the weighted draws.
_REALISTIC_CLOTH_P = np.array([family[0] for family in _REALISTIC_CLOTH])
_REALISTIC_CLOTH_P = _REALISTIC_CLOTH_P / _REALISTIC_CLOTH_P.sum()


def _choice_cdf(p: np.ndarray) -> np.ndarray:
    """The cumulative table that ``Generator.choice(len(p), p=p)`` searches (``p.cumsum()``
    normalised by its last entry), for :func:`_weighted_index`."""
    cdf = p.cumsum()
    cdf /= cdf[-1]
    cdf.flags.writeable = False
    return cdf


def _weighted_index(rng: np.random.Generator, cdf: np.ndarray) -> int:
    """``int(rng.choice(len(p), p=p))`` for ``cdf = _choice_cdf(p)``: the same index from the same
    single ``random()`` draw, without ``choice``'s checks of ``p`` on every call (about 10x
    faster; the appearance draws several per person)."""
    return int(cdf.searchsorted(rng.random(), side="right"))


_REALISTIC_CLOTH_CDF = _choice_cdf(_REALISTIC_CLOTH_P)
_HAIR_CDF = _choice_cdf(_HAIR_WEIGHTS)


def _clip01(x):
    """``np.clip(x, 0, 1)`` (same values and dtype for non-NaN input) without its wrapper's overhead."""
    return np.minimum(np.maximum(x, 0), 1)


def _norm(v: np.ndarray):
    """``np.linalg.norm`` of a real 1-D vector, as numpy computes it (``sqrt(v.dot(v))``), without its overhead."""
    return np.sqrt(v.dot(v))


def _row_norms(v: np.ndarray) -> np.ndarray:
    """``np.linalg.norm(v, axis=1, keepdims=True)`` of a real matrix, as numpy computes it."""
    return np.sqrt(np.add.reduce(v * v, axis=1, keepdims=True))


def _hsv_colour(rng: np.random.Generator, hue, sat, val) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(rng.uniform(*hue) % 1.0, rng.uniform(*sat), rng.uniform(*val)),
                    dtype=np.float32)


def _cloth_colour(rng: np.random.Generator) -> np.ndarray:
    _, hue, sat, val = _REALISTIC_CLOTH[_weighted_index(rng, _REALISTIC_CLOTH_CDF)]
    return _hsv_colour(rng, hue, sat, val)


def _sample_realistic(rng: np.random.Generator, res: int) -> dict[str, np.ndarray]:
    """The ``realistic`` setting's draw (the photo-like source, see the module docstring):
    a continuous range of skin tones, clothing from colour families that photographs show,
    natural hair colours, mostly dark or white shoes, one to three lights of warm or cool tint
    from any direction in front, above or beside, and a tinted ambient. No sensor noise here: the
    domain adds camera effects after compositing."""
    S = len(SLOTS)
    sleeves, legs, dress = rng.random(3)
    upper_arm = _TOP if sleeves > 0.15 else _SKIN
    lower_arm = _TOP if sleeves > 0.5 else _SKIN
    lower_leg = _BOTTOM if legs > 0.3 else _SKIN
    slots = _garment_slots(upper_arm, lower_arm, lower_leg)
    if dress < 0.1:  # a dress or a long coat: the top's garment goes down the thighs
        slots[PART_INDEX["l_upper_leg"]] = slots[PART_INDEX["r_upper_leg"]] = _TOP
    base = np.zeros((S, 3), np.float32)
    alt = np.zeros((S, 3), np.float32)
    k = rng.uniform(0, len(_SKIN_TONES) - 1)
    lo = int(k)
    tone = _SKIN_TONES[lo] + (_SKIN_TONES[min(lo + 1, len(_SKIN_TONES) - 1)] - _SKIN_TONES[lo]) * (k - lo)
    base[_SKIN] = alt[_SKIN] = _clip01(tone * rng.uniform(0.85, 1.08) * rng.uniform(0.95, 1.05, 3))
    for slot in (_TOP, _BOTTOM):
        base[slot] = _cloth_colour(rng)
        alt[slot] = _cloth_colour(rng) if rng.random() < 0.6 else _clip01(base[slot] * rng.uniform(0.5, 1.4))
    shoe = _hsv_colour(rng, (0.0, 1.0), (0.0, 0.2), (0.03, 0.3) if rng.random() < 0.7 else (0.75, 0.95))
    base[_SHOES], alt[_SHOES] = shoe, _clip01(shoe * rng.uniform(0.6, 1.3))
    hair = _HAIR_COLOURS[_weighted_index(rng, _HAIR_CDF)] * rng.uniform(0.85, 1.15)
    base[_HAIR] = alt[_HAIR] = _clip01(hair)
    patterns = _PATTERNS["realistic"]
    pattern = np.array([0] + [patterns[int(rng.integers(len(patterns)))] for _ in range(S - 1)], np.int64)
    pattern[_HAIR] = 0
    direction = rng.normal(size=(S, 3)).astype(np.float32)
    direction /= _row_norms(direction) + 1e-8
    n_lights = int(rng.integers(1, _MAX_LIGHTS + 1))
    light_dir = np.zeros((_MAX_LIGHTS, 3), np.float32)
    light_colour = np.zeros((_MAX_LIGHTS, 3), np.float32)
    warmth = rng.uniform(-1.0, 1.0)  # < 0 cool (daylight, shade), > 0 warm (tungsten)
    tint = np.array([1.0 + 0.12 * warmth, 1.0, 1.0 - 0.15 * warmth], np.float32)
    for k in range(n_lights):
        d = np.array([rng.uniform(-1.5, 1.5), rng.uniform(-1.5, 0.6), rng.uniform(-1.0, 0.4)])
        light_dir[k] = d / _norm(d)
        light_colour[k] = tint * rng.uniform(0.3, 0.85) * rng.uniform(0.93, 1.07, 3)
    ambient = tint * rng.uniform(0.35, 0.75)
    return {
        "slot_of_part": slots, "base": base, "alt": alt, "pattern": pattern,
        "freq": rng.uniform(4.0, 20.0, size=S).astype(np.float32), "direction": direction,
        "phase": rng.uniform(0, 2 * math.pi, size=S).astype(np.float32),
        "hair_length": np.float32(rng.uniform(0.03, 0.2) if rng.random() < 0.9 else 0.0),
        "ambient": ambient.astype(np.float32), "light_dir": light_dir, "light_colour": light_colour,
        "noise_std": np.float32(0.0), "column_noise": np.zeros(res, np.float32),
    }


def sample_appearance(rngs: Sequence[np.random.Generator], setting: str, res: int, device=None) -> Appearance:
    """Draw the appearance of every sample from its own generator and stack them."""
    if setting not in SETTINGS:
        raise ConfigError(f"unknown rendering setting {setting!r}; expected one of {SETTINGS}")
    draw = _sample_realistic if setting == "realistic" else functools.partial(_sample_appearance, setting=setting)
    draws = [draw(rng, res=res) for rng in rngs]
    stacked = {k: torch.as_tensor(np.stack([d[k] for d in draws]), device=device) for k in draws[0]}
    return Appearance(**stacked)


# --------------------------------------------------------------------------------------------
# Textures


def _sum3(x: torch.Tensor) -> torch.Tensor:
    """``x (N, 3)`` summed over its last axis, in order: the same bits as ``x.sum(-1)`` (checked
    by the dataset regression data), several times faster for a last axis of three."""
    return x[:, 0] + x[:, 1] + x[:, 2]


def _dot3(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise dot product of ``(N, 3)`` tensors: the same bits as ``(a * b).sum(-1)``."""
    return _sum3(a * b)


def _texture_weight(rest: torch.Tensor, pattern: torch.Tensor, freq: torch.Tensor,
                    direction: torch.Tensor, phase: torch.Tensor, families: Sequence[int] = (1, 2, 3, 4, 5)
                    ) -> torch.Tensor:
    """Mixing weight in [0, 1] of the second colour at rest-pose points ``rest (N, 3)``; only the
    texture ``families`` listed are evaluated (the others give 0, as does family 0, solid).

    Each family is evaluated on its own points only (one gather per family), except the
    gradient (7): ``torch.sigmoid``'s last bit depends on where an element falls in its array
    (vectorised body or scalar tail), so it runs over all the points, as it always has, to keep
    the bytes. The other operations give the same bits whatever the array around an element.
    """
    out = torch.zeros(rest.shape[0], dtype=rest.dtype, device=rest.device)
    wanted = set(families)
    if 7 in wanted:  # a gradient across the garment (about 20 cm wide at freq 10)
        s = _dot3(rest, direction)
        out = torch.where(pattern == 7, torch.sigmoid(0.5 * freq * s + (phase - math.pi)), out)
    for family in sorted(wanted & {1, 2, 3, 4, 5, 6}):
        index = torch.nonzero(pattern == family).squeeze(1)
        if index.numel():
            out.index_copy_(0, index, _family_weight(family, rest.index_select(0, index), freq.index_select(0, index),
                                                     direction.index_select(0, index), phase.index_select(0, index)))
    return out


def _family_weight(family: int, rest: torch.Tensor, freq: torch.Tensor, direction: torch.Tensor,
                   phase: torch.Tensor) -> torch.Tensor:
    """The mixing weight of texture ``family`` (1-6) at rest-pose points ``rest (n, 3)``."""
    two_pi = 2 * math.pi
    s = _dot3(rest, direction)
    if family in (4, 5):
        s2 = _dot3(rest, torch.linalg.cross(direction, torch.roll(direction, 1, dims=-1), dim=-1))
    if family == 1:
        return (torch.sin(two_pi * freq * s + phase) > 0).float()
    if family == 2:
        return torch.remainder(_sum3(torch.floor(rest * freq[:, None])), 2.0)
    if family == 3:
        frac = torch.remainder(rest * (freq * 1.5)[:, None] + phase[:, None], 1.0) - 0.5
        return (_sum3(frac.square()) < 0.09).float()
    if family == 4:
        camo = torch.sin(two_pi * 0.6 * freq * s + phase) + torch.sin(two_pi * 0.45 * freq * s2 + 2 * phase) \
            + torch.sin(two_pi * 0.8 * freq * (s - s2) + 0.5)
        return (camo > 0.3).float()
    if family == 5:
        return 0.5 * ((torch.sin(two_pi * freq * s + phase) > 0.3).float()
                      + (torch.sin(two_pi * freq * s2) > 0.3).float())
    if family == 6:  # smooth noise: three low-frequency waves in other directions, not thresholded
        s3 = _dot3(rest, torch.roll(direction, 2, dims=-1))
        wave = torch.sin(two_pi * 0.35 * freq * s + phase) * torch.sin(two_pi * 0.5 * freq * s3 + 1.3 * phase) \
            + 0.5 * torch.sin(two_pi * 0.9 * freq * (s + s3))
        return (0.5 + 0.33 * wave).clamp(0.0, 1.0)
    raise ConfigError(f"texture family {family} has no weight here (1-6; 7 is evaluated by _texture_weight)")


__all__ = [
    "PART_NAMES", "SLOTS", "PHOTOS", "SETTINGS", "THERMAL", "Appearance", "background", "part_of_bone",
    "photo_bank", "sample_appearance", "vertex_parts",
]

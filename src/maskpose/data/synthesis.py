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
  intensities; see :mod:`maskpose.data.domains` for its documented statistics).

Randomness comes only from the per-sample ``numpy.random.Generator`` list passed to
:meth:`SynthesisRenderer.render`, so a sample looks the same whatever batch it is rendered in.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from maskpose.errors import ConfigError, MaskposeError, check_shape

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

#: Rendering settings (the render-type domains of :mod:`maskpose.data.domains`).
SETTINGS: tuple[str, ...] = ("studio", "scene", "thermal")

#: Texture families per setting: 0 solid, 1 stripes, 2 checker (studio); 3 dots, 4 camouflage
#: noise, 5 plaid (scene). Disjoint, so scene clothing is unseen in studio data.
_PATTERNS = {"studio": (0, 1, 2), "scene": (3, 4, 5), "thermal": (0,)}

#: Thermal rendering constants (intensities in [0, 1]); :mod:`maskpose.data.domains` documents the
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


@functools.lru_cache(maxsize=None)
def _photo(name: str, max_side: int = 320) -> np.ndarray | None:
    """A bundled scikit-image photograph as float32 RGB in [0, 1], longest side <= max_side."""
    import cv2
    import skimage.data
    from PIL import Image

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
    import cv2

    small = rng.random((cells, cells, channels), dtype=np.float32)
    out = cv2.resize(small, (res, res), interpolation=cv2.INTER_CUBIC)
    return out.reshape(res, res, channels)


def _random_colour(rng: np.random.Generator, sat=(0.1, 0.7), val=(0.2, 0.95)) -> np.ndarray:
    import colorsys

    return np.array(colorsys.hsv_to_rgb(rng.random(), rng.uniform(*sat), rng.uniform(*val)), dtype=np.float32)


def _photo_crop(rng: np.random.Generator, bank: list[np.ndarray], res: int) -> np.ndarray:
    import cv2

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
    import cv2

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


def _sample_appearance(rng: np.random.Generator, setting: str, res: int) -> dict[str, np.ndarray]:
    P, S = len(PART_NAMES), len(SLOTS)
    slots = np.zeros(P, dtype=np.int64)
    for name, slot in (("torso", _TOP), ("l_upper_leg", _BOTTOM), ("r_upper_leg", _BOTTOM),
                       ("l_foot", _SHOES), ("r_foot", _SHOES)):
        slots[PART_INDEX[name]] = slot
    sleeves = rng.random()
    upper_arm = _TOP if sleeves > 0.15 else _SKIN
    lower_arm = _TOP if sleeves > 0.55 else _SKIN
    lower_leg = _BOTTOM if rng.random() > 0.35 else _SKIN
    for side in ("l_", "r_"):
        slots[PART_INDEX[side + "upper_arm"]] = upper_arm
        slots[PART_INDEX[side + "lower_arm"]] = lower_arm
        slots[PART_INDEX[side + "lower_leg"]] = lower_leg
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
        base[_SKIN] = alt[_SKIN] = np.clip(tone, 0, 1)
        for slot in (_TOP, _BOTTOM, _SHOES):
            base[slot] = _random_colour(rng, sat=sat, val=(0.15, 0.95))
            alt[slot] = _random_colour(rng, sat=sat, val=(0.15, 0.95))
        hair = _random_colour(rng, sat=(0.2, 0.6), val=(0.05, 0.5)) if rng.random() < 0.85 \
            else _random_colour(rng, sat=(0.0, 0.2), val=(0.6, 0.9))
        base[_HAIR] = alt[_HAIR] = hair
    pattern = np.array([0] + [patterns[int(rng.integers(len(patterns)))] for _ in range(S - 1)], np.int64)
    pattern[_HAIR] = 0
    direction = rng.normal(size=(S, 3)).astype(np.float32)
    direction /= np.linalg.norm(direction, axis=1, keepdims=True) + 1e-8
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
        light_dir[k] = d / np.linalg.norm(d)
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


def sample_appearance(rngs: Sequence[np.random.Generator], setting: str, res: int, device=None) -> Appearance:
    """Draw the appearance of every sample from its own generator and stack them."""
    if setting not in SETTINGS:
        raise ConfigError(f"unknown rendering setting {setting!r}; expected one of {SETTINGS}")
    draws = [_sample_appearance(rng, setting, res) for rng in rngs]
    stacked = {k: torch.as_tensor(np.stack([d[k] for d in draws]), device=device) for k in draws[0]}
    return Appearance(**stacked)


# --------------------------------------------------------------------------------------------
# Textures


def _texture_weight(rest: torch.Tensor, pattern: torch.Tensor, freq: torch.Tensor,
                    direction: torch.Tensor, phase: torch.Tensor, families: Sequence[int] = (1, 2, 3, 4, 5)
                    ) -> torch.Tensor:
    """Mixing weight in [0, 1] of the second colour at rest-pose points ``rest (N, 3)``; only the
    texture ``families`` listed are evaluated (the others give 0, as does family 0, solid)."""
    two_pi = 2 * math.pi
    s = (rest * direction).sum(-1)
    out = torch.zeros_like(s)
    if 4 in families or 5 in families:
        s2 = (rest * torch.linalg.cross(direction, torch.roll(direction, 1, dims=-1), dim=-1)).sum(-1)
    if 1 in families:
        stripes = (torch.sin(two_pi * freq * s + phase) > 0).float()
        out = torch.where(pattern == 1, stripes, out)
    if 2 in families:
        checker = torch.remainder(torch.floor(rest * freq[:, None]).sum(-1), 2.0)
        out = torch.where(pattern == 2, checker, out)
    if 3 in families:
        frac = torch.remainder(rest * (freq * 1.5)[:, None] + phase[:, None], 1.0) - 0.5
        out = torch.where(pattern == 3, (frac.square().sum(-1) < 0.09).float(), out)
    if 4 in families:
        camo = torch.sin(two_pi * 0.6 * freq * s + phase) + torch.sin(two_pi * 0.45 * freq * s2 + 2 * phase) \
            + torch.sin(two_pi * 0.8 * freq * (s - s2) + 0.5)
        out = torch.where(pattern == 4, (camo > 0.3).float(), out)
    if 5 in families:
        plaid = 0.5 * ((torch.sin(two_pi * freq * s + phase) > 0.3).float()
                       + (torch.sin(two_pi * freq * s2) > 0.3).float())
        out = torch.where(pattern == 5, plaid, out)
    return out


# --------------------------------------------------------------------------------------------
# Renderer


@dataclass
class Rendered:
    """A rendered batch, numpy on the CPU.

    Attributes:
        image: ``(B, H, W, 3)`` uint8.
        mask: ``(B, H, W)`` uint8 in {0, 1}: exactly the pixels the z-buffer covers.
        depth: ``(B, H, W)`` float32 camera depth in metres, 0 on the background.
        parts: ``(B, H, W)`` uint8 part labels (:data:`PART_NAMES`), 0 on the background.
    """

    image: np.ndarray
    mask: np.ndarray
    depth: np.ndarray
    parts: np.ndarray


class SynthesisRenderer:
    """RGB / thermal synthesis of a posed Anny mesh with an exact z-buffer.

    Args:
        body: a :class:`maskpose.body.anny_body.AnnyBody` (its topology is the one rendered).
        device: where the per-pixel work runs (the z-buffer runs where the vertices are).
    """

    def __init__(self, body, device: torch.device | str | None = "cpu"):
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        anny = body.anny
        self.faces = body.faces.to(self.device)
        self.vertex_parts = vertex_parts(anny).to(self.device)
        self.rest = anny.template_vertices.detach().float().to(self.device)  # Anny world, Z up
        self.head_top_z = float(self.rest[:, 2].max())

    def vertex_normals(self, vertices: torch.Tensor) -> torch.Tensor:
        """``(B, V, 3)`` unit outward vertex normals (area-weighted face normals)."""
        f = self.faces
        v0, v1, v2 = vertices[:, f[:, 0]], vertices[:, f[:, 1]], vertices[:, f[:, 2]]
        face_n = torch.linalg.cross(v1 - v0, v2 - v0, dim=-1)  # outward for Anny's winding
        batch, num_vertices = vertices.shape[:2]
        offsets = torch.arange(batch, device=vertices.device)[:, None, None] * num_vertices
        normals = torch.zeros(batch * num_vertices, 3, dtype=vertices.dtype, device=vertices.device)
        # One flat index_add over (batch, face, corner): much faster than per-dimension adds.
        normals.index_add_(0, (offsets + f[None]).reshape(-1),
                           face_n[:, :, None, :].expand(-1, -1, 3, -1).reshape(-1, 3))
        normals = normals.view(batch, num_vertices, 3)
        return normals / normals.norm(dim=-1, keepdim=True).clamp_min(1e-12)

    @torch.no_grad()
    def render(
        self,
        vertices: torch.Tensor,
        K: torch.Tensor,
        rngs: Sequence[np.random.Generator],
        setting: str = "studio",
        size: int | tuple[int, int] | None = None,
        backgrounds: np.ndarray | None = None,
        noise: bool = True,
        timings: dict[str, float] | None = None,
    ) -> Rendered:
        """Render a batch.

        Args:
            vertices: ``(B, V, 3)`` camera-frame vertices of the body's topology (metres).
            K: ``(B, 3, 3)`` intrinsics.
            rngs: one ``numpy.random.Generator`` per sample (all randomness comes from them).
            setting: ``"studio"``, ``"scene"`` or ``"thermal"``.
            size: ``res`` or ``(H, W)``; default ``2 * K[0, 0, 2] + 1`` (a centred square crop).
            backgrounds: optional ``(B, H, W, 3)`` uint8 or float backgrounds replacing the random
                ones (e.g. a constant colour, to check that image and mask coincide).
            noise: add sensor noise (and, for thermal, the optics blur); ``False`` leaves every
                background pixel exactly as given.
            timings: optional dict accumulating seconds in ``rasterize``, ``appearance``
                (appearance draws and backgrounds) and ``shading``.
        """
        import time
        from maskpose.render.zbuffer import rasterize

        check_shape("vertices", vertices, (None, self.rest.shape[0], 3))
        batch = vertices.shape[0]
        if len(rngs) != batch:
            raise MaskposeError(f"rngs: need one generator per sample ({batch}), got {len(rngs)}")
        if setting not in SETTINGS:
            raise ConfigError(f"unknown rendering setting {setting!r}; expected one of {SETTINGS}")
        if size is None:
            size = int(round(2 * float(K[0, 0, 2]) + 1))
        height, width = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
        if height != width:
            raise MaskposeError(f"the synthesis renderer makes square crops, got size {(height, width)}")
        res = height
        vertices = vertices.detach().float().to(self.device)
        K = K.detach().float().to(self.device)
        tick = time.perf_counter()

        def clock(stage: str) -> None:
            nonlocal tick
            if timings is not None:
                now = time.perf_counter()
                timings[stage] = timings.get(stage, 0.0) + now - tick
                tick = now

        frags = rasterize(vertices, self.faces, K, (height, width), cull_backfaces=True)
        clock("rasterize")
        app = sample_appearance(rngs, setting, res, self.device)

        # Each sample's generator draws, in order: appearance, noise seed, background; so a
        # re-render with a given background keeps the same appearance and the same noise.
        noise_seeds = [int(rng.integers(0, 2**62)) for rng in rngs]
        if backgrounds is None:
            bg = np.stack([background(rng, res, setting) for rng in rngs])
        else:
            bg = np.asarray(backgrounds)
            if bg.shape != (batch, height, width, 3):
                raise MaskposeError(f"backgrounds must have shape {(batch, height, width, 3)}, got {bg.shape}")
            bg = bg.astype(np.float32) / 255.0 if bg.dtype == np.uint8 else bg.astype(np.float32)
        image = torch.from_numpy(bg).to(self.device)
        clock("appearance")

        # Per-pixel work on the foreground only, with flat indices (one gather per table).
        mask = frags.face_index >= 0
        flat = torch.nonzero(mask.view(-1)).squeeze(1)  # (N,)
        bb = torch.div(flat, height * width, rounding_mode="floor")
        face = frags.face_index.view(-1).index_select(0, flat)
        bary = frags.barycentric.view(-1, 3).index_select(0, flat).float()  # (N, 3)
        corner = self.faces.index_select(0, face)  # (N, 3)
        nearest = corner.gather(1, bary.argmax(1, keepdim=True))[:, 0]
        part = self.vertex_parts.index_select(0, nearest)  # (N,)
        num_vertices = vertices.shape[1]
        per_vertex = torch.cat((self.vertex_normals(vertices), vertices,
                                self.rest.expand(batch, -1, -1)), -1).reshape(-1, 9)
        gathered = per_vertex.index_select(0, (bb[:, None] * num_vertices + corner).view(-1)).view(-1, 3, 9)
        interp = (gathered * bary[..., None]).sum(1)  # (N, 9)
        n = interp[:, 0:3] / interp[:, 0:3].norm(dim=-1, keepdim=True).clamp_min(1e-12)
        point, rest = interp[:, 3:6], interp[:, 6:9]

        slots = len(SLOTS)
        slot = app.slot_of_part.reshape(-1).index_select(0, bb * len(PART_NAMES) + part)
        hair_length = app.hair_length.index_select(0, bb)
        hair = (part == PART_INDEX["head"]) & (rest[:, 2] > self.head_top_z - hair_length) & (hair_length > 0)
        slot = torch.where(hair, torch.full_like(slot, _HAIR), slot)
        garment = torch.cat((app.base, app.alt, app.pattern[..., None].float(), app.freq[..., None],
                             app.direction, app.phase[..., None]), -1).reshape(batch * slots, -1)
        g = garment.index_select(0, bb * slots + slot)  # (N, 12)
        w = _texture_weight(rest, g[:, 6].long(), g[:, 7], g[:, 8:11], g[:, 11], _PATTERNS[setting])
        albedo = g[:, 0:3] + (g[:, 3:6] - g[:, 0:3]) * w[:, None]

        if setting == "thermal":
            view = -point / point.norm(dim=-1, keepdim=True).clamp_min(1e-12)
            facing = (n * view).sum(-1).abs()
            floor = THERMAL["emissivity_floor"]
            colour = albedo * (floor + (1 - floor) * facing)[:, None]
        else:
            used = 1 if setting == "studio" else _MAX_LIGHTS  # studio has one light, scene up to three
            lights = torch.cat((app.ambient, app.light_dir[:, :used].reshape(batch, -1),
                                app.light_colour[:, :used].reshape(batch, -1)), -1).index_select(0, bb)
            lambert = torch.bmm(lights[:, 3:3 + 3 * used].view(-1, used, 3), n[:, :, None])  # (N, L, 1)
            light = lights[:, 0:3] + (lambert.clamp_min(0.0) * lights[:, 3 + 3 * used:].view(-1, used, 3)).sum(1)
            colour = albedo * light
        image = image.contiguous()
        image.view(-1, 3).index_copy_(0, flat, colour.clamp(0.0, 1.0))

        if noise:
            gen = torch.Generator(device="cpu")
            noise_maps = []
            for noise_seed in noise_seeds:  # per-sample seeds keep the batch invariance
                gen.manual_seed(noise_seed)
                noise_maps.append(torch.randn((height, width, 1), generator=gen))
            noise_map = torch.stack(noise_maps).to(self.device)
            if setting == "thermal":
                image = _gaussian_blur(image, THERMAL["blur_sigma_at_128"] * res / 128)
                image = image + noise_map * app.noise_std[:, None, None, None] \
                    + app.column_noise[:, None, :, None]
            else:
                image = image + noise_map.expand(-1, -1, -1, 3) * app.noise_std[:, None, None, None]

        parts = torch.zeros(batch * height * width, dtype=torch.uint8, device=self.device)
        parts.index_copy_(0, flat, part.to(torch.uint8))
        parts = parts.view(batch, height, width)
        depth = torch.where(mask, frags.depth, torch.zeros_like(frags.depth))
        image_u8 = (image.clamp(0.0, 1.0) * 255.0 + 0.5).to(torch.uint8)
        clock("shading")
        return Rendered(
            image=image_u8.cpu().numpy(), mask=mask.to(torch.uint8).cpu().numpy(),
            depth=depth.float().cpu().numpy(), parts=parts.cpu().numpy(),
        )


def _gaussian_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``(B, H, W, C)`` images (reflect padding)."""
    if sigma <= 0:
        return image
    radius = max(1, int(math.ceil(3 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=image.dtype, device=image.device)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    kernel = kernel / kernel.sum()
    b, h, w, c = image.shape
    t = image.permute(0, 3, 1, 2).reshape(b * c, 1, h, w)
    t = torch.nn.functional.pad(t, (radius, radius, 0, 0), mode="reflect")
    t = torch.nn.functional.conv2d(t, kernel.view(1, 1, 1, -1))
    t = torch.nn.functional.pad(t, (0, 0, radius, radius), mode="reflect")
    t = torch.nn.functional.conv2d(t, kernel.view(1, 1, -1, 1))
    return t.reshape(b, c, h, w).permute(0, 2, 3, 1)


__all__ = [
    "PART_NAMES", "SLOTS", "PHOTOS", "SETTINGS", "THERMAL", "Appearance", "Rendered",
    "SynthesisRenderer", "background", "part_of_bone", "photo_bank", "sample_appearance",
    "vertex_parts",
]

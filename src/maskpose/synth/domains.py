"""Named synthetic domains (docs/design.md §4): each is a rendering setting, an image transform, or both.

A :class:`Domain` renders with one of the synthesis settings of :mod:`maskpose.synth.appearance`
(``render``) and then, optionally, applies an image ``transform`` to the rendered batch. Masks and
labels always come from the geometry, so they stay exact whatever the domain does to the image.

Built-in domains (:data:`DOMAINS`):

``studio``
    The source domain: body parts coloured as clothing (solid, stripes, checker), skin tones, hair,
    one white key light plus ambient, procedural backdrops (gradients, wall/floor, smooth noise) and
    people-free scikit-image photographs (brick, grass, gravel, coffee, coins, moon, page).
``lowres-96``, ``lowres-52``, ``lowres-32``
    Studio images down-sampled to 96/52/32 px with area averaging, then up-sampled back to the
    crop resolution with bilinear interpolation: detail above the Nyquist frequency of the low
    resolution (``r / 2`` cycles per image) is removed. When ``r >= res`` the image is unchanged.
``thermal``
    Temperature-like grey intensities: exposed skin warmest, clothing a little cooler, hair and
    shoes cooler still; intensity falls toward grazing angles (emissivity), a cool background
    with smooth variation, an optics blur (sigma 1 px at 128 px, scaled with the resolution),
    white sensor noise and fixed-pattern column noise. Documented statistics, checked by the
    tests (:data:`THERMAL_STATS`, intensities in [0, 1]): mean body intensity at least 0.25 above
    the mean background intensity; body mean in [0.45, 0.95]; background mean in [0.05, 0.45];
    noise std ``sqrt(0.02² + 0.008²) ≈ 0.0215`` (measured with :func:`estimate_noise_std`).
``scene``
    Unseen appearance, disjoint from studio's: clothing textures dots / camouflage / plaid in
    saturated colours, two or three coloured lights from wide angles with a tinted ambient, other
    photographs (rocket, cat, Hubble deep field, histology, motorcycle, retina,
    clock, text) and random clutter shapes.

Extension hook (UAP domains and others): :func:`register_domain` adds a domain whose ``transform``
takes ``(images (B,H,W,3) uint8, masks (B,H,W) uint8, rng, perturbation)``; ``perturbation`` is
whatever array the caller passes to :func:`apply_domain` / :func:`maskpose.synth.generator.generate`
(for a universal adversarial perturbation: ``(H, W, 3)`` float in pixel units of 1/255), and a
domain with ``needs_perturbation=True`` refuses to run without one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from maskpose.errors import ConfigError, MaskposeError
from maskpose.synth.appearance import SETTINGS

Transform = Callable[..., np.ndarray]


@dataclass(frozen=True)
class Domain:
    """A named domain.

    Attributes:
        name: registry key (e.g. ``"lowres-52"``).
        description: one line, shown by ``maskpose synth --help`` and stored in ``meta.json``.
        render: the synthesis setting used to render it (``"studio"``, ``"scene"``, ``"thermal"``).
        transform: optional ``f(images, masks, rng, perturbation=None) -> images`` applied after
            rendering (uint8 ``(B, H, W, 3)`` in and out).
        needs_perturbation: the transform requires a ``perturbation`` array.
        params: JSON-serialisable parameters (recorded in the dataset's metadata).
    """

    name: str
    description: str
    render: str = "studio"
    transform: Transform | None = None
    needs_perturbation: bool = False
    params: dict[str, Any] = field(default_factory=dict)


def lowres(images: np.ndarray, size: int) -> np.ndarray:
    """Down-sample ``(B, H, W, 3)`` uint8 images to ``size`` px (area averaging) and back up
    (bilinear). Unchanged when ``size >= min(H, W)``."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise MaskposeError(f"images must have shape (B, H, W, 3), got {images.shape}")
    height, width = images.shape[1:3]
    if size >= min(height, width):
        return images.copy()
    small_w = max(1, round(size * width / height)) if height <= width else size
    small_h = size if height <= width else max(1, round(size * height / width))
    out = np.empty_like(images)
    for i, image in enumerate(images):
        small = cv2.resize(image, (small_w, small_h), interpolation=cv2.INTER_AREA)
        out[i] = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    return out


def _lowres_transform(size: int) -> Transform:
    def transform(images, masks=None, rng=None, perturbation=None):
        return lowres(images, size)

    transform.__name__ = f"lowres_{size}"
    return transform


#: Documented statistics of the thermal domain (intensities in [0, 1]); see the module docstring.
THERMAL_STATS = {
    "min_body_minus_background": 0.25,
    "body_mean_range": (0.45, 0.95),
    "background_mean_range": (0.05, 0.45),
    "noise_std": float(np.hypot(0.02, 0.008)),
}


def estimate_noise_std(image: np.ndarray, region: np.ndarray) -> float:
    """Sensor noise std of a grey image in [0, 1] units from horizontal neighbour differences
    inside ``region`` (both pixels of a pair in it): ``std(I[x] - I[x+1]) / sqrt(2)``. Smooth
    content contributes little; white and column noise contribute fully."""
    grey = np.asarray(image, dtype=np.float64)
    if grey.ndim == 3:
        grey = grey.mean(-1)
    grey = grey / 255.0 if np.asarray(image).dtype == np.uint8 else grey
    diff = grey[:, 1:] - grey[:, :-1]
    pair = np.asarray(region, bool)[:, 1:] & np.asarray(region, bool)[:, :-1]
    if pair.sum() < 10:
        raise MaskposeError("region too small to estimate the noise")
    return float(diff[pair].std() / np.sqrt(2.0))


DOMAINS: dict[str, Domain] = {}


def register_domain(domain: Domain, overwrite: bool = False) -> Domain:
    """Add a domain to :data:`DOMAINS` (e.g. ``uap-8`` with a perturbation transform)."""
    if domain.name in DOMAINS and not overwrite:
        raise ConfigError(f"domain {domain.name!r} is already registered")
    if domain.render not in SETTINGS:
        raise ConfigError(f"domain {domain.name!r}: render setting {domain.render!r} not in {SETTINGS}")
    DOMAINS[domain.name] = domain
    return domain


def get_domain(name: str) -> Domain:
    """The registered domain ``name``; a :class:`ConfigError` lists the known names otherwise."""
    try:
        return DOMAINS[name]
    except KeyError:
        raise ConfigError(f"unknown domain {name!r}; known domains: {', '.join(sorted(DOMAINS))}") from None


def apply_domain(name: str, images: np.ndarray, masks: np.ndarray | None = None,
                 rng: np.random.Generator | None = None, perturbation: np.ndarray | None = None) -> np.ndarray:
    """Apply a transform domain to rendered ``(B, H, W, 3)`` uint8 images; returns new images.

    Rendering-setting domains (``studio``, ``scene``, ``thermal``) are not image transforms: the
    studio domain returns the images unchanged, the others raise :class:`ConfigError` (generate
    them with :func:`maskpose.synth.generator.generate`).
    """
    domain = get_domain(name)
    if domain.transform is None:
        if domain.render == "studio":
            return np.array(images, copy=True)
        raise ConfigError(
            f"domain {name!r} is a rendering setting ({domain.render}), not an image transform; "
            "generate it with maskpose.synth.generator.generate"
        )
    if domain.needs_perturbation and perturbation is None:
        raise ConfigError(f"domain {name!r} needs a perturbation array")
    rng = rng if rng is not None else np.random.default_rng(0)
    out = domain.transform(np.asarray(images), masks, rng, perturbation=perturbation)
    out = np.asarray(out)
    if out.shape != np.shape(images) or out.dtype != np.uint8:
        raise MaskposeError(
            f"domain {name!r} returned {out.dtype} {out.shape}, expected uint8 {np.shape(images)}"
        )
    return out


register_domain(Domain("studio", "source domain: clothing colours and textures, key light, backdrops and photos"))
for _size in (96, 52, 32):
    register_domain(Domain(
        f"lowres-{_size}", f"studio images down-sampled to {_size} px (area) and up-sampled back (bilinear)",
        transform=_lowres_transform(_size), params={"size": _size},
    ))
register_domain(Domain(
    "thermal", "temperature-like intensities: warm body, cool background, blur, sensor noise",
    render="thermal", params={"stats": {k: list(v) if isinstance(v, tuple) else v for k, v in THERMAL_STATS.items()}},
))
register_domain(Domain(
    "scene", "unseen textures (dots, camouflage, plaid), coloured lights, other photos and clutter",
    render="scene",
))

__all__ = ["Domain", "DOMAINS", "THERMAL_STATS", "apply_domain", "estimate_noise_std", "get_domain",
           "lowres", "register_domain"]

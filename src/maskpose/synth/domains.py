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

Adaptation targets (issue 14; the hooks live in :mod:`maskpose.synth.targets`):

``cctv``
    An elevated camera pitched 30-50 degrees down at the person (the body's global orientation is
    rotated by ``R_x(θ)`` before the camera is placed, so the view itself changes), a focal ratio
    drawn per sample in [1.4, 2.8] (stored per sample in ``intrinsics``), studio appearance turned
    grey (R = G = B, BT.601 luma), area-down-sampled to an effective 48 px sensor, white sensor
    noise (std 2-6 / 255) added and rounded at 48 px, then bilinear back up to the crop resolution
    (a crop of 48 px or less is not re-sampled; the noise is added at its own resolution).
``occluded``
    Studio people behind 1-2 random occluders (rectangles, ellipses, blobs; solid colours, stripes,
    photos) sized to hide 10-40 % of the person's in-frame pixels, and truncation: on 30 % of the
    samples 10-35 % of the body's box is pushed out of one side of the crop. The stored mask is the
    *visible* person (z-buffer mask minus occluders, cropped by the frame); 2D/3D labels stay the
    full-body truth (some ``joints2d`` lie outside the crop).
``realistic`` (a source domain, :mod:`maskpose.synth.realistic`)
    Photo-like people for models meant for real images: realistic appearance, procedural and
    photographic backgrounds (and the user's own with ``--backgrounds DIR``), cameras from -10 to
    50 degrees of elevation with roll and varied focal lengths, truncation, occluding shapes and
    other people, camera effects (blur, noise, JPEG, colour), poses mixing the sampler and mocap.
    Its train split is labelled, as studio's is.
``motion``
    Studio rendering of poses from real mocap instead of the sampler: the shipped CMU and
    DeepMimic clips (:func:`maskpose.synth.targets.default_motion_library`), distinct frames in a
    seeded order with a random yaw. Another folder of BVH clips: pass
    ``pose_source=motion_pose_source(folder)`` to the generator or :func:`register_motion_domain`.

``bgsub``
    Masks produced by the project's background subtraction (:func:`maskpose.data.video.extract_video`)
    on synthetic static-camera videos (:func:`maskpose.synth.video.render_frames`), with all the
    extractor's errors; 3D truth from the renderer, in perspective crop cameras
    (:mod:`maskpose.synth.bgsub`). Written by the domain's own ``generator``.
``clothed``
    The ``realistic`` domain's appearance (per-part clothing in every texture family, a continuous
    range of skin tones, hair, shoes, one to three tinted lights) on studio geometry: the sampler's
    poses, studio's crop camera (fixed focal ratio, no elevation, truncation, occluders or other
    people), studio's backgrounds (user photos with ``--backgrounds DIR`` on half the samples), no
    camera effects. Against the studio source, only the person's appearance changes.

Extension hook (UAP domains and others): :func:`register_domain` adds a domain whose ``transform``
takes ``(images (B,H,W,3) uint8, masks (B,H,W) uint8, rng, perturbation)``; ``perturbation`` is
whatever array the caller passes to :func:`apply_domain` / :func:`maskpose.synth.generator.generate`
(for a universal adversarial perturbation: ``(H, W, 3)`` float in pixel units of 1/255), and a
domain with ``needs_perturbation=True`` refuses to run without one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from maskpose.errors import ConfigError, MaskposeError
from maskpose.synth.appearance import SETTINGS
from maskpose.synth.bgsub import BgsubConfig, generate_bgsub
from maskpose.synth.realism import CameraEffects
from maskpose.synth.realistic import (
    REALISTIC_DISTRACTORS,
    REALISTIC_FILL,
    REALISTIC_OCCLUDERS,
    REALISTIC_OFFSET,
    REALISTIC_VIEW,
    realistic_background,
    realistic_pose_source,
    realistic_transform,
    studio_background,
)
from maskpose.synth.targets import (
    CCTV_NOISE,
    CCTV_SENSOR,
    DEFAULT_MOTION_STRIDE,
    Occluders,
    View,
    cctv_transform,
    motion_pose_source,
)

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
        view: optional per-sample camera variation (:class:`maskpose.synth.targets.View`:
            elevation, focal ratio, truncation).
        occluders: optional :class:`maskpose.synth.targets.Occluders` drawn in front of the
            person after rendering (the stored mask is the visible part).
        pose_source: optional factory ``() -> pose source``, used when the generator gets none.
        per_sample_rng: the transform receives a list of one generator per sample (batch
            invariant) instead of one generator per batch.
        backgrounds: optional ``f(rng, res, photos) -> (res, res, 3) float`` drawing each sample's
            background from its own stream (``photos``: the user's
            :class:`~maskpose.synth.realism.PhotoBackgrounds` or ``None``); only such a domain
            takes ``SynthesisConfig.backgrounds``.
        distractors: optional :class:`maskpose.synth.realistic.Distractors` (other people).
        noise: the renderer adds its sensor noise (off where the transform adds its own).
        fill, offset: the crop placement of :func:`~maskpose.synth.generator.place_camera`,
            replacing ``SynthesisConfig.fill`` / ``offset`` when set.
        generator: optional ``f(out_dir, domain, n, res, seed, split, labels, config, *, body,
            progress) -> Path`` that writes the dataset itself (``bgsub``: video, background
            subtraction, crops); :func:`~maskpose.synth.generator.generate` hands such a domain over
            to it (no pose source, perturbation or per-sample hooks apply).
    """

    name: str
    description: str
    render: str = "studio"
    transform: Transform | None = None
    needs_perturbation: bool = False
    params: dict[str, Any] = field(default_factory=dict)
    view: View | None = None
    occluders: Occluders | None = None
    pose_source: Callable[[], Any] | None = None
    per_sample_rng: bool = False
    backgrounds: Callable[..., np.ndarray] | None = None
    distractors: Any = None
    noise: bool = True
    fill: tuple[float, float] | None = None
    offset: float | None = None
    generator: Callable[..., Path] | None = None


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
    if domain.view is not None or domain.occluders is not None or domain.pose_source is not None \
            or domain.generator is not None:
        raise ConfigError(f"domain {name!r} changes the camera, the occlusion or the poses, not only the image; "
                          "generate it with maskpose.synth.generator.generate")
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


#: Parameters of the adaptation-target domains (recorded in ``meta.json`` as ``domain_params``).
CCTV_VIEW = View(elevation=(30.0, 50.0), focal_ratio=(1.4, 2.8))
OCCLUDED_VIEW = View(truncation=0.3, truncation_amount=(0.1, 0.35))
OCCLUDERS = Occluders(fraction=(0.1, 0.4), count=(1, 2))


def register_motion_domain(name: str = "motion", motions=None, stride: int | None = None, randomize_yaw: bool = True,
                           min_pose_difference: float = 0.05, overwrite: bool = False) -> Domain:
    """Register a studio domain whose poses come from mocap: ``motions`` is a BVH/DeepMimic file,
    folder or list (default: the shipped clips); ``stride`` keeps every n-th frame (default 2 for
    the shipped clips, 1 for a user's). The library is loaded (and cached) on first use."""
    described = "shipped CMU + DeepMimic clips" if motions is None else str(motions)
    if stride is None:
        stride = DEFAULT_MOTION_STRIDE if motions is None else 1

    def source():
        return motion_pose_source(motions, stride=stride, randomize_yaw=randomize_yaw,
                                  min_pose_difference=min_pose_difference)

    if motions is None:
        listed = None
    elif isinstance(motions, (str, Path)):
        listed = [str(motions)]
    else:
        listed = [str(m) for m in motions]
    params = {"motions": listed, "stride": stride, "randomize_yaw": randomize_yaw,
              "min_pose_difference": min_pose_difference}
    return register_domain(Domain(
        name, f"studio rendering of mocap poses ({described}) instead of the pose sampler",
        pose_source=source, params=params,
    ), overwrite=overwrite)


register_domain(Domain(
    "cctv", f"elevated camera 30-50 deg down, focal ratio 1.4-2.8, grey, {CCTV_SENSOR} px sensor with noise",
    transform=cctv_transform, view=CCTV_VIEW, per_sample_rng=True,
    params={"view": CCTV_VIEW.params(), "sensor": CCTV_SENSOR, "noise_std": list(CCTV_NOISE), "grey": "BT.601"},
))
register_domain(Domain(
    "occluded", "random occluders hiding 10-40 % of the person, truncation on 30 %; mask = visible part",
    view=OCCLUDED_VIEW, occluders=OCCLUDERS,
    params={"view": OCCLUDED_VIEW.params(), "occluders": OCCLUDERS.params(), "mask": "visible"},
))
register_motion_domain("motion")
register_domain(Domain(
    "realistic", "photo-like source: clothing, skin, hair, lights, varied cameras, occluders and other people, "
    "camera effects",
    render="realistic", transform=realistic_transform, per_sample_rng=True, view=REALISTIC_VIEW,
    occluders=REALISTIC_OCCLUDERS, pose_source=realistic_pose_source, backgrounds=realistic_background,
    distractors=REALISTIC_DISTRACTORS, noise=False, fill=REALISTIC_FILL, offset=REALISTIC_OFFSET,
    params={"view": REALISTIC_VIEW.params(), "occluders": REALISTIC_OCCLUDERS.params(),
            "distractors": REALISTIC_DISTRACTORS.params(), "fill": list(REALISTIC_FILL), "offset": REALISTIC_OFFSET,
            "effects": CameraEffects().params(), "mask": "visible"},
))


def register_bgsub_domain(name: str = "bgsub", settings: BgsubConfig | None = None, overwrite: bool = False) -> Domain:
    """Register a ``bgsub`` target (:mod:`maskpose.synth.bgsub`) with its video and extraction
    settings (default :class:`~maskpose.synth.bgsub.BgsubConfig`)."""
    settings = settings if settings is not None else BgsubConfig()
    description = ("masks from background subtraction (MOG2, tracking, crops) on synthetic static-camera videos, "
                   "3D truth from the renderer; perspective crop cameras")

    def generator(out_dir, domain, n, res, seed, split, labels, config, *, body=None, progress=None):
        return generate_bgsub(out_dir, domain, n, res, seed, split, labels, config, body=body, progress=progress,
                              settings=settings, description=description)

    return register_domain(Domain(name, description, generator=generator, params={"bgsub": settings.params()}),
                           overwrite=overwrite)


register_bgsub_domain("bgsub")
register_domain(Domain(
    "clothed", "realistic appearance (clothing textures, skin tones, hair, shoes, 1-3 tinted lights) on studio "
    "geometry, cameras and backgrounds",
    render="realistic", backgrounds=studio_background,
    params={"appearance": "realistic", "geometry": "studio", "backgrounds": "studio"},
))

__all__ = ["CCTV_VIEW", "Domain", "DOMAINS", "OCCLUDED_VIEW", "OCCLUDERS", "THERMAL_STATS", "apply_domain",
           "estimate_noise_std", "get_domain", "lowres", "register_bgsub_domain", "register_domain",
           "register_motion_domain"]

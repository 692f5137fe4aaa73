"""The ``realistic`` source domain: photo-like synthetic people for models meant for real images.

In the spirit of SURREAL, on Anny. What each part adds, and where it lives:

* **Appearance** (setting ``"realistic"`` of :mod:`maskpose.synth.appearance`): a continuous range
  of skin tones, clothing from the colour families photographs show (neutrals, denim, earth
  tones, anything) in all texture families (solid, stripes, checks, dots, camouflage, plaid,
  smooth noise, gradients), natural hair colours, shoes, one to three warm or cool lights from any
  direction with a tinted ambient.
* **Backgrounds** (:func:`realistic_background`): procedural generators of
  :mod:`maskpose.synth.realism` (dead leaves, fractal noise, shapes, gradients), the people-free
  scikit-image photographs of every setting, and, when the user gives a folder
  (``SynthesisConfig.backgrounds``, ``maskpose synth --backgrounds DIR``), crops of their photos.
* **Camera** (:data:`REALISTIC_VIEW`): elevation from -10 to 50 degrees, roll of +-15 degrees,
  focal ratio 1.2-4 (stored per sample), and truncation on 25 % of the samples; the crop is placed
  as a detector's box would be: the body's box fills 60-95 % of the crop, its centre jittered.
* **Occlusion**: random shapes in front of the person on 25 % of the samples
  (:data:`REALISTIC_OCCLUDERS`), and other rendered people (:class:`Distractors`) beside the
  person, in front or behind, on 35 %. The stored mask is always the *visible* part of the target
  person; the labels stay the full-body truth.
* **Image effects** (:func:`realistic_transform`): motion and defocus blur, colour jitter,
  sensor noise, JPEG re-compression, vignetting (:func:`maskpose.synth.realism.camera_effects`).
* **Poses** (:class:`MixedPoses`): the full pose sampler mixed with the shipped motion library.

Every random draw comes from the per-sample streams of :func:`maskpose.synth.generator.sample_rngs`
(backgrounds: :data:`BACKGROUND_STREAM`; distractors: :data:`DISTRACTOR_STREAM`), so a sample looks
the same whatever batch it is rendered in.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from maskpose.body.sampler import PoseDistribution, PoseSampler
from maskpose.errors import ConfigError
from maskpose.synth.appearance import background, photo_bank
from maskpose.synth.realism import PhotoBackgrounds, camera_effects, procedural_background
from maskpose.synth.targets import Occluders, View, elevate, motion_pose_source

#: Random streams of the realistic domain (the generator's are 1-4, the target hooks' 5-6).
BACKGROUND_STREAM, DISTRACTOR_STREAM = 7, 8

#: Distractors with a vertex closer to the camera than this (metres) are left out.
NEAR_PLANE = 0.1

#: The realistic domain's camera (see the module docstring).
REALISTIC_VIEW = View(elevation=(-10.0, 50.0), focal_ratio=(1.2, 4.0), truncation=0.25,
                      truncation_amount=(0.05, 0.35), roll=(-15.0, 15.0))
#: Occluding shapes on a quarter of the samples, hiding 5-35 % of the person.
REALISTIC_OCCLUDERS = Occluders(fraction=(0.05, 0.35), count=(1, 2), probability=0.25)
#: The crop placement: the body's box spans 60-95 % of the crop, its centre moved up to 8 %.
REALISTIC_FILL, REALISTIC_OFFSET = (0.6, 0.95), 0.08


@functools.cache
def _photos(folder: str) -> PhotoBackgrounds:
    return PhotoBackgrounds(folder)


def photo_backgrounds(folder: str | Path | None) -> PhotoBackgrounds | None:
    """The user's background photographs (loaded once per process and folder), or ``None``."""
    return None if folder is None else _photos(str(Path(folder).resolve()))


def realistic_background(rng: np.random.Generator, res: int, photos: PhotoBackgrounds | None = None) -> np.ndarray:
    """One background ``(res, res, 3)`` float32 in [0, 1]: a crop of the user's photos (half of
    the draws when ``photos`` is given), a bundled photograph (a quarter of the others) or a
    procedural background. Always draws the choice first, then only what that choice needs."""
    kind = rng.random()
    if photos is not None:
        if kind < 0.5:
            return photos.crop(rng, res)
        kind = (kind - 0.5) * 2.0
    bank = photo_bank("studio") + photo_bank("scene")
    if bank and kind < 0.25:
        photo = bank[int(rng.integers(len(bank)))]
        h, w = photo.shape[:2]
        side = int(min(h, w) * rng.uniform(0.3, 1.0))
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        crop = cv2.resize(photo[y:y + side, x:x + side], (res, res),
                          interpolation=cv2.INTER_AREA if side > res else cv2.INTER_LINEAR)
        return np.ascontiguousarray(crop[:, ::-1] if rng.random() < 0.5 else crop)
    return procedural_background(rng, res)


def studio_background(rng: np.random.Generator, res: int, photos: PhotoBackgrounds | None = None) -> np.ndarray:
    """One background ``(res, res, 3)`` float32 in [0, 1] for the ``clothed`` domain: studio's own
    (:func:`maskpose.synth.appearance.background`), or a crop of the user's photos on half the draws
    when ``photos`` is given (the choice drawn first)."""
    if photos is not None and rng.random() < 0.5:
        return photos.crop(rng, res)
    return background(rng, res, "studio")


def realistic_transform(images: np.ndarray, masks=None, rng=None, perturbation=None) -> np.ndarray:
    """The domain's image effects: :func:`~maskpose.synth.realism.camera_effects` with one
    generator per sample (``rng`` is the list of them)."""
    return camera_effects(np.asarray(images), rng)


class MixedPoses:
    """A seeded pose source mixing a :class:`~maskpose.body.sampler.PoseSampler` with the shipped
    motion library: each sample is a mocap frame with probability ``motion_share``.

    The sampler is the full one, or with ``distribution`` (a
    :class:`~maskpose.body.sampler.PoseDistribution`) its milder
    :meth:`~maskpose.body.sampler.PoseSampler.facing_camera` form, the demo's poses, which are
    closer to how people stand in photographs than the full sampler's random joint angles.

    ``sample(n, seed)`` draws both sources in full and picks per sample, so the choice of one
    sample does not shift the others' poses.
    """

    def __init__(self, motion_share: float = 0.6, motion=None, distribution: PoseDistribution | None = None):
        if not 0.0 <= motion_share <= 1.0:
            raise ConfigError(f"motion_share must lie in [0, 1], got {motion_share}")
        self.motion_share = motion_share
        self.motion = motion if motion is not None else motion_pose_source()
        self.distribution = distribution

    def sampler(self, seed: int) -> PoseSampler:
        """The sampler part's :class:`~maskpose.body.sampler.PoseSampler` of one draw."""
        if self.distribution is None:
            return PoseSampler(seed=seed)
        return PoseSampler.facing_camera(seed, self.distribution)

    def sample(self, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        sampled_pose, sampled_phen = self.sampler(seed).sample(n)
        motion_pose, motion_phen = self.motion.sample(n, seed=seed)
        pick = torch.from_numpy(np.random.default_rng(seed).random(n) < self.motion_share)
        pose = torch.where(pick[:, None, None], torch.as_tensor(motion_pose, dtype=torch.float32), sampled_pose)
        phen = torch.where(pick[:, None], torch.as_tensor(motion_phen, dtype=torch.float32), sampled_phen)
        return pose, phen

    @property
    def description(self) -> dict:
        described = {"mixture": {"sampler": 1.0 - self.motion_share, "motion": self.motion_share},
                     "motion": self.motion.description}
        if self.distribution is not None:  # the full sampler's datasets keep their old description
            described["sampler"] = {"facing_camera": dataclasses.asdict(self.distribution)}
        return described


def realistic_pose_source() -> MixedPoses:
    """The realistic domain's poses: :class:`MixedPoses` over the shipped clips."""
    return MixedPoses()


@dataclass(frozen=True)
class Distractors:
    """Other people beside the target person, in front of or behind it.

    Attributes:
        probability: share of the samples that get a distractor.
        front: share of the distractors standing closer to the camera than the person.
        shift: range of the sideways offset of the distractor's pelvis in crop widths (either side).
        depth_front, depth_behind: ranges of the distractor's depth as a multiple of the person's.
    """

    probability: float = 0.35
    front: float = 0.4
    shift: tuple[float, float] = (0.25, 0.7)
    depth_front: tuple[float, float] = (0.75, 0.95)
    depth_behind: tuple[float, float] = (1.1, 1.8)

    def __post_init__(self) -> None:
        if not (0.0 <= self.probability <= 1.0 and 0.0 <= self.front <= 1.0
                and 0.0 <= self.shift[0] <= self.shift[1] and 0.0 < self.depth_front[0] <= self.depth_front[1] < 1.0
                and 1.0 < self.depth_behind[0] <= self.depth_behind[1]):
            raise ConfigError(f"Distractors out of range: {self}")

    def params(self) -> dict:
        return {"probability": self.probability, "front": self.front, "shift": list(self.shift),
                "depth_front": list(self.depth_front), "depth_behind": list(self.depth_behind)}

    def draw(self, rng: np.random.Generator) -> tuple[bool, float, float, int]:
        """``(present, depth factor, sideways shift in crop widths, pose seed)``; always six draws."""
        u = rng.random(4)
        seed = int(rng.integers(0, 2**31 - 1))
        front = u[1] < self.front
        lo, hi = self.depth_front if front else self.depth_behind
        side = 1.0 if u[2] < 0.5 else -1.0
        return bool(u[0] < self.probability), float(lo + u[3] * (hi - lo)), side * float(rng.uniform(*self.shift)), seed

    def apply(self, body, renderer, translation: torch.Tensor, K: torch.Tensor, image: np.ndarray, mask: np.ndarray,
              depth: np.ndarray, parts: np.ndarray, rngs: Sequence[np.random.Generator], setting: str,
              res: int, elevation: Sequence[float] | None = None,
              roll: Sequence[float] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Render the drawn distractors over ``image`` and composite them by depth. Returns new
        ``image, mask, depth, parts`` of the target person (hidden pixels removed). ``elevation``
        and ``roll`` (degrees per sample) are the samples' camera, which turns the distractors as
        it turned the person (:func:`~maskpose.synth.targets.elevate`)."""
        draws = [self.draw(rng) for rng in rngs]
        chosen = [i for i, d in enumerate(draws) if d[0]]
        if not chosen:
            return image, mask, depth, parts
        pose, phen = PoseSampler.one_per_seed([draws[i][3] for i in chosen]).sample(len(chosen))
        if elevation is not None or roll is not None:
            pose = elevate(pose, [0.0 if elevation is None else elevation[i] for i in chosen],
                           None if roll is None else [roll[i] for i in chosen])
        device = translation.device
        with torch.no_grad():
            posed = body.posed_vertices(pose.to(device), phen.to(device))  # they are only drawn
            t = translation[chosen].clone().float()
            factor = torch.tensor([draws[i][1] for i in chosen], dtype=torch.float32, device=device)
            t = t * factor[:, None]
            k = K[chosen].float()
            shift_px = torch.tensor([draws[i][2] * res for i in chosen], dtype=torch.float32, device=device)
            t[:, 0] = t[:, 0] + shift_px * t[:, 2] / k[:, 0, 0]
            vertices = posed + t[:, None]
            # A close camera with a person in front can put part of that person behind the lens:
            # such a distractor is left out (the camera would not see it whole either).
            seen = vertices[..., 2].amin(1) > NEAR_PLANE
            if not bool(seen.all()):
                chosen = [i for i, keep in zip(chosen, seen.tolist(), strict=True) if keep]
                vertices, k = vertices[seen], k[seen]
                if not chosen:
                    return image, mask, depth, parts
        # Only the distractors' own pixels are composited (noise off: nothing mixes in the
        # background), so they are rendered over black rather than over a copy of the images.
        rendered = renderer.render(vertices, k, [rngs[i] for i in chosen], setting=setting, size=res,
                                   backgrounds=np.zeros((len(chosen), res, res, 3), np.float32), noise=False)
        image, mask, depth, parts = image.copy(), mask.copy(), depth.copy(), parts.copy()
        for j, i in enumerate(chosen):
            theirs = rendered.mask[j].astype(bool)
            ours = mask[i].astype(bool)
            visible = theirs & (~ours | (rendered.depth[j] < depth[i]))
            image[i][visible] = rendered.image[j][visible]
            hidden = visible & ours
            mask[i][hidden], depth[i][hidden], parts[i][hidden] = 0, 0, 0
        return image, mask, depth, parts


#: The realistic domain's distractors.
REALISTIC_DISTRACTORS = Distractors()


__all__ = ["BACKGROUND_STREAM", "DISTRACTOR_STREAM", "REALISTIC_DISTRACTORS", "REALISTIC_FILL", "REALISTIC_OCCLUDERS",
           "REALISTIC_OFFSET", "REALISTIC_VIEW", "Distractors", "MixedPoses", "photo_backgrounds",
           "realistic_background", "realistic_pose_source", "realistic_transform", "studio_background"]

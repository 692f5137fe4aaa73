"""The ``uap-4/8/16`` domains: studio images plus a stored universal adversarial perturbation.

A universal adversarial perturbation (UAP) is one image-sized additive perturbation ``δ``
(``(H, W, 3)``, the same for every image) with ``‖δ‖∞ ≤ ε/255`` in image units (images in
[0, 1]). This module holds what synthesis needs of it: the bound (:func:`eps_bound`), the
random-sign baseline (:func:`random_sign_perturbation`), loading a stored ``δ`` (:func:`load_uap`),
the domains and their splits (:func:`generate_uap_splits`). Finding ``δ`` against a source model
(the attack) lives in :mod:`maskpose.train.attack` (``compute_uap``, saved by ``build_uap_domain``).

Units: the ``.npy`` file stores ``δ`` in image units (float32, ``|δ| ≤ ε/255`` exactly, the bound
rounded toward zero in float32). The domain transforms follow the hook of
:mod:`maskpose.synth.domains`: they take the perturbation in *pixel* units (multiply the file by
255, :func:`load_uap` ``(pixels=True)``), add it to the uint8 image, round and clip to [0, 255].

Domains ``uap-4``, ``uap-8``, ``uap-16`` are registered when this module is imported
(``needs_perturbation=True``: pass ``perturbation=load_uap(npy, pixels=True)`` to
:func:`maskpose.synth.generator.generate`, or use :func:`generate_uap_splits`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from maskpose.errors import ConfigError
from maskpose.synth.domains import DOMAINS, Domain, register_domain
from maskpose.synth.generator import generate_domain_splits

log = logging.getLogger(__name__)

#: The perturbation budgets of the UAP domains, in 1/255 (the paper's ε = 4, 8, 16).
UAP_EPSILONS = (4, 8, 16)


def eps_bound(eps: float) -> np.float32:
    """``ε/255`` as the largest float32 that does not exceed it (so a float32 ``δ`` clipped to it
    satisfies ``|δ| ≤ ε/255`` exactly, also when compared in float64)."""
    bound = np.float32(eps / 255.0)
    if float(bound) > eps / 255.0:
        bound = np.nextafter(bound, np.float32(0.0))
    return bound


def random_sign_perturbation(shape: tuple[int, int, int], eps: float, seed: int = 0) -> np.ndarray:
    """A random ±ε/255 sign pattern ``(H, W, 3)`` (the baseline a UAP must beat)."""
    rng = np.random.default_rng(seed)  # the plain seed (not seed_sequence) keeps stored baselines reproducible
    return (rng.choice([-1.0, 1.0], size=shape) * eps_bound(eps)).astype(np.float32)


def load_uap(path, pixels: bool = False) -> np.ndarray:
    """The stored perturbation ``(H, W, 3)`` in image units, or in pixel units (×255) for a domain."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: perturbation file does not exist")
    delta = np.load(path, allow_pickle=False).astype(np.float32)
    if delta.ndim != 3 or delta.shape[-1] != 3:
        raise ConfigError(f"{path}: a perturbation must have shape (H, W, 3), got {delta.shape}")
    return delta * 255.0 if pixels else delta


# ---------------------------------------------------------------------- the domains
def _uap_transform(eps: float):
    def transform(images, masks=None, rng=None, perturbation=None):
        if perturbation is None:
            raise ConfigError(f"domain uap-{eps:g} needs a perturbation array (pixel units)")
        delta = np.asarray(perturbation, dtype=np.float32)
        if delta.ndim != 3 or delta.shape[-1] != 3:
            raise ConfigError(f"a UAP must have shape (H, W, 3), got {delta.shape}")
        if float(np.abs(delta).max()) > eps + 1e-3:
            raise ConfigError(f"perturbation exceeds the uap-{eps:g} budget: max |δ| = {np.abs(delta).max():.3f} "
                              f"> {eps} (pixel units; the .npy stores image units, see load_uap(pixels=True))")
        height, width = images.shape[1:3]
        if delta.shape[:2] != (height, width):  # computed at the model resolution: resample (keeps the bound)
            delta = np.clip(cv2.resize(delta, (width, height), interpolation=cv2.INTER_LINEAR), -eps, eps)
        return np.clip(np.rint(images.astype(np.float32) + delta[None]), 0, 255).astype(np.uint8)

    transform.__name__ = f"uap_{eps:g}"
    return transform


def uap_domain_name(eps: float) -> str:
    return f"uap-{eps:g}"


def register_uap_domains(epsilons=UAP_EPSILONS) -> None:
    """Register ``uap-<ε>`` for each budget (idempotent)."""
    for eps in epsilons:
        name = uap_domain_name(eps)
        if name in DOMAINS:
            continue
        register_domain(Domain(
            name, f"studio images plus a universal adversarial perturbation against the source model, "
                  f"L-inf {eps:g}/255 (clipped to [0, 255])",
            transform=_uap_transform(float(eps)), needs_perturbation=True, params={"eps": eps},
        ))


def generate_uap_splits(root, eps: float, npy, n_train: int, n_test: int, res: int, seed: int = 0,
                        **kwargs) -> dict[str, Path]:
    """:func:`maskpose.synth.generator.generate_domain_splits` for ``uap-<eps>`` with the stored perturbation."""
    register_uap_domains((eps,))
    return generate_domain_splits(root, uap_domain_name(eps), n_train, n_test, res, seed,
                                  perturbation=load_uap(npy, pixels=True), **kwargs)


register_uap_domains()

__all__ = ["UAP_EPSILONS", "eps_bound", "generate_uap_splits", "load_uap", "random_sign_perturbation",
           "register_uap_domains", "uap_domain_name"]

"""Geodesic weights G of Mask-as-Supervision (docs/design.md §1.2).

``G`` weighs each pixel of the mask loss by its geodesic distance, *inside the mask*, from the mask
centroid, so that pixels far along the limbs (hands, feet, head) count more than the torso. The
distance is computed by fast marching (scikit-fmm): ``skfmm.distance`` on a level-set function
that is 0 at the source pixel and 1 elsewhere, with every pixel outside the mask masked out so
the front cannot cut across the background. When the centroid falls outside the mask (a U, a ring,
a person with spread legs) the front starts from the foreground pixel nearest to it.

``G`` depends only on the ground-truth mask, so it is a dataset-time computation: the dataset
writer stores it once per sample and training never recomputes it. The numpy functions are the
reference; :func:`geodesic_weights_torch` is a batched convenience wrapper (CPU round trip).

Three weightings (``mode``); ``D`` is the geodesic distance, ``D_max`` its maximum over the mask:

* ``"paper"`` — ``G = D / D_max`` inside the mask: 0 at the centroid, 1 at the farthest extremity.
* ``"offset"`` — ``G = 1 + D / D_max`` inside the mask: every foreground pixel keeps at least the
  weight of a plain L2 loss and the extremities count double (this mode was called
  ``"released"`` before the released code was read; the name now means the code's form).
* ``"released"`` — the released code's form (``compute_geodesic_dis`` in its
  ``human_utils/common/utility/geodesic.py``, parameters ``[2, 1, 3, 20]`` in its configs):

  ``G = [p ∈ M] (exp(a · D / D_max) + b) + c · D_bg / max D_bg + d``, ``(a, b, c, d) = (2, 1, 3, 20)``

  with ``D_bg`` the Euclidean distance to the nearest mask pixel (0 on the mask; an exact
  distance transform, ``scipy.ndimage.distance_transform_edt``, where the code runs fast marching
  from the mask pixels). Mask pixels weigh 22 (the source) to ``e² + 21 ≈ 28.4`` (the farthest),
  background pixels 20 (next to the mask) to 23 (the farthest). This follows the specification;
  the code itself also adds ``exp(0) + 1 = 2`` on the background (it reads the fast-marching
  array's masked entries as 0), which the specification leaves out. ``outside`` is not used.
  The released code multiplies the squared error by ``G``; :func:`~maskpose.masks.mask_supervision_loss`
  squares ``G ⊙ (M − M_skel)``, so pass ``G.sqrt()`` there to weigh as the code does.

Outside the mask the geodesic distance is undefined; in ``"paper"`` and ``"offset"`` modes those
pixels get the constant ``outside`` (default 1.0: a background error costs as much as an error at
the farthest extremity in ``"paper"`` mode, as much as an unweighted pixel in ``"offset"`` mode).
Without a positive weight outside, the skeleton could leave the mask at no cost. Foreground
pixels that the front cannot reach (other connected components) are treated as the farthest:
``D / D_max = 1``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import skfmm
import torch
from scipy.ndimage import distance_transform_edt
from torch import nn

from maskpose.errors import MaskposeError, check_shape
from maskpose.typing import GEODESIC_MODES, GeodesicMode

#: ``(a, b, c, d)`` of the released form ``[p ∈ M](exp(a D/D_max) + b) + c D_bg/max D_bg + d``
#: (the released configs' ``geodesic_param_list``).
RELEASED_GEODESIC_PARAMS: tuple[float, float, float, float] = (2.0, 1.0, 3.0, 20.0)


def _check_mode_args(mode, outside, released_params) -> tuple[float, float, float, float]:
    if mode not in GEODESIC_MODES:
        raise MaskposeError(f"mode must be one of {GEODESIC_MODES}, got {mode!r}")
    try:
        valid_outside = math.isfinite(float(outside)) and float(outside) >= 0
    except (TypeError, ValueError):
        valid_outside = False
    if not valid_outside:
        raise MaskposeError(f"outside must be a finite weight >= 0, got {outside!r}")
    try:
        params = tuple(float(v) for v in released_params)
    except (TypeError, ValueError):
        params = ()
    if len(params) != 4 or not all(math.isfinite(v) for v in params):
        raise MaskposeError(f"released_params must be 4 finite numbers (a, b, c, d), got {released_params!r}")
    return params  # type: ignore[return-value]


def _as_binary_mask(mask, name: str = "mask") -> np.ndarray:
    if isinstance(mask, torch.Tensor):
        mask = mask.detach().cpu().numpy()
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise MaskposeError(f"{name} must be a 2D (H, W) array, got shape {mask.shape}")
    if mask.dtype != bool:
        if not np.isfinite(mask).all():
            raise MaskposeError(f"{name} contains NaN or infinite values")
        mask = mask > 0.5
    if not mask.any():
        raise MaskposeError(f"{name} has no foreground pixel: geodesic weights need a person in the mask")
    return mask


def mask_source(mask) -> tuple[int, int]:
    r"""Start pixel ``(row, col)`` of the fast marching: the centroid, or the nearest mask pixel.

    .. math::

        s = \operatorname{round}(\bar p) \text{ if } M(\operatorname{round}(\bar p)) = 1, \text{ else }
        \arg\min_{p \in M} \lVert p - \bar p \rVert, \qquad \bar p = \frac{1}{|M|} \sum_{p \in M} p

    Args:
        mask: bool or float (foreground > 0.5) array or tensor.

    Shape:
        - mask: :math:`(H, W)`.
        - output: ``(row, col)`` ints.

    Example:
        >>> m = np.zeros((3, 5), bool); m[1, :] = True
        >>> mask_source(m)
        (1, 2)
    """
    mask = _as_binary_mask(mask)
    rows, cols = np.nonzero(mask)
    cy, cx = rows.mean(), cols.mean()
    r, c = int(round(cy)), int(round(cx))
    if mask[r, c]:
        return r, c
    # Centroid in the background: start from the foreground pixel closest to it (Euclidean).
    k = int(np.argmin((rows - cy) ** 2 + (cols - cx) ** 2))
    return int(rows[k]), int(cols[k])


def geodesic_distance(mask, source: tuple[int, int] | None = None) -> np.ndarray:
    r"""Geodesic distance inside the mask from ``source`` (default :func:`mask_source`), in pixels.

    .. math::

        D(p) = \min_{\gamma \subset M,\ \gamma(0) = s,\ \gamma(1) = p} \operatorname{length}(\gamma)

    solved by fast marching (``skfmm.distance``) on the mask.

    Args:
        mask: bool or float (foreground > 0.5) array or tensor.
        source: ``(row, col)`` of the start pixel; must be a foreground pixel.

    Shape:
        - mask: :math:`(H, W)`.
        - output: :math:`(H, W)` float64: the distance on foreground pixels reached by the front,
          ``inf`` on the background and on foreground pixels not connected to the source.

    Example:
        >>> m = np.zeros((3, 5), bool); m[1, :] = True
        >>> geodesic_distance(m)[1]
        array([2., 1., 0., 1., 2.])
    """
    mask = _as_binary_mask(mask)
    if source is None:
        source = mask_source(mask)
    r, c = (int(v) for v in source)
    if not (0 <= r < mask.shape[0] and 0 <= c < mask.shape[1]) or not mask[r, c]:
        raise MaskposeError(f"source {(r, c)} is not a foreground pixel of the mask")
    phi = np.ones(mask.shape, dtype=np.float64)
    phi[r, c] = 0.0  # zero level set exactly at the source pixel: D(source) = 0
    out = np.full(mask.shape, np.inf)
    out[r, c] = 0.0
    try:
        dist = skfmm.distance(np.ma.MaskedArray(phi, ~mask), dx=1.0)
    except ValueError:
        # scikit-fmm refuses a domain with no pixel to march into (a one-pixel component).
        return out
    reached = ~np.ma.getmaskarray(dist) & mask
    out[reached] = np.asarray(dist.data)[reached]
    return out


def geodesic_weights(
    mask,
    mode: GeodesicMode = "paper",
    outside: float = 1.0,
    source: tuple[int, int] | None = None,
    released_params: Sequence[float] = RELEASED_GEODESIC_PARAMS,
) -> np.ndarray:
    r"""Pixel weights ``G`` from a ground-truth mask (see the module docstring for the modes).

    .. math::

        G_{paper}(p) = \begin{cases} D(p) / D_{max} \ (+1 \text{ offset}) & p \in M \\
        \text{outside} & p \notin M \end{cases}, \qquad
        G_{released}(p) = [p \in M] \big(e^{a D(p) / D_{max}} + b\big)
            + c \frac{D_{bg}(p)}{\max D_{bg}} + d

    Args:
        mask: ``(H, W)`` bool or float (foreground > 0.5) array or tensor.
        mode: ``"paper"`` (``D / D_max``), ``"offset"`` (``1 + D / D_max``) or ``"released"``.
        outside: weight of background pixels (``"paper"``, ``"offset"``; unused by ``"released"``).
        source: optional start pixel ``(row, col)``; default the centroid rule.
        released_params: ``(a, b, c, d)`` of the ``"released"`` form, default ``(2, 1, 3, 20)``.

    Shape:
        - mask: :math:`(H, W)`.
        - output: :math:`(H, W)` float32 weights, finite everywhere.

    Example:
        >>> m = np.zeros((3, 5), bool); m[1, :] = True
        >>> geodesic_weights(m)[1]
        array([1. , 0.5, 0. , 0.5, 1. ], dtype=float32)
        >>> geodesic_weights(m, "released")[:, 2]  # the source column: e^0 + 1 + 20 inside, 20 + 3 outside
        array([23., 22., 23.], dtype=float32)

    Raises:
        MaskposeError: the mask is not 2D, has no foreground, or holds NaN; a bad mode, outside or
        released_params.
    """
    a, b, c, d = _check_mode_args(mode, outside, released_params)
    mask = _as_binary_mask(mask)
    dist = geodesic_distance(mask, source)
    reached = np.isfinite(dist)
    d_max = dist[reached].max()
    # A one-pixel mask has D_max = 0: avoid 0/0, every reached pixel then gets the minimum weight.
    norm = np.where(reached, dist, 0.0) / max(d_max, 1e-12)
    norm[mask & ~reached] = 1.0
    if mode == "released":
        # Distance of each background pixel to the nearest mask pixel (0 on the mask); a mask
        # that fills the image has no background: the term is then d everywhere.
        d_bg = distance_transform_edt(~mask)
        weights = np.where(mask, np.exp(a * norm) + b, 0.0) + c * d_bg / max(float(d_bg.max()), 1e-12) + d
        return weights.astype(np.float32)
    weights = norm + (1.0 if mode == "offset" else 0.0)
    weights[~mask] = outside
    return weights.astype(np.float32)


def geodesic_weights_torch(
    masks: torch.Tensor,
    mode: GeodesicMode = "paper",
    outside: float = 1.0,
    released_params: Sequence[float] = RELEASED_GEODESIC_PARAMS,
) -> torch.Tensor:
    r"""Batched :func:`geodesic_weights` for tensors (computed on the CPU, returned on ``masks.device``).

    .. math::

        G_b = \operatorname{geodesic\_weights}(M_b)

    Args:
        masks: masks (foreground > 0.5).
        mode, outside, released_params: as in :func:`geodesic_weights`.

    Shape:
        - masks: :math:`(B, 1, H, W)`.
        - output: :math:`(B, 1, H, W)` weights with the dtype of ``masks`` (float32 for bool masks).

    Example:
        >>> m = torch.zeros(1, 1, 3, 5); m[..., 1, :] = 1
        >>> geodesic_weights_torch(m)[0, 0, 1]
        tensor([1.0000, 0.5000, 0.0000, 0.5000, 1.0000])
    """
    if not isinstance(masks, torch.Tensor):
        raise MaskposeError(f"masks must be a torch.Tensor of shape (B, 1, H, W), got {type(masks).__name__}")
    check_shape("masks", masks, (None, 1, None, None))
    released_params = _check_mode_args(mode, outside, released_params)
    dtype = masks.dtype if masks.is_floating_point() else torch.float32
    if masks.shape[0] == 0:  # an empty batch has empty weights
        return torch.zeros(masks.shape, dtype=dtype, device=masks.device)
    host = masks.detach().cpu()
    if host.dtype in (torch.float16, torch.bfloat16):  # numpy has no bfloat16: threshold in float32
        host = host.float()
    host = host.numpy()
    out = []
    for i in range(host.shape[0]):
        try:
            out.append(geodesic_weights(host[i, 0], mode=mode, outside=outside, released_params=released_params))
        except MaskposeError as err:
            raise MaskposeError(f"masks[{i}]: {err}") from None
    return torch.from_numpy(np.stack(out)[:, None]).to(device=masks.device, dtype=dtype)


class GeodesicWeights(nn.Module):
    r"""Module form of :func:`geodesic_weights_torch`.

    .. math::

        G_{paper}(p) = D(p) / D_{max} \ (+1 \text{ offset}) \text{ on the mask}, \ \text{outside elsewhere};
        \quad G_{released}(p) = [p \in M] \big(e^{a D / D_{max}} + b\big) + c \frac{D_{bg}}{\max D_{bg}} + d

    Not differentiable (the weights are a function of the ground truth only).

    Args:
        mode, outside, released_params: as in :func:`geodesic_weights`.

    Shape:
        - masks: :math:`(B, 1, H, W)`.
        - output: :math:`(B, 1, H, W)`.

    Example:
        >>> m = torch.zeros(1, 1, 3, 5); m[..., 1, :] = 1
        >>> GeodesicWeights("offset")(m)[0, 0, 1]
        tensor([2.0000, 1.5000, 1.0000, 1.5000, 2.0000])
        >>> GeodesicWeights("released")(m)[0, 0, 1]  # e^(2 D / D_max) + 1 + 20 on the mask
        tensor([28.3891, 23.7183, 22.0000, 23.7183, 28.3891])
    """

    def __init__(
        self,
        mode: GeodesicMode = "paper",
        outside: float = 1.0,
        released_params: Sequence[float] = RELEASED_GEODESIC_PARAMS,
    ) -> None:
        super().__init__()
        self.released_params = _check_mode_args(mode, outside, released_params)
        self.mode, self.outside = mode, float(outside)

    @torch.no_grad()
    def forward(self, masks: torch.Tensor) -> torch.Tensor:
        return geodesic_weights_torch(masks, self.mode, self.outside, self.released_params)

    def extra_repr(self) -> str:
        text = f"mode={self.mode!r}, outside={self.outside}"
        if self.mode == "released":
            text += f", released_params={self.released_params}"
        return text

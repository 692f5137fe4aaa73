"""Skeleton masks of Mask-as-Supervision (docs/design.md §1.2): soft lines along the projected bones.

Each bone ``b`` between projected joints ``x_i, x_j`` is drawn as ``B_b(p) = exp(-d_b(p)² / σ_b²)``
with ``d_b(p)`` the distance from pixel centre ``p`` to the segment. Two ways to combine bones:

* ``reduce="sum"`` — the paper: ``M_skel = Σ_b B_b``. Values exceed 1 where bones meet or cross.
* ``reduce="max"`` — the released code: the union ``max_b B_b``, in [0, 1]. Together with its 8
  extension lines and thinner arms (:func:`released_style`) this is the released skeleton mask.

The released code (``Charrrrrlie/X-as-Supervision``, ``modules/util.py`` and ``modules/model.py``)
draws ``exp(-d² / 0.003)`` with ``d`` in [-1, 1] image coordinates on its 256 px mask: σ = 6.98 px
there, :data:`RELEASED_SIGMA_64` ≈ 1.75 px at a 64 px heatmap (:func:`released_sigma` for other
sizes). The arm lines (upper and lower arms) get twice the exponent, i.e. σ/√2
(:data:`RELEASED_ARM_WIDTH`). Its 25 lines are its 17 bones over 18 landmarks plus 8 extension
lines: spine ("torso", 7) to both hips and both shoulders, pelvis to both knees, each hip to the
shoulder on its side (:data:`RELEASED_EXTENSION_BONES`, the same indices in H36M-17). Its 18th
landmark is a thorax between the shoulders, with H36M's joint 8 as a neck above it; H36M-17 has
no separate neck, so its thorax → neck → nose chain is one line here and :func:`released_style`
draws 16 + 8 = 24 lines, the same mask up to the bend at the neck.

Joints may lie outside the image (a prediction early in training often does): the lines are drawn
clipped to the image, values stay finite. Non-finite joints raise :class:`MaskposeError`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from maskpose.conventions import H36M_ARM_BONES, H36M_BONES
from maskpose.errors import MaskposeError, check_tensor
from maskpose.render.stick import segment_squared_distance_map
from maskpose.typing import SKELETON_REDUCES, SkeletonReduce

#: The released code's 8 extension lines (``cal_links`` in its ``modules/model.py``), whose joint
#: order is H36M-17's: spine (7, its "torso") to r_hip, l_hip, l_shoulder and r_shoulder; pelvis to
#: r_knee and l_knee; r_hip to r_shoulder and l_hip to l_shoulder (the torso's sides). The
#: specification's "each hip to the opposite shoulder" does not match the code's indices (1, 14) and
#: (4, 11); the code is followed.
RELEASED_EXTENSION_BONES: tuple[tuple[int, int], ...] = (
    (7, 1), (7, 4), (7, 11), (7, 14), (0, 2), (0, 5), (1, 14), (4, 11),
)

#: Width multiplier of the arm bones in the released code: twice the exponent, so σ/√2.
RELEASED_ARM_WIDTH = 1.0 / math.sqrt(2.0)

#: The released code's line exponent: ``exp(-d² / 0.003)`` with ``d`` in [-1, 1] image coordinates.
RELEASED_LINE_EXPONENT = 3e-3


def released_sigma(size: int) -> float:
    r"""The released code's line width σ in pixels on a ``size``-pixel mask.

    .. math::

        \sigma = \sqrt{0.003} \cdot \frac{\text{size} - 1}{2}

    (``exp(-d²/0.003)`` in [-1, 1] coordinates, which span ``size - 1`` pixels.)

    Example:
        >>> round(released_sigma(256), 3)
        6.983
    """
    if int(size) < 2:
        raise MaskposeError(f"size must be at least 2 pixels, got {size}")
    return math.sqrt(RELEASED_LINE_EXPONENT) * (int(size) - 1) / 2


#: The released line width expressed at a 64 px heatmap: its 256 px mask's σ, divided by 4
#: (≈ 1.75 px). The default ``sigma`` of :func:`skeleton_mask` stays 2.0; pass this to match.
RELEASED_SIGMA_64 = released_sigma(256) / 4


def released_style(
    bones: Sequence[tuple[int, int]] = H36M_BONES,
    arm_bones: Sequence[int] = H36M_ARM_BONES,
    extra_bones: Sequence[tuple[int, int]] = RELEASED_EXTENSION_BONES,
    arm_width: float = RELEASED_ARM_WIDTH,
) -> tuple[tuple[tuple[int, int], ...], torch.Tensor]:
    r"""Lines and per-line width multipliers of the released-code skeleton mask.

    .. math::

        M_{skel} = \max_{b \in \text{bones} \cup \text{extra}} \exp\big(-d_b^2 / (w_b \sigma)^2\big),
        \qquad w_b = \text{arm\_width} \ (b \in \text{arm\_bones}), \ 1 \text{ otherwise}

    Args:
        bones: the skeleton's ``K`` bones (default the 16 H36M-17 bones).
        arm_bones: indices into ``bones`` drawn thinner (default upper and lower arms).
        extra_bones: ``E`` extension lines (default :data:`RELEASED_EXTENSION_BONES`).
        arm_width: width multiplier of the arm lines (default ``1/√2``: twice the exponent).

    Returns:
        ``(bones + extra_bones, widths)`` with ``widths`` a ``(K + E,)`` tensor: ``arm_width`` on
        ``arm_bones``, 1 elsewhere. Use with ``reduce="max"``.

    Example:
        >>> lines, widths = released_style()
        >>> len(lines), lines[16:18], [round(float(w), 4) for w in widths[10:13]]
        (24, ((7, 1), (7, 4)), [1.0, 0.7071, 0.7071])
    """
    all_bones = tuple(tuple(b) for b in bones) + tuple(tuple(b) for b in extra_bones)
    widths = torch.ones(len(all_bones))
    for i in arm_bones:
        widths[i] = arm_width
    return all_bones, widths  # type: ignore[return-value]


def _check_bones(bones: Sequence[tuple[int, int]], num_joints: int) -> tuple[tuple[int, int], ...]:
    bones = tuple((int(a), int(b)) for a, b in bones)
    if not bones:
        raise MaskposeError("bones must name at least one (parent, child) pair")
    bad = [bone for bone in bones if not all(0 <= j < num_joints for j in bone)]
    if bad:
        raise MaskposeError(f"bones {bad} index joints outside 0..{num_joints - 1} of joints_2d")
    return bones


def check_joints_2d(joints_2d: torch.Tensor, name: str = "joints_2d") -> None:
    """Raise ``MaskposeError`` unless ``joints_2d`` is a finite ``(B, J, 2)`` float tensor."""
    check_tensor(name, joints_2d, (None, None, 2), floating=True, finite="coordinates")


def skeleton_mask(
    joints_2d: torch.Tensor,
    bones: Sequence[tuple[int, int]] = H36M_BONES,
    sigma: float = 2.0,
    size: tuple[int, int] = (64, 64),
    reduce: SkeletonReduce = "sum",
    limb_widths: torch.Tensor | Sequence[float] | None = None,
) -> torch.Tensor:
    r"""Render the skeleton mask of 2D joints: soft lines along the bones.

    .. math::

        B_b(p) = \exp\big(-d_b(p)^2 / \sigma_b^2\big), \qquad
        M_{skel} = \sum_b B_b \ \text{(paper)} \quad \text{or} \quad \max_b B_b \ \text{(released)}

    Args:
        joints_2d: ``(B, J, 2)`` joint positions in pixels (x, y), pixel (0, 0) centred at (0, 0).
        bones: ``K`` (parent, child) joint index pairs.
        sigma: line width σ in pixels: a pixel at distance σ from a bone gets ``exp(-1)``.
        size: ``(H, W)`` of the mask.
        reduce: ``"sum"`` (paper) or ``"max"`` (released code), over bones.
        limb_widths: optional ``(K,)`` multipliers of σ per bone (released code: arms ``1/√2``).

    Shape:
        - joints_2d: :math:`(B, J, 2)`.
        - output: :math:`(B, 1, H, W)`, differentiable in ``joints_2d``; in [0, 1] for ``"max"``,
          in [0, K] for ``"sum"``.

    Example:
        >>> joints = torch.tensor([[[0.0, 1.0], [2.0, 1.0]]])
        >>> skeleton_mask(joints, bones=[(0, 1)], sigma=1.0, size=(3, 3))[0, 0].round(decimals=3)
        tensor([[0.3680, 0.3680, 0.3680],
                [1.0000, 1.0000, 1.0000],
                [0.3680, 0.3680, 0.3680]])
    """
    check_joints_2d(joints_2d)
    bones = _check_bones(bones, joints_2d.shape[1])
    if reduce not in SKELETON_REDUCES:
        raise MaskposeError(f"reduce must be one of {SKELETON_REDUCES}, got {reduce!r}")
    if not float(sigma) > 0:
        raise MaskposeError(f"sigma must be a positive number of pixels, got {sigma}")
    height, width = (int(s) for s in size)
    if height < 1 or width < 1:
        raise MaskposeError(f"size must be positive (H, W), got {tuple(size)}")

    # Half precision (float16, bfloat16) is computed in float32 and cast back: the distance map's
    # zero-length-bone guard and the exponent's clamp underflow or overflow in 16 bits (NaN values
    # for coinciding joints, NaN gradients).
    out_dtype = joints_2d.dtype
    if out_dtype in (torch.float16, torch.bfloat16):
        joints_2d = joints_2d.float()
    squared = segment_squared_distance_map(joints_2d, bones, (height, width))  # (B, K, H, W)
    scale = torch.full((len(bones),), float(sigma), device=squared.device, dtype=squared.dtype)
    if limb_widths is not None:
        widths = torch.as_tensor(limb_widths, device=squared.device, dtype=squared.dtype)
        if widths.shape != (len(bones),):
            raise MaskposeError(
                f"limb_widths must have shape ({len(bones)},), one per bone, got {tuple(widths.shape)}"
            )
        if not (widths > 0).all():
            raise MaskposeError("limb_widths must all be positive")
        scale = scale * widths
    # Exponents below -30 (lines < 1e-13) are clamped: torch's exp is ~8x slower on inputs that
    # underflow, and on a (B, K, H, W) map most pixels are far from most bones.
    lines = torch.exp((squared * (-1.0 / scale.square())[None, :, None, None]).clamp_min(-30.0))
    combined = lines.sum(dim=1, keepdim=True) if reduce == "sum" else lines.amax(dim=1, keepdim=True)
    return combined if combined.dtype == out_dtype else combined.to(out_dtype)


class SkeletonMask(nn.Module):
    r"""Module form of :func:`skeleton_mask`.

    .. math::

        M_{skel} = \sum_b \exp\big(-d_b(p)^2 / \sigma_b^2\big) \ \text{(paper)} \quad \text{or} \quad
        \max_b \exp\big(-d_b(p)^2 / \sigma_b^2\big) \ \text{(released)}

    ``style="paper"`` sums the bones; ``style="released"`` takes the max, draws the arm bones at
    ``σ/√2`` and adds the 8 extension lines (:func:`released_style`; pass
    ``sigma=RELEASED_SIGMA_64`` at 64 px for the released width); bones after the 16 of
    ``H36M_BONES`` (lines to further landmarks) follow at width 1. ``style="custom"`` uses
    ``bones``, ``reduce`` and ``limb_widths`` as given.

    Args:
        size, sigma, bones: as in :func:`skeleton_mask`.
        style: ``"paper"``, ``"released"`` or ``"custom"``.
        reduce, limb_widths: with ``style="custom"``, as in :func:`skeleton_mask`.

    Shape:
        - joints_2d: :math:`(B, J, 2)`.
        - output: :math:`(B, 1, H, W)`.

    Example:
        >>> joints = torch.tensor([[[0.0, 1.0], [2.0, 1.0]]])
        >>> SkeletonMask((3, 3), sigma=1.0, bones=[(0, 1)])(joints)[0, 0, 1]
        tensor([1., 1., 1.])
    """

    def __init__(
        self,
        size: tuple[int, int] = (64, 64),
        sigma: float = 2.0,
        bones: Sequence[tuple[int, int]] = H36M_BONES,
        style: str = "paper",
        reduce: SkeletonReduce = "sum",
        limb_widths: torch.Tensor | Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        if style == "paper":
            self.bones, self.reduce, widths = tuple(bones), "sum", None
        elif style == "released":
            bones = tuple(tuple(b) for b in bones)
            if bones[:len(H36M_BONES)] != H36M_BONES:
                raise MaskposeError("style='released' is defined for H36M_BONES (optionally followed by lines to "
                                    "further landmarks); use style='custom'")
            lines, widths = released_style()
            extra = bones[len(H36M_BONES):]  # lines to landmarks beyond the 17 joints, at width 1
            self.bones = lines + extra
            widths = torch.cat([widths, torch.ones(len(extra))])
            self.reduce = "max"
        elif style == "custom":
            self.bones, self.reduce = tuple(bones), reduce
            widths = None if limb_widths is None else torch.as_tensor(limb_widths, dtype=torch.float32)
        else:
            raise MaskposeError(f"style must be 'paper', 'released' or 'custom', got {style!r}")
        self.size = (int(size[0]), int(size[1]))
        self.sigma = float(sigma)
        self.style = style
        # A buffer so that .to(device) moves it along with the module.
        self.register_buffer("limb_widths", widths, persistent=False)

    def forward(self, joints_2d: torch.Tensor) -> torch.Tensor:
        return skeleton_mask(joints_2d, self.bones, self.sigma, self.size, self.reduce, self.limb_widths)

    def extra_repr(self) -> str:
        return f"size={self.size}, sigma={self.sigma}, style={self.style!r}, reduce={self.reduce!r}"

"""Skeleton masks of Mask-as-Supervision (docs/design.md §1.2): soft lines along the projected bones.

Each bone ``b`` between projected joints ``x_i, x_j`` is drawn as ``B_b(p) = exp(-d_b(p)² / σ_b²)``
with ``d_b(p)`` the distance from pixel centre ``p`` to the segment. Two ways to combine bones:

* ``reduce="sum"`` — the paper: ``M_skel = Σ_b B_b``. Values exceed 1 where bones meet or cross.
* ``reduce="max"`` — the released code: the union ``max_b B_b``, in [0, 1]. Together with thinner
  arm bones and extra torso lines (:func:`released_style`) this is our reading of the released
  implementation (its exact widths are not published in the paper; the defaults are documented
  below and are parameters).

Joints may lie outside the image (a prediction early in training often does): the lines are drawn
clipped to the image, values stay finite. Non-finite joints raise :class:`MaskposeError`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from maskpose.conventions import H36M_ARM_BONES, H36M_BONES
from maskpose.errors import MaskposeError, check_tensor
from maskpose.render.stick import segment_squared_distance_map
from maskpose.typing import SKELETON_REDUCES, SkeletonReduce

#: Extra torso lines of the released-code style, H36M-17 indices: hip-to-shoulder on each side,
#: hip-to-hip and shoulder-to-shoulder, so the torso reads as a filled quadrilateral outline.
H36M_TORSO_EXTRA_BONES: tuple[tuple[int, int], ...] = ((1, 14), (4, 11), (1, 4), (11, 14))

#: Width multiplier of the arm bones in the released-code style (thinner than legs and torso).
RELEASED_ARM_WIDTH = 0.5


def released_style(
    bones: Sequence[tuple[int, int]] = H36M_BONES,
    arm_bones: Sequence[int] = H36M_ARM_BONES,
    extra_bones: Sequence[tuple[int, int]] = H36M_TORSO_EXTRA_BONES,
    arm_width: float = RELEASED_ARM_WIDTH,
) -> tuple[tuple[tuple[int, int], ...], torch.Tensor]:
    """Bones and per-bone width multipliers of the released-code skeleton mask.

    Returns:
        ``(bones + extra_bones, widths)`` with ``widths`` a ``(K + E,)`` tensor: ``arm_width`` on
        ``arm_bones``, 1 elsewhere. Use with ``reduce="max"``.
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
        limb_widths: optional ``(K,)`` multipliers of σ per bone (released code: arms 0.5).

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

    ``style="paper"`` sums the bones; ``style="released"`` takes the max, draws arm bones thinner
    and adds torso lines (:func:`released_style`); ``style="custom"`` uses ``bones``, ``reduce`` and
    ``limb_widths`` as given.

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
            if tuple(bones) != H36M_BONES:
                raise MaskposeError("style='released' is defined for H36M_BONES; use style='custom'")
            self.bones, widths = released_style()
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

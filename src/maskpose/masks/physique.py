"""The physique network ψ of Mask-as-Supervision: skeleton mask -> physique (body) mask.

A small U-Net ending in a sigmoid (docs/design.md §1.2). ``skip_connections=False`` gives the plain
encoder-decoder of the released code. Sized for the CPU by default (~120 k parameters at
``base_channels=8``, ``depth=3``; a 32 x 64 x 64 training step takes ~0.15 s on 2 cores).
"""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from maskpose.errors import ConfigError, MaskposeError, check_shape


def _block(c_in: int, c_out: int) -> nn.Sequential:
    # GroupNorm rather than BatchNorm: the output does not depend on the batch or on train/eval mode,
    # which matters when ψ is trained jointly with a pose network on small batches.
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1),
        nn.GroupNorm(math.gcd(8, c_out), c_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1),
        nn.GroupNorm(math.gcd(8, c_out), c_out),
        nn.ReLU(inplace=True),
    )


class PhysiqueNet(nn.Module):
    """U-Net ψ: ``(B, 1, H, W)`` skeleton mask -> ``(B, 1, H, W)`` physique mask in (0, 1).

    Args:
        base_channels: channels of the first level; doubled at each level down.
        depth: number of 2x down-samplings. Any ``H, W`` works: inputs are padded to a multiple
            of ``2**depth`` and the output cropped back.
        skip_connections: U-Net skips (paper); ``False`` is the released code's encoder-decoder.
        in_channels: input channels (1 for a skeleton mask).
    """

    def __init__(
        self, base_channels: int = 8, depth: int = 3, skip_connections: bool = True, in_channels: int = 1
    ) -> None:
        super().__init__()
        if base_channels < 1 or depth < 0 or in_channels < 1:
            raise ConfigError(
                f"PhysiqueNet needs base_channels >= 1, depth >= 0, in_channels >= 1; got "
                f"{base_channels}, {depth}, {in_channels}"
            )
        self.depth = depth
        self.skip_connections = skip_connections
        self.config = dict(base_channels=base_channels, depth=depth, skip_connections=skip_connections,
                           in_channels=in_channels)
        chans = [base_channels * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList([_block(in_channels, chans[0])])
        self.down.extend(_block(chans[i - 1], chans[i]) for i in range(1, depth + 1))
        self.up = nn.ModuleList()
        for i in range(depth, 0, -1):
            c_in = chans[i] + (chans[i - 1] if skip_connections else 0)
            self.up.append(_block(c_in, chans[i - 1]))
        self.head = nn.Conv2d(chans[0], 1, 1)

    def forward_logits(self, skeleton: torch.Tensor) -> torch.Tensor:
        """Pre-sigmoid output ``(B, 1, H, W)`` (for a numerically stable BCE)."""
        check_shape("skeleton", skeleton, (None, self.config["in_channels"], None, None))
        height, width = skeleton.shape[-2:]
        mult = 2**self.depth
        pad_h, pad_w = (-height) % mult, (-width) % mult
        x = F.pad(skeleton, (0, pad_w, 0, pad_h)) if pad_h or pad_w else skeleton
        skips = []
        for i, block in enumerate(self.down):
            if i > 0:
                x = F.max_pool2d(x, 2)
            x = block(x)
            skips.append(x)
        for i, block in enumerate(self.up):
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
            if self.skip_connections:
                x = torch.cat([x, skips[self.depth - 1 - i]], dim=1)
            x = block(x)
        return self.head(x)[..., :height, :width]

    def forward(self, skeleton: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.forward_logits(skeleton))

    @classmethod
    def load(cls, path: str | Path, map_location: str | torch.device = "cpu", **config) -> PhysiqueNet:
        """Build a net with ``config`` and load a ``state_dict`` saved by ``train-physique``.

        Loading uses ``weights_only=True``: no pickled code runs.
        """
        path = Path(path)
        if not path.is_file():
            raise MaskposeError(f"PhysiqueNet weights not found: {path}")
        net = cls(**config)
        try:
            state = torch.load(path, map_location=map_location, weights_only=True)
            net.load_state_dict(state)
        except (RuntimeError, KeyError, TypeError, EOFError, pickle.UnpicklingError) as err:
            raise ConfigError(f"{path} is not a PhysiqueNet state_dict for config {net.config}: {err}") from None
        return net

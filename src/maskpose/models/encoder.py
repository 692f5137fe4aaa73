"""Image encoder: a small ResNet (GroupNorm, so results do not depend on how a batch is split
across processes) whose width, depth and input resolution are configurable up to a ResNet-50."""

from __future__ import annotations

import torch
from torch import nn


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, channels), channels)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.norm1 = _norm(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.norm2 = _norm(c_out)
        self.shortcut = (
            nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), _norm(c_out))
            if stride != 1 or c_in != c_out else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.norm1(self.conv1(x)))
        return torch.relu(self.norm2(self.conv2(y)) + self.shortcut(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, c_in: int, c_mid: int, stride: int):
        super().__init__()
        c_out = c_mid * self.expansion
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_mid, 1, bias=False), _norm(c_mid), nn.ReLU(inplace=True),
            nn.Conv2d(c_mid, c_mid, 3, stride, 1, bias=False), _norm(c_mid), nn.ReLU(inplace=True),
            nn.Conv2d(c_mid, c_out, 1, bias=False), _norm(c_out),
        )
        self.shortcut = (
            nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), _norm(c_out))
            if stride != 1 or c_in != c_out else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


class ResNetEncoder(nn.Module):
    """ResNet feature extractor.

    Args:
        width: channels of the first stage (64 for a standard ResNet).
        blocks: residual blocks per stage, e.g. ``(1, 1, 1, 1)`` (small, the CPU default),
            ``(3, 4, 6, 3)`` with ``bottleneck=True`` for a ResNet-50.
        bottleneck: bottleneck blocks (ResNet-50 style) instead of basic blocks.
        stem_pool: a 3x3 stride-2 max-pool after the stem (a standard ResNet's), so the stages
            work at a quarter of the pixels.

    Forward: ``(B, 3, H, W)`` images in [0, 1] -> ``(B, feature_dim)`` pooled features, the mean
    over the pixels of :meth:`feature_map` ``(B, feature_dim, h, w)``, whose ``h`` is
    ``ceil(H / stride)`` (``stride``: ``2 ** len(blocks)``, twice that with ``stem_pool``).
    """

    def __init__(self, width: int = 32, blocks: tuple[int, ...] = (1, 1, 1, 1), bottleneck: bool = False,
                 stem_pool: bool = False):
        super().__init__()
        block = Bottleneck if bottleneck else BasicBlock
        self.stem = nn.Sequential(
            nn.Conv2d(3, width, 5, 2, 2, bias=False), _norm(width), nn.ReLU(inplace=True),
            *((nn.MaxPool2d(3, 2, 1),) if stem_pool else ()),
        )
        layers, c_in = [], width
        for stage, count in enumerate(blocks):
            c_stage = width * 2 ** stage
            for i in range(count):
                layers.append(block(c_in, c_stage, 2 if (i == 0 and stage > 0) else 1))
                c_in = c_stage * block.expansion
        self.layers = nn.Sequential(*layers)
        self.feature_dim = c_in
        #: the downsampling of the last feature map (one stride 2 per stage and the stem, and the pool)
        self.stride = 2 ** (len(blocks) + bool(stem_pool))
        # Image normalisation as a fixed affine map, so callers pass plain [0, 1] images.
        self.register_buffer("mean", torch.tensor([0.45, 0.45, 0.45]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([0.25, 0.25, 0.25]).view(1, 3, 1, 1), persistent=False)

    def feature_map(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` images in [0, 1] -> the last stage's ``(B, feature_dim, h, w)`` features
        (before the pooling of :meth:`forward`)."""
        x = (images - self.mean) / self.std
        return self.layers(self.stem(x))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.feature_map(images).mean(dim=(2, 3))

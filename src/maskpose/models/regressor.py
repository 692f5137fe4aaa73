"""Regressors: an encoder plus a mesh head (HMR/SPIN iterative error feedback) and a joint head
(3D landmarks for Mask-as-Supervision).

The models know nothing of the body model: they output parameter tensors that ``maskpose.body``
turns into meshes and joints.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
from torch import nn

from maskpose.errors import ConfigError, check_shape
from maskpose.models.encoder import ResNetEncoder

#: Weak-perspective scale of a ~1.7 m person whose bounding box fills 80 % of the crop
#: (normalised crop coordinates span [-1, 1]); the mean camera of the heads.
MEAN_SCALE = 0.9


@dataclass
class ModelConfig:
    """Architecture of the regressor (saved inside checkpoints)."""

    resolution: int = 64
    width: int = 32
    blocks: tuple[int, ...] = (1, 1, 1, 1)
    bottleneck: bool = False
    head_iterations: int = 3
    hidden: int = 256
    num_rotations: int = 18
    num_phenotypes: int = 6
    num_landmarks: int = 34
    heads: tuple[str, ...] = ("mesh",)

    @staticmethod
    def resnet50() -> ModelConfig:
        return ModelConfig(resolution=224, width=64, blocks=(3, 4, 6, 3), bottleneck=True, hidden=1024)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["blocks"], d["heads"] = list(self.blocks), list(self.heads)
        return d

    @staticmethod
    def from_dict(d: dict) -> ModelConfig:
        """The configuration of a (possibly partial) mapping: missing fields keep their defaults,
        unknown keys raise ``ConfigError``."""
        known = {f.name for f in fields(ModelConfig)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"unknown model key(s) {sorted(unknown)}; known: {sorted(known)}")
        d = dict(d)
        for key in ("blocks", "heads"):
            if key in d:
                d[key] = tuple(d[key])
        return ModelConfig(**d)


@dataclass
class MeshHeadOutput:
    """The mesh head's body parameters: ``pose`` ``(B, R, 6)`` (6D rotations), ``phenotypes``
    ``(B, P)`` in (0, 1), and the weak-perspective camera ``scale`` ``(B,)`` and ``offset``
    ``(B, 2)`` (see ``maskpose.render.camera``)."""

    pose: torch.Tensor
    phenotypes: torch.Tensor
    scale: torch.Tensor
    offset: torch.Tensor

    def tensors(self) -> dict[str, torch.Tensor]:
        """The fields by name (the same tensors, not copies)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass
class JointHeadOutput:
    """The joint head's ``landmarks`` ``(B, L, 3)`` (root-relative, metres) and its weak-perspective
    camera ``scale`` ``(B,)`` and ``offset`` ``(B, 2)``."""

    landmarks: torch.Tensor
    scale: torch.Tensor
    offset: torch.Tensor

    def tensors(self) -> dict[str, torch.Tensor]:
        """The fields by name (the same tensors, not copies)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass
class RegressorOutput:
    """What :class:`PoseRegressor` returns: one output per head in ``config.heads``, ``None`` for
    a head the model does not have."""

    mesh: MeshHeadOutput | None = None
    joints: JointHeadOutput | None = None


def _identity_sixd(n: int) -> torch.Tensor:
    return torch.eye(3)[:, :2].reshape(6).repeat(n)


class MeshHead(nn.Module):
    """Iterative error feedback from the mean parameters.

    Forward: features ``(B, C)`` -> :class:`MeshHeadOutput`.
    """

    def __init__(self, feature_dim: int, num_rotations: int, num_phenotypes: int, hidden: int, iterations: int):
        super().__init__()
        self.num_rotations, self.num_phenotypes, self.iterations = num_rotations, num_phenotypes, iterations
        mean = torch.cat([_identity_sixd(num_rotations), torch.zeros(num_phenotypes), torch.zeros(3)])
        self.register_buffer("mean_params", mean)
        n = mean.numel()
        self.refine = nn.Sequential(
            nn.Linear(feature_dim + n, hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, n),
        )
        # Small last layer: the first prediction starts at the mean parameters.
        nn.init.zeros_(self.refine[-1].bias)
        nn.init.normal_(self.refine[-1].weight, std=1e-3)

    def forward(self, features: torch.Tensor) -> MeshHeadOutput:
        params = self.mean_params.expand(features.shape[0], -1)
        for _ in range(self.iterations):
            params = params + self.refine(torch.cat([features, params], dim=1))
        r, p = self.num_rotations * 6, self.num_phenotypes
        return MeshHeadOutput(
            pose=params[:, :r].reshape(-1, self.num_rotations, 6),
            phenotypes=torch.sigmoid(params[:, r : r + p]),
            scale=MEAN_SCALE * torch.exp(params[:, r + p]),
            offset=params[:, r + p + 1 : r + p + 3],
        )


class JointHead(nn.Module):
    """3D landmarks (root-relative, metres) and a weak-perspective camera, for Mask-as-Supervision.

    Forward: features ``(B, C)`` -> :class:`JointHeadOutput`: ``landmarks`` ``(B, L, 3)``, ``scale``
    ``(B,)``, ``offset`` ``(B, 2)``, all read directly from one MLP's output (no heatmaps): at
    initialisation the landmarks are near 0, the scale near ``MEAN_SCALE`` and the offset near 0.
    """

    def __init__(self, feature_dim: int, num_landmarks: int, hidden: int):
        super().__init__()
        self.num_landmarks = num_landmarks
        self.mlp = nn.Sequential(
            nn.Linear(feature_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, num_landmarks * 3 + 3)
        )
        nn.init.zeros_(self.mlp[-1].bias)
        nn.init.normal_(self.mlp[-1].weight, std=1e-3)

    def forward(self, features: torch.Tensor) -> JointHeadOutput:
        out = self.mlp(features)
        n = self.num_landmarks * 3
        return JointHeadOutput(
            landmarks=out[:, :n].reshape(-1, self.num_landmarks, 3),
            scale=MEAN_SCALE * torch.exp(out[:, n]),
            offset=out[:, n + 1 : n + 3],
        )


class PoseRegressor(nn.Module):
    """Encoder plus the heads named in ``config.heads`` (``"mesh"`` and/or ``"joints"``).

    Forward: ``(B, 3, H, W)`` images in [0, 1] -> :class:`RegressorOutput`.
    """

    def __init__(self, config: ModelConfig | None = None):
        super().__init__()
        self.config = config or ModelConfig()
        c = self.config
        unknown = set(c.heads) - {"mesh", "joints"}
        if unknown or not c.heads:
            raise ConfigError(f"model heads must be a non-empty subset of ('mesh', 'joints'), got {c.heads}")
        self.encoder = ResNetEncoder(c.width, c.blocks, c.bottleneck)
        self.heads = nn.ModuleDict()
        if "mesh" in c.heads:
            self.heads["mesh"] = MeshHead(self.encoder.feature_dim, c.num_rotations, c.num_phenotypes,
                                          c.hidden, c.head_iterations)
        if "joints" in c.heads:
            self.heads["joints"] = JointHead(self.encoder.feature_dim, c.num_landmarks, c.hidden)

    def forward(self, images: torch.Tensor) -> RegressorOutput:
        check_shape("images", images, (None, 3, None, None))
        features = self.encoder(images)
        return RegressorOutput(**{name: head(features) for name, head in self.heads.items()})


__all__ = ["ModelConfig", "PoseRegressor", "MeshHead", "JointHead", "MeshHeadOutput", "JointHeadOutput",
           "RegressorOutput", "MEAN_SCALE"]

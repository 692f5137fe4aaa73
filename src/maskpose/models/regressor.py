"""Regressors: an encoder plus a mesh head (HMR/SPIN iterative error feedback) and a joint head
(3D landmarks for Mask-as-Supervision).

The models know nothing of the body model: they output parameter tensors that ``maskpose.body``
turns into meshes and joints.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields

import torch
from torch import nn

from maskpose.errors import ConfigError, check_shape
from maskpose.models.encoder import ResNetEncoder, _norm
from maskpose.models.integral import integral_depth, spatial_expectation_2d, spatial_softmax
from maskpose.typing import JOINT_HEADS

#: Allowed input resolutions (pixels). The encoder halves the image once per stage (the stem and
#: every later stage stride 2), so below ``2 ** len(blocks)`` pixels (16 for four stages) its last
#: stage would see less than one pixel of the image.
MAX_RESOLUTION = 2048
#: The head names a regressor may have.
HEAD_NAMES = ("mesh", "joints")
#: Activations of the mesh head's shape parameters: ``"sigmoid"`` (in (0, 1): Anny's phenotypes) or
#: ``"none"`` (unbounded: SMPL's betas).
SHAPE_ACTIVATIONS = ("sigmoid", "none")
#: Fields added after checkpoints were first written, with their defaults: :meth:`ModelConfig.to_dict`
#: leaves them out at the default, so a default model's saved dict is the one older versions wrote.
_LATER_FIELDS = {"shape_activation": "sigmoid", "stem_pool": False, "joint_head": "mlp", "depth_hypotheses": 1,
                 "heatmap_stride": 4}
#: The integer fields of :class:`ModelConfig` with their smallest allowed value.
_MODEL_INT_MINIMUMS = {"width": 1, "head_iterations": 1, "hidden": 1, "num_rotations": 1, "num_phenotypes": 1,
                       "num_landmarks": 1, "depth_hypotheses": 1, "heatmap_stride": 1}


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


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
    #: the mesh head's shape activation (one of :data:`SHAPE_ACTIVATIONS`); the head sizes
    #: (``num_rotations``, ``num_phenotypes``) and this follow the body model (Anny: 18, 6,
    #: ``"sigmoid"``; SMPL: 24, 10, ``"none"``; see ``maskpose.train.config``).
    shape_activation: str = "sigmoid"
    #: a 3x3 stride-2 max-pool after the stem, as in a standard ResNet: the stages run at a quarter
    #: of the pixels, which is what makes a deeper encoder affordable at 128 px on a CPU.
    stem_pool: bool = False
    #: the joint head's form (one of :data:`~maskpose.typing.JOINT_HEADS`): ``"mlp"``
    #: (:class:`JointHead`, a global-pool MLP) or ``"integral"`` (:class:`IntegralJointHead`,
    #: heatmaps read out by soft-argmax).
    joint_head: str = "mlp"
    #: depth hypotheses of the integral joint head (trained winner-takes-all; 1: none); ``"integral"`` only.
    depth_hypotheses: int = 1
    #: the integral joint head's heatmap resolution as a fraction of the input's (4: 16 x 16 heatmaps
    #: at 64 px), a power of two up to the encoder's stride (:meth:`min_resolution`); ``"integral"`` only.
    heatmap_stride: int = 4

    def min_resolution(self) -> int:
        """The smallest input resolution of this encoder: ``2 ** len(blocks)``, twice that with
        ``stem_pool`` (one pixel left after the last stride)."""
        if not isinstance(self.blocks, (tuple, list)):
            return 16
        return 2 ** (len(self.blocks) + (self.stem_pool is True))

    def validate(self, label: str = "model") -> ModelConfig:
        """Raise ``ConfigError`` naming the first field of the wrong type or out of range (``label``
        prefixes the field names, e.g. ``model.resolution``); return ``self``."""
        blocks = self.blocks
        if (not isinstance(blocks, (tuple, list)) or not blocks
                or not all(_is_int(b) and b >= 1 for b in blocks) or len(blocks) > 8):
            raise ConfigError(f"{label}.blocks must be 1 to 8 block counts, each an int >= 1 "
                              f"(e.g. [1, 1, 1, 1]), got {blocks!r}")
        lowest = self.min_resolution()
        if not _is_int(self.resolution) or not lowest <= self.resolution <= MAX_RESOLUTION:
            raise ConfigError(f"{label}.resolution must be an int in [{lowest}, {MAX_RESOLUTION}] pixels "
                              f"(the encoder downsamples by {lowest}), got {self.resolution!r}")
        for name, lowest_value in _MODEL_INT_MINIMUMS.items():
            value = getattr(self, name)
            if not _is_int(value) or value < lowest_value:
                raise ConfigError(f"{label}.{name} must be an int >= {lowest_value}, got {value!r}")
        for name in ("bottleneck", "stem_pool"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{label}.{name} must be true or false, got {getattr(self, name)!r}")
        heads = self.heads
        if (not isinstance(heads, (tuple, list)) or not heads or not all(isinstance(h, str) for h in heads)
                or set(heads) - set(HEAD_NAMES) or len(set(heads)) != len(heads)):
            raise ConfigError(f"{label}.heads must be a non-empty subset of {HEAD_NAMES}, got {heads!r}")
        if not isinstance(self.shape_activation, str) or self.shape_activation not in SHAPE_ACTIVATIONS:
            raise ConfigError(f"{label}.shape_activation must be one of {SHAPE_ACTIVATIONS}, "
                              f"got {self.shape_activation!r}")
        if not isinstance(self.joint_head, str) or self.joint_head not in JOINT_HEADS:
            raise ConfigError(f"{label}.joint_head must be one of {JOINT_HEADS}, got {self.joint_head!r}")
        if self.joint_head == "integral":
            stride = self.heatmap_stride
            if stride & (stride - 1) or stride > lowest:
                raise ConfigError(f"{label}.heatmap_stride must be a power of two up to the encoder's stride "
                                  f"{lowest} (1, 2, 4, ...), got {stride!r}")
        else:
            for name in ("depth_hypotheses", "heatmap_stride"):
                if getattr(self, name) != _LATER_FIELDS[name]:
                    raise ConfigError(f"{label}.{name} applies to joint_head 'integral' only, got "
                                      f"{getattr(self, name)!r} with joint_head {self.joint_head!r}")
        return self

    @staticmethod
    def resnet50() -> ModelConfig:
        return ModelConfig(resolution=224, width=64, blocks=(3, 4, 6, 3), bottleneck=True, hidden=1024)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["blocks"], d["heads"] = list(self.blocks), list(self.heads)
        for key, default in _LATER_FIELDS.items():  # at the default: the dict older versions wrote
            if d[key] == default:
                del d[key]
        return d

    @staticmethod
    def from_dict(d: dict) -> ModelConfig:
        """The configuration of a (possibly partial) mapping: missing fields keep their defaults,
        unknown keys and values of the wrong type or range raise ``ConfigError``."""
        if not isinstance(d, Mapping):
            raise ConfigError(f"model must be a mapping of model fields (e.g. {{resolution: 64}}), "
                              f"got {type(d).__name__} {d!r}")
        known = {f.name for f in fields(ModelConfig)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"unknown model key(s) {sorted(unknown)}; known: {sorted(known)}")
        d = dict(d)
        for key in ("blocks", "heads"):
            if key in d:
                if isinstance(d[key], str) or not isinstance(d[key], (list, tuple)):
                    raise ConfigError(f"model.{key} must be a list, got {type(d[key]).__name__} {d[key]!r}")
                d[key] = tuple(d[key])
        return ModelConfig(**d).validate()


class _HeadTensors:
    """``tensors()`` for the head outputs: the fields by name (the same tensors, not copies),
    leaving out the optional fields a head did not fill (``None``)."""

    def tensors(self) -> dict[str, torch.Tensor]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


@dataclass
class MeshHeadOutput(_HeadTensors):
    """The mesh head's body parameters: ``pose`` ``(B, R, 6)`` (6D rotations), ``phenotypes``
    ``(B, P)`` the body model's shape parameters (Anny's phenotypes in (0, 1), or SMPL's betas,
    unbounded, with ``shape_activation="none"``), and the weak-perspective camera ``scale`` ``(B,)`` and ``offset``
    ``(B, 2)`` (see ``maskpose.render.camera``)."""

    pose: torch.Tensor
    phenotypes: torch.Tensor
    scale: torch.Tensor
    offset: torch.Tensor


@dataclass
class JointHeadOutput(_HeadTensors):
    """The joint head's ``landmarks`` ``(B, L, 3)`` (root-relative, metres) and its weak-perspective
    camera ``scale`` ``(B,)`` and ``offset`` ``(B, 2)``.

    With ``K > 1`` depth hypotheses (:class:`IntegralJointHead`), ``hypotheses`` ``(B, K, L, 3)``
    holds the landmarks of every hypothesis (the same ``x, y``, their own depth) and
    ``hypothesis_logits`` ``(B, K)`` the head's preference; ``landmarks`` is then the hypothesis of
    the highest logit. ``None`` for a head without hypotheses.
    """

    landmarks: torch.Tensor
    scale: torch.Tensor
    offset: torch.Tensor
    hypotheses: torch.Tensor | None = None
    hypothesis_logits: torch.Tensor | None = None


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

    def __init__(self, feature_dim: int, num_rotations: int, num_phenotypes: int, hidden: int, iterations: int,
                 shape_activation: str = "sigmoid"):
        super().__init__()
        self.num_rotations, self.num_phenotypes, self.iterations = num_rotations, num_phenotypes, iterations
        if shape_activation not in SHAPE_ACTIVATIONS:
            raise ConfigError(f"shape_activation must be one of {SHAPE_ACTIVATIONS}, got {shape_activation!r}")
        self.shape_activation = shape_activation
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
        shape = params[:, r : r + p]
        return MeshHeadOutput(
            pose=params[:, :r].reshape(-1, self.num_rotations, 6),
            phenotypes=torch.sigmoid(shape) if self.shape_activation == "sigmoid" else shape,
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


def _decoder_channels(feature_dim: int, stage: int) -> int:
    """Channels of the decoder's 1x1 reduction (``stage`` 0) and of its upsampling stages (1, 2,
    ...): a quarter of the encoder's, halving per stage, at most 256 (the released code's
    deconvolutions) and at least 32."""
    return min(256, max(32, feature_dim // 2 ** (stage + 2)))


class IntegralJointHead(nn.Module):
    """3D landmarks from heatmaps (integral regression, as in the released Mask-as-Supervision code,
    which uses 3 deconvolutions to 64 x 64 heatmaps and 64 depth bins on a ResNet-50).

    The encoder's last feature map is reduced by a 1x1 conv (to a quarter of its channels, at most
    256) and upsampled ``upsamples`` times (bilinear x2, 3x3 conv, GroupNorm, ReLU; the channels
    halving, at least 32), then 1x1 convs give ``L`` heatmap logits and ``K L`` depth maps. The 2D
    landmarks ``uv`` ``(B, L, 2)`` are the soft-argmax of the heatmaps in normalised image
    coordinates (:func:`~maskpose.models.integral.soft_argmax_2d`), the depths ``z`` ``(B, K, L)`` the heatmap-weighted means of the depth maps
    (:func:`~maskpose.models.integral.integral_depth`). A small MLP on the pooled features gives
    the camera scale ``s`` (and, with ``K > 1``, the hypothesis logits).

    The output is a :class:`JointHeadOutput` whose weak-perspective projection is exactly the
    soft-argmax: with the root landmark 0, ``landmarks = ((uv - uv[:, :1]) / s, z - z[:, :1])`` and
    ``offset = uv[:, 0] / s``, so ``s * (landmarks[..., :2] + offset) = uv``.

    Bilinear upsampling plus a 3x3 conv rather than 4x4 deconvolutions: 9 taps instead of 16 per
    output pixel and no checkerboard artefacts. At 64 px the default encoder (256 channels) ends at
    4 x 4; the 1x1 reduction to 64 channels and two stages (64 -> 32 -> 32 channels, ``heatmap_stride``
    4: 16 x 16 heatmaps) cost about a tenth of the encoder's multiply-adds, where 256-channel stages
    would cost more than the encoder. The soft-argmax is sub-pixel, so a 16 x 16 heatmap still
    resolves positions well under an input pixel; ``heatmap_stride`` 2 (32 x 32) costs another
    stage at 32 x 32.

    At initialisation the heatmaps are broad (the landmarks within about a fifth of the crop of its
    centre), the depths near 0, the scale near ``MEAN_SCALE``.

    Forward: ``feature_map`` ``(B, C, h, w)`` and optionally its pooled ``(B, C)`` (computed when
    not given) -> :class:`JointHeadOutput`.
    """

    def __init__(self, feature_dim: int, num_landmarks: int, hidden: int, upsamples: int = 2,
                 hypotheses: int = 1, temperature: float = 1.0):
        super().__init__()
        if hypotheses < 1 or upsamples < 0 or not temperature > 0:
            raise ConfigError(f"IntegralJointHead needs hypotheses >= 1, upsamples >= 0 and temperature > 0, "
                              f"got {hypotheses}, {upsamples}, {temperature}")
        self.num_landmarks, self.num_hypotheses, self.temperature = num_landmarks, hypotheses, temperature
        c_in = _decoder_channels(feature_dim, 0)
        stages = [nn.Conv2d(feature_dim, c_in, 1, bias=False), _norm(c_in), nn.ReLU(inplace=True)]
        for stage in range(1, upsamples + 1):
            c_out = _decoder_channels(feature_dim, stage)
            stages += [nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                       nn.Conv2d(c_in, c_out, 3, 1, 1, bias=False), _norm(c_out), nn.ReLU(inplace=True)]
            c_in = c_out
        self.decoder = nn.Sequential(*stages)
        self.heatmaps = nn.Conv2d(c_in, num_landmarks, 1)
        self.depths = nn.Conv2d(c_in, hypotheses * num_landmarks, 1)
        # The heatmap logits keep PyTorch's default initialisation: broad heatmaps, so the landmarks
        # start near the crop centre, but with enough contrast to learn fast (near-zero logits learn
        # several times slower); the depths start near 0.
        nn.init.zeros_(self.depths.bias)
        nn.init.normal_(self.depths.weight, std=1e-3)
        extra = hypotheses if hypotheses > 1 else 0
        self.camera = nn.Sequential(nn.Linear(feature_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 1 + extra))
        nn.init.zeros_(self.camera[-1].bias)
        nn.init.normal_(self.camera[-1].weight, std=1e-3)

    def forward(self, feature_map: torch.Tensor, pooled: torch.Tensor | None = None) -> JointHeadOutput:
        check_shape("feature_map", feature_map, (None, None, None, None))
        if pooled is None:
            pooled = feature_map.mean(dim=(2, 3))
        x = self.decoder(feature_map)
        b, n, k = x.shape[0], self.num_landmarks, self.num_hypotheses
        probabilities = spatial_softmax(self.heatmaps(x), self.temperature)
        uv = spatial_expectation_2d(probabilities)  # (B, L, 2) normalised image coordinates
        depth = integral_depth(probabilities, self.depths(x).reshape(b, k, n, *x.shape[-2:]))  # (B, K, L)
        camera = self.camera(pooled)
        scale = MEAN_SCALE * torch.exp(camera[:, 0])
        xy = (uv - uv[:, :1]) / scale[:, None, None]
        hypotheses = torch.cat((xy[:, None].expand(-1, k, -1, -1), (depth - depth[..., :1])[..., None]), dim=-1)
        offset = uv[:, 0] / scale[:, None]
        if k == 1:
            return JointHeadOutput(landmarks=hypotheses[:, 0], scale=scale, offset=offset)
        logits = camera[:, 1:]
        chosen = logits.argmax(dim=1)
        landmarks = hypotheses[torch.arange(b, device=chosen.device), chosen]
        return JointHeadOutput(landmarks=landmarks, scale=scale, offset=offset, hypotheses=hypotheses,
                               hypothesis_logits=logits)


class PoseRegressor(nn.Module):
    """Encoder plus the heads named in ``config.heads`` (``"mesh"`` and/or ``"joints"``).

    Forward: ``(B, 3, H, W)`` images in [0, 1] -> :class:`RegressorOutput`.
    """

    def __init__(self, config: ModelConfig | None = None):
        super().__init__()
        self.config = config or ModelConfig()
        c = self.config
        c.validate()
        self.encoder = ResNetEncoder(c.width, c.blocks, c.bottleneck, c.stem_pool)
        self.heads = nn.ModuleDict()
        if "mesh" in c.heads:
            self.heads["mesh"] = MeshHead(self.encoder.feature_dim, c.num_rotations, c.num_phenotypes,
                                          c.hidden, c.head_iterations, c.shape_activation)
        if "joints" in c.heads and c.joint_head == "integral":
            upsamples = (self.encoder.stride // c.heatmap_stride).bit_length() - 1
            self.heads["joints"] = IntegralJointHead(self.encoder.feature_dim, c.num_landmarks, c.hidden,
                                                     upsamples, c.depth_hypotheses)
        elif "joints" in c.heads:
            self.heads["joints"] = JointHead(self.encoder.feature_dim, c.num_landmarks, c.hidden)

    def forward(self, images: torch.Tensor) -> RegressorOutput:
        check_shape("images", images, (None, 3, None, None))
        feature_map = self.encoder.feature_map(images)  # computed once; pooled as the encoder's forward does
        features = feature_map.mean(dim=(2, 3))
        return RegressorOutput(**{
            name: head(feature_map, features) if isinstance(head, IntegralJointHead) else head(features)
            for name, head in self.heads.items()
        })


__all__ = ["ModelConfig", "PoseRegressor", "MeshHead", "JointHead", "IntegralJointHead", "MeshHeadOutput",
           "JointHeadOutput", "RegressorOutput", "MEAN_SCALE", "SHAPE_ACTIVATIONS"]

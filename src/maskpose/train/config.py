"""Training configuration: every default in one place. The CLI only maps flags onto these fields;
a YAML file can set any of them (``TrainConfig.from_yaml``)."""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import yaml

from maskpose.body.anny_body import AnnyBody
from maskpose.body.interface import BODY_MODELS
from maskpose.body.smpl_body import SMPL_TOPOLOGIES, SMPLBody, require_smplx, resolve_model_path
from maskpose.conventions import default_focal
from maskpose.device import resolve_device
from maskpose.errors import ConfigError
from maskpose.models.regressor import ModelConfig
from maskpose.topology import BINARIZATIONS
from maskpose.train.checkpoint import check_body, load_checkpoint, saved_masked_input
from maskpose.typing import GEODESIC_MODES, LR_SCHEDULES, PRECISIONS, SKELETON_STYLES, SKELETON_TERMS
from maskpose.typing import REGULARISERS as _REGULARISERS

#: Loss terms a config may name, and what each needs from a batch.
SUPERVISED_LOSSES = ("joints3d", "joints2d", "params", "silhouette_sup")
MASK_LOSSES = ("l1", "l2", "bce", "soft_iou", "chamfer_points", "ls", "lt", "mas")
REGULARISERS = _REGULARISERS  # prior, phenotype_prior, anchor (maskpose.typing: one list)
KNOWN_LOSSES = SUPERVISED_LOSSES + MASK_LOSSES + REGULARISERS

#: Integer fields of ``TrainConfig`` with their allowed range (inclusive; ``None``: unbounded).
#: ``steps`` >= 1: a run of 0 steps would write a checkpoint trained on nothing.
INT_RANGES = {"steps": (1, None), "batch_size": (1, None), "seed": (0, 2**32 - 1), "log_every": (1, None),
              "checkpoint_every": (1, None), "fit_every": (0, None), "fit_iterations": (0, None),
              "stage1_steps": (0, None)}
#: Real-valued fields with their lower bound and whether the bound itself is allowed; all must be finite.
FLOAT_BOUNDS = {"source_ratio": (0.0, True), "lr": (0.0, False), "weight_decay": (0.0, True),
                "focal": (0.0, True), "mas_sigma": (0.0, False), "topology_temperature": (0.0, False),
                "fit_lr": (0.0, False), "fit_weight": (0.0, True), "false_positive_weight": (0.0, True)}
BOOL_FIELDS = ("mas_physique", "mas_geodesic", "freeze_encoder", "masked_input")
STR_FIELDS = ("mode", "data", "source_data", "init_checkpoint", "out", "device", "topology_binarization",
              "lr_schedule", "body", "smpl_model", "h36m_regressor", "smpl_topology", "mas_style",
              "mas_skeleton_term", "mas_geodesic_form", "mas_physique_checkpoint", "precision")
MODES = ("pretrain", "adapt", "train-unsup", "oracle")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class _ConfigLoader(yaml.SafeLoader):
    """PyYAML's safe loader, reading floats as YAML 1.2 does: ``1e-3`` is a number. (PyYAML follows
    YAML 1.1, whose floats need a dot, so ``lr: 1e-3`` would otherwise be the string ``"1e-3"``.)"""


_ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                  |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                  |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                  |[-+]?\.(?:inf|Inf|INF)
                  |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def load_yaml_mapping(path: str | Path) -> dict:
    """The mapping in a YAML config file (empty file: ``{}``); ``ConfigError`` naming the problem
    for a missing file, invalid YAML or anything but a mapping."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file does not exist")
    try:
        d = yaml.load(path.read_text(), Loader=_ConfigLoader) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from None
    if not isinstance(d, dict):
        raise ConfigError(f"{path}: a config must be a mapping of keys to values, got {type(d).__name__}")
    return d


def check_bounded(name: str, value, low: float, inclusive: bool) -> None:
    """``ConfigError`` unless ``value`` is a finite real number above ``low`` (or equal to it when
    ``inclusive``)."""
    if not _is_real(value) or not math.isfinite(value) or value < low or (value == low and not inclusive):
        raise ConfigError(f"{name} must be a finite number {'>=' if inclusive else '>'} {low:g}, got {value!r}")


def check_topology_gradient(binarization: str, temperature: float) -> None:
    """``ConfigError`` unless ``topology_binarization`` / ``topology_temperature`` are valid (the
    fields of both ``TrainConfig`` and the benchmark's ``BenchConfig``)."""
    if binarization not in BINARIZATIONS:
        raise ConfigError(f"topology_binarization must be one of {BINARIZATIONS}, got {binarization!r}")
    if not temperature > 0:
        raise ConfigError(f"topology_temperature must be > 0, got {temperature!r}")


def check_known_fields(cls, d: dict, label: str) -> None:
    """``ConfigError`` naming the keys of ``d`` that are not fields of the dataclass ``cls``."""
    known = {f.name for f in fields(cls)}
    unknown = set(d) - known
    if unknown:
        raise ConfigError(f"unknown {label} key(s) {sorted(unknown)}; known: {sorted(known)}")


def _number_or_self(text: str):
    """``float(text)`` when ``text`` is a number such as ``"1e-3"``, else ``text`` (for validate to refuse)."""
    try:
        return float(text)
    except ValueError:
        return text


DEFAULT_LOSSES = {
    "pretrain": {"joints3d": 1.0, "joints2d": 1.0, "params": 0.5},
    "adapt": {"ls": 1.0, "lt": 1.0, "prior": 0.1},
    "train-unsup": {"mas": 1.0},
}
#: The command line's starting point per mode, over the dataclass defaults (a YAML file and the
#: flags override it). For ``adapt``, the best measured recipe: lr 1e-4 with fitting in the loop
#: every 4th step (8 fitting iterations), which beat lr 1e-3 without fitting on the thermal target
#: (docs/benchmark.md) and on held-out real crops (docs/benchmark.md, "Real photographs"); the
#: demo adapts with it too.
MODE_RECIPES: dict[str, dict] = {
    "adapt": {"lr": 1e-4, "fit_every": 4, "fit_iterations": 8},
}
#: A body's own default losses where they differ from :data:`DEFAULT_LOSSES`: SMPL has no table of
#: joint limits for the ``prior`` term, so its adapt keeps the shape near the template instead
#: (``phenotype_prior``: the mean of betas squared).
BODY_DEFAULT_LOSSES = {
    "smpl": {"adapt": {"ls": 1.0, "lt": 1.0, "phenotype_prior": 0.01}},
}
#: The mesh head each body model needs: ``(num_rotations, num_phenotypes, shape_activation)``.
BODY_HEADS = {
    "anny": (AnnyBody.pose_size[0], AnnyBody.shape_size, "sigmoid"),
    "smpl": (SMPLBody.pose_size[0], SMPLBody.shape_size, "none"),  # betas are unbounded
}


def default_losses(mode: str, body: str = "anny") -> dict[str, float]:
    """The losses of a mode when a config names none, for the body model ``body``."""
    losses = BODY_DEFAULT_LOSSES.get(body, {}).get(mode, DEFAULT_LOSSES.get(mode, {}))
    return dict(losses)


def _head_fields(model: ModelConfig) -> tuple:
    return model.num_rotations, model.num_phenotypes, model.shape_activation


def model_for_body(body: str, model: ModelConfig | None = None) -> ModelConfig:
    """``model`` (default: the default model) with the mesh head of ``body`` (:data:`BODY_HEADS`)
    where its head fields are Anny's (the defaults); any other head is kept as it is."""
    model = model if model is not None else ModelConfig()
    if body in BODY_HEADS and body != "anny" and _head_fields(model) == BODY_HEADS["anny"]:
        rotations, shapes, activation = BODY_HEADS[body]
        model = replace(model, num_rotations=rotations, num_phenotypes=shapes, shape_activation=activation)
    return model


@dataclass
class TrainConfig:
    """One training run.

    ``mode``: ``pretrain`` (source, full supervision), ``adapt`` (target images + masks only,
    optionally mixed with supervised source batches), ``train-unsup`` (Mask-as-Supervision from
    scratch), ``oracle`` (fine-tune with 3D labels on the target: the benchmark's upper bound).
    """

    mode: str = "pretrain"
    data: str = ""  # the dataset trained on (source for pretrain, target train split for adapt)
    source_data: str = ""  # adapt only: source dataset for mixed supervised batches
    source_ratio: float = 0.0  # adapt only: share of steps that also take a supervised source batch
    init_checkpoint: str = ""  # adapt / oracle: the source model to start from
    out: str = "runs/run"
    losses: dict[str, float] = field(default_factory=dict)
    steps: int = 200
    batch_size: int = 16
    lr: float = 1e-3
    lr_schedule: str = "constant"  # or "cosine": lr * (0.05 + 0.95 * (1 + cos(pi * step / steps)) / 2)
    weight_decay: float = 0.0
    seed: int = 0
    device: str = "cpu"
    log_every: int = 10
    checkpoint_every: int = 50
    focal: float = 0.0  # pixels; 0 = 2 x the resolution, as the synthetic crops (used when a dataset has no intrinsics)
    mas_sigma: float = 2.0  # skeleton-mask line width (pixels at the model resolution)
    # Mask-as-Supervision ablation switches: the physique net ψ (its term ``λp‖G ⊙ (M − ψ(M_skel))‖²``)
    # and the geodesic weights G (uniform weights when off).
    mas_physique: bool = True
    mas_geodesic: bool = True
    # The released code of method 2 (docs/design.md §1.2): its skeleton mask (``mas_style``
    # "released": the max over its 24 lines on H36M-17, arms at σ/√2), its one-sided skeleton term
    # (``mas_skeleton_term`` "one_sided": the squared error only where M_skel > 0.1, so mask pixels
    # away from the skeleton do not pull a thin skeleton to fill the silhouette) and its geodesic
    # form (``mas_geodesic_form`` "released", computed from the batch's mask; "paper" reads the
    # dataset's stored weights).
    mas_style: str = "paper"
    mas_skeleton_term: str = "two_sided"
    mas_geodesic_form: str = "paper"
    mas_physique_checkpoint: str = ""  # a pretrained ψ (``maskpose masks train-physique``); empty: a fresh ψ
    masked_input: bool = False  # the network sees the image times the mask (released; needs masks at test time)
    # train-unsup's two-stage recipe: ``stage1_steps`` supervised steps on ``source_data`` (written to
    # ``out/stage1``), then stage 2 from that model: the mask terms on ``data`` with a supervised
    # source batch on a ``source_ratio`` share of the steps. 0: no stage 1 (from ``init_checkpoint``,
    # or from scratch: the masks-only negative control).
    stage1_steps: int = 0
    # Gradient through the 0.5 threshold of the topology losses (ls, lt): "soft" (the gradient of a
    # sigmoid of this temperature) adapts better than "straight_through" in our benchmark
    # (docs/benchmark.md, "Binarisation"); both are kept. The forward pass is hard either way.
    topology_binarization: str = "soft"
    topology_temperature: float = 0.1
    freeze_encoder: bool = False
    # Fitting in the loop (adapt, mesh head): every ``fit_every`` steps the batch's predicted body
    # parameters are refined by ``fit_iterations`` Adam steps on the mask losses alone, and the
    # network is then also pulled toward every fit it has (``fit_weight``). 0 turns it off.
    fit_every: int = 0
    fit_iterations: int = 10
    fit_lr: float = 0.02
    fit_weight: float = 1.0
    # Occlusion-aware mask losses (real photographs): the weight of *false positives*, predicted
    # silhouette pixels outside the target mask. A real person mask covers only the visible body;
    # an occluder (or a part the segmenter missed) hides the rest, so a correct body may rightly
    # render there. Below 1 such pixels count less: in l1, l2, bce and soft_iou per pixel, and in
    # the silhouette-to-mask direction of ls and lt (the term ||S2D(1 - mask) * silhouette|| / |silhouette|)
    # and of chamfer_points; the mask-to-silhouette direction, which asks the body to cover every
    # mask pixel, keeps weight 1. 1.0 (the default) is the plain losses, unchanged; 0 ignores
    # them (then only the prior and anchor keep the body from growing).
    false_positive_weight: float = 1.0
    # The body model (docs/design.md §2): "anny" or "smpl". SMPL needs the smpl extra and a model
    # file the user supplies: ``smpl_model`` (empty: $MASKPOSE_SMPL_MODEL), optionally SPIN's
    # ``J_regressor_h36m.npy`` for the H36M joints; it renders at ``smpl_topology`` ("decimated":
    # at most 1,200 vertices, like Anny's rendering mesh; "full": all 6,890). The model's mesh head
    # follows the body (Anny 18 rotations, 6 phenotypes; SMPL 24 rotations, 10 unbounded betas).
    body: str = "anny"
    smpl_model: str = ""
    h36m_regressor: str = ""
    smpl_topology: str = "decimated"
    # Mixed precision (maskpose.typing.PRECISIONS): the network's forward pass under torch.autocast
    # in "bf16" (CUDA or CPU) or "fp16" (CUDA only, with a gradient scaler); the body model, the
    # silhouette renderer and the losses stay float32. "float32" (the default) uses no autocast.
    precision: str = "float32"
    model: ModelConfig = field(default_factory=ModelConfig)

    def __post_init__(self):
        if isinstance(self.model, Mapping):
            self.model = ModelConfig.from_dict(self.model)
        elif not isinstance(self.model, ModelConfig):
            raise ConfigError(f"model must be a mapping of model fields (e.g. {{resolution: 64}}), "
                              f"got {type(self.model).__name__} {self.model!r}")
        if isinstance(self.body, str):  # the mesh head of the body (Anny's: unchanged)
            self.model = model_for_body(self.body, self.model)
        if isinstance(self.losses, Mapping):
            self.losses = dict(self.losses)
        if not self.losses:
            self.losses = default_losses(self.mode, self.body if isinstance(self.body, str) else "anny")

    # ------------------------------------------------------------------ validation
    def validate(self) -> TrainConfig:
        """Raise ``ConfigError`` naming the first problem; called before any training starts."""
        self._check_types()
        if self.mode not in MODES:
            raise ConfigError(f"unknown mode {self.mode!r}; expected pretrain, adapt, train-unsup or oracle")
        unknown = [name for name in self.losses if name not in KNOWN_LOSSES]
        if unknown:
            raise ConfigError(f"unknown loss name(s) {unknown}; known: {list(KNOWN_LOSSES)}")
        if not self.losses:
            raise ConfigError("no loss terms configured")
        for name, weight in self.losses.items():
            if not _is_real(weight) or not math.isfinite(weight) or weight < 0:
                raise ConfigError(f"loss weight {name} must be a finite number >= 0, got {weight!r}")
        if not any(weight > 0 for weight in self.losses.values()):
            raise ConfigError(f"at least one loss weight must be > 0, got {self.losses}")
        if self.mode == "adapt" and any(name in SUPERVISED_LOSSES for name in self.losses):
            raise ConfigError(
                "adapt uses target masks only: supervised losses "
                f"{[n for n in self.losses if n in SUPERVISED_LOSSES]} need labels (use source_ratio instead)"
            )
        if not self.data:
            raise ConfigError("no dataset given (data)")
        self._check_body()
        check_topology_gradient(self.topology_binarization, self.topology_temperature)
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.precision == "fp16" and resolve_device(self.device).type != "cuda":
            raise ConfigError(f"precision fp16 needs a CUDA device, device is {self.device!r} "
                              "(on the CPU use bf16 or float32)")
        if self.fit_every and (self.mode != "adapt" or "mesh" not in self.model.heads):
            raise ConfigError("fitting in the loop (fit_every > 0) is for adapt with the mesh head")
        if not 0.0 <= self.source_ratio <= 1.0:
            raise ConfigError(f"source_ratio must lie in [0, 1], got {self.source_ratio}")
        if self.source_ratio > 0 and not self.source_data:
            raise ConfigError("source_ratio > 0 needs source_data")
        if "mas" in self.losses and "joints" not in self.model.heads and "mesh" not in self.model.heads:
            raise ConfigError("the mas loss needs a joint or mesh head")
        self._check_mas()
        if self.losses.get("anchor", 0) > 0:
            if self.mode != "adapt" or not self.init_checkpoint or "mesh" not in self.model.heads:
                raise ConfigError("the anchor loss keeps shape and camera near the source model's prediction: it needs "
                                  "adapt with an init_checkpoint and the mesh head")
        resolve_device(self.device)
        return self

    def _check_mas(self) -> None:
        """``ConfigError`` for unknown Mask-as-Supervision options or an inconsistent two-stage run."""
        for name, allowed in (("mas_style", SKELETON_STYLES), ("mas_skeleton_term", SKELETON_TERMS),
                              ("mas_geodesic_form", GEODESIC_MODES)):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.mas_physique_checkpoint and not Path(self.mas_physique_checkpoint).is_file():
            raise ConfigError(f"mas_physique_checkpoint {self.mas_physique_checkpoint}: file does not exist")
        if self.source_ratio > 0 and self.mode not in ("adapt", "train-unsup"):
            raise ConfigError(f"source_ratio mixes source batches into adapt or train-unsup, not {self.mode}")
        if self.stage1_steps:
            if self.mode != "train-unsup":
                raise ConfigError("stage1_steps is train-unsup's supervised first stage; other modes have none")
            if not self.source_data:
                raise ConfigError("stage1_steps > 0 needs source_data (the labelled set stage 1 trains on)")
            if self.init_checkpoint:
                raise ConfigError("stage1_steps > 0 trains stage 1 itself; with init_checkpoint (a stage-1 model "
                                  "already trained) set stage1_steps to 0")

    def _check_body(self) -> None:
        """``ConfigError`` for an unknown body, a mesh head of another body's sizes, or what the
        body does not support (SMPL: the joint-limit ``prior``, fitting in the loop)."""
        if self.body not in BODY_MODELS:
            raise ConfigError(f"unknown body {self.body!r}; known: {', '.join(BODY_MODELS)}")
        if self.smpl_topology not in SMPL_TOPOLOGIES:
            raise ConfigError(f"smpl_topology must be one of {SMPL_TOPOLOGIES}, got {self.smpl_topology!r}")
        if "mesh" in self.model.heads and _head_fields(self.model) != BODY_HEADS[self.body]:
            names = ("num_rotations", "num_phenotypes", "shape_activation")
            diff = ", ".join(f"model.{n} is {got!r}, body {self.body!r} needs {want!r}"
                             for n, got, want in zip(names, _head_fields(self.model), BODY_HEADS[self.body])
                             if got != want)
            raise ConfigError(f"the mesh head does not fit the body model ({diff})")
        if self.body == "smpl":
            if self.losses.get("prior", 0) > 0:
                raise ConfigError("the prior loss holds Anny's joint limits; body 'smpl' has no such table: "
                                  "drop prior (use phenotype_prior, a betas-squared prior, for the shape)")
            if self.fit_every:
                raise ConfigError("fitting in the loop (fit_every > 0) clamps Anny's phenotypes; "
                                  "it is not available with body 'smpl'")
            require_smplx()  # before any work: the extra and the model file (empty: $MASKPOSE_SMPL_MODEL)
            resolve_model_path(self.smpl_model or None)

    def _check_types(self) -> None:
        """``ConfigError`` naming the first field of the wrong type, out of range or not finite."""
        for name, (low, high) in INT_RANGES.items():
            value = getattr(self, name)
            if not _is_int(value) or value < low or (high is not None and value > high):
                allowed = f">= {low}" if high is None else f"in [{low}, {high}]"
                raise ConfigError(f"{name} must be an int {allowed}, got {value!r}")
        for name, (low, inclusive) in FLOAT_BOUNDS.items():
            check_bounded(name, getattr(self, name), low, inclusive)
        for name in BOOL_FIELDS:
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false, got {getattr(self, name)!r}")
        for name in STR_FIELDS:
            if not isinstance(getattr(self, name), str):
                raise ConfigError(f"{name} must be a string, got {type(getattr(self, name)).__name__} "
                                  f"{getattr(self, name)!r}")
        if not isinstance(self.losses, Mapping) or not all(isinstance(k, str) for k in self.losses):
            raise ConfigError(f"losses must be a mapping of loss names to weights (e.g. {{ls: 1.0}}), "
                              f"got {self.losses!r}")
        if not isinstance(self.model, ModelConfig):
            raise ConfigError(f"model must be a mapping of model fields, got {self.model!r}")
        self.model.validate()

    @property
    def focal_px(self) -> float:
        return self.focal if self.focal > 0 else default_focal(self.model.resolution)

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict:
        d = asdict(self)
        d["model"] = self.model.to_dict()
        return d

    @staticmethod
    def from_dict(d: Mapping, label: str = "config") -> TrainConfig:
        """A config of a (possibly partial) mapping; unknown keys (``label`` names the mapping in
        the message) raise ``ConfigError``. YAML 1.1 reads ``1e-3`` (no dot) as a string: a string
        that is a number is accepted for the real-valued fields and loss weights."""
        if not isinstance(d, Mapping):
            raise ConfigError(f"{label} must be a mapping of keys to values, got {type(d).__name__}")
        check_known_fields(TrainConfig, d, label)
        d = dict(d)
        for name in FLOAT_BOUNDS:
            if isinstance(d.get(name), str):
                d[name] = _number_or_self(d[name])
        if isinstance(d.get("losses"), Mapping):
            d["losses"] = {k: _number_or_self(v) if isinstance(v, str) else v for k, v in d["losses"].items()}
        return TrainConfig(**d)

    def updated(self, changes: Mapping, label: str = "config") -> TrainConfig:
        """This config with the fields in ``changes`` replaced; ``model`` may be a partial mapping
        (its other fields keep this config's values). Unknown keys raise ``ConfigError``."""
        check_known_fields(TrainConfig, changes, label)
        d = {**self.to_dict(), **changes}
        model = changes.get("model")
        if isinstance(model, Mapping):
            d["model"] = ModelConfig.from_dict({**self.model.to_dict(), **model})
        return TrainConfig.from_dict(d, label)

    def inherit_from_checkpoint(self, saved: Mapping, source: str = "the init checkpoint",
                                explicit: Collection[str] = ()) -> TrainConfig:
        """This config with ``model`` and ``focal`` taken from an init checkpoint's saved config
        (``saved``: its ``"config"`` mapping). A field left at its default is inherited silently; a
        field set to another value than the checkpoint's (or named in ``explicit``, the fields the
        user set, and differing) raises ``ConfigError`` naming both values.

        ``masked_input`` is inherited too: a model that saw the image times the mask keeps seeing
        it (adapting it on plain images would feed it inputs it never saw), and an explicit
        ``masked_input: false`` against such a checkpoint is refused. A plain model may be
        fine-tuned to masked input."""
        check_body(source, saved, self.body)
        model = ModelConfig.from_dict(saved["model"])
        focal = float(saved.get("focal", 0.0) or 0.0)
        if self.model != model and ("model" in explicit or self.model != model_for_body(self.body)):
            diff = ", ".join(f"{f.name} is {getattr(model, f.name)!r} in the checkpoint, "
                             f"{getattr(self.model, f.name)!r} in the config"
                             for f in fields(ModelConfig) if getattr(model, f.name) != getattr(self.model, f.name))
            raise ConfigError(f"{source}: the config's model differs from the checkpoint's ({diff}); "
                              "leave model unset to inherit it")
        if self.focal != focal and ("focal" in explicit or self.focal != 0.0):
            raise ConfigError(f"{source}: focal is {focal!r} in the checkpoint, {self.focal!r} in the config; "
                              "leave focal unset to inherit it")
        saved_masked = saved_masked_input(saved)
        if saved_masked and not self.masked_input and "masked_input" in explicit:
            raise ConfigError(f"{source}: its model sees the image times the person mask (masked_input); "
                              "masked_input: false would feed it plain images; leave masked_input unset")
        masked = self.masked_input or saved_masked
        if self.model == model and self.focal == focal and self.masked_input == masked:
            return self
        return replace(self, model=model, focal=focal, masked_input=masked)

    @staticmethod
    def from_yaml(path: str | Path) -> TrainConfig:
        d = load_yaml_mapping(path)
        return TrainConfig.from_dict(d)

    @staticmethod
    def from_flags(mode: str, config_file: str | Path | None = None, **flags) -> TrainConfig:
        """The config of a command line: ``mode``, its recipe (:data:`MODE_RECIPES`), the fields of
        the YAML ``config_file`` over it (if any), under every flag that is not ``None`` (``resolution`` and ``heads`` set model fields;
        without a YAML file and ``losses``, the mode's default losses). With an ``init_checkpoint``,
        its model and focal are inherited (:meth:`inherit_from_checkpoint`; a model or focal set in
        the YAML or by the flags that differs from the checkpoint's is refused)."""
        yaml_fields = load_yaml_mapping(config_file) if config_file else {}
        if "mode" in yaml_fields and yaml_fields["mode"] != mode:
            raise ConfigError(f"{config_file}: mode is {yaml_fields['mode']!r} in the config file, but the command "
                              f"is {mode}; remove the mode line or use the {yaml_fields['mode']} command")
        # The YAML is read under the command's mode, so a file without losses gets this mode's defaults.
        base = {**MODE_RECIPES.get(mode, {}), "mode": mode}
        if config_file:
            try:
                from_file = TrainConfig.from_dict({**MODE_RECIPES.get(mode, {}), **yaml_fields, "mode": mode})
                from_file._check_types()  # the file's own values, named with the file
                base = from_file.to_dict()
            except ConfigError as err:
                raise ConfigError(f"{config_file}: {err}") from None
        if flags.get("losses") is None:
            flags.pop("losses", None)
            if "losses" not in yaml_fields:  # the defaults of the mode and the final body
                base.pop("losses", None)
        resolution = flags.pop("resolution", None)
        heads = flags.pop("heads", None)
        base.update({key: value for key, value in flags.items() if value is not None})
        config = TrainConfig.from_dict(base)
        if resolution is not None:
            config.model = replace(config.model, resolution=resolution).validate()
        if heads:
            config.model = replace(config.model, heads=tuple(heads)).validate()
        if config.init_checkpoint:
            explicit = set(yaml_fields) | ({"model"} if resolution is not None or heads else set())
            saved = load_checkpoint(config.init_checkpoint)["config"]
            config = config.inherit_from_checkpoint(saved, config.init_checkpoint, explicit)
        if ("mesh" not in config.model.heads and "fit_every" in MODE_RECIPES.get(mode, {})
                and "fit_every" not in yaml_fields and flags.get("fit_every") is None):
            config.fit_every = 0  # the recipe fits body parameters: a joint-head model has none
        return config

"""The shipped source model for real photographs, :data:`PHOTO_SOURCE`, and the recipe that
rebuilds it (``maskpose build-photo-source --out DIR``; docs/benchmark.md, "Real photographs").

The model sees the image **times the person mask** (``TrainConfig.masked_input``): the users of
maskpose have masks (the whole premise of adapting with silhouettes), and with the background
gone the synthetic-to-real gap shrinks to the person's own appearance. It is the shipped 64 px
studio model (:data:`maskpose.apps.demo.SHIPPED_SOURCE`) fine-tuned on the ``realistic`` domain
(clothing, skin, hair, lights, varied cameras, occluders and other people; the stored mask is the
visible part of the person) at 64 px, with the demo's milder poses
(:class:`~maskpose.body.sampler.PoseDistribution`): the full sampler's random joint angles, and
half of the poses from the motion library (:class:`~maskpose.synth.realistic.MixedPoses`), both
measured worse on real crops (docs/benchmark.md, "Real photographs").

With its stages' thread counts (one, and two for the 128 px second stage) on one CPU the same
recipe gives the same weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from maskpose.apps.demo import SHIPPED_SOURCE, shipped_checkpoint
from maskpose.body.sampler import PoseDistribution, PoseSampler
from maskpose.data.dataset import dataset_ready
from maskpose.device import torch_threads
from maskpose.errors import ConfigError
from maskpose.models.regressor import ModelConfig
from maskpose.synth.generator import SynthesisConfig, generate
from maskpose.synth.realistic import MixedPoses
from maskpose.train.checkpoint import at_resolution, load_checkpoint, save_checkpoint
from maskpose.train.config import TrainConfig
from maskpose.train.loop import train

#: The shipped real-photo model (package data, ``src/maskpose/assets``).
PHOTO_SOURCE = "source_realistic_64.pt"

#: What a shipped checkpoint keeps of a training checkpoint: the weights, the config, the step and
#: the body record (no optimiser, no history).
SHIPPED_KEYS = ("model", "config", "step", "body")


@dataclass
class PhotoSourceRecipe:
    """How :data:`PHOTO_SOURCE` is built: ``samples`` realistic training crops at ``resolution``
    (base seed ``seed``; poses from ``poses``' milder sampler, with ``motion_share`` of them
    from the motion library instead), then ``steps`` supervised steps of batch ``batch_size`` from the
    shipped model ``init`` (the studio model by default; at another resolution than ``resolution``,
    its weights as a model of that resolution, :func:`~maskpose.train.checkpoint.at_resolution`), Adam at
    ``lr`` with a cosine schedule, masked input, on ``threads`` threads (a fixed count: bit-exact
    rebuilds on one machine). ``then``: a further fine-tune of the result, on its own crops (its
    ``init`` unused). The result, the last stage's, is :meth:`shipped_name`."""

    samples: int = 24000
    resolution: int = 64
    seed: int = 7
    motion_share: float = 0.0
    poses: PoseDistribution = field(default_factory=PoseDistribution)
    steps: int = 6000
    batch_size: int = 32
    lr: float = 3e-4
    threads: int = 1
    device: str = "cpu"
    init: str = SHIPPED_SOURCE
    then: PhotoSourceRecipe | None = None

    def with_every_stage(self, **changes) -> PhotoSourceRecipe:
        """This recipe with ``changes`` (e.g. ``device``, ``steps``) in each of its stages."""
        then = None if self.then is None else self.then.with_every_stage(**changes)
        return replace(self, **changes, then=then)

    def shipped_name(self) -> str:
        """The package file this recipe builds: :data:`PHOTO_SOURCE` at 64 px,
        ``source_realistic_<resolution>.pt`` at another resolution."""
        return f"source_realistic_{self.resolution}.pt"

    def pose_source(self) -> PoseSampler | MixedPoses:
        """The training split's poses: ``poses``' sampler seeded as the demo seeds its splits
        (``seed * 1000``), or with a ``motion_share`` a :class:`MixedPoses` of the two."""
        if self.motion_share == 0.0:
            return self.poses.sampler(self.seed * 1000)
        return MixedPoses(self.motion_share, distribution=self.poses)

    def run(self, data: str | Path, init: str | Path, out: str | Path) -> TrainConfig:
        """The fine-tuning run from ``init`` (the shipped studio model) on ``data``."""
        return TrainConfig(mode="pretrain", data=str(data), out=str(out), init_checkpoint=str(init),
                           steps=self.steps, batch_size=self.batch_size, lr=self.lr, lr_schedule="cosine",
                           masked_input=True, seed=0, device=self.device, log_every=100, checkpoint_every=500)


#: The shipped real-photo models' recipes, by resolution: at 64 px from the studio model; at 128 px
#: from the 64 px real-photo model (its weights read 128 px inputs after a fine-tune), then 6,000
#: more steps on 24,000 new crops from a lower learning rate (docs/benchmark.md, "Real photographs").
PHOTO_RECIPES: dict[int, PhotoSourceRecipe] = {
    64: PhotoSourceRecipe(),
    128: PhotoSourceRecipe(resolution=128, init=PHOTO_SOURCE,
                           then=PhotoSourceRecipe(resolution=128, seed=8, lr=2e-4, threads=2)),
}


def shippable(checkpoint: str | Path, out: str | Path) -> Path:
    """``checkpoint`` as the package ships it: only :data:`SHIPPED_KEYS`."""
    state = load_checkpoint(checkpoint)
    return save_checkpoint(out, {key: state[key] for key in SHIPPED_KEYS})


def build_photo_source(out: str | Path, recipe: PhotoSourceRecipe | None = None, progress: bool = True) -> Path:
    """Build the recipe's model (:data:`PHOTO_SOURCE` by default) under ``out``: the training split
    in ``out/data`` (kept, and reused when complete), the run in ``out/run`` (resumed when
    interrupted), and the shippable checkpoint ``out/<recipe.shipped_name()>``, which is returned.
    Copy it to ``src/maskpose/assets`` to ship it. A recipe's ``then`` stage is built the same way
    under ``out/then`` from the stage before's checkpoint, and its checkpoint is returned."""
    recipe = recipe or PhotoSourceRecipe()
    init = shipped_checkpoint(recipe.init)
    if init is None:
        rebuild = ("maskpose demo --retrain-source" if recipe.init == SHIPPED_SOURCE
                   else "maskpose build-photo-source")
        raise ConfigError(f"the shipped model {recipe.init} is missing from the package ({rebuild} rebuilds it)")
    return _build_stage(Path(out), recipe, init, progress)


def _build_stage(out: Path, recipe: PhotoSourceRecipe, init: Path, progress: bool) -> Path:
    data = out / "data"
    if ModelConfig.from_dict(load_checkpoint(init)["config"]["model"]).resolution != recipe.resolution:
        out.mkdir(parents=True, exist_ok=True)
        init = at_resolution(init, recipe.resolution, out / f"init_{recipe.resolution}.pt")
    with torch_threads(recipe.threads):
        if not dataset_ready(data, "realistic", recipe.samples, recipe.resolution):
            generate(data, "realistic", recipe.samples, recipe.resolution, recipe.seed, "train",
                     config=SynthesisConfig(geodesic=False, device=recipe.device), pose_source=recipe.pose_source())
        result = train(recipe.run(data, init, out / "run"), progress=progress)
    built = shippable(result.checkpoint, out / recipe.shipped_name())
    return built if recipe.then is None else _build_stage(out / "then", recipe.then, built, progress)


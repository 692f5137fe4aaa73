"""``maskpose bench peers``: maskpose against MediaPipe Pose, the off-the-shelf peer to beat (docs/peers.md).

Datasets, all scored the same way:

* synthetic targets rendered by the benchmark at a resolution fair to MediaPipe
  (:attr:`PeersConfig.resolution`, 192 px by default): labelled ``test`` splits of
  :func:`~maskpose.synth.generator.generate` (2D and 3D ground truth), poses from the benchmark's
  :class:`~maskpose.body.sampler.PoseDistribution` (as in ``bench adapt``) where the domain has none
  of its own;
* real maskpose dataset folders (``--real DIR``, e.g. from ``maskpose data import coco``): 2D only;
* COCO keypoint files (``--coco JSON:IMAGES``) imported on the fly with
  :func:`~maskpose.data.adapters.import_coco` at the benchmark's resolution (at most ``n`` people).

Methods: the peer (MediaPipe Pose, static-image mode, ``model_complexity`` 1), run as a subprocess of
its own interpreter (:attr:`PeersConfig.peer_python`) on :mod:`maskpose.bench.mediapipe_worker`; the
maskpose source model (:attr:`PeersConfig.checkpoint`); and, per dataset, an adapted maskpose model
(:attr:`PeersConfig.adapted`).

Metrics per dataset and method:

* ``detection_rate`` — % of samples with a pose (maskpose always predicts one: 100 %);
* ``pck2d@F`` for ``F`` in 0.05, 0.1, 0.2 — % of the labelled keypoints of
  :data:`~maskpose.eval.LIMB_JOINTS` within ``F`` times the crop side (pixels of the dataset's crop),
  pooled over all keypoints; every keypoint of a sample the peer misses counts as a failure
  (:func:`~maskpose.train.evaluate.keypoint_metrics`, also ``pck2d_flip@F``);
* ``pa_mpjpe`` (synthetic data) — mm, per-sample Procrustes (:func:`~maskpose.eval.pa_mpjpe`) over
  :data:`PA_JOINT_NAMES`: the 12 limb joints plus the pelvis defined as the midpoint of the hips for
  every method and the ground truth (Anny's H36M pelvis sits ~12 mm from it; MediaPipe has no pelvis
  landmark). MediaPipe's ``pose_world_landmarks`` against ``joints3d``, over the samples it detects
  (``pa_mpjpe_count``); maskpose over all samples, and over the peer's detections beside it
  (``pa_mpjpe_on_peer_detected``); samples whose ground truth lacks one of the 13 points are left out.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch

from maskpose.apps.demo import SHIPPED_SOURCE, SMALL_SOURCE, shipped_checkpoint
from maskpose.bench.common import _generate, _Log
from maskpose.body.anny_body import AnnyBody
from maskpose.body.sampler import PoseDistribution
from maskpose.conventions import H36M_JOINTS
from maskpose.data.adapters import import_coco
from maskpose.data.dataset import MaskposeDataset
from maskpose.device import resolve_device
from maskpose.errors import ConfigError, DataError
from maskpose.eval import LIMB_JOINTS, pa_mpjpe
from maskpose.eval.keypoints import LIMB_JOINT_NAMES
from maskpose.io import atomic_write_json
from maskpose.synth.domains import DOMAINS
from maskpose.train.checkpoint import load_model, saved_masked_input
from maskpose.train.evaluate import (
    PCK2D_FRACTIONS,
    checkpoint_body,
    collect_predictions,
    crop_side,
    keypoint_metrics,
    to_data_pixels,
)
from maskpose.train.pipeline import build_body
from maskpose.train.refine import MaskRefiner, check_refine

#: The default synthetic targets (studio and realistic are the source domains, for reference).
DEFAULT_TARGETS: tuple[str, ...] = ("thermal", "lowres-32", "lowres-52", "cctv", "occluded", "studio", "realistic")
#: The worker script the peer's interpreter runs (imports only numpy, cv2, mediapipe).
WORKER = Path(__file__).with_name("mediapipe_worker.py")
#: The environment variable naming the peer's interpreter.
PEER_PYTHON_ENV = "MASKPOSE_PEER_PYTHON"
#: How to make the peer's environment (in error messages).
PEER_ENV_HINT = ("make the peer env: python3.11 -m venv .venv-peers && .venv-peers/bin/pip install mediapipe==0.10.14, "
                 "then pass --peer-python .venv-peers/bin/python (docs/peers.md)")

#: H36M-17 limb joint -> MediaPipe Pose landmark (both "left" = the person's left).
MEDIAPIPE_LANDMARK: dict[str, int] = {
    "r_hip": 24, "r_knee": 26, "r_ankle": 28, "l_hip": 23, "l_knee": 25, "l_ankle": 27,
    "l_shoulder": 11, "l_elbow": 13, "l_wrist": 15, "r_shoulder": 12, "r_elbow": 14, "r_wrist": 16,
}
#: MediaPipe's nose (stands in for the H36M head, which is never scored).
MEDIAPIPE_NOSE = 0
#: The joints of the 3D comparison: the 12 limb joints, then the pelvis as the midpoint of the hips.
PA_JOINT_NAMES: tuple[str, ...] = (*LIMB_JOINT_NAMES, "pelvis (mid-hips)")
_HIPS = (H36M_JOINTS.index("r_hip"), H36M_JOINTS.index("l_hip"))
#: The MediaPipe landmarks the 3D comparison reads (the limb joints; the hips give the pelvis).
_PA_LANDMARKS = sorted(MEDIAPIPE_LANDMARK.values())
_METHOD_ORDER = ("mediapipe", "maskpose", "maskpose_refined", "maskpose_adapted")
#: A missed keypoint's stand-in coordinate (far outside every crop: a failure at every threshold).
_MISS = 1e6


@dataclass
class PeersConfig:
    """Every default of ``maskpose bench peers`` in one place."""

    #: synthetic target domains (any of ``maskpose.synth.domains.DOMAINS``, studio included)
    targets: tuple[str, ...] = DEFAULT_TARGETS
    #: samples per synthetic target; also the most people a ``coco`` import takes
    n: int = 100
    #: crop side of the synthetic targets and the COCO imports (px)
    resolution: int = 192
    data_seed: int = 0
    poses: PoseDistribution = field(default_factory=PoseDistribution)
    #: maskpose dataset folders of real people (2D keypoints), scored whole
    real: tuple[str, ...] = ()
    #: COCO keypoint files as ``"JSON:IMAGES"`` (the JSON and its image folder), imported on the fly
    coco: tuple[str, ...] = ()
    #: the maskpose model; "" = the shipped source model (``SHIPPED_SOURCE``, else ``SMALL_SOURCE``)
    checkpoint: str = ""
    #: per-dataset adapted models: dataset name -> checkpoint (or ``"NAME=PATH"`` strings)
    adapted: dict[str, str] = field(default_factory=dict)
    #: > 0: also the source model with per-image refinement (``predict --refine N``: each body
    #: fitted to its crop's mask for N Adam iterations), the ``maskpose_refined`` row
    refine: int = 0
    #: the peer's interpreter; "" = ``$MASKPOSE_PEER_PYTHON``, else this one if it imports mediapipe
    peer_python: str = ""
    #: the peer's script; "" = :data:`WORKER` (tests point it at a fake peer)
    worker: str = ""
    #: resize crops to this square side before MediaPipe (None: as rendered / imported)
    peer_size: int | None = None
    #: seconds one peer run may take
    peer_timeout: float = 3600.0
    #: rendered data, peer outputs, ``bench_peers.json`` and ``bench_peers.md``
    out: str = "bench_peers"
    #: also write the JSON payload here ("" = only ``out/bench_peers.json``)
    json_path: str = ""
    device: str = "cpu"
    batch_size: int = 32

    def __post_init__(self):
        for name in ("targets", "real", "coco"):
            value = getattr(self, name)
            setattr(self, name, (value,) if isinstance(value, str) else tuple(str(v) for v in value))
        if isinstance(self.poses, Mapping):
            self.poses = PoseDistribution(**self.poses)
        self.adapted = parse_adapted(self.adapted)

    @staticmethod
    def quick() -> PeersConfig:
        """Every default target, 16 samples each (minutes on 2 cores)."""
        return PeersConfig(n=16)

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["poses"] = asdict(self.poses)
        for name in ("targets", "real", "coco"):
            d[name] = list(d[name])
        return d

    def coco_pairs(self) -> list[tuple[Path, Path]]:
        """``coco`` as ``(json, image folder)`` pairs."""
        pairs = []
        for spec in self.coco:
            json_path, sep, images = spec.partition(":")
            if not sep or not json_path or not images:
                raise ConfigError(f"--coco {spec!r}: give JSON:IMAGES (the keypoints JSON and its image folder)")
            pairs.append((Path(json_path), Path(images)))
        return pairs

    def dataset_names(self) -> list[str]:
        """The names of the table's datasets, in order: targets, real folders, COCO imports."""
        names: list[str] = []
        for name in [*self.targets, *(Path(p).name for p in self.real),
                     *(f"coco-{j.stem}" for j, _ in self.coco_pairs())]:
            base, k = name, 2
            while name in names:
                name, k = f"{base}-{k}", k + 1
            names.append(name)
        return names

    def validate(self) -> PeersConfig:
        if not self.targets and not self.real and not self.coco:
            raise ConfigError("bench peers needs at least one dataset: targets, --real or --coco")
        bad = [t for t in self.targets if t not in DOMAINS or DOMAINS[t].needs_perturbation]
        if bad:
            known = sorted(k for k, d in DOMAINS.items() if not d.needs_perturbation)
            raise ConfigError(f"unknown target domain(s) {bad}; known: {known}")
        for name, value, low in (("n", self.n, 1), ("resolution", self.resolution, 16), ("batch_size", self.batch_size, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"{name} must be an int >= {low}, got {value!r}")
        if self.peer_size is not None and (not isinstance(self.peer_size, int) or self.peer_size < 16):
            raise ConfigError(f"peer_size must be None or an int >= 16, got {self.peer_size!r}")
        if isinstance(self.refine, bool) or not isinstance(self.refine, int) or self.refine < 0:
            raise ConfigError(f"refine must be an int >= 0 (Adam iterations; 0: off), got {self.refine!r}")
        if not self.peer_timeout > 0:
            raise ConfigError(f"peer_timeout must be > 0 seconds, got {self.peer_timeout!r}")
        for path in self.real:
            if not (Path(path) / "meta.json").is_file():
                raise DataError(f"--real {path}: not a maskpose dataset folder (no meta.json)")
        for json_path, images in self.coco_pairs():
            if not json_path.is_file():
                raise DataError(f"--coco: {json_path} does not exist")
            if not images.is_dir():
                raise DataError(f"--coco: image folder {images} does not exist")
        for label, path in ([("--checkpoint", self.checkpoint)] if self.checkpoint else []) + \
                [(f"--adapted {k}", v) for k, v in self.adapted.items()]:
            if not Path(path).is_file():
                raise ConfigError(f"{label}: {path} does not exist")
        names = self.dataset_names()
        unknown = sorted(set(self.adapted) - set(names))
        if unknown:
            raise ConfigError(f"--adapted names {unknown} match no dataset; the datasets are {names}")
        if self.worker and not Path(self.worker).is_file():
            raise ConfigError(f"worker {self.worker} does not exist")
        return self


def parse_adapted(adapted) -> dict[str, str]:
    """``{name: checkpoint}`` from a mapping or from ``"NAME=PATH"`` strings."""
    if isinstance(adapted, Mapping):
        return {str(k): str(v) for k, v in adapted.items()}
    out: dict[str, str] = {}
    for spec in ([adapted] if isinstance(adapted, str) else adapted):
        name, sep, path = str(spec).partition("=")
        if not sep or not name or not path:
            raise ConfigError(f"--adapted {spec!r}: give NAME=PATH (a dataset name and its adapted checkpoint)")
        if name in out:
            raise ConfigError(f"--adapted {name!r} given twice")
        out[name] = path
    return out


def resolve_peer_python(cfg: PeersConfig) -> str:
    """The peer's interpreter: ``peer_python``, else ``$MASKPOSE_PEER_PYTHON``, else this interpreter
    when it can import mediapipe; ``ConfigError`` (saying how to make the peer env) otherwise."""
    for source, value in (("--peer-python", cfg.peer_python), (f"${PEER_PYTHON_ENV}", os.environ.get(PEER_PYTHON_ENV))):
        if value:
            if not Path(value).is_file():
                raise ConfigError(f"{source} {value}: no such interpreter; {PEER_ENV_HINT}")
            return value
    if importlib.util.find_spec("mediapipe") is not None:
        return sys.executable
    raise ConfigError(f"no peer interpreter: mediapipe is not installed here and neither --peer-python nor "
                      f"${PEER_PYTHON_ENV} is set; {PEER_ENV_HINT}")


def default_checkpoint() -> tuple[Path, str]:
    """The shipped source model and its name; the small one while the default is missing."""
    for name in (SHIPPED_SOURCE, SMALL_SOURCE):
        path = shipped_checkpoint(name)
        if path is not None:
            return path, name
    raise ConfigError(f"no shipped source model ({SHIPPED_SOURCE} or {SMALL_SOURCE}) in the package; "
                      "pass --checkpoint")


# ---------------------------------------------------------------------- the peer
def run_peer(python: str, worker: str | Path, dataset: Path, out_npz: Path, name: str, size: int | None = None,
             timeout: float = 3600.0) -> dict[str, np.ndarray]:
    """Run the worker on one dataset folder with the peer's interpreter; its arrays, checked.
    A failure is one ``ConfigError`` line naming the dataset (and the worker's last error line)."""
    out_npz.parent.mkdir(parents=True, exist_ok=True)
    out_npz.unlink(missing_ok=True)
    cmd = [python, str(worker), str(dataset), str(out_npz)] + (["--size", str(size)] if size else [])
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ConfigError(f"peer on dataset {name}: ran past {timeout:g} s") from None
    except OSError as err:
        raise ConfigError(f"peer on dataset {name}: cannot run {python} ({err.strerror or err})") from None
    if proc.returncode != 0 or not out_npz.is_file():
        lines = [ln.strip() for ln in (proc.stderr or "").splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.startswith("error:")]
        why = (errors or lines or [f"exit code {proc.returncode}, no output"])[-1].removeprefix("error:").strip()
        raise ConfigError(f"peer on dataset {name} failed (exit {proc.returncode}): {why}")
    return load_peer_output(out_npz, len(MaskposeDataset(dataset)), name)


def load_peer_output(path: Path, n: int, name: str = "") -> dict[str, np.ndarray]:
    """The worker's ``.npz``, its shapes checked against ``n`` samples."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as err:
        raise ConfigError(f"peer output {path} for dataset {name}: unreadable ({err})") from None
    shapes = {"detected": (n,), "landmarks2d": (n, 33, 2), "visibility": (n, 33), "world": (n, 33, 3)}
    for key, shape in shapes.items():
        if key not in arrays or arrays[key].shape != shape:
            got = arrays[key].shape if key in arrays else "missing"
            raise ConfigError(f"peer output {path} for dataset {name}: {key} should be {shape}, got {got}")
    arrays["detected"] = arrays["detected"].astype(bool)
    return arrays


def mediapipe_to_h36m(landmarks: np.ndarray) -> np.ndarray:
    """``(N, 33, D)`` MediaPipe landmarks -> ``(N, 17, D)`` H36M-17: the 12 limb joints mapped
    (:data:`MEDIAPIPE_LANDMARK`); pelvis, thorax and spine from the hips and shoulders, neck and head
    from the nose (never scored: stand-ins for a full array)."""
    lm = np.asarray(landmarks, np.float64)
    out = np.zeros(lm.shape[:1] + (17,) + lm.shape[2:])
    for joint, k in MEDIAPIPE_LANDMARK.items():
        out[:, H36M_JOINTS.index(joint)] = lm[:, k]
    pelvis, thorax = (lm[:, 23] + lm[:, 24]) / 2, (lm[:, 11] + lm[:, 12]) / 2
    out[:, H36M_JOINTS.index("pelvis")], out[:, H36M_JOINTS.index("thorax")] = pelvis, thorax
    out[:, H36M_JOINTS.index("spine")] = (pelvis + thorax) / 2
    out[:, H36M_JOINTS.index("neck")] = (thorax + lm[:, MEDIAPIPE_NOSE]) / 2
    out[:, H36M_JOINTS.index("head")] = lm[:, MEDIAPIPE_NOSE]
    return out


def pa_joints(joints3d: np.ndarray | torch.Tensor) -> torch.Tensor:
    """``(N, 17, 3)`` H36M-17 -> ``(N, 13, 3)`` float64: :data:`PA_JOINT_NAMES` (the limb joints,
    then the midpoint of the hips)."""
    j = torch.as_tensor(np.asarray(joints3d, np.float64))
    return torch.cat([j[:, list(LIMB_JOINTS)], j[:, list(_HIPS)].mean(1, keepdim=True)], 1)


def _pa(pred: torch.Tensor, gt: torch.Tensor) -> float | None:
    return float(pa_mpjpe(pred, gt, reduction="mean")) if len(pred) else None


def _pck(pred2d: torch.Tensor, gt2d: torch.Tensor, side: float, prefix: str = "") -> dict:
    m = keypoint_metrics(pred2d, gt2d, side)
    keys = [f"pck2d@{f:g}" for f in PCK2D_FRACTIONS] + [f"pck2d_flip@{f:g}" for f in PCK2D_FRACTIONS]
    return {prefix + k: m[k] for k in keys} | ({} if prefix else {"num_keypoints": m["num_keypoints"]})


def score_peer(peer: Mapping[str, np.ndarray], gt2d: torch.Tensor, gt3d: np.ndarray | None, side: float) -> dict:
    """The metrics of the module docstring for the peer's outputs; ``gt2d`` ``(N, 17, 2)`` (NaN:
    unlabelled), ``gt3d`` ``(N, 17, 3)`` metres or ``None``."""
    det = np.asarray(peer["detected"], bool)
    n = len(det)
    pred = mediapipe_to_h36m(peer["landmarks2d"])
    pred[~det] = _MISS
    pred = torch.from_numpy(np.nan_to_num(pred, nan=_MISS)).float()
    out: dict = {"num_samples": n, "detected": int(det.sum()), "detection_rate": 100.0 * float(det.mean()) if n else None}
    out |= _pck(pred, gt2d, side)
    if det.any():
        d = torch.from_numpy(det)
        m = keypoint_metrics(pred[d], gt2d[d], side)
        out |= {f"pck2d_detected@{f:g}": m[f"pck2d@{f:g}"] for f in PCK2D_FRACTIONS}
        out["error2d_px_detected"] = m["error2d_px"]
    if gt3d is not None:
        world = np.asarray(peer["world"], np.float64)
        ok = det & np.isfinite(world[:, _PA_LANDMARKS]).all((1, 2)) & labelled_3d(gt3d)
        pred3d = torch.from_numpy(mediapipe_to_h36m(world[ok]))
        out["pa_mpjpe"] = _pa(pa_joints(pred3d), pa_joints(gt3d[ok]))
        out["pa_mpjpe_count"] = int(ok.sum())
    return out


# ---------------------------------------------------------------------- maskpose
class _Model:
    """A loaded maskpose checkpoint, predicting on dataset folders."""

    def __init__(self, checkpoint: str | Path, device, refine: int = 0):
        self.checkpoint, self.device = str(checkpoint), device
        self.model, state = load_model(checkpoint, device)
        self.focal = state["config"].get("focal") or None
        self.body = checkpoint_body(state, device)
        self.masked_input = saved_masked_input(state["config"])
        refine = check_refine(refine, checkpoint, "mesh" in self.model.config.heads)
        if refine and self.body is None:
            self.body = build_body("anny", device)
        self.refiner = MaskRefiner(self.body, self.model.config, refine, device=device) if refine else None

    def predict(self, data: MaskposeDataset, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``joints2d`` in the dataset's crop pixels and ``joints3d`` (metres), ``(N, 17, ·)``."""
        preds = collect_predictions(self.model, data, self.device, batch_size, self.focal, self.body,
                                    with_silhouettes=False, masked_input=self.masked_input, refiner=self.refiner)
        pred2d = to_data_pixels(preds["joints2d"][:, :17], self.model.config.resolution, data.resolution)
        return pred2d, preds["joints3d"][:, :17]


def score_maskpose(pred2d: torch.Tensor, pred3d: torch.Tensor, gt2d: torch.Tensor, gt3d: np.ndarray | None,
                   side: float, peer_detected: np.ndarray) -> dict:
    """The same metrics for a maskpose model (every sample has a pose), and on the peer's detections."""
    n = len(pred2d)
    out: dict = {"num_samples": n, "detected": n, "detection_rate": 100.0}
    out |= _pck(pred2d, gt2d, side)
    det = torch.from_numpy(np.asarray(peer_detected, bool))
    if bool(det.any()):
        out |= {k.replace("pck2d", "pck2d_on_peer_detected"): v
                for k, v in _pck(pred2d[det], gt2d[det], side).items() if k.startswith("pck2d@")}
    if gt3d is not None:
        ok = torch.from_numpy(labelled_3d(gt3d))
        gt, pred = pa_joints(gt3d[ok.numpy()]), pa_joints(pred3d[ok].double())
        out["pa_mpjpe"], out["pa_mpjpe_count"] = _pa(pred, gt), int(ok.sum())
        on_peer = det[ok]
        out["pa_mpjpe_on_peer_detected"] = _pa(pred[on_peer], gt[on_peer])
    return out


def labelled_3d(gt3d: np.ndarray) -> np.ndarray:
    """``(N,)`` bool: the samples whose ground truth labels all 13 points of the 3D comparison."""
    return np.isfinite(np.asarray(gt3d)[:, list(LIMB_JOINTS)]).all((1, 2))


# ---------------------------------------------------------------------- the run
def prepare_datasets(cfg: PeersConfig, out: Path, log: _Log) -> dict[str, dict]:
    """``{name: {"path", "kind"}}``: the synthetic targets rendered (reused when already in ``out``),
    the real folders, the COCO imports."""
    names = iter(cfg.dataset_names())
    datasets: dict[str, dict] = {}
    if cfg.targets:
        body = AnnyBody(device=resolve_device(cfg.device))
        for t in cfg.targets:
            path = _generate(out / "data" / t, t, cfg.n, cfg.resolution, cfg.data_seed, "test", True, body, log,
                             poses=cfg.poses)
            datasets[next(names)] = {"path": str(path), "kind": "synthetic"}
    for path in cfg.real:
        datasets[next(names)] = {"path": str(Path(path)), "kind": "real"}
    for json_path, images in cfg.coco_pairs():
        name = next(names)
        log(f"importing {json_path} (at most {cfg.n} people at {cfg.resolution} px)")
        path = import_coco(json_path, images, out / "data" / name, res=cfg.resolution, limit=cfg.n, split="test")
        datasets[name] = {"path": str(path), "kind": "coco"}
    return datasets


def run_peers(cfg: PeersConfig, printer: Callable[[str], None] | None = None) -> dict:
    """Render / import the datasets, run the peer and the maskpose model(s) on each, and write
    ``out/bench_peers.json`` (also ``json_path``) and ``out/bench_peers.md``. Returns the payload."""
    cfg.validate()
    start = time.time()
    device = resolve_device(cfg.device)
    python = resolve_peer_python(cfg)
    worker = Path(cfg.worker) if cfg.worker else WORKER
    if cfg.checkpoint:
        checkpoint, checkpoint_name = Path(cfg.checkpoint), Path(cfg.checkpoint).name
    else:
        checkpoint, checkpoint_name = default_checkpoint()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    log = _Log("peers", printer)
    if not cfg.checkpoint and checkpoint_name != SHIPPED_SOURCE:
        log(f"the shipped source model {SHIPPED_SOURCE} is missing; using {checkpoint_name}")
    datasets = prepare_datasets(cfg, out, log)
    source = _Model(checkpoint, device)
    refined = _Model(checkpoint, device, cfg.refine) if cfg.refine else None
    results: dict[str, dict] = {}
    peer_info: dict = {"python": python, "worker": str(worker), "size": cfg.peer_size}
    for name, entry in datasets.items():
        path = Path(entry["path"])
        data = MaskposeDataset(path)
        if not data.has("joints2d"):
            raise DataError(f"dataset {name} ({path}): no joints2d; bench peers scores 2D keypoints")
        if cfg.refine and not data.has("mask"):
            raise DataError(f"dataset {name} ({path}): --refine fits each body to its crop's mask, and it has no masks")
        gt2d = torch.from_numpy(np.asarray(data.arrays["joints2d"][data.indices], np.float32))
        gt3d = np.asarray(data.arrays["joints3d"][data.indices], np.float64) if data.has("joints3d") else None
        side = float(crop_side(data))
        log(f"{name}: the peer on {len(data)} samples ({data.resolution[0]}x{data.resolution[1]} px)")
        t0 = time.time()
        peer = run_peer(python, worker, path, out / "peer" / f"{name}.npz", name, cfg.peer_size, cfg.peer_timeout)
        for key in ("mediapipe_version", "model_complexity"):
            if key in peer:
                peer_info[key] = peer[key].item()
        methods = {"mediapipe": score_peer(peer, gt2d, gt3d, side) | {"seconds": round(time.time() - t0, 1)}}
        models = [("maskpose", source)] + ([("maskpose_refined", refined)] if refined is not None else [])
        if name in cfg.adapted:
            models.append(("maskpose_adapted", _Model(cfg.adapted[name], device)))
        for method, model in models:
            t0 = time.time()
            pred2d, pred3d = model.predict(data, cfg.batch_size)
            methods[method] = score_maskpose(pred2d, pred3d, gt2d, gt3d, side, peer["detected"]) | {
                "checkpoint": model.checkpoint, "seconds": round(time.time() - t0, 1)}
        results[name] = {**entry, "num_samples": len(data), "resolution": list(data.resolution),
                         "has_3d": gt3d is not None, "methods": methods}
        row = methods["mediapipe"]
        log(f"  {name}: MediaPipe detects {row['detected']}/{row['num_samples']}, PCK@0.1 "
            f"{_fmt(row['pck2d@0.1'])} % (maskpose {_fmt(methods['maskpose']['pck2d@0.1'])} %)")
    payload = {
        "benchmark": "peers", "config": cfg.to_dict(), "checkpoint": str(checkpoint),
        "checkpoint_name": checkpoint_name, "peer": peer_info,
        "pa_joints": list(PA_JOINT_NAMES), "pck_fractions": list(PCK2D_FRACTIONS),
        "datasets": results, "seconds": round(time.time() - start, 1),
    }
    md = peers_markdown(payload)
    payload["table"] = md
    atomic_write_json(out / "bench_peers.json", payload)
    (out / "bench_peers.md").write_text(md + "\n")
    if cfg.json_path:
        atomic_write_json(Path(cfg.json_path), payload)
    log(f"wrote {out / 'bench_peers.json'}, {out / 'bench_peers.md'}" + (f", {cfg.json_path}" if cfg.json_path else ""))
    print(md, flush=True) if printer is None else printer(md)
    return payload


def _fmt(value, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def peers_markdown(payload: dict) -> str:
    """The table: one row per dataset and method."""
    peer = payload.get("peer", {})
    lines = [f"**maskpose vs MediaPipe Pose {peer.get('mediapipe_version', '')}** (model_complexity "
             f"{peer.get('model_complexity', 1)}; maskpose: {payload.get('checkpoint_name', '')}). PCK: % of the "
             "labelled limb keypoints within F x the crop side, misses count as failures. PA-MPJPE: mm over the 12 limb "
             "joints + mid-hips, per-sample Procrustes; MediaPipe over the samples it detects (n).", "",
             "| dataset | method | detected % | PCK@0.05 | PCK@0.1 | PCK@0.2 | PA-MPJPE (n) | PA-MPJPE on MediaPipe's detections |",
             "|---|---|---|---|---|---|---|---|"]
    for name, entry in payload["datasets"].items():
        for method in _METHOD_ORDER:
            m = entry["methods"].get(method)
            if m is None:
                continue
            pa = "–" if m.get("pa_mpjpe_count") is None else f"{_fmt(m['pa_mpjpe'])} ({m['pa_mpjpe_count']})"
            on_peer = _fmt(m.get("pa_mpjpe_on_peer_detected")) if method != "mediapipe" and entry["has_3d"] else "–"
            pcks = " | ".join(_fmt(m[f"pck2d@{f:g}"]) for f in PCK2D_FRACTIONS)
            lines.append(f"| {name} | {method} | {_fmt(m['detection_rate'])} | {pcks} | {pa} | {on_peer} |")
    return "\n".join(lines)


__all__ = ["DEFAULT_TARGETS", "MEDIAPIPE_LANDMARK", "PA_JOINT_NAMES", "PeersConfig", "WORKER", "load_peer_output",
           "mediapipe_to_h36m", "pa_joints", "parse_adapted", "peers_markdown", "resolve_peer_python", "run_peer",
           "run_peers", "score_maskpose", "score_peer"]

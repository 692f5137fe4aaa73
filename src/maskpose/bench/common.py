"""What the benchmarks share below their own modules: the timed log and the generation (or reuse)
of a synthetic split (``bench adapt``, ``bench unsup`` and ``bench peers`` all render through it)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from maskpose.body.sampler import PoseDistribution
from maskpose.conventions import seed_key
from maskpose.synth.domains import get_domain
from maskpose.synth.generator import generate


class _Log:
    def __init__(self, name: str, printer: Callable[[str], None] | None = None):
        self.name, self.start = name, time.time()
        self.printer = printer or (lambda m: print(m, flush=True))

    def __call__(self, msg: str) -> None:
        self.printer(f"[bench {self.name} {time.time() - self.start:7.1f}s] {msg}")


def _dataset_ready(path: Path, n: int, res: int, labels: bool, domain: str) -> bool:
    """A finished dataset (``meta.json`` is written last) of this domain, size and resolution."""
    meta = path / "meta.json"
    if not meta.exists():
        return False
    try:
        info = json.loads(meta.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return (int(info.get("num_samples", -1)) == n and list(info.get("resolution", [])) == [res, res]
            and info.get("domain") == domain and (not labels or "joints3d" in info.get("fields", {})))


def _generate(path: Path, domain: str, n: int, res: int, seed: int, split: str, labels: bool, body,
              log: _Log, perturbation=None, poses: PoseDistribution = PoseDistribution()) -> Path:
    """The dataset at ``path`` (reused when a finished one of this domain, size and resolution is
    there, else generated). Poses: the domain's own (``motion``; ``bgsub`` takes its people's motion
    from its videos), else ``poses``, seeded by ``(seed, domain, split)``."""
    if _dataset_ready(path, n, res, labels, domain):
        log(f"reusing {path}")
        return path
    log(f"generating {domain}/{split}: {n} samples at {res} px{' with labels' if labels else ''}")
    pose_seed = seed_key(f"{seed}/{domain}/{split}")
    # a domain with poses of its own (motion) keeps them; the others draw the benchmark's distribution
    spec = get_domain(domain)
    own = spec.pose_source is not None or spec.generator is not None
    pose_source = None if own else poses.sampler(pose_seed)
    return generate(path, domain, n, res, seed, split, labels=labels, body=body, perturbation=perturbation,
                    pose_source=pose_source)

"""What the benchmarks share below their own modules: the timed log and the generation (or reuse)
of a synthetic split (``bench adapt``, ``bench unsup`` and ``bench peers`` all render through it)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from maskpose.body.sampler import PoseDistribution
from maskpose.conventions import seed_key
from maskpose.data.dataset import dataset_ready
from maskpose.synth.domains import get_domain
from maskpose.synth.generator import generate


class _Log:
    def __init__(self, name: str, printer: Callable[[str], None] | None = None):
        self.name, self.start = name, time.time()
        self.printer = printer or (lambda m: print(m, flush=True))

    def __call__(self, msg: str) -> None:
        self.printer(f"[bench {self.name} {time.time() - self.start:7.1f}s] {msg}")


def _generate(path: Path, domain: str, n: int, res: int, seed: int, split: str, labels: bool, body,
              log: _Log, perturbation=None, poses: PoseDistribution = PoseDistribution()) -> Path:
    """The dataset at ``path`` (reused when a finished one of this domain, size and resolution is
    there, else generated). Poses: the domain's own (``motion``; ``bgsub`` takes its people's motion
    from its videos), else ``poses``, seeded by ``(seed, domain, split)``."""
    if dataset_ready(path, domain, n, res, labels):
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

"""S2D calls and their time in one fit of fitting in the loop (docs/performance.md section 8).

    OMP_NUM_THREADS=1 python docs/scripts/fit_s2d_cost.py --res 64 --init src/maskpose/assets/source_studio_64.pt
    OMP_NUM_THREADS=1 python docs/scripts/fit_s2d_cost.py --res 128

Builds the adapt Trainer of ``maskpose bench step`` on a 16-sample studio dataset, predicts the
batch once, then runs ``Trainer.fit_parameters`` (8 iterations) ``--fits`` times, counting the calls
of the S2D function the losses call (``maskpose.topology``'s ``_distance_of_binary``, wrapped with a
timer in every module that imports it) and their wall time. Prints the calls and milliseconds per
fit. Without ``--init`` the model is the seeded random one.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

import maskpose.topology.distance as distance
import maskpose.topology.loss as loss
import maskpose.topology.skeleton as skeleton
from maskpose.bench.step import make_trainer, synthetic_dataset
from maskpose.data.batching import load_batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--res", type=int, default=128)
    parser.add_argument("--init", default="", help="checkpoint to start from (default: the random model)")
    parser.add_argument("--fits", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    calls: list[float] = []
    original = distance._distance_of_binary

    def timed(*a, **k):
        start = time.perf_counter()
        out = original(*a, **k)
        calls.append(time.perf_counter() - start)
        return out

    for module in (distance, loss, skeleton):
        module._distance_of_binary = timed
    root = Path(tempfile.mkdtemp(prefix="maskpose-fit-s2d-"))
    data = synthetic_dataset(root / "data", 16, args.res, 0)
    changes = {"init_checkpoint": args.init} if args.init else {}
    trainer = make_trainer("adapt", data, root / "run", args.res, 16, "cpu", 0, **changes)
    batch = load_batch(trainer.data, torch.arange(16), trainer.res, trainer.device)
    with torch.no_grad():
        mesh = trainer.model(trainer.network_input(batch)).mesh
    trainer.fit_parameters(batch, mesh)  # warm-up
    per_fit = []
    for _ in range(args.fits):
        calls.clear()
        trainer.fit_parameters(batch, mesh)
        per_fit.append((len(calls), 1000 * sum(calls)))
    times = sorted(ms for _, ms in per_fit)
    print(f"{args.res} px, init {args.init or 'random'}: {per_fit[0][0]} S2D calls per fit, "
          f"{times[len(times) // 2]:.1f} ms median (of {args.fits} fits: " + ", ".join(f"{t:.1f}" for t in times) + ")")


if __name__ == "__main__":
    main()

"""Wall time of one fit of fitting in the loop, and a fingerprint of its result (docs/performance.md section 9).

    OMP_NUM_THREADS=1 python docs/scripts/fit_time.py
    OMP_NUM_THREADS=1 PYTHONPATH=OLD_CHECKOUT/src python docs/scripts/fit_time.py

Builds the adapt Trainer of ``maskpose bench step`` (the seeded random model, 128 px, batch 16,
one thread, freed memory kept as the CLI keeps it) on a 16-sample studio dataset, predicts the
batch once, runs ``Trainer.fit_parameters`` (8 iterations) once to warm up and ``--fits`` times
timed. Prints the median and least milliseconds per fit and the first 16 hex digits of the
SHA-256 of the fitted parameters: equal digits mean identical fits.
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import time
from pathlib import Path

import torch

from maskpose.allocator import retain_freed_memory
from maskpose.bench.step import make_trainer, synthetic_dataset
from maskpose.data.batching import load_batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--res", type=int, default=128)
    parser.add_argument("--fits", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(1)
    retain_freed_memory()
    root = Path(tempfile.mkdtemp(prefix="maskpose-fit-time-"))
    data = synthetic_dataset(root / "data", 16, args.res, 0)
    trainer = make_trainer("adapt", data, root / "run", args.res, 16, "cpu", 0)
    batch = load_batch(trainer.data, torch.arange(16), trainer.res, trainer.device)
    with torch.no_grad():
        mesh = trainer.model(trainer.network_input(batch)).mesh
    fitted = trainer.fit_parameters(batch, mesh)  # warm-up
    times = []
    for _ in range(args.fits):
        start = time.perf_counter()
        fitted = trainer.fit_parameters(batch, mesh)
        times.append(1000 * (time.perf_counter() - start))
    times.sort()
    digest = hashlib.sha256(b"".join(v.numpy().tobytes() for v in fitted.tensors().values())).hexdigest()[:16]
    print(f"{args.res} px: {times[len(times) // 2]:.1f} ms per fit (median of {args.fits}; least {times[0]:.1f}), "
          f"fits {digest}")


if __name__ == "__main__":
    main()

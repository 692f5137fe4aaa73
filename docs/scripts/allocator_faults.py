"""Page faults, kernel time and wall time of training steps, with glibc's default allocator
settings or with :func:`maskpose.allocator.retain_freed_memory` (docs/performance.md section 7).

    OMP_NUM_THREADS=1 python docs/scripts/allocator_faults.py default
    OMP_NUM_THREADS=1 python docs/scripts/allocator_faults.py retain
    OMP_NUM_THREADS=1 python docs/scripts/allocator_faults.py trim-only

``trim-only`` sets glibc's trim threshold alone (what ``retain_freed_memory`` must not do: it stops
glibc's own rise of the mmap threshold, so every block above 128 KiB is mapped on each use).

Runs the three steps of ``maskpose bench step`` (supervised, adapt without fitting, adapt with
fitting every 4th step) on a 16-sample studio dataset at 128 px, batch 16, one thread: two warm-up
steps, then ``--steps`` timed ones (8: two fitting cycles). Prints per step the user and system CPU
time, the wall time and the minor page faults (``getrusage``). Run it as a fresh process for each
mode: the allocator's settings are process-wide.
"""

from __future__ import annotations

import argparse
import ctypes
import resource
import tempfile
import time
from pathlib import Path

import torch

from maskpose.allocator import M_TRIM_THRESHOLD, TRIM_THRESHOLD, retain_freed_memory
from maskpose.bench.step import make_trainer, synthetic_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["default", "retain", "trim-only"])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--res", type=int, default=128)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    if args.mode == "retain" and not retain_freed_memory():
        raise SystemExit("retain_freed_memory() did not apply here (not glibc, or MALLOC_* settings given)")
    if args.mode == "trim-only" and not ctypes.CDLL("libc.so.6").mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD):
        raise SystemExit("mallopt(M_TRIM_THRESHOLD) failed (not glibc?)")
    torch.set_num_threads(1)
    root = Path(tempfile.mkdtemp(prefix="maskpose-allocator-"))
    data = synthetic_dataset(root / "data", args.batch, args.res, 0)
    runs = {"pretrain": ("pretrain", {}), "adapt": ("adapt", {"fit_every": 0}), "adapt_fitting": ("adapt", {})}
    cells = []
    for name, (mode, changes) in runs.items():
        trainer = make_trainer(mode, data, root / name, args.res, args.batch, "cpu", 0, **changes)
        for _ in range(2):
            trainer.train_step()
        before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        for _ in range(args.steps):
            trainer.train_step()
        after, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter() - start
        per_step = 1000 / args.steps
        cells.append(f"{name}: user {(after.ru_utime - before.ru_utime) * per_step:.0f} ms, "
                     f"sys {(after.ru_stime - before.ru_stime) * per_step:.0f} ms, wall {wall * per_step:.0f} ms, "
                     f"{(after.ru_minflt - before.ru_minflt) // args.steps} faults")
    print(f"{args.mode} (per step, {args.res} px, batch {args.batch}, 1 thread): " + "; ".join(cells))


if __name__ == "__main__":
    main()

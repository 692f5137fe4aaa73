"""The CPU kernels that made S2D, D2T and the input checks slow, against their replacements (issue 18).

On one thread, on maps the size of a 16 x 128 px batch, this prints the median time (µs) of each
operation that docs/performance.md §5 quotes: a bool ``any()`` against the same test as a uint8 max,
a float ``where`` and ``masked_fill_`` against a ``mul``, ``isfinite`` against ``aminmax``.

    python docs/scripts/slow_kernels.py
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def _median_us(run: Callable[[], object], repeats: int = 200) -> float:
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(1e6 * (time.perf_counter() - start))
    return statistics.median(times)


def main() -> None:
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(0)
    flags = torch.rand(16 * 130 * 130, generator=gen) < 0.001  # the erosion's flat buffer
    a = torch.rand(16, 1, 130, 128, generator=gen).round()  # D2T's row maxima, integer-valued
    b = torch.rand(16, 1, 130, 128, generator=gen).round()
    grad = torch.randn(16, 1, 130, 128, generator=gen)
    masks = torch.rand(16, 1, 128, 128, generator=gen)
    rows = {
        "bool any()": lambda: bool(flags.any()),
        "the same as a uint8 max": lambda: bool(flags.view(torch.uint8).max()),
        "float where": lambda: torch.where(a == b, grad, b),
        "float masked_fill_": lambda: grad.clone().masked_fill_(a < b, 0.0),
        "float mul": lambda: grad * a,
        "isfinite": lambda: torch.isfinite(masks),
        "aminmax": lambda: torch.aminmax(masks),
    }
    for name, run in rows.items():
        print(f"{name:28s} {_median_us(run):9.1f} µs")


if __name__ == "__main__":
    main()

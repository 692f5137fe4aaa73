"""``maskpose bench synth``: end-to-end synthesis speed."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import cv2
import torch

from maskpose.body.anny_body import AnnyBody
from maskpose.device import torch_threads
from maskpose.synth.generator import SynthesisConfig, generate


def benchmark(n: int = 256, res: int = 128, batch_size: int = 64, domain: str = "studio",
              geodesic: bool = False, device: str = "cpu", threads: int | None = 2, seed: int = 0) -> dict:
    """End-to-end synthesis speed (poses, Anny, camera, rendering, domain, writing), Anny's
    construction excluded (built and warmed up first).

    Args:
        n: frames timed; batch_size: bodies per batch; threads: ``torch.set_num_threads`` and
            OpenCV's ``cv2.setNumThreads`` for the run (``None`` leaves them; both restored
            after), so a one-thread run uses one core; geodesic: include the geodesic weights.

    Returns:
        ``{"frames_per_s", "ms_per_frame", "stages_ms_per_frame", "n", "res", "batch_size",
        "threads", "opencv_threads", "domain", "geodesic", "goal_frames_per_s"}``.
    """
    previous_cv = cv2.getNumThreads()
    with torch_threads(threads):
        if threads is not None:
            cv2.setNumThreads(threads)
        try:
            return _benchmark(n, res, batch_size, domain, geodesic, device, seed)
        finally:
            cv2.setNumThreads(previous_cv)


def _benchmark(n: int, res: int, batch_size: int, domain: str, geodesic: bool, device: str, seed: int) -> dict:
    config = SynthesisConfig(batch_size=batch_size, device=device, geodesic=geodesic)
    body = AnnyBody(device=device)
    with tempfile.TemporaryDirectory(prefix="maskpose-bench-") as tmp:
        # the warm-up only needs other bodies than the timed run; seed + 1 is as good as any stream
        generate(Path(tmp) / "warmup", domain, min(n, batch_size), res, seed + 1, "bench", True, config, body=body)
        timings: dict[str, float] = {}
        start = time.perf_counter()
        generate(Path(tmp) / "timed", domain, n, res, seed, "bench", True, config, body=body, timings=timings)
        elapsed = time.perf_counter() - start
    return {
        "frames_per_s": n / elapsed, "ms_per_frame": 1000 * elapsed / n,
        "stages_ms_per_frame": {k: round(1000 * v / n, 3) for k, v in timings.items()},
        "n": n, "res": res, "batch_size": batch_size, "threads": torch.get_num_threads(),
        "opencv_threads": cv2.getNumThreads(),
        "domain": domain, "geodesic": geodesic, "device": str(device), "goal_frames_per_s": 200,
    }


__all__ = ["benchmark"]

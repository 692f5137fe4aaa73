"""The default network's forward and backward with another memory layout or compiled (issue 18).

At 128 px and batch 16, on one thread, this prints the median CPU time of 5 forward+backward passes
of the default model (``maskpose pretrain --res 128``). The variant is ``default``, ``channels_last``
or ``compile`` (``torch.compile``, with its warm-up time).

    python docs/scripts/network_variants.py default|channels_last|compile
"""

from __future__ import annotations

import statistics
import sys
import time

import torch

from maskpose.models.regressor import PoseRegressor
from maskpose.train.config import TrainConfig

VARIANTS = ("default", "channels_last", "compile")


def _loss(outputs) -> torch.Tensor:
    return sum(value.float().square().mean() for value in outputs.mesh.tensors().values())


def _pass_ms(net, images: torch.Tensor) -> float:
    start = time.process_time()
    _loss(net(images)).backward()
    return 1000 * (time.process_time() - start)


def main(variant: str, res: int = 128, batch: int = 16, repeats: int = 5) -> None:
    if variant not in VARIANTS:
        raise SystemExit(f"variant must be one of {VARIANTS}, got {variant!r}")
    torch.set_num_threads(1)
    config = TrainConfig.from_flags("pretrain", None, data="unused", out="unused", resolution=res, batch_size=batch)
    torch.manual_seed(0)
    net = PoseRegressor(config.model)
    images = torch.rand(batch, 3, res, res)
    if variant == "channels_last":
        net = net.to(memory_format=torch.channels_last)
        images = images.to(memory_format=torch.channels_last)
    if variant == "compile":
        net = torch.compile(net)
    warm_up = _pass_ms(net, images)  # the compilation happens here
    if variant == "compile":
        print(f"compile warm-up {warm_up / 1000:.1f} s CPU")
    times = [_pass_ms(net, images) for _ in range(repeats)]
    print(f"{variant} forward+backward: {statistics.median(times):.1f} ms CPU (median of {repeats})")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "default")

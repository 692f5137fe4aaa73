"""Batching: stack dataset samples into tensors at the model resolution."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from maskpose.data.dataset import MaskposeDataset


def load_batch(dataset: MaskposeDataset, indices: torch.Tensor, res: int, device) -> dict[str, torch.Tensor]:
    """Stack samples and resize them to the model resolution (bilinear images, nearest masks).

    ``valid`` (real photographs: 1 where the crop lies inside the photo) comes as ``(B, 1, H, W)``
    float32 like ``mask``, and is resized the same way (nearest)."""
    items = [dataset[int(i)] for i in indices]
    batch = {k: torch.stack([it[k] for it in items]).to(device) for k in items[0]}
    if "valid" in batch:
        batch["valid"] = batch["valid"].reshape(len(items), 1, *batch["valid"].shape[-2:])
    size = batch["image"].shape[-1]
    if size != res:
        factor = res / size
        batch["image"] = F.interpolate(batch["image"], size=(res, res), mode="bilinear", align_corners=False)
        for key in ("mask", "geodesic", "valid"):
            if key in batch:
                batch[key] = F.interpolate(batch[key], size=(res, res), mode="nearest")
        if "joints2d" in batch:
            batch["joints2d"] = (batch["joints2d"] + 0.5) * factor - 0.5
        if "intrinsics" in batch:
            K = batch["intrinsics"].clone()
            K[:, :2] = K[:, :2] * factor
            K[:, :2, 2] = K[:, :2, 2] + 0.5 * factor - 0.5
            batch["intrinsics"] = K
    return batch


__all__ = ["load_batch"]

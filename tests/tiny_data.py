"""Tiny labelled datasets for training tests: sampled Anny bodies, exact masks, flat colours."""

from __future__ import annotations

import torch

from maskpose.body.anny_body import AnnyBody
from maskpose.body.sampler import PoseSampler
from maskpose.data.dataset import write_dataset
from maskpose.render.camera import fit_translation, intrinsics, project
from maskpose.render.zbuffer import silhouette_mask


def make_dataset(path, n: int, res: int = 64, seed: int = 0, labels: bool = True, masks: bool = True,
                 body: AnnyBody | None = None, tint=(200.0, 120.0, 80.0)):
    body = body or AnnyBody()
    pose, phenotypes = PoseSampler(seed, spread=0.5).sample(n)
    K = intrinsics(1.5 * res, res, batch=n)
    with torch.no_grad():
        translation = fit_translation(body(pose, phenotypes).vertices, K, res)
        out = body(pose, phenotypes, translation)
        mask = silhouette_mask(out.vertices, out.faces, K, res)[:, 0]
    fg, bg = torch.tensor(tint), torch.tensor([30.0, 60.0, 90.0])
    image = (mask[..., None] * fg + (1 - mask[..., None]) * bg).byte().numpy()
    arrays = {"image": image}
    if masks:
        arrays["mask"] = mask.byte().numpy()
    if labels:
        arrays.update(joints3d=out.joints.numpy(), joints2d=project(out.joints, K).numpy(), intrinsics=K.numpy(),
                      pose=pose.numpy(), phenotypes=phenotypes.numpy(), translation=translation.numpy())
    return write_dataset(path, arrays, domain="tiny")

"""Quick shaded previews of meshes (grey Lambert shading from the camera) for the CLI and reports."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import trimesh
from PIL import Image

from maskpose.body.anny_body import AnnyBody
from maskpose.body.motion import MotionLibrary
from maskpose.body.sampler import PoseSampler
from maskpose.conventions import default_focal
from maskpose.render.camera import fit_translation, intrinsics
from maskpose.render.zbuffer import rasterize


def face_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Unit outward normals ``(B, F, 3)`` of a batch of meshes ``(B, V, 3)`` with faces ``(F, 3)``."""
    tri = vertices[:, faces]  # (B, F, 3, 3)
    n = torch.linalg.cross(tri[:, :, 1] - tri[:, :, 0], tri[:, :, 2] - tri[:, :, 0], dim=-1)
    return n / n.norm(dim=-1, keepdim=True).clamp_min(1e-12)


@torch.no_grad()
def shaded_preview(vertices: torch.Tensor, faces: torch.Tensor, K: torch.Tensor, size: int,
                   colour=(0.85, 0.72, 0.62), background=(1.0, 1.0, 1.0)) -> np.ndarray:
    """``(B, size, size, 3)`` uint8 images: Lambert shading with a light at the camera.

    Args:
        vertices: ``(B, V, 3)`` camera-frame vertices; faces ``(F, 3)``; K ``(B, 3, 3)``.
    """
    frags = rasterize(vertices, faces, K, (size, size), behind="cull")
    normals = face_normals(vertices, faces)  # (B, F, 3)
    points = (frags.barycentric[..., None] * vertices[:, faces][
        torch.arange(vertices.shape[0])[:, None, None], frags.face_index.clamp_min(0)]).sum(-2)
    view = -points / points.norm(dim=-1, keepdim=True).clamp_min(1e-9)  # towards the camera
    idx = frags.face_index.clamp_min(0)
    n = normals[torch.arange(vertices.shape[0])[:, None, None], idx]
    lambert = (n * view).sum(-1).abs().clamp(0, 1)
    shade = (0.25 + 0.75 * lambert)[..., None] * torch.tensor(colour)
    img = torch.where(frags.mask[..., None], shade, torch.tensor(background))
    return (img.clamp(0, 1) * 255).round().byte().cpu().numpy()


def render_bodies(out, n: int = 8, seed: int = 0, motions=None, res: int = 256, topology: str = "anny"):
    """Pose ``n`` bodies from the sampler (or a motion library), write ``body_XXX.png`` previews,
    ``body_XXX.ply`` meshes and ``contact_sheet.png`` into ``out``. Returns the sheet's path."""


    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if motions is not None:
        pose, phenotypes = MotionLibrary(motions).sample(n, seed=seed)
    else:
        pose, phenotypes = PoseSampler(seed=seed, spread=0.7).sample(n)
    body = AnnyBody(topology)
    K = intrinsics(default_focal(res), res, batch=n)
    with torch.no_grad():
        translation = fit_translation(body(pose, phenotypes).vertices, K, res, fill=0.85)
        posed = body(pose, phenotypes, translation)
    images = shaded_preview(posed.vertices, posed.faces, K, res)
    for i in range(n):
        Image.fromarray(images[i]).save(out / f"body_{i:03d}.png")
        # PLY in the camera frame (metres, OpenCV axes), as every maskpose output.
        trimesh.Trimesh(posed.vertices[i].numpy(), posed.faces.numpy(), process=False).export(out / f"body_{i:03d}.ply")
    cols = min(n, 8)
    rows = (n + cols - 1) // cols
    sheet = np.full((rows * res, cols * res, 3), 255, np.uint8)
    for i in range(n):
        r, c = divmod(i, cols)
        sheet[r * res : (r + 1) * res, c * res : (c + 1) * res] = images[i]
    path = out / "contact_sheet.png"
    Image.fromarray(sheet).save(path)
    return path

"""Synthesis renderer for data: RGB, exact mask, depth and part labels on top of the z-buffer.

Built on :func:`maskpose.render.zbuffer.rasterize` (exact, pure PyTorch): the mask is exactly the
set of pixels whose centre a front face of the mesh covers, and the RGB image uses the *same*
fragments, so image and mask can never be offset or flipped against each other. What the people
look like (parts, clothing, lights, backgrounds) is :mod:`maskpose.synth.appearance`.

Randomness comes only from the per-sample ``numpy.random.Generator`` list passed to
:meth:`SynthesisRenderer.render`, so a sample looks the same whatever batch it is rendered in.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from maskpose.errors import ConfigError, MaskposeError, check_shape
from maskpose.render.zbuffer import CoveredPixels, rasterize_covered
from maskpose.synth.appearance import (
    _HAIR,
    _MAX_LIGHTS,
    _PATTERNS,
    PART_INDEX,
    PART_NAMES,
    SETTINGS,
    SLOTS,
    THERMAL,
    _texture_weight,
    background,
    sample_appearance,
    vertex_parts,
)


@dataclass
class Rendered:
    """A rendered batch, numpy on the CPU.

    Attributes:
        image: ``(B, H, W, 3)`` uint8.
        mask: ``(B, H, W)`` uint8 in {0, 1}: exactly the pixels the z-buffer covers.
        depth: ``(B, H, W)`` float32 camera depth in metres, 0 on the background.
        parts: ``(B, H, W)`` uint8 part labels (:data:`PART_NAMES`), 0 on the background.
    """

    image: np.ndarray
    mask: np.ndarray
    depth: np.ndarray
    parts: np.ndarray


def _first_largest_of_three(values: torch.Tensor) -> torch.Tensor:
    """``values.argmax(1)`` of ``(N, 3)`` finite values (the first of equal largest), by two
    comparisons: torch's reduction over a last axis of three costs twice as much."""
    a, b, c = values.unbind(1)
    index = (b > a).to(torch.int64)
    return index + (c > torch.maximum(a, b)).to(torch.int64) * (2 - index)


class SynthesisRenderer:
    """RGB / thermal synthesis of a posed Anny mesh with an exact z-buffer.

    Args:
        body: a :class:`maskpose.body.anny_body.AnnyBody` (its topology is the one rendered).
        device: where the per-pixel work runs (the z-buffer runs where the vertices are).
    """

    def __init__(self, body, device: torch.device | str | None = "cpu"):
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        anny = body.anny
        self.faces = body.faces.to(self.device)
        self.vertex_parts = vertex_parts(anny).to(self.device)
        self.rest = anny.template_vertices.detach().float().to(self.device)  # Anny world, Z up
        self.head_top_z = float(self.rest[:, 2].max())
        self.incident_faces = _incident_faces(self.faces, self.rest.shape[0])

    def vertex_normals(self, vertices: torch.Tensor) -> torch.Tensor:
        """``(B, V, 3)`` unit outward vertex normals (area-weighted face normals).

        Each vertex sums its faces' normals in face order, one gather per incidence column
        (:func:`_incident_faces`): the same additions in the same order as an ``index_add_`` over
        (face, corner), without materialising the (B, F, 3, 3) per-corner copy."""
        f = self.faces
        v0, v1, v2 = (vertices.index_select(1, f[:, k]) for k in range(3))
        face_n = torch.linalg.cross(v1 - v0, v2 - v0, dim=-1)  # outward for Anny's winding
        padded = torch.cat((face_n, face_n.new_zeros(vertices.shape[0], 1, 3)), 1)  # face F: zero (padding)
        normals = torch.zeros_like(vertices)
        for column in self.incident_faces:
            normals += padded.index_select(1, column)
        return normals / normals.norm(dim=-1, keepdim=True).clamp_min(1e-12)

    @torch.no_grad()
    def render(
        self,
        vertices: torch.Tensor,
        K: torch.Tensor,
        rngs: Sequence[np.random.Generator],
        setting: str = "studio",
        size: int | tuple[int, int] | None = None,
        backgrounds: np.ndarray | None = None,
        noise: bool = True,
        timings: dict[str, float] | None = None,
    ) -> Rendered:
        """Render a batch.

        Args:
            vertices: ``(B, V, 3)`` camera-frame vertices of the body's topology (metres).
            K: ``(B, 3, 3)`` intrinsics.
            rngs: one ``numpy.random.Generator`` per sample (all randomness comes from them).
            setting: ``"studio"``, ``"scene"`` or ``"thermal"``.
            size: ``res`` or ``(H, W)``; default ``2 * K[0, 0, 2] + 1`` (a centred square crop).
            backgrounds: optional ``(B, H, W, 3)`` uint8 or float backgrounds replacing the random
                ones (e.g. a constant colour, to check that image and mask coincide).
            noise: add sensor noise (and, for thermal, the optics blur); ``False`` leaves every
                background pixel exactly as given.
            timings: optional dict accumulating seconds in ``rasterize``, ``appearance``
                (appearance draws and backgrounds) and ``shading``.
        """
        check_shape("vertices", vertices, (None, self.rest.shape[0], 3))
        batch = vertices.shape[0]
        if len(rngs) != batch:
            raise MaskposeError(f"rngs: need one generator per sample ({batch}), got {len(rngs)}")
        if setting not in SETTINGS:
            raise ConfigError(f"unknown rendering setting {setting!r}; expected one of {SETTINGS}")
        res = _square_size(K, size)
        vertices = vertices.detach().float().to(self.device)
        K = K.detach().float().to(self.device)
        clock = _Clock(timings)

        # The covered pixels only: every table below is gathered on them (no dense frame to fill).
        frags = rasterize_covered(vertices, self.faces, K, (res, res), cull_backfaces=True)
        clock("rasterize")
        app = sample_appearance(rngs, setting, res, self.device)
        # Each sample's generator draws, in order: appearance, noise seed, background; so a
        # re-render with a given background keeps the same appearance and the same noise.
        noise_seeds = [int(rng.integers(0, 2**62)) for rng in rngs]
        image = torch.from_numpy(_backgrounds(rngs, backgrounds, res, setting)).to(self.device)
        clock("appearance")

        surface = self._surface(frags, vertices, points=setting == "thermal")
        colour = self._shade(surface, app, setting, batch)
        image = image.contiguous()
        image.view(-1, 3).index_copy_(0, surface.flat, colour.clamp_(0.0, 1.0))
        # Zero noise std everywhere (the realistic setting's draws) adds exact zeros: skip the draws' maps.
        if noise and (setting == "thermal" or bool(app.noise_std.any())):
            image = self._add_noise(image, noise_seeds, app, setting, res)

        mask = surface.mask
        parts = torch.zeros(batch * res * res, dtype=torch.uint8, device=self.device)
        parts.index_copy_(0, surface.flat, surface.part.to(torch.uint8))
        parts = parts.view(batch, res, res)
        depth = torch.zeros(mask.shape, dtype=frags.depth.dtype, device=self.device)
        depth.view(-1).index_copy_(0, surface.flat, frags.depth)
        # In place (``image`` is this call's own buffer): a fresh 12 MB temporary per step costs
        # more in page faults than the arithmetic.
        image_u8 = image.clamp_(0.0, 1.0).mul_(255.0).add_(0.5).to(torch.uint8)
        clock("shading")
        return Rendered(
            image=image_u8.cpu().numpy(), mask=mask.to(torch.uint8).cpu().numpy(),
            depth=depth.float().cpu().numpy(), parts=parts.cpu().numpy(),
        )

    def _surface(self, frags: CoveredPixels, vertices: torch.Tensor, points: bool = True) -> _Surface:
        """The covered pixels and what the mesh is there, with flat indices (one gather per table).

        ``points``: also interpolate the camera-frame points (only thermal shading reads them;
        ``point`` is ``None`` without)."""
        batch, num_vertices = vertices.shape[:2]
        height, width = frags.face_index.shape[1:3]
        mask = frags.face_index >= 0
        flat = frags.pixels  # (N,)
        bb = torch.div(flat, height * width, rounding_mode="floor")
        face = frags.face_index.view(-1).index_select(0, flat)
        bary = frags.barycentric.float()  # (N, 3)
        corner = self.faces.index_select(0, face)  # (N, 3)
        nearest = corner.gather(1, _first_largest_of_three(bary)[:, None])[:, 0]
        part = self.vertex_parts.index_select(0, nearest)  # (N,)
        tables = (self.vertex_normals(vertices), vertices) if points else (self.vertex_normals(vertices),)
        per_vertex = torch.cat((*tables, self.rest.expand(batch, -1, -1)), -1)
        columns = per_vertex.shape[-1]
        gathered = per_vertex.reshape(-1, columns).index_select(0, (bb[:, None] * num_vertices + corner).view(-1))
        gathered = gathered.view(-1, 3, columns)
        # The three corners summed in order: the same bits as ``(gathered * bary[..., None]).sum(1)``
        # without its (N, 3, columns) temporary.
        interp = gathered[:, 0] * bary[:, 0:1]
        interp += gathered[:, 1] * bary[:, 1:2]
        interp += gathered[:, 2] * bary[:, 2:3]
        normal = interp[:, 0:3] / interp[:, 0:3].norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return _Surface(mask, flat, bb, part, normal, interp[:, 3:6] if points else None, interp[:, -3:])

    def _albedo(self, surface: _Surface, app, setting: str, batch: int) -> torch.Tensor:
        """``(N, 3)`` base colour of every covered pixel: its garment slot (or hair) and texture."""
        bb, part, rest = surface.sample, surface.part, surface.rest
        slots = len(SLOTS)
        slot = app.slot_of_part.reshape(-1).index_select(0, bb * len(PART_NAMES) + part)
        hair_length = app.hair_length.index_select(0, bb)
        hair = (part == PART_INDEX["head"]) & (rest[:, 2] > self.head_top_z - hair_length) & (hair_length > 0)
        slot = torch.where(hair, torch.full_like(slot, _HAIR), slot)
        garment = torch.cat((app.base, app.alt, app.pattern[..., None].float(), app.freq[..., None],
                             app.direction, app.phase[..., None]), -1).reshape(batch * slots, -1)
        g = garment.index_select(0, bb * slots + slot)  # (N, 12)
        w = _texture_weight(rest, g[:, 6].long(), g[:, 7], g[:, 8:11], g[:, 11], _PATTERNS[setting])
        return g[:, 0:3] + (g[:, 3:6] - g[:, 0:3]) * w[:, None]

    def _shade(self, surface: _Surface, app, setting: str, batch: int) -> torch.Tensor:
        """``(N, 3)`` colour of every covered pixel: thermal emission or Lambert-lit albedo."""
        albedo = self._albedo(surface, app, setting, batch)
        n = surface.normal
        if setting == "thermal":
            point = surface.point
            view = -point / point.norm(dim=-1, keepdim=True).clamp_min(1e-12)
            facing = (n * view).sum(-1).abs()
            floor = THERMAL["emissivity_floor"]
            return albedo * (floor + (1 - floor) * facing)[:, None]
        used = 1 if setting == "studio" else _MAX_LIGHTS  # studio has one light, scene up to three
        lights = torch.cat((app.ambient, app.light_dir[:, :used].reshape(batch, -1),
                            app.light_colour[:, :used].reshape(batch, -1)), -1).index_select(0, surface.sample)
        # Written out per component and per light, in the order of the batched matrix product and
        # of the sum over lights they replace (the same bits, without (N, L, 3) temporaries).
        direction = lights[:, 3:3 + 3 * used].view(-1, used, 3)
        lambert = direction[:, :, 0] * n[:, 0:1]
        lambert += direction[:, :, 1] * n[:, 1:2]
        lambert += direction[:, :, 2] * n[:, 2:3]  # (N, L)
        lambert.clamp_min_(0.0)
        colour = lights[:, 3 + 3 * used:].view(-1, used, 3)
        light = lambert[:, 0:1] * colour[:, 0]
        for k in range(1, used):
            light += lambert[:, k:k + 1] * colour[:, k]
        return albedo * (lights[:, 0:3] + light)

    def _add_noise(self, image: torch.Tensor, noise_seeds: Sequence[int], app, setting: str,
                   res: int) -> torch.Tensor:
        """Sensor noise (and, for thermal, the optics blur and column noise)."""
        gen = torch.Generator(device="cpu")
        noise_maps = []
        for noise_seed in noise_seeds:  # per-sample seeds keep the batch invariance
            gen.manual_seed(noise_seed)
            noise_maps.append(torch.randn((res, res, 1), generator=gen))
        noise_map = torch.stack(noise_maps).to(self.device)
        if setting == "thermal":
            image = _gaussian_blur(image, THERMAL["blur_sigma_at_128"] * res / 128)
            return image + noise_map * app.noise_std[:, None, None, None] + app.column_noise[:, None, :, None]
        return image + noise_map.expand(-1, -1, -1, 3) * app.noise_std[:, None, None, None]


@dataclass
class _Surface:
    """The covered pixels of a batch: ``mask (B, H, W)``, their flat indices ``flat (N,)``, sample
    ``sample (N,)`` and part ``part (N,)``; unit normal, camera point and rest-pose point ``(N, 3)``."""

    mask: torch.Tensor
    flat: torch.Tensor
    sample: torch.Tensor
    part: torch.Tensor
    normal: torch.Tensor
    point: torch.Tensor | None
    rest: torch.Tensor


class _Clock:
    """Accumulates seconds per stage into a dict (no-op without one)."""

    def __init__(self, timings: dict[str, float] | None):
        self.timings, self.tick = timings, time.perf_counter()

    def __call__(self, stage: str) -> None:
        if self.timings is not None:
            now = time.perf_counter()
            self.timings[stage] = self.timings.get(stage, 0.0) + now - self.tick
            self.tick = now


def _incident_faces(faces: torch.Tensor, num_vertices: int) -> list[torch.Tensor]:
    """The faces around every vertex, as columns: column ``k`` holds each vertex's ``k``-th
    incident face in increasing face order (a face twice if it uses the vertex twice), and the
    padding index ``F`` (a zero face) where the vertex has fewer. Summing the columns in order
    adds each vertex's faces in the order of a flat (face, corner) ``index_add_``."""
    flat = faces.reshape(-1)
    order = torch.argsort(flat, stable=True)  # (face, corner) slots grouped by vertex, in face order
    counts = torch.bincount(flat, minlength=num_vertices)
    vertex = flat[order]
    rank = torch.arange(flat.numel(), device=flat.device) - (torch.cumsum(counts, 0) - counts)[vertex]
    table = torch.full((num_vertices, max(1, int(counts.max()))), faces.shape[0], dtype=torch.long,
                       device=flat.device)
    table[vertex, rank] = torch.div(order, 3, rounding_mode="floor")
    return [table[:, k].contiguous() for k in range(table.shape[1])]


def _square_size(K: torch.Tensor, size: int | tuple[int, int] | None) -> int:
    """The crop size: ``size`` (an int or a square ``(H, W)``), default ``2 * K[0, 0, 2] + 1``."""
    if size is None:
        size = int(round(2 * float(K[0, 0, 2]) + 1))
    height, width = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if height != width:
        raise MaskposeError(f"the synthesis renderer makes square crops, got size {(height, width)}")
    return height


def _backgrounds(rngs: Sequence[np.random.Generator], backgrounds: np.ndarray | None, res: int,
                 setting: str) -> np.ndarray:
    """``(B, res, res, 3)`` float32 backgrounds in [0, 1]: drawn from ``rngs``, or the given ones."""
    if backgrounds is None:
        return np.stack([background(rng, res, setting) for rng in rngs])
    bg = np.asarray(backgrounds)
    if bg.shape != (len(rngs), res, res, 3):
        raise MaskposeError(f"backgrounds must have shape {(len(rngs), res, res, 3)}, got {bg.shape}")
    return bg.astype(np.float32) / 255.0 if bg.dtype == np.uint8 else bg.astype(np.float32)


def _gaussian_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``(B, H, W, C)`` images (reflect padding)."""
    if sigma <= 0:
        return image
    radius = max(1, int(math.ceil(3 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=image.dtype, device=image.device)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    kernel = kernel / kernel.sum()
    b, h, w, c = image.shape
    t = image.permute(0, 3, 1, 2).reshape(b * c, 1, h, w)
    t = torch.nn.functional.pad(t, (radius, radius, 0, 0), mode="reflect")
    t = torch.nn.functional.conv2d(t, kernel.view(1, 1, 1, -1))
    t = torch.nn.functional.pad(t, (0, 0, radius, radius), mode="reflect")
    t = torch.nn.functional.conv2d(t, kernel.view(1, 1, -1, 1))
    return t.reshape(b, c, h, w).permute(0, 2, 3, 1)


__all__ = ["Rendered", "SynthesisRenderer"]

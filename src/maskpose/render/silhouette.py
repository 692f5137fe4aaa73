"""M2S: differentiable mesh silhouettes, batched, PyTorch (CPU or CUDA) with an optional Warp search.

Default mode ``"contour"`` — exact forward pass, gradients at the silhouette's border:

* Faces are split into front faces (counter-clockwise on screen, see
  :func:`maskpose.render.zbuffer.front_facing`) and the rest. A *contour edge* is an edge of a
  front face whose other side is not a front face (a back or degenerate face, or a mesh border).
  For a closed mesh the silhouette is the union of the front faces, and its border is made of
  pieces of contour edges.
* Each pixel centre ``p`` gets a signed distance ``s(p)`` in pixels, clamped to ``[-band, band]``:

  - **inside** (``p`` covered by a front face, same inclusive rule as the z-buffer):
    ``s = max over covering front faces f of min over f's contour edges of the distance from p
    to the edge's line`` (``band`` when ``f`` has no contour edge): a soft union of the half-planes
    that bound the silhouette locally;
  - **outside**: ``s = -(distance from p to the nearest contour edge segment)``, which *is* the
    distance to the silhouette; pixels farther than ``band`` get ``-band`` and no gradient.
    These pixels give the gradient that lets a silhouette grow toward its target.

* The output is ``g(s)``, a sigmoid of scale ``sigma`` rescaled so that ``g(-band) = 0``,
  ``g(0) = 0.5``, ``g(band) = 1``. Hence ``soft >= 0.5`` is *exactly* the rasterised mask
  (:func:`maskpose.render.zbuffer.rasterize`), and ``soft`` is exactly 0 or 1 farther than ``band``
  from the border.
* The winning face (inside) or edge (outside) of every pixel is searched without gradient
  (bounding-box enumeration and a packed-key ``scatter_reduce`` in PyTorch, or the same search as
  ``warp-lang`` kernels with identical results: ``backend="torch"|"warp"|"auto"``); only the
  winning pairs are recomputed with gradient (always PyTorch), so memory and time scale with the
  number of pixels near the border.
  Gradients flow to the vertex positions (and ``K``) through the projection.

Mode ``"splat"`` — cheaper and smoother but not exact: every front face is an isotropic Gaussian at
its projected centroid carrying its screen area; ``soft = sigmoid(gain * (density - 0.5))``.
Its silhouette is lumpy at the border; use it for speed, not as the reference.

Vertices behind the camera (``z <= near``) raise :class:`~maskpose.errors.MaskposeError` unless
``behind="cull"`` (faces touching them are dropped; no near-plane clipping).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

from maskpose.errors import MaskposeError
from maskpose.render import _raster, _warp_kernels
from maskpose.render.camera import project
from maskpose.render.zbuffer import _face_valid, _signed_area, check_mesh
from maskpose.typing import SILHOUETTE_MODES, RenderBackend, SilhouetteMode

MODES = SILHOUETTE_MODES


def face_edges(faces: torch.Tensor) -> torch.Tensor:
    """``(F, 3)`` undirected edge ids; edge ``i`` of a face joins its vertices ``i+1`` and ``i+2``
    (the edge opposite vertex ``i``). Ids index the mesh's unique edges."""
    faces = faces.long()
    a = torch.stack([faces[:, (i + 1) % 3] for i in range(3)], 1)
    b = torch.stack([faces[:, (i + 2) % 3] for i in range(3)], 1)
    lo, hi = torch.minimum(a, b), torch.maximum(a, b)
    pair = lo * (int(faces.max()) + 1) + hi
    _, ids = torch.unique(pair.reshape(-1), return_inverse=True)
    return ids.view(-1, 3)


def _normalised_sigmoid(s: torch.Tensor, sigma: float, band: float) -> torch.Tensor:
    lo = 1.0 / (1.0 + math.exp(band / sigma))
    return ((torch.sigmoid(s / sigma) - lo) / (1.0 - 2.0 * lo)).clamp(0.0, 1.0)


def _edge_lines(tri: torch.Tensor, sign: torch.Tensor):
    """Signed edge functions made positive inside, and edge lengths: lists of (A, B, C) and
    lengths ``(..,)`` for the three edges of ``tri (..., 3, 2)``."""
    lines, lengths = [], []
    for i in range(3):
        A, B, C = _raster.edge_coefficients(tri[..., (i + 1) % 3, :], tri[..., (i + 2) % 3, :])
        lines.append((A * sign, B * sign, C * sign))
        lengths.append(torch.sqrt(A * A + B * B))
    return lines, lengths


def _segment_distance(p: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Distance ``(N,)`` from points ``p`` to segments ``a -> b`` (all ``(N, 2)``); differentiable."""
    ab = b - a
    t = ((p - a) * ab).sum(-1) / (ab * ab).sum(-1).clamp_min(1e-12)
    closest = a + t.clamp(0.0, 1.0)[:, None] * ab
    return (p - closest).square().sum(-1).clamp_min(1e-12).sqrt()


def render_silhouette(
    vertices: torch.Tensor,
    faces: torch.Tensor,
    K: torch.Tensor,
    size: int | tuple[int, int],
    *,
    mode: SilhouetteMode = "contour",
    sigma: float = 0.5,
    band: float = 2.0,
    splat_gain: float = 8.0,
    behind: str = "error",
    near: float = 1e-6,
    edges: torch.Tensor | None = None,
    max_fragments: int = _raster.MAX_FRAGMENTS,
    backend: RenderBackend = "auto",
) -> torch.Tensor:
    """Differentiable soft silhouettes of a batch of meshes sharing one topology.

    Args:
        vertices: ``(B, V, 3)`` camera-frame vertices (metres); gradients flow to them.
        faces: ``(F, 3)`` integer vertex indices, consistently oriented, outward normals
            (counter-clockwise seen from outside), closed for an exact result.
        K: ``(B, 3, 3)`` intrinsics.
        size: ``(H, W)`` or ``res``.
        mode: ``"contour"`` (exact forward, default) or ``"splat"`` (Gaussian face splats).
        sigma: sigmoid scale in pixels (contour mode).
        band: pixels from the silhouette border that receive gradient, on each side (contour mode).
        splat_gain: sharpness of the density threshold (splat mode).
        behind: ``"error"`` or ``"cull"`` for vertices with ``z <= near``.
        edges: optional precomputed :func:`face_edges` of ``faces``.
        max_fragments: memory bound of the winner search (torch backend).
        backend: where the no-gradient winner search of contour mode runs: ``"torch"`` (pure
            PyTorch, the reference), ``"warp"`` (``warp-lang`` kernels; identical results) or
            ``"auto"`` (default: Warp when importable and running on ``vertices``' device, else
            torch). The gradient recomputation is PyTorch either way.

    Returns:
        ``(B, 1, H, W)`` soft silhouette in ``[0, 1]``; in contour mode ``>= 0.5`` exactly where
        the z-buffer mask is set.
    """
    height, width = check_mesh(vertices, faces, K, size)
    if mode not in MODES:
        raise MaskposeError(f"mode must be one of {MODES}, got {mode!r}")
    if not (sigma > 0 and band > 0):
        raise MaskposeError(f"sigma and band must be positive, got sigma={sigma}, band={band}")
    use_warp = _warp_kernels.resolve_backend(backend, vertices.device) == "warp" and mode == "contour"
    faces = faces.long()
    keep = _face_valid(vertices, faces, behind, near)
    vertices = vertices.float() if vertices.dtype not in (torch.float32, torch.float64) else vertices
    screen = project(vertices, K.to(vertices.dtype))  # (B, V, 2), with gradient
    with torch.no_grad():
        tri = screen.detach()[:, faces]  # (B, F, 3, 2)
        area = _signed_area(tri)
        front = (area < 0) & torch.isfinite(area)
        if keep is not None:
            front &= keep
    if mode == "splat":
        soft = _splat(screen, faces, tri, area, front, height, width, splat_gain, max_fragments)
    else:
        if edges is None:
            edges = face_edges(faces)
        soft = _contour(screen, faces, edges, tri, front, height, width, sigma, band, max_fragments, use_warp)
    if vertices.requires_grad and not soft.requires_grad:
        # No face reaches a pixel (a collapsed mesh, everything behind the camera or off-screen):
        # the silhouette is constant, and its gradient is zero rather than missing, so that
        # ``loss.backward()`` works. One (finite) vertex coordinate times 0 joins the graph.
        soft = soft + vertices.reshape(-1)[:1].nan_to_num(0.0, 0.0, 0.0).sum() * 0.0
    return soft


def _contour(screen, faces, edges, tri, front, height, width, sigma, band, max_fragments, use_warp=False):
    batch = screen.shape[0]
    device = screen.device
    hw = height * width
    winners = _contour_winners(edges, tri, front, height, width, band, max_fragments, use_warp)
    deep, near_in, in_face, near_out, out_edge, contour = winners[:6]
    cb, cf, ci = winners.contour_edges
    # --- recompute the winners with gradient.
    soft = torch.zeros(batch * hw, dtype=screen.dtype, device=device)
    soft = soft.masked_fill(deep, 1.0)
    flat = screen.reshape(-1, 2)
    num_vertices = screen.shape[1]
    pix = torch.nonzero(near_in).squeeze(1)
    if pix.numel():
        bb = pix // hw
        f = in_face[pix].long()
        p = torch.stack(((pix % width).to(screen.dtype), ((pix % hw) // width).to(screen.dtype)), -1)
        t = flat[(bb * num_vertices)[:, None] + faces[f]]  # (n, 3, 2)
        lines, lengths = _edge_lines(t, -1.0)
        c = contour[bb, f]
        s = torch.full_like(p[:, 0], band)
        for i in range(3):
            A, B, C = lines[i]
            dist = _raster.evaluate_edge(A, B, C, p[:, 0], p[:, 1]) / lengths[i].clamp_min(1e-12)
            s = torch.where(c[:, i], torch.minimum(s, dist), s)
        soft = soft.index_put((pix,), _normalised_sigmoid(s.clamp(max=band), sigma, band))
    pix = torch.nonzero(near_out).squeeze(1)
    if pix.numel():
        e = out_edge[pix].long()
        bb, f, i = cb[e], cf[e], ci[e]
        p = torch.stack(((pix % width).to(screen.dtype), ((pix % hw) // width).to(screen.dtype)), -1)
        row = bb * num_vertices
        a = flat[row + faces[f, (i + 1) % 3]]
        b = flat[row + faces[f, (i + 2) % 3]]
        d = _segment_distance(p, a, b)
        soft = soft.index_put((pix,), _normalised_sigmoid(-d.clamp(max=band), sigma, band))
    return soft.view(batch, 1, height, width)


class ContourWinners(NamedTuple):
    """What the no-gradient search of contour mode finds, per pixel of the flattened batch.

    Attributes:
        deep: ``(B*H*W,)`` bool, inside a front face by more than the band (exactly 1).
        near_in: ``(B*H*W,)`` bool, inside, within the band of a contour edge.
        in_face: ``(B*H*W,)`` the winning front face of ``near_in`` pixels (``-1`` none).
        near_out: ``(B*H*W,)`` bool, outside, within the band of a contour edge.
        out_edge: ``(B*H*W,)`` the winning row of the contour-edge list (``-1`` none).
        contour: ``(B, F, 3)`` bool, which face edges are contour edges (shared with a back face).
        contour_edges: the contour-edge list ``(batch index, face, edge index)``, each ``(E,)``.
    """

    deep: torch.Tensor
    near_in: torch.Tensor
    in_face: torch.Tensor
    near_out: torch.Tensor
    out_edge: torch.Tensor
    contour: torch.Tensor
    contour_edges: tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def _contour_winners(edges, tri, front, height, width, band, max_fragments, use_warp) -> ContourWinners:
    """The no-gradient search of contour mode (torch or Warp; identical results)."""
    batch = tri.shape[0]
    device = tri.device
    hw = height * width
    with torch.no_grad():
        # Contour edges: edges of front faces with no other front face on the other side.
        num_edges = int(edges.max()) + 1
        front_count = torch.zeros(batch, num_edges, device=device, dtype=torch.int32)
        front_count.scatter_add_(1, edges.reshape(1, -1).expand(batch, -1),
                                 front.repeat_interleave(3, dim=1).to(torch.int32))
        contour = front[..., None] & (front_count.gather(1, edges.reshape(1, -1).expand(batch, -1))
                                      .view(batch, -1, 3) == 1)  # (B, F, 3)

        # --- inside: best covering front face per pixel (largest distance to its contour lines).
        # Gathers by flat index (index_select): advanced and boolean indexing cost several times more.
        num_faces = front.shape[1]
        face = torch.nonzero(front.view(-1)).squeeze(1)  # b * F + f of the front faces
        t = tri.view(-1, 3, 2).index_select(0, face)  # (N, 3, 2)
        lo = torch.minimum(torch.minimum(t[:, 0], t[:, 1]), t[:, 2])
        hi = torch.maximum(torch.maximum(t[:, 0], t[:, 1]), t[:, 2])
        x0, y0, x1, y1, nonempty = _raster.pixel_boxes(lo, hi, height, width)
        keep = torch.nonzero(nonempty).squeeze(1)
        face, t = face.index_select(0, keep), t.index_select(0, keep)
        x0, y0, x1, y1 = (v.index_select(0, keep) for v in (x0, y0, x1, y1))
        b_idx = torch.div(face, num_faces, rounding_mode="floor")
        f_idx = face - b_idx * num_faces
        lines, lengths = _edge_lines(t, -1.0)  # front faces have negative area
        c = contour.view(-1, 3).index_select(0, face)
        cols = []
        for i in range(3):
            A, B, C = lines[i]
            # Contour edges also store the line normalised to pixel distance.
            inv = torch.where(c[:, i], 1.0 / lengths[i].clamp_min(1e-12), torch.zeros_like(A))
            cols += [A, B, C, inv]
        table = torch.stack(cols, -1)  # (N, 12)
        base = b_idx * hw
        if use_warp:
            best, in_face = _warp_kernels.inside_search(table, x0, y0, x1, y1, base, f_idx, batch * hw, width,
                                                        band)
            covered = best >= 0
            deep = best >= band  # value exactly 1, no gradient
        else:
            keys = torch.full((batch * hw,), -1, dtype=torch.int64, device=device)
            for item, px, py in _raster.enumerate_boxes(x0, y0, x1, y1, max_fragments):
                r = table.index_select(0, item)
                x, y = px.to(r.dtype), py.to(r.dtype)
                score = torch.full_like(x, band)
                inside = torch.ones_like(x, dtype=torch.bool)
                for i in range(3):
                    e = _raster.evaluate_edge(r[:, 4 * i], r[:, 4 * i + 1], r[:, 4 * i + 2], x, y)
                    inside &= e >= 0
                    inv = r[:, 4 * i + 3]
                    score = torch.where(inv > 0, torch.minimum(score, e * inv), score)
                key = _raster.pack_key(score.clamp(0.0, band), f_idx[item])
                key = torch.where(inside, key, torch.full_like(key, -1))
                keys.scatter_reduce_(0, base[item] + py * width + px, key, reduce="amax")
            covered = keys >= 0
            in_face = _raster.unpack_item(keys)
            deep = covered & (_raster.unpack_score(keys) >= band)  # value exactly 1, no gradient
        near_in = covered & ~deep

        # --- outside: nearest contour edge segment within the band.
        edge = torch.nonzero(contour.view(-1)).squeeze(1)  # (b * F + f) * 3 + i of the contour edges
        ci = edge % 3
        first_corner = edge - ci  # (b * F + f) * 3: the face's first corner in tri's (B*F*3, 2) rows
        cb = torch.div(first_corner, 3 * num_faces, rounding_mode="floor")
        cf = torch.div(first_corner, 3, rounding_mode="floor") - cb * num_faces
        corners = tri.view(-1, 2)
        a = corners.index_select(0, first_corner + (ci + 1) % 3)
        b = corners.index_select(0, first_corner + (ci + 2) % 3)
        ex0, ey0, ex1, ey1, ok = _raster.pixel_boxes(torch.minimum(a, b) - band, torch.maximum(a, b) + band,
                                                     height, width)
        okn = torch.nonzero(ok).squeeze(1)
        d = b - a
        seg = torch.stack((a[:, 0], a[:, 1], d[:, 0], d[:, 1], 1.0 / (d * d).sum(-1).clamp_min(1e-12)), -1)
        seg = seg.to(torch.float32)
        ebase = cb * hw
        if use_warp:
            out_edge = _warp_kernels.outside_search(seg, okn, ex0[okn], ey0[okn], ex1[okn], ey1[okn],
                                                    ebase[okn], best, batch * hw, width, band * band)
            near_out = out_edge >= 0
        else:
            big = torch.iinfo(torch.int64).max
            out_keys = torch.full((batch * hw,), big, dtype=torch.int64, device=device)
            for item, px, py in _raster.enumerate_boxes(ex0[okn], ey0[okn], ex1[okn], ey1[okn], max_fragments):
                e = okn[item]
                pix = ebase[e] + py * width + px
                r = seg.index_select(0, e)
                qx = px.to(torch.float32) - r[:, 0]
                qy = py.to(torch.float32) - r[:, 1]
                u = ((qx * r[:, 2] + qy * r[:, 3]) * r[:, 4]).clamp_(0.0, 1.0)
                d2 = (qx - u * r[:, 2]).square_() + (qy - u * r[:, 3]).square_()
                key = _raster.pack_key(d2, e)
                keep = (d2 < band * band) & ~covered.index_select(0, pix)
                key = torch.where(keep, key, torch.full_like(key, big))
                out_keys.scatter_reduce_(0, pix, key, reduce="amin")
            near_out = out_keys != big
            out_edge = _raster.unpack_item(torch.where(near_out, out_keys, torch.full_like(out_keys, -1)))
    return ContourWinners(deep, near_in, in_face, near_out, out_edge, contour, (cb, cf, ci))


def _splat(screen, faces, tri, area, front, height, width, gain, max_fragments):
    batch = screen.shape[0]
    hw = height * width
    b_idx, f_idx = torch.nonzero(front, as_tuple=True)
    t = screen[b_idx[:, None], faces[f_idx]]  # (N, 3, 2) with gradient
    centre = t.mean(1)
    half_area = (_signed_area(t).abs() / 2)  # screen area in px^2
    # Gaussian of the face's area: std from the equal-area disc, at least half a pixel.
    std = (half_area / math.pi).sqrt().clamp_min(0.5)
    with torch.no_grad():
        reach = 3.0 * std.detach()
        x0, y0, x1, y1, ok = _raster.pixel_boxes(centre.detach() - reach[:, None],
                                                 centre.detach() + reach[:, None], height, width)
        keep = torch.nonzero(ok).squeeze(1)
    density = torch.zeros(batch * hw, dtype=screen.dtype, device=screen.device)
    for item, px, py in _raster.enumerate_boxes(x0[keep], y0[keep], x1[keep], y1[keep], max_fragments):
        k = keep[item]
        d2 = (px.to(screen.dtype) - centre[k, 0]).square() + (py.to(screen.dtype) - centre[k, 1]).square()
        var = std[k].square()
        w = half_area[k] / (2 * math.pi * var) * torch.exp(-d2 / (2 * var))
        density = density.index_add(0, b_idx[k] * hw + py * width + px, w)
    return torch.sigmoid(gain * (density - 0.5)).view(batch, 1, height, width)


class SilhouetteRenderer(nn.Module):
    """M2S as a module: caches the mesh topology (``faces`` and their edges).

    Args:
        faces: ``(F, 3)`` triangle indices (e.g. ``AnnyBody().faces``).
        size: output ``(H, W)`` or ``res``.
        mode, sigma, band, splat_gain, behind, backend: see :func:`render_silhouette`.

    Forward:
        vertices: ``(B, V, 3)`` camera-frame vertices; K: ``(B, 3, 3)``.
        Returns ``(B, 1, H, W)`` soft silhouettes in ``[0, 1]``.
    """

    def __init__(self, faces: torch.Tensor, size: int | tuple[int, int], *, mode: SilhouetteMode = "contour",
                 sigma: float = 0.5, band: float = 2.0, splat_gain: float = 8.0, behind: str = "error",
                 backend: RenderBackend = "auto"):
        super().__init__()
        if mode not in MODES:
            raise MaskposeError(f"mode must be one of {MODES}, got {mode!r}")
        faces = torch.as_tensor(faces).long()
        if faces.ndim != 2 or faces.shape[1] != 3 or faces.shape[0] == 0:
            raise MaskposeError(f"faces must have shape (F, 3) with F > 0, got {tuple(faces.shape)}")
        self.register_buffer("faces", faces, persistent=False)
        self.register_buffer("edges", face_edges(faces), persistent=False)
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        if backend not in _warp_kernels.BACKENDS:
            raise MaskposeError(f"backend must be one of {_warp_kernels.BACKENDS}, got {backend!r}")
        self.mode, self.sigma, self.band, self.splat_gain, self.behind = mode, sigma, band, splat_gain, behind
        self.backend = backend

    def forward(self, vertices: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
        return render_silhouette(
            vertices, self.faces, K, self.size, mode=self.mode, sigma=self.sigma, band=self.band,
            splat_gain=self.splat_gain, behind=self.behind, edges=self.edges, backend=self.backend,
        )

    def extra_repr(self) -> str:
        return (f"faces={self.faces.shape[0]}, size={self.size}, mode={self.mode!r}, sigma={self.sigma}, "
                f"band={self.band}, backend={self.backend!r}")

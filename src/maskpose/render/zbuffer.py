"""Exact z-buffer rasteriser (no gradient): the reference for masks, depth, part labels and RGB
synthesis (``maskpose.data`` builds on it).

The per-pixel depth test runs in pure PyTorch (``backend="torch"``, the reference) or as a
``warp-lang`` kernel (``backend="warp"``, identical results, several times faster on the CPU);
``backend="auto"`` (default) picks Warp when it is importable and runs on the device. Everything
else (coefficients, barycentrics, depth) is the same PyTorch code for both.

Rules (stable API):

* A pixel ``(i, j)`` is sampled at its centre ``(x, y) = (j, i)`` (see
  :mod:`maskpose.render.camera`). A triangle covers a pixel centre when the centre lies inside it
  or *on* its border (inclusive rule). Edge functions are exactly antisymmetric, so two triangles
  sharing an edge leave no crack; a centre exactly on a shared edge is claimed by both and the
  depth test decides.
* Depth is the camera-frame ``z`` of the surface point seen through the pixel centre
  (perspective-correct: ``1/z`` is interpolated linearly in screen space), exact on planes.
  The nearest surface wins; exact depth ties go to the smaller face index (deterministic).
* ``barycentric`` are the perspective-correct (3D) barycentric weights of the face's three
  vertices at that point: ``sum_k barycentric[..., k] * vertices[faces[face_index, k]]`` is the
  3D surface point, so any vertex attribute (colour, normal, part label weights) interpolates the
  same way.
* Faces that are degenerate on screen (zero area) are skipped. Both windings are rasterised unless
  ``cull_backfaces=True``; with the camera mapping of :mod:`maskpose.body.anny_body` a face
  ``(v0, v1, v2)`` whose outward normal faces the camera appears **counter-clockwise on screen**,
  i.e. its pixel-space signed area ``cross(v1 - v0, v2 - v0)`` (x right, y down) is **negative**
  (:func:`front_facing`). Culling back faces leaves the result unchanged for closed,
  consistently oriented meshes such as Anny's, and is faster.
* Vertices behind the camera (``z <= near``) raise :class:`~maskpose.errors.MaskposeError` by
  default (there is no near-plane clipping); ``behind="cull"`` instead drops every face with such
  a vertex.
* Memory is bounded: (face, pixel) candidates from the faces' bounding boxes are processed in
  chunks of at most ``max_fragments`` (torch backend; the Warp kernel loops over each face's box).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from maskpose.errors import MaskposeError, all_finite, check_shape
from maskpose.render import _raster, _warp_kernels
from maskpose.render.camera import check_in_front, check_intrinsics, project


@dataclass
class Fragments:
    """What :func:`rasterize` returns for a batch of ``B`` images of ``H x W`` pixels.

    Attributes:
        face_index: ``(B, H, W)`` int64, index into ``faces`` of the visible face, ``-1`` on the
            background.
        barycentric: ``(B, H, W, 3)`` perspective-correct barycentric weights of the visible
            face's vertices (zeros on the background).
        depth: ``(B, H, W)`` camera-frame depth ``z`` in metres (``inf`` on the background).
    """

    face_index: torch.Tensor
    barycentric: torch.Tensor
    depth: torch.Tensor

    @property
    def mask(self) -> torch.Tensor:
        """``(B, H, W)`` bool: pixels covered by the mesh."""
        return self.face_index >= 0


@dataclass
class CoveredPixels:
    """:func:`rasterize_covered`'s result: the covered pixels only, without the dense per-pixel
    tables of :class:`Fragments` (a caller that gathers the covered pixels anyway skips filling
    and re-reading them).

    Attributes:
        face_index: ``(B, H, W)`` int64 as in :class:`Fragments`.
        pixels: ``(N,)`` int64 flat indices (into ``B * H * W``) of the covered pixels, increasing.
        barycentric: ``(N, 3)`` their barycentric weights; depth: ``(N,)`` their depth.
    """

    face_index: torch.Tensor
    pixels: torch.Tensor
    barycentric: torch.Tensor
    depth: torch.Tensor


def check_mesh(vertices: torch.Tensor, faces: torch.Tensor, K: torch.Tensor, size) -> tuple[int, int]:
    """Validate renderer inputs; returns ``(H, W)``. Raises :class:`MaskposeError` naming the problem."""
    check_shape("vertices", vertices, (None, None, 3))
    if vertices.shape[0] == 0:
        raise MaskposeError("vertices: empty batch")
    if not vertices.dtype.is_floating_point:
        raise MaskposeError(f"vertices must be floating point, got {vertices.dtype}")
    check_shape("faces", faces, (None, 3))
    if faces.shape[0] == 0:
        raise MaskposeError("faces: the mesh has no faces (faces.shape[0] == 0)")
    if faces.dtype.is_floating_point or faces.dtype == torch.bool:
        raise MaskposeError(f"faces must be an integer tensor, got {faces.dtype}")
    if int(faces.min()) < 0 or int(faces.max()) >= vertices.shape[1]:
        raise MaskposeError(
            f"faces index vertices out of range [0, {vertices.shape[1]}): "
            f"found [{int(faces.min())}, {int(faces.max())}]"
        )
    if faces.device != vertices.device or K.device != vertices.device:
        raise MaskposeError(
            f"vertices ({vertices.device}), faces ({faces.device}) and K ({K.device}) must be on one device"
        )
    check_intrinsics(K, vertices.shape[0])
    try:
        height, width = (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))
    except (TypeError, ValueError, IndexError):
        raise MaskposeError(f"size must be an int or (H, W), got {size!r}") from None
    if height <= 0 or width <= 0:
        raise MaskposeError(f"size must be positive, got {(height, width)}")
    return height, width


def front_facing(screen: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """``(B, F)`` bool: faces that are front-facing (negative pixel-space signed area, i.e.
    counter-clockwise on screen). ``screen`` is ``(B, V, 2)`` projected vertices."""
    tri = screen[:, faces]  # (B, F, 3, 2)
    return _signed_area(tri) < 0


def _signed_area(tri: torch.Tensor) -> torch.Tensor:
    """Twice the signed area ``cross(v1 - v0, v2 - v0)`` of ``(..., 3, 2)`` triangles, computed as
    the sum of the edge constants (exactly consistent with the edge functions)."""
    total = 0.0
    for i in range(3):
        _, _, C = _raster.edge_coefficients(tri[..., (i + 1) % 3, :], tri[..., (i + 2) % 3, :])
        total = total + C
    return total


def _face_valid(vertices: torch.Tensor, faces: torch.Tensor, behind: str, near: float) -> torch.Tensor | None:
    """Check depths; returns a ``(B, F)`` mask of faces to keep (None: keep all)."""
    if behind == "error":
        check_in_front(vertices, "vertices", near)
        return None
    if behind != "cull":
        raise MaskposeError(f"behind must be 'error' or 'cull', got {behind!r}")
    if not all_finite(vertices):
        raise MaskposeError("vertices must be finite (found NaN or Inf)")
    return (vertices[..., 2][:, faces] > near).all(-1)


@torch.no_grad()
def rasterize_covered(
    vertices: torch.Tensor,
    faces: torch.Tensor,
    K: torch.Tensor,
    size: int | tuple[int, int],
    *,
    cull_backfaces: bool = False,
    behind: str = "error",
    near: float = 1e-6,
    max_fragments: int = _raster.MAX_FRAGMENTS,
    backend: str = "auto",
) -> CoveredPixels:
    """Rasterise a batch of triangle meshes sharing one topology with an exact z-buffer; returns
    the covered pixels only (:func:`rasterize` makes the dense :class:`Fragments` of them).

    Args:
        vertices: ``(B, V, 3)`` camera-frame vertices (metres), any float dtype; not differentiated.
        faces: ``(F, 3)`` integer vertex indices.
        K: ``(B, 3, 3)`` pinhole intrinsics (pixels; see :mod:`maskpose.render.camera`).
        size: ``(H, W)`` or ``res`` of the output.
        cull_backfaces: skip faces with clockwise screen winding (see module docstring).
        behind: ``"error"`` (default) raises when a vertex has ``z <= near``; ``"cull"`` drops
            the faces touching such a vertex.
        near: depth threshold for ``behind``.
        max_fragments: memory bound, candidates per chunk (torch backend).
        backend: ``"torch"`` (pure PyTorch, the reference), ``"warp"`` (the per-pixel search as a
            ``warp-lang`` kernel; identical results) or ``"auto"`` (default: Warp when it is
            importable and runs on ``vertices``' device, else torch).

    Returns:
        :class:`CoveredPixels`: ``face_index (B, H, W)`` and, per covered pixel, its flat index,
        barycentric weights and depth in ``vertices``' float dtype, on ``vertices``' device.
    """
    height, width = check_mesh(vertices, faces, K, size)
    use_warp = _warp_kernels.resolve_backend(backend, vertices.device) == "warp"
    faces = faces.long()
    keep = _face_valid(vertices, faces, behind, near)
    vertices = vertices.detach()
    dtype = vertices.dtype
    batch, num_faces = vertices.shape[0], faces.shape[0]
    device = vertices.device
    screen = project(vertices, K.detach().to(dtype))  # (B, V, 2)
    corners = faces.reshape(-1)
    tri = screen.index_select(1, corners).view(batch, num_faces, 3, 2)  # (B, F, 3, 2)
    tri_z = vertices[..., 2].index_select(1, corners).view(batch, num_faces, 3)  # (B, F, 3)
    area = _signed_area(tri)  # (B, F)
    valid = (area != 0) & torch.isfinite(area)
    if cull_backfaces:
        valid &= area < 0
    if keep is not None:
        valid &= keep
    lo = torch.minimum(torch.minimum(tri[:, :, 0], tri[:, :, 1]), tri[:, :, 2])
    hi = torch.maximum(torch.maximum(tri[:, :, 0], tri[:, :, 1]), tri[:, :, 2])
    x0, y0, x1, y1, nonempty = _raster.pixel_boxes(lo, hi, height, width)
    valid &= nonempty
    # Flat (batch * face) indices of the items: index_select is much cheaper than 2-D indexing.
    item = torch.nonzero(valid.view(-1)).squeeze(1)
    b_idx = torch.div(item, num_faces, rounding_mode="floor")
    f_idx = item - b_idx * num_faces

    # Per-face coefficients: three edge functions with the inside made positive, and 1/z as a
    # linear function of the pixel (for the depth test only; winners are recomputed exactly).
    t = tri.view(-1, 3, 2).index_select(0, item)  # (N, 3, 2)
    item_area = area.view(-1).index_select(0, item)
    sign = torch.sign(item_area)
    inv_area_z = 1.0 / (item_area[:, None] * tri_z.view(-1, 3).index_select(0, item))  # (N, 3)
    coeffs = []
    plane = 0.0
    for i in range(3):
        A, B, C = _raster.edge_coefficients(t[:, (i + 1) % 3], t[:, (i + 2) % 3])
        coeffs += [A * sign, B * sign, C * sign]
        plane = plane + torch.stack((A, B, C), -1) * inv_area_z[:, i, None]
    table = torch.cat((torch.stack(coeffs, -1), plane), -1).to(torch.float32)  # (N, 12)
    pixel_base = b_idx * (height * width)
    bx0, by0, bx1, by1 = (c.reshape(-1).index_select(0, item) for c in (x0, y0, x1, y1))

    if use_warp:
        face_index = _warp_kernels.zbuffer_search(table, bx0, by0, bx1, by1, pixel_base, f_idx,
                                                  batch * height * width, width)
        face_index = face_index.view(batch, height, width)
    else:
        keys = torch.full((batch * height * width,), -1, dtype=torch.int64, device=device)
        for item, px, py in _raster.enumerate_boxes(bx0, by0, bx1, by1, max_fragments):
            c = table[item]  # (n, 12)
            x, y = px.to(torch.float32), py.to(torch.float32)
            e0 = _raster.evaluate_edge(c[:, 0], c[:, 1], c[:, 2], x, y)
            e1 = _raster.evaluate_edge(c[:, 3], c[:, 4], c[:, 5], x, y)
            e2 = _raster.evaluate_edge(c[:, 6], c[:, 7], c[:, 8], x, y)
            inside = (e0 >= 0) & (e1 >= 0) & (e2 >= 0)
            inv_z = (c[:, 9] * x + c[:, 10] * y + c[:, 11]).clamp_min(0.0)
            key = _raster.pack_key(inv_z, f_idx[item])
            key = torch.where(inside, key, torch.full_like(key, -1))
            keys.scatter_reduce_(0, pixel_base[item] + py * width + px, key, reduce="amax")
        face_index = _raster.unpack_item(keys).view(batch, height, width)

    pix = torch.nonzero(face_index.view(-1) >= 0).squeeze(1)
    hw = height * width
    bb = torch.div(pix, hw, rounding_mode="floor")
    rest = pix - bb * hw
    yy = torch.div(rest, width, rounding_mode="floor")
    xx = rest - yy * width
    hit_item = bb * num_faces + face_index.view(-1).index_select(0, pix)
    bary, z = _perspective_barycentric(tri.view(-1, 3, 2).index_select(0, hit_item),
                                       tri_z.view(-1, 3).index_select(0, hit_item), xx.to(dtype), yy.to(dtype))
    return CoveredPixels(face_index, pix, bary, z)


@torch.no_grad()
def rasterize(vertices: torch.Tensor, faces: torch.Tensor, K: torch.Tensor, size: int | tuple[int, int],
              **kwargs) -> Fragments:
    """Rasterise a batch of triangle meshes sharing one topology with an exact z-buffer.

    The arguments are :func:`rasterize_covered`'s (``cull_backfaces``, ``behind``, ``near``,
    ``max_fragments``, ``backend`` by keyword).

    Returns:
        :class:`Fragments` with ``face_index (B, H, W)``, ``barycentric (B, H, W, 3)`` and
        ``depth (B, H, W)`` in ``vertices``' float dtype, on ``vertices``' device.
    """
    covered = rasterize_covered(vertices, faces, K, size, **kwargs)
    face_index = covered.face_index
    dtype = covered.barycentric.dtype
    barycentric = torch.zeros(*face_index.shape, 3, dtype=dtype, device=face_index.device)
    depth = torch.full(face_index.shape, float("inf"), dtype=dtype, device=face_index.device)
    barycentric.view(-1, 3).index_copy_(0, covered.pixels, covered.barycentric)
    depth.view(-1).index_copy_(0, covered.pixels, covered.depth)
    return Fragments(face_index, barycentric, depth)


def _perspective_barycentric(tri: torch.Tensor, tri_z: torch.Tensor, x: torch.Tensor, y: torch.Tensor):
    """Perspective-correct barycentrics ``(N, 3)`` and depth ``(N,)`` at pixel centres ``(x, y)``
    of triangles ``tri (N, 3, 2)`` with vertex depths ``tri_z (N, 3)``."""
    screen_bary = []
    for i in range(3):
        A, B, C = _raster.edge_coefficients(tri[:, (i + 1) % 3], tri[:, (i + 2) % 3])
        screen_bary.append(_raster.evaluate_edge(A, B, C, x, y))
    lam = torch.stack(screen_bary, -1)
    lam = lam / lam.sum(-1, keepdim=True)  # screen-space barycentrics (sum of edge functions = area)
    w = lam / tri_z
    inv_z = w.sum(-1, keepdim=True)
    return w / inv_z, 1.0 / inv_z[:, 0]


def silhouette_mask(vertices: torch.Tensor, faces: torch.Tensor, K: torch.Tensor, size, **kwargs) -> torch.Tensor:
    """Exact binary silhouette ``(B, 1, H, W)`` float (0/1) from :func:`rasterize`."""
    return rasterize(vertices, faces, K, size, **kwargs).mask[:, None].to(vertices.dtype)

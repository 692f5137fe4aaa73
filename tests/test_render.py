"""maskpose.render: camera, exact z-buffer, differentiable silhouettes (M2S)."""

from __future__ import annotations

import pytest
import torch

from maskpose.errors import MaskposeError
from maskpose.render.camera import (
    fit_translation,
    intrinsics,
    point_bounds,
    project,
    translation_to_weak_perspective,
    weak_perspective_to_translation,
)
from maskpose.render.zbuffer import front_facing, rasterize, rasterize_covered


# --------------------------------------------------------------------------------------- helpers
def _unit_camera(res: int, batch: int = 1, dtype=torch.float32) -> torch.Tensor:
    """fx = fy = 1, principal point at the origin: a point (x, y, 1) projects to pixel (x, y)."""
    return intrinsics(1.0, res, principal=(0.0, 0.0), batch=batch, dtype=dtype)


def _pixel_centres(res: int) -> tuple[torch.Tensor, torch.Tensor]:
    ys, xs = torch.meshgrid(torch.arange(res), torch.arange(res), indexing="ij")
    return xs, ys


# ------------------------------------------------------------------------------------------ camera
def test_projection_of_known_point():
    K = intrinsics(100.0, (64, 80))  # centre ((80 - 1) / 2, (64 - 1) / 2) = (39.5, 31.5)
    assert K[0, 0, 2] == 39.5 and K[0, 1, 2] == 31.5
    points = torch.tensor([[[0.0, 0.0, 2.0], [0.2, -0.1, 2.0], [1.0, 1.0, 4.0]]])
    uv = project(points, K)
    expected = torch.tensor([[[39.5, 31.5], [49.5, 26.5], [64.5, 56.5]]])
    torch.testing.assert_close(uv, expected)


def test_weak_perspective_round_trip_and_projection():
    res, focal = 128, 300.0
    scale = torch.tensor([0.8, 1.3])
    offset = torch.tensor([[0.1, -0.05], [0.0, 0.2]])
    t = weak_perspective_to_translation(scale, offset, focal, res)
    s2, o2 = translation_to_weak_perspective(t, focal, res)
    torch.testing.assert_close(s2, scale)
    torch.testing.assert_close(o2, offset)
    # A point at the pelvis depth projects where the weak-perspective model puts it.
    K = intrinsics(focal, res, batch=2)
    point = torch.tensor([[0.3, -0.2, 0.0]]).expand(2, 1, 3)
    uv = project(point + t[:, None], K)[:, 0]
    normalised = (uv - (res - 1) / 2) / (res / 2)
    torch.testing.assert_close(normalised, scale[:, None] * (point[:, 0, :2] + offset))


# -------------------------------------------------------------------------------------- z-buffer
def test_single_triangle_covers_expected_pixel_centres():
    res = 32
    # Right triangle with corners on half-integers; pixel centres on the hypotenuse x + y = 29 count.
    tri = torch.tensor([[[9.5, 9.5, 1.0], [19.5, 9.5, 1.0], [9.5, 19.5, 1.0]]])
    faces = torch.tensor([[0, 1, 2]])
    xs, ys = _pixel_centres(res)
    expected = (xs >= 10) & (ys >= 10) & (xs + ys <= 29)
    for f in (faces, faces.flip(1)):  # both windings
        frags = rasterize(tri, f, _unit_camera(res), res)
        assert torch.equal(frags.mask[0], expected)
        assert torch.equal(frags.face_index[0][expected], torch.zeros(int(expected.sum()), dtype=torch.long))
    # Culling: on screen (y down) this winding is clockwise, a back face.
    assert not front_facing(project(tri, _unit_camera(res)), faces).any()
    assert not rasterize(tri, faces, _unit_camera(res), res, cull_backfaces=True).mask.any()
    assert rasterize(tri, faces.flip(1), _unit_camera(res), res, cull_backfaces=True).mask.sum() == expected.sum()


def test_square_of_two_triangles_is_exact_and_depth_is_exact_on_a_plane():
    res = 40
    corners = torch.tensor([[5.5, 7.5], [30.5, 7.5], [30.5, 20.5], [5.5, 20.5]], dtype=torch.float64)
    # A tilted plane z = 2 + 0.01 x + 0.02 y (x, y normalised by z: pixel u = x / z with f = 1).
    a, b, c = 2.0, 0.01, 0.02
    # Back-project the pixel corners onto the plane: X = u z, Y = v z, z = a + b X + c Y.
    z = a / (1 - b * corners[:, 0] - c * corners[:, 1])
    verts = torch.cat((corners * z[:, None], z[:, None]), -1)[None]
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    frags = rasterize(verts, faces, _unit_camera(res, dtype=torch.float64), res)
    xs, ys = _pixel_centres(res)
    expected = (xs >= 6) & (xs <= 30) & (ys >= 8) & (ys <= 20)
    assert torch.equal(frags.mask[0], expected)
    assert set(frags.face_index[0][expected].unique().tolist()) == {0, 1}
    assert torch.isinf(frags.depth[0][~expected]).all()
    true_depth = a / (1 - b * xs.double() - c * ys.double())
    torch.testing.assert_close(frags.depth[0][expected], true_depth[expected], rtol=1e-12, atol=0)
    # Barycentrics reproduce the 3D point seen through each pixel centre.
    idx = frags.face_index[0][expected]
    point = (frags.barycentric[0][expected][..., None] * verts[0][faces[idx]]).sum(1)
    torch.testing.assert_close(point[:, 2], true_depth[expected], rtol=1e-12, atol=0)
    torch.testing.assert_close(point[:, 0] / point[:, 2], xs[expected].double(), rtol=0, atol=1e-9)


def test_nearer_face_wins_and_chunking_does_not_change_the_result():
    res = 24
    near = torch.tensor([[2.0, 2.0, 1.0], [20.0, 2.0, 1.0], [2.0, 20.0, 1.0]])
    far = torch.tensor([[2.0, 2.0, 3.0], [20.0, 2.0, 3.0], [20.0, 20.0, 3.0]]) * torch.tensor([3.0, 3.0, 1.0])
    verts = torch.cat((far, near))[None]  # far triangle scaled so it projects to the same pixels
    faces = torch.tensor([[0, 1, 2], [3, 4, 5]])
    K = _unit_camera(res)
    frags = rasterize(verts, faces, K, res)
    both = (frags.face_index[0] == 1) & (frags.depth[0] == 1.0)
    assert both.sum() > 100
    only_far = frags.face_index[0] == 0
    assert torch.allclose(frags.depth[0][only_far], torch.tensor(3.0))
    small = rasterize(verts, faces, K, res, max_fragments=7)
    assert torch.equal(small.face_index, frags.face_index)
    assert torch.equal(small.depth, frags.depth)


def test_bad_input_raises_maskpose_error():
    K = intrinsics(50.0, 16)
    verts = torch.tensor([[[0.0, 0.0, 1.0], [0.1, 0.0, 1.0], [0.0, 0.1, 1.0]]])
    faces = torch.tensor([[0, 1, 2]])
    with pytest.raises(MaskposeError, match="vertices"):
        rasterize(verts[0], faces, K, 16)
    with pytest.raises(MaskposeError, match="no faces"):
        rasterize(verts, faces[:0], K, 16)
    with pytest.raises(MaskposeError, match="out of range"):
        rasterize(verts, faces + 1, K, 16)
    with pytest.raises(MaskposeError, match="K"):
        rasterize(verts, faces, K[0], 16)
    behind = verts.clone()
    behind[0, 1, 2] = -0.5
    with pytest.raises(MaskposeError, match="behind"):
        rasterize(behind, faces, K, 16)
    assert not rasterize(behind, faces, K, 16, behind="cull").mask.any()


# ------------------------------------------------------------------------------- body fixtures

def _random_bodies(body, n: int, res: int, seed: int = 0):
    """Posed bodies placed as a detector crop would: ``(vertices (n, V, 3), K (n, 3, 3))``."""
    try:
        from maskpose.body.sampler import PoseSampler

        pose, phenotypes = PoseSampler(seed=seed).sample(n)
    except ImportError:  # the sampler is optional here
        from maskpose.body.rotations import rotvec_to_sixd

        g = torch.Generator().manual_seed(seed)
        pose = rotvec_to_sixd(0.3 * torch.randn(n, 18, 3, generator=g))
        phenotypes = 0.3 + 0.4 * torch.rand(n, 6, generator=g)
    K = intrinsics(2.0 * res, res, batch=n)
    with torch.no_grad():
        local = body(pose, phenotypes).vertices
        vertices = local + fit_translation(local, K, res)[:, None]
    return vertices, K


def _iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    dims = tuple(range(1, a.ndim))
    return (a & b).sum(dims).double() / (a | b).sum(dims).clamp_min(1).double()


def test_fit_translation_fills_and_centres_the_crop(body):
    res = 96
    vertices, K = _random_bodies(body, 4, res, seed=3)
    uv = project(vertices, K)
    lo, hi = uv.amin(1), uv.amax(1)
    span = (hi - lo).amax(-1)
    torch.testing.assert_close(span, torch.full_like(span, 0.8 * res), rtol=0.02, atol=0)
    torch.testing.assert_close((lo + hi) / 2, torch.full_like(lo, (res - 1) / 2), rtol=0, atol=0.5)


def test_anny_front_faces_face_the_camera_and_culling_keeps_the_mask(body):
    res = 96
    vertices, K = _random_bodies(body, 4, res, seed=4)
    faces = body.faces
    tri = vertices[:, faces]
    normal = torch.cross(tri[:, :, 1] - tri[:, :, 0], tri[:, :, 2] - tri[:, :, 0], dim=-1)
    toward = (normal * tri[:, :, 0]).sum(-1) < 0  # outward normal points at the camera
    front = front_facing(project(vertices, K), faces)
    assert (front == toward).double().mean() > 0.999
    full = rasterize(vertices, faces, K, res)
    culled = rasterize(vertices, faces, K, res, cull_backfaces=True)
    assert _iou(full.mask, culled.mask).min() > 0.999
    assert full.mask.sum() > 0.05 * full.mask.numel()


# ------------------------------------------------------------------------------------ silhouette
@pytest.mark.slow
def test_contour_silhouette_matches_zbuffer_on_64_poses(body):
    from maskpose.render.silhouette import SilhouetteRenderer

    res = 128
    vertices, K = _random_bodies(body, 64, res, seed=0)
    exact = rasterize(vertices, body.faces, K, res).mask
    soft = SilhouetteRenderer(body.faces, res)(vertices, K)
    assert soft.shape == (64, 1, res, res)
    assert soft.min() >= 0 and soft.max() <= 1
    iou = _iou(soft[:, 0] >= 0.5, exact)
    assert iou.min() >= 0.99, f"min IoU {float(iou.min()):.4f}"
    # Soft values exist only in a band around the border.
    partial = ((soft > 0) & (soft < 1)).sum() / soft.numel()
    assert 0 < partial < 0.2


def test_splat_mode_is_close_and_differentiable(body):
    from maskpose.render.silhouette import render_silhouette

    res = 64
    vertices, K = _random_bodies(body, 4, res, seed=1)
    exact = rasterize(vertices, body.faces, K, res).mask
    v = vertices.clone().requires_grad_(True)
    soft = render_silhouette(v, body.faces, K, res, mode="splat")
    assert _iou(soft[:, 0] >= 0.5, exact).min() > 0.8
    soft.sum().backward()
    assert torch.isfinite(v.grad).all() and v.grad.abs().sum() > 0


def _octahedron(dtype=torch.float64):
    verts = torch.tensor(
        [[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], dtype=dtype
    ) * torch.tensor([0.3, 0.25, 0.2], dtype=dtype)
    # Outward-oriented (counter-clockwise seen from outside) faces.
    faces = torch.tensor([[0, 2, 4], [2, 1, 4], [1, 3, 4], [3, 0, 4],
                          [2, 0, 5], [1, 2, 5], [3, 1, 5], [0, 3, 5]])
    rot = torch.tensor([[0.9, -0.3, 0.3], [0.35, 0.93, -0.1], [-0.25, 0.2, 0.95]], dtype=dtype)
    rot, _ = torch.linalg.qr(rot)
    return verts @ rot.T + torch.tensor([0.02, -0.01, 2.0], dtype=dtype), faces


def test_gradients_reach_vertices_and_match_finite_differences():
    from maskpose.render.silhouette import render_silhouette

    res = 24
    verts, faces = _octahedron()
    tri = verts[faces]
    normal = torch.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=-1)
    assert ((normal * (tri.mean(1) - verts.mean(0))).sum(-1) > 0).all()  # outward
    K = intrinsics(40.0, res, batch=1, dtype=torch.float64)
    weights = torch.rand(1, 1, res, res, generator=torch.Generator().manual_seed(0), dtype=torch.float64)

    def loss(v: torch.Tensor) -> torch.Tensor:
        return (render_silhouette(v[None], faces, K, res, sigma=1.0, band=3.0) * weights).sum()

    v = verts.clone().requires_grad_(True)
    loss(v).backward()
    grad = v.grad
    assert torch.isfinite(grad).all()
    assert (grad.abs().sum(-1) > 0).sum() >= 4  # the silhouette's vertices all get gradient
    eps = 1e-6
    numeric = torch.zeros_like(verts)
    with torch.no_grad():
        for i in range(verts.shape[0]):
            for k in range(3):
                d = torch.zeros_like(verts)
                d[i, k] = eps
                numeric[i, k] = (loss(verts + d) - loss(verts - d)) / (2 * eps)
    torch.testing.assert_close(grad, numeric, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_fitting_translation_and_rotation_to_a_target_mask(body):
    """Through the renderer alone: recover a body's translation and global rotation from its mask."""
    import roma

    from maskpose.render.silhouette import SilhouetteRenderer

    res = 64
    vertices, K = _random_bodies(body, 1, res, seed=5)
    centre = vertices.mean(1, keepdim=True)
    local = vertices - centre
    target = rasterize(vertices, body.faces, K, res).mask[:, None].double()
    renderer = SilhouetteRenderer(body.faces, res)

    def place(rotvec, shift):
        return local @ roma.rotvec_to_rotmat(rotvec).transpose(-1, -2) + centre + shift[:, None]

    rotvec = torch.tensor([[0.10, -0.15, 0.12]], requires_grad=True)
    shift = torch.tensor([[0.06, -0.05, 0.30]], requires_grad=True)  # metres; depth ~ +8 %
    with torch.no_grad():
        start = _iou(renderer(place(rotvec, shift), K)[:, 0] >= 0.5, target[:, 0] > 0)
    optimiser = torch.optim.Adam([{"params": [rotvec], "lr": 0.01}, {"params": [shift], "lr": 0.01}])
    for _ in range(150):
        optimiser.zero_grad()
        soft = renderer(place(rotvec, shift), K)
        loss = (soft - target.float()).square().mean()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        final = _iou(renderer(place(rotvec, shift), K)[:, 0] >= 0.5, target[:, 0] > 0)
    assert start < 0.85
    print(f"fit IoU {float(start):.3f} -> {float(final):.3f}")
    assert final >= 0.95, f"IoU {float(start):.3f} -> {float(final):.3f}"


def test_silhouette_bad_input_raises_maskpose_error(body):
    from maskpose.render.silhouette import SilhouetteRenderer, render_silhouette

    verts, faces = _octahedron(torch.float32)
    K = intrinsics(40.0, 16)
    with pytest.raises(MaskposeError, match="vertices"):
        render_silhouette(verts, faces, K, 16)
    with pytest.raises(MaskposeError, match="no faces"):
        render_silhouette(verts[None], faces[:0], K, 16)
    with pytest.raises(MaskposeError, match="faces"):
        SilhouetteRenderer(torch.zeros(0, 3, dtype=torch.long), 16)
    with pytest.raises(MaskposeError, match="K"):
        render_silhouette(verts[None], faces, torch.eye(3)[None].repeat(2, 1, 1), 16)
    with pytest.raises(MaskposeError, match="mode"):
        render_silhouette(verts[None], faces, K, 16, mode="softras")
    behind = verts.clone()
    behind[:, 2] -= 2.1
    with pytest.raises(MaskposeError, match="behind"):
        SilhouetteRenderer(faces, 16)(behind[None], K)
    culled = render_silhouette(behind[None], faces, K, 16, behind="cull")
    assert culled.shape == (1, 1, 16, 16)


def test_bench_render_reports_the_ratio():
    from maskpose.bench.render import bench_render

    result = bench_render(batch=2, res=32, repeats=1, warmup=0)
    for key in ("render_fwd_ms", "render_fwd_bwd_ms", "anny_fwd_bwd_ms", "ratio"):
        assert result[key] > 0
    assert result["ratio"] == pytest.approx(result["render_fwd_bwd_ms"] / result["anny_fwd_bwd_ms"], rel=1e-2)
    from maskpose.render._warp_kernels import warp_available

    assert result["backend"] == ("warp" if warp_available() else "torch")


# ----------------------------------------------------------------------------- warp backend
def _warp_or_skip():
    from maskpose.render import _warp_kernels

    if not _warp_kernels.warp_available():
        pytest.skip("warp-lang is not available")
    return _warp_kernels


@pytest.fixture(params=["serial", "two_pass"])
def warp_passes(request, monkeypatch):
    """Run a Warp test with the CPU's serial search and with the two-pass atomic search of CUDA."""
    wk = _warp_or_skip()
    monkeypatch.setattr(wk, "TWO_PASS_ON_CPU", request.param == "two_pass")
    return request.param


def _assert_same_fragments(a, b):
    assert torch.equal(a.face_index, b.face_index)
    assert torch.equal(a.mask, b.mask)
    hit = a.mask
    torch.testing.assert_close(a.depth[hit], b.depth[hit], rtol=0, atol=1e-5)
    assert torch.isinf(b.depth[~hit]).all()
    torch.testing.assert_close(a.barycentric, b.barycentric, rtol=0, atol=1e-5)


def _silhouette_and_grad(vertices, faces, K, res, backend, weights, **kwargs):
    from maskpose.render.silhouette import render_silhouette

    v = vertices.detach().clone().requires_grad_(True)
    soft = render_silhouette(v, faces, K, res, backend=backend, **kwargs)
    if soft.requires_grad:  # not when every face is culled
        (soft * weights).sum().backward()
    return soft.detach(), v.grad


def _assert_same_silhouettes(vertices, faces, K, res, **kwargs):
    g = torch.Generator().manual_seed(1)
    weights = torch.rand(vertices.shape[0], 1, res, res, generator=g, dtype=vertices.dtype)
    ref, ref_grad = _silhouette_and_grad(vertices, faces, K, res, "torch", weights, **kwargs)
    out, out_grad = _silhouette_and_grad(vertices, faces, K, res, "warp", weights, **kwargs)
    assert torch.equal(ref >= 0.5, out >= 0.5)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-5)
    if ref_grad is None:
        assert out_grad is None
    else:
        torch.testing.assert_close(out_grad, ref_grad, rtol=0, atol=1e-5)
    return ref


def test_backend_argument_is_checked_and_auto_picks_warp_on_cpu():
    from maskpose.render import _warp_kernels
    from maskpose.render.silhouette import SilhouetteRenderer, render_silhouette

    verts, faces = _octahedron(torch.float32)
    K = intrinsics(40.0, 16)
    with pytest.raises(MaskposeError, match="backend"):
        rasterize(verts[None], faces, K, 16, backend="cuda-magic")
    with pytest.raises(MaskposeError, match="backend"):
        render_silhouette(verts[None], faces, K, 16, backend="nope")
    with pytest.raises(MaskposeError, match="backend"):
        SilhouetteRenderer(faces, 16, backend="nope")
    expected = "warp" if _warp_kernels.warp_available() else "torch"
    assert _warp_kernels.resolve_backend("auto", torch.device("cpu")) == expected
    assert _warp_kernels.resolve_backend("torch", torch.device("cpu")) == "torch"
    assert _warp_kernels.resolve_backend("auto", torch.device("meta")) == "torch"


def test_warp_zbuffer_is_identical_on_analytic_cases(warp_passes):
    # One triangle, both windings, with and without culling.
    res = 32
    tri = torch.tensor([[[9.5, 9.5, 1.0], [19.5, 9.5, 1.0], [9.5, 19.5, 1.0]]])
    faces = torch.tensor([[0, 1, 2]])
    for f in (faces, faces.flip(1)):
        for cull in (False, True):
            _assert_same_fragments(rasterize(tri, f, _unit_camera(res), res, cull_backfaces=cull, backend="torch"),
                                   rasterize(tri, f, _unit_camera(res), res, cull_backfaces=cull, backend="warp"))
    # Tilted square of two triangles in float64 (pixel centres on the shared diagonal).
    res = 40
    corners = torch.tensor([[5.5, 7.5], [30.5, 7.5], [30.5, 20.5], [5.5, 20.5]], dtype=torch.float64)
    z = 2.0 / (1 - 0.01 * corners[:, 0] - 0.02 * corners[:, 1])
    verts = torch.cat((corners * z[:, None], z[:, None]), -1)[None]
    square = torch.tensor([[0, 1, 2], [0, 2, 3]])
    K = _unit_camera(res, dtype=torch.float64)
    ref = rasterize(verts, square, K, res, backend="torch")
    out = rasterize(verts, square, K, res, backend="warp")
    _assert_same_fragments(ref, out)
    assert out.depth.dtype == torch.float64
    # Overlapping triangles: the nearer one wins; an exact depth tie goes to the smaller index.
    res = 24
    near = torch.tensor([[2.0, 2.0, 1.0], [20.0, 2.0, 1.0], [2.0, 20.0, 1.0]])
    far = torch.tensor([[2.0, 2.0, 3.0], [20.0, 2.0, 3.0], [20.0, 20.0, 3.0]]) * torch.tensor([3.0, 3.0, 1.0])
    verts = torch.cat((far, near, near))[None]  # faces 1 and 2 coincide: face 1 must win
    faces = torch.tensor([[0, 1, 2], [3, 4, 5], [6, 7, 8]])
    ref = rasterize(verts, faces, _unit_camera(res), res, backend="torch")
    out = rasterize(verts, faces, _unit_camera(res), res, backend="warp")
    _assert_same_fragments(ref, out)
    assert (out.face_index == 1).sum() > 100 and not (out.face_index == 2).any()


@pytest.mark.parametrize("batch", [1, pytest.param(64, marks=pytest.mark.slow)])
def test_warp_zbuffer_is_identical_on_anny_poses(body, batch, warp_passes):
    res = 64 if batch > 1 else 128
    vertices, K = _random_bodies(body, batch, res, seed=7)
    for cull in (False, True):
        ref = rasterize(vertices, body.faces, K, res, cull_backfaces=cull, backend="torch")
        out = rasterize(vertices, body.faces, K, res, cull_backfaces=cull, backend="warp")
        _assert_same_fragments(ref, out)
        assert out.mask.sum() > 0.05 * out.mask.numel()


def test_warp_backends_are_identical_with_behind_cull(body, warp_passes):
    res = 64
    original, K = _random_bodies(body, 3, res, seed=8)
    vertices = original.clone()
    # Push the upper part of every body behind the camera (z <= 0): those faces are dropped.
    top = vertices[..., 1] < vertices[..., 1].mean(1, keepdim=True)
    vertices[..., 2] = torch.where(top, -0.5, vertices[..., 2])
    for cull in (False, True):
        ref = rasterize(vertices, body.faces, K, res, behind="cull", cull_backfaces=cull, backend="torch")
        out = rasterize(vertices, body.faces, K, res, behind="cull", cull_backfaces=cull, backend="warp")
        _assert_same_fragments(ref, out)
    soft = _assert_same_silhouettes(vertices, body.faces, K, res, behind="cull")
    assert 0 < (soft >= 0.5).sum() < rasterize(original, body.faces, K, res).mask.sum()
    # Everything behind the camera: empty outputs, no kernel work.
    gone = vertices.clone()
    gone[..., 2] = -1.0
    assert not rasterize(gone, body.faces, K, res, behind="cull", backend="warp").mask.any()
    soft = _assert_same_silhouettes(gone, body.faces, K, res, behind="cull")
    assert not soft.any()


@pytest.mark.parametrize("batch", [1, pytest.param(64, marks=pytest.mark.slow)])
def test_warp_silhouettes_and_gradients_are_identical_on_anny_poses(body, batch, warp_passes):
    res = 128 if batch == 1 else 64
    vertices, K = _random_bodies(body, batch, res, seed=9)
    soft = _assert_same_silhouettes(vertices, body.faces, K, res)
    assert ((soft > 0) & (soft < 1)).any()
    # A wider band and sharper sigma exercise other clamps (band**2 is compared in float32).
    _assert_same_silhouettes(vertices[:4], body.faces, K[:4], res, band=1.3, sigma=0.3)


def test_warp_silhouette_is_identical_on_the_octahedron_in_float64(warp_passes):
    res = 24
    verts, faces = _octahedron()
    K = intrinsics(40.0, res, batch=1, dtype=torch.float64)
    soft = _assert_same_silhouettes(verts[None], faces, K, res, sigma=1.0, band=3.0)
    assert soft.dtype == torch.float64 and (soft >= 0.5).sum() > 20
    # float32 too, and the zbuffer on the same mesh.
    _assert_same_silhouettes(verts[None].float(), faces, K.float(), res)
    _assert_same_fragments(rasterize(verts[None], faces, K, res, backend="torch"),
                           rasterize(verts[None], faces, K, res, backend="warp"))


def test_point_bounds_is_amin_and_amax():
    points = torch.randn(4, 301, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    lo, hi = point_bounds(points)
    assert torch.equal(lo, points.amin(1)) and torch.equal(hi, points.amax(1))
    lo, hi = point_bounds(points[..., :2].float())
    assert torch.equal(lo, points[..., :2].float().amin(1)) and lo.shape == (4, 2)


def test_rasterize_covered_holds_exactly_the_covered_pixels_of_rasterize():
    # two overlapping triangles at different depths, one partly off screen
    vertices = torch.tensor([[[-0.5, -0.5, 2.0], [0.6, -0.4, 2.0], [0.0, 0.7, 2.0],
                              [-0.2, -0.2, 1.5], [0.9, 0.1, 1.5], [0.3, 1.4, 1.5]]]).repeat(2, 1, 1)
    vertices[1, :, 0] += 0.3
    faces = torch.tensor([[0, 1, 2], [3, 4, 5]])
    K = intrinsics(20.0, 24, batch=2)
    dense = rasterize(vertices, faces, K, 24)
    covered = rasterize_covered(vertices, faces, K, 24)
    assert torch.equal(covered.face_index, dense.face_index)
    hit = (dense.face_index >= 0).flatten()
    assert torch.equal(covered.pixels.sort().values, hit.nonzero()[:, 0])
    torch.testing.assert_close(dense.barycentric.reshape(-1, 3)[covered.pixels], covered.barycentric, rtol=0, atol=0)
    torch.testing.assert_close(dense.depth.flatten()[covered.pixels], covered.depth, rtol=0, atol=0)
    assert 0 < int(hit.sum()) < hit.numel()

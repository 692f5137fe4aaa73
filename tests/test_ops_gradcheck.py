"""Gradients of the differentiable ops against finite differences (``torch.autograd.gradcheck``,
float64, tiny inputs), and, for the two estimators, their defining property.

Two gradients are estimators by design and cannot match finite differences: the binarisation
(hard forward, so finite differences are 0 almost everywhere; its backward is the derivative of a
surrogate) and S2D (integer distances; its backward moves each pixel's gradient to its nearest off
pixel, docs in maskpose.topology.distance). For those we check the surrogate's derivative and the
nearest-off-pixel rule against an analytic case; every smooth piece around them is gradchecked.
"""

from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck

from maskpose.eval import mpjpe, pa_mpjpe
from maskpose.masks import mask_supervision_loss, skeleton_mask
from maskpose.render.stick import segment_squared_distance_map
from maskpose.topology import baselines, binarize, inward_distance_map, outward_distance_map
from maskpose.topology.loss import chamfer_of_binary
from maskpose.topology.skeleton import skeleton_from_distance

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _rand(*shape, seed=0, low=0.0, high=1.0):
    gen = torch.Generator().manual_seed(seed)
    return (low + (high - low) * torch.rand(*shape, generator=gen, dtype=torch.float64)).requires_grad_(True)


# --------------------------------------------------------------------------------------------
# Estimators: their defining property


@pytest.mark.parametrize("temperature", [0.1, 0.25])
def test_soft_binarisation_gradient_is_the_sigmoid_surrogates_derivative(temperature):
    x = _rand(1, 1, 6, 6, seed=1)
    out = binarize(x, "soft", temperature)
    assert torch.equal(out, (x >= 0.5).double())  # hard forward
    v = _rand(1, 1, 6, 6, seed=2).detach()
    (grad,) = torch.autograd.grad((out * v).sum(), x)
    # Central finite differences of the surrogate sigmoid((x - 0.5) / T), elementwise.
    h = 1e-6
    surrogate = lambda t: torch.sigmoid((t - 0.5) / temperature)  # noqa: E731
    fd = (surrogate(x.detach() + h) - surrogate(x.detach() - h)) / (2 * h)
    torch.testing.assert_close(grad, v * fd, rtol=1e-6, atol=1e-9)


def test_straight_through_binarisation_passes_the_gradient_unchanged():
    x = _rand(1, 1, 6, 6, seed=3)
    v = _rand(1, 1, 6, 6, seed=4).detach()
    (grad,) = torch.autograd.grad((binarize(x, "straight_through") * v).sum(), x)
    assert torch.equal(grad, v)


@pytest.mark.parametrize("fn", [inward_distance_map, outward_distance_map])
def test_soft_distance_chain_is_the_surrogate_times_the_s2d_estimator(fn):
    # The soft chain is binarize (soft) then S2D: its gradient must be the chain rule of the two,
    # i.e. sigmoid' / T times the gradient S2D gives the binary mask (the straight-through one).
    x = _rand(1, 1, 6, 6, seed=5)
    v = _rand(1, 1, 6, 6, seed=6).detach()
    (soft,) = torch.autograd.grad((fn(x, binarization="soft", temperature=0.2) * v).sum(), x)
    (straight,) = torch.autograd.grad((fn(x, binarization="straight_through") * v).sum(), x)
    s = torch.sigmoid((x.detach() - 0.5) / 0.2)
    torch.testing.assert_close(soft, straight * s * (1 - s) / 0.2)


def test_s2d_estimator_on_an_analytic_case():
    # One off pixel q in a 6x6 map (outside the image counts as on): every pixel's nearest off
    # pixel is q, so dD/dS = v + (sum of v over the on pixels) at q.
    mask = torch.ones(1, 1, 6, 6, dtype=torch.float64)
    mask[0, 0, 2, 3] = 0
    x = mask.clone().requires_grad_(True)
    v = _rand(1, 1, 6, 6, seed=7).detach()
    d = inward_distance_map(x, kernel="chessboard", binarization="straight_through")
    rows, cols = torch.meshgrid(torch.arange(6), torch.arange(6), indexing="ij")
    assert torch.equal(d[0, 0], torch.maximum((rows - 2).abs(), (cols - 3).abs()).double())
    (grad,) = torch.autograd.grad((d * v).sum(), x)
    expected = v.clone()
    expected[0, 0, 2, 3] += (v * mask).sum()
    torch.testing.assert_close(grad, expected)


def test_chamfer_gradient_is_the_exact_weighting_plus_the_s2d_estimator():
    # chamfer_of_binary(A, B) = sum(D_B * A) / sum(A) + sum(S2D(1 - A) * B) / |B|. With A's values
    # kept off 0.5, the distance maps are constant under small changes: finite differences see the
    # first (smooth) term only, which gradcheck confirms; the S2D estimator adds, for the second
    # term with A on at a single pixel q (the only off pixel of 1 - A, so every pixel's nearest),
    # -(g + delta_q * sum_{p != q} g) with g = B / |B|.
    a = torch.full((1, 1, 6, 6), 0.1, dtype=torch.float64)
    a[0, 0, 1, 4] = 0.9
    b = torch.zeros(1, 1, 6, 6, dtype=torch.float64)
    b[0, 0, 3:5, 1:3] = 1.0
    b[0, 0, 1, 4] = 1.0
    x = a.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(chamfer_of_binary(x, b, "chessboard").sum(), x)

    y = a.clone().requires_grad_(True)
    d_b = outward_distance_map(b, kernel="chessboard")
    smooth = lambda t: (d_b * t).sum() / t.sum()  # noqa: E731
    assert gradcheck(smooth, (y,))
    (smooth_grad,) = torch.autograd.grad(smooth(y), y)
    g = b / b.sum()
    estimator = -g.clone()
    estimator[0, 0, 1, 4] -= g.sum() - g[0, 0, 1, 4]
    torch.testing.assert_close(grad, smooth_grad + estimator)


# --------------------------------------------------------------------------------------------
# Smooth ops: gradcheck


def test_gradcheck_d2t():
    # T = ReLU(D - maxpool(D) + 1) * S: exact for distinct values (no max ties, no ReLU kink).
    inward = _rand(1, 1, 6, 6, seed=8, high=3.0)
    binary = _rand(1, 1, 6, 6, seed=9)
    assert gradcheck(skeleton_from_distance, (binary, inward))


def test_gradcheck_segment_squared_distance_map():
    joints = _rand(1, 3, 2, seed=10, high=6.0)
    assert gradcheck(lambda j: segment_squared_distance_map(j, [(0, 1), (1, 2)], (6, 6)), (joints,))


@pytest.mark.parametrize("reduce", ["sum", "max"])
def test_gradcheck_skeleton_mask(reduce):
    joints = _rand(1, 3, 2, seed=11, high=6.0)
    fn = lambda j: skeleton_mask(j, [(0, 1), (1, 2)], sigma=1.5, size=(6, 6), reduce=reduce)  # noqa: E731
    assert gradcheck(fn, (joints,))


def test_gradcheck_mask_supervision_loss():
    mask = (_rand(2, 1, 6, 6, seed=12) > 0.5).double()
    weights = _rand(2, 1, 6, 6, seed=13).detach()
    skel, phys = _rand(2, 1, 6, 6, seed=14), _rand(2, 1, 6, 6, seed=15)
    assert gradcheck(lambda s, p: mask_supervision_loss(mask, s, p, weights, 0.7, 1.3), (skel, phys))


@pytest.mark.parametrize("name", ["pixel_l1_loss", "pixel_l2_loss", "bce_loss", "soft_iou_loss"])
def test_gradcheck_pixel_baselines(name):
    fn = getattr(baselines, name)
    target = (_rand(2, 1, 6, 6, seed=16) > 0.5).double()
    pred = _rand(2, 1, 6, 6, seed=17, low=0.05, high=0.95)
    assert gradcheck(lambda p: fn(p, target, reduction="none"), (pred,))


@pytest.mark.parametrize("fn", [mpjpe, pa_mpjpe], ids=["mpjpe", "pa_mpjpe"])
def test_gradcheck_pose_metrics(fn):
    gt = _rand(2, 5, 3, seed=18).detach()
    pred = _rand(2, 5, 3, seed=19)
    assert gradcheck(lambda p: fn(p, gt, reduction="none"), (pred,))

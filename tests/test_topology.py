"""maskpose.topology: S2D against scipy, D2T against scikit-image, gradients, robustness, API."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import ndimage
from scipy.spatial import cKDTree
from skimage.morphology import medial_axis, thin

from maskpose.conventions import H36M_BONES
from maskpose.errors import ConfigError, MaskposeError, all_finite
from maskpose.render.stick import capsule_silhouette
from maskpose.topology import (
    ChamferMapLoss,
    InwardDistanceMap,
    OutwardDistanceMap,
    SilhouetteAlignmentLoss,
    SilhouetteTopologyLoss,
    TopologicalSkeleton,
    TopologyAlignmentLoss,
    baselines,
    binarize,
    chamfer_map_loss,
    inward_distance_map,
    outward_distance_map,
    silhouette_alignment_loss,
    silhouette_topology_loss,
    topological_skeleton,
    topology_alignment_loss,
)
from maskpose.topology.distance import erosion_levels, nearest_off_pixel
from maskpose.topology.loss import GRADIENT_MARGIN
from maskpose.topology.skeleton import local_max_3x3
from shapes import human_masks, standing_joints

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


# --------------------------------------------------------------------------------------------
# Mask corpus


def _blobs(n: int, size: int, seed: int) -> torch.Tensor:
    """Random smooth blobs: box-filtered noise, thresholded."""
    gen = torch.Generator().manual_seed(seed)
    noise = F.avg_pool2d(torch.rand(n, 1, size, size, generator=gen), 7, 1, 3, count_include_pad=False)
    return (noise > 0.52).float()


def _lines(size: int = 32) -> torch.Tensor:
    """One-pixel lines: horizontal, vertical, diagonal, anti-diagonal, and a one-pixel L."""
    masks = torch.zeros(5, 1, size, size)
    masks[0, 0, 10, 3:29] = 1
    masks[1, 0, 2:30, 17] = 1
    idx = torch.arange(4, 28)
    masks[2, 0, idx, idx] = 1
    masks[3, 0, idx, size - 1 - idx] = 1
    masks[4, 0, 5, 5:20] = 1
    masks[4, 0, 5:25, 19] = 1
    return masks


def _border_masks(size: int = 32) -> torch.Tensor:
    """Masks touching the border: a corner block, a left half-plane, a frame, a bar across."""
    masks = torch.zeros(4, 1, size, size)
    masks[0, 0, :12, :15] = 1
    masks[1, 0, :, :13] = 1
    masks[2] = 1
    masks[2, 0, 3:-3, 3:-3] = 0
    masks[3, 0, 14:20, :] = 1
    return masks


def _special(size: int = 32) -> torch.Tensor:
    """Empty, full, one pixel on, one pixel off."""
    masks = torch.zeros(4, 1, size, size)
    masks[1] = 1
    masks[2, 0, 7, 20] = 1
    masks[3] = 1
    masks[3, 0, 30, 2] = 0
    return masks


def _corpus() -> dict[str, torch.Tensor]:
    return {"blobs": _blobs(8, 48, seed=1), "humans": human_masks(4, 128, seed=2), "lines": _lines(),
            "border": _border_masks(), "special": _special()}


def _cdt(mask: np.ndarray) -> np.ndarray:
    return ndimage.distance_transform_cdt(mask, metric="chessboard").astype(np.float64)


# --------------------------------------------------------------------------------------------
# S2D


@pytest.mark.parametrize("direction", ["inward", "outward"])
def test_chessboard_s2d_equals_scipy_cdt_exactly(direction):
    distance = inward_distance_map if direction == "inward" else outward_distance_map
    for name, masks in _corpus().items():
        size = masks.shape[-1]
        ours = distance(masks, kernel="chessboard").numpy()[:, 0]
        for i, mask in enumerate(masks.numpy()[:, 0] > 0.5):
            source = mask if direction == "inward" else ~mask
            if source.all():
                # Nothing off to measure to: scipy returns -1, we return the documented H + W.
                assert (ours[i] == 2 * size).all(), (name, i)
            else:
                np.testing.assert_array_equal(ours[i], _cdt(source), err_msg=f"{name} #{i} {direction}")


def test_truncated_iterations_clip_the_distance():
    masks = _blobs(4, 48, seed=3)
    for iterations in (0, 1, 3):
        ours = outward_distance_map(masks, kernel="chessboard", iterations=iterations).numpy()[:, 0]
        for i, mask in enumerate(masks.numpy()[:, 0] > 0.5):
            np.testing.assert_array_equal(ours[i], np.minimum(_cdt(~mask), iterations + 1))


def test_octagonal_is_closer_to_euclidean_than_chessboard():
    errors = {}
    for kernel in ("chessboard", "octagonal"):
        total, count = 0.0, 0
        for name, masks in _corpus().items():
            if name == "special":
                continue
            inward = inward_distance_map(masks, kernel=kernel).numpy()[:, 0]
            outward = outward_distance_map(masks, kernel=kernel).numpy()[:, 0]
            for i, mask in enumerate(masks.numpy()[:, 0] > 0.5):
                for ours, source in ((inward[i], mask), (outward[i], ~mask)):
                    if source.all():
                        continue
                    total += np.abs(ours - ndimage.distance_transform_edt(source)).sum()
                    count += source.size
        errors[kernel] = total / count
    print(f"\nmean |S2D - scipy EDT| px: chessboard {errors['chessboard']:.4f}, "
          f"octagonal {errors['octagonal']:.4f}")
    assert errors["octagonal"] < 0.7 * errors["chessboard"]


def test_empty_and_full_masks_give_the_documented_constant():
    masks = _special(32)
    for kernel in ("chessboard", "octagonal"):
        inward = inward_distance_map(masks, kernel=kernel)
        outward = outward_distance_map(masks, kernel=kernel)
        assert (outward[0] == 64).all() and (inward[0] == 0).all()  # empty
        assert (inward[1] == 64).all() and (outward[1] == 0).all()  # full
        assert torch.isfinite(inward).all() and torch.isfinite(outward).all()


def test_s2d_backward_lands_on_the_nearest_off_pixel():
    # Chessboard: every walk from a pixel at distance d must end on an off pixel at distance d.
    masks = torch.cat([_blobs(6, 48, seed=4), _lines(48)[:3]])
    on = masks > 0.5
    levels = erosion_levels(on, "chessboard")
    start = torch.nonzero(levels.flatten() >= 1).flatten()
    end, reached = nearest_off_pixel(levels, start)
    assert reached.all()
    height, width = masks.shape[-2:]
    assert (on.flatten()[end] == 0).all()
    same_map = torch.div(start, height * width, rounding_mode="floor") == torch.div(
        end, height * width, rounding_mode="floor")
    assert same_map.all()
    dy = (torch.div(start, width, rounding_mode="floor") - torch.div(end, width, rounding_mode="floor")).abs()
    dx = (start % width - end % width).abs()
    assert torch.equal(torch.maximum(dy, dx), levels.flatten()[start].long())

    # And the gradient of sum(D_in) is the identity plus one unit on those off pixels.
    soft = masks.clone().requires_grad_(True)
    inward_distance_map(soft, kernel="chessboard", binarization="straight_through").sum().backward()
    expected = torch.ones(masks.numel()).index_add_(0, end, torch.ones(len(end)))
    assert torch.equal(soft.grad.flatten(), expected)


def _descent_walk_by_hand(levels: np.ndarray, start: int) -> tuple[int, bool]:
    """The walk of ``nearest_off_pixel`` written out for one pixel: step to the strictly lowest of
    the 8 neighbours (4-neighbours up, down, left, right, then the diagonals, the first of equals
    winning), stay once none is lower; the map's border is never crossed."""
    _, height, width = levels.shape
    b, y, x = np.unravel_index(start, levels.shape)
    order = ((-1, 0), (1, 0), (0, -1), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1))
    while True:
        best, step = levels[b, y, x], None
        for dy, dx in order:
            if 0 <= y + dy < height and 0 <= x + dx < width and levels[b, y + dy, x + dx] < best:
                best, step = levels[b, y + dy, x + dx], (dy, dx)
        if step is None:
            return int(np.ravel_multi_index((b, y, x), levels.shape)), bool(levels[b, y, x] == 0)
        y, x = y + step[0], x + step[1]


@pytest.mark.parametrize("kernel", ["octagonal", "chessboard"])
def test_s2d_descent_walks_match_the_walk_written_out(kernel):
    # Walks of every length in one call (short ones leave the walking set early), and a full map,
    # whose walks never reach an off pixel, beside them.
    on = torch.cat([_blobs(3, 23, seed=8) > 0.5, torch.ones(1, 1, 23, 23, dtype=torch.bool)])
    on[0, 0, 2:21, 2:21] = True  # one deep square: walks up to 11 steps
    levels = erosion_levels(on, kernel)
    start = torch.nonzero(levels.flatten() >= 1).flatten()
    end, reached = nearest_off_pixel(levels, start)
    plain = levels[:, 0].numpy()
    expected = [_descent_walk_by_hand(plain, int(s)) for s in start]
    assert end.tolist() == [e for e, _ in expected]
    assert reached.tolist() == [r for _, r in expected]
    assert not reached[start >= 3 * 23 * 23].any() and reached[start < 3 * 23 * 23].all()


def test_local_max_3x3_gradient_is_autograd_of_shifted_maxima():
    # D2T's 3x3 maximum has its backward written out: the same values and gradients as autograd
    # through torch.maximum of shifted views (half to each on a tie), on maps with many ties.
    gen = torch.Generator().manual_seed(5)
    for shape in [(3, 1, 17, 21), (2, 1, 1, 9), (1, 1, 6, 1), (4, 1, 40, 33)]:
        values = torch.randint(0, 4, shape, generator=gen).float()
        upstream = torch.randn(shape, generator=gen)
        mine = values.clone().requires_grad_(True)
        out = local_max_3x3(mine)
        out.backward(upstream)
        ref = values.clone().requires_grad_(True)
        padded = F.pad(ref, (1, 1, 1, 1))
        rows = torch.maximum(torch.maximum(padded[..., :-2], padded[..., 1:-1]), padded[..., 2:])
        expected = torch.maximum(torch.maximum(rows[..., :-2, :], rows[..., 1:-1, :]), rows[..., 2:, :])
        expected.backward(upstream)
        assert torch.equal(out, expected)
        assert torch.equal(out, F.max_pool2d(F.pad(values, (1, 1, 1, 1)), 3, 1))
        assert torch.equal(mine.grad, ref.grad)


def test_s2d_descent_on_a_map_too_deep_for_int16_keys():
    # A 1 x 2100 strip whose only off pixel is its left end: levels reach 2099, beyond what the
    # walk's int16 keys (level * 16 + code) hold, so the walk runs on int32 keys; it must still go
    # from every pixel straight to that one off pixel.
    on = torch.ones(1, 1, 1, 2100, dtype=torch.bool)
    on[..., 0] = False
    levels = erosion_levels(on, "chessboard")
    assert torch.equal(levels.flatten().long(), torch.arange(2100))
    start = torch.tensor([1, 700, 2099])
    end, reached = nearest_off_pixel(levels, start)
    assert reached.all() and (end == 0).all()


def _within_margin(binary: torch.Tensor) -> torch.Tensor:
    """0/1 map of the pixels within GRADIENT_MARGIN 4-neighbour steps of a 0/1 map's on pixels."""
    cross = torch.tensor([[0.0, 1.0, 0.0], [1.0, 1.0, 1.0], [0.0, 1.0, 0.0]])[None, None]
    near = binary
    for _ in range(GRADIENT_MARGIN):
        near = (F.conv2d(near, cross, padding=1) > 0).float()
    return near


def test_loss_reads_only_what_it_needs_but_matches_full_maps():
    # The loss stops eroding early; value and gradient must equal the same formula on full maps.
    target = human_masks(3, 64, seed=6)
    pred = F.avg_pool2d(human_masks(3, 64, seed=7), 3, 1, 1).requires_grad_(True)
    st = "straight_through"  # the margin is defined for the straight-through gradient
    loss = chamfer_map_loss(pred, target, binarization=st, reduction="none")
    (grad_loss,) = torch.autograd.grad(loss.sum(), pred)

    pred2 = pred.detach().clone().requires_grad_(True)
    a, b = binarize(pred2, st), target
    full = ((outward_distance_map(b, binarization=st) * a).sum((1, 2, 3)) / a.sum((1, 2, 3))
            + (outward_distance_map(a, binarization=st) * b).sum((1, 2, 3)) / b.sum((1, 2, 3)))
    (grad_full,) = torch.autograd.grad(full.sum(), pred2)
    torch.testing.assert_close(loss, full)
    # Gradients agree within GRADIENT_MARGIN 4-neighbour steps of the predicted mask, where a
    # renderer has gradient (farther out the straight-through push-down is capped).
    near = _within_margin(a.detach())
    assert near.mean() < 0.9  # the check leaves some far background out
    torch.testing.assert_close(grad_loss * near, grad_full * near)


# --------------------------------------------------------------------------------------------
# D2T


def test_skeleton_is_inside_thin_and_near_the_medial_axis():
    masks = human_masks(16, 128, seed=5)
    skeletons = topological_skeleton(masks).numpy()[:, 0] > 0.5
    removed, total, chamfers, removed_fraction = 0, 0, [], []
    for skeleton, mask in zip(skeletons, masks.numpy()[:, 0] > 0.5):
        assert skeleton.any()
        assert not (skeleton & ~mask).any(), "skeleton leaves the mask"
        thinned = thin(skeleton)
        removed += int(skeleton.sum() - thinned.sum())
        total += int(skeleton.sum())
        removed_fraction.append(1 - thinned.sum() / skeleton.sum())
        ours, reference = np.argwhere(skeleton), np.argwhere(medial_axis(mask))
        chamfers.append(0.5 * (cKDTree(reference).query(ours)[0].mean() + cKDTree(ours).query(reference)[0].mean()))
    print(f"\nD2T: thin removes {removed / total:.1%} of skeleton pixels overall "
          f"(per mask max {max(removed_fraction):.1%}); symmetric mean Chamfer to medial_axis: "
          f"mean {np.mean(chamfers):.3f} px, max {max(chamfers):.3f} px")
    assert removed / total <= 0.40
    assert max(removed_fraction) <= 0.50  # nowhere much thicker than two pixels
    assert max(chamfers) <= 1.0


def test_skeleton_of_a_bar_is_its_centre_line():
    mask = torch.zeros(1, 1, 21, 40)
    mask[0, 0, 5:16, 4:36] = 1  # 11 px tall: centre row 10
    skeleton = topological_skeleton(mask)[0, 0]
    assert skeleton[10, 10:30].all() and skeleton[:, 10:30].sum() == 20


# --------------------------------------------------------------------------------------------
# Gradients


def _disc(centre: torch.Tensor, radius: float, size: int) -> torch.Tensor:
    """``(1, 1, S, S)`` sigmoid disc, differentiable in ``centre`` (x, y)."""
    ys, xs = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32),
                            indexing="ij")
    dist = ((xs - centre[0]).square() + (ys - centre[1]).square()).clamp_min(1e-12).sqrt()
    return torch.sigmoid((radius - dist) / 0.5)[None, None]


def test_l2_has_no_gradient_between_separate_blobs_but_ls_pulls_toward_the_target():
    size, radius = 64, 6.0
    target = (_disc(torch.tensor([44.0, 36.0]), radius, size) > 0.5).float()

    def grad_of(loss_fn, start):
        centre = torch.tensor(start, requires_grad=True)
        loss_fn(_disc(centre, radius, size), target).backward()
        return centre.grad

    start = [18.0, 28.0]  # 27 px apart: 15 px of background between the blobs
    l2_far = grad_of(baselines.pixel_l2_loss, start)
    l2_touching = grad_of(baselines.pixel_l2_loss, [38.0, 34.0])
    ls_far = grad_of(silhouette_alignment_loss, start)
    toward = torch.tensor([44.0, 36.0]) - torch.tensor(start)
    cosine = float(torch.dot(-ls_far, toward) / (ls_far.norm() * toward.norm()))
    print(f"\n|grad L2| far {l2_far.norm():.2e}, overlapping {l2_touching.norm():.2e}; "
          f"|grad L_S| far {ls_far.norm():.3f}, cos(-grad L_S, to target) {cosine:.3f}")
    assert l2_far.norm() < 1e-6  # numerically zero ...
    assert l2_touching.norm() > 1e-3  # ... though L2 does have a gradient where the blobs overlap
    assert ls_far.norm() > 1e-2 and cosine > 0.9


# A 2D H36M stick figure whose left arm is driven by two angles (upper arm, elbow).
_FIGURE_SIZE = 64
_RADII = torch.tensor([0.04, 0.045, 0.035, 0.04, 0.045, 0.035, 0.07, 0.07, 0.03, 0.05,
                       0.03, 0.03, 0.025, 0.03, 0.03, 0.025]) * _FIGURE_SIZE
_L_SHOULDER, _L_ELBOW, _L_WRIST = 11, 12, 13


def _arm_joints(angles: torch.Tensor) -> torch.Tensor:
    """``(17, 2)`` joints; ``angles`` = (upper-arm direction, elbow bend) in radians, y down."""
    base = standing_joints(_FIGURE_SIZE)
    bone = 0.15 * _FIGURE_SIZE
    upper, fore = angles[0], angles[0] + angles[1]
    elbow = base[_L_SHOULDER] + bone * torch.stack([torch.cos(upper), torch.sin(upper)])
    wrist = elbow + bone * torch.stack([torch.cos(fore), torch.sin(fore)])
    return torch.cat([base[:_L_ELBOW], elbow[None], wrist[None], base[_L_WRIST + 1:]])


def _render_figure(angles: torch.Tensor) -> torch.Tensor:
    """``(1, 1, S, S)`` silhouette. Like the mesh renderer (docs/design.md §3), the forward pass is exact
    away from the edges and only a band about 2 px wide around the contour carries gradient."""
    soft = capsule_silhouette(_arm_joints(angles)[None], H36M_BONES, _RADII, (_FIGURE_SIZE,) * 2, sharpness=0.5)
    band = (soft.detach() > 0.02) & (soft.detach() < 0.98)
    return torch.where(band, soft, soft.detach().round())


def _fit_arm(loss_fn, target: torch.Tensor, start: torch.Tensor, steps: int = 80, lr: float = 0.1) -> torch.Tensor:
    """Plain gradient descent on the arm angles; the loss is divided by its initial value so that
    one learning rate means the same relative step for every loss."""
    angles = start.clone().requires_grad_(True)
    initial = float(loss_fn(_render_figure(angles), target).detach())
    optimizer = torch.optim.SGD([angles], lr=lr)
    for _ in range(steps):
        optimizer.zero_grad()
        (loss_fn(_render_figure(angles), target) / initial).backward()
        optimizer.step()
    return angles.detach()


def test_topology_loss_recovers_a_bent_arm_where_pixel_losses_do_not():
    target_angles = torch.tensor([0.3, -math.radians(80)])  # forearm raised 80 degrees
    straight = torch.tensor([0.3, 0.0])
    target = (_render_figure(target_angles) > 0.5).float()
    target_wrist = _arm_joints(target_angles)[_L_WRIST]

    def wrist_error(angles):
        return float((_arm_joints(angles)[_L_WRIST] - target_wrist).norm())

    def bce(pred, tgt):
        return baselines.bce_loss(pred, tgt)

    errors = {"start": wrist_error(straight)}
    for name, loss_fn in (("L_S + L_T", silhouette_topology_loss), ("L2", baselines.pixel_l2_loss), ("BCE", bce)):
        errors[name] = wrist_error(_fit_arm(loss_fn, target, straight))
    print("\nwrist error px: " + ", ".join(f"{k} {v:.2f}" for k, v in errors.items()))
    assert errors["start"] > 10
    assert errors["L_S + L_T"] < 2.0
    assert errors["L2"] > 6.0 and errors["BCE"] > 6.0


def test_soft_binarisation_gives_a_gradient_concentrated_on_the_edge():
    pred = torch.tensor([0.0, 0.3, 0.5, 0.7, 1.0]).view(1, 1, 1, 5).requires_grad_(True)
    binarize(pred, "soft", temperature=0.1).sum().backward()
    soft_grad = pred.grad.clone()
    pred.grad = None
    binarize(pred, "straight_through").sum().backward()
    assert torch.equal(pred.grad, torch.ones_like(pred))  # straight-through
    assert soft_grad[0, 0, 0, 2] == soft_grad.max() and soft_grad[0, 0, 0, 0] < 0.1 * soft_grad.max()


def test_losses_are_deterministic():
    target = human_masks(4, 64, seed=8)
    pred = F.avg_pool2d(human_masks(4, 64, seed=9), 3, 1, 1)
    grads = []
    for _ in range(2):
        x = pred.clone().requires_grad_(True)
        silhouette_topology_loss(x, target).backward()
        grads.append(x.grad)
    assert torch.equal(grads[0], grads[1])


# --------------------------------------------------------------------------------------------
# Robustness


def _fuzzed_masks(n: int = 1000, size: int = 24, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    noise = torch.rand(n, 1, size, size, generator=gen)
    smooth = F.avg_pool2d(torch.rand(n, 1, size, size, generator=gen), 5, 1, 2, count_include_pad=False)
    density = torch.rand(n, 1, 1, 1, generator=gen)
    target = torch.where(torch.arange(n).view(n, 1, 1, 1) % 2 == 0, noise < density, smooth < density).float()
    pred = torch.rand(n, 1, size, size, generator=gen) * 0.6 + 0.7 * target - 0.2
    pred = pred.clamp(0, 1)
    # Edge cases, on both sides: empty, full, one pixel on, one pixel off, exact 0/1 predictions.
    target[:8] = 0
    target[8:16] = 1
    target[16:24] = 0
    target[16:24, 0, 5, 7] = 1
    target[24:32] = 1
    target[24:32, 0, 0, 0] = 0
    pred[0:32:4] = 0
    pred[1:32:4] = 1
    pred[2:32:4] = 0
    pred[2:32:4, 0, 12, 12] = 1
    pred[32:40] = target[32:40]
    return pred, target


@pytest.mark.parametrize("kernel,binarization", [("octagonal", "straight_through"), ("chessboard", "soft")])
def test_no_nan_or_inf_over_fuzzed_masks(kernel, binarization):
    pred, target = _fuzzed_masks()
    options = dict(kernel=kernel, binarization=binarization)
    checks = {
        "L_S + L_T": lambda p: silhouette_topology_loss(p, target, reduction="none", **options),
        "L_T (reversed)": lambda p: topology_alignment_loss(target, p, reduction="none", **options),
        "inward": lambda p: inward_distance_map(p, **options),
        "outward": lambda p: outward_distance_map(p, **options),
        "skeleton": lambda p: topological_skeleton(p, **options),
    }
    for name, fn in checks.items():
        x = pred.clone().requires_grad_(True)
        value = fn(x)
        value.sum().backward()
        assert torch.isfinite(value).all(), name
        assert torch.isfinite(x.grad).all(), name
    values = silhouette_topology_loss(pred, target, reduction="none", **options)
    assert (values[32:40] == 0).all()  # perfect predictions
    assert values[0] == 0  # both empty
    # An empty prediction against a nearly full target: each term is H + W (nothing to be near).
    assert values[24] == 2 * (24 + 24)
    # Symmetric in the two binarised maps, over the whole corpus.
    swapped = silhouette_topology_loss(target, (pred >= 0.5).float(), reduction="none", **options)
    torch.testing.assert_close(values, swapped)


def test_baselines_are_finite_and_zero_on_a_perfect_match():
    pred, target = _fuzzed_masks(n=64)
    for name in ("pixel_l1_loss", "pixel_l2_loss", "bce_loss", "soft_iou_loss", "point_chamfer_loss"):
        fn = getattr(baselines, name)
        x = pred.clone().requires_grad_(True)
        value = fn(x, target, reduction="none")
        value.sum().backward()
        assert torch.isfinite(value).all() and torch.isfinite(x.grad).all(), name
        # The point Chamfer's target-to-prediction term is a soft-min: small but not 0 (most on
        # these noise masks, whose boundary pixels have many boundary neighbours).
        assert value[32:40].abs().max() < (0.25 if name == "point_chamfer_loss" else 1e-4), name
    masks = human_masks(2, 64, seed=10)
    assert baselines.point_chamfer_loss(masks, masks) < 0.1
    assert baselines.point_chamfer_loss(torch.roll(masks, 4, dims=-1), masks) > 1.0


def test_point_chamfer_gradient_pulls_a_blob_toward_the_target():
    size, radius = 64, 8.0
    target = (_disc(torch.tensor([36.0, 32.0]), radius, size) > 0.5).float()
    centre = torch.tensor([28.0, 32.0], requires_grad=True)
    baselines.point_chamfer_loss(_disc(centre, radius, size), target).backward()
    assert centre.grad[0] < 0  # descent moves the centre right, toward the target


# --------------------------------------------------------------------------------------------
# API


def test_modules_equal_functions():
    pred = F.avg_pool2d(human_masks(2, 48, seed=11), 3, 1, 1)
    target = human_masks(2, 48, seed=12)
    opts = dict(kernel="chessboard", iterations=20, binarization="soft", temperature=0.2)
    assert torch.equal(InwardDistanceMap(**opts)(pred), inward_distance_map(pred, **opts))
    assert torch.equal(OutwardDistanceMap(**opts)(pred), outward_distance_map(pred, **opts))
    assert torch.equal(TopologicalSkeleton(**opts)(pred), topological_skeleton(pred, **opts))
    assert torch.equal(ChamferMapLoss(**opts)(pred, target), chamfer_map_loss(pred, target, **opts))
    assert torch.equal(SilhouetteAlignmentLoss(**opts)(pred, target), silhouette_alignment_loss(pred, target, **opts))
    assert torch.equal(TopologyAlignmentLoss(**opts)(pred, target), topology_alignment_loss(pred, target, **opts))
    combined = SilhouetteTopologyLoss(topology_weight=0.5, **opts)(pred, target)
    expected = silhouette_alignment_loss(pred, target, **opts) + 0.5 * topology_alignment_loss(pred, target, **opts)
    torch.testing.assert_close(combined, expected)
    only_topology = SilhouetteTopologyLoss(silhouette_weight=0.0, **opts)(pred, target)
    torch.testing.assert_close(only_topology, topology_alignment_loss(pred, target, **opts))


def test_outputs_keep_dtype_and_shape():
    pred = human_masks(2, 32, seed=13).double()
    assert inward_distance_map(pred).dtype == torch.float64
    assert topological_skeleton(pred).shape == pred.shape
    assert silhouette_topology_loss(pred, pred, reduction="none").shape == (2,)


@pytest.mark.parametrize("bad,words", [
    (torch.zeros(32, 32), ["silhouette", "4-D", "(32, 32)"]),
    (torch.zeros(2, 3, 32, 32), ["silhouette", "(*, 1, *, *)", "(2, 3, 32, 32)"]),
    (torch.zeros(2, 1, 32, 32, dtype=torch.int64), ["silhouette", "floating", "torch.int64"]),
    (torch.zeros(2, 1, 32, 32, dtype=torch.bool), ["silhouette", "floating", "torch.bool"]),
    (np.zeros((2, 1, 32, 32)), ["silhouette", "torch.Tensor", "ndarray"]),
])
def test_bad_input_names_the_problem(bad, words):
    for fn in (inward_distance_map, outward_distance_map, topological_skeleton):
        with pytest.raises(MaskposeError) as info:
            fn(bad)
        for word in words:
            assert word in str(info.value)


def test_bad_pairs_and_options_raise():
    a, b = torch.zeros(2, 1, 32, 32), torch.zeros(2, 1, 32, 30)
    with pytest.raises(MaskposeError, match="pred and target must have the same shape"):
        silhouette_alignment_loss(a, b)
    with pytest.raises(MaskposeError, match="target must be a floating-point"):
        topology_alignment_loss(a, a.long())
    with pytest.raises(MaskposeError, match="kernel must be one of"):
        inward_distance_map(a, kernel="euclidean")
    with pytest.raises(ConfigError, match="binarization must be one of"):
        SilhouetteTopologyLoss(binarization="hard")
    with pytest.raises(ConfigError, match=r"reduction must be one of \('mean', 'sum', 'none'\), got 'max'"):
        chamfer_map_loss(a, a, reduction="max")
    with pytest.raises(ConfigError, match="reduction must be one of"):
        baselines.PixelL1Loss(reduction="avg")
    with pytest.raises(MaskposeError, match="pred must have shape"):
        baselines.pixel_l2_loss(torch.zeros(2, 2, 8, 8), torch.zeros(2, 2, 8, 8))


# --------------------------------------------------------------------------------------------
# Benchmark


def test_benchmark_reports_the_ratio(tmp_path):
    from typer.testing import CliRunner

    from maskpose.cli import app

    out = tmp_path / "bench.json"
    result = CliRunner().invoke(app, ["bench", "topology", "--json", str(out), "--batch", "2", "--size", "32",
                                      "--repeats", "1", "--warmup", "0"])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert {"topology_fwd_bwd_ms", "scipy_edt_ms", "ratio"} <= set(data)
    assert data["ratio"] == pytest.approx(data["topology_fwd_bwd_ms"] / data["scipy_edt_ms"], rel=1e-2)
    assert "ratio" in result.output

    bad = CliRunner().invoke(app, ["bench", "topology", "--kernel", "euclidean", "--batch", "1", "--size", "16"])
    assert bad.exit_code == 2 and "kernel must be one of" in bad.output


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.int64])
def test_all_finite_agrees_with_isfinite(dtype):
    # all_finite (min and max) is the checks' fast form of isfinite(...).all(): same answer on
    # every placement of NaN and +-inf, alone or together, and on empty tensors.
    gen = torch.Generator().manual_seed(0)
    for trial in range(60):
        values = torch.randn(3, 1, 7, 5, generator=gen) * 1e4
        if dtype.is_floating_point:
            for bad in (float("nan"), float("inf"), -float("inf")):
                if torch.rand((), generator=gen) < 0.3:
                    values.view(-1)[int(torch.randint(values.numel(), (), generator=gen))] = bad
        values = values.to(dtype)
        assert all_finite(values) == bool(torch.isfinite(values).all()), trial
    assert all_finite(torch.zeros(0, 1, 4, 4))


def test_topology_loss_with_a_precomputed_target_skeleton_is_the_same():
    # Fitting in the loop passes the masks' skeleton, computed once, to its 8 iterations: the loss
    # and its gradient must be exactly those computed from the mask itself; a wrong shape is refused.
    target = human_masks(3, 48, seed=11)
    pred = F.avg_pool2d(human_masks(3, 48, seed=12), 3, 1, 1)
    results = []
    for skeleton in (None, topological_skeleton(target)):
        soft = pred.clone().requires_grad_(True)
        loss = topology_alignment_loss(soft, target, reduction="none", target_skeleton=skeleton)
        loss.sum().backward()
        results.append((loss.detach(), soft.grad))
    assert torch.equal(results[0][0], results[1][0]) and torch.equal(results[0][1], results[1][1])
    with pytest.raises(MaskposeError, match="target_skeleton must have the target's shape"):
        topology_alignment_loss(pred, target, target_skeleton=target[:2])


def test_losses_with_precomputed_target_distances_are_the_same():
    # Fitting in the loop passes the masks' whole outward maps (and their skeleton's), computed
    # once, to its iterations: the loss must be exactly the same, and so must its gradient within
    # GRADIENT_MARGIN of the predicted mask (the early-stopped map is capped farther out).
    target = human_masks(3, 64, seed=13)
    pred = F.avg_pool2d(human_masks(3, 64, seed=14), 3, 1, 1)
    st = "straight_through"
    skeleton = topological_skeleton(target, binarization=st)
    cached = {"ls": {"target_distance": outward_distance_map(target, binarization=st)},
              "lt": {"target_skeleton": skeleton,
                     "target_skeleton_distance": outward_distance_map(skeleton, binarization=st)}}
    losses = {"ls": silhouette_alignment_loss, "lt": topology_alignment_loss}
    near = _within_margin((pred >= 0.5).float())
    for name, loss_fn in losses.items():
        results = []
        for extra in ({}, cached[name]):
            soft = pred.clone().requires_grad_(True)
            loss = loss_fn(soft, target, binarization=st, reduction="none", **extra)
            loss.sum().backward()
            results.append((loss.detach(), soft.grad))
        assert torch.equal(results[0][0], results[1][0]), name
        assert torch.equal(results[0][1] * near, results[1][1] * near), name
    with pytest.raises(MaskposeError, match="target_distance needs a target without gradient"):
        silhouette_alignment_loss(pred.requires_grad_(True), target.clone().requires_grad_(True),
                                  target_distance=cached["ls"]["target_distance"])
    with pytest.raises(MaskposeError, match="target's shape"):
        silhouette_alignment_loss(pred, target, target_distance=cached["ls"]["target_distance"][:2])

"""Every public loss/metric op has a module twin that gives identical results, and every one takes
the shared reductions "mean", "sum" and "none" (maskpose.errors.reduce)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from maskpose import eval as metrics
from maskpose import topology
from maskpose.errors import ConfigError, reduce
from maskpose.masks import MaskSupervisionLoss, SkeletonMask, mask_supervision_loss, skeleton_mask
from maskpose.topology import baselines
from maskpose.typing import REDUCTIONS
from shapes import human_masks

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _masks():
    target = human_masks(3, 32, seed=21)
    pred = F.avg_pool2d(human_masks(3, 32, seed=22), 3, 1, 1)
    return pred, target


def _poses():
    gen = torch.Generator().manual_seed(3)
    gt = torch.randn(4, 17, 3, generator=gen) * 0.3
    pred = gt + torch.randn(4, 17, 3, generator=gen) * 0.05
    return pred, gt


TOPOLOGY_OPTS = dict(kernel="chessboard", iterations=20, binarization="straight_through", temperature=0.3)

#: (function, module class, keyword options, kind of inputs)
MASK_PAIRS = [
    (topology.chamfer_map_loss, topology.ChamferMapLoss, TOPOLOGY_OPTS),
    (topology.silhouette_alignment_loss, topology.SilhouetteAlignmentLoss, TOPOLOGY_OPTS),
    (topology.topology_alignment_loss, topology.TopologyAlignmentLoss, TOPOLOGY_OPTS),
    (topology.silhouette_topology_loss, topology.SilhouetteTopologyLoss, dict(TOPOLOGY_OPTS, topology_weight=0.5)),
    (baselines.pixel_l1_loss, baselines.PixelL1Loss, {}),
    (baselines.pixel_l2_loss, baselines.PixelL2Loss, {}),
    (baselines.bce_loss, baselines.BceLoss, dict(eps=1e-4)),
    (baselines.soft_iou_loss, baselines.SoftIoULoss, dict(eps=1e-3)),
    (baselines.point_chamfer_loss, baselines.PointChamferLoss, dict(num_points=64, temperature=0.5)),
]
POSE_PAIRS = [
    (metrics.mpjpe, metrics.MPJPE, dict(root=None, unit=1.0)),
    (metrics.pa_mpjpe, metrics.PAMPJPE, dict(unit=100.0)),
    (metrics.n_mpjpe, metrics.NMPJPE, dict(root=2)),
    (metrics.pck, metrics.PCK, dict(threshold=80.0)),
    (metrics.auc, metrics.AUC, dict(thresholds=(10.0, 50.0, 90.0))),
]
MAP_PAIRS = [
    (topology.binarize, topology.Binarize, dict(binarization="soft", temperature=0.2)),
    (topology.inward_distance_map, topology.InwardDistanceMap, TOPOLOGY_OPTS),
    (topology.outward_distance_map, topology.OutwardDistanceMap, TOPOLOGY_OPTS),
    (topology.topological_skeleton, topology.TopologicalSkeleton, TOPOLOGY_OPTS),
]


def _name(pair) -> str:
    return pair[0].__name__


@pytest.mark.parametrize("pair", MASK_PAIRS + POSE_PAIRS, ids=_name)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_loss_module_equals_function(pair, reduction):
    fn, module_class, opts = pair
    inputs = _masks() if pair in MASK_PAIRS else _poses()
    expected = fn(*inputs, reduction=reduction, **opts)
    got = module_class(reduction=reduction, **opts)(*inputs)
    assert torch.equal(got, expected)


@pytest.mark.parametrize("pair", MAP_PAIRS, ids=_name)
def test_map_module_equals_function(pair):
    fn, module_class, opts = pair
    pred, _ = _masks()
    x = pred.clone().requires_grad_(True)
    y = pred.clone().requires_grad_(True)
    weights = torch.rand(pred.shape, generator=torch.Generator().manual_seed(0))
    expected, got = fn(x, **opts), module_class(**opts)(y)
    assert torch.equal(got, expected)
    (expected * weights).sum().backward()
    (got * weights).sum().backward()
    assert torch.equal(x.grad, y.grad)


def test_mask_modules_equal_functions():
    joints = torch.tensor([[[5.0, 3.0], [9.0, 12.0], [2.5, 14.0]]])
    bones = [(0, 1), (1, 2)]
    skel = skeleton_mask(joints, bones, sigma=1.5, size=(16, 16))
    assert torch.equal(SkeletonMask((16, 16), 1.5, bones)(joints), skel)
    mask = (skel > 0.4).float()
    for reduction in REDUCTIONS:
        assert torch.equal(MaskSupervisionLoss(0.5, 2.0, reduction)(mask, skel, skel.sqrt()),
                           mask_supervision_loss(mask, skel, skel.sqrt(), None, 0.5, 2.0, reduction))


@pytest.mark.parametrize("pair", MASK_PAIRS + POSE_PAIRS, ids=_name)
def test_every_reduction_reduces_the_per_sample_values(pair):
    fn, _, opts = pair
    inputs = _masks() if pair in MASK_PAIRS else _poses()
    per_sample = fn(*inputs, reduction="none", **opts)
    assert per_sample.shape == (inputs[0].shape[0],)
    torch.testing.assert_close(fn(*inputs, reduction="mean", **opts), per_sample.mean())
    torch.testing.assert_close(fn(*inputs, reduction="sum", **opts), per_sample.sum())


@pytest.mark.parametrize("pair", MASK_PAIRS + POSE_PAIRS, ids=_name)
def test_a_bad_reduction_is_named(pair):
    fn, module_class, opts = pair
    inputs = _masks() if pair in MASK_PAIRS else _poses()
    with pytest.raises(ConfigError, match=r"reduction must be one of \('mean', 'sum', 'none'\), got 'avg'"):
        fn(*inputs, reduction="avg", **opts)
    with pytest.raises(ConfigError, match="got 'avg'"):
        module_class(reduction="avg", **opts)


def test_other_metrics_take_the_shared_reductions():
    pred, gt = _poses()
    per_sample = metrics.error_2d(pred[..., :2], gt[..., :2], reduction="none")
    torch.testing.assert_close(metrics.error_2d(pred[..., :2], gt[..., :2], reduction="sum"), per_sample.sum())
    a, b = _masks()
    iou = metrics.silhouette_iou(a, b, reduction="none")
    torch.testing.assert_close(metrics.silhouette_iou(a, b, reduction="sum"), iou.sum())
    skel = a.clone()
    loss = mask_supervision_loss(b, skel, reduction="none")
    torch.testing.assert_close(mask_supervision_loss(b, skel, reduction="sum"), loss.sum())
    with pytest.raises(ConfigError, match="got 'avg'"):
        metrics.silhouette_iou(a, b, reduction="avg")
    with pytest.raises(ConfigError, match="got 'avg'"):
        mask_supervision_loss(b, skel, reduction="avg")


def test_reduce_helper():
    values = torch.tensor([1.0, 2.0, 6.0])
    assert reduce(values, "mean").item() == 3.0
    assert reduce(values, "sum").item() == 9.0
    assert reduce(values, "none") is values
    with pytest.raises(ConfigError, match="got 'max'"):
        reduce(values, "max")


def test_library_defaults_are_the_training_defaults():
    from maskpose.train.config import TrainConfig

    assert topology.DEFAULT_BINARIZATION == "soft" and topology.DEFAULT_TEMPERATURE == 0.1
    config = TrainConfig()
    assert (config.topology_binarization, config.topology_temperature) == (
        topology.DEFAULT_BINARIZATION, topology.DEFAULT_TEMPERATURE)
    # And the functions use them: the default gradient is the soft one at T = 0.1.
    x = torch.tensor([0.45, 0.6]).view(1, 1, 1, 2).requires_grad_(True)
    topology.binarize(x).sum().backward()
    default_grad = x.grad.clone()
    x.grad = None
    topology.binarize(x, "soft", 0.1).sum().backward()
    assert torch.equal(default_grad, x.grad)
    assert not torch.allclose(default_grad, torch.ones_like(default_grad))

"""The integral joint head: soft-argmax ops (maskpose.models.integral), the heatmap head beside the
MLP one, its winner-takes-all depth hypotheses, and the compatibility of default models and the
shipped checkpoint."""

from __future__ import annotations

import re
from importlib import resources

import pytest
import torch

from maskpose.errors import ConfigError
from maskpose.models.integral import (
    SoftArgmax2d,
    hypothesis_cross_entropy,
    integral_depth,
    normalized_to_pixels,
    pixels_to_normalized,
    soft_argmax_2d,
    spatial_softmax,
    winner_takes_all_l1,
)
from maskpose.models.regressor import (
    MEAN_SCALE,
    IntegralJointHead,
    JointHead,
    JointHeadOutput,
    ModelConfig,
    PoseRegressor,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _gaussian_logits(height: int, width: int, centres: torch.Tensor, sigma: float, dtype=torch.float64) -> torch.Tensor:
    """Log of isotropic Gaussians ``(1, N, H, W)`` centred at ``centres`` ``(N, 2)`` (x, y heatmap pixels)."""
    ys, xs = torch.meshgrid(torch.arange(height, dtype=dtype), torch.arange(width, dtype=dtype), indexing="ij")
    cx, cy = centres[:, 0, None, None].to(dtype), centres[:, 1, None, None].to(dtype)
    return (-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * sigma**2))[None]


# ---------------------------------------------------------------------------------------------- ops
def test_soft_argmax_recovers_sharp_gaussian_peaks_sub_pixel_at_another_resolution():
    """At a 16 x 24 heatmap (H != W, and a third or a half of the 48 px input), the soft-argmax of a
    Gaussian (sigma 1 heatmap pixel, 5 sigma from the borders) is its sub-pixel centre, in heatmap
    pixels and, normalised, in the input's pixels (heatmap pixel c is input pixel
    (c + 0.5) * 48 / W - 0.5); a sharp Gaussian on a pixel centre reads out as the argmax itself."""
    h, w, res = 16, 24, 48
    centres = torch.tensor([[5.3, 5.7], [12.0, 8.5], [18.75, 10.2], [9.5, 6.5]])
    logits = _gaussian_logits(h, w, centres, sigma=1.0)
    assert torch.allclose(soft_argmax_2d(logits, normalized=False), centres[None].double(), atol=1e-5)
    uv = soft_argmax_2d(logits)
    scale = torch.tensor([res / w, res / h], dtype=torch.float64)
    expected = (centres.double() + 0.5) * scale - 0.5  # the same points in the input image
    assert torch.allclose(normalized_to_pixels(uv, res)[0], expected, atol=1e-5)
    assert torch.allclose(pixels_to_normalized(normalized_to_pixels(uv, res), res), uv)

    peaks = torch.tensor([[0, 0], [23, 15], [7, 3]])  # (x, y) including the corners
    sharp = _gaussian_logits(h, w, peaks, sigma=0.05)
    flat_argmax = sharp[0].flatten(1).argmax(1)
    argmax_xy = torch.stack((flat_argmax % w, flat_argmax // w), -1).double()
    assert torch.allclose(soft_argmax_2d(sharp, normalized=False)[0], argmax_xy, atol=1e-9)
    assert torch.equal(argmax_xy, peaks.double())
    # the temperature sharpens: a broad Gaussian at a small temperature reads out like a sharp one
    assert torch.allclose(soft_argmax_2d(sharp * 0.0025, temperature=0.0025, normalized=False)[0], argmax_xy, atol=1e-9)
    assert torch.allclose(SoftArgmax2d(normalized=False)(sharp), soft_argmax_2d(sharp, normalized=False))


def test_soft_argmax_is_translation_equivariant():
    """Moving an arbitrary heatmap by (dx, dy) pixels moves the readout by (dx, dy) heatmap pixels,
    (2 dx / W, 2 dy / H) normalised."""
    torch.manual_seed(0)
    h, w = 24, 32
    patch = torch.randn(2, 3, 8, 8, dtype=torch.float64) * 3

    def placed(x0, y0):
        logits = torch.full((2, 3, h, w), -1e4, dtype=torch.float64)
        logits[..., y0 : y0 + 8, x0 : x0 + 8] = patch
        return logits

    base = soft_argmax_2d(placed(2, 3), normalized=False)
    for dx, dy in [(5, 0), (0, 7), (20, 13)]:
        moved = soft_argmax_2d(placed(2 + dx, 3 + dy), normalized=False)
        assert torch.allclose(moved - base, torch.tensor([dx, dy], dtype=torch.float64).expand_as(base), atol=1e-9)
        shift = soft_argmax_2d(placed(2 + dx, 3 + dy)) - soft_argmax_2d(placed(2, 3))
        assert torch.allclose(shift, torch.tensor([2 * dx / w, 2 * dy / h], dtype=torch.float64).expand_as(base))


def test_spatial_softmax_is_stable_and_integral_depth_of_a_constant_is_the_constant():
    logits = torch.tensor([[[[1e4, -1e4], [0.0, 1e4]]]])
    p = spatial_softmax(logits)
    assert torch.isfinite(p).all() and torch.allclose(p.flatten(), torch.tensor([0.5, 0.0, 0.0, 0.5]))
    torch.manual_seed(0)
    p = spatial_softmax(torch.randn(2, 3, 5, 7) * 4)
    assert torch.allclose(p.sum(dim=(2, 3)), torch.ones(2, 3))
    depth = torch.tensor([0.5, -1.0, 2.0]).view(1, 3, 1, 1).expand(2, 3, 5, 7)
    assert torch.allclose(integral_depth(p, depth), torch.tensor([0.5, -1.0, 2.0]).expand(2, 3))
    hyp = torch.tensor([1.0, -2.0]).view(1, 2, 1, 1, 1).expand(2, 2, 3, 5, 7)  # K = 2 hypotheses
    assert torch.allclose(integral_depth(p, hyp), torch.tensor([1.0, -2.0])[None, :, None].expand(2, 2, 3))


def test_gradcheck_soft_argmax_integral_depth_and_winner_takes_all():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: soft_argmax_2d(x, temperature=0.7), (logits,))
    assert torch.autograd.gradcheck(lambda x: soft_argmax_2d(x, normalized=False), (logits,))
    depth = torch.randn(2, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    depths = torch.randn(2, 2, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, d: integral_depth(spatial_softmax(x), d), (logits, depth))
    assert torch.autograd.gradcheck(lambda x, d: integral_depth(spatial_softmax(x), d), (logits, depths))

    hyp = torch.randn(3, 3, 4, 3, dtype=torch.float64, requires_grad=True)
    target = torch.randn(3, 4, 3, dtype=torch.float64)
    target[0, 2] = float("nan")
    assert torch.autograd.gradcheck(lambda x: winner_takes_all_l1(x, target)[0], (hyp,))
    scores = torch.randn(3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda s: hypothesis_cross_entropy(s, torch.tensor([2, -1, 0])), (scores,))


def test_winner_takes_all_picks_the_best_hypothesis_and_masks_unknown_targets():
    torch.manual_seed(0)
    target = torch.randn(3, 5, 3)
    hyp = target[:, None].repeat(1, 3, 1, 1) + 5.0  # a constant shift: root-relative, all exact ...
    hyp[:, :, 1:, 2] += torch.tensor([0.3, -0.1, 0.2])[None, :, None]  # ... but for the depths
    hyp.requires_grad_(True)
    loss, winner = winner_takes_all_l1(hyp, target)
    assert torch.equal(winner, torch.tensor([1, 1, 1]))
    assert torch.allclose(loss, torch.tensor(0.1 * 4 / 15))
    loss.backward()
    assert hyp.grad[:, [0, 2]].abs().sum() == 0 and hyp.grad[:, 1].abs().sum() > 0  # only the winner learns

    target = target.clone()
    target[0, 3] = float("nan")  # an unknown landmark: neither counts nor poisons
    target[2, 0] = float("nan")  # an unknown root: the whole sample is unknown
    loss, winner = winner_takes_all_l1(hyp, target)
    assert torch.isfinite(loss) and torch.allclose(loss, torch.tensor(0.1 * (3 + 4) / (3 * (4 + 5))))
    assert torch.equal(winner, torch.tensor([1, 1, -1]))
    logits = torch.tensor([[0.0, 3.0, 0.0], [3.0, 0.0, 0.0], [0.0, 0.0, 9.0]], requires_grad=True)
    ce = hypothesis_cross_entropy(logits, winner)
    log_p = torch.log_softmax(logits.detach(), 1)
    assert torch.allclose(ce, -(log_p[0, 1] + log_p[1, 1]) / 2)
    ce.backward()
    assert logits.grad[2].abs().sum() == 0

    nothing = torch.full_like(target, float("nan"))
    loss, winner = winner_takes_all_l1(hyp, nothing)
    assert loss == 0 and loss.requires_grad and torch.equal(winner, torch.full((3,), -1))
    ce = hypothesis_cross_entropy(logits, winner)
    assert ce == 0 and ce.requires_grad


# ---------------------------------------------------------------------------------------------- head
def _integral_config(**changes) -> ModelConfig:
    return ModelConfig(heads=("joints",), joint_head="integral", **changes)


@pytest.mark.parametrize("k", [1, 3])
def test_integral_head_shapes_and_weak_perspective_identity(k):
    """At 64 px: the head's ``JointHeadOutput`` projects (``weak_perspective_points``) exactly onto
    the soft-argmax of its heatmaps, for every hypothesis; with K > 1 ``landmarks`` is the
    hypothesis of the highest logit, and the root landmark is at 0."""
    from maskpose.train.pipeline import joint_prediction, weak_perspective_points

    torch.manual_seed(0)
    model = PoseRegressor(_integral_config(depth_hypotheses=k)).eval()
    head = model.heads["joints"]
    assert isinstance(head, IntegralJointHead)
    images = torch.rand(3, 3, 64, 64)
    with torch.no_grad():
        out = model(images).joints
        feature_map = model.encoder.feature_map(images)
        x = head.decoder(feature_map)
        uv = soft_argmax_2d(head.heatmaps(x), head.temperature)
    assert x.shape[-2:] == (16, 16)  # heatmap_stride 4
    assert isinstance(out, JointHeadOutput)
    assert out.landmarks.shape == (3, 34, 3) and out.scale.shape == (3,) and out.offset.shape == (3, 2)
    assert torch.equal(out.landmarks[:, 0], torch.zeros(3, 3))
    assert torch.allclose(out.scale, torch.full((3,), MEAN_SCALE), rtol=0.05)
    pixels = normalized_to_pixels(uv, 64)
    assert torch.allclose(weak_perspective_points(out.landmarks, out.scale, out.offset, 64), pixels, atol=1e-4)
    assert torch.allclose(joint_prediction(out, 64).joints2d, pixels, atol=1e-4)
    if k == 1:
        assert out.hypotheses is None and out.hypothesis_logits is None
        assert set(out.tensors()) == {"landmarks", "scale", "offset"}
    else:
        assert out.hypotheses.shape == (3, k, 34, 3) and out.hypothesis_logits.shape == (3, k)
        assert set(out.tensors()) == {"landmarks", "scale", "offset", "hypotheses", "hypothesis_logits"}
        chosen = out.hypothesis_logits.argmax(1)
        assert torch.equal(out.landmarks, out.hypotheses[torch.arange(3), chosen])
        for j in range(k):
            projected = weak_perspective_points(out.hypotheses[:, j], out.scale, out.offset, 64)
            assert torch.allclose(projected, pixels, atol=1e-4)
        assert not torch.equal(out.hypotheses[:, 0, :, 2], out.hypotheses[:, 1, :, 2])
    with torch.no_grad():  # the pooled features are optional
        alone = head(feature_map)
    assert torch.equal(alone.landmarks, out.landmarks) and torch.equal(alone.scale, out.scale)


@pytest.mark.parametrize("k", [1, 3])
def test_integral_head_overfits_a_tiny_batch(k):
    """80 Adam steps on 4 fixed random images to fixed landmarks (2D L1 plus 3D L1, winner-takes-all
    with its cross-entropy for K = 3) bring the 2D error from ~9 px to well under 2 px."""
    from maskpose.train.pipeline import weak_perspective_points

    torch.manual_seed(0)
    res, n, b = 32, 6, 4
    model = PoseRegressor(_integral_config(resolution=res, width=8, hidden=32, num_landmarks=n, depth_hypotheses=k))
    g = torch.Generator().manual_seed(1)
    images = torch.rand(b, 3, res, res, generator=g)
    uv = torch.rand(b, n, 2, generator=g) * 1.4 - 0.7
    target2d = normalized_to_pixels(uv, res)
    target3d = torch.cat([uv, torch.rand(b, n, 1, generator=g) * 0.6 - 0.3], -1)
    optimizer = torch.optim.Adam(model.parameters(), 3e-3)

    def errors():
        with torch.no_grad():
            out = model(images).joints
        pixels = weak_perspective_points(out.landmarks, out.scale, out.offset, res)
        depth = out.landmarks[..., 2] - (target3d[..., 2] - target3d[:, :1, 2])
        return (pixels - target2d).norm(dim=-1).mean().item(), depth.abs().mean().item()

    before, depth_before = errors()
    for _ in range(80):
        out = model(images).joints
        loss = (weak_perspective_points(out.landmarks, out.scale, out.offset, res) - target2d).abs().mean() / res
        if k > 1:
            wta, winner = winner_takes_all_l1(out.hypotheses, target3d)
            loss = loss + wta + 0.1 * hypothesis_cross_entropy(out.hypothesis_logits, winner)
        else:
            loss = loss + (out.landmarks - (target3d - target3d[:, :1])).abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after, depth_after = errors()
    assert before > 6 and after < 2 and after < 0.2 * before, (before, after)
    assert depth_after < 0.5 * depth_before, (depth_before, depth_after)


# ---------------------------------------------------------------------------------------------- config
#: The default model's saved dict, as every version before the integral head wrote it.
OLD_DEFAULT_DICT = {"resolution": 64, "width": 32, "blocks": [1, 1, 1, 1], "bottleneck": False, "head_iterations": 3,
                    "hidden": 256, "num_rotations": 18, "num_phenotypes": 6, "num_landmarks": 34, "heads": ["mesh"]}


def test_default_model_dict_is_unchanged_and_integral_fields_round_trip():
    assert ModelConfig().to_dict() == OLD_DEFAULT_DICT
    assert ModelConfig.from_dict(OLD_DEFAULT_DICT) == ModelConfig()
    assert ModelConfig(heads=("mesh", "joints")).to_dict() == {**OLD_DEFAULT_DICT, "heads": ["mesh", "joints"]}
    config = _integral_config(depth_hypotheses=3, heatmap_stride=2)
    d = config.to_dict()
    assert d["joint_head"] == "integral" and d["depth_hypotheses"] == 3 and d["heatmap_stride"] == 2
    assert ModelConfig.from_dict(d) == config
    assert "heatmap_stride" not in _integral_config().to_dict()  # at its default


@pytest.mark.parametrize("changes, message", [
    ({"joint_head": "heatmap"}, "model.joint_head must be one of ('mlp', 'integral'), got 'heatmap'"),
    ({"joint_head": "integral", "depth_hypotheses": 0}, "model.depth_hypotheses must be an int >= 1, got 0"),
    ({"joint_head": "integral", "depth_hypotheses": True}, "model.depth_hypotheses must be an int >= 1"),
    ({"joint_head": "integral", "heatmap_stride": 3}, "model.heatmap_stride must be a power of two up to"),
    ({"joint_head": "integral", "heatmap_stride": 32}, "encoder's stride 16 (1, 2, 4, ...), got 32"),
    ({"depth_hypotheses": 3}, "model.depth_hypotheses applies to joint_head 'integral' only, got 3"),
    ({"heatmap_stride": 2}, "model.heatmap_stride applies to joint_head 'integral' only"),
])
def test_integral_fields_are_validated(changes, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        ModelConfig.from_dict(changes)


def _old_features(model: PoseRegressor, images: torch.Tensor) -> torch.Tensor:
    """The encoder's forward as it was before it had ``feature_map``."""
    enc = model.encoder
    return enc.layers(enc.stem((images - enc.mean) / enc.std)).mean(dim=(2, 3))


def _old_forward(model: PoseRegressor, images: torch.Tensor) -> dict:
    """The regressor's forward as it was: every head on the encoder's pooled features."""
    features = _old_features(model, images)
    return {name: head(features) for name, head in model.heads.items()}


def test_default_models_and_the_shipped_checkpoint_predict_as_before():
    """Computing the feature map once and pooling it is bit-identical to the old encoder forward,
    for a seeded model with both MLP heads and for the shipped checkpoint (whose weights load
    strictly: no parameter was added)."""
    from maskpose.train.checkpoint import load_model

    torch.manual_seed(0)
    images = torch.rand(2, 3, 64, 64)
    seeded = PoseRegressor(ModelConfig(heads=("mesh", "joints"))).eval()
    assert isinstance(seeded.heads["joints"], JointHead)
    path = resources.files("maskpose") / "assets" / "source_studio_64.pt"
    shipped, state = load_model(path)
    assert set(shipped.state_dict()) == set(state["model"])
    for model in (seeded, shipped.eval()):
        with torch.no_grad():
            out, old = model(images), _old_forward(model, images)
            assert torch.equal(model.encoder(images), _old_features(model, images))
        for name, head_out in old.items():
            new = getattr(out, name).tensors()
            assert set(new) == set(head_out.tensors())
            for key, value in head_out.tensors().items():
                assert torch.equal(new[key], value), (name, key)

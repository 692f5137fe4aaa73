"""The ``realistic`` source domain (maskpose.synth.realistic), the camera roll, the realistic texture
families, occluder probability, the stem-pooled encoder and the cosine learning-rate schedule."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from PIL import Image

from maskpose.body.rotations import sixd_to_rotmat
from maskpose.body.sampler import PoseSampler
from maskpose.conventions import seed_sequence
from maskpose.data.dataset import read_meta
from maskpose.errors import ConfigError, DataError, MaskposeError
from maskpose.models.regressor import ModelConfig, PoseRegressor
from maskpose.render.camera import intrinsics, project
from maskpose.render.zbuffer import silhouette_mask
from maskpose.synth.appearance import (
    _HAIR_WEIGHTS,
    _REALISTIC_CLOTH_P,
    _choice_cdf,
    _texture_weight,
    _weighted_index,
    sample_appearance,
)
from maskpose.synth.domains import DOMAINS, get_domain
from maskpose.synth.generator import (
    POSE_STREAM,
    SOURCE_DOMAINS,
    SynthesisConfig,
    generate,
    generate_domain_splits,
    place_camera,
    sample_rngs,
)
from maskpose.synth.realistic import (
    BACKGROUND_STREAM,
    DISTRACTOR_STREAM,
    REALISTIC_DISTRACTORS,
    REALISTIC_OCCLUDERS,
    REALISTIC_VIEW,
    Distractors,
    MixedPoses,
    photo_backgrounds,
    realistic_background,
)
from maskpose.synth.renderer import SynthesisRenderer
from maskpose.synth.targets import (
    SIDES,
    VIEW_STREAM,
    MotionPoses,
    Occluders,
    View,
    ViewDraw,
    elevate,
    motion_pose_source,
    rotation_x,
    rotation_z,
)
from maskpose.train.checkpoint import load_model
from maskpose.train.config import TrainConfig
from maskpose.train.loop import Trainer, train
from tiny_data import make_dataset

RES = 48
N = 8
SEED = 1
CONFIG = SynthesisConfig(batch_size=N, geodesic=False, extras=True)
#: A pure colour no built-in background is made of: the user's photos in the backgrounds tests.
MAGENTA = (255, 0, 255)


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py



@pytest.fixture(scope="module")
def renderer(body):
    return SynthesisRenderer(body)


@pytest.fixture(scope="module")
def realistic(tmp_path_factory, body):
    """The realistic domain, n=8 at 48 px, seed 1, in one batch of 8."""
    return generate(tmp_path_factory.mktemp("realistic") / "a", "realistic", n=N, res=RES, seed=SEED,
                    config=CONFIG, body=body)


def _load(path, *names):
    return [np.load(path / f"{name}.npy") for name in names]


def _chunk_seed(seed, domain, split, chunk=0):
    return int(seed_sequence(seed, domain, split, POSE_STREAM, chunk).generate_state(1)[0])


# ------------------------------------------------------------------------------------ the domain
def test_realistic_is_a_registered_source_domain():
    spec = get_domain("realistic")
    assert "realistic" in SOURCE_DOMAINS
    assert spec.render == "realistic" and spec.view is REALISTIC_VIEW and spec.occluders is REALISTIC_OCCLUDERS
    assert spec.backgrounds is not None and spec.distractors is not None and spec.noise is False
    assert spec.fill == (0.6, 0.95) and spec.offset == 0.08
    assert isinstance(spec.pose_source(), MixedPoses)


def test_realistic_deterministic_and_batch_invariant(realistic, tmp_path, body):
    again = generate(tmp_path / "again", "realistic", n=N, res=RES, seed=SEED, config=CONFIG, body=body)
    threes = generate(tmp_path / "threes", "realistic", n=N, res=RES, seed=SEED,
                      config=SynthesisConfig(batch_size=3, geodesic=False), body=body)
    other = generate(tmp_path / "other", "realistic", n=N, res=RES, seed=SEED + 1, config=CONFIG, body=body)
    names = ("image", "mask", "joints2d", "joints3d", "intrinsics", "pose", "translation")
    for name in names:  # the same arguments: the same bytes
        assert (realistic / f"{name}.npy").read_bytes() == (again / f"{name}.npy").read_bytes(), name
    # another batch size: the same samples, up to float rounding at a rare edge pixel (generator docstring)
    image, mask, j2 = _load(realistic, "image", "mask", "joints2d")
    image3, mask3, j2_3 = _load(threes, "image", "mask", "joints2d")
    assert (mask != mask3).mean() < 0.002
    assert (image != image3).any(-1).mean() < 0.002
    assert np.abs(image.astype(int) - image3).max() <= 8
    np.testing.assert_allclose(j2, j2_3, atol=1e-3)
    for name in ("intrinsics", "pose", "translation", "joints3d"):
        np.testing.assert_allclose(np.load(realistic / f"{name}.npy"), np.load(threes / f"{name}.npy"), atol=1e-4,
                                   err_msg=name)
    # another seed: other samples
    image_o, j2_o = _load(other, "image", "joints2d")
    assert (image != image_o).any(-1).mean() > 0.5
    assert np.abs(j2 - j2_o).max() > 1.0


def test_realistic_masks_labels_and_meta(realistic):
    image, mask, j3, j2, K = _load(realistic, "image", "mask", "joints3d", "joints2d", "intrinsics")
    assert image.shape == (N, RES, RES, 3) and image.dtype == np.uint8
    assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}
    assert (mask.sum((1, 2)) > 20).sum() >= N - 1  # non-empty for (almost) every sample
    # the labels are the full-body truth for the stored camera
    np.testing.assert_allclose(project(torch.from_numpy(j3), torch.from_numpy(K)).numpy(), j2, atol=2e-3)
    # per-sample focal ratios from the view
    draws = [REALISTIC_VIEW.draw(rng) for rng in sample_rngs(SEED, "realistic", "train", VIEW_STREAM, range(N))]
    np.testing.assert_allclose(K[:, 0, 0] / RES, [d.focal_ratio for d in draws], rtol=1e-5)
    assert np.all((K[:, 0, 0] / RES >= 1.2) & (K[:, 0, 0] / RES <= 4.0))
    meta = read_meta(realistic)
    attrs = meta["attrs"]
    assert meta["domain"] == "realistic" and attrs["labels"] is True
    params = attrs["domain_params"]
    assert {"view", "occluders", "distractors"} <= set(params)
    assert params["view"]["roll_deg"] == [-15.0, 15.0] and params["view"]["elevation_deg"] == [-10.0, 50.0]
    assert params["occluders"]["probability"] == 0.25
    assert params["distractors"] == Distractors().params()
    assert params["mask"] == "visible"
    assert attrs["pose_source"] == "MixedPoses" and attrs["focal_ratio"] == [1.2, 4.0]
    assert attrs["fill"] == [0.6, 0.95] and attrs["offset"] == 0.08
    assert "backgrounds" not in attrs
    # depth and parts follow the visible mask (other people and occluders removed from all three)
    depth, parts = _load(realistic, "depth", "parts")
    np.testing.assert_array_equal(depth > 0, mask > 0)
    np.testing.assert_array_equal(parts > 0, mask > 0)


def test_realistic_crop_placement(realistic, body):
    """The domain's fill (60-95 % of the crop) replaces SynthesisConfig.fill; truncated samples leave the crop."""
    pose, phen, t, K = (torch.from_numpy(a) for a in _load(realistic, "pose", "phenotypes", "translation",
                                                            "intrinsics"))
    with torch.no_grad():
        uv = project(body(pose, phen).vertices + t[:, None], K)
    span = (uv.amax(1) - uv.amin(1)).amax(1) / RES
    draws = [REALISTIC_VIEW.draw(rng) for rng in sample_rngs(SEED, "realistic", "train", VIEW_STREAM, range(N))]
    for i, draw in enumerate(draws):
        if draw.side < 0:
            assert 0.6 - 0.03 <= float(span[i]) <= 0.95 + 0.03, (i, float(span[i]))
            assert uv[i].min() >= -0.5 and uv[i].max() <= RES - 0.5
        else:
            assert uv[i].min() < 0 or uv[i].max() > RES - 1, i


def test_realistic_pose_is_mixed_source_elevated_and_rolled(realistic):
    """The stored pose: MixedPoses' draw for the chunk, global orientation turned by R_z(roll) R_x(elevation)."""
    pose = np.load(realistic / "pose.npy")
    ref_pose, _ = MixedPoses().sample(N, seed=_chunk_seed(SEED, "realistic", "train"))
    draws = [REALISTIC_VIEW.draw(rng) for rng in sample_rngs(SEED, "realistic", "train", VIEW_STREAM, range(N))]
    np.testing.assert_allclose(pose[:, 1:], ref_pose[:, 1:].numpy(), atol=1e-6)
    rolls = []
    for i, draw in enumerate(draws):
        assert -10.0 <= draw.elevation <= 50.0 and -15.0 <= draw.roll <= 15.0
        expected = (rotation_z([draw.roll])[0] @ rotation_x([draw.elevation])[0]).numpy() \
            @ sixd_to_rotmat(ref_pose[i, 0]).double().numpy()
        np.testing.assert_allclose(sixd_to_rotmat(torch.from_numpy(pose[i, 0])).numpy(), expected, atol=1e-5)
        rolls.append(draw.roll)
    assert np.ptp(rolls) > 5.0  # the roll does vary


def test_realistic_domain_splits_label_the_train_split(tmp_path, body):
    paths = generate_domain_splits(tmp_path, "realistic", n_train=2, n_test=2, res=32, seed=0, config=CONFIG,
                                   body=body)
    assert paths["train"] == tmp_path / "realistic" / "train"
    train_meta, test_meta = read_meta(paths["train"]), read_meta(paths["test"])
    for meta in (train_meta, test_meta):
        assert {"joints3d", "joints2d", "pose", "phenotypes", "translation"} <= set(meta["fields"])
        assert meta["attrs"]["labels"] is True
    assert (paths["train"] / "joints3d.npy").exists()
    assert train_meta["split"] == "train" and test_meta["split"] == "test"
    # overridable, as for studio
    plain = generate_domain_splits(tmp_path / "plain", "realistic", n_train=1, n_test=1, res=32, config=CONFIG,
                                   body=body, train_labels=False)
    assert "joints3d" not in read_meta(plain["train"])["fields"]


# ------------------------------------------------------------------------------------ distractors
def _scene(body, renderer, n=4, res=RES, seed=3):
    pose, phen = PoseSampler(seed=seed).sample(n)
    with torch.no_grad():
        out = body(pose, phen)
    K, t = place_camera(out.vertices, res, [np.random.default_rng(seed * 100 + i) for i in range(n)])
    backgrounds = np.stack([realistic_background(np.random.default_rng(seed * 200 + i), res) for i in range(n)])
    rendered = renderer.render(out.vertices + t[:, None], K, [np.random.default_rng(seed * 300 + i) for i in range(n)],
                               setting="realistic", size=res, backgrounds=backgrounds, noise=False)
    return K, t, rendered


def _apply(distractors, body, renderer, K, t, rendered, res=RES):
    rngs = [np.random.default_rng(500 + i) for i in range(len(t))]
    return distractors.apply(body, renderer, t, K, rendered.image, rendered.mask, rendered.depth, rendered.parts,
                             rngs, "realistic", res)


def test_distractors_behind_leave_the_target_untouched(body, renderer):
    K, t, r = _scene(body, renderer)
    assert (r.mask.sum((1, 2)) > 50).all()
    # close beside the person (small shift), so the people overlap in the image
    image, mask, depth, parts = _apply(Distractors(probability=1.0, front=0.0, shift=(0.0, 0.15)), body, renderer,
                                       K, t, r)
    np.testing.assert_array_equal(mask, r.mask)
    np.testing.assert_array_equal(depth, r.depth)
    np.testing.assert_array_equal(parts, r.parts)
    changed = (image != r.image).any(-1)
    assert not (changed & r.mask.astype(bool)).any()  # the image changes only off the target
    assert changed.sum((1, 2)).min() > 0  # and every sample got its distractor
    # the inputs are not modified in place
    assert image is not r.image and mask is not r.mask


def test_distractors_in_front_hide_part_of_the_target(body, renderer):
    K, t, r = _scene(body, renderer)
    image, mask, depth, parts = _apply(Distractors(probability=1.0, front=1.0, shift=(0.0, 0.15)), body, renderer,
                                       K, t, r)
    old = r.mask.astype(bool)
    new = mask.astype(bool)
    assert set(np.unique(mask)) <= {0, 1}
    assert not (new & ~old).any()  # the visible target is a subset of the rendered one
    assert (old & ~new).sum() > 20  # and the people in front do hide some of it
    assert (image[new] == r.image[new]).all()  # where the target stays visible, its pixels are kept
    hidden = old & ~new
    assert (image[hidden] != r.image[hidden]).any(-1).mean() > 0.9  # hidden pixels show the other person
    assert (depth[~new] == 0).all() and (parts[~new] == 0).all()
    np.testing.assert_array_equal(depth[new], r.depth[new])
    np.testing.assert_array_equal(parts[new], r.parts[new])


def test_distractors_probability_zero_and_validation(body, renderer):
    K, t, r = _scene(body, renderer, n=2)
    out = _apply(Distractors(probability=0.0), body, renderer, K, t, r)
    for got, want in zip(out, (r.image, r.mask, r.depth, r.parts), strict=True):
        np.testing.assert_array_equal(got, want)
    for bad in (dict(probability=1.5), dict(front=-0.1), dict(shift=(0.5, 0.2)), dict(depth_front=(0.9, 1.0)),
                dict(depth_behind=(0.9, 1.5))):
        with pytest.raises(ConfigError):
            Distractors(**bad)


def test_distractors_draw_a_fixed_number_of_values():
    """A sample's distractor stream advances the same whatever the draw decides (batch invariance)."""
    a, b = np.random.default_rng(7), np.random.default_rng(7)
    present, factor, shift, _ = Distractors(probability=1.0, front=1.0).draw(a)
    absent, factor_b, _, _ = Distractors(probability=0.0, front=0.0).draw(b)
    assert present and not absent
    assert 0.75 <= factor <= 0.95 and 1.1 <= factor_b <= 1.8 and 0.25 <= abs(shift) <= 0.7
    assert a.random() == b.random()


def test_distractors_are_seen_through_the_samples_camera(tmp_path, body, monkeypatch):
    """Sample 3 of (seed 2, train): a distractor (shift 0.39 crop widths) under elevation 45.9, roll 14.4 deg."""
    seed, i, n = 2, 3, 4
    present, factor, shift, pose_seed = REALISTIC_DISTRACTORS.draw(
        sample_rngs(seed, "realistic", "train", DISTRACTOR_STREAM, [i])[0])
    view = REALISTIC_VIEW.draw(sample_rngs(seed, "realistic", "train", VIEW_STREAM, [i])[0])
    assert present and view.elevation > 40 and view.roll > 10
    # The realistic domain without image effects and occluders, over a black then a white background: the
    # pixels that agree are people (the target and the distractor).
    spec = get_domain("realistic")
    people = []
    for value in (0.0, 1.0):
        flat = dataclasses.replace(spec, transform=None, occluders=None,
                                   backgrounds=lambda rng, res, photos, v=value: np.full((res, res, 3), v, np.float32))
        monkeypatch.setitem(DOMAINS, "realistic", flat)
        path = generate(tmp_path / f"bg{value}", "realistic", n=n, res=RES, seed=seed, config=CONFIG, body=body)
        people.append(np.load(path / "image.npy")[i])
    target = np.load(path / "mask.npy")[i].astype(bool)
    other = (people[0] == people[1]).all(-1) & ~target
    assert other.sum() > 50
    # Where the distractor would be if the sample's camera saw it as it sees the target: the same pelvis
    # placement (depth factor and sideways shift), its global orientation turned by R_z(roll) R_x(elevation).
    t = torch.from_numpy(np.load(path / "translation.npy")[i:i + 1]) * factor
    K = torch.from_numpy(np.load(path / "intrinsics.npy")[i:i + 1])
    t[:, 0] = t[:, 0] + shift * RES * t[:, 2] / K[:, 0, 0]
    pose, phen = PoseSampler(seed=pose_seed).sample(1)
    with torch.no_grad():
        out = body(elevate(pose, [view.elevation], [view.roll]), phen)
        expected = silhouette_mask(out.vertices + t[:, None], out.faces, K, RES)[0, 0].numpy() > 0.5
    expected &= ~target
    iou = (other & expected).sum() / (other | expected).sum()
    assert iou > 0.8, f"distractor silhouette IoU {iou:.2f} with the camera-consistent one"


# ------------------------------------------------------------------------------------ view roll
@pytest.mark.parametrize("roll", [12.0, -9.0])
def test_roll_rotates_the_image_about_the_principal_point(body, roll):
    pose, phen = PoseSampler(seed=11).sample(2)
    res = 64
    with torch.no_grad():
        plain = body(pose, phen).joints
        rolled = body(elevate(pose, [0.0, 0.0], [roll, roll]), phen).joints
    K = intrinsics(2.0 * res, res, batch=2)
    t = torch.tensor([[0.0, 0.0, 4.0], [0.0, 0.0, 5.0]])  # the pelvis on the optical axis
    u0, u1 = project(plain + t[:, None], K), project(rolled + t[:, None], K)
    centre = K[:, None, :2, 2]
    # rotation_z: x toward y, i.e. clockwise on the screen (y down) for a positive angle
    a = math.radians(roll)
    R = torch.tensor([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    expected = (u0 - centre) @ R.T + centre
    assert (u1 - expected).abs().max() < 0.5
    assert (u1 - u0).abs().max() > 3.0  # a real rotation, not the identity
    # a point right of the centre moves down for a positive roll
    np.testing.assert_allclose(rotation_z([roll])[0].numpy() @ [1.0, 0.0, 0.0],
                               [math.cos(a), math.sin(a), 0.0], atol=1e-12)
    # no roll: as before
    np.testing.assert_allclose(elevate(pose, [20.0, 20.0], [0.0, 0.0]), elevate(pose, [20.0, 20.0]), atol=1e-6)


def _five_uniform_draw(view: View, u: np.ndarray) -> ViewDraw:
    elevation = 0.0 if view.elevation is None else view.elevation[0] + u[0] * (view.elevation[1] - view.elevation[0])
    focal = None if view.focal_ratio is None else view.focal_ratio[0] + u[1] * (view.focal_ratio[1]
                                                                                   - view.focal_ratio[0])
    side = int(u[3] * len(SIDES)) if u[2] < view.truncation else -1
    lo, hi = view.truncation_amount
    return ViewDraw(elevation, focal, side, lo + u[4] * (hi - lo))


def test_view_draws_a_sixth_uniform_only_with_roll():
    plain = View(elevation=(30.0, 50.0), focal_ratio=(1.4, 2.8), truncation=0.5)
    rolled = View(elevation=(30.0, 50.0), focal_ratio=(1.4, 2.8), truncation=0.5, roll=(-15.0, 15.0))
    for seed in range(5):
        rng, ref = np.random.default_rng(seed), np.random.default_rng(seed)
        draw = plain.draw(rng)
        expected = _five_uniform_draw(plain, ref.random(5))
        assert draw.roll == 0.0
        for name in ("elevation", "focal_ratio", "side", "amount"):
            assert getattr(draw, name) == pytest.approx(getattr(expected, name), abs=1e-12), name
        assert rng.random() == ref.random()  # five uniforms consumed, no more
        rng, ref = np.random.default_rng(seed), np.random.default_rng(seed)
        draw = rolled.draw(rng)
        u = ref.random(6)
        expected = _five_uniform_draw(rolled, u[:5])
        for name in ("elevation", "focal_ratio", "side", "amount"):
            assert getattr(draw, name) == pytest.approx(getattr(expected, name), abs=1e-12), name
        assert draw.roll == pytest.approx(-15.0 + 30.0 * u[5], abs=1e-12)
        assert rng.random() == ref.random()  # six consumed
    assert "roll_deg" not in plain.params() and rolled.params()["roll_deg"] == [-15.0, 15.0]
    with pytest.raises(ConfigError):
        View(roll=(10.0, -10.0))


# ------------------------------------------------------------------------------------ poses
class _FakeMotion:
    """A seeded stand-in for a motion source (numpy arrays, as a library might return)."""

    description = {"fake": True}

    def sample(self, n, seed=0):
        rng = np.random.default_rng(seed + 12345)
        return rng.normal(size=(n, 18, 6)).astype(np.float32), rng.random((n, 6)).astype(np.float32)


def test_mixed_poses_extremes_and_mixture():
    n, seed = 12, 4
    sampler_pose, sampler_phen = PoseSampler(seed=seed).sample(n)
    pose, phen = MixedPoses(0.0, motion=_FakeMotion()).sample(n, seed=seed)
    assert torch.equal(pose, sampler_pose.float()) and torch.equal(phen, sampler_phen.float())
    motion = motion_pose_source()
    assert isinstance(motion, MotionPoses)
    pose, phen = MixedPoses(1.0, motion=motion).sample(n, seed=seed)
    ref_pose, ref_phen = motion.sample(n, seed=seed)
    assert torch.equal(pose, torch.as_tensor(ref_pose, dtype=torch.float32))
    assert torch.equal(phen, torch.as_tensor(ref_phen, dtype=torch.float32))
    # in between: each sample is one source's sample at that index (the others do not shift)
    fake = _FakeMotion()
    fake_pose, fake_phen = fake.sample(n, seed=seed)
    pose, phen = MixedPoses(0.5, motion=fake).sample(n, seed=seed)
    from_motion = [bool(np.array_equal(pose[i].numpy(), fake_pose[i])) for i in range(n)]
    for i in range(n):
        if from_motion[i]:
            np.testing.assert_array_equal(phen[i].numpy(), fake_phen[i])
        else:
            assert torch.equal(pose[i], sampler_pose[i]) and torch.equal(phen[i], sampler_phen[i])
    assert 0 < sum(from_motion) < n
    mixed = MixedPoses(0.25, motion=fake)
    assert mixed.description == {"mixture": {"sampler": 0.75, "motion": 0.25}, "motion": {"fake": True}}
    assert MixedPoses().motion_share == 0.6


@pytest.mark.parametrize("share", [-0.1, 1.5, float("nan")])
def test_mixed_poses_refuses_a_bad_share(share):
    with pytest.raises(ConfigError, match="motion_share"):
        MixedPoses(share, motion=_FakeMotion())


# ------------------------------------------------------------------------------------ backgrounds
def _photo_folder(path, colour=MAGENTA):
    path.mkdir(parents=True, exist_ok=True)
    for i, (w, h) in enumerate(((40, 60), (64, 64), (90, 50))):
        Image.fromarray(np.full((h, w, 3), colour, np.uint8)).save(path / f"photo{i}.png")
    return path


def test_backgrounds_refused_for_other_domains_before_writing(tmp_path):
    photos = _photo_folder(tmp_path / "photos")
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match="backgrounds"):
        generate(out, "studio", n=2, res=32, config=SynthesisConfig(backgrounds=str(photos)))
    assert not out.exists()


def test_backgrounds_missing_or_empty_folder(tmp_path, body):
    out = tmp_path / "out"
    with pytest.raises(MaskposeError, match="nope") as missing:
        generate(out, "realistic", n=2, res=32, config=SynthesisConfig(backgrounds=str(tmp_path / "nope")), body=body)
    assert isinstance(missing.value, (DataError, ConfigError))
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no photos here")
    with pytest.raises(DataError, match="empty"):
        generate(out, "realistic", n=2, res=32, config=SynthesisConfig(backgrounds=str(tmp_path / "empty")), body=body)
    assert not out.exists()


def test_realistic_background_crops_the_users_photos(tmp_path):
    photos = photo_backgrounds(_photo_folder(tmp_path / "photos"))
    assert len(photos) == 3
    used = 0
    for seed in range(12):
        kind = np.random.default_rng(seed).random()
        image = realistic_background(np.random.default_rng(seed), 32, photos)
        assert image.shape == (32, 32, 3) and image.dtype == np.float32
        assert image.min() >= 0.0 and image.max() <= 1.0
        is_photo = bool(np.all(np.abs(image - np.array(MAGENTA) / 255.0) < 1e-6))
        assert is_photo == (kind < 0.5), seed
        used += is_photo
        # without photos: never the magenta of the user's photos
        plain = realistic_background(np.random.default_rng(seed), 32)
        assert not np.all(np.abs(plain - np.array(MAGENTA) / 255.0) < 1e-6)
    assert 0 < used < 12


def _magenta_share(image, mask):
    """Share of the background pixels that are clearly magenta (red and blue well above green)."""
    pixels = image[~mask.astype(bool)].astype(int)
    return float(((pixels[:, 0] > pixels[:, 1] + 60) & (pixels[:, 2] > pixels[:, 1] + 60)).mean())


def test_realistic_generates_over_the_users_photos(tmp_path, body):
    photos = _photo_folder(tmp_path / "photos")
    config = SynthesisConfig(batch_size=N, geodesic=False, backgrounds=str(photos))
    path = generate(tmp_path / "with", "realistic", n=N, res=RES, seed=SEED, config=config, body=body)
    plain = generate(tmp_path / "plain", "realistic", n=N, res=RES, seed=SEED, config=CONFIG, body=body)
    assert read_meta(path)["attrs"]["backgrounds"] == str(photos)
    image, mask = _load(path, "image", "mask")
    image_p, mask_p = _load(plain, "image", "mask")
    # the same people (masks), other backgrounds
    np.testing.assert_array_equal(mask, mask_p)
    from_photos = [np.random.default_rng(seed_sequence(SEED, "realistic", "train", BACKGROUND_STREAM, i)).random()
                   < 0.5 for i in range(N)]
    assert sum(from_photos) >= 2
    for i in range(N):
        share, share_plain = _magenta_share(image[i], mask[i]), _magenta_share(image_p[i], mask_p[i])
        if from_photos[i]:  # camera effects change the colour a little; the photo still shows
            assert share > 0.5 and share_plain < 0.2, (i, share, share_plain)
        else:
            assert share == pytest.approx(share_plain, abs=0.05), i


# ------------------------------------------------------------------------------------ textures
def _weights(pattern: int, rest: torch.Tensor, freq=10.0, direction=(0.6, 0.0, 0.8), phase=1.0, families=(6, 7)):
    n = rest.shape[0]
    d = torch.tensor(direction, dtype=torch.float32)
    d = (d / d.norm()).expand(n, 3)
    return _texture_weight(rest, torch.full((n,), pattern), torch.full((n,), float(freq)), d,
                           torch.full((n,), float(phase)), families)


def test_realistic_texture_families_smooth_noise_and_gradient():
    rest = torch.from_numpy(np.random.default_rng(0).uniform(-0.5, 0.5, size=(500, 3)).astype(np.float32))
    for pattern in (6, 7):
        w = _weights(pattern, rest)
        assert torch.isfinite(w).all() and w.min() >= 0.0 and w.max() <= 1.0
        assert w.std() > 0.05  # varies over the garment
        assert len(torch.unique(w)) > 50  # a smooth weight, not a two-colour threshold
        # families not listed give 0 (the default list has neither 6 nor 7)
        assert (_weights(pattern, rest, families=(1, 2, 3, 4, 5)) == 0).all()
    # the gradient is monotone along its direction and constant across it
    direction = torch.tensor([0.6, 0.0, 0.8])
    s = torch.linspace(-0.5, 0.5, 101)
    along = _weights(7, s[:, None] * direction)
    assert (torch.diff(along) > 0).all()
    assert along[-1] - along[0] > 0.5
    across = _weights(7, 0.1 * direction + torch.linspace(-0.5, 0.5, 11)[:, None] * torch.tensor([0.0, 1.0, 0.0]))
    assert across.max() - across.min() < 1e-6
    # the realistic setting draws both families for its garments
    app = sample_appearance([np.random.default_rng(i) for i in range(40)], "realistic", 32)
    drawn = set(app.pattern.flatten().tolist())
    assert {6, 7} <= drawn
    studio = sample_appearance([np.random.default_rng(i) for i in range(40)], "studio", 32)
    assert not {6, 7} & set(studio.pattern.flatten().tolist())


# ------------------------------------------------------------------------------------ occluders
def test_occluders_probability():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(4, 32, 32, 3), dtype=np.uint8)
    masks = np.zeros((4, 32, 32), np.uint8)
    masks[:, 8:26, 10:22] = 1
    before_images, before_masks = images.copy(), masks.copy()
    out, hidden = Occluders(probability=0.0).apply(images, masks, [np.random.default_rng(i) for i in range(4)])
    np.testing.assert_array_equal(out, before_images)
    assert out is not images and not hidden.any() and hidden.shape == masks.shape
    np.testing.assert_array_equal(masks, before_masks)
    # with probability 1 every sample is occluded (so the check above is not vacuous)
    out, hidden = Occluders(probability=1.0).apply(images, masks, [np.random.default_rng(i) for i in range(4)])
    assert (hidden & masks.astype(bool)).any(axis=(1, 2)).all()
    np.testing.assert_array_equal(images, before_images)  # not in place
    for bad in (-0.1, 1.5):
        with pytest.raises(ConfigError, match="probability"):
            Occluders(probability=bad)
    assert "probability" not in Occluders().params() and REALISTIC_OCCLUDERS.params()["probability"] == 0.25


# ------------------------------------------------------------------------------------ stem pool
def test_stem_pool_model_config():
    pooled = ModelConfig(resolution=32, width=8, hidden=32, stem_pool=True)
    assert pooled.min_resolution() == 2 ** (len(pooled.blocks) + 1) == 32
    assert ModelConfig(blocks=(1, 1, 1), stem_pool=True).min_resolution() == 16
    assert ModelConfig().min_resolution() == 16
    model = PoseRegressor(pooled)
    assert any(isinstance(m, torch.nn.MaxPool2d) for m in model.encoder.stem)
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in PoseRegressor(ModelConfig(width=8)).encoder.stem)
    with torch.no_grad():
        out = model(torch.rand(2, 3, 32, 32))
    assert out.mesh.pose.shape == (2, 18, 6) and torch.isfinite(out.mesh.pose).all()
    with pytest.raises(ConfigError, match="resolution"):
        ModelConfig(resolution=16, stem_pool=True).validate()
    ModelConfig(resolution=16, stem_pool=False).validate()
    # the saved dict: unchanged for old models, round-trips the new field
    assert "stem_pool" not in ModelConfig().to_dict()
    saved = pooled.to_dict()
    assert saved["stem_pool"] is True
    assert ModelConfig.from_dict(saved) == pooled
    assert ModelConfig.from_dict(ModelConfig().to_dict()).stem_pool is False
    for bad in ("yes", 1, None):
        with pytest.raises(ConfigError, match="stem_pool"):
            ModelConfig(stem_pool=bad).validate()
    with pytest.raises(ConfigError, match="stem_pool"):
        ModelConfig.from_dict({"stem_pool": "yes"})


# ------------------------------------------------------------------------------------ lr schedule
TINY = ModelConfig(resolution=32, width=8, hidden=32, heads=("joints",), stem_pool=True)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, body):
    return make_dataset(tmp_path_factory.mktemp("tiny") / "data", 8, res=32, seed=0, body=body)


def _train_config(data, out, **kw) -> TrainConfig:
    base = dict(data=str(data), out=str(out), steps=4, batch_size=4, lr=1e-2, lr_schedule="cosine", log_every=1,
                checkpoint_every=1000, model=TINY, losses={"joints3d": 1.0, "joints2d": 1.0})
    base.update(kw)
    return TrainConfig(**base)


def _cosine(lr, step, steps):
    return lr * (0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * step / steps)))


def test_cosine_schedule_sets_the_lr_of_each_step(tiny, tmp_path):
    trainer = Trainer(_train_config(tiny, tmp_path / "steps"), progress=False)
    for step in range(4):
        trainer.train_step()
        assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(_cosine(1e-2, step, 4), rel=1e-12)
    run = Trainer(_train_config(tiny, tmp_path / "run"), progress=False)
    result = run.run()
    assert result.steps == 4
    assert run.optimizer.param_groups[0]["lr"] == pytest.approx(_cosine(1e-2, 3, 4), rel=1e-12)
    model, _ = load_model(result.checkpoint)
    assert model.config.stem_pool is True
    constant = Trainer(_train_config(tiny, tmp_path / "constant", lr_schedule="constant"), progress=False)
    constant.run()
    assert constant.optimizer.param_groups[0]["lr"] == 1e-2


def test_bogus_lr_schedule_is_refused(tiny, tmp_path):
    with pytest.raises(ConfigError, match="lr_schedule"):
        _train_config(tiny, tmp_path / "bogus", lr_schedule="bogus").validate()
    with pytest.raises(ConfigError, match="lr_schedule"):
        Trainer(_train_config(tiny, tmp_path / "bogus", lr_schedule="bogus"), progress=False)
    assert not (tmp_path / "bogus").exists()
    with pytest.raises(ConfigError, match="lr_schedule"):
        TrainConfig.from_dict({"data": str(tiny), "lr_schedule": 3}).validate()


def test_cosine_run_resumed_matches_uninterrupted_run(tiny, tmp_path):
    straight = train(_train_config(tiny, tmp_path / "a"), progress=False)
    interrupted = Trainer(_train_config(tiny, tmp_path / "b"), progress=False)
    interrupted.out.mkdir(parents=True)
    interrupted.train_step()
    interrupted.train_step()
    interrupted.save()  # as a run stopped after step 2 leaves it
    resumed_trainer = Trainer(_train_config(tiny, tmp_path / "b"), progress=False)
    assert resumed_trainer.step == 2
    resumed = resumed_trainer.run()
    assert resumed.steps == 4
    a, _ = load_model(straight.checkpoint)
    b, _ = load_model(resumed.checkpoint)
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(pa, pb), f"{name} differs after resume"
    assert resumed_trainer.optimizer.param_groups[0]["lr"] == pytest.approx(_cosine(1e-2, 3, 4), rel=1e-12)


def test_weighted_index_is_generator_choice_with_p():
    # The appearance's weighted draws (clothing families, hair colours) skip Generator.choice's
    # checks of p: the same indices from the same draws, and the stream continues the same.
    for p in (_HAIR_WEIGHTS, _REALISTIC_CLOTH_P, np.array([0.0, 0.5, 0.0, 0.5]), np.array([1.0])):
        cdf = _choice_cdf(p)
        for seed in range(200):
            reference, mine = np.random.default_rng(seed), np.random.default_rng(seed)
            drawn = [int(reference.choice(len(p), p=p)) for _ in range(10)]
            assert [_weighted_index(mine, cdf) for _ in range(10)] == drawn
            assert reference.random() == mine.random()

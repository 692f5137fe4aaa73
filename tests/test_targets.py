"""Adaptation targets (issue 14): cctv, occluded and motion domains, and the noisy-mask axis."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage.morphology import disk
from typer.testing import CliRunner

from maskpose.body.motion import MotionLibrary
from maskpose.body.rotations import sixd_to_rotmat
from maskpose.body.sampler import PoseSampler
from maskpose.cli import app
from maskpose.conventions import seed_sequence
from maskpose.data.dataset import read_meta
from maskpose.errors import ConfigError
from maskpose.render.camera import project
from maskpose.synth.appearance import PART_INDEX
from maskpose.synth.degrade import (
    LIMB_JOINTS,
    LIMB_PARTS,
    degrade_masks,
    generate_target_splits,
    limb_region,
    parse_target,
)
from maskpose.synth.degrade import sample_rngs as degradation_rngs
from maskpose.synth.domains import DOMAINS, apply_domain, get_domain, register_domain, register_motion_domain
from maskpose.synth.generator import POSE_CHUNK, POSE_STREAM, SynthesisConfig, generate, sample_rngs
from maskpose.synth.targets import (
    SIDES,
    VIEW_STREAM,
    cctv_images,
    default_motion_library,
    mocap_folder,
    rotation_x,
)

RES = 48
CONFIG = SynthesisConfig(batch_size=16, geodesic=False)
PELVIS, THORAX = 0, 8


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py



def _load(path, *names):
    return [np.load(path / f"{n}.npy") for n in names]


def _chunk_seed(seed, domain, split, chunk=0):
    return int(seed_sequence(seed, domain, split, POSE_STREAM, chunk).generate_state(1)[0])


def _draws(domain, seed, split, n):
    view = get_domain(domain).view
    return [view.draw(rng) for rng in sample_rngs(seed, domain, split, VIEW_STREAM, range(n))]


def _angle(a, b):
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    return float(np.degrees(np.arccos(np.clip(a @ b, -1.0, 1.0))))


def _kabsch(src, dst):
    """Rotation R minimising |R src - dst| for centred (N, 3) point sets."""
    u, _, vt = np.linalg.svd(dst.T @ src)
    return u @ np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))]) @ vt


def test_registry_and_parse_target():
    for name in ("cctv", "occluded", "motion"):
        assert get_domain(name).name == name
    assert parse_target("motion+erode2") == ("motion", "erode2")
    assert parse_target("cctv") == ("cctv", None)
    assert parse_target("occluded+droplimb") == ("occluded", "droplimb")
    for bad in ("motion+foo", "nope+erode2", "studio+erode0", "studio+holes+merge"):
        with pytest.raises(ConfigError):
            parse_target(bad)
    with pytest.raises(ConfigError, match="not only the image"):
        apply_domain("occluded", np.zeros((1, 8, 8, 3), np.uint8))


# ------------------------------------------------------------------------------------ cctv
CCTV_RES = 64  # above the 48 px sensor: rendered at 64, down to 48, noise, back up to 64


@pytest.fixture(scope="module")
def cctv(tmp_path_factory, body):
    return generate(tmp_path_factory.mktemp("t") / "cctv", "cctv", n=8, res=CCTV_RES, seed=2, split="test",
                    config=CONFIG, body=body)


def test_cctv_camera_elevation_and_exact_labels(cctv, body):
    n = 8
    j3, j2, K, pose = _load(cctv, "joints3d", "joints2d", "intrinsics", "pose")
    draws = _draws("cctv", 2, "test", n)
    # the built-in sampler's poses, before the camera's elevation
    ref_pose, ref_phen = PoseSampler(seed=_chunk_seed(2, "cctv", "test")).sample(POSE_CHUNK)
    ref = body(ref_pose[:n], ref_phen[:n]).joints.numpy()
    tilts = []
    for i, draw in enumerate(draws):
        assert 30.0 <= draw.elevation <= 50.0
        # the camera rotation recovered from the labels is R_x(elevation)
        rot = _kabsch(ref[i] - ref[i, PELVIS], j3[i] - j3[i, PELVIS])
        np.testing.assert_allclose(rot, rotation_x([draw.elevation])[0].numpy(), atol=1e-5)
        assert np.degrees(np.arctan2(rot[2, 1], rot[1, 1])) == pytest.approx(draw.elevation, abs=1e-3)
        # camera up (-y) vs the body's up (pelvis -> thorax): off by at most the body's own lean
        tilt, lean = _angle(j3[i, THORAX] - j3[i, PELVIS], np.array([0, -1.0, 0])), \
            _angle(ref[i, THORAX] - ref[i, PELVIS], np.array([0, -1.0, 0]))
        assert abs(tilt - draw.elevation) <= lean + 1e-3
        assert j3[i, THORAX, 2] < j3[i, PELVIS, 2]  # seen from above: the chest nearer than the pelvis
        tilts.append(tilt)
        # stored pose: the sampler's, global orientation turned by R_x
        np.testing.assert_allclose(pose[i, 1:], ref_pose[i, 1:].numpy(), atol=1e-6)
        np.testing.assert_allclose(sixd_to_rotmat(torch.from_numpy(pose[i, 0])).numpy(),
                                   rotation_x([draw.elevation])[0].numpy() @ sixd_to_rotmat(ref_pose[i, 0]).numpy(),
                                   atol=1e-5)
    assert 30.0 <= np.mean(tilts) <= 50.0
    # per-sample focal lengths, stored in the intrinsics
    np.testing.assert_allclose(K[:, 0, 0] / CCTV_RES, [d.focal_ratio for d in draws], rtol=1e-6)
    assert np.all((K[:, 0, 0] / CCTV_RES >= 1.4) & (K[:, 0, 0] / CCTV_RES <= 2.8))
    assert np.ptp(K[:, 0, 0]) > 0.2 * CCTV_RES
    assert read_meta(cctv)["attrs"]["focal_ratio"] == [1.4, 2.8]
    # labels exact for the camera used
    np.testing.assert_allclose(project(torch.from_numpy(j3), torch.from_numpy(K)).numpy(), j2, atol=2e-3)


def test_cctv_images_grey_sensor_and_noise(cctv):
    image, mask = _load(cctv, "image", "mask")
    assert (image[..., 0] == image[..., 1]).all() and (image[..., 1] == image[..., 2]).all()
    assert mask.any(axis=(1, 2)).all()
    # the 64 px frames carry no more detail than 48 px: re-sampling through 48 px changes little
    grey = image[..., 0].astype(np.float32)
    again = np.stack([cv2.resize(cv2.resize(g, (48, 48), interpolation=cv2.INTER_AREA), (CCTV_RES, CCTV_RES),
                                 interpolation=cv2.INTER_LINEAR) for g in grey])
    assert np.abs(again - grey).mean() < 3.0  # native 64 px studio frames: about 5
    # detail above the 48 px sensor's Nyquist frequency is gone: a 1 px checker at 96 px turns flat
    checker = ((np.indices((96, 96)).sum(0) % 2) * 255).astype(np.uint8)
    rngs = [np.random.default_rng(i) for i in range(2)]
    out = cctv_images(np.stack([np.repeat(checker[..., None], 3, -1)] * 2), rngs)
    assert out.shape == (2, 96, 96, 3) and abs(float(out.mean()) - 127.5) < 2 and out.std() < 10
    # sensor noise: a flat grey frame gets noise with a std in the documented 2-6 range
    flat = cctv_images(np.full((4, 48, 48, 3), 128, np.uint8), [np.random.default_rng(i) for i in range(4)])
    stds = flat[..., 0].reshape(4, -1).std(1)
    assert np.all((stds > 1.5) & (stds < 6.5))


# ------------------------------------------------------------------------------------ occluded
@pytest.fixture(scope="module")
def occluded(tmp_path_factory, body):
    """The occluded domain and the same samples with the occluders switched off."""
    root = tmp_path_factory.mktemp("t")
    config = SynthesisConfig(batch_size=16, geodesic=False, extras=True)
    path = generate(root / "occluded", "occluded", n=12, res=RES, seed=3, split="test", config=config, body=body)
    spec = get_domain("occluded")
    try:  # same name, so the same seeds: identical bodies, cameras, truncation and appearance
        register_domain(dataclasses.replace(spec, occluders=None), overwrite=True)
        full = generate(root / "full", "occluded", n=12, res=RES, seed=3, split="test", config=config, body=body)
    finally:
        register_domain(spec, overwrite=True)
    return path, full


def test_occluded_mask_is_the_visible_part(occluded):
    path, full = occluded
    mask, image, parts, depth, j3, j2, K = _load(path, "mask", "image", "parts", "depth", "joints3d", "joints2d",
                                                 "intrinsics")
    full_mask, full_image, full_j2 = _load(full, "mask", "image", "joints2d")
    assert (mask <= full_mask).all()  # visible part of the full-body render
    hidden = 1.0 - mask.sum((1, 2)) / full_mask.sum((1, 2))
    assert np.all((hidden >= 0.07) & (hidden <= 0.43)), hidden
    visible = mask.astype(bool)
    assert (image[visible] == full_image[visible]).all()  # the person's visible pixels untouched
    assert (image[full_mask.astype(bool) & ~visible] != full_image[full_mask.astype(bool) & ~visible]).any()
    assert (parts[~visible] == 0).all() and (depth[~visible] == 0).all()
    # labels: the full-body truth, exact for the camera
    np.testing.assert_array_equal(j2, full_j2)
    np.testing.assert_allclose(project(torch.from_numpy(j3), torch.from_numpy(K)).numpy(), j2, atol=2e-3)


def test_occluded_truncation(occluded):
    path, full = occluded
    full_mask, j2 = _load(full, "mask", "joints2d")
    draws = _draws("occluded", 3, "test", 12)
    truncated = [i for i, d in enumerate(draws) if d.side >= 0]
    assert 0 < len(truncated) < 12
    border = {"left": full_mask[:, :, 0], "right": full_mask[:, :, -1], "top": full_mask[:, 0], "bottom": full_mask[:, -1]}
    for i, draw in enumerate(draws):
        touches = any(border[s][i].any() for s in SIDES)
        if draw.side < 0:
            assert not touches and (j2[i] >= 0).all() and (j2[i] <= RES - 1).all()
        else:
            side = SIDES[draw.side]
            assert border[side][i].any()  # the body leaves the crop on the drawn side
            axis, low = (0, side == "left") if side in ("left", "right") else (1, side == "top")
            outside = (j2[i, :, axis] < 0) if low else (j2[i, :, axis] > RES - 1)
            span = np.ptp(j2[i, :, axis])
            assert outside.any() or span < 0.5 * RES  # joints (or the limbs beyond them) outside


# ------------------------------------------------------------------------------------ motion
def test_motion_poses_are_library_frames_and_deterministic(tmp_path, body):
    library = default_motion_library()
    assert {c.name for c in library} >= {"131_01", "131_02", "131_03", "humanoid3d_walk", "humanoid3d_backflip"}
    assert len(library) == 18 and (mocap_folder() / "LICENSE.md").exists()
    config = SynthesisConfig(batch_size=8, geodesic=False)
    a = generate(tmp_path / "a", "motion", n=8, res=32, seed=4, split="test", config=config, body=body)
    b = generate(tmp_path / "b", "motion", n=8, res=32, seed=4, split="test", config=config, body=body)
    for name in read_meta(a)["fields"]:
        assert (a / f"{name}.npy").read_bytes() == (b / f"{name}.npy").read_bytes(), name
    meta = read_meta(a)
    assert meta["attrs"]["pose_source"] == "MotionPoses"
    assert len(meta["attrs"]["pose_source_description"]["clips"]) == 18

    pose, phen, j3, t = _load(a, "pose", "phenotypes", "joints3d", "translation")
    frames = library.sample_frames(8, seed=_chunk_seed(4, "motion", "test"), min_pose_difference=0.05)
    for i, (clip, frame) in enumerate(frames):
        ref = library.clips[clip].pose[frame].numpy()
        np.testing.assert_allclose(pose[i, 1:], ref[1:], atol=1e-6)  # same frame, same joint rotations
        turn = sixd_to_rotmat(torch.from_numpy(pose[i, 0])).numpy() @ sixd_to_rotmat(torch.from_numpy(ref[0])).numpy().T
        np.testing.assert_allclose(turn[1], [0.0, 1.0, 0.0], atol=1e-5)  # only a yaw about the vertical
    # same frame -> same joints: the stored joints are Anny's for those poses
    joints = body(torch.from_numpy(pose), torch.from_numpy(phen)).joints.numpy() + t[:, None]
    np.testing.assert_allclose(joints, j3, atol=1e-4)
    # another seed, other frames
    c = generate(tmp_path / "c", "motion", n=8, res=32, seed=5, split="test", config=config, body=body)
    assert not np.allclose(np.load(c / "pose.npy"), pose)


def test_motion_domain_from_a_user_folder(tmp_path, body):
    folder = "tests/data/mocap"
    try:
        register_motion_domain("motion-test", folder, stride=2)
        path = generate(tmp_path / "m", "motion-test", n=4, res=32, seed=0, split="test",
                        config=SynthesisConfig(batch_size=4, geodesic=False), body=body)
    finally:
        DOMAINS.pop("motion-test", None)
    library = MotionLibrary(folder, stride=2)
    frames = library.sample_frames(4, seed=_chunk_seed(0, "motion-test", "test"), min_pose_difference=0.05)
    pose = np.load(path / "pose.npy")
    for i, (clip, frame) in enumerate(frames):
        np.testing.assert_allclose(pose[i, 1:], library.clips[clip].pose[frame, 1:].numpy(), atol=1e-6)
    assert read_meta(path)["attrs"]["domain_params"]["motions"] == [folder]


# ------------------------------------------------------------------------------------ noisy masks
def _disc(radius, size=48):
    yy, xx = np.indices((size, size)) - (size - 1) / 2
    return (xx**2 + yy**2 <= radius**2).astype(np.uint8)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_erode_dilate_match_references(k):
    shapes = np.stack([_disc(14.0), np.pad(np.ones((20, 12), np.uint8), ((10, 18), (6, 30))),
                       _disc(6.0) | np.roll(_disc(5.0), 13, axis=1)])
    rng = np.random.default_rng(0)
    eroded, dilated = degrade_masks(shapes, f"erode{k}", rng), degrade_masks(shapes, f"dilate{k}", rng)
    for s, e, d in zip(shapes, eroded, dilated, strict=True):
        np.testing.assert_array_equal(e, ndimage.binary_erosion(s, disk(k), border_value=0))
        np.testing.assert_array_equal(d, ndimage.binary_dilation(s, disk(k)))
    # a disc eroded (dilated) by k px: radius - k (+ k) within 1 px
    assert np.sqrt(eroded[0].sum() / np.pi) == pytest.approx(14.0 - k, abs=1.0)
    assert np.sqrt(dilated[0].sum() / np.pi) == pytest.approx(14.0 + k, abs=1.0)


@pytest.fixture(scope="module")
def studio(tmp_path_factory, body):
    return generate(tmp_path_factory.mktemp("t") / "studio", "studio", n=8, res=RES, seed=9, split="test",
                    config=SynthesisConfig(batch_size=8, geodesic=False, extras=True), body=body)


def test_holes_keep_the_outline(studio):
    masks = np.concatenate([np.load(studio / "mask.npy"), _disc(14.0)[None]])
    out = degrade_masks(masks, "holes", sample_rngs(0, "holes", "x", 1, range(len(masks))))
    assert (out <= masks).all() and (out != masks).any()
    boundary = masks.astype(bool) & ~ndimage.binary_erosion(masks, np.ones((1, 3, 3)), border_value=0)
    for m, o, b in zip(masks, out, boundary, strict=True):
        assert o[b].all()  # boundary pixels kept
        np.testing.assert_array_equal(ndimage.binary_fill_holes(o), ndimage.binary_fill_holes(m))
    assert (out[-1] != masks[-1]).any()  # the disc has room for holes


def test_droplimb_removes_one_limb_only(studio):
    masks, parts, j2 = _load(studio, "mask", "parts", "joints2d")
    rngs = [np.random.default_rng(i) for i in range(len(masks))]
    by_parts = degrade_masks(masks, "droplimb", rngs, parts=parts)
    rngs = [np.random.default_rng(i) for i in range(len(masks))]
    by_joints = degrade_masks(masks, "droplimb", rngs, joints2d=j2)
    owns = []
    for i in range(len(masks)):
        removed = masks[i].astype(bool) & ~by_parts[i].astype(bool)
        limbs = [limb for limb, names in LIMB_PARTS.items()
                 if removed.any() and np.isin(parts[i][removed], [PART_INDEX[n] for n in names]).all()]
        assert len(limbs) == 1  # exactly one limb's pixels, all of them
        names = LIMB_PARTS[limbs[0]]
        assert not (np.isin(parts[i], [PART_INDEX[n] for n in names]) & by_parts[i].astype(bool)).any()
        # without parts: only pixels near one limb's projected segments (the region of limb_region)
        removed = masks[i].astype(bool) & ~by_joints[i].astype(bool)
        assert removed.any() and (by_joints[i] <= masks[i]).all()
        near = [limb for limb in LIMB_JOINTS if (removed == limb_region(masks[i], j2[i], limb)).all()]
        assert len(near) == 1
        yy, xx = np.nonzero(removed)
        chain = j2[i][list(LIMB_JOINTS[near[0]])]
        gap = np.min([np.hypot(xx[:, None] - np.linspace(a[0], b[0], 50), yy[:, None] - np.linspace(a[1], b[1], 50))
                      for a, b in zip(chain[:-1], chain[1:], strict=True)], axis=(0, 2))
        assert gap.max() <= 0.2 * RES  # near the limb's segments
        owns.append(np.isin(parts[i][removed], [PART_INDEX[n] for n in LIMB_PARTS[near[0]]]).mean())
    # mostly the limb itself (a limb seen across the trunk takes trunk pixels with it)
    assert np.mean(owns) > 0.5


def test_merge_is_a_touching_superset(studio):
    masks = np.load(studio / "mask.npy")
    out = degrade_masks(masks, "merge", [np.random.default_rng(i) for i in range(len(masks))])
    for m, o in zip(masks, out, strict=True):
        assert (o >= m).all() and o.sum() > m.sum()
        labels, _ = ndimage.label(o, np.ones((3, 3)))
        own = set(np.unique(labels[m.astype(bool)])) - {0}
        added = o.astype(bool) & ~m.astype(bool)
        assert own & set(np.unique(labels[added]))  # the second silhouette touches or overlaps the first


def test_generate_target_splits_degrades_train_masks_only(tmp_path, body):
    config = SynthesisConfig(batch_size=4)
    out = generate_target_splits(tmp_path, "studio+dilate1", n_train=4, n_test=2, res=32, seed=1, config=config,
                                 body=body)
    plain = generate(tmp_path / "plain", "studio", n=4, res=32, seed=1, split="train", labels=False, config=config,
                     body=body)
    mask, geodesic, image = _load(out["train"], "mask", "geodesic", "image")
    np.testing.assert_array_equal(mask, degrade_masks(np.load(plain / "mask.npy"), "dilate1", np.random.default_rng()))
    assert (image == np.load(plain / "image.npy")).all()
    assert (geodesic[mask == 0] == 1).all() and (geodesic[mask == 1] < 1).any()
    assert read_meta(out["train"])["attrs"]["mask_degradation"] == {"name": "dilate1", "seed": 1}
    assert "mask_degradation" not in read_meta(out["test"])["attrs"]
    assert out["train"].parent.name == "studio+dilate1"


@pytest.mark.parametrize("domain", ["cctv", "occluded"])
def test_same_seed_same_bytes_and_batch_invariance(tmp_path, body, domain):
    def make(name, batch_size):
        return generate(tmp_path / name, domain, n=5, res=RES, seed=6, split="train", labels=False,
                        config=SynthesisConfig(batch_size=batch_size, geodesic=False), body=body)

    a, b, c = make("a", 5), make("b", 5), make("c", 2)
    for name in read_meta(a)["fields"]:
        assert (a / f"{name}.npy").read_bytes() == (b / f"{name}.npy").read_bytes(), name
    # another batch size: the same samples up to float rounding at a rare edge pixel
    assert (np.load(a / "mask.npy") != np.load(c / "mask.npy")).mean() < 0.002
    assert (np.load(a / "image.npy") != np.load(c / "image.npy")).any(-1).mean() < 0.01


def test_droplimb_target_uses_the_rendered_parts(tmp_path, body):
    config = SynthesisConfig(batch_size=4, geodesic=False)
    out = generate_target_splits(tmp_path, "occluded+droplimb", n_train=4, n_test=1, res=32, seed=2, config=config,
                                 body=body)
    plain = generate(tmp_path / "plain", "occluded", n=4, res=32, seed=2, split="train", labels=False,
                     config=config, body=body)
    assert "parts" in read_meta(out["train"])["fields"] and "joints3d" not in read_meta(out["train"])["fields"]
    mask, parts = _load(out["train"], "mask", "parts")
    before = np.load(plain / "mask.npy")
    assert (mask <= before).all() and (mask != before).any()
    limb_parts = [PART_INDEX[n] for names in LIMB_PARTS.values() for n in names]
    assert np.isin(parts[(before == 1) & (mask == 0)], limb_parts).all()  # only limb pixels removed


# ------------------------------------------------------------------------- clothed
def _within_mask_std(path):
    images, masks = _load(path, "image", "mask")
    grey = images.astype(np.float64).mean(-1)
    eroded = [cv2.erode(m, np.ones((3, 3), np.uint8)) > 0 for m in masks]  # away from the outline
    return float(np.mean([grey[i][e].std() for i, e in enumerate(eroded) if e.sum() > 20]))


def test_clothed_is_textured_studio_geometry(tmp_path, body):
    from maskpose.synth.appearance import sample_appearance
    from maskpose.synth.generator import APPEARANCE_STREAM

    clothed = generate(tmp_path / "clothed", "clothed", 16, 64, 0, "test", True, CONFIG, body=body)
    studio = generate(tmp_path / "studio", "studio", 16, 64, 0, "test", True, CONFIG, body=body)
    spec = get_domain("clothed")
    assert spec.render == "realistic" and spec.view is None and spec.occluders is None and spec.distractors is None
    assert spec.transform is None and spec.pose_source is None  # no camera effects, the sampler's poses
    # The realistic appearance: texture families studio never draws (dots, camouflage, plaid, noise,
    # gradients) and one to three tinted lights, where studio has one white key light. (Studio's
    # garments are textured too, stripes and checks, so the grey spread inside the mask is alike.)
    drawn = sample_appearance(sample_rngs(0, "clothed", "test", APPEARANCE_STREAM, range(16)), "realistic", 64)
    source = sample_appearance(sample_rngs(0, "studio", "test", APPEARANCE_STREAM, range(16)), "studio", 64)
    assert (drawn.pattern >= 3).any() and not (source.pattern >= 3).any()
    lights = (drawn.light_colour.abs().sum(-1) > 0).sum(-1)
    assert lights.max() >= 2 and ((source.light_colour.abs().sum(-1) > 0).sum(-1) == 1).all()
    tint = drawn.light_colour[:, 0, 0] / drawn.light_colour[:, 0, 2]
    assert (tint - 1).abs().max() > 0.1  # warm or cool
    assert _within_mask_std(clothed) > 15 and _within_mask_std(studio) > 15  # both textured
    (Kc, j3, j2, mask), (Ks,) = _load(clothed, "intrinsics", "joints3d", "joints2d", "mask"), _load(studio, "intrinsics")
    assert np.array_equal(Kc, Ks)  # studio's crop camera
    assert np.abs(project(torch.from_numpy(j3), torch.from_numpy(Kc)).numpy() - j2).max() < 1e-3
    box = [np.nonzero(m.any(1))[0] for m in mask]
    fill = np.array([(b[-1] - b[0] + 1) / 64 for b in box])
    assert fill.min() > 0.55 and fill.max() <= 1.0  # the body spans studio's 70-90 % of the crop (larger side)
    meta = read_meta(clothed)
    assert meta["attrs"]["domain_render"] == "realistic" and meta["domain"] == "clothed"


# ------------------------------------------------------------------------- bench adapt: targets, shift, MediaPipe
def test_all_targets_and_quick():
    from maskpose.bench.adapt import ALL_TARGETS, BenchConfig

    assert ALL_TARGETS[:6] == ("lowres-32", "lowres-52", "thermal", "uap-8", "uap-16", "scene")
    assert ALL_TARGETS[6:] == ("motion", "cctv", "occluded", "bgsub", "clothed")
    assert BenchConfig().validate().targets == ALL_TARGETS
    assert BenchConfig.quick().validate().targets == ("lowres-32", "thermal", "uap-16", "scene")
    with pytest.raises(ConfigError, match="peer-python"):
        BenchConfig(peer_python="/no/such/python").validate()


def _entry(pa, mpjpe):
    return {"pa_mpjpe_mean": pa, "pa_mpjpe_std": 0.0, "mpjpe_mean": mpjpe, "mpjpe_std": 0.0}


def test_shift_strength_and_gap_closed():
    from maskpose.bench.adapt import ablation_order_check, markdown_table, shift_markdown, with_shift

    results = {
        "strong": {"source": _entry(100.0, 200.0), "l2": _entry(90.0, 190.0), "ls_lt": _entry(75.0, 170.0),
                   "oracle": _entry(60.0, 150.0)},
        "weak": {"source": _entry(100.0, 150.0), "l2": _entry(101.0, 149.0), "oracle": _entry(90.0, 140.0)},
        "none": {"source": _entry(100.0, 150.0), "l2": _entry(98.0, 150.0), "oracle": _entry(104.0, 150.0)},
        "no_oracle": {"source": _entry(100.0, 150.0)},
    }
    out = with_shift(results)
    s = out["strong"]["shift"]
    assert s["oracle_gain"] == pytest.approx({"pa_mpjpe": 0.4, "mpjpe": 0.25}) and not s["weak"]
    assert s["gap_closed"]["l2"] == pytest.approx({"pa_mpjpe": 0.25, "mpjpe": 0.2})
    assert s["gap_closed"]["ls_lt"] == pytest.approx({"pa_mpjpe": 0.625, "mpjpe": 0.6})
    w = out["weak"]["shift"]
    assert w["oracle_gain"]["pa_mpjpe"] == pytest.approx(0.1) and w["weak"]
    assert w["gap_closed"]["l2"]["pa_mpjpe"] == pytest.approx(-0.1)
    n = out["none"]["shift"]
    assert n["oracle_gain"]["pa_mpjpe"] == pytest.approx(-0.04) and n["weak"]
    assert n["gap_closed"]["l2"] == {"pa_mpjpe": None, "mpjpe": None}  # no gap to close
    assert "shift" not in out["no_oracle"]
    assert out["strong"]["oracle"]["pa_mpjpe_mean"] == 60.0  # the variants' layout is kept
    assert ablation_order_check(out) == {}  # the extra keys are no variants (and no target has ls here)
    table = markdown_table(out, ["strong", "weak"], ["source", "l2", "oracle"], "pa_mpjpe")
    assert "| weak (weak shift) | mean |" in table and "| strong | weak" in table
    md = shift_markdown(out, ["strong", "weak"])
    assert "40 % / 25 %" in md and "10 % / 7 % **weak shift**" in md and "| gap closed: ls_lt | 62 % |" in md


FAKE_PEER = """
import sys
from pathlib import Path
import numpy as np
H36M = ("pelvis", "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "spine", "thorax",
        "neck", "head", "l_shoulder", "l_elbow", "l_wrist", "r_shoulder", "r_elbow", "r_wrist")
MP = {"r_hip": 24, "r_knee": 26, "r_ankle": 28, "l_hip": 23, "l_knee": 25, "l_ankle": 27,
      "l_shoulder": 11, "l_elbow": 13, "l_wrist": 15, "r_shoulder": 12, "r_elbow": 14, "r_wrist": 16}
data, out = Path(sys.argv[1]), Path(sys.argv[2])
j2, j3 = np.load(data / "joints2d.npy"), np.load(data / "joints3d.npy")
n = len(j2)
detected = np.arange(n) % 2 == 0
lm = np.full((n, 33, 2), np.nan, np.float32)
world = np.full((n, 33, 3), np.nan, np.float32)
for name, k in MP.items():
    lm[:, k] = j2[:, H36M.index(name)]
    world[:, k] = j3[:, H36M.index(name)] * 1.3 + 0.2
lm[~detected] = np.nan
world[~detected] = np.nan
np.savez(out, detected=detected, landmarks2d=lm, visibility=np.full((n, 33), 0.9, np.float32), world=world,
         mediapipe_version=np.array("fake"), model_complexity=np.array(1))
"""


def test_mediapipe_row_with_a_fake_peer(tmp_path, body):
    import sys

    from maskpose.bench.adapt import BenchConfig, mediapipe_markdown, mediapipe_rows, with_shift
    from maskpose.bench.common import _Log

    worker = tmp_path / "fake_peer.py"
    worker.write_text(FAKE_PEER)
    cfg = BenchConfig(targets=("clothed", "clothed+erode1"), target_test=4, peer_resolution=64)
    assert mediapipe_rows(cfg.validate(), tmp_path, {}, body, _Log("t", lambda _: None)) == {}  # no peer: no row
    cfg = BenchConfig(targets=cfg.targets, target_test=4, peer_resolution=64, peer_python=sys.executable,
                      peer_worker=str(worker)).validate()
    rows = mediapipe_rows(cfg, tmp_path, {}, body, _Log("t", lambda _: None))
    for t in cfg.targets:
        row = rows[t]
        assert row["detection_rate"] == 50.0 and row["pck2d@0.1"] == 50.0  # misses count as failures
        assert row["pa_mpjpe_count"] == 2 and row["pa_mpjpe"] == pytest.approx(0.0, abs=1e-3)
        assert row["resolution"] == 64
    assert read_meta(tmp_path / "data" / "clothed" / "test_peer64")["resolution"] == [64, 64]
    cached = mediapipe_rows(cfg, tmp_path, {}, body, _Log("t", lambda _: None), {"clothed": {**rows["clothed"], "x": 1}})
    assert cached["clothed"]["x"] == 1  # reused on resume
    results = with_shift({"clothed": {"source": _entry(100.0, 150.0)}}, rows)
    assert results["clothed"]["mediapipe"]["pck2d@0.1"] == 50.0
    assert "| PCK@0.1 | 50.0 |" in mediapipe_markdown(results, ["clothed"])


def test_synth_cli_writes_a_degraded_target(tmp_path):
    """`maskpose synth --domain thermal+erode2` is the thermal split with its masks eroded by 2 px
    (the images and labels are the domain's, the masks those of degrade_masks with the same seed)."""
    out = tmp_path / "deg"
    result = CliRunner().invoke(app, ["synth", "--out", str(out), "--domain", "thermal+erode2", "--n", "3",
                                      "--res", "32", "--seed", "4", "--no-geodesic", "--batch-size", "3"])
    assert result.exit_code == 0, result.output
    clean = generate(tmp_path / "clean", "thermal", 3, 32, 4, "train", True, SynthesisConfig(geodesic=False, batch_size=3))
    image, mask, joints = _load(out, "image", "mask", "joints3d")
    clean_image, clean_mask, clean_joints = _load(clean, "image", "mask", "joints3d")
    np.testing.assert_array_equal(image, clean_image)
    np.testing.assert_array_equal(joints, clean_joints)
    expected = degrade_masks(clean_mask, "erode2", degradation_rngs(4, "erode2", range(3)))
    np.testing.assert_array_equal(mask, expected)
    assert (mask <= clean_mask).all() and mask.sum() < clean_mask.sum()
    assert read_meta(out)["attrs"]["mask_degradation"] == {"name": "erode2", "seed": 4}

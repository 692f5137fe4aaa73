"""Synthetic data: generator labels, image/mask agreement, determinism, domains (docs/design.md §3, §4)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from maskpose.conventions import seed_key, seed_sequence
from maskpose.data.dataset import LABEL_FIELDS, MaskposeDataset, read_meta
from maskpose.errors import ConfigError
from maskpose.synth.domains import (
    DOMAINS,
    THERMAL_STATS,
    apply_domain,
    estimate_noise_std,
    get_domain,
)
from maskpose.synth.generator import (
    APPEARANCE_STREAM,
    POSE_CHUNK,
    POSE_STREAM,
    SynthesisConfig,
    generate,
    generate_domain_splits,
    sample_rngs,
)
from maskpose.synth.renderer import _first_largest_of_three

RES = 64
MAGENTA = np.array([255, 0, 255], np.uint8)
NO_GEODESIC = SynthesisConfig(geodesic=False)


@pytest.fixture(scope="module", autouse=True)
def _two_threads():
    """At most two torch threads in this module; the count is restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(min(2, threads))
    yield
    torch.set_num_threads(threads)



@pytest.fixture(scope="module")
def studio(tmp_path_factory, body):
    out = tmp_path_factory.mktemp("synth") / "studio"
    config = SynthesisConfig(batch_size=8, extras=True)
    return generate(out, "studio", n=8, res=RES, seed=5, split="test", config=config, body=body)


@pytest.fixture(scope="module")
def studio128(tmp_path_factory, body):
    out = tmp_path_factory.mktemp("synth") / "studio128"
    return generate(out, "studio", n=6, res=128, seed=11, config=SynthesisConfig(batch_size=6, geodesic=False), body=body)


def _arrays(path, *names):
    return [np.load(path / f"{n}.npy") for n in names]


def _chunk_seed(seed, domain, split, chunk):
    """The pose seed of a chunk, derived as the module docstring of the generator says."""
    return int(seed_sequence(seed, domain, split, POSE_STREAM, chunk).generate_state(1)[0])


def _builtin_poses(seed, domain, split, n):
    """The first ``n`` poses of the built-in sampler's stream (one chunk of POSE_CHUNK)."""
    from maskpose.body.sampler import PoseSampler

    pose, _ = PoseSampler(seed=_chunk_seed(seed, domain, split, 0)).sample(POSE_CHUNK)
    return pose[:n].numpy()


def test_fields_and_meta(studio):
    meta = read_meta(studio)
    assert meta["num_samples"] == 8 and meta["resolution"] == [RES, RES]
    assert meta["domain"] == "studio" and meta["split"] == "test"
    assert set(meta["fields"]) == {"image", "mask", "intrinsics", "geodesic", "depth", "parts", *LABEL_FIELDS}
    item = MaskposeDataset(studio)[0]
    assert item["image"].shape == (3, RES, RES) and item["joints3d"].shape == (17, 3)
    mask, geodesic, depth, parts = _arrays(studio, "mask", "geodesic", "depth", "parts")
    assert set(np.unique(mask)) == {0, 1}
    assert ((depth > 0) == (mask == 1)).all() and ((parts > 0) == (mask == 1)).all()
    assert np.isfinite(geodesic.astype(np.float32)).all()
    assert (geodesic[mask == 1] <= 1.0 + 1e-3).all()
    # Every body part shows up somewhere in a handful of samples; parts are left/right distinct.
    assert len(np.unique(parts)) >= 12


def test_joints_inside_and_projection(studio):
    from maskpose.render.camera import project

    joints3d, joints2d, K, mask = _arrays(studio, "joints3d", "joints2d", "intrinsics", "mask")
    assert (joints2d >= 0).all() and (joints2d <= RES - 1).all()
    assert (joints3d[..., 2] > 0).all()
    reprojected = project(torch.from_numpy(joints3d), torch.from_numpy(K)).numpy()
    np.testing.assert_allclose(joints2d, reprojected, atol=1e-3)
    # By hand too (no shared code path): u = fx x / z + cx.
    u = K[:, None, 0, 0] * joints3d[..., 0] / joints3d[..., 2] + K[:, None, 0, 2]
    np.testing.assert_allclose(joints2d[..., 0], u, atol=1e-3)
    # The pelvis projects onto the body.
    pelvis = np.rint(joints2d[:, 0]).astype(int)
    near = [mask[i, max(0, y - 2):y + 3, max(0, x - 2):x + 3].any() for i, (x, y) in enumerate(pelvis)]
    assert all(near)


def test_mask_coincides_with_rgb(studio, body):
    """Re-render the stored samples from their stored labels on a constant magenta background:
    the pixels that are not magenta are exactly the stored mask, and the body pixels equal the
    stored image (same appearance and noise), so there is no offset or flip."""
    from maskpose.synth.renderer import SynthesisRenderer

    image, mask, pose, phen, trans, K = _arrays(studio, "image", "mask", "pose", "phenotypes", "translation",
                                                "intrinsics")
    with torch.no_grad():
        out = body(torch.from_numpy(pose), torch.from_numpy(phen), torch.from_numpy(trans))
    n = len(image)
    rngs = sample_rngs(5, "studio", "test", APPEARANCE_STREAM, range(n))
    const = np.broadcast_to(MAGENTA, image.shape).copy()
    clean = SynthesisRenderer(body).render(out.vertices, torch.from_numpy(K), rngs, "studio", RES,
                                           backgrounds=const, noise=False)
    assert np.array_equal((clean.image != MAGENTA).any(-1), mask.astype(bool))
    assert np.array_equal(clean.mask, mask)
    assert not np.array_equal(mask[:, :, ::-1], mask)  # a flip would be caught
    rngs = sample_rngs(5, "studio", "test", APPEARANCE_STREAM, range(n))
    noisy = SynthesisRenderer(body).render(out.vertices, torch.from_numpy(K), rngs, "studio", RES,
                                           backgrounds=const, noise=True)
    body_px = mask.astype(bool)
    assert np.array_equal(noisy.image[body_px], image[body_px])
    # With its own backgrounds the renderer gives back the stored images exactly (studio has no transform).
    rngs = sample_rngs(5, "studio", "test", APPEARANCE_STREAM, range(n))
    again = SynthesisRenderer(body).render(out.vertices, torch.from_numpy(K), rngs, "studio", RES)
    assert get_domain("studio").transform is None and np.array_equal(again.image, image)


def test_same_seed_same_bytes_and_batch_invariance(tmp_path, body):
    pairs, fives = SynthesisConfig(batch_size=2), SynthesisConfig(batch_size=5)
    a = generate(tmp_path / "a", "studio", n=5, res=48, seed=1, config=pairs, body=body)
    again = generate(tmp_path / "again", "studio", n=5, res=48, seed=1, config=pairs, body=body)
    other_batch = generate(tmp_path / "b", "studio", n=5, res=48, seed=1, config=fives, body=body)
    c = generate(tmp_path / "c", "studio", n=5, res=48, seed=2, config=pairs, body=body)
    names = ("image", "mask", "geodesic", "joints3d", "joints2d", "intrinsics", "pose", "translation")
    for name in names:
        assert (a / f"{name}.npy").read_bytes() == (again / f"{name}.npy").read_bytes(), name
    assert (a / "meta.json").read_bytes() == (again / "meta.json").read_bytes()
    # Another batch size gives the same samples (labels up to float rounding).
    for name in names:
        x, y = np.load(a / f"{name}.npy"), np.load(other_batch / f"{name}.npy")
        if name in ("image", "mask"):
            assert (x == y).mean() > 0.999, name
        else:
            np.testing.assert_allclose(x.astype(np.float64), y, atol=1e-4, err_msg=name)
    # Another seed gives the poses of its own stream: chunk 0 of (seed, domain, split, POSE_STREAM).
    np.testing.assert_array_equal(np.load(c / "pose.npy"), _builtin_poses(2, "studio", "train", 5))
    np.testing.assert_array_equal(np.load(a / "pose.npy"), _builtin_poses(1, "studio", "train", 5))


def test_domain_splits(tmp_path, body):
    paths = generate_domain_splits(tmp_path, "lowres-52", n_train=3, n_test=2, res=RES, seed=0, body=body)
    assert paths["train"] == tmp_path / "lowres-52" / "train"
    train, test = read_meta(paths["train"]), read_meta(paths["test"])
    assert train["split"] == "train" and test["split"] == "test" and train["domain"] == "lowres-52"
    assert not set(LABEL_FIELDS) & set(train["fields"])  # target supervision: images and masks only
    assert {"image", "mask", "geodesic", "intrinsics"} <= set(train["fields"])
    assert set(LABEL_FIELDS) <= set(test["fields"])
    assert not (paths["train"] / "joints3d.npy").exists()
    source = generate_domain_splits(tmp_path, "studio", 2, 2, res=RES, body=body)
    assert set(LABEL_FIELDS) <= set(read_meta(source["train"])["fields"])  # the source is labelled


def test_pose_source_object(tmp_path, body):
    from maskpose.body.sampler import PoseSampler

    class Library:  # a motion library's API: sample(n) -> (pose, phenotypes)
        def __init__(self):
            self.sampler = PoseSampler(seed=42, spread=0.3)

        def sample(self, n):
            return self.sampler.sample(n)

    path = generate(tmp_path / "lib", "studio", n=3, res=RES, pose_source=Library(), config=NO_GEODESIC, body=body)
    expected, _ = PoseSampler(seed=42, spread=0.3).sample(3)  # asked for min(POSE_CHUNK, n) at a time
    np.testing.assert_array_equal(np.load(path / "pose.npy"), expected.numpy())
    assert json.loads((path / "meta.json").read_text())["attrs"]["pose_source"] == "Library"

    class SeededLibrary:  # MotionLibrary-style: sample(n, seed) is stateless
        calls = []

        def sample(self, n, seed=0):
            self.calls.append(seed)
            return PoseSampler(seed=seed).sample(n)

    lib = SeededLibrary()
    a = generate(tmp_path / "s1", "studio", n=3, res=RES, pose_source=lib, config=NO_GEODESIC, body=body)
    b = generate(tmp_path / "s2", "studio", n=3, res=RES, pose_source=lib, seed=9, config=NO_GEODESIC, body=body)
    # one call per chunk, its seed derived from (seed, domain, split, POSE_STREAM, chunk)
    assert lib.calls == [_chunk_seed(0, "studio", "train", 0), _chunk_seed(9, "studio", "train", 0)]
    for path, seed in ((a, lib.calls[0]), (b, lib.calls[1])):
        np.testing.assert_array_equal(np.load(path / "pose.npy"), PoseSampler(seed=seed).sample(3)[0].numpy())


def _high_frequency_fraction(images: np.ndarray, cutoff: float) -> float:
    """Share of spectral energy at frequencies above ``cutoff`` cycles per image (either axis)."""
    grey = images.astype(np.float64).mean(-1)
    grey = grey - grey.mean(axis=(1, 2), keepdims=True)
    power = np.abs(np.fft.fft2(grey)) ** 2
    freq = np.abs(np.fft.fftfreq(images.shape[1]) * images.shape[1])
    high = np.maximum(freq[:, None], freq[None, :]) > cutoff
    return float(power[:, high].sum() / power.sum())


@pytest.mark.parametrize("size", [96, 52, 32])
def test_lowres_removes_high_frequencies(studio128, size):
    images, masks = _arrays(studio128, "image", "mask")
    low = apply_domain(f"lowres-{size}", images, masks)
    assert low.shape == images.shape and low.dtype == np.uint8
    before = _high_frequency_fraction(images, size / 2)
    after = _high_frequency_fraction(low, size / 2)
    assert before > 1e-3
    assert after < 0.2 * before, (size, before, after)
    # Detail below the cutoff survives: the images still correlate strongly with the originals.
    corr = np.corrcoef(images.astype(float).ravel(), low.astype(float).ravel())[0, 1]
    assert corr > 0.8


def test_lowres_through_generate(tmp_path, body):
    path = generate(tmp_path / "low", "lowres-32", n=3, res=RES, labels=False, config=NO_GEODESIC, body=body)
    images = np.load(path / "image.npy")
    studio = generate(tmp_path / "st", "studio", n=3, res=RES, labels=False, config=NO_GEODESIC, body=body)
    assert _high_frequency_fraction(images, 16) < 0.2 * _high_frequency_fraction(np.load(studio / "image.npy"), 16)


def test_thermal_statistics(tmp_path, body):
    from scipy import ndimage

    path = generate(tmp_path / "thermal", "thermal", n=6, res=128, seed=3, config=NO_GEODESIC, body=body)
    images, masks = _arrays(path, "image", "mask")
    assert (images[..., 0] == images[..., 1]).all() and (images[..., 1] == images[..., 2]).all()  # grey
    for image, mask in zip(images, masks):
        grey = image[..., 0].astype(np.float64) / 255.0
        body_mean, bg_mean = grey[mask == 1].mean(), grey[mask == 0].mean()
        assert body_mean - bg_mean >= THERMAL_STATS["min_body_minus_background"]
        assert THERMAL_STATS["body_mean_range"][0] <= body_mean <= THERMAL_STATS["body_mean_range"][1]
        assert THERMAL_STATS["background_mean_range"][0] <= bg_mean <= THERMAL_STATS["background_mean_range"][1]
        far = ~ndimage.binary_dilation(mask.astype(bool), iterations=5)
        noise = estimate_noise_std(image, far)
        assert 0.7 * THERMAL_STATS["noise_std"] <= noise <= 1.4 * THERMAL_STATS["noise_std"], noise


def test_scene_is_disjoint_from_studio():
    from maskpose.synth.appearance import _PATTERNS, PHOTOS

    assert not set(PHOTOS["scene"]) & set(PHOTOS["studio"])
    assert not set(_PATTERNS["scene"]) & set(_PATTERNS["studio"])
    assert get_domain("scene").render == "scene"


def test_scene_renders(tmp_path, body):
    path = generate(tmp_path / "scene", "scene", n=3, res=RES, config=NO_GEODESIC, body=body)
    images, masks = _arrays(path, "image", "mask")
    assert masks.any(axis=(1, 2)).all() and images.std() > 10


def test_registry_and_errors(body, tmp_path):
    assert {"studio", "lowres-96", "lowres-52", "lowres-32", "thermal", "scene"} <= set(DOMAINS)
    with pytest.raises(ConfigError, match="unknown domain 'nope'"):
        generate(tmp_path / "x", "nope", n=1, body=body)
    with pytest.raises(ConfigError, match="rendering setting"):
        apply_domain("thermal", np.zeros((1, 8, 8, 3), np.uint8))


def test_cli_synth(tmp_path):
    from typer.testing import CliRunner

    from maskpose.cli import app

    out = tmp_path / "cli"
    result = CliRunner().invoke(app, ["synth", "--domain", "lowres-52", "--n", "3", "--res", "48", "--seed", "4",
                                      "--out", str(out), "--split", "train", "--no-labels", "--no-geodesic"])
    assert result.exit_code == 0, result.output
    meta = read_meta(out)
    assert meta["num_samples"] == 3 and meta["domain"] == "lowres-52" and set(meta["fields"]) == {
        "image", "mask", "intrinsics"}
    result = CliRunner().invoke(app, ["synth", "--out", str(out), "--split", "val", "--n", "1"])
    assert result.exit_code == 2 and "--split must be train or test" in result.output


def test_seed_sequence_is_numpys_of_the_seed_words():
    # The per-sample streams: NumPy's SeedSequence of the words (the seed and each key as a 32-bit
    # word, strings by their CRC-32), whatever form the words are handed over in; spawned
    # children too (the video synthesis spawns its streams).
    for seed, keys in [(0, ()), (7, ("thermal", "train", 2, 5)), (2**32 + 5, (0x5EC0,)), (-3, ("a", 2**40, -1))]:
        words = [seed_key(seed), *(seed_key(k) for k in keys)]
        ours, plain = seed_sequence(seed, *keys), np.random.SeedSequence(words)
        assert np.array_equal(ours.generate_state(8), plain.generate_state(8))
        assert np.random.default_rng(ours).bit_generator.state == np.random.default_rng(plain).bit_generator.state
        for mine, theirs in zip(ours.spawn(2), plain.spawn(2), strict=True):
            assert np.array_equal(mine.generate_state(4), theirs.generate_state(4))


def test_first_largest_of_three_is_argmax():
    # The renderer's nearest corner of a covered pixel: argmax over the three barycentrics, the
    # first of equal largest, on values with ties in every position.
    values = torch.rand(3000, 3, generator=torch.Generator().manual_seed(2)).round(decimals=1)
    values[:100] = 0.5
    assert torch.equal(_first_largest_of_three(values), values.argmax(1))

"""Realism (maskpose.synth.realism): procedural and photo backgrounds, camera effects."""

from __future__ import annotations

import json
import pickle
import time

import cv2
import numpy as np
import pytest
from scipy import ndimage

from maskpose.errors import ConfigError, DataError, MaskposeError
from maskpose.synth.realism import (
    GENERATORS,
    N_UNIFORMS,
    CameraEffects,
    PhotoBackgrounds,
    camera_effects,
    jpeg_roundtrip,
    motion_kernel,
    procedural_background,
    sensor_noise,
)

ALL_GENERATORS = {**GENERATORS, "procedural": procedural_background}
#: Every effect off and the colour jitter neutral: the identity at any strength.
NEUTRAL = dict(motion_blur=0.0, defocus=0.0, vignette=0.0, noise=0.0, jpeg=0.0, white_balance=(1.0, 1.0),
               saturation=(1.0, 1.0), hue=(0.0, 0.0), contrast=(1.0, 1.0), brightness=(0.0, 0.0), gamma=(1.0, 1.0))


def only(**kwargs) -> CameraEffects:
    """Camera effects with everything neutral except ``kwargs``."""
    return CameraEffects(**{**NEUTRAL, **kwargs})


def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_images(batch: int = 4, height: int = 64, width: int = 64, seed: int = 0) -> np.ndarray:
    """Textured uint8 test images (shapes backgrounds)."""
    return np.stack([(GENERATORS["shapes"](rng(seed + i), max(height, width))[:height, :width] * 255).astype(np.uint8)
                     for i in range(batch)])


test_images.__test__ = False  # a helper, not a test


# ------------------------------------------------------------------------------------ backgrounds
@pytest.mark.parametrize("name", sorted(ALL_GENERATORS))
@pytest.mark.parametrize("res", [32, 97, 128])
def test_background_shape_range_and_determinism(name, res):
    make = ALL_GENERATORS[name]
    a, b, c = make(rng(3), res), make(rng(3), res), make(rng(4), res)
    for image in (a, c):
        assert image.shape == (res, res, 3) and image.dtype == np.float32
        assert np.isfinite(image).all() and image.min() >= 0.0 and image.max() <= 1.0
    assert a.tobytes() == b.tobytes()
    assert a.tobytes() != c.tobytes()


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_backgrounds_are_not_trivial(name):
    for seed in range(25):
        image = GENERATORS[name](rng(seed), 64)
        colours = np.unique((image * 255).astype(np.uint8).reshape(-1, 3) >> 3, axis=0)
        assert image.std() > 0.02, (name, seed)
        assert len(colours) >= 10, (name, seed)


def test_generators_differ_from_each_other():
    """The four families look different: mean absolute pixel change between neighbours (edges)
    is high for shapes and dead leaves, low for the smooth noise and gradient families."""
    def edginess(name):
        images = [GENERATORS[name](rng(s), 64) for s in range(20)]
        return float(np.mean([np.abs(np.diff(im, axis=1)).mean() for im in images]))
    e = {name: edginess(name) for name in GENERATORS}
    assert min(e["dead_leaves"], e["shapes"]) > max(e["fractal_noise"], e["gradient"]), e


def test_procedural_background_picks_uniformly():
    names = list(GENERATORS)
    counts = dict.fromkeys(names, 0)
    for seed in range(200):
        r = rng(seed)
        kind = names[int(r.integers(len(names)))]
        counts[kind] += 1
        if seed < 12:
            assert procedural_background(rng(seed), 32).tobytes() == GENERATORS[kind](r, 32).tobytes()
    assert all(25 <= c <= 75 for c in counts.values()), counts


def test_background_resolution_is_checked():
    with pytest.raises(ConfigError, match="resolution"):
        procedural_background(rng(0), 2)


# ------------------------------------------------------------------------------------ photos
def _write(path, image):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.ascontiguousarray(image[..., ::-1]))


def _ramp(height, width):
    """Left dark, right bright, red-ish."""
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
    return np.broadcast_to(x * np.array([1.0, 0.5, 0.2], np.float32), (height, width, 3)).astype(np.uint8)


@pytest.fixture
def photo_folder(tmp_path):
    folder = tmp_path / "photos"
    _write(folder / "a.png", _ramp(200, 300))
    _write(folder / "sub" / "b.jpg", (rng(0).random((700, 1000, 3)) * 255).astype(np.uint8))
    _write(folder / "sub" / "deeper" / "c.BMP", (rng(1).random((64, 80, 3)) * 255).astype(np.uint8))
    (folder / "notes.txt").write_text("not an image")
    (folder / "broken.png").write_bytes(b"this is no png")
    return folder


def test_photo_backgrounds_lists_and_skips(photo_folder):
    bank = PhotoBackgrounds(photo_folder)
    assert [p.relative_to(photo_folder).as_posix() for p in bank.files] == ["a.png", "sub/b.jpg", "sub/deeper/c.BMP"]
    assert len(bank) == 3 and bank.skipped == 1
    big = bank.image(1)
    assert big.dtype == np.uint8 and min(big.shape[:2]) == 512 and big.shape[1] == round(1000 * 512 / 700)
    assert bank.image(0).shape == (200, 300, 3)  # small photos are kept as they are
    assert "3 photos" in repr(bank)


def test_photo_crop_shape_determinism_and_flips(photo_folder):
    bank, again = PhotoBackgrounds(photo_folder), PhotoBackgrounds(photo_folder, cache_bytes=1)
    crops = [bank.crop(rng(s), 48) for s in range(30)]
    for crop in crops:
        assert crop.shape == (48, 48, 3) and crop.dtype == np.float32 and 0.0 <= crop.min() and crop.max() <= 1.0
    assert all(bank.crop(rng(s), 48).tobytes() == again.crop(rng(s), 48).tobytes() for s in range(30))
    assert len({c.tobytes() for c in crops}) >= 28
    # flips: on the ramp photo alone, the bright side is on the right unless flipped
    ramp_only = photo_folder.parent / "ramp"
    _write(ramp_only / "ramp.png", _ramp(120, 160))
    ramp = PhotoBackgrounds(ramp_only)
    flipped = [float(c[:, 0].mean() > c[:, -1].mean()) for c in (ramp.crop(rng(s), 32) for s in range(40))]
    assert 0.2 < np.mean(flipped) < 0.8
    assert ramp.crop(rng(0), 32)[..., 0].mean() > ramp.crop(rng(0), 32)[..., 2].mean()  # RGB order kept


def test_photo_backgrounds_pickle_without_cache(photo_folder):
    bank = PhotoBackgrounds(photo_folder)
    first = bank.crop(rng(7), 24)
    copy = pickle.loads(pickle.dumps(bank))
    assert copy._cached_bytes == 0 and copy.crop(rng(7), 24).tobytes() == first.tobytes()


def test_photo_decode_failure_falls_through(tmp_path):
    """A file whose header opens but whose pixels do not decode is skipped (counted) when first
    needed, and the next photo is used."""
    _write(tmp_path / "b.png", _ramp(50, 60))
    _write(tmp_path / "a.png", (rng(1).random((80, 90, 3)) * 255).astype(np.uint8))
    data = (tmp_path / "a.png").read_bytes()
    (tmp_path / "a.png").write_bytes(data[: len(data) // 3])
    bank = PhotoBackgrounds(tmp_path)
    assert len(bank) == 2 and bank.skipped == 0
    assert np.array_equal(bank.image(0), bank.image(1)) and bank.skipped == 1
    assert bank.crop(rng(0), 16).shape == (16, 16, 3)


def test_photo_backgrounds_errors(tmp_path):
    def error(folder) -> str:
        with pytest.raises(DataError) as info:
            PhotoBackgrounds(folder)
        message = str(info.value)
        assert "\n" not in message and str(folder) in message
        return message

    assert "does not exist" in error(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("x")
    assert "no image files" in error(empty)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.png").write_bytes(b"\x89PNG garbage")
    (bad / "y.jpg").write_bytes(b"")
    assert "no readable image (2 unreadable)" in error(bad)


# ------------------------------------------------------------------------------------ camera effects
def test_camera_effects_shape_dtype_determinism():
    images = test_images(4, 48, 64)
    a = camera_effects(images, [rng(s) for s in range(4)])
    b = camera_effects(images, [rng(s) for s in range(4)])
    c = camera_effects(images, [rng(s + 10) for s in range(4)])
    assert a.shape == images.shape and a.dtype == np.uint8
    assert a.tobytes() == b.tobytes() and a.tobytes() != c.tobytes()
    assert not np.array_equal(a, images)
    # a sample does not depend on its batch
    assert np.array_equal(camera_effects(images[2:3], [rng(2)])[0], a[2])


def test_strength_zero_is_identity_and_consumes_the_same_draws():
    images = test_images(3)
    rngs0, rngs1 = [rng(s) for s in range(3)], [rng(s) for s in range(3)]
    out = camera_effects(images, rngs0, strength=0.0)
    assert np.array_equal(out, images) and out is not images
    camera_effects(images, rngs1, strength=1.0)
    assert [r.random() for r in rngs0] == [r.random() for r in rngs1]


def test_neutral_effects_are_exact_identity():
    images = test_images(3)
    assert np.array_equal(only().apply(images, [rng(s) for s in range(3)]), images)


def test_strength_scales_the_change():
    images = test_images(6)
    diffs = [np.abs(camera_effects(images, [rng(s) for s in range(6)], strength=k).astype(int) - images).mean()
             for k in (0.25, 1.0)]
    assert 0 < diffs[0] < diffs[1]


def test_large_strength_stays_valid():
    images = test_images(8)
    out = camera_effects(images, [rng(s) for s in range(8)], strength=4.0)
    assert out.shape == images.shape and out.dtype == np.uint8
    draws = [CameraEffects().draw(rng(s), 64, strength=4.0) for s in range(200)]
    assert min(d.gamma for d in draws) > 0 and min(d.contrast for d in draws) >= 0
    assert all(d.jpeg_quality == 0 or 1 <= d.jpeg_quality <= 100 for d in draws)


def test_draw_order_does_not_depend_on_branches():
    """Every sample draws the same numbers in the same order whatever is applied."""
    a, b = CameraEffects(), CameraEffects(motion_blur=1.0, defocus=0.0, jpeg=1.0, noise=0.0)
    for seed in range(20):
        ra, rb = rng(seed), rng(seed)
        da, db = a.draw(ra, 128), b.draw(rb, 128)
        assert (da.white_balance, da.saturation, da.hue, da.contrast, da.brightness, da.gamma, da.noise_shot,
                da.noise_seed) == (db.white_balance, db.saturation, db.hue, db.contrast, db.brightness, db.gamma,
                                   db.noise_shot, db.noise_seed)
        assert db.motion_length > 0 and db.defocus_sigma == 0 and db.noise_std == 0 and db.jpeg_quality > 0
        if da.vignette:
            assert da.vignette == db.vignette
        assert ra.random() == rb.random()


def test_draw_probabilities_and_ranges():
    effects, n = CameraEffects(), 2000
    draws = [effects.draw(rng(s), 128) for s in range(n)]
    rate = lambda values: float(np.mean(np.asarray(values) > 0))
    assert abs(rate([d.motion_length for d in draws]) - 0.3) < 0.04
    assert abs(rate([d.defocus_sigma for d in draws]) - 0.2) < 0.04
    assert abs(rate([d.vignette for d in draws]) - 0.2) < 0.04
    assert abs(rate([d.noise_std for d in draws]) - 0.7) < 0.04
    assert abs(rate([d.jpeg_quality for d in draws]) - 0.5) < 0.04
    on = lambda key: np.array([getattr(d, key) for d in draws if getattr(d, key)])
    assert 3.0 <= on("motion_length").min() and on("motion_length").max() <= 9.0
    assert 30 <= on("jpeg_quality").min() and on("jpeg_quality").max() <= 95
    assert 1.0 / 255 <= on("noise_std").min() and on("noise_std").max() <= 8.0 / 255
    gamma = np.array([d.gamma for d in draws])
    assert 0.8 <= gamma.min() and gamma.max() <= 1.25
    # pixel sizes scale with the height
    assert effects.draw(rng(5), 256).defocus_sigma == pytest.approx(2 * effects.draw(rng(5), 128).defocus_sigma)
    assert len(rng(0).random(N_UNIFORMS)) == N_UNIFORMS


def test_jpeg_branch_changes_the_image():
    images = test_images(3)
    effects = only(jpeg=1.0)
    out = effects.apply(images, [rng(s) for s in range(3)])
    assert not np.array_equal(out, images)
    for i in range(3):
        draw = effects.draw(rng(i), images.shape[1])
        assert 30 <= draw.jpeg_quality <= 95
        assert np.array_equal(out[i], jpeg_roundtrip(images[i], draw.jpeg_quality))
        mse = np.mean((out[i].astype(float) - images[i]) ** 2)
        assert 10 * np.log10(255**2 / mse) > 20  # a compression, not a corruption
    red = np.zeros((1, 32, 32, 3), np.uint8)
    red[..., 0] = 200
    assert effects.apply(red, [rng(0)])[0, ..., 0].mean() > 150  # channel order kept


def _laplacian_variance(images) -> float:
    grey = images.astype(np.float64).mean(-1)
    return float(np.mean([ndimage.laplace(g).var() for g in grey]))


@pytest.mark.parametrize("kind", ["motion_blur", "defocus"])
def test_blur_reduces_high_frequencies(kind):
    images = (rng(0).random((4, 64, 64, 3)) * 255).astype(np.uint8)
    out = only(**{kind: 1.0}).apply(images, [rng(s) for s in range(4)])
    assert _laplacian_variance(out) < 0.5 * _laplacian_variance(images)


def test_motion_kernel():
    for length, angle in ((3.0, 0.0), (7.5, 33.0), (9.0, 90.0)):
        kernel = motion_kernel(length, angle)
        assert kernel.shape[0] == kernel.shape[1] and kernel.shape[0] % 2 == 1
        assert kernel.sum() == pytest.approx(1.0, abs=1e-5) and kernel.min() >= 0
    horizontal = motion_kernel(9.0, 0.0)
    assert horizontal[4].sum() > 0.8 and (horizontal[4] > 0).sum() >= 7
    assert motion_kernel(9.0, 90.0)[:, 4].sum() > 0.8


def test_sensor_noise_std_on_flat_image():
    for seed, level in ((0, 0.5), (1, 0.2)):
        effects = only(noise=1.0, noise_shot=(0.0, 0.0))
        image = np.full((1, 128, 128, 3), round(level * 255), np.uint8)
        draw = effects.draw(rng(seed), 128)
        out = effects.apply(image, [rng(seed)])
        measured = (out.astype(np.float64) - image).var()
        expected = (draw.noise_std * 255) ** 2 + 1 / 12  # plus the rounding to uint8
        assert measured == pytest.approx(expected, rel=0.08), (draw.noise_std * 255, measured, expected)


def test_sensor_noise_function():
    flat = np.full((256, 256, 3), 0.5, np.float32)
    noisy = sensor_noise(flat, 0.03, 0.0, rng(0))
    assert noisy.dtype == np.float32 and noisy.shape == flat.shape
    assert noisy.std() == pytest.approx(0.03, rel=0.02) and abs(noisy.mean() - 0.5) < 1e-3
    # Poisson-like: with shot = 1 the variance is proportional to the signal
    dark = sensor_noise(np.full_like(flat, 0.125), 0.03, 1.0, rng(1))
    assert dark.std() == pytest.approx(0.03 * 0.5, rel=0.03)
    assert sensor_noise(flat, 0.03, 0.0, rng(2)).tobytes() == sensor_noise(flat, 0.03, 0.0, rng(2)).tobytes()


def test_vignette_darkens_corners():
    image = np.full((1, 64, 64, 3), 200, np.uint8)
    out = only(vignette=1.0).apply(image, [rng(0)])[0].astype(float)
    assert out[32, 32].mean() > out[0, 0].mean() + 10


def test_colour_jitter_is_always_on_and_mild():
    images = test_images(8)
    effects = CameraEffects(motion_blur=0.0, defocus=0.0, vignette=0.0, noise=0.0, jpeg=0.0)
    out = effects.apply(images, [rng(s) for s in range(8)])
    diff = np.abs(out.astype(int) - images).mean(axis=(1, 2, 3))
    assert (diff > 0).all() and diff.max() < 40


def test_params_and_errors():
    params = CameraEffects().params()
    assert json.loads(json.dumps(params))["jpeg_quality"] == [30, 95]
    assert params["order"][-1] == "jpeg"
    images = test_images(2)
    with pytest.raises(MaskposeError, match="uint8"):
        camera_effects(images.astype(np.float32), [rng(0), rng(1)])
    with pytest.raises(MaskposeError, match="one generator per image"):
        camera_effects(images, [rng(0)])
    with pytest.raises(ConfigError, match="strength"):
        camera_effects(images, [rng(0), rng(1)], strength=-1.0)
    with pytest.raises(ConfigError, match="probability"):
        CameraEffects(jpeg=1.5)
    with pytest.raises(ConfigError, match="range"):
        CameraEffects(noise_std=(5.0, 1.0))
    with pytest.raises(ConfigError, match="jpeg_quality"):
        CameraEffects(jpeg_quality=(0, 50))


if __name__ == "__main__":  # throughput at 128 px (not a test)
    for name, make in GENERATORS.items():
        start = time.perf_counter()
        for s in range(200):
            make(rng(s), 128)
        print(f"{name}: {(time.perf_counter() - start) / 200 * 1e3:.2f} ms / image")
    batch = test_images(32, 128, 128)
    start = time.perf_counter()
    for k in range(10):
        camera_effects(batch, [rng(100 * k + i) for i in range(32)])
    print(f"camera_effects: {(time.perf_counter() - start) / 10 * 1e3:.1f} ms / batch of 32")

"""Tracks of a static-camera video: temporal smoothing of predictions (maskpose.data.tracks) and
people who merge into one foreground blob (the ``merged`` flag of maskpose.data.video).

The filters are checked on analytic signals (ramps for the lag, white noise for the variance
ratio, against the formulas of the module docstring); the merge on boxes given per frame and on
a small synthetic video where two people cross at the same height.
"""

import math

import cv2
import numpy as np
import pytest

from maskpose.data.dataset import MaskposeDataset, read_meta
from maskpose.data.tracks import (
    alpha_for_lag,
    centred_noise_ratio,
    centred_smooth,
    exponential_smooth,
    one_euro,
    one_euro_lag,
    smooth_track,
    smooth_tracks,
)
from maskpose.data.video import ExtractionConfig, extract_video, track_frames
from maskpose.errors import ConfigError, MaskposeError

# ------------------------------------------------------------------------------------------------
# filters


def ramp(T=200, J=17, slope=0.01):
    """``(T, J, 3)`` joints moving at ``slope`` metres per frame (each joint its own offset)."""
    t = np.arange(T, dtype=np.float64)[:, None, None]
    offset = np.random.default_rng(0).normal(0, 1, (1, J, 3))
    return offset + slope * t


def test_exponential_lag_is_as_documented():
    x = ramp()
    for lag in (1.0, 3.0, 7.0):
        alpha = alpha_for_lag(lag)
        assert (1 - alpha) / alpha == pytest.approx(lag)
        y = exponential_smooth(x, alpha)
        assert y.shape == x.shape
        # y_t = x_{t - lag} once the start-up transient (1 - alpha)^t has died out
        start = int(40 * (lag + 1))
        np.testing.assert_allclose(y[start:], x[start - int(lag):len(x) - int(lag)], atol=1e-6)
    assert np.array_equal(exponential_smooth(x, 1.0), x)  # alpha 1: no smoothing


def test_exponential_noise_variance_ratio():
    noise = np.random.default_rng(1).normal(0, 1, (20000, 2, 3))
    for alpha in (0.2, 0.5):
        y = exponential_smooth(noise, alpha)
        ratio = y[200:].var() / noise[200:].var()
        assert ratio == pytest.approx(alpha / (2 - alpha), rel=0.05)


def test_exponential_counts_a_gap_as_missing_steps():
    x = np.random.default_rng(2).normal(0, 1, (30, 3))
    frames = np.arange(30) * 2  # every other frame
    y = exponential_smooth(x, 0.3, frames)
    np.testing.assert_allclose(y, exponential_smooth(x, 1 - 0.7**2), atol=1e-12)


def test_one_euro_without_beta_is_the_documented_exponential():
    x = ramp()
    fps, cutoff = 25.0, 1.0
    y = one_euro(x, fps, min_cutoff=cutoff, beta=0.0)
    alpha = 1 / (1 + fps / (2 * math.pi * cutoff))
    np.testing.assert_allclose(y, exponential_smooth(x, alpha), atol=1e-12)
    lag = one_euro_lag(fps, cutoff)
    assert lag == pytest.approx(fps / (2 * math.pi))  # about 4 frames at 25 fps
    # the lag on the ramp, measured: x - y = slope * lag
    np.testing.assert_allclose((x - y)[150:], 0.01 * lag, atol=1e-6)


def test_one_euro_follows_fast_motion_and_smooths_rest():
    rng = np.random.default_rng(3)
    fps = 25.0
    still = 0.01 * rng.normal(0, 1, (2000, 17, 3))
    y = one_euro(still, fps, min_cutoff=1.0, beta=0.5)
    assert y[100:].var() / still[100:].var() < 0.4  # noise at rest reduced
    fast = ramp(slope=0.08)  # 2 m/s
    lag_beta = (fast - one_euro(fast, fps, 1.0, beta=0.5))[100:].mean() / 0.08
    lag_plain = (fast - one_euro(fast, fps, 1.0, beta=0.0))[100:].mean() / 0.08
    assert lag_beta < 0.5 * lag_plain and lag_plain == pytest.approx(one_euro_lag(fps, 1.0), rel=1e-3)


def test_centred_has_no_lag_and_the_documented_noise_ratio():
    x = ramp()
    sigma = 3.0
    y = centred_smooth(x, sigma)
    edge = int(3 * sigma)
    np.testing.assert_allclose(y[edge:-edge], x[edge:-edge], atol=1e-9)  # a linear signal passes unchanged
    noise = np.random.default_rng(4).normal(0, 1, (20000, 3))
    ratio = centred_smooth(noise, sigma)[50:-50].var() / noise[50:-50].var()
    assert ratio == pytest.approx(centred_noise_ratio(sigma), rel=0.05)
    assert centred_noise_ratio(sigma) == pytest.approx(1 / (2 * sigma * math.sqrt(math.pi)), rel=0.02)
    # gaps: the weights follow the frame distance
    frames = np.array([0, 1, 2, 10, 11, 12])
    values = np.arange(6, dtype=float)[:, None]
    w = np.exp(-0.5 * ((frames[:3] - 1) / 2.0) ** 2)  # frame 10 is beyond 3 sigma of frame 1
    assert centred_smooth(values, 2.0, frames)[1, 0] == pytest.approx((w @ values[:3, 0]) / w.sum())


def test_smooth_tracks_filters_each_track_in_frame_order():
    rng = np.random.default_rng(5)
    T = 60
    truth = np.sin(np.arange(T) / 8.0)[:, None, None] * np.ones((1, 17, 3))
    a, b = truth + 0.05 * rng.normal(size=truth.shape), -truth + 0.05 * rng.normal(size=truth.shape)
    values = np.concatenate([a, b])
    track = np.repeat([0, 1], T)
    frame = np.concatenate([np.arange(T), np.arange(T)])
    order = rng.permutation(2 * T)  # any order in, the same order out
    out = smooth_tracks(values[order], track[order], frame[order], method="centred", sigma=2.0)
    assert out.shape == (2 * T, 17, 3)
    back = np.empty_like(out)
    back[order] = out
    np.testing.assert_allclose(back[:T], centred_smooth(a, 2.0), atol=1e-12)
    np.testing.assert_allclose(back[T:], centred_smooth(b, 2.0), atol=1e-12)
    # closer to the truth than the raw predictions, away from the ends (one-sided windows there)
    inner = slice(6, T - 6)
    assert np.abs(back[:T] - truth)[inner].mean() < 0.7 * np.abs(a - truth)[inner].mean()
    for method in ("exponential", "one-euro"):
        assert smooth_tracks(values, track, frame, method=method).shape == values.shape
    assert np.array_equal(smooth_track(a, "exponential", alpha=0.5), exponential_smooth(a, 0.5))


def test_filters_refuse_bad_input():
    x = np.zeros((5, 3))
    with pytest.raises(ConfigError, match="unknown smoothing method"):
        smooth_track(x, "kalman")
    with pytest.raises(ConfigError, match="takes"):
        smooth_track(x, "centred", alpha=0.3)
    with pytest.raises(ConfigError, match="alpha"):
        exponential_smooth(x, 0.0)
    with pytest.raises(MaskposeError, match="NaN"):
        centred_smooth(np.full((5, 3), np.nan), 1.0)
    with pytest.raises(MaskposeError, match="strictly increasing"):
        exponential_smooth(x, 0.5, frames=[0, 1, 1, 2, 3])
    with pytest.raises(MaskposeError, match="appears twice"):
        smooth_tracks(x, [0, 0, 0, 1, 1], [0, 1, 1, 0, 1])


# ------------------------------------------------------------------------------------------------
# merged blobs


def crossing_boxes(T=40, meet=(16, 24)):
    """Two people 12 px wide walking towards each other at the same height; from frame ``meet[0]``
    to ``meet[1] - 1`` they are one blob (the union box), then two again, having swapped sides."""
    frames = []
    for t in range(T):
        xa, xb = 10 + 3 * t, 130 - 3 * t
        a, b = (xa, 40, xa + 12, 80), (xb, 40, xb + 12, 80)
        if meet[0] <= t < meet[1]:
            frames.append([(min(a[0], b[0]), 40, max(a[2], b[2]), 80)])
        else:
            frames.append([a, b])
    return frames


def test_merged_blob_is_marked_and_both_people_keep_their_tracks():
    config = ExtractionConfig(min_track_length=1)
    tracks = track_frames(crossing_boxes(), config)
    assert len(tracks) == 2, [t.frames for t in tracks]  # no third track after the split
    for track in tracks:
        merged_frames = [f for f, m in zip(track.frames, track.merged) if m]
        assert all(16 <= f < 24 for f in merged_frames)
        xs = np.array([(b[0] + b[2]) / 2 for b, m in zip(track.boxes, track.merged) if not m])
        direction = np.sign(np.diff(xs))
        assert (direction == direction[0]).all()  # each track follows one person through the crossing
        assert track.frames[-1] == 39
    # in every frame of the merge the blob goes to one track, flagged; the other person is hidden, not fused
    for f in range(16, 24):
        entries = [m for t in tracks for g, m in zip(t.frames, t.merged) if g == f]
        assert entries == [True]

    # without the hold, the hidden track dies during a long merge and a new one starts after it
    short = track_frames(crossing_boxes(meet=(12, 28)), ExtractionConfig(min_track_length=1, merge_hold=0))
    assert len(short) == 3
    held = track_frames(crossing_boxes(meet=(12, 28)), config)
    assert len(held) == 2


def test_area_jump_marks_a_blob_without_a_second_track():
    """A person joined by someone arriving from behind (never tracked alone): the box doubles."""
    frames = [[(40 + t, 30, 54 + t, 80)] for t in range(10)]
    frames += [[(40 + t, 30, 72 + t, 80)] for t in range(10, 16)]  # twice as wide
    frames += [[(40 + t, 30, 54 + t, 80)] for t in range(16, 24)]
    (track,) = track_frames(frames, ExtractionConfig(min_track_length=1))
    assert [f for f, m in zip(track.frames, track.merged) if m] == list(range(10, 16))
    # a person walking towards the camera grows slowly: never flagged
    growing = [[(40, 30 - t, 54 + t // 3, 80 + t)] for t in range(30)]
    (track,) = track_frames(growing, ExtractionConfig(min_track_length=1))
    assert not any(track.merged)


def crossing_video(T=48, size=(120, 160), seed=0):
    """Two figures walking towards each other at the same height over a textured background with
    sensor noise; they touch (one blob) for a few frames in the middle. Returns the frames and,
    per frame, whether they touch."""
    rng = np.random.default_rng(seed)
    h, w = size
    base = cv2.resize(rng.normal(0, 1, (h // 4, w // 4, 3)), (w, h), interpolation=cv2.INTER_CUBIC)
    background = 140 + 30 * base
    frames, overlap = [], []
    yy, xx = np.mgrid[0:h, 0:w]
    for t in range(T):
        frame = background.copy()
        xa, xb = 8 + 3 * t, w - 22 - 3 * t
        a = (xx >= xa) & (xx < xa + 14) & (yy >= 40) & (yy < 90)
        b = (xx >= xb) & (xx < xb + 14) & (yy >= 40) & (yy < 90)
        frame[a] = [40, 40, 120]
        frame[b] = [120, 40, 40]
        overlap.append(abs(xa - xb) - 14 <= 6)  # touching: a gap the mask closing (radius 3) bridges
        frames.append(np.clip(frame + rng.normal(0, 2, frame.shape), 0, 255).astype(np.uint8))
    return np.stack(frames), np.array(overlap)


def test_extraction_writes_the_merged_flag(tmp_path):
    frames, overlap = crossing_video()
    config = ExtractionConfig(warmup=10, min_area=50, min_track_length=5)
    result = extract_video(frames, tmp_path / "crops", config)
    data = MaskposeDataset(tmp_path / "crops")
    assert "merged" in data.fields
    merged = np.asarray(data.arrays["merged"]).astype(bool)
    frame = np.asarray(data.arrays["frame_index"])
    assert merged.any() and result.merged_samples == merged.sum()
    assert read_meta(tmp_path / "crops")["attrs"]["merged_samples"] == int(merged.sum())
    # flagged samples lie where the two figures touch; the rest are single people
    assert overlap[frame[merged]].all()
    assert not merged[~overlap[frame]].any()
    assert len(result.tracks) == 2


def test_crop_box_smoothing_keeps_a_short_track_its_length():
    """A track of 2 to window-1 boxes keeps one box per detection (the window shrinks to fit)."""
    from maskpose.data.video import smooth

    for n in (2, 3, 4):
        values = np.arange(n * 3, dtype=float).reshape(n, 3)
        out = smooth(values, 9)
        assert out.shape == values.shape
        assert np.allclose(out[(n - 1) // 2], values[: 2 * ((n - 1) // 2) + 1].mean(0))  # the widest centred mean
    ramp = np.arange(20, dtype=float)[:, None]
    assert np.allclose(smooth(ramp, 5)[2:-2], ramp[2:-2])  # a centred mean keeps a ramp

"""The synthetic static-camera sequence (maskpose.synth.video, ``maskpose masks synth-video``)
and the video paths of ``maskpose adapt --video`` and ``maskpose predict --video``.

One small sequence (40 frames, 320x240, one person) is rendered once through the CLI and shared:
it measures the extraction IoU and feeds the end-to-end runs of adapt and predict with a tiny
model trained for two steps.
"""

import json
import math
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from maskpose.cli import app
from maskpose.conventions import seed_sequence
from maskpose.data.dataset import MaskposeDataset
from maskpose.data.video import count_frames
from maskpose.synth.scene import pitch_rotation
from maskpose.synth.video import load_ground_truth, render_frames

FRAMES, WIDTH, HEIGHT, WARMUP = 40, 320, 240, 10


def decode(path):
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame[..., ::-1])
    cap.release()
    return np.stack(frames)



@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    """The CLI's synthetic video (and its printed report), rendered once for the module."""
    out = tmp_path_factory.mktemp("synth")
    result = CliRunner().invoke(app, [
        "masks", "synth-video", "--out", str(out), "--frames", str(FRAMES), "--people", "1", "--seed", "0",
        "--res", f"{WIDTH}x{HEIGHT}", "--method", "knn", "--no-shadows", "--warmup", str(WARMUP)])
    assert result.exit_code == 0, result.output
    return out / "video.mp4", result.stdout


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny mesh-head model, pretrained two steps on eight synthetic samples."""
    from maskpose.models.regressor import ModelConfig
    from maskpose.synth.generator import generate
    from maskpose.train.config import TrainConfig
    from maskpose.train.loop import train

    root = tmp_path_factory.mktemp("tiny")
    data = generate(root / "data", n=8, res=64, seed=0, split="train")
    result = train(TrainConfig(mode="pretrain", data=str(data), steps=2, batch_size=4, out=str(root / "run"),
                               model=ModelConfig(resolution=64, width=8, hidden=32)), progress=False)
    return result.checkpoint


# ------------------------------------------------------------------------------------------------
# the sequence


def test_ground_truth_masks_are_exactly_the_rendered_bodies(body):
    """Without flicker and noise, pixels outside the masks are the static scene, bit for bit, in every
    frame; inside they are the bodies (nearly all differ from the scene); two people at different
    depths both appear, labelled 1 and 2, and the nearer one hides the other where they overlap."""
    frames, masks, info = render_frames(frames=24, people=2, res=(160, 120), seed=3, flicker=0.0, noise=0.0,
                                        body=body)
    assert frames.shape == (24, 120, 160, 3) and frames.dtype == np.uint8
    assert masks.shape == (24, 120, 160) and masks.dtype == np.uint8
    assert set(np.unique(masks)) == {0, 1, 2}
    scene = np.clip(np.round(info["background"] * 255), 0, 255).astype(np.uint8)
    outside = masks == 0
    assert np.array_equal(frames[outside], np.broadcast_to(scene, frames.shape)[outside])
    inside = ~outside
    differs = np.abs(frames.astype(int) - scene.astype(int)).sum(-1) > 0
    assert differs[inside].mean() > 0.97
    # both people visible in (nearly) every frame, person 0 (nearer) larger on average
    visible = np.stack([(masks == k).any((1, 2)) for k in (1, 2)])
    assert visible.mean(1).min() >= 0.9
    assert (masks == 1).sum() > (masks == 2).sum()
    # they walk in opposite directions: the mask centroids move apart in x
    xs = [[np.nonzero(m == k)[1].mean() for m in masks if (m == k).any()] for k in (1, 2)]
    assert np.sign(xs[0][-1] - xs[0][0]) == -np.sign(xs[1][-1] - xs[1][0])
    assert abs(xs[0][-1] - xs[0][0]) > 0.5 * 160
    # boxes match the masks
    for t in (0, 12, 23):
        for k in (0, 1):
            ys, xx = np.nonzero(masks[t] == k + 1)
            if len(xx):
                assert tuple(info["boxes"][t, k]) == (xx.min(), ys.min(), xx.max() + 1, ys.max() + 1)


def test_rendering_is_deterministic_and_flickers(body):
    a, ma, ia = render_frames(frames=6, people=1, res=(96, 72), seed=5, body=body)
    b, mb, _ = render_frames(frames=6, people=1, res=(96, 72), seed=5, body=body)
    _, _, ic = render_frames(frames=6, people=1, res=(96, 72), seed=6, body=body)
    assert np.array_equal(a, b) and np.array_equal(ma, mb)
    assert np.all(np.abs(ia["gain"] - 1) <= 0.05 + 1e-6) and np.ptp(ia["gain"]) > 0.02
    # The gains by hand from the light stream of (seed, 0x5EC0): one appearance seed per person,
    # then the period, the phase and the jitter of the flicker.
    for seed, info in ((5, ia), (6, ic)):
        light = np.random.default_rng(seed_sequence(seed, 0x5EC0).spawn(4)[2])
        light.integers(0, 2**62, size=1)
        period, phase = light.uniform(9.0, 17.0), light.uniform(0, 2 * math.pi)
        wave = 0.7 * np.sin(2 * math.pi * np.arange(6) / period + phase) + 0.3 * light.uniform(-1, 1, 6)
        np.testing.assert_array_equal(info["gain"], (1.0 + 0.05 * np.clip(wave, -1, 1)).astype(np.float32))


def test_video_reads_back_and_ground_truth_is_saved(synth):
    video, _ = synth
    assert count_frames(video) == FRAMES
    frames = decode(video)
    assert frames.shape == (FRAMES, HEIGHT, WIDTH, 3)
    masks, meta = load_ground_truth(video)
    assert masks.shape == (FRAMES, HEIGHT, WIDTH) and masks.dtype == np.uint8
    assert meta["frames"] == FRAMES and meta["size"] == [WIDTH, HEIGHT] and meta["fourcc"] == "mp4v"
    assert meta["people"][0]["clip"] == "procedural-walk" and 4.0 <= meta["people"][0]["depth_m"] <= 5.0
    # the person is 3-8 m away and of plausible size: 80-130 px tall at 240 px
    heights = [np.ptp(np.nonzero(m)[0]) + 1 for m in masks if m.any()]
    assert len(heights) == FRAMES and 80 <= np.median(heights) <= 130
    # the decoded video shows the body where the mask says: body pixels differ from the scene more
    background = np.median(frames, axis=0)
    change = np.abs(frames - background).sum(-1)
    assert change[masks > 0].mean() > 4 * change[masks == 0].mean()


def test_extraction_iou_on_the_synthetic_sequence(synth):
    """Acceptance: mean extraction IoU after warm-up >= 0.85 (KNN, no shadow detection)."""
    _, stdout = synth
    match = re.search(r"extraction IoU \(knn, shadows off, warm-up 10\): mean ([0-9.]+), min ([0-9.]+)", stdout)
    assert match, stdout
    mean, low = float(match.group(1)), float(match.group(2))
    assert mean >= 0.85, stdout
    assert low >= 0.7, stdout
    assert f"over {FRAMES - WARMUP} frames" in stdout


def test_synth_video_with_mocap_clips(tmp_path, body):
    from maskpose.synth.video import render_static_camera_sequence

    mocap = Path(__file__).parent / "data" / "mocap"
    video, masks, meta = render_static_camera_sequence(tmp_path / "v.avi", frames=12, people=2, clips=mocap,
                                                       res=(96, 72), seed=0, body=body)
    assert count_frames(video) == 12 and meta["fourcc"] == "FMP4"
    assert {p["clip"] for p in meta["people"]} <= {"cmu_131_01_40fps", "humanoid3d_walk", "humanoid3d_backflip"}
    assert (masks > 0).any((1, 2)).all()


def test_elevated_camera_and_people_walking_in_depth(body, tmp_path):
    """A camera pitched down 30 degrees, 3.5 m up, two people walking 2 m in depth: the truth is in
    the pitched camera's frame (the joints project onto each person's visible mask, the lowest
    vertex lies on the floor n . X = h, the body rebuilds the joints), the pelvis walks the
    requested depth in the level frame, the defaults leave the scene level, and the CLI takes the
    flags (bad values: one error line)."""
    pitch, h, walk = 30.0, 3.5, 2.0
    video, masks, info = render_frames(frames=6, people=2, res=(160, 120), seed=3, body=body, noise=0.0,
                                       flicker=0.0, pitch_deg=pitch, camera_height=h, depth_walk=walk)
    a = math.radians(pitch)
    normal = np.array([0.0, math.cos(a), math.sin(a)])
    assert np.allclose(info["camera"]["ground_normal"], normal) and info["camera"]["pitch_deg"] == pitch
    J, K = info["joints3d"].astype(np.float64), info["K"].astype(np.float64)
    uv = J[..., :2] / J[..., 2:] * K[0, 0] + K[:2, 2]
    hits, inside = [], 0
    for t in range(6):
        for k in range(2):
            for x, y in uv[t, k]:
                xi, yi = int(round(x)), int(round(y))
                if 0 <= xi < 160 and 0 <= yi < 120:
                    inside += 1
                    hits.append(masks[t, yi, xi] == k + 1)
    assert inside > 0.9 * 6 * 2 * 17 and np.mean(hits) > 0.75  # occlusion by the other person aside
    with torch.no_grad():
        out = body(torch.from_numpy(info["pose"].reshape(12, 18, 6)), torch.from_numpy(info["phenotypes"]).repeat(6, 1))
    trans = info["translation"].reshape(12, 1, 3).astype(np.float64)
    vertices = out.vertices.numpy().astype(np.float64) + trans
    np.testing.assert_allclose((vertices @ normal).max(1), h, atol=1e-4)  # standing on the floor
    np.testing.assert_allclose(out.joints.numpy() + trans, J.reshape(12, 17, 3), atol=1e-4)
    level = info["translation"].astype(np.float64) @ pitch_rotation(pitch)  # rows: R^T t, the level frame
    np.testing.assert_allclose(level[-1, :, 2] - level[0, :, 2], [walk, -walk], atol=1e-3)
    assert np.ptp(level[:, :, 1]) < 0.1  # the pelvis keeps its height above the floor
    assert [p["depth_path_m"][1] - p["depth_path_m"][0] for p in info["people"]] == pytest.approx([walk, -walk])
    assert (masks > 0).any((1, 2)).all()
    _, _, level_info = render_frames(frames=2, people=1, res=(64, 48), seed=3, body=body)
    assert "pitch_deg" not in level_info["camera"] and "depth_path_m" not in level_info["people"][0]
    runner = CliRunner()
    result = runner.invoke(app, ["masks", "synth-video", "--out", str(tmp_path / "v"), "--frames", "3", "--res",
                                 "64x48", "--pitch", "20", "--camera-height", "3", "--depth-walk", "1", "--no-iou"])
    assert result.exit_code == 0, result.output
    assert "camera 20 deg down, 3 m up; people walk 1 m in depth" in result.stdout
    assert json.loads((tmp_path / "v" / "video_meta.json").read_text())["camera"]["pitch_deg"] == 20.0
    for flags, message in ((["--pitch", "95"], "pitch must be 0 to 80"), (["--depth-walk", "9"], "depth walk")):
        result = runner.invoke(app, ["masks", "synth-video", "--out", str(tmp_path / "w"), "--frames", "3",
                                     "--res", "64x48", "--no-iou", *flags])
        errors = [line for line in result.output.replace("\r", "\n").splitlines() if line.startswith("error:")]
        assert result.exit_code != 0 and len(errors) == 1 and message in errors[0] and "Traceback" not in result.output


# ------------------------------------------------------------------------------------------------
# adapt --video, predict --video


@pytest.mark.slow
def test_adapt_from_a_video(synth, checkpoint, tmp_path):
    video, _ = synth
    out = tmp_path / "adapted"
    args = ["adapt", "--init", str(checkpoint), "--video", str(video), "--out", str(out), "--steps", "2",
            "--batch-size", "4", "--warmup", str(WARMUP)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "extracted person crops and masks" in result.stdout and "trained 2 steps" in result.stdout
    data = MaskposeDataset(out / "extracted")
    assert {"image", "mask", "frame_index", "track_id", "crop_box"} <= set(data.fields)
    assert data.resolution == (64, 64) and FRAMES - 2 <= len(data) <= FRAMES
    assert (out / "checkpoint.pt").exists()
    again = CliRunner().invoke(app, args)  # the same video and settings: the crops are reused
    assert again.exit_code == 0, again.output
    assert "reusing person crops" in again.stdout


@pytest.mark.slow
def test_predict_on_a_video(synth, checkpoint, tmp_path):
    import trimesh

    video, _ = synth
    out = tmp_path / "overlay.mp4"
    result = CliRunner().invoke(app, ["predict", str(checkpoint), "--video", str(video), "--out", str(out),
                                      "--ply-dir", str(tmp_path / "ply"), "--warmup", str(WARMUP)])
    assert result.exit_code == 0, result.output
    frames = decode(out)
    assert frames.shape == (FRAMES, HEIGHT, WIDTH, 3)
    # the overlay changes the source frames only around the person
    source = decode(video).astype(int)
    masks, _ = load_ground_truth(video)
    changed = np.abs(frames.astype(int) - source).sum(-1) > 60
    assert changed.any()
    json_dir = tmp_path / "overlay_json"
    files = sorted(json_dir.glob("frame_*.json"))
    assert len(files) == FRAMES
    counts = []
    raw, smoothed, merged = [], [], []
    for i, file in enumerate(files):
        record = json.loads(file.read_text())
        assert record["frame"] == i
        counts.append(len(record["people"]))
        for person in record["people"]:
            assert person["track_id"] == 0 and isinstance(person["merged"], bool)
            merged.append(person["merged"])
            assert np.asarray(person["joints3d_m"]).shape == (17, 3)
            raw.append(person["joints3d_m"])
            smoothed.append(person["joints3d_smoothed_m"])
            assert np.asarray(person["joints2d_px"]).shape == (17, 2)
            x0, y0, x1, y1 = person["crop_box"]
            assert x1 - x0 == y1 - y0 > 0
            # the crop box holds the person's ground-truth mask centre
            ys, xs = np.nonzero(masks[i])
            assert x0 <= xs.mean() <= x1 and y0 <= ys.mean() <= y1
            # 3D joints project with the crop camera onto the reported 2D joints
            K = np.asarray(person["crop_camera_K"])
            joints = np.asarray(person["joints3d_m"])
            uv = joints[:, :2] / joints[:, 2:] * K[[0, 1], [0, 1]] + K[:2, 2]
            np.testing.assert_allclose(uv, person["joints2d_px"], atol=0.05)
    assert max(counts) == 1 and sum(counts) >= FRAMES - 2
    # the smoothed joints: the track's causal exponential filter of the raw ones (frames in order)
    from maskpose.apps.predict import VIDEO_SMOOTHING_LAG
    from maskpose.data.tracks import alpha_for_lag, exponential_smooth

    frames_seen = [i for i, c in enumerate(counts) for _ in range(c)]
    expected = exponential_smooth(np.asarray(raw), alpha_for_lag(VIDEO_SMOOTHING_LAG), frames=frames_seen)
    np.testing.assert_allclose(np.asarray(smoothed), expected, atol=2e-5)
    assert np.abs(np.diff(smoothed, axis=0)).mean() < np.abs(np.diff(raw, axis=0)).mean()
    print(f"merged crops of the one person: {sum(merged)} of {len(merged)}")
    plys = sorted((tmp_path / "ply").glob("*.ply"))
    assert len(plys) == sum(counts)
    mesh = trimesh.load(plys[0], process=False)
    assert mesh.vertices.shape[0] > 10_000 and len(mesh.faces) > 10_000
    assert re.match(r"frame_\d{6}_track0\.ply", plys[0].name)


@pytest.mark.parametrize("case", ["no-target", "both-targets", "unreadable-adapt", "unreadable-predict",
                                  "no-input"])
def test_bad_video_input_gives_one_error_line(case, checkpoint, tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_text("not a video\n" * 20)
    out = tmp_path / "out"
    args, expected = {
        "no-target": (["adapt", "--init", str(checkpoint), "--out", str(out)], "--data DATASET or --video VIDEO"),
        "both-targets": (["adapt", "--init", str(checkpoint), "--out", str(out), "--data", str(tmp_path),
                          "--video", str(broken)], "not both"),
        "unreadable-adapt": (["adapt", "--init", str(checkpoint), "--out", str(out), "--video", str(broken)],
                             "cannot open"),
        "unreadable-predict": (["predict", str(checkpoint), "--video", str(broken), "--out", str(tmp_path / "o.mp4")],
                               "cannot open"),
        "no-input": (["predict", str(checkpoint), "--out", str(out)], "--input PATH"),
    }[case]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], result.stderr
    assert not (out / "checkpoint.pt").exists()

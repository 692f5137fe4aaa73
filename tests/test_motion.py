"""Motion library: BVH / DeepMimic reading, retargeting onto Anny by bone directions, sampling.

Test clips live in tests/data/mocap (see the LICENSE.md there); nothing here reads ../shared.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from maskpose.body.deepmimic import read_deepmimic
from maskpose.body.limits import ADULT_PHENOTYPE_RANGE, PHENOTYPE_LABELS
from maskpose.body.motion import (
    ANNY_LIMB_JOINTS,
    LIMBS,
    MOCAP_KEYPOINTS,
    MotionLibrary,
    load_clip,
    mocap_to_anny_axes,
)
from maskpose.body.rotations import identity_sixd, sixd_to_rotmat
from maskpose.errors import DataError, MaskposeError

DATA = Path(__file__).parent / "data" / "mocap"
CMU = DATA / "cmu_131_01_40fps.bvh"
WALK = DATA / "humanoid3d_walk.txt"
BACKFLIP = DATA / "humanoid3d_backflip.txt"
K = {name: i for i, name in enumerate(MOCAP_KEYPOINTS)}
# H36M-17 joints that are bone heads (all but the head top, index 10).
BONE_JOINTS = [i for i in range(17) if i != 10]



@pytest.fixture(scope="module")
def clips():
    out = {}
    for path in (CMU, WALK, BACKFLIP):
        start = time.perf_counter()
        clip = load_clip(path)
        print(f"{path.name}: {len(clip)} frames retargeted in {time.perf_counter() - start:.2f} s")
        out[path.name] = clip
    return out


def _anny_joints(body, clip):
    with torch.no_grad():
        out = body(clip.pose, torch.full((len(clip), 6), 0.5), clip.translation)
    return out.joints.double().numpy()


def _angles(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    cos = (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def _limb_agreement(joints: np.ndarray, keypoints: np.ndarray) -> dict[str, float]:
    """Per limb: fraction of frames whose Anny bone is within 3 degrees of the mocap bone."""
    share = {}
    for name, (a, b) in LIMBS.items():
        i, j = ANNY_LIMB_JOINTS[name]
        angle = _angles(joints[:, j] - joints[:, i], keypoints[:, K[b]] - keypoints[:, K[a]])
        share[name] = float((angle < 3.0).mean())
    return share


@pytest.mark.parametrize("name", [CMU.name, WALK.name, BACKFLIP.name])
def test_retargeted_limbs_follow_mocap_directions(body, clips, name):
    clip = clips[name]
    joints = _anny_joints(body, clip)
    share = _limb_agreement(joints, clip.keypoints)
    print(name, "limbs within 3 deg:", {k: f"{100 * v:.1f}%" for k, v in share.items()})
    assert all(v >= 0.95 for v in share.values()), share

    # The test can fail: Anny at rest (same root, no limb retargeting) does not pass it.
    rest = clip.pose.clone()
    rest[:, 1:] = identity_sixd(len(clip), 17)
    with torch.no_grad():
        rest_joints = body(rest, torch.full((len(clip), 6), 0.5), clip.translation).joints.double().numpy()
    assert min(_limb_agreement(rest_joints, clip.keypoints).values()) < 0.5

    # The Anny pelvis sits on the mocap mid-hip (translation), hip lines agree.
    mocap_mid = 0.5 * (clip.keypoints[:, K["l_hip"]] + clip.keypoints[:, K["r_hip"]])
    np.testing.assert_allclose(0.5 * (joints[:, 1] + joints[:, 4]), mocap_mid, atol=2e-3)
    hip_error = _angles(joints[:, 4] - joints[:, 1], clip.keypoints[:, K["l_hip"]] - clip.keypoints[:, K["r_hip"]])
    assert np.percentile(hip_error, 95) < 5.0


def test_analytic_forward_kinematics_matches_anny(body, clips):
    """The retargeting's own forward kinematics (used for pose distances) agrees with Anny's."""
    clip = clips[CMU.name]
    joints = _anny_joints(body, clip)[:, BONE_JOINTS]
    ours = clip.joints.double().numpy()

    def pairwise(x):
        return np.linalg.norm(x[:, :, None] - x[:, None, :], axis=-1)

    np.testing.assert_allclose(pairwise(ours), pairwise(joints), atol=2e-3)
    # Features are pelvis-centred with the heading removed.
    np.testing.assert_allclose(ours[:, 0], 0.0, atol=1e-6)
    left_hip = ours[:, 4] - ours[:, 1]
    assert np.abs(left_hip[:, 2]).max() < 1e-5  # hip line in the camera's x-y plane


def test_cmu_clip_shapes_and_orientation(clips):
    clip = clips[CMU.name]
    assert clip.pose.shape == (332, 18, 6) and clip.pose.dtype == torch.float32
    assert clip.translation.shape == (332, 3)
    assert clip.fps == pytest.approx(40.0, rel=1e-3)
    assert torch.isfinite(clip.pose).all() and torch.isfinite(clip.translation).all()
    # Upright in the camera frame (y down): head above the pelvis, pelvis above the floor (y = 0;
    # the subject crouches at times) and at standing height in the first frame.
    kp = clip.keypoints
    assert (kp[:, K["head"], 1] < kp[:, K["pelvis"], 1] - 0.2).all()
    assert (clip.translation[:, 1] < -0.3).all() and -1.0 < float(clip.translation[0, 1]) < -0.8
    # The rotations are proper: 6D -> matrix -> det 1.
    assert torch.allclose(torch.det(sixd_to_rotmat(clip.pose)), torch.ones(332, 18), atol=1e-4)


def test_deepmimic_field_layout():
    """Limb lengths constant, feet on (not under) the floor, axes as documented."""
    for path in (WALK, BACKFLIP):
        points, rest, fps = read_deepmimic(path, MOCAP_KEYPOINTS)
        assert fps == pytest.approx(30.0 if path == WALK else 16.0, rel=0.01)
        for a, b in list(LIMBS.values()) + [("l_hip", "r_hip"), ("l_shoulder", "r_shoulder"), ("spine", "thorax")]:
            length = np.linalg.norm(points[:, K[b]] - points[:, K[a]], axis=-1)
            assert length.std() < 1e-9 and length.mean() > 0.05, (path.name, a, b)
        # Y up, +X forward, +Z the character's right -> Anny X = -Z, Y = -X, Z = Y.
        np.testing.assert_array_equal(mocap_to_anny_axes(rest), [[0, 0, -1], [-1, 0, 0], [0, 1, 0]])
    points, _, _ = read_deepmimic(WALK, MOCAP_KEYPOINTS)
    # Walking: some ankle always close to the floor, none below it (the sole is 5 cm under it).
    lowest = np.minimum(points[:, K["l_ankle"], 1], points[:, K["r_ankle"], 1])
    assert lowest.min() > 0.03 and lowest.max() < 0.15, (lowest.min(), lowest.max())


def test_deepmimic_wrong_layout_rejected(tmp_path):
    data = json.loads(WALK.read_text())
    # Move the right knee angle after the right ankle quaternion: still 44 values a frame.
    data["Frames"] = [f[:20] + f[21:25] + [f[20]] + f[25:] for f in data["Frames"]]
    bad = tmp_path / "shifted.txt"
    bad.write_text(json.dumps(data))
    with pytest.raises(DataError, match="shifted.txt.*layout"):
        load_clip(bad)
    short = tmp_path / "short.txt"
    short.write_text(json.dumps({"Loop": "wrap", "Frames": [f[:43] for f in json.loads(WALK.read_text())["Frames"]]}))
    with pytest.raises(DataError, match="short.txt.*43 values"):
        load_clip(short)


@pytest.fixture(scope="module")
def library():
    return MotionLibrary(DATA)


def test_library_loads_folder_and_iterates(library):
    assert len(library) == 3
    assert sorted(c.name for c in library) == ["cmu_131_01_40fps", "humanoid3d_backflip", "humanoid3d_walk"]
    assert library.num_frames == 332 + 39 + 29
    assert MotionLibrary([WALK, str(BACKFLIP)]).num_frames == 39 + 29
    assert len(MotionLibrary(CMU, stride=4).clips[0]) == 83


def test_sampling_is_seeded_and_spread(library):
    pose, phenotypes = library.sample(40, seed=3, min_pose_difference=0.05)
    again = library.sample(40, seed=3, min_pose_difference=0.05)
    assert pose.shape == (40, 18, 6) and phenotypes.shape == (40, 6)
    assert torch.equal(pose, again[0]) and torch.equal(phenotypes, again[1])
    assert not torch.equal(pose, library.sample(40, seed=4, min_pose_difference=0.05)[0])
    for k, label in enumerate(PHENOTYPE_LABELS):
        low, high = ADULT_PHENOTYPE_RANGE[label]
        assert (phenotypes[:, k] >= low).all() and (phenotypes[:, k] <= high).all()

    frames = library.sample_frames(40, seed=3, min_pose_difference=0.05)
    assert len(set(frames)) == 40
    features = np.stack([library.clips[c].joints[f].numpy() for c, f in frames])
    gaps = np.linalg.norm(features[:, None] - features[None], axis=-1).mean(-1)
    gaps[np.diag_indices(40)] = np.inf
    print("smallest pose difference among samples:", gaps.min())
    assert gaps.min() >= 0.05
    chosen = torch.stack([library.clips[c].pose[f] for c, f in frames])
    assert torch.equal(chosen, pose)
    # Without the minimum difference, near-duplicates do get drawn (the constraint is doing work).
    loose = library.sample_frames(150, seed=3, min_pose_difference=0.0)
    loose_features = np.stack([library.clips[c].joints[f].numpy() for c, f in loose])
    loose_gaps = np.linalg.norm(loose_features[:, None] - loose_features[None], axis=-1).mean(-1)
    loose_gaps[np.diag_indices(150)] = np.inf
    assert loose_gaps.min() < 0.05

    with pytest.raises(MaskposeError, match="only .* frames"):
        library.sample(300, seed=0, min_pose_difference=0.3)


def _frames_one_at_a_time(library, n: int, seed: int, min_pose_difference: float) -> list[tuple[int, int]]:
    """The frame choice written out: candidates in the seeded order, each kept unless its mean
    joint distance to a frame already kept is below the minimum."""
    order = torch.randperm(library.num_frames, generator=torch.Generator().manual_seed(seed)).numpy()
    features = np.concatenate([clip.joints.numpy() for clip in library.clips])
    owner = [(c, f) for c, clip in enumerate(library.clips) for f in range(len(clip))]
    kept: list[int] = []
    for index in order:
        if len(kept) == n:
            break
        if kept and min_pose_difference > 0:
            gaps = np.linalg.norm(features[kept] - features[index], axis=-1).mean(-1)
            if gaps.min() < min_pose_difference:
                continue
        kept.append(int(index))
    return [owner[i] for i in kept]


@pytest.mark.parametrize("min_pose_difference", [0.0, 0.02, 0.05, 0.15])
def test_frame_choice_is_the_one_at_a_time_rule(library, min_pose_difference):
    # The library screens candidates in blocks of 64: the same frames, across block boundaries.
    for n, seed in [(1, 0), (63, 1), (65, 2), (130, 3)]:
        expected = _frames_one_at_a_time(library, n, seed, min_pose_difference)
        if len(expected) < n:
            with pytest.raises(MaskposeError, match="only .* frames"):
                library.sample_frames(n, seed=seed, min_pose_difference=min_pose_difference)
        else:
            assert library.sample_frames(n, seed=seed, min_pose_difference=min_pose_difference) == expected


def test_random_yaw_keeps_the_body_upright(library):
    plain, _ = library.sample(10, seed=1)
    turned, _ = library.sample(10, seed=1, randomize_yaw=True)
    assert torch.equal(plain[:, 1:], turned[:, 1:])
    assert not torch.allclose(plain[:, 0], turned[:, 0], atol=1e-3)
    from maskpose.body.anny_body import ANNY_TO_CAMERA

    up = ANNY_TO_CAMERA @ torch.tensor([0.0, 0.0, 1.0])  # the body's up axis in the camera frame
    before, after = sixd_to_rotmat(plain[:, 0]) @ up, sixd_to_rotmat(turned[:, 0]) @ up
    np.testing.assert_allclose(before[:, 1], after[:, 1], atol=1e-5)  # same tilt from the vertical
    assert (before[:, [0, 2]] - after[:, [0, 2]]).norm(dim=-1).max() > 1e-3  # but turned


def _cmu_text() -> str:
    return CMU.read_text()


def test_bvh_missing_joint(tmp_path):
    bad = tmp_path / "no_left_leg.bvh"
    bad.write_text(_cmu_text().replace("JOINT LeftHip", "JOINT LeftFemur"))
    with pytest.raises(DataError, match=r"no_left_leg\.bvh.*left hip.*LeftUpLeg"):
        load_clip(bad)


def test_bvh_empty_file(tmp_path):
    empty = tmp_path / "empty.bvh"
    empty.write_text("")
    with pytest.raises(DataError, match=r"empty\.bvh.*(ROOT|no motion)"):
        load_clip(empty)


def test_bvh_truncated_motion(tmp_path):
    lines = _cmu_text().splitlines()
    cut = tmp_path / "truncated.bvh"
    cut.write_text("\n".join(lines[:-10]) + "\n" + lines[-10][: len(lines[-10]) // 2] + "\n")
    with pytest.raises(DataError, match=r"truncated\.bvh"):
        load_clip(cut)
    fewer = tmp_path / "fewer.bvh"
    fewer.write_text("\n".join(lines[:-10]) + "\n")
    with pytest.raises(DataError, match=r"fewer\.bvh.*332 frames"):
        load_clip(fewer)


def test_missing_paths_and_empty_folders(tmp_path):
    with pytest.raises(DataError, match="nowhere.bvh.*no such file"):
        MotionLibrary(tmp_path / "nowhere.bvh")
    with pytest.raises(DataError, match="no BVH"):
        MotionLibrary(tmp_path)
    notes = tmp_path / "notes.csv"
    notes.write_text("a,b\n")
    with pytest.raises(DataError, match="notes.csv.*not a mocap clip"):
        MotionLibrary(notes)


def test_bvh_naming_conventions_agree(tmp_path, clips):
    """The same motion named the cmuconvert-mb / Mixamo way (LeftShoulder = clavicle, LeftArm =
    upper arm, prefixed names) retargets to the same poses."""
    import re

    rename = {
        "Neck": "Neck1", "lowerneck": "Neck", "LeftShoulder": "LeftArm", "LeftCollar": "LeftShoulder",
        "RightShoulder": "RightArm", "RightCollar": "RightShoulder", "LeftHip": "LeftUpLeg",
        "RightHip": "RightUpLeg", "LeftKnee": "LeftLeg", "RightKnee": "RightLeg", "LeftAnkle": "LeftFoot",
        "RightAnkle": "RightFoot", "LeftToe": "LeftToeBase", "RightToe": "RightToeBase",
        "LeftElbow": "LeftForeArm", "RightElbow": "RightForeArm", "LeftWrist": "LeftHand",
        "RightWrist": "RightHand", "LFingers": "LeftFingerBase", "RFingers": "RightFingerBase",
        "Chest2": "Spine1", "Chest": "Spine", "lowerback": "LowerBack",
    }

    def swap(match):
        return f"{match.group(1)} mixamorig:{rename.get(match.group(2), match.group(2))}"

    renamed = tmp_path / "renamed.bvh"
    renamed.write_text(re.sub(r"\b(JOINT|ROOT) (\w+)", swap, _cmu_text()))
    clip = load_clip(renamed)
    torch.testing.assert_close(clip.pose, clips[CMU.name].pose)
    torch.testing.assert_close(clip.translation, clips[CMU.name].translation)


def test_rest_pose_with_straight_limbs(tmp_path, body):
    """A frame in the BVH rest pose (every limb exactly straight: no bending plane) stays finite
    and still aligns the limbs."""
    lines = _cmu_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Frame Time"))
    columns = len(lines[start + 1].split())
    zero = " ".join(["0.0"] * columns)
    rest = tmp_path / "rest.bvh"
    rest.write_text("\n".join(lines[: start - 1] + ["Frames: 2", lines[start], zero, zero]) + "\n")
    clip = load_clip(rest)
    assert torch.isfinite(clip.pose).all()
    share = _limb_agreement(_anny_joints(body, clip), clip.keypoints)
    assert min(share.values()) == 1.0, share

"""Failure safety of the dataset writer and checks on the read side (issue 17, data).

A failed write (an exception, a full disk, a dropped writer) leaves what was at the output path as
it was; a malformed dataset is refused with a ``DataError`` naming the file and the problem.
"""

from __future__ import annotations

import errno
import json
import os

import numpy as np
import pytest

from maskpose.data import dataset as dataset_module
from maskpose.data.adapters import import_folder
from maskpose.data.dataset import DatasetWriter, MaskposeDataset, read_meta, write_dataset
from maskpose.data.inspect import dataset_stats
from maskpose.errors import DataError


def _arrays(n=3, res=8, value=7, labels=True):
    arrays = {"image": np.full((n, res, res, 3), value, np.uint8), "mask": np.zeros((n, res, res), np.uint8)}
    arrays["mask"][:, 2:6, 3:5] = 1
    if labels:
        arrays["joints2d"] = np.full((n, 17, 2), 3.0, np.float32)
    return arrays


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def _intact(path, value=7, n=3):
    data = MaskposeDataset(path)
    assert len(data) == n and data.fields == ["image", "mask", "joints2d"]
    assert np.all(np.load(path / "image.npy") == value)
    assert _leftovers(path) == []


def test_full_disk_raises_oserror_and_keeps_the_old_dataset(tmp_path, monkeypatch):
    path = write_dataset(tmp_path / "ds", _arrays())

    def full(fd, size):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(dataset_module, "_preallocate", full)
    with pytest.raises(OSError, match=r"ds: cannot allocate \d+ bytes for image\.npy.*No space left") as info:
        write_dataset(path, _arrays(n=5, value=9))
    assert info.value.errno == errno.ENOSPC
    _intact(path)
    # a new folder that could not be filled is removed again
    with pytest.raises(OSError, match="No space left"):
        write_dataset(tmp_path / "new", _arrays())
    assert not (tmp_path / "new").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_arrays_are_allocated_on_disk_before_writing(tmp_path):
    writer = DatasetWriter(tmp_path / "ds", 4, (64, 64), ["mask"])
    tmp = next(p for p in (tmp_path / "ds").iterdir() if p.name.startswith(".writing-"))
    image = tmp / "image.npy"
    assert image.stat().st_size >= 4 * 64 * 64 * 3
    if hasattr(os, "posix_fallocate"):
        assert image.stat().st_blocks * 512 >= 4 * 64 * 64 * 3  # not sparse: allocated
    writer.abort()
    assert not (tmp_path / "ds").exists()


def test_failed_import_keeps_the_dataset_that_was_there(tmp_path):
    import cv2

    path = write_dataset(tmp_path / "ds", _arrays())
    images, masks = tmp_path / "img", tmp_path / "msk"
    images.mkdir()
    masks.mkdir()
    for i in range(3):
        cv2.imwrite(str(images / f"a{i}.png"), np.full((16, 16, 3), 100, np.uint8))
        m = np.zeros((16, 16), np.uint8)
        m[4:12, 5:11] = 255
        cv2.imwrite(str(masks / f"a{i}.png"), m)
    good = (images / "a2.png").read_bytes()
    (images / "a2.png").write_bytes(good[: len(good) // 2])  # truncated, found only while writing
    with pytest.raises(DataError, match=r"a2\.png: cannot read the image.*truncated"):
        import_folder(images, masks, path, res=16)
    _intact(path)
    (images / "a2.png").write_bytes(good)
    import_folder(images, masks, path, res=16)
    assert read_meta(path)["attrs"]["adapter"] == "folder" and not (path / "joints2d.npy").exists()
    assert _leftovers(path) == []


def test_exception_inside_the_writer_and_a_dropped_writer_leave_nothing(tmp_path):
    path = write_dataset(tmp_path / "ds", _arrays())
    (path / "notes.txt").write_text("mine")
    with pytest.raises(RuntimeError, match="boom"):
        with DatasetWriter(path, 2, (8, 8), ["mask"]) as writer:
            writer.write(0, {"image": np.zeros((2, 8, 8, 3)), "mask": np.zeros((2, 8, 8))})
            raise RuntimeError("boom")
    _intact(path)
    writer = DatasetWriter(tmp_path / "fresh", 2, (8, 8), [])
    assert (tmp_path / "fresh").is_dir()
    del writer  # never closed: the finaliser removes its temporary folder and the folder it made
    assert not (tmp_path / "fresh").exists()
    with pytest.raises(DataError, match=r"only 1 of 2 samples were written"):
        with DatasetWriter(path, 2, (8, 8), []) as writer:
            writer.write(0, {"image": np.zeros((1, 8, 8, 3))})
    _intact(path)
    # a successful overwrite keeps files that are not the dataset's, drops the old fields
    write_dataset(path, {"image": np.zeros((2, 8, 8, 3), np.uint8)})
    assert sorted(p.name for p in path.iterdir()) == ["image.npy", "meta.json", "notes.txt"]


def test_output_that_is_a_file_is_refused_before_work(tmp_path):
    target = tmp_path / "ds"
    target.write_text("not a folder")
    with pytest.raises(DataError, match=r"ds: the output exists and is not a folder"):
        DatasetWriter(target, 2, (8, 8), [])
    assert target.read_text() == "not a folder"


def test_writer_refuses_infinite_labels_and_keeps_nan(tmp_path):
    arrays = _arrays()
    arrays["joints2d"][1, 4] = np.nan
    path = write_dataset(tmp_path / "ds", arrays)
    assert np.isnan(MaskposeDataset(path)[1]["joints2d"][4]).all()
    assert dataset_stats(path)["joints2d"]["missing_joints"] == 1
    arrays["joints2d"][2, 0, 1] = np.inf
    with pytest.raises(DataError, match=r"field 'joints2d' of sample 2 holds infinite values"):
        write_dataset(tmp_path / "ds", arrays)
    _intact(path)


def _edit_meta(path, **changes):
    meta = json.loads((path / "meta.json").read_text())
    meta.update(changes)
    (path / "meta.json").write_text(json.dumps(meta))


@pytest.mark.parametrize("change, message", [
    (lambda p: (p / "meta.json").write_text("[1, 2]"), r"meta\.json: must hold a JSON object, got a list"),
    (lambda p: _edit_meta(p, fields=None), r"meta\.json: 'fields' must be an object"),
    (lambda p: _edit_meta(p, schema_version=2), r"meta\.json: schema version 2 is not supported"),
    (lambda p: _edit_meta(p, num_samples=0), r"num_samples must be a positive integer, got 0"),
    (lambda p: _edit_meta(p, resolution=[8]), r"resolution must be \[H, W\]"),
    (lambda p: (p / "mask.npy").unlink(), r"mask\.npy: array listed in meta\.json is missing"),
    (lambda p: np.save(p / "mask.npy", np.zeros((3, 8, 9), np.uint8)), r"mask\.npy: shape \(3, 8, 9\) does not match"),
    (lambda p: np.save(p / "mask.npy", np.zeros((3, 8, 8), np.float32)), r"mask\.npy: dtype float32 does not match"),
    (lambda p: (p / "image.npy").write_bytes(b"garbage"), r"image\.npy: cannot read the array"),
], ids=["meta_list", "no_fields", "schema", "num_samples", "resolution", "npy_missing", "shape", "dtype", "garbage"])
def test_malformed_datasets_are_refused(tmp_path, change, message):
    path = write_dataset(tmp_path / "ds", _arrays())
    change(path)
    with pytest.raises(DataError, match=message):
        MaskposeDataset(path)
    with pytest.raises(DataError, match=message):
        dataset_stats(path)


def test_mask_values_on_read(tmp_path):
    arrays = _arrays(labels=False)
    arrays["mask"] *= 255
    path = write_dataset(tmp_path / "ds", arrays)
    item = MaskposeDataset(path)[0]
    assert set(item["mask"].unique().tolist()) == {0.0, 1.0}  # 255 read as 1
    assert dataset_stats(path)["mask_values"] == "{0, 255} (read as {0, 1})"
    arrays["mask"][1, 0, 0] = 7
    path = write_dataset(tmp_path / "bad", arrays)
    MaskposeDataset(path)[0]  # sample 0 is fine
    with pytest.raises(DataError, match=r"mask of sample 1 holds values \{0, 7, 255\}"):
        MaskposeDataset(path)[1]
    with pytest.raises(DataError, match=r"mask\.npy: mask holds values \{0, 7, 255\}"):
        dataset_stats(path)


def test_temporary_folders_of_dead_writers_are_removed(tmp_path):
    import socket
    import subprocess
    import sys

    path = write_dataset(tmp_path / "ds", _arrays())
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = int(done.stdout)  # a process that has exited
    stale = path / f".writing-{socket.gethostname()}-{dead}-abc123"
    other_host = path / f".writing-elsewhere-{dead}-abc123"
    stale.mkdir()
    other_host.mkdir()
    (stale / "image.npy").write_bytes(b"half")
    write_dataset(path, _arrays(value=8))
    assert not stale.exists() and other_host.exists()  # another host's writer may still be running
    assert np.all(np.load(path / "image.npy") == 8)


_SMALL_DISK_SCRIPT = """
import os, sys
import numpy as np
from maskpose.data.dataset import MaskposeDataset, write_dataset
root = sys.argv[1]
path = write_dataset(root + "/ds", {"image": np.full((2, 16, 16, 3), 5, np.uint8)})
try:
    write_dataset(path, {"image": np.full((100, 64, 64, 3), 9, np.uint8)})  # 1.2 MB on a 1 MB disk
except OSError as err:
    print("OSError", err.errno, err)
print(sorted(os.listdir(path)), int(np.load(path / "image.npy").max()), len(MaskposeDataset(path)))
"""


@pytest.mark.slow  # ~3 s: a fresh interpreter importing torch
def test_a_real_full_disk_is_an_oserror_not_sigbus(tmp_path):
    """On a 1 MB tmpfs (a private mount namespace; needs root and unshare): the memory-mapped writer
    used to die by SIGBUS here; now it raises ENOSPC and keeps the old dataset."""
    import shutil
    import subprocess
    import sys

    if shutil.which("unshare") is None or os.geteuid() != 0:
        pytest.skip("needs root and unshare to mount a small tmpfs")
    mount = tmp_path / "small"
    mount.mkdir()
    (tmp_path / "script.py").write_text(_SMALL_DISK_SCRIPT)
    command = f"mount -t tmpfs -o size=1m tmpfs {mount} && {sys.executable} {tmp_path / 'script.py'} {mount}"
    done = subprocess.run(["unshare", "-m", "sh", "-c", command], capture_output=True, text=True, timeout=60)
    if done.returncode != 0 and not done.stdout and ("mount" in done.stderr or "unshare" in done.stderr):
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    assert done.returncode == 0, (done.returncode, done.stderr)  # -7 / 135 would be SIGBUS
    assert f"OSError {errno.ENOSPC} " in done.stdout and "No space left" in done.stdout
    assert done.stdout.strip().endswith("['image.npy', 'meta.json'] 5 2")

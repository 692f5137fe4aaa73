"""The conventions every layer shares; this module imports nothing from maskpose.

- Joint sets: names, bones (parent, child) and left-right flips. H36M-17 follows the usual order
  (docs/design.md §2); COCO-17 the COCO keypoint order.
- The crop camera's default focal length (:data:`FOCAL_RATIO` times the crop size).
- Seeds: :func:`seed_sequence`, the one way to derive independent random streams from a run seed
  and named or numbered keys.
"""

from __future__ import annotations

import zlib

import numpy as np

H36M_JOINTS: tuple[str, ...] = (
    "pelvis", "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "spine", "thorax",
    "neck", "head", "l_shoulder", "l_elbow", "l_wrist", "r_shoulder", "r_elbow", "r_wrist",
)

#: Bones of the H36M-17 skeleton as (parent, child) index pairs.
H36M_BONES: tuple[tuple[int, int], ...] = (
    (0, 1), (1, 2), (2, 3), (0, 4), (4, 5), (5, 6), (0, 7), (7, 8), (8, 9), (9, 10),
    (8, 11), (11, 12), (12, 13), (8, 14), (14, 15), (15, 16),
)

#: Index permutation that swaps left and right joints of H36M-17.
H36M_FLIP: tuple[int, ...] = (0, 4, 5, 6, 1, 2, 3, 7, 8, 9, 10, 14, 15, 16, 11, 12, 13)

#: Bones that belong to the arms (the released Mask-as-Supervision code draws them thinner).
H36M_ARM_BONES: tuple[int, ...] = tuple(
    i for i, (a, b) in enumerate(H36M_BONES) if {a, b} & {12, 13, 15, 16}
)

COCO_JOINTS: tuple[str, ...] = (
    "nose", "l_eye", "r_eye", "l_ear", "r_ear", "l_shoulder", "r_shoulder", "l_elbow", "r_elbow",
    "l_wrist", "r_wrist", "l_hip", "r_hip", "l_knee", "r_knee", "l_ankle", "r_ankle",
)

COCO_BONES: tuple[tuple[int, int], ...] = (
    (0, 1), (0, 2), (1, 3), (2, 4), (5, 6), (5, 7), (7, 9), (6, 8), (8, 10), (5, 11), (6, 12),
    (11, 12), (11, 13), (13, 15), (12, 14), (14, 16),
)

COCO_FLIP: tuple[int, ...] = (0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15)

#: H36M-17 index of the pelvis, the root used for pelvis-aligned metrics.
H36M_PELVIS = 0


#: Focal length of the crop camera in units of the crop size: the synthetic generator's crops use
#: it, and so does every reader of a dataset that stores no intrinsics.
FOCAL_RATIO = 2.0


def default_focal(resolution: int) -> float:
    """Focal length in pixels of a ``resolution``-pixel crop: :data:`FOCAL_RATIO` times its size."""
    return FOCAL_RATIO * resolution


def seed_key(key: int | str) -> int:
    """One 32-bit entropy word: an integer modulo 2**32, a string by its CRC-32."""
    return zlib.crc32(key.encode()) if isinstance(key, str) else int(key) & 0xFFFFFFFF


def seed_sequence(seed: int, *keys: int | str) -> np.random.SeedSequence:
    """The random stream of ``seed`` for ``keys`` (e.g. a domain, a split, a stream, an index).

    Streams with different keys are statistically independent (NumPy's ``SeedSequence``), and the
    same arguments give the same stream on every machine.

    Example:
        >>> a = np.random.default_rng(seed_sequence(0, "thermal", "train", 2, 5)).integers(1000)
        >>> b = np.random.default_rng(seed_sequence(0, "thermal", "train", 2, 5)).integers(1000)
        >>> bool(a == b)
        True
    """
    # The words as a uint32 array: the same pool as from a list of ints, without NumPy's
    # conversion of each int (a third of the time of a generator built from it).
    return np.random.SeedSequence(np.array([seed_key(seed), *(seed_key(k) for k in keys)], dtype=np.uint32))


def torch_seed(seed: int, *keys: int | str) -> int:
    """A 63-bit seed for ``torch.Generator().manual_seed`` from :func:`seed_sequence`."""
    return int(seed_sequence(seed, *keys).generate_state(2, np.uint64)[0] >> np.uint64(1))

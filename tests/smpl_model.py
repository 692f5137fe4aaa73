"""A synthetic model file in SMPL's format (never the real SMPL, whose licence forbids shipping it).

:func:`write_smpl_model` writes a pickle with SMPL's keys and layouts, as ``smplx.SMPL`` reads them:
``v_template (V, 3)``, ``shapedirs (V, 3, 10)``, ``posedirs (V, 3, 207)``, ``J_regressor (24, V)``,
``weights (V, 24)``, ``kintree_table (2, 24)``, ``f (F, 3)``. The body is a coarse humanoid in SMPL's
frame (Y up, facing +Z, +X the subject's left, T-pose): one closed box per SMPL joint, from the
joint to its child (or, for the head, hands and feet, onward), each box skinned rigidly to its
joint and overlapping its neighbours so that the silhouette stays connected. ``J_regressor``
recovers the joint positions *exactly* from the template (each row blends the two end caps of the
joint's box). ``subdivisions`` sets the grid per box face: 1 gives 192 vertices (fast tests,
gradcheck), 7 gives 7,104 vertices and 14,112 faces, about SMPL's 6,890 and 13,776 (timings).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

#: SMPL's 24 joints (its own order) and their parents.
SMPL_JOINT_NAMES = (
    "pelvis", "l_hip", "r_hip", "spine1", "l_knee", "r_knee", "spine2", "l_ankle", "r_ankle", "spine3",
    "l_foot", "r_foot", "neck", "l_collar", "r_collar", "head", "l_shoulder", "r_shoulder", "l_elbow",
    "r_elbow", "l_wrist", "r_wrist", "l_hand", "r_hand",
)
PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)

#: Rest joints (metres, SMPL frame), close to SMPL's neutral template.
JOINTS = np.array([
    (0.00, -0.22, 0.02), (0.06, -0.31, 0.01), (-0.06, -0.31, 0.01), (0.00, -0.11, 0.00),
    (0.10, -0.69, 0.01), (-0.10, -0.69, 0.01), (0.00, 0.03, 0.01), (0.09, -1.09, -0.03),
    (-0.09, -1.09, -0.03), (0.00, 0.09, 0.03), (0.12, -1.15, 0.09), (-0.12, -1.15, 0.09),
    (0.00, 0.29, -0.01), (0.08, 0.20, 0.00), (-0.08, 0.20, 0.00), (0.00, 0.36, 0.04),
    (0.17, 0.23, -0.01), (-0.17, 0.23, -0.01), (0.43, 0.21, -0.03), (-0.43, 0.21, -0.03),
    (0.68, 0.22, -0.03), (-0.68, 0.22, -0.03), (0.77, 0.21, -0.04), (-0.77, 0.21, -0.04),
])

# Box of each joint: the point it reaches (a child joint, or an offset for the leaves), how far it
# extends behind the joint, and its (width, depth) across the segment.
_TIP = {0: 3, 1: 4, 2: 5, 3: 6, 4: 7, 5: 8, 6: 9, 7: 10, 8: 11, 9: 12, 12: 15, 13: 16, 14: 17,
        16: 18, 17: 19, 18: 20, 19: 21, 20: 22, 21: 23}
_LEAF = {10: (0.0, -0.03, 0.12), 11: (0.0, -0.03, 0.12), 15: (0.0, 0.18, 0.0),
         22: (0.08, 0.0, 0.0), 23: (-0.08, 0.0, 0.0)}
_BACK = {0: 0.14, 9: 0.05}
_SIZE = {0: (0.30, 0.20), 3: (0.26, 0.18), 6: (0.28, 0.18), 9: (0.34, 0.20), 12: (0.10, 0.10),
         13: (0.10, 0.10), 14: (0.10, 0.10), 15: (0.16, 0.18), 1: (0.14, 0.14), 2: (0.14, 0.14),
         4: (0.10, 0.10), 5: (0.10, 0.10), 7: (0.08, 0.08), 8: (0.08, 0.08), 10: (0.08, 0.05),
         11: (0.08, 0.05), 16: (0.09, 0.09), 17: (0.09, 0.09), 18: (0.07, 0.07), 19: (0.07, 0.07),
         20: (0.06, 0.05), 21: (0.06, 0.05), 22: (0.08, 0.04), 23: (0.08, 0.04)}


def _unit_box(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The surface lattice of ``[0, 1]^3`` with ``n`` cells per edge: vertices, outward
    counter-clockwise triangles, and the masks of the vertices on the ``z = 0`` and ``z = 1`` caps."""
    grid = np.stack(np.meshgrid(*[np.arange(n + 1)] * 3, indexing="ij"), -1).reshape(-1, 3)
    on_surface = ((grid == 0) | (grid == n)).any(1)
    points = grid[on_surface]
    index = -np.ones((n + 1,) * 3, dtype=np.int64)
    index[tuple(points.T)] = np.arange(len(points))
    faces = []
    for axis in range(3):
        u, v = [a for a in range(3) if a != axis]
        for side in (0, n):
            for i in range(n):
                for j in range(n):
                    corners = []
                    for du, dv in ((0, 0), (1, 0), (1, 1), (0, 1)):
                        p = [0, 0, 0]
                        p[axis], p[u], p[v] = side, i + du, j + dv
                        corners.append(index[tuple(p)])
                    a, b, c, d = corners
                    # (u, v, axis) is right-handed up to the sign of the permutation.
                    flip = (side == 0) == ((u, v, axis) in ((0, 1, 2), (1, 2, 0), (2, 0, 1)))
                    faces += [(a, d, c), (a, c, b)] if flip else [(a, b, c), (a, c, d)]
    return points / n, np.array(faces, dtype=np.int64), points[:, 2] == 0, points[:, 2] == n


def _frame(direction: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A right-handed frame ``(u, w, d)`` with ``d`` along ``direction``."""
    d = direction / np.linalg.norm(direction)
    helper = np.array([0.0, 0.0, 1.0]) if abs(d[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    u = np.cross(helper, d)
    u /= np.linalg.norm(u)
    return u, np.cross(d, u), d


def make_smpl_data(subdivisions: int = 1, seed: int = 0) -> tuple[dict, dict[str, int]]:
    """The model's arrays (SMPL's keys) and the vertex ids of the face and foot keypoints
    (``nose``, ``leye``, ``reye``, ``lear``, ``rear``, ``LBigToe``, ... as in ``smplx``'s
    ``vertex_ids``)."""
    rng = np.random.default_rng(seed)
    unit, unit_faces, start_cap, end_cap = _unit_box(subdivisions)
    vertices, faces, weights, regressor = [], [], [], np.zeros((24, 0))
    offsets = []
    for joint in range(24):
        start = JOINTS[joint]
        tip = JOINTS[_TIP[joint]] if joint in _TIP else start + np.array(_LEAF[joint])
        u, w, d = _frame(tip - start)
        back = _BACK.get(joint, 0.03)
        forward = 0.03 if joint in _TIP else 0.0
        width, depth = _SIZE[joint]
        begin, end = start - back * d, tip + forward * d
        local = unit - np.array([0.5, 0.5, 0.0])
        box = (begin + local[:, :1] * width * u + local[:, 1:2] * depth * w
               + local[:, 2:3] * (end - begin)[None])
        offsets.append(sum(len(v) for v in vertices))
        faces.append(unit_faces + offsets[-1])
        vertices.append(box)
        skin = np.zeros((len(box), 24))
        skin[:, joint] = 1.0
        weights.append(skin)
        # The joint lies on the box axis at fraction t from the start cap's centre to the end cap's.
        t = back / (back + np.linalg.norm(tip - start) + forward)
        row = np.zeros((24, len(box)))
        row[joint, start_cap] = (1.0 - t) / start_cap.sum()
        row[joint, end_cap] = t / end_cap.sum()
        regressor = np.concatenate([regressor, row], axis=1)
    v_template = np.concatenate(vertices)
    num_vertices = len(v_template)
    shapedirs = np.zeros((num_vertices, 3, 10))
    shapedirs[:, :, 0] = 0.05 * v_template  # beta 0: overall size
    shapedirs[:, :, 1:] = 0.005 * rng.standard_normal((num_vertices, 3, 9))
    posedirs = 0.002 * rng.standard_normal((num_vertices, 3, 207))
    kintree = np.array([[4294967295, *PARENTS[1:]], list(range(24))], dtype=np.int64)
    data = {
        "v_template": v_template, "shapedirs": shapedirs, "posedirs": posedirs,
        "J_regressor": regressor, "weights": np.concatenate(weights), "kintree_table": kintree,
        "f": np.concatenate(faces).astype(np.uint32),
    }
    # Keypoint vertices: corners of the head box's front face (+z) and of the feet boxes.
    head = slice(offsets[15], offsets[15] + len(unit))
    head_vertices = v_template[head]
    front = np.flatnonzero(np.isclose(head_vertices[:, 2], head_vertices[:, 2].max())) + offsets[15]
    by_x = front[np.argsort(v_template[front, 0])]
    top = front[np.argmax(v_template[front, 1])]
    ids = {"nose": int(top), "leye": int(by_x[-1]), "reye": int(by_x[0]), "lear": int(by_x[-1]),
           "rear": int(by_x[0])}
    for side, joint in (("L", 10), ("R", 11)):
        foot = np.arange(offsets[joint], offsets[joint] + len(unit))
        ids[f"{side}BigToe"] = int(foot[np.argmax(v_template[foot, 2])])
        ids[f"{side}SmallToe"] = int(foot[np.argmax(v_template[foot, 2] + 1e-3 * v_template[foot, 0])])
        ids[f"{side}Heel"] = int(foot[np.argmin(v_template[foot, 2])])
    return data, ids


def write_smpl_model(path: str | Path, subdivisions: int = 1, seed: int = 0) -> dict[str, int]:
    """Write the synthetic model as a pickle at ``path``; returns its keypoint vertex ids."""
    data, ids = make_smpl_data(subdivisions, seed)
    with open(path, "wb") as f:
        pickle.dump(data, f)
    return ids

"""A procedurally generated, license-free right hand in MANO's data format.

The hand is the zero level set of a signed distance function (smooth union of a rounded-box
palm, a thenar pad, a wrist stub and one capsule per finger bone), meshed with marching cubes
(Lorensen & Cline 1987, scikit-image's implementation) and lightly Taubin-smoothed (Taubin
1995, trimesh). Everything is deterministic; the result is cached per process (generation
takes well under a second).

Conventions (same as MANO's right-hand template, Romero et al. 2017):

* metres; the **wrist joint is at the origin** (MANO's sits at about (0.095, 0.006, 0.006));
* fingers point along **-x**, the fingers are spread along z with the **thumb at +z**, the
  **palm faces -y** (back of the hand +y): the same chirality as MANO's right hand;
* 16 joints in MANO order: 0 wrist, 1-3 index, 4-6 middle, 7-9 pinky, 10-12 ring, 13-15 thumb,
  parents as MANO's ``kintree_table``; zero pose is the flat hand.

``build_builtin_hand()`` returns the arrays under MANO's key names (``v_template``, ``f``,
``weights``, ``J_regressor`` (dense), ``kintree_table``, ``shapedirs``, ``posedirs`` (zeros),
``hands_components``, ``hands_mean``) plus ``fingertip_vertex_ids`` (thumb, index, middle,
ring, pinky) so the same smplx-based forward (``hand_model``) runs both models. It is a
lower-fidelity stand-in for MANO: no pose-dependent corrective shapes, hand-made shape space.
"""
from __future__ import annotations

import functools
from typing import Dict, List, Tuple

import numpy as np

#: MANO kinematic tree parents (joint order 0 wrist, 1-3 index, 4-6 middle, 7-9 pinky,
#: 10-12 ring, 13-15 thumb).
PARENTS = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14)

#: Finger chains in MANO joint indices, listed thumb, index, middle, ring, pinky.
FINGER_CHAINS = ((13, 14, 15), (1, 2, 3), (4, 5, 6), (10, 11, 12), (7, 8, 9))

#: Grid spacing of the marching-cubes volume [m]; sets the vertex count (~2900).
GRID_STEP = 0.0046

#: Names of the 10 shape components (``betas``); one unit is roughly one population s.d.
SHAPE_COMPONENTS = (
    "overall size (+5 % per unit, about the wrist)",
    "finger length, all four fingers (+6 % per unit)",
    "palm width (+6 % per unit, across the fingers)",
    "hand thickness (+8 % per unit, palm normal)",
    "palm length (+6 % per unit, fingers move with it)",
    "thumb length (+7 % per unit)",
    "index length (+7 % per unit)",
    "middle length (+7 % per unit)",
    "ring and pinky length (+7 % per unit)",
    "finger girth (+8 % per unit, radial about the bones)",
)


def _finger_specs() -> List[Tuple[np.ndarray, np.ndarray, Tuple[float, float, float], Tuple[float, float, float]]]:
    """(base joint, unit direction, 3 segment lengths to the next joint / fingertip [m],
    3 radii [m]) for thumb, index, middle, ring, pinky (adult hand, about 18 cm long)."""
    def unit(v):
        v = np.asarray(v, np.float64)
        return v / np.linalg.norm(v)

    return [
        (np.array([-0.026, -0.008, 0.022]), unit([-0.70, -0.24, 0.67]), (0.040, 0.031, 0.027), (0.0115, 0.0105, 0.0095)),
        (np.array([-0.093, 0.000, 0.021]), unit([-1.0, 0.0, 0.07]), (0.037, 0.023, 0.019), (0.0095, 0.0088, 0.0080)),
        (np.array([-0.095, 0.000, 0.001]), unit([-1.0, 0.0, 0.0]), (0.040, 0.025, 0.020), (0.0098, 0.0090, 0.0082)),
        (np.array([-0.091, 0.000, -0.018]), unit([-1.0, 0.0, -0.06]), (0.038, 0.024, 0.019), (0.0093, 0.0086, 0.0078)),
        (np.array([-0.082, 0.000, -0.035]), unit([-1.0, 0.0, -0.14]), (0.030, 0.019, 0.018), (0.0085, 0.0078, 0.0071)),
    ]


def rest_joints() -> Tuple[np.ndarray, np.ndarray]:
    """Rest-pose skeleton: (16,3) MANO-order joints and (5,3) fingertip ends [m] (thumb..pinky)."""
    joints = np.zeros((16, 3))
    tips = np.zeros((5, 3))
    for (base, d, lengths, _), chain, k in zip(_finger_specs(), FINGER_CHAINS, range(5)):
        p = base.copy()
        for j, length in zip(chain, lengths):
            joints[j] = p
            p = p + d * length
        tips[k] = p
    return joints, tips


# ------------------------------------------------------------------------------- SDF
def _capsule(p: np.ndarray, a: np.ndarray, b: np.ndarray, r: float) -> np.ndarray:
    ab = b - a
    t = np.clip(((p - a) @ ab) / (ab @ ab), 0.0, 1.0)
    return np.linalg.norm(p - (a + t[:, None] * ab), axis=1) - r


def _round_box(p: np.ndarray, centre: np.ndarray, half: np.ndarray, r: float) -> np.ndarray:
    q = np.abs(p - centre) - (half - r)
    return np.linalg.norm(np.maximum(q, 0.0), axis=1) + np.minimum(q.max(axis=1), 0.0) - r


def _smin(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Polynomial smooth minimum (blend width ``k`` [m])."""
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b + (a - b) * h - k * h * (1.0 - h)


PALM_CENTRE = np.array([-0.047, 0.0, -0.006])
PALM_HALF = np.array([0.047, 0.0115, 0.037])


def _hand_sdf(p: np.ndarray) -> np.ndarray:
    """Signed distance [m] (negative inside) of the rest right hand at points ``p`` (N,3)."""
    d = _round_box(p, PALM_CENTRE, PALM_HALF, 0.010)
    d = _smin(d, _round_box(p, np.array([0.010, 0.0, -0.005]), np.array([0.016, 0.0105, 0.028]), 0.0095), 0.010)
    d = _smin(d, _capsule(p, np.array([-0.012, -0.006, 0.012]), np.array([-0.032, -0.009, 0.026]), 0.014), 0.012)
    for base, direc, lengths, radii in _finger_specs():
        a = base.copy()
        for length, r, i in zip(lengths, radii, range(3)):
            b = a + direc * (length - (r if i == 2 else 0.0))
            d = _smin(d, _capsule(p, a, b, r), 0.004 if i else 0.008)
            a = b
    return d


# ---------------------------------------------------------------------- mesh & rigging
def _bone_segments() -> List[Tuple[np.ndarray, np.ndarray]]:
    """Segment of the bone driven by each joint (joint -> child joint or fingertip)."""
    joints, tips = rest_joints()
    segs: List[Tuple[np.ndarray, np.ndarray]] = [(np.array([0.0, 0.0, 0.0]), joints[4])]
    segs += [None] * 15  # type: ignore[list-item]
    for chain, tip in zip(FINGER_CHAINS, tips):
        ends = [joints[chain[1]], joints[chain[2]], tip]
        for j, end in zip(chain, ends):
            segs[j] = (joints[j], end)
    return segs


def _seg_dist_t(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    ab = b - a
    t = np.clip(((p - a) @ ab) / (ab @ ab), 0.0, 1.0)
    return np.linalg.norm(p - (a + t[:, None] * ab), axis=1), t


def _skinning_weights(v: np.ndarray) -> np.ndarray:
    """(V,16) rows summing to 1: soft-min of the distance to each bone (palm: the palm core)."""
    segs = _bone_segments()
    dist = np.empty((len(v), 16))
    for j, (a, b) in enumerate(segs):
        dist[:, j] = _seg_dist_t(v, a, b)[0]
    q = np.abs(v - PALM_CENTRE) - (PALM_HALF - 0.012)
    dist[:, 0] = np.minimum(np.linalg.norm(np.maximum(q, 0.0), axis=1), dist[:, 0])
    logits = -(dist - dist.min(axis=1, keepdims=True)) / 0.0025
    w = np.exp(logits)
    w[w < 1e-3] = 0.0
    return w / w.sum(axis=1, keepdims=True)


def _joint_regressor(v: np.ndarray, joints: np.ndarray) -> np.ndarray:
    """(16,V): each joint the mean of the vertices in a shell around it (all vertices within
    1.5x the nearest vertex distance + 4 mm), corrected (minimum-norm, rows still summing to 1)
    so that ``J_regressor @ v_template`` equals the rest joints exactly."""
    reg = np.zeros((16, len(v)))
    for j, c in enumerate(joints):
        dist = np.linalg.norm(v - c, axis=1)
        idx = np.flatnonzero(dist <= 1.5 * dist.min() + 0.004)
        k = len(idx)
        w0 = np.full(k, 1.0 / k)
        a = np.vstack([v[idx].T, np.ones((1, k))])  # (4,k): position + partition of unity
        rhs = np.append(c, 1.0) - a @ w0
        reg[j, idx] = w0 + a.T @ np.linalg.solve(a @ a.T, rhs)
    return reg


def _shape_dirs(v: np.ndarray, weights: np.ndarray, joints: np.ndarray) -> np.ndarray:
    """(V,3,10) displacement [m] per unit beta; see ``SHAPE_COMPONENTS``."""
    segs = _bone_segments()
    n = len(v)
    sd = np.zeros((n, 3, 10))
    # per-bone parameter t of each vertex along its bone (for stretching)
    tv = np.stack([_seg_dist_t(v, a, b)[1] for a, b in segs], axis=1)  # (V,16)

    def chain_stretch(fingers, gain):
        """Scale each bone of the given fingers by (1+gain): joints downstream translate,
        vertices follow the blend of their bones' start/end displacements."""
        disp = np.zeros((16, 2, 3))  # per bone: displacement of its start and its end
        for f in fingers:
            chain = FINGER_CHAINS[f]
            acc = np.zeros(3)
            for j in chain:
                a, b = segs[j]
                disp[j, 0] = acc
                acc = acc + gain * (b - a)
                disp[j, 1] = acc
        out = np.zeros((n, 3))
        for j in range(16):
            if np.any(disp[j]):
                out += weights[:, j:j + 1] * (disp[j, 0] + tv[:, j:j + 1] * (disp[j, 1] - disp[j, 0]))
        return out

    sd[:, :, 0] = 0.05 * v  # wrist at the origin
    sd[:, :, 1] = chain_stretch((1, 2, 3, 4), 0.06)
    sd[:, 2, 2] = 0.06 * (v[:, 2] - PALM_CENTRE[2])
    sd[:, 1, 3] = 0.08 * v[:, 1]
    palm_len = float(-joints[4, 0])
    s = np.clip(-v[:, 0], 0.0, palm_len)
    sd[:, 0, 4] = -0.06 * s
    sd[:, :, 5] = chain_stretch((0,), 0.07)
    sd[:, :, 6] = chain_stretch((1,), 0.07)
    sd[:, :, 7] = chain_stretch((2,), 0.07)
    sd[:, :, 8] = chain_stretch((3, 4), 0.07)
    girth = np.zeros((n, 3))
    for f in range(5):
        for j in FINGER_CHAINS[f]:
            a, b = segs[j]
            t = tv[:, j:j + 1]
            radial = v - (a + t * (b - a))
            girth += weights[:, j:j + 1] * 0.08 * radial
    sd[:, :, 9] = girth
    return sd


@functools.lru_cache(maxsize=1)
def _build_cached() -> Tuple[Tuple[str, np.ndarray], ...]:
    import trimesh
    from skimage import measure

    h = GRID_STEP
    lo = np.array([-0.190, -0.050, -0.065])
    hi = np.array([0.050, 0.035, 0.110])
    axes = [lo[i] + h * np.arange(int(np.ceil((hi[i] - lo[i]) / h)) + 1) for i in range(3)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)
    sdf = _hand_sdf(grid.reshape(-1, 3)).reshape(grid.shape[:3])
    sdf[np.abs(sdf) < 1e-9] = 1e-9  # no vertex exactly on a grid node (degenerate triangles)
    verts, faces, _, _ = measure.marching_cubes(sdf, level=0.0, spacing=(h, h, h))
    mesh = trimesh.Trimesh(verts + lo, faces.astype(np.int64), process=True)
    mesh.remove_unreferenced_vertices()
    trimesh.smoothing.filter_taubin(mesh, lamb=0.5, nu=0.53, iterations=8)
    if mesh.volume < 0:
        mesh.invert()
    v = np.asarray(mesh.vertices, np.float64)
    f = np.asarray(mesh.faces, np.int64)

    joints, tips = rest_joints()
    weights = _skinning_weights(v)
    tip_ids = []
    for k, (chain, tip) in enumerate(zip(FINGER_CHAINS, tips)):
        direc = tip - joints[chain[2]]
        direc /= np.linalg.norm(direc)
        cand = np.flatnonzero(weights[:, chain[2]] > 0.5)
        tip_ids.append(int(cand[np.argmax((v[cand] - joints[chain[2]]) @ direc)]))
    kintree = np.array([[4294967295 if p < 0 else p for p in PARENTS], list(range(16))], np.int64)
    out = {
        "v_template": v,
        "f": f,
        "weights": weights,
        "J_regressor": _joint_regressor(v, joints),
        "kintree_table": kintree,
        "shapedirs": _shape_dirs(v, weights, joints),
        "posedirs": np.zeros((len(v), 3, 135)),
        "hands_components": np.eye(45),
        "hands_mean": np.zeros(45),
        "fingertip_vertex_ids": np.array(tip_ids, np.int64),
    }
    return tuple(out.items())


def build_builtin_hand() -> Dict[str, np.ndarray]:
    """The built-in right hand as MANO-format arrays (fresh copies; cached generation).

    Returns:
        dict with ``v_template`` (V,3) float64 [m], ``f`` (F,3) int64 (outward winding),
        ``weights`` (V,16), ``J_regressor`` (16,V) dense, ``kintree_table`` (2,16) int64,
        ``shapedirs`` (V,3,10) [m per unit beta], ``posedirs`` (V,3,135) zeros,
        ``hands_components`` (45,45) identity, ``hands_mean`` (45,) zeros,
        ``fingertip_vertex_ids`` (5,) int64 (thumb, index, middle, ring, pinky).
    """
    return {k: v.copy() for k, v in _build_cached()}

"""Tests of the ROS-free hand model: safe MANO loading, the built-in hand, the forward."""
import os
import pickle
import sys
import types

import numpy as np
import pytest
import torch
import trimesh
from scipy.spatial.transform import Rotation

from hand_mesh_ros.core import builtin_hand
from hand_mesh_ros.core.hand_model import (MANO_FINGERTIP_IDS, MANO_TO_OPENPOSE, HandModel,
                                           fix_left_shapedirs, load_hand_model, mirror_model_data)
from hand_mesh_ros.core.mano_io import (ManoFileError, load_mano_file, load_mano_pickle)
from hand_mesh_ros.core.types import LEFT, RIGHT

M = torch.tensor([-1.0, 1.0, 1.0])
TIP_JOINTS = [4, 8, 12, 16, 20]  # OpenPose thumb, index, middle, ring, pinky tips


# ------------------------------------------------------------------ fixtures / helpers
@pytest.fixture
def mano_dir(golden_hamer, tmp_path):
    """A model directory holding only the synthetic MANO_RIGHT.pkl."""
    d = tmp_path / "mano"
    d.mkdir()
    (d / "MANO_RIGHT.pkl").symlink_to(golden_hamer / "synthetic_MANO_RIGHT.pkl")
    return d


@pytest.fixture(scope="module")
def builtin():
    return load_hand_model(None)


def _random_params(b, seed=0, scale=0.5):
    g = torch.Generator().manual_seed(seed)
    go = torch.randn(b, 3, generator=g) * scale
    hp = torch.randn(b, 45, generator=g) * scale
    be = torch.randn(b, 10, generator=g)
    return go, hp, be


def _mirror_pose(aa):
    """Axis-angle (x, y, z) -> (x, -y, -z) for every joint."""
    return aa * torch.tensor([1.0, -1.0, -1.0]).repeat(aa.shape[1] // 3)


def _write_pickle(path, obj, protocol=2):
    with open(path, "wb") as fh:
        pickle.dump(obj, fh, protocol=protocol)


# ----------------------------------------------------------------------- mano_io
def test_golden_plain_and_chumpy_like_load_identically(golden_hamer):
    a = load_mano_file(golden_hamer / "synthetic_MANO_RIGHT.pkl")
    b = load_mano_file(golden_hamer / "synthetic_MANO_RIGHT_chumpy_like.pkl")
    assert set(a) == set(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]), k
    assert a["v_template"].shape == (778, 3) and a["J_regressor"].shape == (16, 778)
    assert a["kintree_table"][0, 0] == 4294967295  # not truncated to int32
    # the sparse J_regressor is rebuilt as a real sparse matrix with the pickled values
    raw = load_mano_pickle(golden_hamer / "synthetic_MANO_RIGHT.pkl")
    assert raw["J_regressor"].format == "csc" and raw["J_regressor"].nnz == 160
    assert np.allclose(raw["J_regressor"] @ raw["v_template"], raw["J"])


def _fake_chumpy_classes():
    """Stand-in classes registered under chumpy's module names just long enough to pickle."""
    ch_mod, re_mod, root = (types.ModuleType(n) for n in ("chumpy.ch", "chumpy.reordering", "chumpy"))

    class Ch:
        pass

    class Select:
        pass

    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    Select.__module__, Select.__qualname__ = "chumpy.reordering", "Select"
    ch_mod.Ch, re_mod.Select = Ch, Select
    return {"chumpy": root, "chumpy.ch": ch_mod, "chumpy.reordering": re_mod}, Ch, Select


def test_test_built_chumpy_style_pickle_loads(golden_hamer, tmp_path):
    ref = load_mano_file(golden_hamer / "synthetic_MANO_RIGHT.pkl")
    mods, Ch, Select = _fake_chumpy_classes()
    raw = dict(ref)
    perm = np.random.default_rng(0).permutation(ref["shapedirs"].size)
    flat = np.empty(ref["shapedirs"].size)
    flat[perm] = ref["shapedirs"].ravel()  # shuffled storage: idxs must be honoured
    inner = Ch()
    inner.x = flat
    sel = Select()
    sel.a, sel.idxs, sel.preferred_shape = inner, perm, (778, 3, 10)
    raw["shapedirs"] = sel
    vt = Ch()
    vt.x = ref["v_template"]
    raw["v_template"] = vt
    import scipy.sparse
    raw["J_regressor"] = scipy.sparse.csc_matrix(ref["J_regressor"])  # modern scipy pickling
    sys.modules.update(mods)
    try:
        _write_pickle(tmp_path / "MANO_RIGHT.pkl", raw)
    finally:
        for n in mods:
            sys.modules.pop(n, None)
    got = load_mano_file(tmp_path / "MANO_RIGHT.pkl")
    for k in ("shapedirs", "v_template", "J_regressor", "posedirs", "f"):
        assert np.array_equal(got[k], ref[k]), k
    # also a numpy-only pickle at the newest protocol (protocol-5 array buffers)
    _write_pickle(tmp_path / "p5.pkl", dict(ref), protocol=5)
    got5 = load_mano_file(tmp_path / "p5.pkl")
    assert np.array_equal(got5["posedirs"], ref["posedirs"])


class _EvilSystem:
    def __init__(self, sentinel):
        self.sentinel = sentinel

    def __reduce__(self):
        return (os.system, (f"touch {self.sentinel}",))


class _EvilEval:
    def __init__(self, sentinel):
        self.sentinel = sentinel

    def __reduce__(self):
        return (eval, (f"open({str(self.sentinel)!r}, 'w').write('pwned')",))


@pytest.mark.parametrize("protocol", [2, 5])
@pytest.mark.parametrize("evil_cls,refused", [(_EvilSystem, ".system'"), (_EvilEval, ".eval'")])
def test_hostile_pickle_is_refused_without_running(tmp_path, evil_cls, refused, protocol):
    sentinel = tmp_path / "sentinel"
    path = tmp_path / "MANO_RIGHT.pkl"
    _write_pickle(path, {"v_template": np.zeros((778, 3)), "x": evil_cls(sentinel)}, protocol)
    with pytest.raises(ManoFileError) as err:
        load_mano_pickle(path)
    assert refused in str(err.value) and str(path) in str(err.value)
    assert not sentinel.exists()
    with pytest.raises(ManoFileError):
        load_hand_model(tmp_path)
    assert not sentinel.exists()
    # control: the same bytes through plain pickle really do run the payload
    with open(path, "rb") as fh:
        pickle.load(fh)
    assert sentinel.exists()


def test_missing_dir_and_file_give_guidance(tmp_path):
    with pytest.raises(FileNotFoundError, match="mano.is.tue.mpg.de"):
        load_hand_model(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="MANO_RIGHT.pkl"):
        load_hand_model(tmp_path)
    with pytest.raises(FileNotFoundError, match="mano.is.tue.mpg.de"):
        load_mano_file(tmp_path / "MANO_RIGHT.pkl")


def test_malformed_files_give_clear_errors(golden_hamer, tmp_path):
    ref = load_mano_file(golden_hamer / "synthetic_MANO_RIGHT.pkl")
    path = tmp_path / "MANO_RIGHT.pkl"
    bad = dict(ref)
    bad["v_template"] = np.zeros((700, 3))
    _write_pickle(path, bad)
    with pytest.raises(ManoFileError, match=r"v_template.*\(700, 3\).*mano\.is\.tue\.mpg\.de") as err:
        load_hand_model(tmp_path)
    assert str(path) in str(err.value)
    missing = dict(ref)
    del missing["weights"]
    _write_pickle(path, missing)
    with pytest.raises(ManoFileError, match="'weights' is missing"):
        load_mano_file(path)
    path.write_bytes(b"this is not a pickle")
    with pytest.raises(ManoFileError, match="cannot read"):
        load_mano_file(path)
    _write_pickle(path, [1, 2, 3])
    with pytest.raises(ManoFileError, match="expected a pickled dict"):
        load_mano_file(path)
    assert issubclass(ManoFileError, ValueError)


# ----------------------------------------------------------------- MANO forward
def test_mano_matches_golden(golden_hamer, mano_dir):
    g = np.load(golden_hamer / "golden_mano.npz")
    model = load_hand_model(str(mano_dir))
    assert model.name == "mano" and model.num_vertices == 778
    assert model.fingertip_vertex_ids == (744, 320, 443, 554, 671)
    rot = np.concatenate([g["global_orient"], g["hand_pose"]], axis=1).astype(np.float64)
    aa = torch.tensor(Rotation.from_matrix(rot.reshape(-1, 3, 3)).as_rotvec().reshape(3, 48), dtype=torch.float32)
    out = model(aa[:, :3], aa[:, 3:], torch.tensor(g["betas"]), torch.ones(3, dtype=torch.bool))
    assert out.vertices.shape == (3, 778, 3) and out.vertices.dtype == torch.float32
    assert out.joints.shape == (3, 21, 3) and out.joint_rotations.shape == (3, 21, 3, 3)
    np.testing.assert_allclose(out.vertices.numpy(), g["vertices"], atol=1e-5)
    np.testing.assert_allclose(out.joints.numpy(), g["joints_openpose21"], atol=1e-5)
    # joint order: wrist first, tips are the listed vertices, MANO joints via the map
    np.testing.assert_allclose(out.joints[:, 0].numpy(), g["mano_joints16"][:, 0], atol=1e-5)
    for op, mj in enumerate(MANO_TO_OPENPOSE):
        if mj < 16:
            np.testing.assert_allclose(out.joints[:, op].numpy(), g["mano_joints16"][:, mj], atol=1e-5)
    assert torch.equal(out.joints[:, TIP_JOINTS], out.vertices[:, list(MANO_FINGERTIP_IDS)])
    # global rotations: root joint = global_orient; tips take the distal joint's frame
    np.testing.assert_allclose(out.joint_rotations[:, 0].numpy(), g["global_orient"][:, 0], atol=1e-5)
    assert torch.equal(out.joint_rotations[:, 4], out.joint_rotations[:, 3])
    r = out.joint_rotations
    assert torch.allclose(r @ r.transpose(-1, -2), torch.eye(3).expand_as(r), atol=1e-5)


def _check_left_is_mirror(model, seed):
    go, hp, be = _random_params(4, seed)
    right = model(go, hp, be, torch.ones(4, dtype=torch.bool))
    left = model(_mirror_pose(go), _mirror_pose(hp), be, torch.zeros(4, dtype=torch.bool))
    assert torch.allclose(left.vertices, right.vertices * M, atol=1e-6)
    assert torch.allclose(left.joints, right.joints * M, atol=1e-6)
    md = torch.diag(M)
    assert torch.allclose(left.joint_rotations, md @ right.joint_rotations @ md, atol=1e-5)
    assert np.array_equal(model.faces_for(LEFT), model.faces_for(RIGHT)[:, ::-1])
    # and not trivially: the left hand is a different shape from the right one
    assert not torch.allclose(left.vertices, right.vertices, atol=1e-3)


def test_left_is_mirror_mano(mano_dir):
    _check_left_is_mirror(load_hand_model(str(mano_dir)), seed=1)


def test_left_is_mirror_builtin(builtin):
    _check_left_is_mirror(builtin, seed=2)


def test_real_left_file_and_shapedirs_sign_fix(golden_hamer, mano_dir):
    right = load_mano_file(golden_hamer / "synthetic_MANO_RIGHT.pkl")
    left = mirror_model_data(right)
    buggy = dict(left)
    buggy["shapedirs"] = left["shapedirs"].copy()
    buggy["shapedirs"][:, 0, :] = right["shapedirs"][:, 0, :]  # the released file's error
    _write_pickle(mano_dir / "MANO_LEFT.pkl", buggy)
    with_file = load_hand_model(str(mano_dir))
    (mano_dir / "MANO_LEFT.pkl").unlink()
    mirrored = load_hand_model(str(mano_dir))
    go, hp, be = _random_params(2, 3)
    side = torch.zeros(2, dtype=torch.bool)
    assert torch.allclose(with_file(go, hp, be, side).vertices, mirrored(go, hp, be, side).vertices, atol=1e-6)
    fixed = dict(buggy)
    assert fix_left_shapedirs(fixed, right) and not fix_left_shapedirs(fixed, right)


# ------------------------------------------------------------------ built-in hand
def test_builtin_mesh_closed_outward_and_hand_sized(builtin):
    data = builtin_hand.build_builtin_hand()
    v, f = data["v_template"], data["f"]
    assert 1000 <= len(v) <= 3000 and builtin.num_vertices == len(v)
    for key, shape in (("weights", (len(v), 16)), ("J_regressor", (16, len(v))),
                       ("shapedirs", (len(v), 3, 10)), ("posedirs", (len(v), 3, 135)),
                       ("kintree_table", (2, 16))):
        assert data[key].shape == shape, key
    assert np.allclose(data["weights"].sum(1), 1.0) and np.allclose(data["J_regressor"].sum(1), 1.0)
    mesh = trimesh.Trimesh(v, f, process=False)
    assert mesh.is_watertight and mesh.is_winding_consistent and mesh.volume > 0
    assert len(mesh.split(only_watertight=False)) == 1
    joints, _ = builtin_hand.rest_joints()
    assert np.allclose(data["J_regressor"] @ v, joints, atol=1e-9)
    ext = v.max(0) - v.min(0)
    assert 0.17 < ext[0] < 0.24 and 0.10 < ext[2] < 0.17 and 0.03 < ext[1] < 0.08
    go, hp, be = (torch.zeros(1, n) for n in (3, 45, 10))
    out = builtin(go, hp, be, torch.tensor([True]))
    wrist_mid = torch.linalg.norm(out.joints[0, 9] - out.joints[0, 0])
    mid_len = torch.linalg.norm(out.joints[0, 12] - out.joints[0, 9])
    assert 0.08 < wrist_mid < 0.10 and 0.07 < mid_len < 0.095
    # left hand: mirrored vertices with faces_for(LEFT) are still closed and outward
    left = builtin(go, hp, be, torch.tensor([False])).vertices[0].numpy()
    lmesh = trimesh.Trimesh(left, builtin.faces_for(LEFT), process=False)
    assert lmesh.is_watertight and lmesh.is_winding_consistent and lmesh.volume > 0
    wrong = trimesh.Trimesh(left, builtin.faces_for(RIGHT), process=False)
    assert wrong.volume < 0


def test_builtin_regeneration_is_deterministic():
    a = builtin_hand.build_builtin_hand()
    b = dict(builtin_hand._build_cached.__wrapped__())
    assert set(a) == set(b)
    for k in a:
        assert np.array_equal(a[k], b[k]), k


def test_builtin_fingertips_and_joint_order(builtin):
    go, hp, be = _random_params(3, 4)
    out = builtin(go, hp, be, torch.tensor([True, True, False]))
    tips = list(builtin.fingertip_vertex_ids)
    assert len(set(tips)) == 5
    assert torch.equal(out.joints[:, TIP_JOINTS], out.vertices[:, tips])
    # rest pose: tips are the far ends of their fingers and lie on the mesh end
    rest = builtin(*(torch.zeros(1, n) for n in (3, 45, 10)), torch.tensor([True]))
    j = rest.joints[0].numpy()
    _, tip_ends = builtin_hand.rest_joints()
    assert np.allclose(j[TIP_JOINTS], tip_ends, atol=0.003)
    assert np.allclose(j[0], 0.0, atol=1e-6)  # wrist at the origin


def _axes(joints):
    """(finger direction, palm normal) of an OpenPose-ordered rest right hand."""
    up = joints[9] - joints[0]
    up /= np.linalg.norm(up)
    across = joints[5] - joints[17]  # pinky MCP -> index MCP (towards the thumb)
    normal = np.cross(across, up)
    return up, normal / np.linalg.norm(normal)


def test_builtin_orientation_matches_mano(builtin, mano_dir):
    zero = [torch.zeros(1, n) for n in (3, 45, 10)]
    for model in (builtin, load_hand_model(str(mano_dir))):
        j = model(*zero, torch.tensor([True])).joints[0].numpy()
        up, normal = _axes(j)
        assert up @ np.array([-1.0, 0, 0]) > 0.95, model.name  # fingers along -x
        assert normal @ np.array([0, -1.0, 0]) > 0.9, model.name  # palm faces -y
        assert j[4, 2] > j[20, 2] + 0.05, model.name  # thumb tip at +z
        assert j[2, 1] < j[9, 1], model.name  # thumb sits on the palm side


def test_builtin_shape_space_moves_vertices_and_joints(builtin):
    zero = [torch.zeros(1, n) for n in (3, 45, 10)]
    rest = builtin(*zero, torch.tensor([True]))
    for i in range(10):
        be = torch.zeros(1, 10)
        be[0, i] = 1.0
        out = builtin(zero[0], zero[1], be, torch.tensor([True]))
        dv = (out.vertices - rest.vertices).norm(dim=-1).max()
        assert 0.001 < dv < 0.02, i
    be = torch.zeros(1, 10)
    be[0, 0] = 2.0
    big = builtin(zero[0], zero[1], be, torch.tensor([True]))
    ratio = (big.joints[0, 12] - big.joints[0, 0]).norm() / (rest.joints[0, 12] - rest.joints[0, 0]).norm()
    assert abs(float(ratio) - 1.10) < 0.01  # beta 0: +5 % size per unit, joints follow


# ------------------------------------------------------------ forward properties
def test_gradients_reach_pose_and_betas(builtin, mano_dir):
    for model in (builtin, load_hand_model(str(mano_dir))):
        go, hp, be = (t.requires_grad_() for t in _random_params(2, 5))
        out = model(go, hp, be, torch.tensor([True, False]))
        (out.joints.square().sum() + out.vertices.sum()).backward()
        for t in (go, hp, be):
            assert t.grad is not None and torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0
        jac = torch.func.jacrev(lambda b: model(go.detach(), hp.detach(), b, torch.tensor([True, False])).joints)(be.detach())
        assert jac.shape == (2, 21, 3, 2, 10) and jac.abs().sum() > 0
        assert jac[0, :, :, 1].abs().max() == 0  # samples independent


def test_mixed_batch_equals_separate_calls(builtin):
    go, hp, be = _random_params(5, 6)
    side = torch.tensor([True, False, False, True, False])
    mixed = builtin(go, hp, be, side)
    for i in range(5):
        single = builtin(go[i:i + 1], hp[i:i + 1], be[i:i + 1], side[i:i + 1])
        for a, b in zip(mixed, single):
            assert torch.allclose(a[i:i + 1], b, atol=1e-6)
    assert builtin(go, hp, be, True).vertices.shape == (5, builtin.num_vertices, 3)


def test_bad_input_shapes_raise(builtin):
    with pytest.raises(ValueError, match="hand_pose"):
        builtin(torch.zeros(2, 3), torch.zeros(2, 44), torch.zeros(2, 10), torch.ones(2, dtype=torch.bool))
    with pytest.raises(ValueError, match="is_right"):
        builtin(torch.zeros(2, 3), torch.zeros(2, 45), torch.zeros(2, 10), torch.ones(3, dtype=torch.bool))
    with pytest.raises(ValueError):
        builtin.faces_for(2)
    assert isinstance(builtin, HandModel) and builtin.name == "builtin"
    assert builtin.faces_for(RIGHT).dtype == np.int64

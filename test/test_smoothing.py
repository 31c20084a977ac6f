"""One Euro smoothing: vectors, rotations on SO(3) (pi wrap, sign flips, frame invariance),
lag and jitter, a hand's MANO parameters."""
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from hand_mesh_ros.core.mano_params import ManoParams
from hand_mesh_ros.core.smoothing import (HandSmoother, OneEuroFilter, RotationOneEuroFilter,
                                          continuous_rotvec, joint_accelerations)

FPS = 30.0


def angle_between(rv_a, rv_b):
    """Geodesic angles [rad] between rotations given as (N, 3) rotation vectors."""
    return (Rotation.from_rotvec(np.reshape(rv_a, (-1, 3))) *
            Rotation.from_rotvec(np.reshape(rv_b, (-1, 3))).inv()).magnitude()


def run(filt, samples):
    return np.array([filt(x, i / FPS) for i, x in enumerate(samples)])


# ------------------------------------------------------------------ vectors
def test_vector_constant_unchanged_noise_smoothed_motion_followed():
    f = OneEuroFilter(min_cutoff=1.0, beta=0.0)
    const = run(f, [np.array([0.1, -0.2, 0.5])] * 50)
    np.testing.assert_allclose(const, np.tile([0.1, -0.2, 0.5], (50, 1)), atol=1e-15)
    rng = np.random.default_rng(0)
    raw = 1.0 + rng.normal(0, 0.01, (300, 1))
    out = run(OneEuroFilter(1.0, 0.0), raw)
    assert out[50:].std() < 0.5 * raw[50:].std()
    ramp = [np.array([i * 0.05]) for i in range(60)]           # 1.5 units/s
    lag_slow = abs(run(OneEuroFilter(1.0, 0.0), ramp)[-1, 0] - 59 * 0.05)
    lag_fast = abs(run(OneEuroFilter(1.0, 5.0), ramp)[-1, 0] - 59 * 0.05)
    assert lag_fast < 0.1 < lag_slow                           # the speed term removes the lag


def test_vector_speed_is_the_norm_not_per_axis():
    """One cutoff per vector: the same motion along x or along a diagonal is filtered alike."""
    t = np.arange(40)
    along_x = [np.array([0.02 * k, 0.0, 0.0]) for k in t]
    diag = [np.array([0.02 * k, 0.02 * k, 0.0]) / np.sqrt(2) for k in t]
    a = run(OneEuroFilter(1.0, 2.0), along_x)
    b = run(OneEuroFilter(1.0, 2.0), diag)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1), rtol=1e-12)


def test_time_going_back_restarts():
    f = OneEuroFilter(1.0, 0.0)
    f(np.array([0.0]), 1.0)
    f(np.array([1.0]), 1.1)
    np.testing.assert_array_equal(f(np.array([5.0]), 0.5), [5.0])    # a bag played again
    np.testing.assert_array_equal(f(np.array([7.0, 1.0]), 0.6), [7.0, 1.0])  # another shape


@pytest.mark.parametrize("kwargs", [dict(min_cutoff=0.0, beta=0.5), dict(min_cutoff=1.0, beta=-1.0),
                                    dict(min_cutoff=np.nan, beta=0.5)])
def test_invalid_parameters(kwargs):
    with pytest.raises(ValueError, match="One Euro"):
        OneEuroFilter(**kwargs)
    with pytest.raises(ValueError, match="One Euro"):
        RotationOneEuroFilter(**kwargs)


# ------------------------------------------------------------------ rotations
def test_continuous_rotvec():
    n = np.array([0.0, 0.6, 0.8])
    # 3.3 rad about n is given canonically as (2 pi - 3.3) about -n
    canon = Rotation.from_rotvec(3.3 * n).as_rotvec()
    assert np.linalg.norm(canon) < np.pi
    np.testing.assert_allclose(continuous_rotvec(canon[None], (3.2 * n)[None])[0], 3.3 * n, atol=1e-12)
    np.testing.assert_allclose(continuous_rotvec((0.1 * n)[None], (2 * np.pi * n)[None])[0],
                               (0.1 + 2 * np.pi) * n, atol=1e-12)
    np.testing.assert_allclose(continuous_rotvec(np.zeros((1, 3)), (0.1 * n)[None]), np.zeros((1, 3)))


def test_rotation_constant_unchanged_any_representation():
    """A constant rotation stays the same vector, also at 4.5 rad (un-wrapped) and when the
    input alternates between equivalent axis-angle vectors (a quaternion sign flip)."""
    n = np.array([0.48, -0.6, 0.64])
    rv = np.stack([4.5 * n, 0.3 * n[[1, 2, 0]]])
    f = RotationOneEuroFilter(1.0, 0.5)
    for i in range(40):
        alt = rv.copy()
        if i % 2:
            alt[0] = (4.5 - 2 * np.pi) * n           # the same rotation, the other way round
        out = f(alt, i / FPS)
        np.testing.assert_allclose(out, rv, atol=1e-9)


def test_rotation_crossing_pi_has_no_jump():
    """A turn about a fixed axis through pi, fed as quaternions of random sign converted to
    scipy's canonical rotation vectors (which jump from +pi n to -pi n there), and every
    third frame as the equivalent vector the other way round (|theta| > pi): the filtered
    rotation follows smoothly and its axis-angle output stays continuous. Filtering the
    axis-angle components one by one (the old way) makes a large error."""
    rng = np.random.default_rng(2)
    n = np.array([1.0, 2.0, 2.0]) / 3.0
    angles = np.linspace(2.6, 3.7, 60)                         # crosses pi at about frame 29
    quat = Rotation.from_rotvec(angles[:, None] * n).as_quat()
    quat *= rng.choice([-1.0, 1.0], (60, 1))                   # sign flips
    rv_in = Rotation.from_quat(quat).as_rotvec()
    rv_in[::3] -= 2 * np.pi * rv_in[::3] / np.linalg.norm(rv_in[::3], axis=1, keepdims=True)
    assert np.linalg.norm(np.diff(rv_in, axis=0), axis=1).max() > 6.0   # the input jumps
    f = RotationOneEuroFilter(1.0, 0.5)
    out = np.array([f(r[None], i / FPS)[0] for i, r in enumerate(rv_in)])
    step = angle_between(out[1:], out[:-1])
    assert step.max() < 2 * np.diff(angles).max()             # never faster than the input
    assert np.linalg.norm(np.diff(out, axis=0), axis=1).max() < 0.05   # continuous vectors
    assert angle_between(out, angles[:, None] * n).max() < 0.1  # follows (little lag)
    naive = run(OneEuroFilter(1.0, 0.5), rv_in)
    assert angle_between(naive, angles[:, None] * n).max() > 1.0


def test_rotation_jitter_reduced_and_speed_cuts_lag():
    rng = np.random.default_rng(4)
    base = Rotation.from_rotvec([0.3, -1.0, 2.0])
    noisy = (Rotation.from_rotvec(rng.normal(0, np.deg2rad(2.0), (150, 3))) * base).as_rotvec()
    f = RotationOneEuroFilter(1.0, 0.5)
    out = np.array([f(r[None], i / FPS)[0] for i, r in enumerate(noisy)])
    jitter_in = angle_between(noisy[31:], noisy[30:-1]).mean()
    jitter_out = angle_between(out[31:], out[30:-1]).mean()
    assert jitter_out < 0.25 * jitter_in
    assert angle_between(out[30:], np.tile(base.as_rotvec(), (120, 1))).mean() < np.deg2rad(1.5)
    # a steady turn at 3 rad/s: with the speed term the filter lags far less
    turn = [(Rotation.from_rotvec([0, 0, 3.0 * i / FPS]) * base).as_rotvec()[None] for i in range(45)]
    lag = {}
    for beta in (0.0, 1.0):
        g = RotationOneEuroFilter(1.0, beta)
        last = [g(r, i / FPS) for i, r in enumerate(turn)][-1]
        lag[beta] = angle_between(last, turn[-1])[0]
    assert lag[1.0] < 0.3 * lag[0.0] and lag[1.0] < np.deg2rad(10)


def test_rotation_filter_does_not_depend_on_the_camera_frame():
    """Filtering rotations expressed in another fixed frame (Q R) gives Q times the result."""
    rng = np.random.default_rng(6)
    seq = Rotation.from_rotvec(np.cumsum(rng.normal(0, 0.1, (50, 3)), axis=0) + [0, 0, 2.5])
    q = Rotation.from_rotvec([0.5, -2.0, 1.0])
    fa, fb = RotationOneEuroFilter(1.0, 0.7), RotationOneEuroFilter(1.0, 0.7)
    for i in range(50):
        a = Rotation.from_rotvec(fa(seq[i].as_rotvec()[None], i / FPS))
        b = Rotation.from_rotvec(fb((q * seq[i]).as_rotvec()[None], i / FPS))
        assert (q * a * b.inv()).magnitude()[0] < 1e-9


# ------------------------------------------------------------------ a hand
def test_hand_smoother_shapes_constant_and_non_finite():
    rng = np.random.default_rng(7)
    go, hp, betas, transl = rng.normal(0, 1, 3), rng.normal(0, 0.3, 45), rng.normal(0, 1, 10), np.array([0, 0, 0.5])
    s = HandSmoother(1.0, 0.5)
    fields = lambda p: (p.global_orient, p.hand_pose, p.betas, p.transl)  # noqa: E731
    for i in range(10):
        out = fields(s(ManoParams(go, hp, betas, transl), i / FPS))
        assert [o.shape for o in out] == [(3,), (45,), (10,), (3,)]
        for o, x in zip(out, (go, hp, betas, transl)):
            np.testing.assert_allclose(o, x, atol=1e-9)
    bad = s(ManoParams(go, hp, betas, np.array([np.nan, 0, 0.5])), 11 / FPS)   # passes, restarts the filters
    assert np.isnan(bad.transl[0])
    moved = s(ManoParams(go, hp, betas, transl + [0.1, 0, 0]), 12 / FPS)       # first sample after the restart
    np.testing.assert_allclose(moved.transl, transl + [0.1, 0, 0])


def test_hand_smoother_translation_speed_in_hand_lengths():
    """A hand moving 0.3 m/s is followed as closely as a hand turning 3 rad/s (same beta)."""
    s = HandSmoother(1.0, 1.0)
    lag_t = lag_r = None
    for i in range(45):
        t = i / FPS
        go = (Rotation.from_rotvec([0, 0, 3.0 * t]) * Rotation.from_rotvec([0.1, 0.2, 0.3])).as_rotvec()
        out = s(ManoParams(go, np.zeros(45), np.zeros(10), np.array([0.3 * t, 0, 0.5])), t)
        lag_t = abs(out.transl[0] - 0.3 * t) / 0.1               # hand lengths
        lag_r = angle_between(out.global_orient, go)[0]           # rad = fingertip travel / length
    assert lag_t == pytest.approx(lag_r, rel=0.2)


def test_joint_accelerations():
    t = np.arange(10, dtype=np.float64)
    walk = np.zeros((10, 21, 3))
    walk[..., 0] = 0.001 * t[:, None]                           # 1 mm/frame, constant speed
    assert joint_accelerations(walk).shape == (8, 21)
    assert joint_accelerations(walk).max() == pytest.approx(0.0, abs=1e-9)
    walk[..., 1] = 0.0005 * t[:, None] ** 2                     # + 1 mm/frame^2 along y
    np.testing.assert_allclose(joint_accelerations(walk), 1.0, rtol=1e-9)
    with pytest.raises(ValueError, match="3 frames"):
        joint_accelerations(walk[:2])

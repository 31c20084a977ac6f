"""One Euro smoothing of a tracked hand: vectors, rotations, and a hand's MANO parameters.

The One Euro filter (Casiez, Roussel & Vogel, "1€ Filter: A Simple Speed-based Low-pass
Filter for Noisy Input in Interactive Systems", CHI 2012) is a first-order low-pass whose
cutoff rises with the signal's speed: strong smoothing when the hand is still (no jitter),
little lag when it moves. Per sample ``x_i`` at time ``t_i`` (``dt = t_i - t_{i-1}``)::

    alpha(fc) = 1 / (1 + tau / dt),  tau = 1 / (2 pi fc)
    dx_i   = (x_i - x^_{i-1}) / dt                   # speed against the last output
    dx^_i  = dx^_{i-1} + alpha(d_cutoff) (dx_i - dx^_{i-1})
    fc_i   = min_cutoff + beta |dx^_i|
    x^_i   = x^_{i-1} + alpha(fc_i) (x_i - x^_{i-1})

* :class:`OneEuroFilter` — vectors (translation, MANO betas). ``|dx^|`` is the Euclidean
  norm of the velocity vector (one cutoff per vector, so the result does not depend on the
  axes), divided by ``speed_unit``.
* :class:`RotationOneEuroFilter` — rotations, on SO(3) itself: the difference
  ``x_i - x^_{i-1}`` becomes the rotation vector of ``R_i R^_{i-1}^T`` (shortest path, angle
  in [0, pi], so no axis-angle wrap at pi and no quaternion sign flip can make a jump), the
  speed is the angular velocity [rad/s], and the update ``x^ + alpha (x - x^)`` becomes the
  geodesic step ``R^_i = exp(alpha log(R_i R^_{i-1}^T)) R^_{i-1}`` (= slerp of the unit
  quaternions by ``alpha``; the result is a rotation by construction, no re-normalisation).
* :class:`HandSmoother` — one hand: global_orient and the 15 hand_pose rotations (16
  rotation filters), betas (vector), translation (vector, speed in hand lengths per second,
  :data:`TRANSLATION_SPEED_UNIT_M`).

Rotations use ``scipy.spatial.transform.Rotation``. Axis-angle outputs are kept continuous
from frame to frame (:func:`continuous_rotvec`: of the equivalent vectors ``(theta + 2 pi k) n``
the one nearest the previous output), so a consumer differencing them sees no 2 pi jump.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
from scipy.spatial.transform import Rotation

from .mano_params import ManoParams

#: Cutoff of the speed estimate [Hz] (the paper's recommended 1 Hz).
D_CUTOFF_HZ = 1.0
#: Translation speed is counted in units of this length per second [m] (about a hand's
#: length), so that one ``beta`` means the same for a hand moving 0.1 m/s as for a hand
#: turning 1 rad/s (its fingertips then move about 0.1 m/s).
TRANSLATION_SPEED_UNIT_M = 0.1


def smoothing_factor(cutoff_hz, dt: float):
    """One Euro's ``alpha = 1 / (1 + tau / dt)``, ``tau = 1 / (2 pi cutoff)``; ``cutoff_hz``
    scalar or array [Hz], ``dt`` > 0 [s] -> same shape as ``cutoff_hz``, in (0, 1)."""
    tau = 1.0 / (2.0 * np.pi * np.asarray(cutoff_hz, np.float64))
    return 1.0 / (1.0 + tau / dt)


def _check(min_cutoff: float, beta: float, d_cutoff: float) -> None:
    if not (np.isfinite(min_cutoff) and min_cutoff > 0):
        raise ValueError(f"One Euro min_cutoff must be > 0 Hz, got {min_cutoff}")
    if not (np.isfinite(beta) and beta >= 0):
        raise ValueError(f"One Euro beta must be >= 0, got {beta}")
    if not (np.isfinite(d_cutoff) and d_cutoff > 0):
        raise ValueError(f"One Euro d_cutoff must be > 0 Hz, got {d_cutoff}")


class OneEuroFilter:
    """One Euro filter on vectors (see the module docstring).

    Args:
        min_cutoff: cutoff at rest [Hz] (> 0; lower = smoother when still, more lag).
        beta: speed coefficient [Hz per (speed_unit / s)] (>= 0; higher = less lag when moving).
        d_cutoff: cutoff of the speed estimate [Hz].
        speed_unit: the speed ``|dx^|`` is divided by this (e.g. metres per hand length).

    ``__call__(x, t)``: ``x`` (..., D) float array (one cutoff per vector along the last
    axis), ``t`` its time [s]; returns the filtered float64 array of the same shape. The
    first sample, a time that does not increase (e.g. a bag played again) or a shape
    change restarts the filter (output = input).

    Raises:
        ValueError: a parameter out of range.
    """

    def __init__(self, min_cutoff: float, beta: float, d_cutoff: float = D_CUTOFF_HZ,
                 speed_unit: float = 1.0):
        _check(min_cutoff, beta, d_cutoff)
        self.min_cutoff, self.beta, self.d_cutoff = float(min_cutoff), float(beta), float(d_cutoff)
        self.speed_unit = float(speed_unit)
        self.reset()

    def reset(self) -> None:
        """Forget the past; the next sample passes unchanged."""
        self._x: Optional[np.ndarray] = None
        self._dx: Optional[np.ndarray] = None
        self._t: Optional[float] = None

    def __call__(self, x, t: float) -> np.ndarray:
        x = np.array(x, np.float64)
        if self._x is None or t <= self._t or x.shape != self._x.shape:
            self._x, self._dx, self._t = x, np.zeros_like(x), float(t)
            return x.copy()
        dt = float(t) - self._t
        self._dx = self._dx + smoothing_factor(self.d_cutoff, dt) * ((x - self._x) / dt - self._dx)
        speed = np.linalg.norm(self._dx, axis=-1, keepdims=True) / self.speed_unit
        self._x = self._x + smoothing_factor(self.min_cutoff + self.beta * speed, dt) * (x - self._x)
        self._t = float(t)
        return self._x.copy()


def continuous_rotvec(rotvec: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """The axis-angle vectors equivalent to ``rotvec`` nearest ``previous``.

    Args:
        rotvec: (N, 3) rotation vectors [rad] (any angle).
        previous: (N, 3) reference rotation vectors [rad].

    Returns:
        (N, 3) float64 ``(theta + 2 pi k) n`` (``n``, ``theta`` the axis and angle of
        ``rotvec``) with the integer ``k`` that minimises the distance to ``previous``:
        the same rotations, with no 2 pi jump against ``previous``.
    """
    r = np.asarray(rotvec, np.float64).reshape(-1, 3)
    p = np.asarray(previous, np.float64).reshape(-1, 3)
    theta = np.linalg.norm(r, axis=1)
    small = theta < 1e-9
    # at the identity any axis will do: take the previous one
    pn = np.linalg.norm(p, axis=1)
    axis = np.where(small[:, None], p / np.maximum(pn, 1e-12)[:, None], r / np.maximum(theta, 1e-12)[:, None])
    theta = np.where(small, 0.0, theta)
    k = np.round((np.einsum("ij,ij->i", axis, p) - theta) / (2.0 * np.pi))
    return (theta + 2.0 * np.pi * k)[:, None] * axis


class RotationOneEuroFilter:
    """One Euro filter on N rotations, on SO(3) (see the module docstring).

    Args:
        min_cutoff: cutoff at rest [Hz] (> 0).
        beta: speed coefficient [Hz per rad/s] (>= 0); the speed is the filtered angular
            velocity's norm.
        d_cutoff: cutoff of the angular velocity estimate [Hz].

    ``__call__(rotvec, t)``: ``rotvec`` (N, 3) axis-angle [rad] (any angle, either sign
    convention), ``t`` [s]; returns (N, 3) float64 axis-angle of the filtered rotations,
    continuous with the previous output (:func:`continuous_rotvec`). Restarts like
    :class:`OneEuroFilter` (first sample, time not increasing, another N).

    Raises:
        ValueError: a parameter out of range.
    """

    def __init__(self, min_cutoff: float, beta: float, d_cutoff: float = D_CUTOFF_HZ):
        _check(min_cutoff, beta, d_cutoff)
        self.min_cutoff, self.beta, self.d_cutoff = float(min_cutoff), float(beta), float(d_cutoff)
        self.reset()

    def reset(self) -> None:
        """Forget the past; the next sample passes unchanged."""
        self._r: Optional[Rotation] = None       # filtered rotations
        self._w: Optional[np.ndarray] = None     # (N, 3) filtered angular velocity [rad/s]
        self._out: Optional[np.ndarray] = None   # (N, 3) last output rotation vectors
        self._t: Optional[float] = None

    def __call__(self, rotvec, t: float) -> np.ndarray:
        rv = np.asarray(rotvec, np.float64).reshape(-1, 3)
        if self._r is None or t <= self._t or len(rv) != len(self._out):
            self._r, self._w, self._t = Rotation.from_rotvec(rv), np.zeros_like(rv), float(t)
            self._out = rv.copy()
            return rv.copy()
        dt = float(t) - self._t
        # x_i - x^_{i-1} on SO(3): the shortest rotation from the last output to the sample,
        # in the camera (fixed) frame
        step = (Rotation.from_rotvec(rv) * self._r.inv()).as_rotvec()
        self._w = self._w + smoothing_factor(self.d_cutoff, dt) * (step / dt - self._w)
        cutoff = self.min_cutoff + self.beta * np.linalg.norm(self._w, axis=1)
        alpha = smoothing_factor(cutoff, dt)
        self._r = Rotation.from_rotvec(alpha[:, None] * step) * self._r
        self._out = continuous_rotvec(self._r.as_rotvec(), self._out)
        self._t = float(t)
        return self._out.copy()


class HandSmoother:
    """One Euro smoothing of one tracked hand's MANO parameters and translation.

    Args:
        min_cutoff: cutoff at rest [Hz] (``smoothing_min_cutoff``), > 0.
        beta: speed coefficient (``smoothing_beta``), >= 0: per rad/s for the rotations,
            per hand length (:data:`TRANSLATION_SPEED_UNIT_M`) per second for the
            translation, per unit/s for betas.

    ``__call__(params, t)`` with one hand's ``ManoParams`` (global_orient (3,) and hand_pose
    (45,) axis-angle [rad], betas (10,), transl (3,) [m]) and the image time ``t`` [s]
    returns the filtered ``ManoParams``, float64, same shapes. Non-finite input restarts
    the filters and is returned unchanged (it never poisons the state).

    Raises:
        ValueError: a parameter out of range.
    """

    def __init__(self, min_cutoff: float, beta: float):
        self.rotations = RotationOneEuroFilter(min_cutoff, beta)
        self.betas = OneEuroFilter(min_cutoff, beta)
        self.transl = OneEuroFilter(min_cutoff, beta, speed_unit=TRANSLATION_SPEED_UNIT_M)

    def reset(self) -> None:
        for f in (self.rotations, self.betas, self.transl):
            f.reset()

    def __call__(self, params: ManoParams, t: float) -> ManoParams:
        rot = params.rotvecs().astype(np.float64)      # (16, 3)
        betas, transl = np.asarray(params.betas, np.float64), np.asarray(params.transl, np.float64)
        if not (np.isfinite(rot).all() and np.isfinite(betas).all() and np.isfinite(transl).all()):
            self.reset()
            return ManoParams.from_rotvecs(rot, betas, transl)
        return ManoParams.from_rotvecs(self.rotations(rot, t), self.betas(betas, t), self.transl(transl, t))


def joint_accelerations(joints) -> np.ndarray:
    """Frame-to-frame acceleration of joints, the jitter measure of the README.

    Args:
        joints: (T, J, 3) positions [m] of the same hand in T consecutive frames.

    Returns:
        (T - 2, J) float64 ``|p[t+1] - 2 p[t] + p[t-1]|`` [mm / frame^2]; its mean is the
        "mean frame-to-frame joint acceleration" (0 for a hand at rest or moving at a
        constant velocity, large for jitter).

    Raises:
        ValueError: fewer than 3 frames or not (T, J, 3).
    """
    p = np.asarray(joints, np.float64)
    if p.ndim != 3 or p.shape[2] != 3 or len(p) < 3:
        raise ValueError(f"joint_accelerations needs (T >= 3 frames, J, 3) positions, got {p.shape}")
    return 1e3 * np.linalg.norm(p[2:] - 2.0 * p[1:-1] + p[:-2], axis=-1)

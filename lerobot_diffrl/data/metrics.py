"""Trajectory-quality metrics over episodes: smoothness, consistency and efficiency, in pure NumPy.

The method's claim is that diffusion-RL data is *smoother* and *lower-variance* than human teleoperation data
and than Gaussian-policy RL data. The paper gives no formula, so these are the definitions this project uses
(``lerobot-diffrl-report`` computes them; lower is smoother / more consistent unless stated):

Per episode (``actions`` is (T, A), ``eef`` is the end-effector position (T, 3) in metres):

- **length**: T, the number of frames (one frame per control step).
- **mean squared jerk**: mean over steps and action dimensions of the squared third finite difference of the
  action sequence, ``mean((a[t+3] - 3 a[t+2] + 3 a[t+1] - a[t])**2)``. Units are action units per step cubed,
  squared: differences are taken per frame and *not* divided by ``dt``, because one frame is one control step in
  every LIBERO dataset while the ``fps`` written in their metadata differs (LeRobot's Hub ports of LIBERO say 10,
  LIBERO controls at 20 Hz); per-step values compare datasets recorded at the same control rate.
- **mean |delta a|**: mean over steps and action dimensions of ``|a[t+1] - a[t]|`` (action units per step).
- **path length**: ``sum_t ||eef[t+1] - eef[t]||`` (m).

Per group of episodes of the same task (they start from the same init-state distribution, so their spread
measures consistency rather than task differences):

- **path-length variance**: population variance (ddof=0) of the path lengths (m^2).
- **endpoint variance**: mean squared distance of the final eef positions to their centroid, i.e. the trace of
  their population covariance (m^2).
- **pairwise trajectory distance** (resampled L2, not DTW): every eef path is linearly resampled to ``n_points``
  points uniformly spaced in normalised time [0, 1]; the distance of two paths is the mean Euclidean distance of
  corresponding points (m); the metric is the mean over all unordered pairs. DTW was not used because it is
  O(T^2) per pair and, by warping time, hides differences in speed that the resampled distance keeps.
- **action variance**: actions resampled the same way; population variance across episodes at each normalised
  time and action dimension, averaged over times and dimensions ((action units)^2). It measures whether episodes
  of one task issue the same commands at the same phase of the task.

Every function returns ``nan`` when it is undefined (too few steps or episodes) so that callers can report
"n/a" instead of a misleading zero.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Points per resampled trajectory for the pairwise distance and the action variance.
DEFAULT_RESAMPLE_POINTS = 64


def _as_2d(x: np.ndarray) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    return arr[:, None] if arr.ndim == 1 else arr


def mean_abs_delta_action(actions: np.ndarray) -> float:
    """Mean of ``|a[t+1] - a[t]|`` over steps and dimensions; ``nan`` for fewer than 2 steps."""
    a = _as_2d(actions)
    if len(a) < 2:
        return float("nan")
    return float(np.mean(np.abs(np.diff(a, axis=0))))


def mean_squared_jerk(actions: np.ndarray) -> float:
    """Mean squared third finite difference of the actions (per step); ``nan`` for fewer than 4 steps."""
    a = _as_2d(actions)
    if len(a) < 4:
        return float("nan")
    return float(np.mean(np.diff(a, n=3, axis=0) ** 2))


def path_length(positions: np.ndarray) -> float:
    """Sum of the Euclidean lengths of consecutive displacements; 0 for a single point."""
    p = _as_2d(positions)
    if len(p) < 2:
        return 0.0
    return float(np.sum(np.linalg.norm(np.diff(p, axis=0), axis=1)))


def population_variance(values: Sequence[float]) -> float:
    """Variance with ddof=0 of finite values; ``nan`` for fewer than 2 of them."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(np.var(v)) if len(v) >= 2 else float("nan")


def endpoint_variance(endpoints: np.ndarray) -> float:
    """Mean squared distance of the points to their centroid (trace of the covariance, ddof=0)."""
    e = _as_2d(endpoints)
    if len(e) < 2:
        return float("nan")
    return float(np.mean(np.sum((e - e.mean(axis=0)) ** 2, axis=1)))


def resample(sequence: np.ndarray, n_points: int = DEFAULT_RESAMPLE_POINTS) -> np.ndarray:
    """Linearly resample a (T, D) sequence to (n_points, D), uniformly in normalised time [0, 1]."""
    x = _as_2d(sequence)
    if len(x) == 0:
        raise ValueError("cannot resample an empty sequence")
    if len(x) == 1:
        return np.repeat(x, n_points, axis=0)
    src = np.linspace(0.0, 1.0, len(x))
    dst = np.linspace(0.0, 1.0, n_points)
    return np.stack([np.interp(dst, src, x[:, d]) for d in range(x.shape[1])], axis=1)


def pairwise_trajectory_distance(
    paths: Sequence[np.ndarray], n_points: int = DEFAULT_RESAMPLE_POINTS
) -> float:
    """Mean over unordered pairs of the mean pointwise distance of time-normalised resampled paths."""
    if len(paths) < 2:
        return float("nan")
    r = np.stack([resample(p, n_points) for p in paths])  # (n, P, D)
    total, pairs = 0.0, 0
    for i in range(len(r) - 1):  # row by row: O(n) memory instead of O(n^2) for thousands of episodes
        d = np.linalg.norm(r[i + 1 :] - r[i], axis=2).mean(axis=1)
        total += float(d.sum())
        pairs += len(d)
    return total / pairs


def action_variance(action_sequences: Sequence[np.ndarray], n_points: int = DEFAULT_RESAMPLE_POINTS) -> float:
    """Across-episode variance (ddof=0) of time-normalised actions, averaged over time and dimensions."""
    if len(action_sequences) < 2:
        return float("nan")
    r = np.stack([resample(a, n_points) for a in action_sequences])  # (n, P, A)
    return float(np.mean(np.var(r, axis=0)))

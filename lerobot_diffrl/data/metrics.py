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
- **SPARC** (spectral arc length, Balasubramanian et al. 2012, 2015; as in their reference implementation,
  siva82kb/SPARC ``scripts/smoothness.py``): the eef speed profile ``||v(t)||`` with ``v = diff(eef) * fs``
  is Fourier-transformed with zero padding to ``nfft = 2**(ceil(log2(len)) + 4)`` points, the magnitude is
  normalised by its DC value (its maximum, for a speed), the spectrum is kept up to ``fc = 10`` Hz and then up
  to the last frequency whose normalised magnitude is ``>= 0.05`` (the adaptive cut-off ``wc``), and SPARC is
  minus the arc length of that curve over normalised frequency ``f / wc``:
  ``-sum(sqrt((df / wc)**2 + dM**2))``. Dimensionless and negative; *higher (closer to 0) is smoother*: a
  single minimum-jerk reach scores about -1.40, every extra submovement, stop or tremor adds spectral arcs
  and lowers it. SPARC is used because it is robust to noise and insensitive to amplitude and duration.
- **LDLJ** (log dimensionless jerk, Hogan & Sternad 2009):
  ``-ln(T**3 / v_peak**2 * integral ||d^2 v / dt^2||**2 dt)`` with ``T = (len - 1) / fs`` the duration,
  ``v_peak`` the peak eef speed and the jerk ``d^2 v / dt^2 = diff(eef, 3) * fs**3`` of the eef velocity
  vector, integrated as a sum times ``1 / fs``. Dimensionless (amplitude and duration cancel); *higher is
  smoother*: a minimum-jerk reach scores ``-ln(720 / 1.875**2) = -5.32`` in the continuous limit. Unlike the
  per-step mean squared jerk above it is on the eef path, not on the commands, and comparable across speeds.
  It is defined for rest-to-rest movements (where minimum jerk is its best value); an episode that starts or
  ends in motion can score higher, and a near-constant-velocity path, whose only jerk is rounding noise, very
  high.

Both need the control rate ``fs``: it is an argument, default :data:`LIBERO_CONTROL_HZ` (20 Hz), and not read
from a dataset's ``fps`` because that metadata is unreliable for LIBERO (see the jerk entry above). Both are
``nan`` when undefined: too few frames, or an eef that never moves (zero speed); LDLJ also for a path without
any jerk (exact constant velocity, whose LDLJ is +inf).

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

Length control (longer episodes look smoother on per-step and spectral measures alike, a known confound,
arXiv 2606.10229): :func:`fit_log_length` fits the slope ``b`` of ``metric ~ b * ln(length)`` by least squares
over a pool of episodes, within groups (one intercept per group, e.g. per dataset and task, so that the
differences between datasets being compared are not mistaken for a length effect), and ``LogLengthFit.adjust``
removes the length trend, ``metric - b * (ln(length) - mean ln(length))``: the value the episode would have at
the pool's mean log-length, in the metric's own units. Over the fitted pool the adjusted values have the same
mean as the raw ones; between groups they differ by what length does not explain.

Every function returns ``nan`` when it is undefined (too few steps or episodes) so that callers can report
"n/a" instead of a misleading zero.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: Points per resampled trajectory for the pairwise distance and the action variance.
DEFAULT_RESAMPLE_POINTS = 64
#: LIBERO's control rate (robosuite control_freq): one frame per control step at 20 Hz.
LIBERO_CONTROL_HZ = 20.0
#: SPARC's settings, the reference implementation's defaults: zero-padding level, maximum cut-off (Hz),
#: amplitude threshold of the adaptive cut-off.
SPARC_PAD_LEVEL = 4
SPARC_MAX_CUTOFF_HZ = 10.0
SPARC_AMPLITUDE_THRESHOLD = 0.05


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


def speed_profile(positions: np.ndarray, fs: float = LIBERO_CONTROL_HZ) -> np.ndarray:
    """Speed ``||diff(p)|| * fs`` of a (T, D) path sampled at ``fs`` Hz: T - 1 values (units of p per second)."""
    p = _as_2d(positions)
    return np.linalg.norm(np.diff(p, axis=0), axis=1) * float(fs)


def spectral_arc_length(
    speed: np.ndarray,
    fs: float = LIBERO_CONTROL_HZ,
    *,
    pad_level: int = SPARC_PAD_LEVEL,
    max_cutoff_hz: float = SPARC_MAX_CUTOFF_HZ,
    amplitude_threshold: float = SPARC_AMPLITUDE_THRESHOLD,
) -> float:
    """SPARC of a speed profile sampled at ``fs`` Hz (see the module docstring); ``nan`` when undefined.

    Takes the speed, as the reference implementation does, so it can be checked against its published values;
    :func:`sparc` computes it from positions.
    """
    v = np.asarray(speed, dtype=np.float64).ravel()
    if len(v) < 2 or not np.all(np.isfinite(v)):
        return float("nan")
    nfft = int(2 ** (np.ceil(np.log2(len(v))) + pad_level))
    magnitude = np.abs(np.fft.rfft(v, nfft))  # bins 0 .. nfft/2: frequencies k * fs / nfft up to Nyquist
    if not magnitude[0] > 0.0:
        return float("nan")  # the eef never moves: no spectrum to normalise
    magnitude /= magnitude[0]
    freq = np.arange(len(magnitude)) * (float(fs) / nfft)
    keep = freq <= max_cutoff_hz
    freq, magnitude = freq[keep], magnitude[keep]
    above = np.flatnonzero(magnitude >= amplitude_threshold)
    freq, magnitude = freq[above[0] : above[-1] + 1], magnitude[above[0] : above[-1] + 1]
    if len(freq) < 2:
        return float("nan")
    span = freq[-1] - freq[0]  # the adaptive cut-off frequency (the range starts at DC for a speed)
    return float(-np.sum(np.sqrt((np.diff(freq) / span) ** 2 + np.diff(magnitude) ** 2)))


def sparc(positions: np.ndarray, fs: float = LIBERO_CONTROL_HZ) -> float:
    """SPARC of the speed profile of a (T, 3) eef path at ``fs`` Hz; higher (closer to 0) is smoother."""
    return spectral_arc_length(speed_profile(positions, fs), fs)


def log_dimensionless_jerk(positions: np.ndarray, fs: float = LIBERO_CONTROL_HZ) -> float:
    """LDLJ of a (T, 3) eef path at ``fs`` Hz (see the module docstring); higher is smoother.

    ``nan`` for fewer than 4 points, a path that never moves, or one without jerk (LDLJ would be +inf).
    """
    p = _as_2d(positions)
    if len(p) < 4 or not np.all(np.isfinite(p)):
        return float("nan")
    fs = float(fs)
    peak_speed = float(np.max(speed_profile(p, fs)))
    jerk = np.diff(p, n=3, axis=0) * fs**3
    integral = float(np.sum(jerk**2)) / fs
    if peak_speed <= 0.0 or integral <= 0.0:
        return float("nan")
    duration = (len(p) - 1) / fs
    return float(-np.log(duration**3 / peak_speed**2 * integral))


@dataclass(frozen=True)
class LogLengthFit:
    """``metric = intercept + slope * ln(length)`` fitted over ``n`` episodes whose mean ln(length) is
    ``center``; ``adjust`` removes the length trend (see the module docstring)."""

    slope: float
    intercept: float
    center: float
    n: int

    def adjust(self, value: float, length: float) -> float:
        if not (math.isfinite(value) and length > 0):
            return float("nan")
        return float(value - self.slope * (math.log(length) - self.center))


def fit_log_length(
    lengths: Sequence[float], values: Sequence[float], groups: Sequence[object] | None = None
) -> LogLengthFit:
    """Least-squares slope of ``values`` on ``ln(lengths)`` over the finite pairs with length > 0.

    With ``groups`` (one label per episode) the slope is the pooled *within-group* one (a regression with one
    intercept per group): it is estimated only from length differences inside each group, so a difference
    between groups (datasets, tasks) that happens to go with length is not taken for a length effect. The
    centre is the mean ln(length) of all pairs. No length variation (fewer than two pairs, one length per
    group): slope 0, nothing to remove.
    """
    x = np.asarray(lengths, dtype=np.float64)
    y = np.asarray(values, dtype=np.float64)
    g = np.zeros(len(x), dtype=np.int64) if groups is None else _group_ids(groups)
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0)
    x, y, g = np.log(x[ok]), y[ok], g[ok]
    if len(x) == 0:
        return LogLengthFit(0.0, float("nan"), float("nan"), 0)
    sxx = sxy = 0.0
    for label in np.unique(g):
        xs, ys = x[g == label], y[g == label]
        sxx += float(np.sum((xs - xs.mean()) ** 2))
        sxy += float(np.sum((xs - xs.mean()) * (ys - ys.mean())))
    slope = sxy / sxx if sxx > 1e-12 else 0.0
    center = float(np.mean(x))
    return LogLengthFit(slope, float(np.mean(y)) - slope * center, center, int(len(x)))


def _group_ids(groups: Sequence[object]) -> np.ndarray:
    ids: dict[object, int] = {}
    return np.asarray([ids.setdefault(label, len(ids)) for label in groups], dtype=np.int64)

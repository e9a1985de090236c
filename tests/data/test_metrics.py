"""Trajectory-quality metrics against values computed by hand for simple signals."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lerobot_diffrl.data import metrics as M


def test_constant_velocity_line_has_zero_jerk_and_zero_action_change():
    steps = 50
    velocity = np.array([0.3, -0.1, 0.2, 0.0, 0.0, 0.05])
    actions = np.tile(velocity, (steps, 1))  # a velocity command held constant
    positions = np.outer(np.arange(steps), velocity[:3])  # the path it integrates to
    assert M.mean_squared_jerk(actions) == 0.0
    assert M.mean_abs_delta_action(actions) == 0.0
    # the path's own jerk is zero too: positions are linear in time
    assert M.mean_squared_jerk(positions) == pytest.approx(0.0, abs=1e-24)
    assert M.path_length(positions) == pytest.approx((steps - 1) * np.linalg.norm(velocity[:3]))


def test_linear_ramp_has_constant_action_change_and_zero_jerk():
    actions = np.stack([0.02 * np.arange(30), -0.05 * np.arange(30)], axis=1)
    assert M.mean_abs_delta_action(actions) == pytest.approx((0.02 + 0.05) / 2)
    assert M.mean_squared_jerk(actions) == pytest.approx(0.0, abs=1e-20)


@pytest.mark.parametrize("period", [5, 8, 20])
def test_sinusoid_jerk_matches_closed_form(period):
    # Third difference of A sin(w t) is A (2 sin(w/2))^3 sin(w t + phase): over whole periods its mean
    # square is A^2 (2 sin(w/2))^6 / 2 exactly (discrete orthogonality, period >= 3).
    amplitude, w, periods = 0.7, 2 * math.pi / period, 4
    t = np.arange(periods * period + 3)  # T - 3 third differences = whole periods
    actions = amplitude * np.sin(w * t)
    expected = amplitude**2 * (2 * math.sin(w / 2)) ** 6 / 2
    assert M.mean_squared_jerk(actions) == pytest.approx(expected, rel=1e-9)
    # the continuous-time limit A^2 w^6 / 2 is approached as sampling gets finer
    if period == 20:
        assert M.mean_squared_jerk(actions) == pytest.approx(amplitude**2 * w**6 / 2, rel=0.05)


def test_alternating_signal_is_maximally_jerky():
    actions = np.array([1.0, -1.0] * 10)  # third difference is +-8
    assert M.mean_abs_delta_action(actions) == 2.0
    assert M.mean_squared_jerk(actions) == 64.0


def test_white_noise_statistics():
    # For i.i.d. N(0, s^2): E (third difference)^2 = (1 + 9 + 9 + 1) s^2 and E|a1 - a0| = 2 s / sqrt(pi).
    rng = np.random.default_rng(0)
    sigma = 0.1
    noise = rng.normal(0.0, sigma, (200_000, 2))
    assert M.mean_squared_jerk(noise) == pytest.approx(20 * sigma**2, rel=0.02)
    assert M.mean_abs_delta_action(noise) == pytest.approx(2 * sigma / math.sqrt(math.pi), rel=0.02)


def test_too_short_sequences_are_nan_not_zero():
    assert math.isnan(M.mean_squared_jerk(np.zeros((3, 7))))
    assert math.isnan(M.mean_abs_delta_action(np.zeros((1, 7))))
    assert M.path_length(np.zeros((1, 3))) == 0.0


def test_path_length_of_a_closed_unit_square():
    square = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 0]], dtype=float)
    assert M.path_length(square) == pytest.approx(4.0)


def test_endpoint_variance_is_the_trace_of_the_covariance():
    assert M.endpoint_variance(np.array([[0.0, 0, 0], [2.0, 0, 0]])) == pytest.approx(1.0)
    # spread along two axes adds up: x in {-1, 1}, y in {-2, 2}
    corners = np.array([[-1.0, -2, 5], [1.0, 2, 5], [-1.0, 2, 5], [1.0, -2, 5]])
    assert M.endpoint_variance(corners) == pytest.approx(1.0 + 4.0)
    assert math.isnan(M.endpoint_variance(np.zeros((1, 3))))


def test_population_variance_ignores_nan_and_needs_two_values():
    assert M.population_variance([1.0, 3.0, float("nan")]) == pytest.approx(1.0)
    assert math.isnan(M.population_variance([2.0]))


def test_resample_is_exact_for_linear_signals_and_keeps_endpoints():
    x = np.stack([np.linspace(0, 1, 7), np.linspace(3, -3, 7)], axis=1)
    r = M.resample(x, 13)
    assert r.shape == (13, 2)
    np.testing.assert_allclose(r[:, 0], np.linspace(0, 1, 13))
    np.testing.assert_allclose(r[:, 1], np.linspace(3, -3, 13))
    np.testing.assert_allclose(M.resample(np.array([[1.0, 2.0]]), 4), np.tile([1.0, 2.0], (4, 1)))


def test_pairwise_distance_of_parallel_paths_of_different_lengths():
    # Paths offset along y by 0, 1 and 3: time-normalised resampling aligns them even with different step
    # counts, so pair distances are 1, 3, 2 and their mean is 2.
    def line(offset: float, steps: int) -> np.ndarray:
        t = np.linspace(0, 1, steps)
        return np.stack([t, np.full(steps, offset), np.zeros(steps)], axis=1)

    paths = [line(0.0, 10), line(1.0, 25), line(3.0, 40)]
    assert M.pairwise_trajectory_distance(paths) == pytest.approx(2.0)
    assert math.isnan(M.pairwise_trajectory_distance(paths[:1]))


def test_pairwise_distance_of_diverging_paths_matches_the_integral():
    # y offset grows linearly from 0 to d: mean pointwise distance is d / 2.
    t = np.linspace(0, 1, 101)
    a = np.stack([t, np.zeros_like(t), np.zeros_like(t)], axis=1)
    b = np.stack([t, 0.4 * t, np.zeros_like(t)], axis=1)
    assert M.pairwise_trajectory_distance([a, b], n_points=101) == pytest.approx(0.2)


def test_action_variance_across_episodes():
    # constant commands 0 and 1 in one dim, 2 and 2 in the other: variances 0.25 and 0 -> mean 0.125
    a = np.tile([0.0, 2.0], (12, 1))
    b = np.tile([1.0, 2.0], (30, 1))
    assert M.action_variance([a, b]) == pytest.approx(0.125)
    assert M.action_variance([a, a.copy()]) == 0.0
    assert math.isnan(M.action_variance([a]))


def test_noisy_copies_score_worse_than_smooth_ones():
    rng = np.random.default_rng(1)
    t = np.linspace(0, 1, 80)[:, None]
    smooth = [np.hstack([np.sin(3 * t), np.cos(2 * t)]) for _ in range(6)]
    noisy = [s + rng.normal(0, 0.05, s.shape) for s in smooth]
    assert max(M.mean_squared_jerk(s) for s in smooth) < min(M.mean_squared_jerk(n) for n in noisy)
    assert max(M.mean_abs_delta_action(s) for s in smooth) < min(M.mean_abs_delta_action(n) for n in noisy)
    assert M.action_variance(smooth) == pytest.approx(0.0, abs=1e-20)
    # resampled at the original 80 instants, the across-episode variance is the noise's own (ddof=0: (n-1)/n)
    assert M.action_variance(noisy, n_points=80) == pytest.approx(0.05**2 * 5 / 6, rel=0.1)


# -- SPARC and LDLJ -------------------------------------------------------------------------------------
FS = 20.0
#: LDLJ of a minimum-jerk reach in the continuous limit: -ln(720 / 1.875^2) (jerk integral 720 D^2 / T^5,
#: peak speed 1.875 D / T).
MIN_JERK_LDLJ = -math.log(720 / 1.875**2)


def min_jerk(duration_s: float, fs: float = FS, displacement=(0.3, 0.1, -0.2)) -> np.ndarray:
    s = np.linspace(0.0, 1.0, int(round(duration_s * fs)) + 1)[:, None]
    return np.array([0.0, 0.0, 1.0]) + np.asarray(displacement) * (10 * s**3 - 15 * s**4 + 6 * s**5)


def direct_sparc(speed: np.ndarray, fs: float) -> float:
    """SPARC written out independently: an explicit DFT sum (no FFT), the reference's steps one by one."""
    n = len(speed)
    nfft = 2 ** (math.ceil(math.log2(n)) + 4)
    freqs, mags = [], []
    for k in range(nfft // 2 + 1):
        f = k * fs / nfft
        if f > 10.0:
            break
        phase = np.exp(-2j * np.pi * k * np.arange(n) / nfft)
        freqs.append(f)
        mags.append(abs(np.sum(speed * phase)))
    mags = [m / mags[0] for m in mags]
    last = max(i for i, m in enumerate(mags) if m >= 0.05)
    wc = freqs[last]
    return -sum(math.hypot((freqs[i + 1] - freqs[i]) / wc, mags[i + 1] - mags[i]) for i in range(last))


def direct_ldlj(p: np.ndarray, fs: float) -> float:
    """LDLJ written out with loops: jerk from the third difference, peak speed from the first."""
    dt = 1.0 / fs
    peak = max(math.dist(p[t + 1], p[t]) / dt for t in range(len(p) - 1))
    integral = 0.0
    for t in range(len(p) - 3):
        jerk = (p[t + 3] - 3 * p[t + 2] + 3 * p[t + 1] - p[t]) / dt**3
        integral += float(jerk @ jerk) * dt
    duration = (len(p) - 1) * dt
    return -math.log(duration**3 / peak**2 * integral)


def test_sparc_reproduces_the_reference_implementations_published_value():
    # siva82kb/SPARC scripts/smoothness.py docstring: a Gaussian speed profile at 100 Hz gives -1.41403
    t = np.arange(-1, 1, 0.01)
    assert M.spectral_arc_length(np.exp(-5 * t**2), fs=100.0) == pytest.approx(-1.41403, abs=5e-6)


def test_minimum_jerk_reach_has_the_known_sparc_and_ldlj():
    path = min_jerk(2.0)  # 41 frames at LIBERO's 20 Hz
    sparc = M.sparc(path, FS)
    assert -1.45 < sparc < -1.38 and sparc == pytest.approx(-1.4006, abs=1e-3)
    assert sparc == pytest.approx(direct_sparc(M.speed_profile(path, FS), FS), abs=1e-12)
    assert M.speed_profile(path, FS).shape == (40,)
    ldlj = M.log_dimensionless_jerk(path, FS)
    assert ldlj == pytest.approx(direct_ldlj(path, FS), abs=1e-12)
    # 20 Hz finite differences miss the high-jerk ends a little; finely sampled, LDLJ tends to the closed form
    assert -5.4 < ldlj < -4.9
    assert M.log_dimensionless_jerk(min_jerk(2.0, fs=2000.0), 2000.0) == pytest.approx(
        MIN_JERK_LDLJ, abs=5e-3
    )
    assert M.sparc(min_jerk(2.0, fs=2000.0), 2000.0) == pytest.approx(-1.40, abs=0.01)


def test_sparc_and_ldlj_are_dimensionless():
    path = min_jerk(1.5)
    start = path[0]
    for scale in (0.01, 7.5):
        scaled = start + scale * (path - start)
        assert M.sparc(scaled, FS) == pytest.approx(M.sparc(path, FS), abs=1e-12)
        assert M.log_dimensionless_jerk(scaled, FS) == pytest.approx(
            M.log_dimensionless_jerk(path, FS), abs=1e-9
        )
    rotated = path[:, [2, 0, 1]]  # direction does not matter either
    assert M.sparc(rotated, FS) == pytest.approx(M.sparc(path, FS), abs=1e-12)


def test_tremor_noise_and_a_second_submovement_make_both_worse():
    path = min_jerk(3.0)
    sparc, ldlj = M.sparc(path, FS), M.log_dimensionless_jerk(path, FS)
    t = np.arange(len(path)) / FS
    tremor = path + np.outer(0.004 * np.sin(2 * np.pi * 6.0 * t), [1.0, 0.0, 0.0])
    noisy = path + np.random.default_rng(0).normal(0.0, 0.002, path.shape)
    # two reaches of 1.5 s each, the second starting where the first stopped: two speed peaks
    first = min_jerk(1.5, displacement=(0.2, 0.05, -0.1))
    second = first[-1] + (
        min_jerk(1.5, displacement=(0.1, 0.05, -0.1)) - min_jerk(1.5, displacement=(0, 0, 0))
    )
    two = np.vstack([first, second[1:]])
    assert len(two) == len(path)
    for worse in (tremor, noisy, two):
        assert M.sparc(worse, FS) < sparc - 0.3
        assert M.log_dimensionless_jerk(worse, FS) < ldlj - 1.0
        assert M.sparc(worse, FS) == pytest.approx(direct_sparc(M.speed_profile(worse, FS), FS), abs=1e-12)
        assert M.log_dimensionless_jerk(worse, FS) == pytest.approx(direct_ldlj(worse, FS), abs=1e-9)


def test_smoothness_metrics_are_nan_when_undefined():
    still = np.tile([0.1, 0.2, 0.3], (30, 1))
    assert math.isnan(M.sparc(still, FS)) and math.isnan(M.log_dimensionless_jerk(still, FS))
    assert math.isnan(M.sparc(min_jerk(2.0)[:2], FS))  # one speed sample: no spectrum
    assert math.isnan(M.log_dimensionless_jerk(min_jerk(2.0)[:3], FS))  # no third difference
    # constant velocity (exact in binary): LDLJ would be +inf
    line = np.outer(np.arange(30), [0.25, 0.0, 0.0])
    assert math.isnan(M.log_dimensionless_jerk(line, FS))
    # rounding noise is jerk, if tiny: the same line in steps of 0.01 gets a very high, finite LDLJ
    assert M.log_dimensionless_jerk(line / 25, FS) > 20
    # its speed is a box, whose spectrum's side lobes above 5% make SPARC far lower than a smooth reach's
    assert M.sparc(line, FS) == pytest.approx(direct_sparc(M.speed_profile(line, FS), FS), abs=1e-12)
    assert M.sparc(line, FS) < -2.5


def test_log_length_fit_recovers_the_slope_and_removes_the_trend():
    lengths = np.array([20, 40, 80, 160])
    values = 2.0 + 0.5 * np.log(lengths)
    fit = M.fit_log_length(lengths, values)
    assert fit.slope == pytest.approx(0.5) and fit.intercept == pytest.approx(2.0) and fit.n == 4
    assert fit.center == pytest.approx(np.log(lengths).mean())
    adjusted = [fit.adjust(v, n) for v, n in zip(values, lengths, strict=True)]
    np.testing.assert_allclose(adjusted, values.mean())  # all at the mean log-length: the trend is gone
    # two groups with the same within-group slope but different levels (longer group also higher): pooled, the
    # slope would take the level difference for a length effect; within groups it is the true 0.5
    groups = ["a", "a", "b", "b"]
    shifted = values + np.array([0.0, 0.0, 3.0, 3.0])
    assert M.fit_log_length(lengths, shifted).slope > 2.0
    assert M.fit_log_length(lengths, shifted, groups).slope == pytest.approx(0.5)
    # nan values and a single length: no trend to remove
    assert M.fit_log_length([30, 30, 30], [1.0, 2.0, float("nan")]).slope == 0.0
    assert M.fit_log_length([30, 30], [1.0, 2.0]).n == 2
    assert math.isnan(fit.adjust(float("nan"), 20))

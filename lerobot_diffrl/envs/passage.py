"""A fast sparse-reward test task: a point mass must pass a narrow gap in a wall to reach a goal.

Why it exists: proving that an RL algorithm learns needs thousands of episodes; on LIBERO that takes hours of
CPU. This task runs millions of steps/s in NumPy, has LIBERO's reward structure (sparse 1.0 on success, termination on
success, truncation at a step limit) and the same batch interface as :class:`lerobot_diffrl.envs.pool.EnvPool`
(``reset``/``step`` with ``is_success``, ``TimeLimit.truncated``, ``aborted``, ``final_obs``, ``final_info``
and auto-reset), so a trainer can run on it unchanged. Its scripted demos are deliberately imperfect: the
expert aims at the gap with a random error, so behaviour cloning reaches only a middling success rate and RL
has room to improve it.

Layout: the arena is [-1, 1]^2; a wall on x = 0 is open only for |y| < ``gap_half_width``. Episodes start at
x in [-0.9, -0.5], y in [-0.8, 0.8]; the goal is a disc of radius ``goal_radius`` at x = 0.6, y in [-0.6, 0.6].
Observation ``agent_pos`` = (x, y, goal_x, goal_y); action (2,) in [-1, 1] moves by ``step_size`` * action.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from lerobot_diffrl.errors import ConfigError

STATE_DIM = 4
ACTION_DIM = 2


@dataclass
class PassageConfig:
    gap_half_width: float = 0.08
    step_size: float = 0.05
    goal_radius: float = 0.12
    max_steps: int = 80


def _crosses_wall_outside_gap(old: np.ndarray, new: np.ndarray, gap_half_width: float) -> np.ndarray:
    """Which moves cross x = 0 at a height outside the gap (vectorised over envs)."""
    crosses = np.sign(old[:, 0]) != np.sign(new[:, 0])
    dx = new[:, 0] - old[:, 0]
    safe_dx = np.where(np.abs(dx) < 1e-12, 1e-12, dx)
    t = np.clip(-old[:, 0] / safe_dx, 0.0, 1.0)
    y_at_wall = old[:, 1] + t * (new[:, 1] - old[:, 1])
    return crosses & (np.abs(y_at_wall) >= gap_half_width)


class PassageVectorEnv:
    """``n_envs`` copies of the passage task stepped together, with auto-reset (see the module docstring)."""

    def __init__(self, n_envs: int, cfg: PassageConfig | None = None, seed: int = 0):
        if n_envs < 1:
            raise ConfigError(f"n_envs must be >= 1, got {n_envs}")
        self.num_envs = n_envs
        self.cfg = cfg or PassageConfig()
        self.rng = np.random.default_rng(seed)
        self.pos = np.zeros((n_envs, 2))
        self.goal = np.zeros((n_envs, 2))
        self.elapsed = np.zeros(n_envs, dtype=np.int64)
        self.max_steps = np.full(n_envs, self.cfg.max_steps)

    def _sample_starts(self, envs: np.ndarray) -> None:
        k = len(envs)
        self.pos[envs] = np.stack([self.rng.uniform(-0.9, -0.5, k), self.rng.uniform(-0.8, 0.8, k)], axis=1)
        self.goal[envs] = np.stack([np.full(k, 0.6), self.rng.uniform(-0.6, 0.6, k)], axis=1)
        self.elapsed[envs] = 0

    def _obs(self) -> dict[str, Any]:
        return {"agent_pos": np.concatenate([self.pos, self.goal], axis=1).astype(np.float32)}

    def reset(self, seed: int | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self._sample_starts(np.arange(self.num_envs))
        return self._obs(), {"is_success": np.zeros(self.num_envs, dtype=bool)}

    def step(
        self, actions: np.ndarray
    ) -> tuple[dict[str, Any], np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        actions = np.asarray(actions, dtype=np.float64)
        if actions.shape != (self.num_envs, ACTION_DIM):
            raise ConfigError(f"actions must have shape ({self.num_envs}, {ACTION_DIM}), got {actions.shape}")
        return self.step_chunk(actions[:, None])

    def step_chunk(
        self, actions: np.ndarray, render: Any = None
    ) -> tuple[dict[str, Any], np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Execute (n, k, 2) action chunks, each env stopping at its episode's end (as ``EnvPool.step_chunk``;
        ``render`` is accepted for interface parity and ignored: nothing renders)."""
        actions = np.asarray(actions, dtype=np.float64)
        if actions.ndim != 3 or actions.shape[0] != self.num_envs or actions.shape[2] != ACTION_DIM:
            raise ConfigError(
                f"actions must have shape ({self.num_envs}, k, {ACTION_DIM}), got {actions.shape}"
            )
        n = self.num_envs
        active = np.ones(n, dtype=bool)
        success = np.zeros(n, dtype=bool)
        truncated = np.zeros(n, dtype=bool)
        executed = np.zeros(n, dtype=np.int64)
        for k in range(actions.shape[1]):
            old = self.pos.copy()
            new = np.clip(old + self.cfg.step_size * np.clip(actions[:, k], -1.0, 1.0), -1.0, 1.0)
            blocked = _crosses_wall_outside_gap(old, new, self.cfg.gap_half_width)
            new[blocked, 0] = (
                np.sign(old[blocked, 0]) * 1e-3
            )  # stopped at the wall, sliding along it is allowed
            self.pos = np.where(active[:, None], new, old)
            self.elapsed += active
            executed += active
            reached = active & (np.linalg.norm(self.pos - self.goal, axis=1) < self.cfg.goal_radius)
            success |= reached
            truncated |= active & ~reached & (self.elapsed >= self.cfg.max_steps)
            active &= ~(success | truncated)
            if not active.any():
                break
        terminated = success
        done = terminated | truncated
        final_obs = self._obs()
        final_info = [
            {"is_success": bool(success[i]), "elapsed_steps": int(self.elapsed[i])} if done[i] else None
            for i in range(n)
        ]
        elapsed = self.elapsed.copy()
        self._sample_starts(np.flatnonzero(done))
        infos = {
            "is_success": success,
            "TimeLimit.truncated": truncated,
            "aborted": np.zeros(n, dtype=bool),
            "elapsed_steps": elapsed,
            "executed_steps": executed,
            "_final": done,
            "final_obs": final_obs,
            "final_info": final_info,
        }
        return self._obs(), success.astype(np.float64), terminated, truncated, infos

    def close(self) -> None:
        """Nothing to release; present for interface parity with the LIBERO pool."""


def scripted_action(obs: np.ndarray, aim_y: np.ndarray) -> np.ndarray:
    """The expert: go to the wall at height ``aim_y``, then through, then to the goal (P-control, saturated)."""
    pos, goal = obs[:, :2], obs[:, 2:]
    before_wall = pos[:, 0] < 0.0  # an expert stuck at the wall keeps pushing at its aim: no recovery
    waypoint = np.where(before_wall[:, None], np.stack([np.zeros(len(obs)) + 0.05, aim_y], axis=1), goal)
    # before the wall, first line up with the aim height, then advance
    lined_up = np.abs(pos[:, 1] - aim_y) < 0.03
    waypoint[before_wall & ~lined_up, 0] = pos[before_wall & ~lined_up, 0]
    return np.clip(10.0 * (waypoint - pos), -1.0, 1.0)


def scripted_demos(
    n_episodes: int,
    seed: int = 0,
    bad_aim_fraction: float = 0.5,
    bad_aim: float = 0.2,
    aim_noise: float = 0.02,
    cfg: PassageConfig | None = None,
    two_sided: bool = True,
) -> list[dict[str, np.ndarray]]:
    """Episodes of the imperfect expert, failures included.

    A ``bad_aim_fraction`` of the episodes aims at the wall ``bad_aim`` above or below the gap (and gets stuck
    there; on both sides of the gap, or only above it with ``two_sided=False``), the others at the gap
    centre, each with N(0, ``aim_noise``) jitter. One-sided bad aims make the Gaussian baseline's mode
    averaging fail too (its mean aims between the modes, at the wall), as it does on real multimodal demos. The demos are thus bimodal: a
    policy that imitates them faithfully succeeds about as often as they do, and RL must move the probability
    mass onto the mode that succeeds.

    Returns dicts with ``observation.state`` (T, 4), ``action`` (T, 2) and ``success`` (bool).
    """
    cfg = cfg or PassageConfig()
    rng = np.random.default_rng(seed + 1)
    env = PassageVectorEnv(n_episodes, cfg, seed=seed)
    obs, _ = env.reset()
    bad = rng.random(n_episodes) < bad_aim_fraction
    side = rng.choice([-1.0, 1.0], n_episodes) if two_sided else np.ones(n_episodes)
    aim = np.where(bad, bad_aim * side, 0.0) + rng.normal(0.0, aim_noise, n_episodes)
    states, actions = [[] for _ in range(n_episodes)], [[] for _ in range(n_episodes)]
    success, active = np.zeros(n_episodes, dtype=bool), np.ones(n_episodes, dtype=bool)
    while active.any():
        act = scripted_action(obs["agent_pos"], aim)
        for i in np.flatnonzero(active):
            states[i].append(obs["agent_pos"][i])
            actions[i].append(act[i].astype(np.float32))
        obs, _, terminated, truncated, _ = env.step(act)
        success |= terminated & active
        active &= ~(terminated | truncated)
    return [
        {
            "observation.state": np.stack(states[i]),
            "action": np.stack(actions[i]),
            "success": bool(success[i]),
        }
        for i in range(n_episodes)
    ]

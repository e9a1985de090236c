"""Generalised advantage estimation over chunk-level env steps, as DPPO computes it.

One RL step is one executed action chunk. Why ``next_values`` is an input rather than ``values[t + 1]``:
with auto-resetting envs the observation after a finished episode belongs to the next episode, so the
bootstrap value of a *truncated* step must come from the episode's own final observation, which the caller
evaluates. Terminated steps (success) bootstrap nothing; truncated ones (time limit) do.
"""

from __future__ import annotations

import torch
from torch import Tensor


def compute_gae(
    rewards: Tensor,
    values: Tensor,
    next_values: Tensor,
    terminated: Tensor,
    truncated: Tensor,
    gamma: float = 0.999,
    gae_lambda: float = 0.95,
) -> tuple[Tensor, Tensor]:
    """Advantages and returns, each (n_steps, n_envs).

    Args:
        rewards: (n_steps, n_envs) reward of each chunk step (already scaled if reward scaling is on).
        values: (n_steps, n_envs) V(s_t).
        next_values: (n_steps, n_envs) V(s_{t+1}) of the same episode: the final observation's value where
            the episode ended at t, else the next step's value.
        terminated: (n_steps, n_envs) bool, the episode ended at t by success or failure (no bootstrap).
        truncated: (n_steps, n_envs) bool, the episode was cut at t by its time limit (bootstrap).
    """
    terminated = terminated.to(values.dtype)
    episode_end = torch.maximum(terminated, truncated.to(values.dtype))
    deltas = rewards + gamma * next_values * (1.0 - terminated) - values
    advantages = torch.zeros_like(values)
    running = torch.zeros_like(values[0])
    for t in reversed(range(values.shape[0])):
        running = deltas[t] + gamma * gae_lambda * (1.0 - episode_end[t]) * running
        advantages[t] = running
    return advantages, advantages + values

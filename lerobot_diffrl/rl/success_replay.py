"""A replay buffer of the rollouts' successful episodes, for a behaviour-cloning term beside the PPO loss.

Why: at CPU scale an iteration holds a few dozen finished episodes, a handful of them successes, and the PPO
gradient from so few sparse rewards is mostly noise (``benchmarks/dppo_tuning.py``: larger PPO steps lose
success). The successes themselves are the strongest signal a sparse reward gives. Keeping every chunk of every
successful episode and adding the policy's own BC loss on them (self-imitation, Oh et al. 2018; the
paper's "diverse replay buffer" is read this way, see ``notes/method.md``) uses each success in every later
update, not only in the iteration that happened to finish it.

Episodes straddle iterations, so chunks wait per env until their episode ends: kept on a success
(termination with a positive reward), dropped on a failure, a truncation or an aborted episode. The buffer
holds raw observations (as the rollout does) and the normalised action chunks the policy sampled; the oldest
successes are dropped first once ``max_chunks`` is reached.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from lerobot_diffrl.rl.policy_io import select
from lerobot_diffrl.rl.rollout import Rollout, stack_obs


class SuccessReplay:
    """Chunks of successful episodes: ``add`` after every rollout, ``sample`` per minibatch."""

    def __init__(self, n_envs: int, max_chunks: int) -> None:
        self.n_envs = n_envs
        self.max_chunks = max_chunks
        self._pending: list[list[tuple[dict[str, Any], str, Tensor]]] = [[] for _ in range(n_envs)]
        self._obs: list[dict[str, Any]] = []
        self._tasks: list[str] = []
        self._actions: list[Tensor] = []
        self.episodes = 0

    def __len__(self) -> int:
        return len(self._actions)

    def add(self, rollout: Rollout) -> int:
        """File the rollout's chunks under their envs' running episodes; return the successes it completed."""
        n_steps, n = rollout.rewards.shape
        if n != self.n_envs:
            raise ValueError(f"rollout has {n} envs, the replay {self.n_envs}")
        completed = 0
        for t in range(n_steps):
            for i in range(n):
                row = t * n + i
                self._pending[i].append(
                    (select(rollout.obs, np.array([row])), rollout.tasks[row], rollout.actions[row])
                )
                if bool(rollout.terminated[t, i]) and float(rollout.rewards[t, i]) > 0:
                    self._keep(self._pending[i])
                    completed += 1
                if bool(rollout.terminated[t, i]) or bool(rollout.truncated[t, i]):
                    self._pending[i] = []
        return completed

    def _keep(self, episode: list[tuple[dict[str, Any], str, Tensor]]) -> None:
        for obs, task, action in episode:
            self._obs.append(obs)
            self._tasks.append(task)
            self._actions.append(action)
        self.episodes += 1
        overflow = len(self._actions) - self.max_chunks
        if overflow > 0:
            del self._obs[:overflow], self._tasks[:overflow], self._actions[:overflow]

    def sample(self, size: int, generator: torch.Generator) -> tuple[dict[str, Any], list[str], Tensor]:
        """``size`` chunks drawn uniformly with replacement: (raw observations, tasks, (size, H, A) actions)."""
        index = torch.randint(len(self._actions), (size,), generator=generator).tolist()
        obs = stack_obs([self._obs[j] for j in index])
        return obs, [self._tasks[j] for j in index], torch.stack([self._actions[j] for j in index])

    def state_dict(self) -> dict[str, Any]:
        return {
            "max_chunks": self.max_chunks,
            "episodes": self.episodes,
            "pending": self._pending,
            "obs": self._obs,
            "tasks": self._tasks,
            "actions": self._actions,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if len(state["pending"]) != self.n_envs:
            raise ValueError(f"saved replay has {len(state['pending'])} envs, this run {self.n_envs}")
        self.episodes = int(state["episodes"])
        self._pending = state["pending"]
        self._obs, self._tasks, self._actions = state["obs"], state["tasks"], state["actions"]

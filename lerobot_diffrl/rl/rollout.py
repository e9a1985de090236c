"""Rollout collection: n_envs x n_steps action chunks with everything PPO needs, and episode statistics.

One rollout step executes one action chunk in every env (``step_chunk``). What is stored per step: the raw
observations (uint8 images stay uint8; they are normalised again per minibatch, which costs little and keeps a
pixel rollout at a quarter of the memory), the recorded denoising chain and its log-probabilities, the
critic's value, the chunk's reward and whether the episode terminated (success) or was truncated. The value of
a truncated episode's own final observation is computed here, since after the auto-reset the next observation
belongs to the next episode.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lerobot_diffrl.policies.common.rl_interface import RolloutSample
from lerobot_diffrl.rl.envs import RLEnv
from lerobot_diffrl.rl.policy_io import LoadedPolicy, env_actions, policy_inputs


def autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA when enabled; a no-op elsewhere."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@dataclass
class EpisodeStats:
    """Episodes that finished during a rollout."""

    successes: list[bool] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    returns: list[float] = field(default_factory=list)
    aborted: int = 0

    def summary(self) -> dict[str, float]:
        n = len(self.successes)
        return {
            "episodes": float(n),
            "success_rate": float(np.mean(self.successes)) if n else float("nan"),
            "episode_length": float(np.mean(self.lengths)) if n else float("nan"),
            "episode_return": float(np.mean(self.returns)) if n else float("nan"),
            "aborted_episodes": float(self.aborted),
        }


@dataclass
class Rollout:
    """One iteration's data, flattened to (n_steps * n_envs) rows where a row is one (step, env)."""

    obs: dict[str, Any]
    tasks: list[str]
    chain: Tensor
    logprobs: Tensor
    actions: Tensor  # (rows, H, A) the normalised chunks sampled (clipped as executed)
    values: Tensor  # (T, N)
    rewards: Tensor  # (T, N) raw rewards
    terminated: Tensor  # (T, N) bool
    truncated: Tensor  # (T, N) bool
    next_values: Tensor  # (T, N)
    env_steps: int
    stats: EpisodeStats
    seconds: float

    @property
    def n_rows(self) -> int:
        return int(self.chain.shape[0])

    def sample_rows(self, rows: Tensor) -> RolloutSample:
        """The stored chains of ``rows`` as a :class:`RolloutSample` (for re-evaluating log-probs)."""
        chain = self.chain[rows]
        empty = chain.new_zeros(0)
        return RolloutSample(chain[:, -1], chain, empty, empty, self.logprobs[rows], empty)


def stack_obs(steps: list[dict[str, Any]]) -> dict[str, Any]:
    first = steps[0]
    return {
        k: stack_obs([s[k] for s in steps]) if isinstance(v, dict) else np.concatenate([s[k] for s in steps])
        for k, v in first.items()
    }


class RolloutCollector:
    """Steps the env with the policy, carrying the current observation across iterations."""

    def __init__(self, env: RLEnv, loaded: LoadedPolicy, device: torch.device, amp: bool) -> None:
        self.env = env
        self.loaded = loaded
        self.device = device
        self.amp = amp
        self.obs: dict[str, Any] | None = None
        self.running_return = np.zeros(env.num_envs)

    def reset(self, seed: int) -> None:
        self.obs, _ = self.env.env.reset(seed=seed)
        self.running_return[:] = 0.0

    @torch.no_grad()
    def values_of(self, obs: dict[str, Any], index: np.ndarray | None = None) -> Tensor:
        policy = self.loaded.policy
        batch = policy_inputs(self.loaded, obs, self.env.tasks, index)
        with autocast(self.device, self.amp):
            return policy.value(batch).float().cpu()

    @torch.no_grad()
    def collect(self, n_steps: int, progress: Any | None = None) -> Rollout:
        if self.obs is None:
            raise RuntimeError("call reset() before collect()")
        policy, env = self.loaded.policy, self.env
        n, n_act = env.num_envs, policy.config.n_action_steps
        start = time.perf_counter()
        stats = EpisodeStats()
        obs_steps, chains, logprobs, sampled = [], [], [], []
        values = torch.zeros(n_steps, n)
        rewards = torch.zeros(n_steps, n)
        terminated = torch.zeros(n_steps, n, dtype=torch.bool)
        truncated = torch.zeros(n_steps, n, dtype=torch.bool)
        final_values = torch.zeros(n_steps, n)
        env_steps = 0
        policy.eval()
        for t in range(n_steps):
            batch = policy_inputs(self.loaded, self.obs, env.tasks)
            with autocast(self.device, self.amp):
                sample = policy.sample_with_logprobs(batch)
                values[t] = policy.value(batch).float().cpu()
            obs_steps.append(self.obs)
            chains.append(sample.chain.float().cpu())
            logprobs.append(sample.logprobs.float().cpu())
            sampled.append(sample.action.float().cpu())
            actions = env_actions(self.loaded, sample.action[:, :n_act])
            next_obs, reward, term, trunc, infos = env.env.step_chunk(actions, render=env.renders)
            env_steps += int(np.sum(infos["executed_steps"]))
            rewards[t] = torch.as_tensor(reward, dtype=torch.float32)
            terminated[t] = torch.as_tensor(term)
            truncated[t] = torch.as_tensor(trunc & ~term)
            self.running_return += reward
            done = np.flatnonzero(np.asarray(term) | np.asarray(trunc))
            if done.size:
                cut = np.flatnonzero(np.asarray(trunc) & ~np.asarray(term))
                if cut.size:
                    final_values[t, cut] = self.values_of(infos["final_obs"], cut)
                for i in done:
                    info = infos["final_info"][i] or {}
                    if infos["aborted"][i]:
                        stats.aborted += 1
                        continue
                    stats.successes.append(bool(info.get("is_success", term[i])))
                    stats.lengths.append(int(info.get("elapsed_steps", 0)))
                    stats.returns.append(float(self.running_return[i]))
                self.running_return[done] = 0.0
            self.obs = next_obs
            if progress is not None:
                progress.update(1)
        last_values = self.values_of(self.obs)
        next_values = torch.cat([values[1:], last_values[None]], dim=0)
        next_values = torch.where(truncated, final_values, next_values)
        return Rollout(
            obs=stack_obs(obs_steps),
            tasks=list(env.tasks) * n_steps,
            chain=torch.cat(chains),
            logprobs=torch.cat(logprobs),
            actions=torch.cat(sampled),
            values=values,
            rewards=rewards,
            terminated=terminated,
            truncated=truncated,
            next_values=next_values,
            env_steps=env_steps,
            stats=stats,
            seconds=time.perf_counter() - start,
        )

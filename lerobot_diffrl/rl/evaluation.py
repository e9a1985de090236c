"""Deterministic evaluation on a fixed set of episodes, with a 95% confidence interval.

Why fixed: success rates of two checkpoints (or of one before and after fine-tuning) are comparable only on
the same initial conditions. LIBERO: the env is reset with ``seed`` and each task's slots walk through init
states ``seed, seed + 1, ...`` (see ``init_state_index``), so seed 0 evaluates init states
0 .. episodes_per_task - 1 of every task, each exactly once. Passage: the episode starts come from ``seed``.
Actions are deterministic (DDIM with eta 0, fixed initial noise; the Gaussian's mean).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from lerobot_diffrl.rl.envs import RLEnv
from lerobot_diffrl.rl.policy_io import LoadedPolicy, env_actions, policy_inputs
from lerobot_diffrl.rl.rollout import autocast
from lerobot_diffrl.stats import wilson_interval

#: Init states per LIBERO task (every suite ships 50).
LIBERO_INIT_STATES = 50


@dataclass
class EvalResult:
    per_task: dict[str, dict[str, float]] = field(default_factory=dict)
    successes: int = 0
    episodes: int = 0
    mean_length: float = float("nan")
    seconds: float = 0.0

    @property
    def success_rate(self) -> float:
        return self.successes / self.episodes if self.episodes else float("nan")

    def summary(self) -> dict[str, Any]:
        low, high = wilson_interval(self.successes, self.episodes)
        return {
            "success_rate": self.success_rate,
            "ci95_low": low,
            "ci95_high": high,
            "episodes": self.episodes,
            "mean_length": self.mean_length,
            "eval_s": self.seconds,
            "per_task": self.per_task,
        }


@torch.no_grad()
def evaluate(
    env: RLEnv,
    loaded: LoadedPolicy,
    episodes_per_task: int,
    seed: int,
    device: torch.device,
    amp: bool = True,
    max_chunks: int | None = None,
) -> EvalResult:
    """Run ``episodes_per_task`` deterministic episodes of every task of ``env``."""
    start = time.perf_counter()
    policy = loaded.policy
    policy.eval()
    n_act = policy.config.n_action_steps
    names = env.task_names
    quota = {name: episodes_per_task for name in dict.fromkeys(names)}
    seen: dict[str, set] = {name: set() for name in quota}
    done_eps: dict[str, list[tuple[bool, int]]] = {name: [] for name in quota}
    obs, infos = env.env.reset(seed=seed)
    start_index = np.asarray(infos.get("init_index", np.arange(env.num_envs)))
    episode_count = np.zeros(env.num_envs, dtype=np.int64)
    generator = torch.Generator(device=device).manual_seed(seed)
    limit = max_chunks if max_chunks is not None else 10_000
    for _ in range(limit):
        if all(len(done_eps[n]) >= quota[n] for n in quota):
            break
        batch = policy_inputs(loaded, obs, env.tasks)
        with autocast(device, amp):
            chunk = policy.predict_action_chunk(batch, generator=generator)
        actions = env_actions(loaded, chunk[:, :n_act])
        obs, _, _, _, infos = env.env.step_chunk(actions, render=env.renders)
        for i in np.flatnonzero(infos["_final"]):
            info = infos["final_info"][i] or {}
            name = names[i]
            # LIBERO: an init state counts once per task; passage: (slot, episode) is the identity.
            key = info.get("init_index", (i, int(episode_count[i]), int(start_index[i])))
            episode_count[i] += 1
            outside = isinstance(key, int) and (key - seed) % LIBERO_INIT_STATES >= episodes_per_task
            if info.get("aborted") or outside or key in seen[name] or len(done_eps[name]) >= quota[name]:
                continue
            seen[name].add(key)
            done_eps[name].append((bool(info.get("is_success", False)), int(info.get("elapsed_steps", 0))))
    result = EvalResult(seconds=time.perf_counter() - start)
    lengths = []
    for name, eps in done_eps.items():
        wins = sum(s for s, _ in eps)
        low, high = wilson_interval(wins, len(eps))
        result.per_task[name] = {
            "success_rate": wins / len(eps) if eps else float("nan"),
            "episodes": len(eps),
            "ci95_low": low,
            "ci95_high": high,
        }
        result.successes += wins
        result.episodes += len(eps)
        lengths.extend(length for _, length in eps)
    result.mean_length = float(np.mean(lengths)) if lengths else float("nan")
    return result

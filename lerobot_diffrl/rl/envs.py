"""The vectorised environment RL collects from: the LIBERO pool or the passage test task, one interface.

Both expose ``num_envs``, ``reset(seed)``, ``step_chunk(actions (n, k, A))`` and ``close()``; this module adds
what the learner needs and the envs do not carry: every slot's language instruction, the action dimension and
a readable description of the task mix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lerobot_diffrl.envs.passage import ACTION_DIM as PASSAGE_ACTION_DIM
from lerobot_diffrl.envs.passage import PassageConfig, PassageVectorEnv
from lerobot_diffrl.errors import ConfigError
from lerobot_diffrl.rl.config import RLEnvConfig

LIBERO_ACTION_DIM = 7
#: Instruction of the passage task (its policy's task embedding slot).
PASSAGE_TASK = "reach the goal through the gap"


@dataclass
class RLEnv:
    """A vector env plus what the learner needs to know about its slots."""

    env: Any
    tasks: list[str]
    task_names: list[str]
    action_dim: int
    renders: bool

    @property
    def num_envs(self) -> int:
        return int(self.env.num_envs)

    def close(self) -> None:
        self.env.close()


def libero_slots(cfg: RLEnvConfig) -> list[Any]:
    """Pool slots spread round-robin over every (suite, task) of ``cfg``."""
    from lerobot_diffrl.envs.pool import SlotSpec
    from lerobot_diffrl.envs.suites import check_suite, parse_task_ids

    pairs = []
    for suite in (s.strip() for s in cfg.suites.split(",") if s.strip()):
        check_suite(suite)
        pairs.extend((suite, task_id) for task_id in parse_task_ids(suite, cfg.tasks))
    if not pairs:
        raise ConfigError("env.suites selects no task.")
    if cfg.n_envs < len(pairs):
        raise ConfigError(
            f"env.n_envs={cfg.n_envs} is fewer than the {len(pairs)} selected tasks; every task needs a slot."
        )
    return [SlotSpec(*pairs[i % len(pairs)], max_steps=cfg.max_steps) for i in range(cfg.n_envs)]


def make_rl_env(cfg: RLEnvConfig, seed: int) -> RLEnv:
    """Build the env ``cfg`` describes (LIBERO workers start here; errors are :class:`DiffRLError`)."""
    cfg.validate()
    if cfg.kind == "passage":
        passage = PassageConfig(
            gap_half_width=cfg.gap_half_width, goal_radius=cfg.goal_radius, max_steps=cfg.passage_max_steps
        )
        env = PassageVectorEnv(cfg.n_envs, passage, seed=seed)
        tasks = [PASSAGE_TASK] * cfg.n_envs
        return RLEnv(env, tasks, ["passage"] * cfg.n_envs, PASSAGE_ACTION_DIM, renders=False)

    from lerobot_diffrl.envs.pool import EnvPool
    from lerobot_diffrl.envs.suites import task_spec

    slots = libero_slots(cfg)
    specs = [task_spec(s.suite, s.task_id) for s in slots]
    pool = EnvPool(
        slots,
        obs_mode=cfg.obs_mode,
        image_size=(cfg.image_size, cfg.image_size),
        seed=seed,
        n_workers=cfg.n_workers,
        step_timeout_s=cfg.step_timeout_s,
        fast_state=cfg.fast_state,
    )
    return RLEnv(
        pool,
        [spec.language for spec in specs],
        [f"{spec.suite}/{spec.task_id}" for spec in specs],
        LIBERO_ACTION_DIM,
        renders=cfg.obs_mode != "state",
    )

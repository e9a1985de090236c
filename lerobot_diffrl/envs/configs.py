"""The project's LeRobot env type, ``diffrl_env``: LIBERO through the project's own environment.

Why a new type rather than lerobot's ``libero``: lerobot 0.4.4's ``make_env`` sends every env type whose name
contains "libero" to its own ``create_libero_envs``, whose LIBERO env ignores the requested image size (always
256x256), hard-resets twice per episode, never truncates and claims 30 fps. A type name without "libero" takes
``make_env``'s gym path, which builds ``gym.make(cfg.gym_id, **cfg.gym_kwargs)`` sub-envs: ours.

Why subclass lerobot's ``LiberoEnv`` config: ``make_env_pre_post_processors`` adds ``LiberoProcessorStep``
(180-degree image flip, 8-d ``observation.state``) on ``isinstance(cfg, LiberoEnv)``, and the features and
features map are inherited. Our env emits exactly the raw observation layout lerobot's LIBERO env emits, so after
that step a policy sees the same keys, shapes and conventions from either env, and policies trained on
``lerobot/libero``-style datasets and on this project's datasets evaluate on both.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import gymnasium as gym
from lerobot.envs.configs import EnvConfig, LiberoEnv

from lerobot_diffrl.envs.suites import CONTROL_FPS

ENV_TYPE = "diffrl_env"
GYM_ID = "lerobot_diffrl/Libero-v0"
GYM_ENTRY_POINT = "lerobot_diffrl.envs.gym_env:LiberoGymEnv"


def register_gym_env() -> None:
    """Register the gym id once. ``order_enforce=False`` keeps ``gym.make`` from wrapping the env, so
    ``lerobot-eval``'s ``hasattr(env.envs[0], "task_description")`` sees the env's own attributes."""
    if GYM_ID not in gym.registry:
        gym.register(id=GYM_ID, entry_point=GYM_ENTRY_POINT, order_enforce=False, disable_env_checker=True)


@EnvConfig.register_subclass(ENV_TYPE)
@dataclass
class DiffRLEnvConfig(LiberoEnv):
    """LIBERO for ``lerobot-train``/``lerobot-eval`` with the project's env (see module docstring).

    ``task`` is a suite name; ``task_ids`` selects tasks of it (default: all). Images are rendered at
    ``observation_height`` x ``observation_width`` (default 128x128, the size the project trains at).
    ``episode_length`` overrides the per-suite limit of :data:`lerobot_diffrl.envs.suites.SUITE_MAX_STEPS`.
    """

    task: str = "libero_object"
    fps: int = CONTROL_FPS
    observation_height: int = 128
    observation_width: int = 128

    @property
    def package_name(self) -> str:
        return "lerobot_diffrl.envs.configs"

    @property
    def gym_id(self) -> str:
        return GYM_ID

    @property
    def gym_kwargs(self) -> dict[str, Any]:
        return {
            "suite": self.task,
            "task_ids": list(self.task_ids) if self.task_ids is not None else None,
            "obs_type": self.obs_type,
            "image_size": (self.observation_height, self.observation_width),
            "episode_length": self.episode_length,
            "init_states": self.init_states,
            "control_mode": self.control_mode,
        }

    def create_envs(
        self, n_envs: int, use_async_envs: bool = False
    ) -> dict[str, dict[int, gym.vector.VectorEnv]]:
        """``{suite: {task_id: vec_env}}``, one vector env of ``n_envs`` sub-envs per selected task.

        lerobot >= 0.6 dispatches env creation to this method; 0.4.4 never calls it (its ``make_env`` builds
        one vector env over all selected tasks through ``gym_kwargs``). Async vector envs use ``forkserver``:
        our envs create their GL context at the first reset, inside the worker, so any start method is safe,
        but forkserver also keeps the parent's torch threads out of the workers.
        """
        from lerobot_diffrl.envs.suites import parse_task_ids
        from lerobot_diffrl.errors import ConfigError

        if not isinstance(n_envs, int) or isinstance(n_envs, bool) or n_envs < 1:
            raise ConfigError(f"n_envs must be a positive integer, got {n_envs!r}")
        out: dict[str, dict[int, gym.vector.VectorEnv]] = {}
        for task_id in parse_task_ids(self.task, self.task_ids):
            kwargs = dict(self.gym_kwargs, task_ids=[task_id])
            fns = [partial(gym.make, self.gym_id, disable_env_checker=True, **kwargs) for _ in range(n_envs)]
            if use_async_envs:
                vec = gym.vector.AsyncVectorEnv(
                    fns, context="forkserver", autoreset_mode=gym.vector.AutoresetMode.SAME_STEP
                )
            else:
                vec = gym.vector.SyncVectorEnv(fns, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
            out.setdefault(self.task, {})[task_id] = vec
        return out


register_gym_env()

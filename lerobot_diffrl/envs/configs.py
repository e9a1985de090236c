"""The project's LeRobot env type, ``diffrl_env``: LIBERO through the project's own environment.

Why our own type beside lerobot 0.6's ``libero``: ``diffrl_env`` runs the very simulator code of the project's
env pool (the one RL and data generation use), so a policy is evaluated on exactly the observations it was trained
and fine-tuned on. On top of what lerobot's LIBERO env does since 0.6 (requested image size, 20 fps, one reset
per episode, soft resets), it truncates at the suite's step limit (lerobot's never truncates) and maps
``lerobot-eval``'s seeds deterministically onto tasks and LIBERO's fixed init states.

Why subclass lerobot's ``LiberoEnv`` config: its features, features map and ``get_env_processors()``
(``LiberoProcessorStep``: 180-degree image flip, 8-d ``observation.state``) are inherited, and our env emits
exactly the raw observation layout lerobot's LIBERO env emits, so a policy sees the same keys, shapes and
conventions from either env, and policies trained on ``lerobot/libero``-style datasets and on this project's
datasets evaluate on both.
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

        ``make_env`` dispatches env creation to this method. As lerobot's own envs, an async vector env is
        built only for more than one sub-env (``lerobot-eval`` asks for async by default, also at batch size
        1). Async vector envs use ``forkserver``: our envs create their GL context at the first reset, inside
        the worker, and forkserver keeps the parent's torch threads out of the workers. Each sub-env factory is
        :func:`make_gym_env`, pickled by reference, so a fresh worker imports this module (which registers the
        gym id) before it calls ``gym.make``.
        """
        from lerobot_diffrl.envs.suites import parse_task_ids
        from lerobot_diffrl.errors import ConfigError

        if not isinstance(n_envs, int) or isinstance(n_envs, bool) or n_envs < 1:
            raise ConfigError(f"n_envs must be a positive integer, got {n_envs!r}")
        out: dict[str, dict[int, gym.vector.VectorEnv]] = {}
        for task_id in parse_task_ids(self.task, self.task_ids):
            kwargs = dict(self.gym_kwargs, task_ids=[task_id])
            fns = [partial(make_gym_env, **kwargs) for _ in range(n_envs)]
            if use_async_envs and n_envs > 1:
                vec = gym.vector.AsyncVectorEnv(
                    fns, context="forkserver", autoreset_mode=gym.vector.AutoresetMode.SAME_STEP
                )
            else:
                vec = gym.vector.SyncVectorEnv(fns, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
            out.setdefault(self.task, {})[task_id] = vec
        return out


def make_gym_env(**gym_kwargs: Any) -> gym.Env:
    """``gym.make`` of the project's LIBERO env, importable by reference in vector-env worker processes."""
    register_gym_env()
    return gym.make(GYM_ID, disable_env_checker=True, **gym_kwargs)


register_gym_env()

"""``lerobot_diffrl/Libero-v0``: one LIBERO env in-process, for ``lerobot-eval`` (env type ``diffrl_env``).

It emits lerobot's raw LIBERO observation layout (``pixels: {image, image2}`` uint8 HWC unflipped,
``robot_state: {eef, gripper, joints}``), so ``LiberoProcessorStep`` and every lerobot policy work unchanged.
It runs the simulator code of the project's env pool, so evaluation sees exactly what RL and generation see,
and beyond lerobot 0.6's own env (which now also renders at the requested size, runs at 20 fps and resets
once) it truncates at the suite's limit (lerobot's never truncates), soft-resets with the fixture
poses seeded, and creates no GL context before the first reset (safe in ``AsyncVectorEnv`` under any start
method).

Sub-envs of one vector env get identical kwargs and differ only by the seeds ``lerobot-eval`` passes to
``reset(seed=...)`` (consecutive integers): the seed picks the task (``seed % n_tasks``) and the init state
(``(seed // n_tasks) % n_states``), so successive seeds walk through every init state of every task.
A reset without a seed (gymnasium's autoreset) takes the next seed.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from lerobot_diffrl.envs.episode import SETTLE_STEPS, TaskEpisode
from lerobot_diffrl.envs.observations import (
    CAMERA_KEYS,
    IMAGE_NAMES,
    OBJECT_STATE_DIM,
    lerobot_robot_state,
)
from lerobot_diffrl.envs.suites import CONTROL_FPS, SUITE_MAX_STEPS, check_suite, parse_task_ids, task_spec
from lerobot_diffrl.errors import ConfigError

#: lerobot's obs types plus the project's state-only one ("state": proprioception + object poses, no renderer).
GYM_OBS_TYPES = ("pixels", "pixels_agent_pos", "state")


def _robot_state_space() -> spaces.Dict:
    def box(*shape: int) -> spaces.Box:
        return spaces.Box(low=-np.inf, high=np.inf, shape=shape, dtype=np.float64)

    return spaces.Dict(
        {
            "eef": spaces.Dict({"pos": box(3), "quat": box(4), "mat": box(3, 3)}),
            "gripper": spaces.Dict({"qpos": box(2), "qvel": box(2)}),
            "joints": spaces.Dict({"pos": box(7), "vel": box(7)}),
        }
    )


class LiberoGymEnv(gym.Env):
    """A LIBERO task (or several, chosen by the reset seed) as a gymnasium env in lerobot's layout."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": CONTROL_FPS}

    def __init__(
        self,
        suite: str = "libero_object",
        task_ids: list[int] | str | None = None,
        obs_type: str = "pixels_agent_pos",
        image_size: tuple[int, int] | list[int] = (128, 128),
        episode_length: int | None = None,
        init_states: bool = True,
        control_mode: str = "relative",
        render_mode: str = "rgb_array",
        build_seed: int = 0,
        settle_steps: int = SETTLE_STEPS,
    ):
        super().__init__()
        check_suite(suite)
        if obs_type not in GYM_OBS_TYPES:
            raise ConfigError(f"obs_type must be one of {', '.join(GYM_OBS_TYPES)}, got {obs_type!r}")
        self.task_ids = parse_task_ids(suite, task_ids)
        if not self.task_ids:
            raise ConfigError(f"no task selected in {suite}")
        height, width = (int(v) for v in image_size)
        if height < 1 or width < 1:
            raise ConfigError(f"image_size must be positive, got {tuple(image_size)}")
        self.suite = suite
        self.obs_type = obs_type
        self.image_size = (height, width)
        self.render_mode = render_mode
        self.use_init_states = init_states
        self.control_mode = control_mode
        self.build_seed = build_seed
        self.settle_steps = settle_steps
        self.episode_length = episode_length
        self._max_episode_steps = episode_length if episode_length is not None else SUITE_MAX_STEPS[suite]
        self._episode: TaskEpisode | None = None
        self._next_seed = 0
        self._spec = task_spec(suite, self.task_ids[0])
        self.task = self._spec.name
        self.task_description = self._spec.language
        self.task_id = self._spec.task_id

        obs_spaces: dict[str, spaces.Space] = {}
        if obs_type != "state":
            image = spaces.Box(0, 255, shape=(height, width, 3), dtype=np.uint8)
            obs_spaces["pixels"] = spaces.Dict({name: image for name in IMAGE_NAMES})
        if obs_type != "pixels":
            obs_spaces["robot_state"] = _robot_state_space()
        if obs_type == "state":
            obs_spaces["environment_state"] = spaces.Box(-np.inf, np.inf, (OBJECT_STATE_DIM,), np.float64)
        self.observation_space = spaces.Dict(obs_spaces)
        self.action_space = spaces.Box(low=-1.0, high=1.0, shape=(7,), dtype=np.float32)

    # -- episode plumbing -------------------------------------------------------------------------------
    def _episode_for(self, task_id: int) -> TaskEpisode:
        """The simulator of ``task_id``, built on first use (no GL context before the first reset)."""
        if self._episode is None or self._episode.spec.task_id != task_id:
            if self._episode is not None:
                self._episode.close()
            spec = task_spec(self.suite, task_id)
            self._episode = TaskEpisode(
                spec,
                render=self.obs_type != "state",
                image_size=self.image_size,
                max_steps=self._max_episode_steps,
                control_mode=self.control_mode,
                build_seed=self.build_seed,
                settle_steps=self.settle_steps,
            )
            self._spec = spec
            self.task, self.task_description, self.task_id = spec.name, spec.language, spec.task_id
        return self._episode

    def assignment(self, seed: int) -> tuple[int, int]:
        """(task id, init-state index) that ``reset(seed=seed)`` uses; see the module docstring."""
        n_tasks = len(self.task_ids)
        task_id = self.task_ids[seed % n_tasks]
        return task_id, seed // n_tasks

    def _format(self, raw: dict[str, Any]) -> dict[str, Any]:
        episode = self._episode
        obs: dict[str, Any] = {}
        if self.obs_type != "state":
            obs["pixels"] = {
                name: raw[key].copy() for name, key in zip(IMAGE_NAMES, CAMERA_KEYS, strict=True)
            }
        if self.obs_type != "pixels":
            obs["robot_state"] = lerobot_robot_state(episode.robot_state(raw))
        if self.obs_type == "state":
            obs["environment_state"] = episode.object_state(raw)[0]
        return obs

    # -- gymnasium API ----------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is None:
            seed = self._next_seed
        self._next_seed = int(seed) + 1
        task_id, init_index = self.assignment(int(seed))
        episode = self._episode_for(task_id)
        raw = episode.reset(init_index if self.use_init_states else 0)
        info = {
            "is_success": False,
            "task": self.task,
            "task_id": self.task_id,
            "init_index": episode.init_index,
        }
        return self._format(raw), info

    def step(self, action: np.ndarray):
        if self._episode is None:
            raise ConfigError("call reset() before step()")
        action = np.asarray(action)
        if action.ndim != 1:
            raise ConfigError(f"expected a 1-D action of 7 values, got shape {action.shape}")
        result = self._episode.step(action)
        info = {
            "task": self.task,
            "task_id": self.task_id,
            "is_success": result.is_success,
            "TimeLimit.truncated": result.truncated,
            "elapsed_steps": self._episode.elapsed_steps,
        }
        return self._format(result.raw), result.reward, result.terminated, result.truncated, info

    def render(self) -> np.ndarray:
        """The last agentview frame, rotated upright as lerobot's ``LiberoEnv.render`` returns it."""
        if self._episode is None:
            raise ConfigError("call reset() before render()")
        return self._episode.last_image()[::-1, ::-1].copy()

    def close(self) -> None:
        if self._episode is not None:
            self._episode.close()
            self._episode = None

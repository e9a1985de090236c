"""One LIBERO task's episode logic, shared by the in-process gym env and the pool's workers.

Why one class: soft reset, init-state choice, settle steps, truncation, reward and success must be the same
whether an episode runs under ``lerobot-eval`` (:mod:`lerobot_diffrl.envs.gym_env`) or in the RL pool
(:mod:`lerobot_diffrl.envs.worker`); two copies would drift.

Why a render gate: on CPU, rendering is ~90% of a pixel step (``machine.md``). robosuite renders each camera on
the first substep of every env step, and on every forced observable update (reset, ``set_init_state``). The gate
wraps the camera sensors: when closed, a sensor returns its previous image instead of rendering, so frames nobody
consumes (settle steps, the steps inside an action chunk) cost nothing. Rendering never touches the physics, so
dynamics are the same with the gate open or closed, and an opened frame is the frame robosuite would have
rendered at that step: images stay identical to lerobot's env.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from lerobot_diffrl.envs.fast_state import FastStateStep, fast_step_unsupported
from lerobot_diffrl.envs.libero_task import NOOP_ACTION, make_task_sim
from lerobot_diffrl.envs.observations import CAMERA_KEYS, object_vector, robot_vector
from lerobot_diffrl.envs.suites import TaskSpec, load_init_states
from lerobot_diffrl.errors import ConfigError

#: No-op steps after each reset so objects settle, as lerobot's LiberoEnv does (``num_steps_wait``).
SETTLE_STEPS = 10
CONTROL_MODES = ("relative", "absolute")


def init_state_index(seed: int, rank: int, n_same_task: int, episode: int, n_states: int) -> int:
    """Init state of the ``episode``-th episode of the ``rank``-th of ``n_same_task`` envs running one task.

    Like lerobot's scheme (``episode_index + k * n_envs``) with a seed offset: the envs of a task together
    walk through all its init states, each state once per cycle, and the order depends only on the seed.
    """
    if n_states <= 0:
        raise ConfigError("a task needs at least one init state")
    return (seed + rank + episode * max(n_same_task, 1)) % n_states


class RenderGate:
    """Lets camera sensors of one robosuite env render only when :attr:`open` (see module docstring)."""

    def __init__(self, sim_env: Any):
        self.open = True
        self._last: dict[str, np.ndarray] = {}
        observables = sim_env.env._observables
        for key in CAMERA_KEYS:
            if key in observables:
                observables[key].set_sensor(self._wrap(key, observables[key]._sensor))

    def _wrap(self, key: str, sensor):
        def gated(obs_cache):
            if self.open or key not in self._last:
                self._last[key] = sensor(obs_cache)
            return self._last[key]

        gated.__modality__ = getattr(sensor, "__modality__", "image")
        return gated


@dataclass
class StepResult:
    """What one env step produced, in the simulator's raw format plus the episode bookkeeping."""

    raw: dict[str, Any]
    reward: float
    terminated: bool
    truncated: bool
    is_success: bool
    rendered: bool


class TaskEpisode:
    """Runs episodes of one task on one simulator: soft reset, init states, truncation, sparse reward.

    ``render=False`` builds the simulator without any renderer (state mode) and, with ``fast_state`` (the
    default), steps it with :class:`~lerobot_diffrl.envs.fast_state.FastStateStep`: the same simulator states,
    observations and rewards, about 1.7x faster. A task the fast step is not checked for falls back to
    robosuite's step with a warning. With ``render=True`` each :meth:`reset`/:meth:`step` takes ``render`` to
    say whether the returned images must be fresh.
    """

    def __init__(
        self,
        spec: TaskSpec,
        *,
        render: bool,
        image_size: tuple[int, int] = (128, 128),
        max_steps: int | None = None,
        control_mode: str = "relative",
        build_seed: int = 0,
        settle_steps: int = SETTLE_STEPS,
        render_gpu_device_id: int = -1,
        fast_state: bool = True,
    ):
        if control_mode not in CONTROL_MODES:
            raise ConfigError(f"control_mode must be one of {CONTROL_MODES}, got {control_mode!r}")
        if max_steps is not None and max_steps < 1:
            raise ConfigError(f"episode length must be >= 1, got {max_steps}")
        self.spec = spec
        self.renders = render
        self.image_size = tuple(image_size)
        self.max_steps = max_steps if max_steps is not None else spec.max_steps
        self.control_mode = control_mode
        self.settle_steps = settle_steps
        self.build_seed = build_seed
        self.init_states = load_init_states(spec)
        self.sim = make_task_sim(
            spec,
            render=render,
            image_size=self.image_size,
            seed=build_seed,
            render_gpu_device_id=render_gpu_device_id,
        )
        self.gate = RenderGate(self.sim) if render else None
        #: Whether steps go through the state fast path.
        self.uses_fast_state = False
        self._step_sim = self._choose_step(fast_state and not render)
        self.elapsed_steps = 0
        self.init_index = -1
        self.done = True
        self.last_raw: dict[str, Any] | None = None

    def _choose_step(self, fast: bool):
        """The function one control step calls: the fast state step where it reproduces this task exactly."""
        if not fast:
            return self.sim.step
        why = fast_step_unsupported(self.sim)
        if why is not None:
            warnings.warn(
                f"{self.spec.suite}/{self.spec.task_id}: state fast path off ({why}); using robosuite's step",
                stacklevel=3,
            )
            return self.sim.step
        fast_step = FastStateStep(self.sim)
        self.uses_fast_state = True

        def step(action: np.ndarray):
            result = fast_step(action)
            return self.sim.step(action) if result is None else result

        return step

    @property
    def n_init_states(self) -> int:
        return len(self.init_states)

    def _set_gate(self, value: bool) -> None:
        if self.gate is not None:
            self.gate.open = value

    def _fresh_scene(self) -> None:
        """robosuite's soft reset, made a function of the init state alone.

        Two things would otherwise carry over from whatever ran before: robosuite re-samples the fixtures'
        poses (LIBERO's init states pin only the movable objects) from NumPy's global RNG, and it keeps the
        gripper's last command, which then drives the settle steps. Here the fixtures are drawn from an RNG
        seeded by (build seed, init state), with the global RNG left as it was, and the gripper starts open-loop
        from its construction value, so ``reset(i)`` gives the same scene and first observation every time
        (gymnasium's ``check_env`` determinism check).
        """
        saved = np.random.get_state()
        np.random.seed([self.build_seed, self.init_index])
        try:
            self.sim.reset()
        finally:
            np.random.set_state(saved)
        for robot in self.sim.robots:
            gripper = getattr(robot, "gripper", None)
            if gripper is not None:
                gripper.current_action = np.zeros(gripper.dof)

    def reset(self, init_index: int, render: bool = True) -> dict[str, Any]:
        """Soft reset to init state ``init_index`` (modulo the number of states), settle, return the raw obs.

        Only the observation that is returned is rendered (when ``render``): the reset's and the settle
        steps' frames are skipped.
        """
        self._set_gate(False)
        self.init_index = int(init_index) % self.n_init_states
        self._fresh_scene()
        self._set_gate(render and self.settle_steps == 0)
        raw = self.sim.set_init_state(self.init_states[self.init_index])
        for i in range(self.settle_steps):
            self._set_gate(render and i == self.settle_steps - 1)
            raw, _, _, _ = self._step_sim(NOOP_ACTION)
        for robot in self.sim.robots:
            robot.controller.use_delta = self.control_mode == "relative"
        self.elapsed_steps = 0
        self.done = False
        self.last_raw = raw
        return raw

    def step(self, action: np.ndarray, render: bool = True) -> StepResult:
        """One 20 Hz step. Reward is 1.0 exactly when the task is solved (which terminates the episode);
        the episode truncates when it reaches ``max_steps`` without success."""
        if self.done:
            raise ConfigError("step() called on a finished episode; reset it first")
        action = np.asarray(action, dtype=np.float64).reshape(-1)
        if action.shape != (7,):
            raise ConfigError(f"a LIBERO action has 7 values, got shape {action.shape}")
        self._set_gate(render)
        raw, _, _, _ = self._step_sim(np.clip(action, -1.0, 1.0))
        self.elapsed_steps += 1
        success = bool(self.sim.check_success())
        truncated = not success and self.elapsed_steps >= self.max_steps
        self.done = success or truncated
        self.last_raw = raw
        return StepResult(
            raw=raw,
            reward=1.0 if success else 0.0,
            terminated=success,
            truncated=truncated,
            is_success=success,
            rendered=bool(render and self.renders),
        )

    def robot_state(self, raw: dict[str, Any]) -> np.ndarray:
        return robot_vector(raw, self.sim)

    def object_state(self, raw: dict[str, Any]) -> tuple[np.ndarray, int]:
        return object_vector(raw)

    def last_image(self, key: str = CAMERA_KEYS[0]) -> np.ndarray:
        """The camera image of the last observation (unflipped), as lerobot's ``render()`` uses it."""
        if not self.renders or self.last_raw is None:
            raise ConfigError(
                "no image: this env was built without a renderer (obs mode 'state') or not reset"
            )
        return self.last_raw[key]

    def close(self) -> None:
        try:
            self.sim.close()
        except Exception:  # a broken GL context must not stop a shutdown
            pass

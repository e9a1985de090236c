"""Episodes are a function of their init state: gymnasium's env checker passes, a reset after other episodes gives
the same scene and trajectory, and the gym env and the pool agree step for step."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from lerobot_diffrl.envs.episode import TaskEpisode
from lerobot_diffrl.envs.gym_env import LiberoGymEnv
from lerobot_diffrl.envs.observations import lerobot_robot_state
from lerobot_diffrl.envs.pool import EnvPool, SlotSpec
from lerobot_diffrl.envs.suites import task_spec

#: libero_spatial task 3 has fixtures (a cabinet, a stove) whose poses LIBERO's init states do not pin.
SPATIAL = ("libero_spatial", 3)


def _actions(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    actions = rng.uniform(-0.5, 0.5, size=(n, 7))
    actions[:, 6] = np.where(np.arange(n) % 20 < 10, -1.0, 1.0)  # the gripper closes and opens
    return actions


@pytest.mark.slow
@pytest.mark.parametrize(
    ("suite", "task_id", "obs_type"), [(*SPATIAL, "state"), ("libero_object", 0, "pixels")]
)
def test_gymnasium_env_checker_passes(suite: str, task_id: int, obs_type: str) -> None:
    env = LiberoGymEnv(suite=suite, task_ids=[task_id], obs_type=obs_type, image_size=(32, 32))
    try:
        check_env(env, skip_render_check=True)
    finally:
        env.close()


def _trajectory(ep: TaskEpisode, init_index: int, actions: np.ndarray) -> list[np.ndarray]:
    ep.reset(init_index, render=False)
    data, states = ep.sim.env.sim.data, []
    for action in actions:
        ep.step(action, render=False)
        states.append(np.concatenate([data.qpos, data.qvel]))
    return states


@pytest.mark.slow
def test_a_reset_does_not_depend_on_earlier_episodes() -> None:
    ep = TaskEpisode(task_spec(*SPATIAL), render=False)
    first = _trajectory(ep, 2, _actions(30))
    np.random.seed(12345)  # someone else's use of the global RNG must not matter either
    _trajectory(ep, 5, _actions(40, seed=1))  # another episode, gripper last closed
    again = _trajectory(ep, 2, _actions(30))
    ep.close()
    for step, (a, b) in enumerate(zip(first, again, strict=True)):
        assert np.array_equal(a, b), f"step {step} differs by {np.abs(a - b).max()}"
    other_init = TaskEpisode(task_spec(*SPATIAL), render=False, build_seed=1)
    shifted = _trajectory(other_init, 2, _actions(1))
    other_init.close()
    assert not np.array_equal(shifted[0], first[0])  # the build seed still picks the fixtures' poses


@pytest.mark.slow
def test_gym_env_and_pool_give_identical_observations() -> None:
    actions = _actions(25).astype(np.float32)  # what the gym env takes; the pool widens it exactly
    env = LiberoGymEnv(suite=SPATIAL[0], task_ids=[SPATIAL[1]], obs_type="state")
    gym_obs = [env.reset(seed=4)[0]]
    gym_obs += [env.step(a)[0] for a in actions]
    env.close()
    with EnvPool([SlotSpec(*SPATIAL)], obs_mode="state", seed=4, n_workers=1) as pool:
        pool_obs = [pool.reset(seed=4)[0]]
        pool_obs += [pool.step(a[None])[0] for a in actions]
    for step, (g, p) in enumerate(zip(gym_obs, pool_obs, strict=True)):
        assert np.array_equal(g["environment_state"], p["object_state"][0]), f"object state, step {step}"
        robot = lerobot_robot_state(p["robot_state"][0])
        for part in ("eef", "gripper", "joints"):
            for key, value in robot[part].items():
                assert np.array_equal(g["robot_state"][part][key], value), f"{part}.{key}, step {step}"


def test_init_state_files_load_without_running_code(tmp_path, monkeypatch) -> None:
    """torch.load of an init-state file accepts plain arrays only: a pickle that would run code is refused."""
    import dataclasses

    import torch

    from lerobot_diffrl.envs.suites import load_init_states
    from lerobot_diffrl.errors import UnknownTaskError

    spec = task_spec(*SPATIAL)
    assert load_init_states(spec).shape == (50, 92)

    class Payload:
        def __reduce__(self):
            return (print, ("pwned",))

    evil = tmp_path / "evil.pruned_init"
    torch.save(Payload(), evil)
    with pytest.raises(UnknownTaskError, match="not a plain array of states"):
        load_init_states(dataclasses.replace(spec, init_states_file=evil))

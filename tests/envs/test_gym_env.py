"""The in-process gym env (``diffrl_env`` for lerobot-eval) against lerobot 0.4.4's own LiberoEnv."""

from __future__ import annotations

import numpy as np
import pytest

from lerobot_diffrl.envs.episode import TaskEpisode
from lerobot_diffrl.envs.suites import task_spec

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pixel_env():
    from lerobot_diffrl.envs.gym_env import LiberoGymEnv

    env = LiberoGymEnv("libero_object", task_ids=[0], obs_type="pixels_agent_pos", image_size=(128, 128))
    yield env
    env.close()


def test_images_identical_to_lerobot_env(pixel_env) -> None:
    """Same init state, same actions -> the same pixels as lerobot's LiberoEnv (which hard-resets and renders
    its 10 settle steps; ours soft-resets and renders only the last one)."""
    from lerobot_diffrl.envs.libero_setup import prepare_libero

    prepare_libero()
    from lerobot.envs.libero import LiberoEnv, _get_suite

    theirs = LiberoEnv(
        task_suite=_get_suite("libero_object"),
        task_id=0,
        task_suite_name="libero_object",
        obs_type="pixels_agent_pos",
        observation_height=128,
        observation_width=128,
    )
    try:
        their_obs, _ = theirs.reset(seed=0)  # init state 0
        our_obs, info = pixel_env.reset(seed=0)
        assert info["init_index"] == 0
        rng = np.random.default_rng(0)
        for step in range(3):
            for name in ("image", "image2"):
                assert our_obs["pixels"][name].dtype == np.uint8
                assert our_obs["pixels"][name].shape == (128, 128, 3)
                np.testing.assert_array_equal(
                    our_obs["pixels"][name], their_obs["pixels"][name], err_msg=f"{name}@{step}"
                )
            for part in ("pos", "quat", "mat"):
                np.testing.assert_allclose(
                    our_obs["robot_state"]["eef"][part], their_obs["robot_state"]["eef"][part]
                )
            action = rng.uniform(-1, 1, 7).astype(np.float32)
            their_obs, *_ = theirs.step(action)
            our_obs, *_ = pixel_env.step(action)
    finally:
        theirs.close()


def test_lerobot_conventions(pixel_env) -> None:
    assert pixel_env.metadata["render_fps"] == 20
    assert pixel_env.task_description and isinstance(pixel_env.task, str)
    assert pixel_env._max_episode_steps == 280
    obs, _ = pixel_env.reset(seed=1)
    assert pixel_env.observation_space.contains(obs)
    frame = pixel_env.render()
    np.testing.assert_array_equal(frame, obs["pixels"]["image"][::-1, ::-1])
    # lerobot's own preprocessing and LiberoProcessorStep give the 8-d state and CHW images.
    from lerobot.envs.utils import preprocess_observation
    from lerobot.processor.env_processor import LiberoProcessorStep

    batch = {
        "pixels": {k: v[None] for k, v in obs["pixels"].items()},
        "robot_state": {g: {k: v[None] for k, v in d.items()} for g, d in obs["robot_state"].items()},
    }
    processed = LiberoProcessorStep()._process_observation(preprocess_observation(batch))
    assert processed["observation.state"].shape == (1, 8)
    assert processed["observation.images.image"].shape == (1, 3, 128, 128)


def test_seed_assigns_task_and_init_state() -> None:
    from lerobot_diffrl.envs.gym_env import LiberoGymEnv

    env = LiberoGymEnv("libero_object", task_ids=[0, 3], obs_type="state")
    try:
        assert env.assignment(0) == (0, 0) and env.assignment(1) == (3, 0) and env.assignment(5) == (3, 2)
        _, info = env.reset(seed=5)
        assert info["task_id"] == 3 and info["init_index"] == 2 and env.task_id == 3
        _, info = env.reset(seed=4 + 2 * 50)  # init states cycle
        assert info["task_id"] == 0 and info["init_index"] == 2
    finally:
        env.close()


def test_truncation_exactly_at_limit_and_reward_only_on_success() -> None:
    from lerobot_diffrl.envs.gym_env import LiberoGymEnv

    env = LiberoGymEnv("libero_object", task_ids=[0], obs_type="state", episode_length=5)
    try:
        obs, _ = env.reset(seed=0)
        assert obs["environment_state"].shape == (256,) and np.any(obs["environment_state"] != 0)
        for step in range(1, 6):
            obs, reward, terminated, truncated, info = env.step(np.zeros(7, np.float32))
            assert reward == 0.0 and not terminated and not info["is_success"]
            assert truncated == (step == 5) and info["TimeLimit.truncated"] == (step == 5)
        env.reset(seed=0)
        env._episode.sim.check_success = lambda: True  # a solved task: success ends the episode with 1.0
        _, reward, terminated, truncated, info = env.step(np.zeros(7, np.float32))
        assert (reward, terminated, truncated, info["is_success"]) == (1.0, True, False, True)
    finally:
        env.close()


def test_rendering_does_not_change_dynamics() -> None:
    spec = task_spec("libero_object", 1)
    episode = TaskEpisode(spec, render=True, image_size=(64, 64))
    try:
        actions = np.random.default_rng(1).uniform(-1, 1, (6, 7))
        trajectories = []
        for render in (True, False):
            episode.reset(3, render=render)
            states = [episode.step(a, render=render).raw["robot0_eef_pos"].copy() for a in actions]
            trajectories.append(np.array(states))
        # equal up to MuJoCo's solver warm start, which a soft reset does not clear (~1e-16)
        np.testing.assert_allclose(trajectories[0], trajectories[1], rtol=0, atol=1e-12)
    finally:
        episode.close()


def test_make_env_builds_diffrl_env_vector() -> None:
    """lerobot's make_env dispatches to ``create_envs``: ``{suite: {task_id: vec}}`` as for lerobot's own LIBERO env
    (one vector env per task, async for 2 envs as lerobot-eval asks by default); the env processors come from
    ``get_env_processors`` (LiberoProcessorStep)."""
    import gymnasium as gym
    from lerobot.envs.factory import make_env, make_env_pre_post_processors
    from lerobot.policies.diffusion.configuration_diffusion import DiffusionConfig

    from lerobot_diffrl.envs.configs import DiffRLEnvConfig

    cfg = DiffRLEnvConfig(task="libero_object", task_ids=[2], obs_type="pixels_agent_pos", episode_length=3)
    envs = make_env(cfg, n_envs=2, use_async_envs=True)
    assert list(envs) == ["libero_object"] and list(envs["libero_object"]) == [2]
    vec = envs["libero_object"][2]
    try:
        assert isinstance(vec, gym.vector.AsyncVectorEnv)
        assert vec.call("_max_episode_steps") == (3, 3)
        obs, _ = vec.reset(seed=[0, 1])
        assert obs["pixels"]["image"].shape == (2, 128, 128, 3)
        pre, _ = make_env_pre_post_processors(cfg, DiffusionConfig())
        assert any(type(s).__name__ == "LiberoProcessorStep" for s in pre.steps)
    finally:
        vec.close()

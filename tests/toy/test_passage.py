"""The passage task: walls block, the gap lets through, sparse reward, truncation, auto-reset, demos."""

from __future__ import annotations

import numpy as np
import pytest

from lerobot_diffrl.envs.passage import PassageConfig, PassageVectorEnv, scripted_demos
from lerobot_diffrl.errors import ConfigError


def place(env: PassageVectorEnv, pos, goal) -> None:
    env.pos[:] = np.asarray(pos, dtype=float)
    env.goal[:] = np.asarray(goal, dtype=float)


def test_wall_blocks_outside_the_gap_and_lets_through_inside():
    env = PassageVectorEnv(2, PassageConfig(gap_half_width=0.08, step_size=0.05))
    env.reset(seed=0)
    place(env, [[-0.02, 0.3], [-0.02, 0.0]], [[0.6, 0.0], [0.6, 0.0]])
    obs, *_ = env.step(np.array([[1.0, 0.0], [1.0, 0.0]]))
    assert obs["agent_pos"][0, 0] < 0.0  # blocked, still left of the wall
    assert obs["agent_pos"][1, 0] == pytest.approx(0.03)  # through the gap


def test_reaching_the_goal_gives_reward_one_terminates_and_auto_resets():
    env = PassageVectorEnv(1)
    env.reset(seed=0)
    place(env, [[0.55, 0.0]], [[0.6, 0.0]])
    obs, reward, terminated, truncated, infos = env.step(np.array([[1.0, 0.0]]))
    assert reward.tolist() == [1.0] and terminated.tolist() == [True] and truncated.tolist() == [False]
    assert infos["is_success"].tolist() == [True]
    assert infos["final_obs"]["agent_pos"][0, 0] == pytest.approx(0.6)
    assert infos["final_info"][0] == {"is_success": True, "elapsed_steps": 1}
    assert obs["agent_pos"][0, 0] < -0.4  # already the next episode's start


def test_truncation_at_the_step_limit_without_reward():
    env = PassageVectorEnv(3, PassageConfig(max_steps=5))
    env.reset(seed=1)
    for step in range(5):
        _, reward, terminated, truncated, infos = env.step(np.zeros((3, 2)))
        assert reward.sum() == 0.0 and not terminated.any()
        assert truncated.all() == (step == 4)
    assert infos["TimeLimit.truncated"].all()
    assert [info["elapsed_steps"] for info in infos["final_info"]] == [5, 5, 5]


def test_same_seed_same_episodes():
    a, b = PassageVectorEnv(4, seed=3), PassageVectorEnv(4, seed=3)
    np.testing.assert_array_equal(a.reset(seed=7)[0]["agent_pos"], b.reset(seed=7)[0]["agent_pos"])


def test_scripted_demos_are_bimodal_and_imperfect():
    demos = scripted_demos(400, seed=0)
    success = np.mean([d["success"] for d in demos])
    assert 0.4 < success < 0.6
    assert scripted_demos(50, seed=0, bad_aim_fraction=0.0)[0]["success"]
    assert all(
        np.mean([d["success"] for d in scripted_demos(100, seed=s, bad_aim_fraction=0.0)]) == 1.0
        for s in (0, 1)
    )
    for d in demos[:10]:
        assert d["observation.state"].shape == (len(d["action"]), 4)
        assert np.abs(d["action"]).max() <= 1.0


def test_bad_arguments():
    with pytest.raises(ConfigError, match="n_envs must be >= 1"):
        PassageVectorEnv(0)
    env = PassageVectorEnv(2)
    env.reset()
    with pytest.raises(ConfigError, match=r"actions must have shape \(2, 2\)"):
        env.step(np.zeros((2, 7)))

"""Fast unit tests of observation layouts, init-state assignment and shared buffers (no simulator)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from lerobot.processor.env_processor import LiberoProcessorStep

from lerobot_diffrl.envs.episode import init_state_index
from lerobot_diffrl.envs.observations import (
    LEROBOT_STATE_DIM,
    ROBOT_STATE_DIM,
    check_obs_mode,
    lerobot_state,
    quat2axisangle,
    to_lerobot_raw,
)
from lerobot_diffrl.envs.shm import BufferSpec, SharedBuffers
from lerobot_diffrl.errors import ConfigError


def test_axis_angle_matches_lerobot_processor() -> None:
    rng = np.random.default_rng(0)
    quat = rng.normal(size=(64, 4))
    quat /= np.linalg.norm(quat, axis=1, keepdims=True)
    quat[0] = [0, 0, 0, 1]  # identity: the zero-angle branch
    ours = quat2axisangle(quat)
    theirs = LiberoProcessorStep()._quat2axisangle(torch.from_numpy(quat)).numpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_lerobot_state_layout() -> None:
    robot = np.arange(2 * ROBOT_STATE_DIM, dtype=np.float64).reshape(2, ROBOT_STATE_DIM) / 100
    robot[:, 3:7] = [0, 0, 0, 1]
    state = lerobot_state(robot)
    assert state.shape == (2, LEROBOT_STATE_DIM) and state.dtype == np.float32
    np.testing.assert_allclose(state[:, :3], robot[:, :3].astype(np.float32))
    np.testing.assert_allclose(state[:, 3:6], 0.0)
    np.testing.assert_allclose(state[:, 6:8], robot[:, 16:18].astype(np.float32))


def test_to_lerobot_raw_nests_like_lerobot() -> None:
    n = 3
    obs = {
        "robot_state": np.zeros((n, ROBOT_STATE_DIM)),
        "pixels": {"image": np.zeros((n, 8, 8, 3), np.uint8), "image2": np.zeros((n, 8, 8, 3), np.uint8)},
    }
    raw = to_lerobot_raw(obs)
    assert raw["robot_state"]["eef"]["mat"].shape == (n, 3, 3)
    assert raw["robot_state"]["joints"]["vel"].shape == (n, 7)
    assert raw["robot_state"]["gripper"]["qpos"].shape == (n, 2)
    assert set(raw["pixels"]) == {"image", "image2"}


def test_init_state_assignment_is_deterministic_and_cycles() -> None:
    n_states, n_envs = 50, 4
    seen = [
        init_state_index(7, rank, n_envs, episode, n_states)
        for episode in range(13)
        for rank in range(n_envs)
    ]
    assert sorted(seen[:n_states]) == list(range(n_states))  # every state once per cycle
    assert seen == [init_state_index(7, r, n_envs, e, n_states) for e in range(13) for r in range(n_envs)]
    assert init_state_index(8, 0, n_envs, 0, n_states) != init_state_index(7, 0, n_envs, 0, n_states)
    with pytest.raises(ConfigError):
        init_state_index(0, 0, 1, 0, 0)


def test_obs_mode_validation() -> None:
    assert check_obs_mode("pixels_state") == "pixels_state"
    with pytest.raises(ConfigError, match="obs_mode"):
        check_obs_mode("rgb")


def test_shared_buffers_attach_sees_writes() -> None:
    spec = BufferSpec(n_slots=2, image_size=(4, 6))
    owner = SharedBuffers(spec)
    try:
        other = SharedBuffers(spec, name=owner.name)
        other.images[0, 1, 0, 2, 3] = [1, 2, 3]
        other.robot[1, 0, 5] = 4.5
        assert owner.images[0, 1, 0, 2, 3].tolist() == [1, 2, 3]
        assert owner.robot[1, 0, 5] == 4.5
        assert owner.images.shape == (2, 2, 2, 4, 6, 3)
        other.close()
    finally:
        owner.close()

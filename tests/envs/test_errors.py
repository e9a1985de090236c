"""User errors raise the project's errors with one clear message."""

from __future__ import annotations

import pytest

from lerobot_diffrl.envs.configs import DiffRLEnvConfig
from lerobot_diffrl.envs.gym_env import LiberoGymEnv
from lerobot_diffrl.envs.pool import EnvPool, SlotSpec
from lerobot_diffrl.errors import ConfigError, UnknownTaskError


def test_unknown_suite() -> None:
    with pytest.raises(UnknownTaskError, match="libero_nope"):
        EnvPool([SlotSpec("libero_nope", 0)])
    with pytest.raises(UnknownTaskError, match="known suites"):
        LiberoGymEnv("libero_nope")


def test_unknown_task_id() -> None:
    with pytest.raises(UnknownTaskError, match="valid ids: 0..9"):
        EnvPool([SlotSpec("libero_object", 10)])
    with pytest.raises(UnknownTaskError):
        LiberoGymEnv("libero_object", task_ids=[42])


def test_zero_envs() -> None:
    with pytest.raises(ConfigError, match="at least one slot"):
        EnvPool([])
    with pytest.raises(ConfigError, match="n_envs"):
        DiffRLEnvConfig(task="libero_object", task_ids=[0]).create_envs(0)


def test_bad_arguments() -> None:
    with pytest.raises(ConfigError, match="obs_mode"):
        EnvPool([SlotSpec("libero_object", 0)], obs_mode="rgb")
    with pytest.raises(ConfigError, match="fork"):
        EnvPool([SlotSpec("libero_object", 0)], context="fork")
    with pytest.raises(ConfigError, match="n_workers"):
        EnvPool([SlotSpec("libero_object", 0)], n_workers=2)
    with pytest.raises(ConfigError, match="obs_type"):
        LiberoGymEnv("libero_object", obs_type="depth")


def test_config_is_lerobot_libero_config_with_20_fps() -> None:
    from lerobot.envs.configs import LiberoEnv

    cfg = DiffRLEnvConfig(task="libero_object", task_ids=[0])
    assert isinstance(cfg, LiberoEnv) and cfg.type == "diffrl_env"
    assert cfg.fps == 20
    assert cfg.gym_kwargs["image_size"] == (128, 128)

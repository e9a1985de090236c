"""LeRobot finds the plugin by its distribution name and knows the project's types after discovery."""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys

import pytest

DIST = "lerobot_policy_diffrl"


def test_distribution_name_matches_lerobot_plugin_prefix():
    name = importlib.metadata.distribution(DIST).metadata["Name"]
    assert name == DIST
    assert name.startswith("lerobot_policy_")


def test_console_scripts_are_installed():
    scripts = {
        ep.name for ep in importlib.metadata.distribution(DIST).entry_points if ep.group == "console_scripts"
    }
    assert {"lerobot-diffrl-setup-libero", "lerobot-diffrl-demo"} <= scripts


DISCOVERY_PROBE = """
import json
from lerobot.configs.policies import PreTrainedConfig
from lerobot.envs.configs import EnvConfig
from lerobot.utils.import_utils import register_third_party_plugins
before = sorted(PreTrainedConfig.get_known_choices())
register_third_party_plugins()
from lerobot.policies.factory import get_policy_class, make_policy_config
from lerobot.envs.factory import make_env_config
env_cls = EnvConfig.get_choice_class("diffrl_env")
print(json.dumps({
    "before": before,
    "policies": sorted(PreTrainedConfig.get_known_choices()),
    "envs": sorted(EnvConfig.get_known_choices()),
    "diffrl_class": get_policy_class("diffrl").__name__,
    "gaussrl_class": get_policy_class("gaussrl").__name__,
    "diffrl_config": type(make_policy_config("diffrl")).__name__,
    "env_type": env_cls().type,
    "env_fps": env_cls().fps,
    "env_gym_id": env_cls().gym_id,
}))
"""


def test_types_registered_in_fresh_interpreter_after_discovery():
    proc = subprocess.run(
        [sys.executable, "-c", DISCOVERY_PROBE], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "diffrl" not in seen["before"]  # registration comes from discovery, not from lerobot itself
    assert {"diffrl", "gaussrl"} <= set(seen["policies"])
    assert "diffrl_env" in seen["envs"]
    assert seen["diffrl_class"] == "DiffRLPolicy"
    assert seen["gaussrl_class"] == "GaussRLPolicy"
    assert seen["diffrl_config"] == "DiffRLConfig"
    assert seen["env_fps"] == 20
    assert "libero" not in seen["env_type"]  # keeps lerobot's make_env off its own LIBERO builder
    assert seen["env_gym_id"] == "lerobot_diffrl/Libero-v0"


@pytest.mark.slow
@pytest.mark.parametrize(
    "command",
    [
        ["lerobot-train", "--policy.type=diffrl", "--help"],
        ["lerobot-train", "--policy.type=gaussrl", "--env.type=diffrl_env", "--help"],
        ["lerobot-eval", "--help"],
        ["lerobot-eval", "--env.type=diffrl_env", "--help"],
    ],
)
def test_lerobot_clis_know_the_types(command):
    exe = shutil.which(command[0]) or os.path.join(os.path.dirname(sys.executable), command[0])
    proc = subprocess.run([exe, *command[1:]], capture_output=True, text=True, timeout=300)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    assert "invalid choice" not in output and "not a valid" not in output.lower()
    if "--policy.type=diffrl" in command:
        assert "ft_denoising_steps" in output  # the help lists DiffRLConfig's own fields

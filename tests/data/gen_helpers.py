"""Helpers of the generation tests: tiny real policy checkpoints and the environment for CLI subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

BIN = Path(sys.executable).parent
TASK0 = "pick up the alphabet soup and place it in the basket"


def save_tiny_policy(
    folder: Path,
    action_dim: int = 7,
    image_size: int | None = None,
    kind: str = "diffrl",
    env_state_dim: int | None = None,
) -> Path:
    """A small diffrl/gaussrl checkpoint (config, weights, processors with statistics) as lerobot-train saves
    it. Action statistics span [-0.5, 0.5], so unnormalised actions stay in that range. ``env_state_dim`` adds
    an ``observation.environment_state`` input (object state, statistics [-1, 1])."""
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.factory import make_pre_post_processors

    from lerobot_diffrl.policies import DiffRLConfig, GaussRLConfig
    from lerobot_diffrl.policies.diffrl.modeling_diffrl import DiffRLPolicy
    from lerobot_diffrl.policies.gaussrl.modeling_gaussrl import GaussRLPolicy

    torch.manual_seed(0)
    inputs = {"observation.state": PolicyFeature(FeatureType.STATE, (8,))}
    if env_state_dim:
        inputs["observation.environment_state"] = PolicyFeature(FeatureType.ENV, (env_state_dim,))
    if image_size:
        for cam in ("observation.images.image", "observation.images.image2"):
            inputs[cam] = PolicyFeature(FeatureType.VISUAL, (3, image_size, image_size))
    common = dict(
        input_features=inputs,
        output_features={"action": PolicyFeature(FeatureType.ACTION, (action_dim,))},
        device="cpu",
        tasks=[TASK0],
        vision_width=8,
        image_feature_dim=16,
        state_feature_dim=16,
        task_embedding_dim=8,
        critic_hidden_dim=32,
        critic_num_blocks=1,
        n_action_steps=4,
        horizon=8,
        drop_n_last_frames=4,
    )
    if kind == "diffrl":
        config = DiffRLConfig(
            **common, unet_down_dims=(16, 32), time_embed_dim=16, ddim_steps=2, ft_denoising_steps=2
        )
        policy = DiffRLPolicy(config)
    else:
        config = GaussRLConfig(**common, head_hidden_dim=32, head_num_blocks=1)
        policy = GaussRLPolicy(config)
    stats = {
        "observation.state": {"min": torch.full((8,), -1.0), "max": torch.full((8,), 1.0)},
        "action": {"min": torch.full((action_dim,), -0.5), "max": torch.full((action_dim,), 0.5)},
    }
    if env_state_dim:
        stats["observation.environment_state"] = {
            "min": torch.full((env_state_dim,), -1.0),
            "max": torch.full((env_state_dim,), 1.0),
        }
    pre, post = make_pre_post_processors(config, dataset_stats=stats)
    folder.mkdir(parents=True, exist_ok=True)
    policy.save_pretrained(folder)
    pre.save_pretrained(folder)
    post.save_pretrained(folder)
    return folder


def cli_env() -> dict[str, str]:
    return dict(
        os.environ,
        HF_HUB_OFFLINE="1",
        OMP_NUM_THREADS="2",
        MKL_NUM_THREADS="2",
        WANDB_MODE="disabled",
        PYTHONUNBUFFERED="1",
    )


def run_lerobot_train(dataset: Path, out: Path, *args: str, steps: int = 2) -> subprocess.CompletedProcess:
    """Plain ``lerobot-train --policy.type=diffrl`` on a generated dataset for ``steps`` steps, saving at the end;
    ``args`` are the policy sizes and anything else the test needs."""
    cmd = [
        str(BIN / "lerobot-train"),
        "--policy.type=diffrl",
        f"--dataset.repo_id=local/{dataset.name}",
        f"--dataset.root={dataset}",
        "--policy.push_to_hub=false",
        f"--steps={steps}",
        f"--save_freq={steps}",
        f"--output_dir={out}",
        "--policy.device=cpu",
        "--num_workers=0",
        "--wandb.enable=false",
        "--env_eval_freq=0",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, env=cli_env(), timeout=600)

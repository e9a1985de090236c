"""Checkpoints for RL tests: BC-trained passage policies and tiny LIBERO-shaped policies with processors."""

from __future__ import annotations

from pathlib import Path

import torch
from lerobot.configs.types import FeatureType, PolicyFeature

from lerobot_diffrl.policies.common.processor import make_rl_policy_pre_post_processors
from lerobot_diffrl.rl.checkpoint import save_config
from lerobot_diffrl.rl.config import RLConfig

TINY = {
    "vision_width": 8,
    "image_feature_dim": 16,
    "state_feature_dim": 16,
    "task_embedding_dim": 8,
    "critic_hidden_dim": 32,
    "critic_num_blocks": 1,
    "denoiser": "mlp",
    "mlp_hidden_dim": 32,
    "mlp_num_blocks": 1,
    "time_embed_dim": 8,
    "horizon": 8,
    "n_action_steps": 8,
    "ddim_steps": 3,
    "ft_denoising_steps": 2,
}


def _stats(dim: int) -> dict[str, torch.Tensor]:
    return {"min": -torch.ones(dim), "max": torch.ones(dim), "mean": torch.zeros(dim), "std": torch.ones(dim)}


def tiny_libero_checkpoint(
    out: Path, image_size: int | None = None, env_state_dim: int | None = 64, action_dim: int = 7
) -> Path:
    """A randomly initialised ``diffrl`` with LIBERO's features (state, optional object state and cameras)
    and processors whose statistics are the env's nominal ranges, saved like a lerobot-train checkpoint."""
    from lerobot_diffrl.policies.diffrl.configuration_diffrl import DiffRLConfig
    from lerobot_diffrl.policies.diffrl.modeling_diffrl import DiffRLPolicy

    inputs = {"observation.state": PolicyFeature(FeatureType.STATE, (8,))}
    stats = {"observation.state": _stats(8), "action": _stats(action_dim)}
    if env_state_dim:
        inputs["observation.environment_state"] = PolicyFeature(FeatureType.ENV, (env_state_dim,))
        stats["observation.environment_state"] = _stats(env_state_dim)
    if image_size:
        for cam in ("image", "image2"):
            inputs[f"observation.images.{cam}"] = PolicyFeature(
                FeatureType.VISUAL, (3, image_size, image_size)
            )
    config = DiffRLConfig(
        input_features=inputs,
        output_features={"action": PolicyFeature(FeatureType.ACTION, (action_dim,))},
        device="cpu",
        use_images=bool(image_size),
        **TINY,
    )
    policy = DiffRLPolicy(config)
    pre, post = make_rl_policy_pre_post_processors(config, stats)
    policy.save_pretrained(out)
    pre.save_pretrained(out)
    post.save_pretrained(out)
    return out


def write_config(cfg: RLConfig, path: Path) -> Path:
    save_config(cfg, path)
    return path

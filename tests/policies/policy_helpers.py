"""Small policy configs and batches for fast CPU tests."""

from __future__ import annotations

import torch
from lerobot.configs.types import FeatureType, PolicyFeature

torch.set_num_threads(2)

CAMERAS = ("observation.images.image", "observation.images.image2")


def make_features(image_size: int | None = 32, state_dim: int = 8, action_dim: int = 7) -> tuple[dict, dict]:
    inp: dict[str, PolicyFeature] = {}
    if image_size:
        for cam in CAMERAS:
            inp[cam] = PolicyFeature(FeatureType.VISUAL, (3, image_size, image_size))
    if state_dim:
        inp["observation.state"] = PolicyFeature(FeatureType.STATE, (state_dim,))
    return inp, {"action": PolicyFeature(FeatureType.ACTION, (action_dim,))}


SMALL = {
    "vision_width": 8,
    "image_feature_dim": 16,
    "state_feature_dim": 16,
    "task_embedding_dim": 8,
    "critic_hidden_dim": 32,
    "critic_num_blocks": 1,
}
SMALL_DIFFRL = {
    **SMALL,
    "unet_down_dims": (16, 32),
    "time_embed_dim": 16,
    "mlp_hidden_dim": 64,
    "mlp_num_blocks": 1,
}
SMALL_GAUSS = {**SMALL, "head_hidden_dim": 64, "head_num_blocks": 1}


def make_policy(kind: str = "diffrl", image_size: int | None = 32, **overrides):
    from lerobot_diffrl.policies import DiffRLConfig, GaussRLConfig
    from lerobot_diffrl.policies.diffrl.modeling_diffrl import DiffRLPolicy
    from lerobot_diffrl.policies.gaussrl.modeling_gaussrl import GaussRLPolicy

    config_cls, policy_cls, small = {
        "diffrl": (DiffRLConfig, DiffRLPolicy, SMALL_DIFFRL),
        "gaussrl": (GaussRLConfig, GaussRLPolicy, SMALL_GAUSS),
    }[kind]
    inp, out = make_features(image_size, overrides.pop("state_dim", 8), overrides.pop("action_dim", 7))
    cfg = config_cls(
        input_features=inp,
        output_features=out,
        device="cpu",
        tasks=["pick", "place"],
        **{**small, **overrides},
    )
    return policy_cls(cfg)


def make_batch(policy, batch_size: int = 3, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    cfg = policy.config
    batch: dict = {}
    for key, ft in cfg.input_features.items():
        if ft.type is FeatureType.VISUAL:
            batch[key] = torch.rand(batch_size, *ft.shape, generator=g)
        else:
            batch[key] = torch.randn(batch_size, *ft.shape, generator=g)
    batch["action"] = torch.rand(batch_size, cfg.horizon, cfg.action_dim, generator=g) * 2 - 1
    batch["task"] = (["pick", "place", "unknown"] * batch_size)[:batch_size]
    return batch

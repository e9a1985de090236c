"""Factories shared by the hfvla tests (configs with dataset-like features, preprocessed-like batches)."""

from __future__ import annotations

from pathlib import Path

import torch
from tiny_vlm import IMAGE_SIZE


def make_config(
    vlm_path: Path | str, cameras: int = 1, state: bool = False, action_dim: int = 7, **overrides
):
    """An HFVLAConfig with dataset-like features (two 32x32 cameras, 8-d state, 7-d action)."""
    from lerobot.configs.types import FeatureType, PolicyFeature

    from lerobot_diffrl.policies.hfvla.configuration_hfvla import HFVLAConfig

    image = PolicyFeature(type=FeatureType.VISUAL, shape=(3, IMAGE_SIZE, IMAGE_SIZE))
    keys = ["observation.images.image", "observation.images.image2"][:cameras]
    kwargs = dict(
        vlm_path=str(vlm_path),
        device="cpu",
        push_to_hub=False,
        image_keys=keys,
        use_state=state,
        input_features={
            "observation.images.image": image,
            "observation.images.image2": image,
            "observation.state": PolicyFeature(type=FeatureType.STATE, shape=(8,)),
        },
        output_features={"action": PolicyFeature(type=FeatureType.ACTION, shape=(action_dim,))},
    )
    kwargs.update(overrides)
    return HFVLAConfig(**kwargs)


def make_batch(n: int = 2, chunk: int = 1, seed: int = 0) -> dict:
    """A preprocessed-like batch: images in [0, 1], normalised state and action chunk, task strings."""
    g = torch.Generator().manual_seed(seed)
    tasks = ["pick up the alphabet soup and place it in the basket", "open the top drawer of the cabinet"]
    return {
        "observation.images.image": torch.rand(n, 3, IMAGE_SIZE, IMAGE_SIZE, generator=g),
        "observation.images.image2": torch.rand(n, 3, IMAGE_SIZE, IMAGE_SIZE, generator=g),
        "observation.state": torch.rand(n, 8, generator=g) * 2 - 1,
        "action": torch.rand(n, chunk, 7, generator=g) * 2 - 1,
        "action_is_pad": torch.zeros(n, chunk, dtype=torch.bool),
        "task": [tasks[i % 2] for i in range(n)],
    }

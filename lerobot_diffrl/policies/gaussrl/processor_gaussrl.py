"""Processors of the ``gaussrl`` policy (found by LeRobot's naming convention; shared implementation)."""

from __future__ import annotations

from typing import Any

import torch
from lerobot.processor import PolicyAction, PolicyProcessorPipeline

from lerobot_diffrl.policies.common.processor import make_rl_policy_pre_post_processors
from lerobot_diffrl.policies.gaussrl.configuration_gaussrl import GaussRLConfig


def make_gaussrl_pre_post_processors(
    config: GaussRLConfig,
    dataset_stats: dict[str, dict[str, torch.Tensor]] | None = None,
) -> tuple[
    PolicyProcessorPipeline[dict[str, Any], dict[str, Any]],
    PolicyProcessorPipeline[PolicyAction, PolicyAction],
]:
    """Rename -> AddBatchDim -> Device -> Normalizer; Unnormalizer -> Device(cpu) (as lerobot's diffusion)."""
    return make_rl_policy_pre_post_processors(config, dataset_stats)

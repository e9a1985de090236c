"""Pre/post-processor pipelines shared by ``diffrl``, ``gaussrl`` and ``hfvla``.

Same steps as lerobot's diffusion policy: Rename -> AddBatchDim -> Device -> Normalizer on the way in,
Unnormalizer -> Device(cpu) on the way out. The ``task`` string travels untouched in the batch (lerobot keeps it
as complementary data; AddBatchDim wraps a single string into a list) and the policy embeds it.
"""

from __future__ import annotations

from typing import Any

import torch
from lerobot.configs.policies import PreTrainedConfig
from lerobot.processor import (
    AddBatchDimensionProcessorStep,
    DeviceProcessorStep,
    NormalizerProcessorStep,
    PolicyAction,
    PolicyProcessorPipeline,
    RenameObservationsProcessorStep,
    UnnormalizerProcessorStep,
)
from lerobot.processor.converters import policy_action_to_transition, transition_to_policy_action
from lerobot.utils.constants import POLICY_POSTPROCESSOR_DEFAULT_NAME, POLICY_PREPROCESSOR_DEFAULT_NAME


def make_rl_policy_pre_post_processors(
    config: PreTrainedConfig,
    dataset_stats: dict[str, dict[str, torch.Tensor]] | None = None,
) -> tuple[
    PolicyProcessorPipeline[dict[str, Any], dict[str, Any]],
    PolicyProcessorPipeline[PolicyAction, PolicyAction],
]:
    """Build (preprocessor, postprocessor) normalising with ``dataset_stats`` per ``config.normalization_mapping``."""
    return normalizing_processors(config, {**config.input_features, **config.output_features}, dataset_stats)


def normalizing_processors(
    config: PreTrainedConfig,
    normalized_features: dict[str, Any],
    dataset_stats: dict[str, dict[str, torch.Tensor]] | None = None,
) -> tuple[
    PolicyProcessorPipeline[dict[str, Any], dict[str, Any]],
    PolicyProcessorPipeline[PolicyAction, PolicyAction],
]:
    """LeRobot's standard pipelines, normalising ``normalized_features`` on the way in and un-normalising the
    outputs on the way out. Policies differ only in which inputs they normalise (``hfvla`` skips what it ignores)."""
    input_steps = [
        RenameObservationsProcessorStep(rename_map={}),
        AddBatchDimensionProcessorStep(),
        DeviceProcessorStep(device=config.device),
        NormalizerProcessorStep(
            features=normalized_features, norm_map=config.normalization_mapping, stats=dataset_stats
        ),
    ]
    output_steps = [
        UnnormalizerProcessorStep(
            features=config.output_features, norm_map=config.normalization_mapping, stats=dataset_stats
        ),
        DeviceProcessorStep(device="cpu"),
    ]
    return (
        PolicyProcessorPipeline[dict[str, Any], dict[str, Any]](
            steps=input_steps, name=POLICY_PREPROCESSOR_DEFAULT_NAME
        ),
        PolicyProcessorPipeline[PolicyAction, PolicyAction](
            steps=output_steps,
            name=POLICY_POSTPROCESSOR_DEFAULT_NAME,
            to_transition=policy_action_to_transition,
            to_output=transition_to_policy_action,
        ),
    )

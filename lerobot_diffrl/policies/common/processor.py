"""Pre/post-processor pipelines shared by ``diffrl``, ``gaussrl`` and ``hfvla``.

Same steps as lerobot's diffusion policy: Rename -> AddBatchDim -> Device -> Normalizer on the way in,
Unnormalizer -> Device(cpu) on the way out. The ``task`` string travels untouched in the batch (lerobot keeps it
as complementary data; AddBatchDim wraps a single string into a list) and the policy embeds it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
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

from lerobot_diffrl.policies.common.config_base import RLPolicyConfigBase


def make_rl_policy_pre_post_processors(
    config: RLPolicyConfigBase,
    dataset_stats: dict[str, dict[str, torch.Tensor]] | None = None,
) -> tuple[
    PolicyProcessorPipeline[dict[str, Any], dict[str, Any]],
    PolicyProcessorPipeline[PolicyAction, PolicyAction],
]:
    """Build (preprocessor, postprocessor) normalising with ``dataset_stats`` per ``config.normalization_mapping``.

    State inputs normalised by ``MIN_MAX`` get a range of at least ``config.min_state_range`` (see
    :func:`widen_narrow_ranges`); actions keep their exact range, so normalised actions still span [-1, 1].
    """
    if dataset_stats is not None and config.min_state_range > 0:
        dataset_stats = widen_narrow_ranges(dataset_stats, config, config.min_state_range)
    return normalizing_processors(config, {**config.input_features, **config.output_features}, dataset_stats)


def widen_narrow_ranges(
    stats: dict[str, dict[str, Any]], config: PreTrainedConfig, min_range: float
) -> dict[str, dict[str, Any]]:
    """A copy of ``stats`` whose ``MIN_MAX`` state inputs span at least ``min_range`` around their centre.

    Why: lerobot's MIN_MAX maps ``[min, max]`` to [-1, 1] dividing by ``max - min`` (``eps`` = 1e-8 when equal).
    In LIBERO's object state many entries hardly move over a few demos (quaternions of objects at rest, the
    height of objects on the table, fixtures): 34 of libero_object task 0's 98 entries span less than 1e-3 over 8
    scripted demos, 30 of them exactly 0. A simulator jitter of 1e-6 in RL then becomes an input of ~100 (or
    ~1e2 / 1e-8 for an exactly constant one), which ruins the policy's actions away from the demos and gives the
    critic values of ~1e4 (value losses of ~1e8 with all-zero rewards). A floor keeps such entries near 0.
    """
    from lerobot.configs.types import FeatureType, NormalizationMode

    out = {k: dict(v) for k, v in stats.items()}
    for key, feature in config.input_features.items():
        mode = config.normalization_mapping.get(feature.type.value)
        if feature.type not in (FeatureType.STATE, FeatureType.ENV) or mode is not NormalizationMode.MIN_MAX:
            continue
        if key not in out or "min" not in out[key] or "max" not in out[key]:
            continue
        low = torch.as_tensor(out[key]["min"], dtype=torch.float64)
        high = torch.as_tensor(out[key]["max"], dtype=torch.float64)
        narrow, centre = high - low < min_range, (low + high) / 2
        out[key]["min"] = _like(out[key]["min"], torch.where(narrow, centre - min_range / 2, low))
        out[key]["max"] = _like(out[key]["max"], torch.where(narrow, centre + min_range / 2, high))
    return out


def _like(reference: Any, values: torch.Tensor) -> Any:
    """``values`` as the kind of array ``reference`` is (torch tensor or NumPy array), with its dtype."""
    if isinstance(reference, torch.Tensor):
        return values.to(reference.dtype)
    return values.numpy().astype(np.asarray(reference).dtype)


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

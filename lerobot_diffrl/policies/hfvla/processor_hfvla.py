"""Pre/post-processors of the ``hfvla`` policy (found by LeRobot's naming convention ``make_<type>_pre_post_processors``).

Standard LeRobot steps: Rename -> AddBatchDim -> Device -> Normalizer on the way in, Unnormalizer -> Device(cpu)
on the way out. Actions (and the state when ``use_state``) use ``QUANTILES`` normalisation, so the policy sees
``2 (x - q01) / (q99 - q01) - 1`` and the action tokenizer only has to clip and bin; the Unnormalizer maps the
decoded bin centres back with the same dataset quantiles. Images stay in [0, 1]: the VLM's own image processor
resizes and normalises them. The prompt, tokenisation and image pre-processing of the VLM happen inside the policy
(they depend on the VLM's processor, which lives with the model weights).
"""

from __future__ import annotations

from typing import Any

import torch
from lerobot.processor import PolicyAction, PolicyProcessorPipeline

from lerobot_diffrl.errors import DatasetError
from lerobot_diffrl.policies.common.processor import normalizing_processors
from lerobot_diffrl.policies.hfvla.configuration_hfvla import HFVLAConfig

QUANTILE_SCRIPT = "lerobot/datasets/v30/augment_dataset_quantile_stats.py"


def check_quantile_stats(config: HFVLAConfig, dataset_stats: dict[str, dict[str, Any]] | None) -> None:
    """``DatasetError`` unless the stats hold q01/q99 for ``action`` (and ``observation.state`` when used).

    lerobot computes them for every dataset written by 0.4 or later; older datasets need lerobot's
    ``augment_dataset_quantile_stats.py``.
    """
    if dataset_stats is None:
        return
    keys = ["action"] + (["observation.state"] if config.use_state else [])
    for key in keys:
        stats = dataset_stats.get(key, {})
        if "q01" not in stats or "q99" not in stats:
            raise DatasetError(
                f"the dataset statistics of {key!r} have no q01/q99 quantiles, which hfvla normalises with; "
                f"add them with lerobot's {QUANTILE_SCRIPT}."
            )


def make_hfvla_pre_post_processors(
    config: HFVLAConfig,
    dataset_stats: dict[str, dict[str, torch.Tensor]] | None = None,
) -> tuple[
    PolicyProcessorPipeline[dict[str, Any], dict[str, Any]],
    PolicyProcessorPipeline[PolicyAction, PolicyAction],
]:
    """(preprocessor, postprocessor) normalising the action (and state if ``use_state``) with dataset quantiles.

    Features the policy does not read (other cameras, the state when ``use_state`` is off) are left out of the
    normaliser, so their statistics are never required.
    """
    check_quantile_stats(config, dataset_stats)
    used = dict(config.output_features)
    for key in config.used_image_keys:
        if key in config.input_features:
            used[key] = config.input_features[key]
    if config.use_state and config.robot_state_feature is not None:
        used["observation.state"] = config.robot_state_feature
    return normalizing_processors(config, used, dataset_stats)

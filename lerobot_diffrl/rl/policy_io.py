"""Loading the policy RL fine-tunes, checking it fits the env, and moving data between the two.

The policy sees observations exactly as ``lerobot-eval`` would give them (:func:`lerobot_batch`, then the
checkpoint's own preprocessor: normalisation with the BC dataset's statistics) and acts in its normalised
action space; the checkpoint's postprocessor turns actions back into env units.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lerobot.configs.policies import PreTrainedConfig
from lerobot.policies.factory import make_pre_post_processors

from lerobot_diffrl.envs.lerobot_batch import OBS_ENV_STATE, lerobot_batch
from lerobot_diffrl.errors import CheckpointError, ConfigError
from lerobot_diffrl.policies.common.policy_base import RLPolicyBase

#: Policy types this trainer fine-tunes (diffrl with DPPO, gaussrl with standard PPO).
RL_POLICY_TYPES = ("diffrl", "gaussrl")


def policy_class(policy_type: str) -> type[RLPolicyBase]:
    if policy_type == "diffrl":
        from lerobot_diffrl.policies.diffrl.modeling_diffrl import DiffRLPolicy

        return DiffRLPolicy
    if policy_type == "gaussrl":
        from lerobot_diffrl.policies.gaussrl.modeling_gaussrl import GaussRLPolicy

        return GaussRLPolicy
    raise CheckpointError(
        f"the checkpoint holds a {policy_type!r} policy; lerobot-diffrl-rl fine-tunes {' or '.join(RL_POLICY_TYPES)}."
    )


def load_policy_config(path: str) -> PreTrainedConfig:
    """The checkpoint's config, with one clear error for a missing or foreign checkpoint."""
    local = Path(path)
    if str(path).startswith(("/", "./", "../", "~")) or local.exists():
        if not (local / "config.json").is_file():
            raise CheckpointError(
                f"{path} is not a policy checkpoint (no config.json); pass a pretrained_model folder."
            )
    try:
        return PreTrainedConfig.from_pretrained(path)
    except CheckpointError:
        raise
    except Exception as err:  # Hub lookups offline, malformed JSON, unknown type
        raise CheckpointError(
            f"cannot load the policy config from {path}: {str(err).splitlines()[0]}"
        ) from err


@dataclass
class LoadedPolicy:
    policy: RLPolicyBase
    preprocessor: Any
    postprocessor: Any
    env_state_dim: int | None


def load_policy(path: str, device: torch.device) -> LoadedPolicy:
    """Policy + processors of a checkpoint, on ``device``."""
    config = load_policy_config(path)
    cls = policy_class(getattr(config, "type", type(config).__name__))
    config.device = str(device)
    policy = cls.from_pretrained(path, config=config)
    policy.to(device)
    try:
        pre, post = make_pre_post_processors(
            config,
            pretrained_path=path,
            preprocessor_overrides={"device_processor": {"device": str(device)}},
        )
    except Exception as err:
        raise CheckpointError(
            f"{path} has no usable policy_preprocessor.json / policy_postprocessor.json "
            f"({str(err).splitlines()[0]}); save the checkpoint with lerobot-train or lerobot-diffrl-rl."
        ) from err
    env_state = config.input_features.get(OBS_ENV_STATE)
    return LoadedPolicy(policy, pre, post, int(env_state.shape[0]) if env_state is not None else None)


def check_compatible(loaded: LoadedPolicy, action_dim: int, renders: bool, obs_mode: str | None) -> None:
    """The env can feed this policy and execute its actions, or a clear ConfigError."""
    config = loaded.policy.config
    if config.action_dim != action_dim:
        raise ConfigError(
            f"the policy outputs {config.action_dim}-d actions but the env takes {action_dim}-d actions."
        )
    if config.used_image_features and not renders:
        raise ConfigError(
            "the policy uses camera images but env.obs_mode='state' renders none; use env.obs_mode=pixels "
            "(or a state-based policy trained with --policy.use_images=false)."
        )
    if loaded.env_state_dim is not None and obs_mode == "pixels":
        raise ConfigError(
            "the policy needs observation.environment_state (object state); use env.obs_mode=state or "
            "pixels_state."
        )


def policy_inputs(
    loaded: LoadedPolicy, obs: dict[str, Any], tasks: list[str], index: np.ndarray | None = None
) -> dict[str, Any]:
    """Normalised policy batch of (a subset ``index`` of) an observation batch."""
    if index is not None:
        obs = select(obs, index)
        tasks = [tasks[i] for i in index]
    batch = lerobot_batch(obs, tasks, env_state_dim=loaded.env_state_dim)
    return loaded.preprocessor(batch)


def env_actions(loaded: LoadedPolicy, normalized: torch.Tensor) -> np.ndarray:
    """(B, k, A) normalised actions -> env actions (unnormalised with the checkpoint's statistics)."""
    b, k, a = normalized.shape
    out = loaded.postprocessor(normalized.reshape(b * k, a).float())
    return out.reshape(b, k, a).cpu().numpy()


def select(obs: dict[str, Any], index: np.ndarray) -> dict[str, Any]:
    """Rows ``index`` of a (possibly nested) observation dict of arrays."""
    return {k: select(v, index) if isinstance(v, dict) else v[index] for k, v in obs.items()}

"""Configuration of the ``gaussrl`` policy type (``--policy.type=gaussrl``): DPPO's Gaussian baseline.

Same encoders, critic, chunking and RL interface as ``diffrl``; the action head is a residual MLP giving the
mean of a Gaussian over the whole normalised action chunk, with a learned state-independent std kept in
[std_min, std_max] = [0.01, 0.2] and initialised at 0.1, as in DPPO's Gaussian baseline. BC minimises the
Gaussian negative log-likelihood, which for a unimodal head regresses to the conditional mean.
"""

from __future__ import annotations

from dataclasses import dataclass

from lerobot.configs.policies import PreTrainedConfig

from lerobot_diffrl.errors import ConfigError
from lerobot_diffrl.policies.common.config_base import RLPolicyConfigBase


@PreTrainedConfig.register_subclass("gaussrl")
@dataclass
class GaussRLConfig(RLPolicyConfigBase):
    """Gaussian action-chunk policy.

    Args:
        head_hidden_dim: Width of the residual MLP head.
        head_num_blocks: Residual blocks of the head.
        std_init: Initial std of every action dimension.
        std_min: Lower bound of the learned std (DPPO: 0.01).
        std_max: Upper bound of the learned std (DPPO: 0.2).
    """

    head_hidden_dim: int = 512
    head_num_blocks: int = 3
    std_init: float = 0.1
    std_min: float = 0.01
    std_max: float = 0.2

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.std_min <= self.std_init <= self.std_max:
            raise ConfigError(
                f"need 0 < std_min <= std_init <= std_max; got {self.std_min}, {self.std_init}, {self.std_max}."
            )

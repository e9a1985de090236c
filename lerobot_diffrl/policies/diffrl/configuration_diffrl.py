"""Configuration of the ``diffrl`` policy type (``--policy.type=diffrl``).

Defaults follow DPPO (irom-princeton/dppo): cosine-beta schedule with K = 100 training steps, epsilon
prediction, DDIM sampling with 10 steps, eta = 1 for RL sampling and 0 for evaluation, sampling and log-prob
std clipped below at 0.1, noise draws clipped to ±3, predicted clean action clipped to ±1, K' = 10 fine-tuned
denoising steps. The PPO side (clamping log-probs to [-5, 2], denoising discount, per-step clip epsilon) lives in
``lerobot_diffrl.rl``, not here.
"""

from __future__ import annotations

from dataclasses import dataclass

from lerobot.configs.policies import PreTrainedConfig

from lerobot_diffrl.errors import ConfigError
from lerobot_diffrl.policies.common.config_base import RLPolicyConfigBase, _divisible

DENOISERS = ("unet", "mlp")


@PreTrainedConfig.register_subclass("diffrl")
@dataclass
class DiffRLConfig(RLPolicyConfigBase):
    """Compact conditional diffusion policy with exact per-transition Gaussian log-probabilities.

    Args:
        denoiser: ``"unet"`` (FiLM-conditioned 1-D temporal U-Net over the chunk) or ``"mlp"`` (residual MLP
            over the flattened chunk, cheaper; DPPO's MLP variant).
        unet_down_dims: Channels per U-Net level; ``horizon`` must be divisible by 2**(levels - 1).
        num_train_timesteps: K, the DDPM chain length used by the BC loss.
        ddim_steps: Number of DDIM steps used for sampling (1..K; ``ddim_steps == K`` with eta = 1 reproduces
            DDPM ancestral sampling).
        eval_eta: DDIM eta of deterministic sampling (0: no step noise).
        rl_eta: DDIM eta of stochastic (RL) sampling; 1 gives DDPM-level noise.
        ft_denoising_steps: K', the number of last DDIM transitions that RL fine-tunes and records.
        min_sampling_std: Lower bound on the std used to draw stochastic transitions (DPPO robomimic: 0.1).
        min_logprob_std: Lower bound on the std used in log-probabilities (DPPO: 0.1). With both bounds
            equal (the default) the log-probability is the exact density of the draw.
        randn_clip: Noise draws are clipped to ±this (DPPO: 3).
        denoised_clip: Predicted clean action x0 is clipped to ±this at every step (DPPO: 1).
        rl_frozen_base: Set by ``prepare_for_rl`` when K' < ddim_steps: earlier steps then use a frozen copy
            of the actor (``base_actor``), which is saved with the policy.
    """

    denoiser: str = "unet"
    unet_down_dims: tuple[int, ...] = (64, 128, 256)
    unet_kernel_size: int = 5
    unet_n_groups: int = 8
    time_embed_dim: int = 64
    mlp_hidden_dim: int = 512
    mlp_num_blocks: int = 3

    num_train_timesteps: int = 100
    ddim_steps: int = 10
    eval_eta: float = 0.0
    rl_eta: float = 1.0
    ft_denoising_steps: int = 10
    min_sampling_std: float = 0.1
    min_logprob_std: float = 0.1
    randn_clip: float = 3.0
    denoised_clip: float = 1.0
    rl_frozen_base: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.denoiser not in DENOISERS:
            raise ConfigError(f"denoiser must be one of {DENOISERS}; got {self.denoiser!r}.")
        if not 1 <= self.ddim_steps <= self.num_train_timesteps:
            raise ConfigError(
                f"ddim_steps must be in [1, num_train_timesteps={self.num_train_timesteps}]; got {self.ddim_steps}."
            )
        if not 1 <= self.ft_denoising_steps <= self.ddim_steps:
            raise ConfigError(
                f"ft_denoising_steps (K') must be in [1, ddim_steps={self.ddim_steps}]; got {self.ft_denoising_steps}."
            )
        if self.denoiser == "unet":
            factor = 2 ** (len(self.unet_down_dims) - 1)
            if not _divisible(self.horizon, factor):
                raise ConfigError(
                    f"horizon={self.horizon} must be divisible by {factor} for unet_down_dims={self.unet_down_dims}."
                )
            if not all(_divisible(d, self.unet_n_groups) for d in self.unet_down_dims):
                raise ConfigError("unet_down_dims must be multiples of unet_n_groups.")
        if self.min_sampling_std < 0 or self.min_logprob_std <= 0:
            raise ConfigError("min_sampling_std must be >= 0 and min_logprob_std > 0.")

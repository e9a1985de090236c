"""PPO over denoising transitions (DPPO), also serving Gaussian PPO where there is one transition.

The policy supplies element-wise Gaussian log-densities of recorded transitions
(:class:`lerobot_diffrl.policies.common.rl_interface.RolloutSample`); everything PPO-specific is here:
clamping and averaging log-probs over the executed actions, the denoising discount on advantages, the clip
range that grows from the earliest fine-tuned denoising step to the last, the clipped value loss, the k3 KL
estimate used for early stopping, and an optional behaviour-cloning regulariser.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class PPOLossConfig:
    """The loss's settings; :class:`~lerobot_diffrl.rl.config.PPOConfig` inherits them (``--ppo.<name>``)."""

    #: Clip range at the last denoising transition (the one that produces the action); DPPO's clip_ploss_coef.
    clip_final: float = 0.01
    #: Clip range at the earliest fine-tuned transition; DPPO's clip_ploss_coef_base.
    clip_base: float = 1e-3
    #: Exponential rate of the interpolation between the two (DPPO: 3).
    clip_rate: float = 3.0
    #: Advantages at transition j are scaled by gamma_denoise^(T - j - 1).
    gamma_denoise: float = 0.99
    #: Log-probs are clamped to this range before forming ratios (DPPO: [-5, 2]).
    logprob_min: float = -5.0
    logprob_max: float = 2.0
    #: Value-loss clip around the rollout's values; None for an unclipped value loss.
    value_clip: float | None = None
    value_coef: float = 0.5
    #: Weight of the behaviour-cloning regulariser: the diffusion / NLL loss of the frozen pretrained policy's own
    #: actions, evaluated on rollout observations (0: off, DPPO's default).
    bc_coef: float = 0.0
    #: Normalise advantages per minibatch.
    normalize_advantages: bool = True


def clip_ranges(transition_ids: Tensor, n_transitions: int, cfg: PPOLossConfig) -> Tensor:
    """Per-transition PPO clip range: ``clip_base`` at transition 0 growing exponentially to ``clip_final``."""
    if n_transitions <= 1:
        return torch.full(
            transition_ids.shape, cfg.clip_final, dtype=torch.float32, device=transition_ids.device
        )
    t = transition_ids.float() / (n_transitions - 1)
    growth = (torch.exp(cfg.clip_rate * t) - 1.0) / (math.exp(cfg.clip_rate) - 1.0)
    return cfg.clip_base + (cfg.clip_final - cfg.clip_base) * growth


def chunk_logprob(logprobs: Tensor, n_action_steps: int, cfg: PPOLossConfig) -> Tensor:
    """(B, H, A) element-wise log-probs -> (B,): clamped, then averaged over the executed actions and dims."""
    return logprobs[:, :n_action_steps].clamp(cfg.logprob_min, cfg.logprob_max).mean(dim=(1, 2))


@dataclass
class PPOLossOutput:
    loss: Tensor
    policy_loss: Tensor
    value_loss: Tensor
    bc_loss: Tensor
    approx_kl: Tensor
    clip_fraction: Tensor
    ratio_mean: Tensor


def ppo_loss(
    new_logprobs: Tensor,
    old_logprobs: Tensor,
    advantages: Tensor,
    transition_ids: Tensor,
    n_transitions: int,
    n_action_steps: int,
    values: Tensor,
    old_values: Tensor,
    returns: Tensor,
    cfg: PPOLossConfig,
    bc_loss: Tensor | None = None,
) -> PPOLossOutput:
    """PPO loss for a minibatch of (env step, denoising transition) pairs.

    Args:
        new_logprobs, old_logprobs: (B, H, A) element-wise log-densities of each pair's transition under the
            current and the rollout parameters.
        advantages: (B,) GAE advantages of the pair's env step.
        transition_ids: (B,) long, which transition (0 .. n_transitions - 1) each pair is.
        values, old_values, returns: (B,) current critic output, rollout-time values, GAE returns.
        bc_loss: optional scalar regulariser (e.g. the diffusion loss toward the frozen pretrained policy).
    """
    new_lp = chunk_logprob(new_logprobs, n_action_steps, cfg)
    old_lp = chunk_logprob(old_logprobs, n_action_steps, cfg)
    if cfg.normalize_advantages and advantages.numel() > 1:
        advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    advantages = advantages * cfg.gamma_denoise ** (n_transitions - transition_ids.float() - 1)

    log_ratio = new_lp - old_lp
    ratio = log_ratio.exp()
    clip = clip_ranges(transition_ids, n_transitions, cfg)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip, 1.0 + clip)
    policy_loss = torch.maximum(unclipped, clipped).mean()

    if cfg.value_clip is None:
        value_loss = 0.5 * ((values - returns) ** 2).mean()
    else:
        values_clipped = old_values + (values - old_values).clamp(-cfg.value_clip, cfg.value_clip)
        value_loss = 0.5 * torch.maximum((values - returns) ** 2, (values_clipped - returns) ** 2).mean()

    bc = bc_loss if bc_loss is not None else torch.zeros((), device=policy_loss.device)
    with torch.no_grad():
        approx_kl = ((ratio - 1.0) - log_ratio).mean()  # k3 estimator, always >= 0
        clip_fraction = ((ratio - 1.0).abs() > clip).float().mean()
    loss = policy_loss + cfg.value_coef * value_loss + cfg.bc_coef * bc
    return PPOLossOutput(loss, policy_loss, value_loss, bc, approx_kl, clip_fraction, ratio.mean().detach())

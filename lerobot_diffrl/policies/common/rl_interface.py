"""The interface RL code (``lerobot_diffrl.rl``) uses to fine-tune a policy; ``diffrl`` and ``gaussrl`` both
implement it, so PPO code is written once and the paper's diffusion-vs-Gaussian comparison changes only the
policy type.

Everything is in the policy's *normalised* action space and takes *preprocessed* observation batches
(``observation.state``, ``observation.images.*``, ``task``), i.e. the output of the policy's preprocessor.

A policy's stochastic action is a Markov chain of T Gaussian transitions x_0 -> x_1 -> ... -> x_T (for ``diffrl``
T = K', the fine-tuned DDIM denoising steps, x_T being the action chunk; for ``gaussrl`` T = 1 and x_0 is a
zero placeholder). Every transition x_{j+1} ~ N(mean_j(x_j, obs), std_j^2) has an exact log-density, which is
what DPPO's PPO ratio uses. What stays on the RL side, deliberately not here:

* the PPO loss, advantages and value loss;
* clamping log-probabilities to [-5, 2] and averaging them over the first ``n_action_steps`` actions and the
  action dims (DPPO ``diffusion_ppo.py``): the log-probs returned here are element-wise, shape (B, T, H, A);
* the denoising discount gamma_denoise^(T-j-1) and the per-step PPO clip schedule (use ``transition_ids``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from torch import Tensor, nn

LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def gaussian_logprob(x: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """Element-wise log N(x; mean, std^2), equal to ``torch.distributions.Normal(mean, std).log_prob(x)``."""
    return -((x - mean) ** 2) / (2 * std**2) - std.log() - LOG_SQRT_2PI


def gaussian_entropy(std: Tensor) -> Tensor:
    """Element-wise entropy of N(., std^2)."""
    return 0.5 + LOG_SQRT_2PI + std.log()


@dataclass
class RolloutSample:
    """One stochastic (or deterministic) draw of action chunks, with everything PPO needs to store.

    Attributes:
        action: (B, H, A) normalised action chunk to execute (``chain[:, -1]`` clipped to ±final_action_clip).
        chain: (B, T+1, H, A) the values of the recorded chain, x_0 .. x_T (unclipped).
        means: (B, T, H, A) mean of each transition x_j -> x_{j+1}.
        stds: (B, T, H, A) std used to draw each transition (clipped below by the sampling sigma_min).
        logprobs: (B, T, H, A) element-wise Gaussian log-density of x_{j+1} under the transition, with the
            log-prob std (clipped below by min_logprob_std); equal to ``torch.distributions.Normal``.
        transition_ids: (T,) long, 0 .. T-1; T-1 is the transition that produces the action.
    """

    action: Tensor
    chain: Tensor
    means: Tensor
    stds: Tensor
    logprobs: Tensor
    transition_ids: Tensor

    def detach(self) -> RolloutSample:
        return RolloutSample(*(getattr(self, f).detach() for f in self.__dataclass_fields__))

    def to(self, device: object) -> RolloutSample:
        return RolloutSample(*(getattr(self, f).to(device) for f in self.__dataclass_fields__))


@dataclass
class LogProbEval:
    """Re-evaluation of stored transitions under the current parameters.

    Attributes:
        logprobs: (B, T', H, A) element-wise log-densities (T' = T, or 1 with ``transition_index``).
        stds: (B, T', H, A) the log-prob stds used.
        entropy: (B, T', H, A) element-wise entropy of those Gaussians (DPPO uses ent_coef = 0).
    """

    logprobs: Tensor
    stds: Tensor
    entropy: Tensor


@runtime_checkable
class RLPolicy(Protocol):
    """What RL code may call on a policy. Implemented by ``DiffRLPolicy`` and ``GaussRLPolicy``."""

    def prepare_for_rl(self) -> None:
        """Switch from BC to RL: EMA weights become the live actor, the critic becomes trainable and (diffrl,
        K' < DDIM steps) a frozen copy of the actor is made for the earlier denoising steps."""

    def sample_with_logprobs(
        self, batch: dict, deterministic: bool = False, generator: object | None = None
    ) -> RolloutSample:
        """Draw action chunks with the live actor, recording every trainable transition."""

    def evaluate_logprobs(
        self, batch: dict, sample: RolloutSample, transition_index: Tensor | None = None
    ) -> LogProbEval:
        """Log-probs of ``sample``'s stored transitions under current parameters (differentiable).

        ``transition_index`` (B,) optionally picks one transition per batch element (DPPO's minibatches of
        (env-step, denoising-step) pairs); the result then has T' = 1.
        """

    def value(self, batch: dict) -> Tensor:
        """Critic estimate V(s), shape (B,)."""

    def actor_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters RL may update for the actor (the live actor, not the EMA or frozen copy)."""

    def critic_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters of the critic (not trained by BC)."""

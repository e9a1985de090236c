"""``GaussRLPolicy``: DPPO's Gaussian baseline with the same encoders, critic and RL interface as ``diffrl``.

The action chunk is one Gaussian N(mean(s), diag(std^2)) with a learned, state-independent std per action
dimension kept in [std_min, std_max] (DPPO: [0.01, 0.2], init 0.1). In the RL interface it is a chain of
T = 1 transition whose input x_0 is a zero placeholder, so PPO code treats both policy types alike.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from lerobot_diffrl.policies.common.encoders import ObservationEncoder, ResidualMLP
from lerobot_diffrl.policies.common.policy_base import RLPolicyBase
from lerobot_diffrl.policies.common.rl_interface import (
    LogProbEval,
    RolloutSample,
    gaussian_entropy,
    gaussian_logprob,
)
from lerobot_diffrl.policies.gaussrl.configuration_gaussrl import GaussRLConfig

ACTION = "action"
RANDN_CLIP = 3.0  # as DPPO's Gaussian baseline (randn_clip_value)


class GaussRLActor(nn.Module):
    """Observation encoder + residual MLP mean head + learned log-std."""

    def __init__(self, config: GaussRLConfig) -> None:
        super().__init__()
        self.encoder = ObservationEncoder(config)
        self.horizon, self.action_dim = config.horizon, config.action_dim
        self.head = ResidualMLP(
            self.encoder.out_dim,
            config.head_hidden_dim,
            config.head_num_blocks,
            config.horizon * config.action_dim,
        )
        self.log_std = nn.Parameter(torch.full((config.action_dim,), math.log(config.std_init)))
        self.std_min, self.std_max = config.std_min, config.std_max

    def forward(self, cond: Tensor) -> tuple[Tensor, Tensor]:
        """Mean (B, H, A) and std (B, H, A) of the action-chunk Gaussian."""
        mean = self.head(cond).view(-1, self.horizon, self.action_dim)
        std = self.log_std.exp().clamp(self.std_min, self.std_max).expand_as(mean)
        return mean, std


class GaussRLPolicy(RLPolicyBase):
    """LeRobot policy type ``gaussrl``."""

    config_class = GaussRLConfig
    name = "gaussrl"

    def __init__(self, config: GaussRLConfig, **kwargs) -> None:
        super().__init__(config, **kwargs)
        self.config: GaussRLConfig = config

    def _build_actor(self) -> nn.Module:
        return GaussRLActor(self.config)

    def _card_architecture(self) -> list[str]:
        c = self.config
        return [
            f"Action head: Gaussian, residual MLP {c.head_num_blocks}x{c.head_hidden_dim} mean, learned "
            f"state-independent std in [{c.std_min}, {c.std_max}] (init {c.std_init})"
        ]

    def _dist(self, actor: nn.Module, batch: dict, augment: bool = False) -> tuple[Tensor, Tensor]:
        return actor(actor.encoder(batch, self.task_slots(batch), augment=augment))

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict]:
        """Gaussian negative log-likelihood of the action chunk (the mean regresses to the conditional mean)."""
        mean, std = self._dist(self.actor, batch, augment=self.training)
        nll = -gaussian_logprob(batch[ACTION], mean, std)
        if self.config.mask_loss_for_padding and "action_is_pad" in batch:
            keep = (~batch["action_is_pad"]).unsqueeze(-1).to(nll.dtype)
            loss = (nll * keep).sum() / (keep.sum() * nll.shape[-1]).clamp(min=1)
        else:
            loss = nll.mean()
        return loss, {"bc_loss": float(loss.detach()), "std": float(std.mean().detach())}

    def _sample_chunk(self, actor: nn.Module, batch: dict, generator: torch.Generator | None) -> Tensor:
        mean, _ = self._dist(actor, batch)
        return mean.clamp(-self.config.final_action_clip, self.config.final_action_clip)

    @torch.no_grad()
    def sample_with_logprobs(
        self, batch: dict, deterministic: bool = False, generator: torch.Generator | None = None
    ) -> RolloutSample:
        """One Gaussian transition (T = 1): x_1 = mean + std * clip(z, ±3), or the mean when deterministic."""
        mean, std = self._dist(self.actor, batch)
        if deterministic:
            x = mean
        else:
            z = torch.randn(
                mean.shape, generator=generator, device=mean.device if generator is None else generator.device
            ).to(mean.device)
            x = mean + std * z.clamp(-RANDN_CLIP, RANDN_CLIP)
        return RolloutSample(
            action=x.clamp(-self.config.final_action_clip, self.config.final_action_clip),
            chain=torch.stack([torch.zeros_like(x), x], dim=1),
            means=mean.unsqueeze(1),
            stds=std.unsqueeze(1),
            logprobs=gaussian_logprob(x, mean, std).unsqueeze(1),
            transition_ids=torch.zeros(1, dtype=torch.long, device=x.device),
        )

    def evaluate_logprobs(
        self, batch: dict, sample: RolloutSample, transition_index: Tensor | None = None
    ) -> LogProbEval:
        """Log-prob of the stored chunk under the current mean/std (differentiable); T' = 1 either way."""
        mean, std = self._dist(self.actor, batch)
        logp = gaussian_logprob(sample.chain[:, 1], mean, std)
        entropy = gaussian_entropy(std)
        return LogProbEval(logp.unsqueeze(1), std.unsqueeze(1), entropy.unsqueeze(1))

"""``DiffRLPolicy``: compact conditional diffusion policy with exact denoising log-probabilities.

BC: ``forward`` returns the epsilon-prediction DDPM loss (cosine schedule, K steps) so ``lerobot-train`` trains
it; ``update`` keeps an EMA. Evaluation: deterministic DDIM (eta = 0) with the EMA actor. RL (DPPO): stochastic
DDIM (eta = 1) whose last K' transitions are recorded with means, floored stds and exact Gaussian log-probs;
see :mod:`lerobot_diffrl.policies.common.rl_interface`.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from lerobot_diffrl.policies.common.encoders import ObservationEncoder
from lerobot_diffrl.policies.common.policy_base import RLPolicyBase
from lerobot_diffrl.policies.common.rl_interface import (
    LogProbEval,
    RolloutSample,
    gaussian_entropy,
    gaussian_logprob,
)
from lerobot_diffrl.policies.diffrl.configuration_diffrl import DiffRLConfig
from lerobot_diffrl.policies.diffrl.denoisers import ConditionalUnet1D, MLPDenoiser
from lerobot_diffrl.policies.diffrl.schedule import DiffusionSchedule

ACTION = "action"


class DiffRLActor(nn.Module):
    """Observation encoder + noise-prediction network."""

    def __init__(self, config: DiffRLConfig) -> None:
        super().__init__()
        self.encoder = ObservationEncoder(config)
        a, d = config.action_dim, self.encoder.out_dim
        if config.denoiser == "unet":
            self.denoiser: nn.Module = ConditionalUnet1D(
                a,
                d,
                tuple(config.unet_down_dims),
                config.unet_kernel_size,
                config.unet_n_groups,
                config.time_embed_dim,
            )
        else:
            self.denoiser = MLPDenoiser(
                config.horizon, a, d, config.mlp_hidden_dim, config.mlp_num_blocks, config.time_embed_dim
            )

    def forward(self, x: Tensor, t: Tensor, cond: Tensor) -> Tensor:
        return self.denoiser(x, t, cond)


class DiffRLPolicy(RLPolicyBase):
    """LeRobot policy type ``diffrl``."""

    config_class = DiffRLConfig
    name = "diffrl"

    def __init__(self, config: DiffRLConfig, **kwargs) -> None:
        super().__init__(config, **kwargs)
        self.config: DiffRLConfig = config
        self.schedule = DiffusionSchedule(config.num_train_timesteps, config.ddim_steps)
        self.base_actor: nn.Module | None = None
        if config.rl_frozen_base:
            self.base_actor = copy.deepcopy(self.actor).requires_grad_(False)

    def _build_actor(self) -> nn.Module:
        return DiffRLActor(self.config)

    def _card_architecture(self) -> list[str]:
        c = self.config
        head = (
            f"FiLM-conditioned 1-D temporal U-Net, channels {tuple(c.unet_down_dims)}, kernel {c.unet_kernel_size}"
            if c.denoiser == "unet"
            else f"residual MLP denoiser {c.mlp_num_blocks}x{c.mlp_hidden_dim}"
        )
        return [
            f"Denoiser: {head}",
            f"Diffusion: epsilon prediction, cosine schedule, K = {c.num_train_timesteps} training steps; DDIM "
            f"sampling with {c.ddim_steps} steps (eval eta {c.eval_eta}, RL eta {c.rl_eta}); "
            f"K' = {c.ft_denoising_steps} RL fine-tuned steps; sigma_min {c.min_sampling_std} (sampling) / "
            f"{c.min_logprob_std} (log-prob); noise clip ±{c.randn_clip}; x0 clip ±{c.denoised_clip}",
        ]

    # --- BC --------------------------------------------------------------------------------------------
    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict]:
        """Epsilon-prediction DDPM loss on the action chunk (random-shift augmentation in training mode)."""
        actions = batch[ACTION]  # (B, H, A), normalised
        cond = self.actor.encoder(batch, self.task_slots(batch), augment=self.training)
        b = actions.shape[0]
        t = torch.randint(0, self.config.num_train_timesteps, (b,), device=actions.device)
        noise = torch.randn_like(actions)
        eps = self.actor(self.schedule.q_sample(actions, t, noise), t, cond)
        loss = F.mse_loss(eps, noise, reduction="none")
        if self.config.mask_loss_for_padding and "action_is_pad" in batch:
            keep = (~batch["action_is_pad"]).unsqueeze(-1).to(loss.dtype)
            loss = (loss * keep).sum() / (keep.sum() * loss.shape[-1]).clamp(min=1)
        else:
            loss = loss.mean()
        return loss, {"bc_loss": float(loss.detach())}

    # --- sampling --------------------------------------------------------------------------------------
    def _init_noise(self, b: int, generator: torch.Generator | None) -> Tensor:
        shape = (b, self.config.horizon, self.config.action_dim)
        return torch.randn(
            shape, generator=generator, device=self.device if generator is None else generator.device
        ).to(self.device)

    def _denoise(
        self,
        batch: dict,
        actor: nn.Module,
        base: nn.Module | None,
        deterministic: bool,
        generator: torch.Generator | None,
        record: bool,
    ) -> tuple[Tensor, dict[str, list[Tensor]]]:
        """Run the DDIM chain; record the last K' transitions when ``record``.

        Steps before the last K' use ``base`` (the frozen copy) when given, else ``actor``. Stochastic steps
        draw x' = mean + max(std, min_sampling_std) * clip(z, ±randn_clip); deterministic ones use eta_eval
        and no noise.
        """
        c = self.config
        slots = self.task_slots(batch)
        cond = actor.encoder(batch, slots)
        cond_base = base.encoder(batch, slots) if base is not None else cond
        x = self._init_noise(cond.shape[0], generator)
        n = c.ddim_steps
        first_ft = n - c.ft_denoising_steps
        eta = c.eval_eta if deterministic else c.rl_eta
        rec: dict[str, list[Tensor]] = {"chain": [], "means": [], "stds": [], "logprobs": []}
        for i in range(n):
            net, cnd = (base, cond_base) if (base is not None and i < first_ft) else (actor, cond)
            t = self.schedule.ddim_t[i].expand(x.shape[0])
            mean, std = self.schedule.ddim_transition(x, net(x, t, cnd), i, eta, c.denoised_clip)
            if deterministic:
                samp_std = std
                z = torch.zeros_like(x) if eta == 0 else self._noise_like(x, generator)
            else:
                samp_std = std.clamp(min=c.min_sampling_std)
                z = self._noise_like(x, generator)
            x_next = mean + samp_std * z
            if record and i >= first_ft:
                lp_std = std.clamp(min=c.min_logprob_std)
                if not rec["chain"]:
                    rec["chain"].append(x)
                rec["chain"].append(x_next)
                rec["means"].append(mean)
                rec["stds"].append(samp_std)
                rec["logprobs"].append(gaussian_logprob(x_next, mean, lp_std))
            x = x_next
        return x, rec

    def _noise_like(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        z = torch.randn(
            x.shape, generator=generator, device=x.device if generator is None else generator.device
        )
        return z.to(x.device).clamp(-self.config.randn_clip, self.config.randn_clip)

    def _sample_chunk(self, actor: nn.Module, batch: dict, generator: torch.Generator | None) -> Tensor:
        base = self.base_actor if actor is self.actor else None  # after RL: same frozen/ft split as rollouts
        x, _ = self._denoise(batch, actor, base, deterministic=True, generator=generator, record=False)
        return x.clamp(-self.config.final_action_clip, self.config.final_action_clip)

    # --- RL interface ----------------------------------------------------------------------------------
    @torch.no_grad()
    def sample_with_logprobs(
        self, batch: dict, deterministic: bool = False, generator: torch.Generator | None = None
    ) -> RolloutSample:
        """Sample chunks with the live actor, recording the last K' DDIM transitions (T = K')."""
        x, rec = self._denoise(batch, self.actor, self.base_actor, deterministic, generator, record=True)
        return RolloutSample(
            action=x.clamp(-self.config.final_action_clip, self.config.final_action_clip),
            chain=torch.stack(rec["chain"], dim=1),
            means=torch.stack(rec["means"], dim=1),
            stds=torch.stack(rec["stds"], dim=1),
            logprobs=torch.stack(rec["logprobs"], dim=1),
            transition_ids=torch.arange(self.config.ft_denoising_steps, device=x.device),
        )

    def evaluate_logprobs(
        self, batch: dict, sample: RolloutSample, transition_index: Tensor | None = None
    ) -> LogProbEval:
        """Log-probs of the stored transitions under the current actor (RL eta), differentiable.

        All T transitions of each chain are re-evaluated in one batched denoiser call (B*T rows), or one per
        element with ``transition_index`` (B,).
        """
        c = self.config
        cond = self.actor.encoder(batch, self.task_slots(batch))  # (B, D)
        chain = sample.chain
        b, t_len = chain.shape[0], chain.shape[1] - 1
        if transition_index is None:
            j = torch.arange(t_len, device=chain.device).repeat(b)  # (B*T,)
            rows = torch.arange(b, device=chain.device).repeat_interleave(t_len)
        else:
            j = transition_index.to(chain.device).long()
            rows = torch.arange(b, device=chain.device)
        x, x_next = chain[rows, j], chain[rows, j + 1]
        step = j + (c.ddim_steps - t_len)  # DDIM step index of transition j
        t = self.schedule.ddim_t[step]
        mean, std = self.schedule.ddim_transition(
            x, self.actor(x, t, cond[rows]), step, c.rl_eta, c.denoised_clip
        )
        lp_std = std.clamp(min=c.min_logprob_std)
        logp = gaussian_logprob(x_next, mean, lp_std)
        entropy = gaussian_entropy(lp_std)
        shape = (b, -1, *chain.shape[2:])
        return LogProbEval(logp.reshape(shape), lp_std.reshape(shape), entropy.reshape(shape))

    def prepare_for_rl(self) -> None:
        """BC -> RL: EMA into the live actor, critic trainable, and a frozen base actor for the first
        ``ddim_steps - K'`` steps when K' < ddim_steps (``config.rl_frozen_base`` is then saved as True)."""
        super().prepare_for_rl()
        if self.config.ft_denoising_steps < self.config.ddim_steps and self.base_actor is None:
            self.base_actor = copy.deepcopy(self.actor).requires_grad_(False)
            self.config.rl_frozen_base = True

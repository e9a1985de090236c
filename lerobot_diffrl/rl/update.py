"""The PPO update of one iteration: epochs over (env step, denoising step) pairs, as DPPO samples them.

Each minibatch element is one recorded transition of one rollout row; the policy re-evaluates only that
transition (``evaluate_logprobs(..., transition_index)``), so a minibatch costs one denoiser call per element
whatever K' is. For ``gaussrl`` there is one transition per row and this is standard PPO.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from lerobot.utils.constants import ACTION
from torch import Tensor

from lerobot_diffrl.rl.advantages import compute_gae
from lerobot_diffrl.rl.config import PPOConfig
from lerobot_diffrl.rl.policy_io import LoadedPolicy, policy_inputs
from lerobot_diffrl.rl.ppo_loss import PPOLossOutput, ppo_loss
from lerobot_diffrl.rl.reward_scaling import RunningRewardScaler
from lerobot_diffrl.rl.rollout import Rollout, autocast
from lerobot_diffrl.rl.success_replay import SuccessReplay


@dataclass
class Targets:
    """Flattened (rows,) advantages, returns and rollout values."""

    advantages: Tensor
    returns: Tensor
    values: Tensor
    explained_variance: float


def compute_targets(rollout: Rollout, cfg: PPOConfig, scaler: RunningRewardScaler | None) -> Targets:
    """Scale rewards (running return std), then GAE with truncation bootstrapping."""
    rewards = rollout.rewards
    if scaler is not None:
        ends = (rollout.terminated | rollout.truncated).numpy()
        rewards = torch.as_tensor(
            np.stack([scaler(r, e) for r, e in zip(rollout.rewards.numpy(), ends, strict=True)]),
            dtype=torch.float32,
        )
    adv, ret = compute_gae(
        rewards,
        rollout.values,
        rollout.next_values,
        rollout.terminated,
        rollout.truncated,
        gamma=cfg.gamma,
        gae_lambda=cfg.gae_lambda,
    )
    var = ret.var()
    explained = float(1.0 - (ret - rollout.values).var() / var) if var > 1e-12 else float("nan")
    return Targets(adv.reshape(-1), ret.reshape(-1), rollout.values.reshape(-1), explained)


@dataclass
class Optimizers:
    actor: torch.optim.Optimizer
    critic: torch.optim.Optimizer


def ppo_update(
    loaded: LoadedPolicy,
    rollout: Rollout,
    targets: Targets,
    optimizers: Optimizers,
    cfg: PPOConfig,
    train_actor: bool,
    device: torch.device,
    generator: torch.Generator,
    reference: LoadedPolicy | None = None,
    replay: SuccessReplay | None = None,
) -> dict[str, float]:
    """Run ``cfg.update_epochs`` epochs (fewer on KL early stop); return mean losses and diagnostics."""
    policy = loaded.policy
    n_trans = int(rollout.chain.shape[1]) - 1
    total = rollout.n_rows * n_trans
    use_replay = (
        train_actor and replay is not None and cfg.replay_coef > 0 and len(replay) >= cfg.replay_batch_size
    )
    sums: dict[str, float] = {}
    count, stopped_early, epochs_run = 0, False, 0
    start = time.perf_counter()
    policy.train()
    for _ in range(cfg.update_epochs):
        epochs_run += 1
        order = torch.randperm(total, generator=generator)
        n_batches = (total + cfg.batch_size - 1) // cfg.batch_size
        for b in range(n_batches):
            pairs = order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            out = _minibatch_loss(
                loaded, rollout, targets, pairs // n_trans, pairs % n_trans, cfg, device, reference
            )
            loss = out.loss if train_actor else cfg.value_coef * out.value_loss
            replay_loss = _replay_loss(loaded, replay, cfg, device, generator) if use_replay else None
            if replay_loss is not None:
                loss = loss + cfg.replay_coef * replay_loss
                sums["replay_loss"] = sums.get("replay_loss", 0.0) + float(replay_loss.detach())
            (loss / cfg.grad_accumulation).backward()
            if (b + 1) % cfg.grad_accumulation == 0 or b == n_batches - 1:
                _optimizer_step(policy, optimizers, cfg, train_actor)
            for key in ("policy_loss", "value_loss", "bc_loss", "approx_kl", "clip_fraction", "ratio_mean"):
                sums[key] = sums.get(key, 0.0) + float(getattr(out, key).detach())
            count += 1
            if train_actor and cfg.target_kl is not None and float(out.approx_kl) > cfg.target_kl:
                stopped_early = True
                break
        if stopped_early:
            break
    optimizers.actor.zero_grad(set_to_none=True)
    optimizers.critic.zero_grad(set_to_none=True)
    policy.eval()
    metrics = {key: value / max(count, 1) for key, value in sums.items()}
    metrics.update(
        {
            "epochs": float(epochs_run),
            "kl_early_stop": float(stopped_early),
            "minibatches": float(count),
            "explained_variance": targets.explained_variance,
            "replay_chunks": float(len(replay)) if replay is not None else 0.0,
            "update_s": time.perf_counter() - start,
        }
    )
    return metrics


def _minibatch_loss(
    loaded: LoadedPolicy,
    rollout: Rollout,
    targets: Targets,
    rows: Tensor,
    trans: Tensor,
    cfg: PPOConfig,
    device: torch.device,
    reference: LoadedPolicy | None,
) -> PPOLossOutput:
    """PPO loss of (env step ``rows``, denoising transition ``trans``) pairs, re-evaluated by the live policy."""
    policy = loaded.policy
    batch = policy_inputs(loaded, rollout.obs, rollout.tasks, rows.numpy())
    sample = rollout.sample_rows(rows).to(device)
    with autocast(device, cfg.amp):
        new = policy.evaluate_logprobs(batch, sample, transition_index=trans.to(device))
        values = policy.value(batch).float()
        bc = _bc_loss(loaded, reference, batch, device) if reference is not None else None
    return ppo_loss(
        new.logprobs[:, 0].float(),
        rollout.logprobs[rows, trans].to(device),
        targets.advantages[rows].to(device),
        trans.to(device),
        int(rollout.chain.shape[1]) - 1,
        policy.config.n_action_steps,
        values,
        targets.values[rows].to(device),
        targets.returns[rows].to(device),
        cfg,
        bc_loss=bc,
    )


def _optimizer_step(
    policy: torch.nn.Module, optimizers: Optimizers, cfg: PPOConfig, train_actor: bool
) -> None:
    """Clip each optimizer's gradients, step the critic (and the actor after warm-up), clear both."""
    if cfg.max_grad_norm is not None:
        torch.nn.utils.clip_grad_norm_(list(policy.critic_parameters()), cfg.max_grad_norm)
        if train_actor:
            torch.nn.utils.clip_grad_norm_(list(policy.actor_parameters()), cfg.max_grad_norm)
    optimizers.critic.step()
    if train_actor:
        optimizers.actor.step()
    optimizers.actor.zero_grad(set_to_none=True)
    optimizers.critic.zero_grad(set_to_none=True)


def _replay_loss(
    loaded: LoadedPolicy,
    replay: SuccessReplay,
    cfg: PPOConfig,
    device: torch.device,
    generator: torch.Generator,
) -> Tensor:
    """The policy's own BC loss (``forward``: diffusion loss for diffrl, Gaussian NLL for gaussrl) on a draw of
    chunks from the run's successful episodes."""
    obs, tasks, actions = replay.sample(cfg.replay_batch_size, generator)
    batch = policy_inputs(loaded, obs, tasks)
    batch[ACTION] = actions.to(device)
    with autocast(device, cfg.amp):
        loss, _ = loaded.policy.forward(batch)
    return loss.float()


def _bc_loss(loaded: LoadedPolicy, reference: LoadedPolicy, batch: dict, device: torch.device) -> Tensor:
    """Negative log-likelihood, under the current actor, of chains the frozen pretrained policy samples on
    the same observations (DPPO's optional BC regulariser): it pulls the actor toward the warm start."""
    with torch.no_grad():
        ref = reference.policy.sample_with_logprobs(batch)
    lp = loaded.policy.evaluate_logprobs(batch, ref.to(device)).logprobs
    n_act = loaded.policy.config.n_action_steps
    return -lp[:, :, :n_act].clamp(-5.0, 2.0).mean()

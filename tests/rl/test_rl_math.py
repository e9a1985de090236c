"""GAE, reward scaling and the DPPO loss against hand-computed numbers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lerobot_diffrl.rl.advantages import compute_gae
from lerobot_diffrl.rl.ppo_loss import PPOLossConfig, chunk_logprob, clip_ranges, ppo_loss
from lerobot_diffrl.rl.reward_scaling import RunningRewardScaler


def col(*xs: float) -> torch.Tensor:
    return torch.tensor(xs, dtype=torch.float64)[:, None]


def test_gae_terminal_success_does_not_bootstrap():
    gamma, lam = 0.9, 0.5
    values, next_values = col(0.1, 0.2, 0.3), col(0.2, 0.3, 7.0)  # 7.0 must be ignored: terminated
    adv, ret = compute_gae(
        col(0, 0, 1), values, next_values, col(0, 0, 1).bool(), col(0, 0, 0).bool(), gamma, lam
    )
    d2 = 1 - 0.3
    d1 = 0 + gamma * 0.3 - 0.2
    d0 = 0 + gamma * 0.2 - 0.1
    a2, a1 = d2, d1 + gamma * lam * d2
    expected = [d0 + gamma * lam * a1, a1, a2]
    assert adv[:, 0].tolist() == pytest.approx(expected)
    assert ret[:, 0].tolist() == pytest.approx(
        [a + v for a, v in zip(expected, [0.1, 0.2, 0.3], strict=True)]
    )


def test_gae_truncation_bootstraps_and_cuts_the_recursion():
    gamma, lam = 0.9, 0.5
    values, next_values = col(0.5, 0.4), col(2.0, 0.6)  # step 0 truncated: its own final value 2.0 bootstraps
    adv, _ = compute_gae(col(0, 0), values, next_values, col(0, 0).bool(), col(1, 0).bool(), gamma, lam)
    assert adv[0, 0].item() == pytest.approx(gamma * 2.0 - 0.5)  # no contribution from the next episode
    assert adv[1, 0].item() == pytest.approx(gamma * 0.6 - 0.4)


def test_reward_scaler_divides_by_return_std_and_resumes_exactly():
    rng = np.random.default_rng(0)
    scaler = RunningRewardScaler(n_envs=4, gamma=0.99)
    for _ in range(200):
        scaler(rng.random(4), rng.random(4) < 0.05)
    rewards, ends = rng.random(4), np.zeros(4, dtype=bool)
    resumed = RunningRewardScaler(n_envs=4, gamma=0.99)
    resumed.load_state_dict(scaler.state_dict())
    np.testing.assert_array_equal(resumed(rewards, ends), scaler(rewards, ends))
    assert np.sqrt(scaler.var) > 0.5  # returns of rewards in [0, 1] over ~20 steps are far from unit scale
    np.testing.assert_allclose(scaler(np.ones(4), ends), 1.0 / np.sqrt(scaler.var + 1e-8), rtol=1e-6)


def test_clip_range_grows_from_base_to_final():
    cfg = PPOLossConfig(clip_base=1e-3, clip_final=0.01, clip_rate=3.0)
    clips = clip_ranges(torch.arange(5), 5, cfg)
    assert clips[0].item() == pytest.approx(1e-3)
    assert clips[-1].item() == pytest.approx(0.01)
    assert torch.all(clips[1:] > clips[:-1])
    assert clip_ranges(torch.zeros(3, dtype=torch.long), 1, cfg).tolist() == pytest.approx([0.01] * 3)


def test_chunk_logprob_clamps_and_averages_executed_actions_only():
    lp = torch.full((1, 4, 2), -1.0)
    lp[0, 0, 0] = -100.0  # clamped to -5
    lp[0, 3] = 50.0  # not executed (n_action_steps = 3)
    assert chunk_logprob(lp, 3, PPOLossConfig()).item() == pytest.approx((-5 - 1 * 5) / 6)


def make_batch(ratio_log: float, advantages: torch.Tensor):
    old = torch.zeros(len(advantages), 2, 1)
    new = (old + ratio_log).requires_grad_(True)
    return new, old


def test_ppo_loss_at_ratio_one_is_minus_discounted_normalised_advantage():
    cfg = PPOLossConfig(gamma_denoise=0.5)
    adv = torch.tensor([1.0, 2.0, 3.0, 4.0])
    ids = torch.tensor([0, 1, 0, 1])
    new, old = make_batch(0.0, adv)
    v = torch.zeros(4)
    out = ppo_loss(new, old, adv, ids, 2, 2, v, v, torch.ones(4), cfg)
    norm = (adv - adv.mean()) / (adv.std() + 1e-8)
    expected = -(norm * torch.tensor([0.5, 1.0, 0.5, 1.0])).mean()
    assert out.policy_loss.item() == pytest.approx(expected.item(), abs=1e-6)
    assert out.approx_kl.item() == pytest.approx(0.0, abs=1e-7)
    assert out.clip_fraction.item() == 0.0
    assert out.value_loss.item() == pytest.approx(0.5)


def test_ppo_loss_clips_policy_gradient_outside_the_range():
    cfg = PPOLossConfig(normalize_advantages=False, clip_final=0.01)
    adv = torch.ones(2)
    new, old = make_batch(0.1, adv)  # ratio e^0.1 > 1.01 with positive advantage: clipped, no gradient
    v = torch.zeros(2)
    out = ppo_loss(new, old, adv, torch.zeros(2, dtype=torch.long), 1, 2, v, v, v, cfg)
    out.policy_loss.backward()
    assert torch.all(new.grad == 0)
    assert out.clip_fraction.item() == 1.0
    assert out.approx_kl.item() == pytest.approx(np.exp(0.1) - 1 - 0.1, rel=1e-5)


def test_value_loss_clipping_takes_the_pessimistic_term():
    cfg = PPOLossConfig(value_clip=0.1)
    zeros = torch.zeros(1, 1, 1)
    values, old_values, returns = torch.tensor([1.0]), torch.tensor([0.0]), torch.tensor([1.0])
    out = ppo_loss(
        zeros, zeros, torch.zeros(1), torch.zeros(1, dtype=torch.long), 1, 1, values, old_values, returns, cfg
    )
    assert out.value_loss.item() == pytest.approx(0.5 * (0.1 - 1.0) ** 2)

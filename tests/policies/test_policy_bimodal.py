"""Behaviour cloning on a two-mode action distribution: diffusion keeps both modes, the Gaussian averages them.

This is the property the paper's diffusion-vs-Gaussian comparison rests on, checked on the sample histogram.
"""

from __future__ import annotations

import pytest
import torch
from policy_helpers import make_policy

MODE = 0.7


def _batch(n: int, g: torch.Generator, horizon: int) -> dict:
    sign = torch.randint(0, 2, (n, 1, 1), generator=g) * 2 - 1
    action = (MODE * sign + 0.03 * torch.randn(n, horizon, 2, generator=g)).expand(n, horizon, 2).contiguous()
    return {"observation.state": torch.zeros(n, 2), "action": action, "task": ["pick"] * n}


def _train(kind: str, steps: int):
    torch.manual_seed(0)
    extra = (
        {"denoiser": "mlp", "mlp_hidden_dim": 128, "mlp_num_blocks": 2}
        if kind == "diffrl"
        else {"head_hidden_dim": 128, "head_num_blocks": 2}
    )
    policy = make_policy(
        kind, image_size=None, state_dim=2, action_dim=2, horizon=4, n_action_steps=4, use_ema=False, **extra
    )
    opt = torch.optim.AdamW(policy.get_optim_params(), lr=2e-3)
    g = torch.Generator().manual_seed(0)
    policy.train()
    for _ in range(steps):
        loss, _ = policy.forward(_batch(256, g, 4))
        opt.zero_grad()
        loss.backward()
        opt.step()
    policy.eval()
    return policy


@pytest.mark.slow
def test_diffrl_samples_both_modes_gaussrl_collapses_to_mean() -> None:
    n = 1000
    obs = {"observation.state": torch.zeros(n, 2), "task": ["pick"] * n}
    diff = _train("diffrl", 600)
    a = diff.predict_action_chunk(obs, generator=torch.Generator().manual_seed(1))[:, 0, 0]
    hist = torch.histc(a, bins=10, min=-1, max=1)  # bins of width 0.2; modes at ±0.7 fall in bins 1 and 8
    near_pos = ((a - MODE).abs() < 0.2).float().mean()
    near_neg = ((a + MODE).abs() < 0.2).float().mean()
    middle = (a.abs() < 0.3).float().mean()
    assert near_pos > 0.3 and near_neg > 0.3, hist
    assert middle < 0.05, hist
    s = diff.sample_with_logprobs(obs, generator=torch.Generator().manual_seed(2)).action[:, 0, 0]
    assert ((s - MODE).abs() < 0.3).float().mean() > 0.3 and ((s + MODE).abs() < 0.3).float().mean() > 0.3

    gauss = _train("gaussrl", 600)
    mean = gauss.predict_action_chunk(obs)[:, 0, 0]
    assert mean.abs().max() < 0.15  # the mean of the two modes
    g = gauss.sample_with_logprobs(obs, generator=torch.Generator().manual_seed(2)).action[:, 0, 0]
    assert (g.abs() < 0.5).float().mean() > 0.9  # std is capped at 0.2: samples stay around 0
    assert ((g - MODE).abs() < 0.1).float().mean() < 0.05 and ((g + MODE).abs() < 0.1).float().mean() < 0.05

"""Unit tests of the diffrl / gaussrl policies: shapes, log-probabilities, sampling, schedule, RL interface."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from policy_helpers import make_batch, make_policy

from lerobot_diffrl.errors import ConfigError
from lerobot_diffrl.policies.common.rl_interface import RLPolicy
from lerobot_diffrl.policies.diffrl.schedule import DiffusionSchedule


def test_types_registered_and_found_by_lerobot_factory() -> None:
    from lerobot.configs.policies import PreTrainedConfig
    from lerobot.policies.factory import get_policy_class, make_policy_config, make_pre_post_processors

    from lerobot_diffrl.policies.diffrl.modeling_diffrl import DiffRLPolicy
    from lerobot_diffrl.policies.gaussrl.modeling_gaussrl import GaussRLPolicy

    assert {"diffrl", "gaussrl"} <= set(PreTrainedConfig.get_known_choices())
    assert get_policy_class("diffrl") is DiffRLPolicy
    assert get_policy_class("gaussrl") is GaussRLPolicy
    cfg = make_policy_config("diffrl", device="cpu")
    assert cfg.horizon == 16 and cfg.n_action_steps == 8 and cfg.num_train_timesteps == 100
    assert (
        cfg.ddim_steps == 10 and cfg.ft_denoising_steps == 10 and cfg.action_delta_indices == list(range(16))
    )
    policy = make_policy("diffrl")
    stats = {
        "observation.state": {"min": torch.full((8,), -2.0), "max": torch.full((8,), 2.0)},
        "action": {"min": torch.full((7,), -0.5), "max": torch.full((7,), 0.5)},
    }
    pre, post = make_pre_post_processors(policy.config, dataset_stats=stats)
    obs = {
        "observation.state": torch.ones(8),
        "observation.images.image": torch.rand(3, 32, 32),
        "observation.images.image2": torch.rand(3, 32, 32),
        "task": "pick",
    }
    out = pre(obs)
    assert out["observation.state"].shape == (1, 8)
    assert torch.allclose(out["observation.state"], torch.full((1, 8), 0.5))  # (1 - -2) / 4 * 2 - 1
    assert out["task"] == ["pick"]
    assert torch.allclose(post(torch.ones(1, 7)), torch.full((1, 7), 0.5))


@pytest.mark.parametrize("image_size", [32, None])
def test_shapes_pixel_and_state_only(kind: str, image_size: int | None) -> None:
    policy = make_policy(kind, image_size=image_size)
    assert isinstance(policy, RLPolicy)
    if image_size is None:
        assert len(policy.actor.encoder.cameras) == 0
    batch = make_batch(policy, batch_size=3)
    policy.train()
    loss, info = policy.forward(batch)
    assert loss.dim() == 0 and torch.isfinite(loss) and info["bc_loss"] == pytest.approx(float(loss.detach()))
    loss.backward()
    assert all(p.grad is None for p in policy.critic.parameters())  # BC does not train the critic
    policy.eval()
    chunk = policy.predict_action_chunk(batch)
    assert chunk.shape == (3, 8, 7) and chunk.abs().max() <= 1.0
    policy.reset()
    actions = [policy.select_action(batch) for _ in range(9)]
    assert all(a.shape == (3, 7) for a in actions)
    sample = policy.sample_with_logprobs(batch)
    t = 10 if kind == "diffrl" else 1
    assert sample.action.shape == (3, 16, 7)
    assert sample.chain.shape == (3, t + 1, 16, 7)
    assert sample.means.shape == sample.stds.shape == sample.logprobs.shape == (3, t, 16, 7)
    assert sample.transition_ids.tolist() == list(range(t))
    assert policy.value(batch).shape == (3,)


def test_state_only_flag_drops_the_trunk() -> None:
    policy = make_policy("diffrl", use_images=False, denoiser="mlp")
    assert len(policy.actor.encoder.cameras) == 0
    batch = make_batch(policy)
    del batch["observation.images.image"], batch["observation.images.image2"]
    assert policy.predict_action_chunk(batch).shape == (3, 8, 7)


def test_logprobs_equal_torch_normal(kind: str) -> None:
    torch.manual_seed(0)
    policy = make_policy(kind, denoiser="mlp") if kind == "diffrl" else make_policy(kind)
    batch = make_batch(policy, batch_size=4)
    s = policy.sample_with_logprobs(batch, generator=torch.Generator().manual_seed(1))
    ref = torch.distributions.Normal(s.means, s.stds).log_prob(s.chain[:, 1:])
    torch.testing.assert_close(s.logprobs, ref, rtol=1e-5, atol=1e-5)
    ev = policy.evaluate_logprobs(batch, s)
    torch.testing.assert_close(ev.logprobs, s.logprobs, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(
        ev.entropy, torch.distributions.Normal(s.means, ev.stds).entropy(), rtol=1e-5, atol=1e-5
    )
    # One transition per element (DPPO's minibatching) gives the same numbers.
    idx = torch.tensor([0, s.chain.shape[1] - 2, 0, 0])
    one = policy.evaluate_logprobs(batch, s, transition_index=idx)
    torch.testing.assert_close(one.logprobs[:, 0], ev.logprobs[torch.arange(4), idx], rtol=1e-4, atol=1e-4)
    # Differentiable with respect to the actor.
    one.logprobs.sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in policy.actor_parameters())


def test_dppo_clipping_and_std_floor() -> None:
    policy = make_policy(
        "diffrl", denoiser="mlp", randn_clip=0.5, min_sampling_std=0.1, ddim_steps=5, ft_denoising_steps=5
    )
    batch = make_batch(policy, batch_size=8)
    s = policy.sample_with_logprobs(batch, generator=torch.Generator().manual_seed(0))
    assert s.stds.min() >= 0.1 - 1e-7
    assert s.stds[:, -1].max() == pytest.approx(0.1)  # last DDIM step has sigma 0, floored at sigma_min
    z = (s.chain[:, 1:] - s.means) / s.stds
    assert z.abs().max() <= 0.5 + 1e-5
    # Predicted x0 is clipped to ±1: for the final step (a' = 1) the mean *is* x0.
    assert s.means[:, -1].abs().max() <= 1.0 + 1e-5
    assert s.action.abs().max() <= 1.0


def test_deterministic_sampling_reproducible(kind: str) -> None:
    policy = make_policy(kind)
    batch = make_batch(policy)
    a1 = policy.predict_action_chunk(batch, generator=torch.Generator().manual_seed(3))
    a2 = policy.predict_action_chunk(batch, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a1, a2)
    d1 = policy.sample_with_logprobs(batch, deterministic=True, generator=torch.Generator().manual_seed(3))
    d2 = policy.sample_with_logprobs(batch, deterministic=True, generator=torch.Generator().manual_seed(3))
    assert torch.equal(d1.chain, d2.chain)
    torch.testing.assert_close(d1.action[:, :8], a1)  # live actor == EMA actor at initialisation
    s1 = policy.sample_with_logprobs(batch, generator=torch.Generator().manual_seed(4))
    s2 = policy.sample_with_logprobs(batch, generator=torch.Generator().manual_seed(5))
    assert (s1.action - s2.action).abs().max() > 1e-3  # stochastic sampling does explore


def test_ddim_with_all_steps_equals_ddpm_posterior() -> None:
    k = 100
    sched = DiffusionSchedule(k, k)
    torch.manual_seed(0)
    for t in (99, 60, 20, 1, 0):
        x_t, eps = torch.randn(4, 16, 7), torch.randn(4, 16, 7)
        step = k - 1 - t
        assert int(sched.ddim_t[step]) == t
        mean, std = sched.ddim_transition(x_t, eps, step, eta=1.0, denoised_clip=None)
        ref_mean, ref_std = sched.ddpm_posterior(x_t, sched.predict_x0(x_t, eps, t), t)
        torch.testing.assert_close(mean, ref_mean, rtol=1e-3, atol=1e-4)
        torch.testing.assert_close(std, ref_std, rtol=1e-3, atol=1e-5)


def test_ddim_deterministic_recovers_clean_sample_from_true_noise() -> None:
    """With an oracle eps, deterministic DDIM with any number of steps maps x_K back to x0."""
    sched = DiffusionSchedule(100, 7)
    x0, eps = torch.rand(2, 16, 7) * 1.6 - 0.8, torch.randn(2, 16, 7)
    t0 = int(sched.ddim_t[0])
    x = sched.q_sample(x0, torch.full((2,), t0), eps)
    for i in range(7):
        a = sched.alphas_cumprod[int(sched.ddim_t[i])]
        oracle = (x - a.sqrt() * x0) / (1 - a).sqrt()
        x, _ = sched.ddim_transition(x, oracle, i, eta=0.0, denoised_clip=1.0)
    torch.testing.assert_close(x, x0, rtol=1e-3, atol=1e-3)


def test_frozen_base_for_early_steps() -> None:
    policy = make_policy("diffrl", denoiser="mlp", ddim_steps=10, ft_denoising_steps=3)
    policy.prepare_for_rl()
    assert policy.base_actor is not None and policy.config.rl_frozen_base and policy.ema_actor is None
    assert all(not p.requires_grad for p in policy.base_actor.parameters())
    assert all(p.requires_grad for p in policy.critic_parameters())
    actor_ids = {id(p) for p in policy.actor_parameters()}
    assert actor_ids.isdisjoint(id(p) for p in policy.base_actor.parameters())
    batch = make_batch(policy)
    s = policy.sample_with_logprobs(batch)
    assert s.chain.shape[1] == 4 and s.logprobs.shape[1] == 3
    # Moving the live actor changes only the fine-tuned transitions' re-evaluated log-probs, not the early steps.
    with torch.no_grad():
        for p in policy.actor_parameters():
            p.add_(0.01 * torch.randn_like(p))
    ev = policy.evaluate_logprobs(batch, s)
    assert (ev.logprobs - s.logprobs).abs().max() > 1e-4


def test_critic_is_detached_from_actor_when_shared() -> None:
    policy = make_policy("diffrl", critic_encoder="shared")
    policy.prepare_for_rl()
    batch = make_batch(policy)
    policy.value(batch).sum().backward()
    assert all(p.grad is None for p in policy.actor.encoder.parameters())
    assert any(p.grad is not None for p in policy.critic_parameters())
    separate = make_policy("gaussrl", critic_encoder="separate")
    assert separate.critic.encoder is not None


def test_ema_update_and_optim_params() -> None:
    policy = make_policy("gaussrl")
    assert {id(p) for p in policy.get_optim_params()} == {id(p) for p in policy.actor.parameters()}
    with torch.no_grad():
        for p in policy.actor.parameters():
            p.add_(1.0)
    before = policy.ema_actor.log_std.clone()
    policy.update()
    decay = min(policy.config.ema_decay, 1 / 10)
    torch.testing.assert_close(policy.ema_actor.log_std, before * decay + policy.actor.log_std * (1 - decay))
    assert int(policy.ema_step) == 1


def test_add_tasks_keeps_slots_and_starts_from_null_embedding() -> None:
    policy = make_policy("diffrl")
    assert policy.add_tasks(["place", "stack"]) == [2, 3]
    assert policy.config.tasks == ["pick", "place", "stack"]
    for enc in (policy.actor.encoder, policy.ema_actor.encoder):
        torch.testing.assert_close(enc.task.weight[3], enc.task.weight[0])
    slots = policy.task_slots({"observation.state": torch.zeros(3, 8), "task": ["stack", "pick", "nope"]})
    assert slots.tolist() == [3, 1, 0]


def test_config_validation() -> None:
    from lerobot_diffrl.policies import DiffRLConfig

    with pytest.raises(ConfigError):
        DiffRLConfig(device="cpu", ddim_steps=10, ft_denoising_steps=11)
    with pytest.raises(ConfigError):
        DiffRLConfig(device="cpu", ddim_steps=101)
    with pytest.raises(ConfigError):
        DiffRLConfig(device="cpu", horizon=10)  # not divisible by 4 for the 3-level U-Net
    with pytest.raises(ConfigError):
        make_policy("diffrl", image_size=None, state_dim=0)


def test_default_size_with_two_cameras() -> None:
    """Defaults (two 128x128 cameras, 8-d state, 7-d actions) stay within the ~10-15 M parameter budget."""
    from lerobot.configs.types import FeatureType, PolicyFeature

    from lerobot_diffrl.policies import DiffRLConfig
    from lerobot_diffrl.policies.diffrl.modeling_diffrl import DiffRLPolicy

    inp = {
        f"observation.images.{c}": PolicyFeature(FeatureType.VISUAL, (3, 128, 128))
        for c in ("image", "image2")
    }
    inp["observation.state"] = PolicyFeature(FeatureType.STATE, (8,))
    cfg = DiffRLConfig(
        input_features=inp, output_features={"action": PolicyFeature(FeatureType.ACTION, (7,))}, device="cpu"
    )
    counts = DiffRLPolicy(cfg).parameter_counts()
    assert 10e6 <= counts["total"] <= 15e6, counts


def test_random_shift_is_an_integer_translation() -> None:
    from lerobot_diffrl.policies.common.encoders import random_shift

    torch.manual_seed(0)
    h = w = 16
    img = (torch.arange(h).view(h, 1) * w + torch.arange(w).view(1, w)).float().expand(16, 3, h, w)
    out = random_shift(img, pad=4)
    assert out.shape == img.shape
    diff = (out - img)[:, :, 4:-4, 4:-4].reshape(16, -1)
    assert torch.all(diff == diff[:, :1])  # one rigid integer shift per sample in the interior
    shifts = diff[:, 0]
    dy, dx = torch.round(shifts / w), shifts - torch.round(shifts / w) * w
    assert dy.abs().max() <= 4 and dx.abs().max() <= 4 and shifts.abs().max() > 0


def test_torchvision_resnet18_weights_map_onto_the_groupnorm_trunk() -> None:
    """The option to load torchvision weights relies on identical parameter names and shapes."""
    import torchvision

    from lerobot_diffrl.policies.common.encoders import ResNet18GN

    tv = {
        k: v
        for k, v in torchvision.models.resnet18(weights=None).state_dict().items()
        if not k.startswith("fc.") and "running_" not in k and "num_batches_tracked" not in k
    }
    ours = ResNet18GN(64)
    ours.load_state_dict(tv, strict=True)
    assert sum(p.numel() for p in ours.parameters()) == sum(v.numel() for v in tv.values())
    assert ResNet18GN(32)(torch.rand(1, 3, 128, 128)).shape == (1, 256, 4, 4)


def test_nearly_constant_state_entries_are_widened_before_min_max() -> None:
    """An entry the demos never moved (range 0) or hardly moved (1e-6) must not blow up at a small deviation;
    actions keep their exact range so that normalised actions still span [-1, 1]."""
    from lerobot.configs.types import FeatureType, PolicyFeature

    from lerobot_diffrl.policies import DiffRLConfig
    from lerobot_diffrl.policies.common.processor import make_rl_policy_pre_post_processors

    cfg = DiffRLConfig(
        input_features={
            "observation.state": PolicyFeature(FeatureType.STATE, (3,)),
            "observation.environment_state": PolicyFeature(FeatureType.ENV, (2,)),
        },
        output_features={"action": PolicyFeature(FeatureType.ACTION, (2,))},
        device="cpu",
        min_state_range=0.05,
    )
    stats = {
        "observation.state": {"min": np.array([0.0, 0.5, -1.0]), "max": np.array([1.0, 0.5, -1.0 + 1e-6])},
        "observation.environment_state": {"min": np.array([0.2, 0.0]), "max": np.array([0.2, 2.0])},
        "action": {"min": np.array([-0.01, -1.0]), "max": np.array([0.01, 1.0])},
    }
    pre, post = make_rl_policy_pre_post_processors(cfg, stats)
    obs = {
        "observation.state": torch.tensor([0.5, 0.5 + 1e-4, -1.0 + 1e-4]),
        "observation.environment_state": torch.tensor([0.2 + 1e-4, 1.0]),
    }
    out = pre(obs)
    state, env = out["observation.state"][0], out["observation.environment_state"][0]
    # widened entries: (x - centre) / (0.05 / 2), so a 1e-4 deviation is 0.004, not 1e4 or 1e+8-scale
    torch.testing.assert_close(state, torch.tensor([0.0, 0.004, 0.004]), atol=2e-4, rtol=0)
    torch.testing.assert_close(env, torch.tensor([0.004, 0.0]), atol=2e-4, rtol=0)
    # actions: the exact range (the 0.02-wide first dimension is not widened)
    action = post(torch.tensor([[1.0, -1.0]]))
    torch.testing.assert_close(action, torch.tensor([[0.01, -1.0]]), atol=1e-6, rtol=0)
    # disabled with 0: lerobot's plain MIN_MAX, which explodes on the constant entry
    cfg.min_state_range = 0.0
    raw, _ = make_rl_policy_pre_post_processors(cfg, stats)
    assert raw(obs)["observation.environment_state"][0, 0].abs() > 1e3

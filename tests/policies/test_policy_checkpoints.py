"""Save / strict load round trip and the project's model card (all offline)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from policy_helpers import make_batch, make_policy
from safetensors.torch import load_file, save_file

from lerobot_diffrl.errors import CheckpointError


def _policy_cls(kind: str):
    from lerobot.policies.factory import get_policy_class

    return get_policy_class(kind)


def test_round_trip_is_bit_exact(kind: str, tmp_path: Path) -> None:
    policy = make_policy(kind)
    policy.config.card_metrics = {"success_rate": 0.5}
    with torch.no_grad():  # make EMA differ from the live actor so both are checked
        for p in policy.actor.parameters():
            p.add_(0.01)
    policy.update()
    policy.save_pretrained(tmp_path)
    loaded = _policy_cls(kind).from_pretrained(tmp_path)
    sd, sd2 = policy.state_dict(), loaded.state_dict()
    assert sd.keys() == sd2.keys()
    assert all(torch.equal(sd[k], sd2[k]) for k in sd)
    assert loaded.config.tasks == ["pick", "place"] and not loaded.training
    batch = make_batch(policy)
    policy.eval()
    a = policy.predict_action_chunk(batch, generator=torch.Generator().manual_seed(0))
    b = loaded.predict_action_chunk(batch, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b)


def test_round_trip_after_prepare_for_rl(tmp_path: Path) -> None:
    policy = make_policy("diffrl", denoiser="mlp", ft_denoising_steps=4)
    policy.prepare_for_rl()
    policy.save_pretrained(tmp_path)
    loaded = _policy_cls("diffrl").from_pretrained(tmp_path)
    assert loaded.ema_actor is None and loaded.base_actor is not None
    assert all(torch.equal(policy.state_dict()[k], v) for k, v in loaded.state_dict().items())


def test_missing_or_unexpected_key_is_an_error(tmp_path: Path) -> None:
    policy = make_policy("diffrl")
    policy.save_pretrained(tmp_path)
    weights = tmp_path / "model.safetensors"
    state = load_file(weights)
    dropped = next(k for k in state if k.startswith("critic."))
    save_file({k: v for k, v in state.items() if k != dropped}, weights)
    with pytest.raises(CheckpointError, match=f"missing keys: {dropped}"):
        _policy_cls("diffrl").from_pretrained(tmp_path)
    save_file({**state, "extra.weight": torch.zeros(1)}, weights)
    with pytest.raises(CheckpointError, match="unexpected keys: extra.weight"):
        _policy_cls("diffrl").from_pretrained(tmp_path)
    save_file(state, weights)
    with pytest.raises(CheckpointError, match="holds a 'diffrl' policy"):
        _policy_cls("gaussrl").from_pretrained(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="model.safetensors is missing"):
        _policy_cls("diffrl").from_pretrained(tmp_path)


def test_model_card_written_offline(tmp_path: Path) -> None:
    policy = make_policy("diffrl")
    policy.config.dataset_repo_id = "local/tiny"
    policy.config.card_metrics = {"success_rate": 0.875}
    policy.save_pretrained(tmp_path)
    card = (tmp_path / "README.md").read_text()
    assert "Model type not recognized" not in card
    assert card.startswith("---\n") and "library_name: lerobot" in card and "- diffrl" in card
    assert "datasets:\n- local/tiny" in card
    assert "K = 100" in card and "DDIM" in card and "K' = 10" in card
    assert "FiLM-conditioned 1-D temporal U-Net" in card and "ResNet-18" in card
    assert "| success_rate | 0.875 |" in card
    assert "'pick', 'place'" in card
    # The push path (push_model_to_hub) uses the same function, called as lerobot 0.6 calls it.
    import inspect

    from lerobot.policies.pretrained import PreTrainedPolicy

    theirs = inspect.signature(PreTrainedPolicy.generate_model_card).parameters
    assert list(inspect.signature(type(policy).generate_model_card).parameters) == list(theirs)
    pushed = policy.generate_model_card("other/data", "diffrl", None, ["x"], cfg=None, dataset_meta=None)
    assert "`other/data`" in str(pushed) and "- x" in str(pushed)
    gauss = make_policy("gaussrl", image_size=None)
    text = str(gauss.generate_model_card(None, "gaussrl", None, None))
    assert "state-only" in text and "[0.01, 0.2]" in text and "No metrics recorded yet." in text

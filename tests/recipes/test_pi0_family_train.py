"""The pi0-family recipes end to end, offline, on tiny models built locally.

SmolVLA, pi0 and pi05 run for real: each published recipe is fine-tuned for a few steps under ``accelerate
launch`` with two processes (DDP over gloo on CPU), the checkpoint reloads, and the evaluation command plays a
short LIBERO episode with it. pi0/pi05 use this package's small backbone (``lerobot_diffrl.recipes.pi_backbone``,
``LEROBOT_DIFFRL_SMALL_PI=1``) and a word-level tokenizer saved in the tiny base model; everything else is
lerobot 0.6.1's own code.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from recipe_helpers import recipe_args

pytestmark = pytest.mark.slow


def _losses(text: str) -> list[float]:
    return [float(x) for x in re.findall(r"\bloss:([0-9.]+)", text)]


def _assert_two_process_run_and_falling_loss(proc) -> None:
    """The launcher ran accelerate with two DDP ranks, and 40 logged losses end below 0.9x where they began."""
    out = proc.stdout + proc.stderr
    assert "accelerate" in out.split("launching: ", 1)[1].split()[0]
    assert "Effective batch size: 4 x 2 = 8" in out  # two DDP processes, not one
    losses = _losses(out)
    assert len(losses) == 40
    first, last = sum(losses[:5]) / 5, sum(losses[-10:]) / 10
    assert last < 0.9 * first, (first, last, losses)


def _acts_on_a_libero_frame(policy, ckpt) -> None:
    """The checkpoint's own processors plus the policy turn one LIBERO-shaped frame into a finite 7-d action."""
    from lerobot.policies.factory import make_pre_post_processors

    pre, post = make_pre_post_processors(policy.config, pretrained_path=str(ckpt))
    obs = {
        "observation.images.image": torch.rand(3, 32, 32),
        "observation.images.image2": torch.rand(3, 32, 32),
        "observation.state": torch.zeros(8),
        "task": "pick up the alphabet soup and place it in the basket",
    }
    policy.reset()
    action = post(policy.select_action(pre(obs)))
    assert action.shape == (1, 7) and torch.isfinite(action).all()


def test_smolvla_recipe_fine_tunes_with_two_processes_and_loss_falls(trained_smolvla) -> None:
    _assert_two_process_run_and_falling_loss(trained_smolvla.proc)


def test_fine_tuned_checkpoint_reloads_and_acts(trained_smolvla) -> None:
    from lerobot.policies.smolvla.modeling_smolvla import SmolVLAPolicy
    from safetensors.torch import load_file

    ckpt = trained_smolvla.checkpoint
    policy = SmolVLAPolicy.from_pretrained(ckpt)
    saved = load_file(ckpt / "model.safetensors")
    state = policy.state_dict()
    assert saved.keys() <= state.keys()
    assert all(torch.equal(state[k], v) for k, v in saved.items())

    base = load_file(trained_smolvla.assets.base / "model.safetensors")
    expert = [k for k in saved if ".lm_expert." in k]
    vision = [k for k in saved if ".vision_model." in k]
    assert expert and vision
    # The recipe trains the action expert only (train_expert_only=true, freeze_vision_encoder=true).
    assert any(not torch.equal(saved[k], base[k]) for k in expert)
    assert all(torch.equal(saved[k], base[k]) for k in vision)

    train_cfg = json.loads((ckpt / "train_config.json").read_text())
    assert train_cfg["policy"]["pretrained_path"] == str(trained_smolvla.assets.base)
    assert (
        train_cfg["optimizer"]["weight_decay"] == 1e-10 and train_cfg["optimizer"]["grad_clip_norm"] == 10.0
    )
    assert train_cfg["scheduler"]["type"] == "cosine_decay_with_warmup"

    _acts_on_a_libero_frame(policy, ckpt)


def test_eval_command_plays_a_libero_episode_with_the_fine_tuned_model(trained_smolvla, smolvla_eval) -> None:
    results = json.loads((smolvla_eval.output_dir / "results.json").read_text())
    assert results["overall"]["episodes"] == 1
    assert results["per_task"][0]["language"] == "pick up the alphabet soup and place it in the basket"
    proto = results["protocol"]
    # Values the protocol took from the checkpoint: its camera size and its executed actions per chunk.
    assert proto["image_size"] == [32, 32] and proto["n_action_steps"] == 4
    assert proto["fps"] == 20 and proto["max_steps"] == {"libero_object": 10}
    assert proto["policy"] == str(trained_smolvla.checkpoint.resolve())
    log = (smolvla_eval.output_dir / "runs/libero_object/task_00/seed_0/lerobot_eval.log").read_text()
    assert "smolvla" in log and "End of eval" in log
    card = (trained_smolvla.checkpoint / "README.md").read_text()
    assert "## LIBERO evaluation" in card and "libero_object" in card
    assert "local/tiny_libero" in card and "cosine_decay_with_warmup" in card
    assert "model-index" in card
    assert "warm-up 1, decay 40" in card  # lerobot scaled the 1000/30000 schedule to the 40-step run


def test_pi_recipe_fine_tunes_with_two_processes_and_loss_falls(trained_pi) -> None:
    _assert_two_process_run_and_falling_loss(trained_pi.proc)


def test_pi_checkpoint_reloads_and_acts(trained_pi) -> None:
    from lerobot.policies.factory import get_policy_class
    from safetensors.torch import load_file

    from lerobot_diffrl.recipes.pi_backbone import install

    policy_type, ckpt = trained_pi.assets.policy_type, trained_pi.checkpoint
    install((policy_type,))  # what LEROBOT_DIFFRL_SMALL_PI=1 does in lerobot's own processes
    config = json.loads((ckpt / "config.json").read_text())
    assert config["type"] == policy_type
    assert (config["paligemma_variant"], config["action_expert_variant"]) == (
        "diffrl_tiny_vlm",
        "diffrl_tiny_expert",
    )
    policy = get_policy_class(policy_type).from_pretrained(ckpt)
    saved = load_file(ckpt / "model.safetensors")
    state = policy.state_dict()
    assert saved.keys() == state.keys()
    assert all(torch.equal(state[k], v) for k, v in saved.items())
    assert sum(v.numel() for v in saved.values()) < 5_000_000  # the small backbone, not PaliGemma-3B
    base = load_file(trained_pi.assets.base / "model.safetensors")
    assert any(not torch.equal(saved[k], base[k]) for k in saved)  # the recipe trains the whole model

    train_cfg = json.loads((ckpt / "train_config.json").read_text())
    assert train_cfg["policy"]["pretrained_path"] == str(trained_pi.assets.base)
    assert train_cfg["optimizer"]["weight_decay"] == 1e-10 and train_cfg["optimizer"]["grad_clip_norm"] == 1.0

    _acts_on_a_libero_frame(policy, ckpt)


def test_eval_command_plays_a_libero_episode_with_the_fine_tuned_pi(trained_pi, pi_eval) -> None:
    results = json.loads((pi_eval.output_dir / "results.json").read_text())
    assert results["overall"]["episodes"] == 1
    proto = results["protocol"]
    assert proto["image_size"] == [32, 32] and proto["n_action_steps"] == 4
    assert proto["policy"] == str(trained_pi.checkpoint.resolve())
    log = (pi_eval.output_dir / "runs/libero_object/task_00/seed_0/lerobot_eval.log").read_text()
    assert "End of eval" in log
    card = (trained_pi.checkpoint / "README.md").read_text()
    assert "## LIBERO evaluation" in card and "libero_object" in card


def _launcher_error(args: list[str], capsys) -> str:
    """Run the launcher in this process (its checks need no subprocess) and return its single error line."""
    from lerobot_diffrl.scripts.train_vla import main

    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err
    assert "Traceback" not in err
    return errors[0]


def test_missing_base_model_offline_is_one_clear_error(tiny_assets, tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    args = [a for a in recipe_args(tiny_assets, out) if not a.startswith("--policy.pretrained_path=")]
    error = _launcher_error(args, capsys)  # the recipe's own base model, lerobot/smolvla_base, is not cached
    assert "lerobot/smolvla_base" in error and "HF_HUB_OFFLINE" in error
    assert not out.exists()


def test_missing_vlm_backbone_offline_is_one_clear_error(tiny_assets, tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    args = [a for a in recipe_args(tiny_assets, out) if not a.startswith("--policy.vlm_model_name=")]
    error = _launcher_error(args, capsys)  # the recipe's HuggingFaceTB/SmolVLM2-500M-Video-Instruct
    assert "SmolVLM2-500M-Video-Instruct" in error and "HF_HUB_OFFLINE" in error
    assert not out.exists()


def test_dataset_that_does_not_fit_the_model_is_one_clear_error(tiny_assets, tmp_path: Path, capsys) -> None:
    from tiny_models import write_tiny_libero_dataset

    wide = write_tiny_libero_dataset(
        tmp_path / "wide", repo_id="local/wide", episodes=1, frames=4, state_dim=40
    )
    out = tmp_path / "run"
    args = [
        a
        for a in recipe_args(tiny_assets, out)
        if not a.startswith(("--dataset.repo_id=", "--dataset.root="))
    ]
    error = _launcher_error([*args, "--dataset.repo_id=local/wide", f"--dataset.root={wide}"], capsys)
    assert "observation.state has 40 values" in error and "max_state_dim=32" in error
    assert not out.exists()


def test_missing_dataset_and_base_model_of_another_type_are_clear_errors(
    tiny_assets, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "run"
    args = [
        a
        for a in recipe_args(tiny_assets, out)
        if not a.startswith(("--dataset.root=", "--policy.pretrained_path="))
    ]
    error = _launcher_error(
        [*args, f"--dataset.root={tmp_path / 'nowhere'}", f"--policy.pretrained_path={tiny_assets.base}"],
        capsys,
    )
    assert "does not exist" in error and "nowhere" in error
    other = tmp_path / "pi05_base"
    other.mkdir()
    config = json.loads((tiny_assets.base / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**config, "type": "pi05"}))
    error = _launcher_error(
        [*args, f"--dataset.root={tiny_assets.dataset}", f"--policy.pretrained_path={other}"], capsys
    )
    assert "is a 'pi05' checkpoint but the recipe trains 'smolvla'" in error
    assert not out.exists()

"""The small pi0/pi05 backbone (``lerobot_diffrl.recipes.pi_backbone``) against the installed lerobot.

The hook relies on lerobot internals that are not API (module globals of ``modeling_pi0``/``modeling_pi05``, the
variant list in ``PI0Config.__post_init__``, the 8 heads fixed in ``compute_layer_complete``). When a LeRobot
release moves one, ``test_small_backbone_path_holds_on_the_installed_lerobot`` fails with the hook's own message,
"lerobot <version> changed the pi0 small-backbone path: <what>", instead of a shape error deep in a training run.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch
from recipe_helpers import REPO, subprocess_env

from lerobot_diffrl.recipes import pi_backbone
from lerobot_diffrl.recipes.pi_backbone import SmallBackboneError, check_internals, install
from lerobot_diffrl.recipes.tiny_vla import tiny_pi_overrides, tiny_pi_settings

PI_TYPES = ("pi0", "pi05")


def _tiny_policy(policy_type: str):
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.factory import get_policy_class, make_policy_config

    image = PolicyFeature(type=FeatureType.VISUAL, shape=(3, 32, 32))
    cfg = make_policy_config(
        policy_type,
        input_features={
            "observation.images.image": image,
            "observation.state": PolicyFeature(type=FeatureType.STATE, shape=(8,)),
        },
        output_features={"action": PolicyFeature(type=FeatureType.ACTION, shape=(7,))},
        **tiny_pi_settings(policy_type),
    )
    return get_policy_class(policy_type)(cfg)


@pytest.mark.parametrize("policy_type", PI_TYPES)
def test_small_backbone_path_holds_on_the_installed_lerobot(policy_type: str) -> None:
    try:
        install((policy_type,))
        policy = _tiny_policy(policy_type)
    except SmallBackboneError as err:
        pytest.fail(str(err))
    n_params = sum(p.numel() for p in policy.parameters())
    assert n_params < 2_000_000, (
        f"lerobot changed the pi0 small-backbone path: a tiny {policy_type} has {n_params} parameters "
        "(the hard-coded PaliGemma sizes were not replaced)"
    )
    vlm = policy.model.paligemma_with_expert.paligemma.config
    assert vlm.text_config.hidden_size == pi_backbone.VARIANTS["diffrl_tiny_vlm"].width
    assert vlm.vision_config.patch_size == pi_backbone.VisionSpec().patch_size
    batch = {
        "observation.images.image": torch.rand(2, 3, 32, 32),
        "observation.state": torch.rand(2, 8),
        "action": torch.rand(2, 4, 7),
        "observation.language.tokens": torch.randint(0, 300, (2, 16)),
        "observation.language.attention_mask": torch.ones(2, 16, dtype=torch.bool),
    }
    loss, _ = policy.forward(batch)
    loss.backward()
    assert torch.isfinite(loss)


@pytest.mark.parametrize("policy_type", PI_TYPES)
def test_stock_variants_are_untouched_and_mixing_is_refused(policy_type: str) -> None:
    import importlib

    from lerobot.policies.factory import make_policy_config

    install((policy_type,))
    modeling = importlib.import_module(f"lerobot.policies.{policy_type}.modeling_{policy_type}")
    assert modeling.get_gemma_config("gemma_2b").width == 2048
    assert modeling.get_gemma_config("gemma_300m").width == 1024
    cfg = make_policy_config(policy_type)
    assert (cfg.paligemma_variant, cfg.action_expert_variant) == ("gemma_2b", "gemma_300m")
    with pytest.raises(ValueError, match="Invalid paligemma_variant"):
        make_policy_config(policy_type, paligemma_variant="gemma_7b")
    with pytest.raises(ValueError, match="cannot attend jointly"):
        make_policy_config(policy_type, paligemma_variant="diffrl_tiny_vlm")


def test_a_moved_internal_is_reported_plainly() -> None:
    """What a LeRobot patch release that renames an internal would produce (simulated on a copy)."""
    from lerobot.policies.pi0 import modeling_pi0
    from lerobot.policies.pi0.configuration_pi0 import PI0Config

    moved = types.ModuleType("lerobot.policies.pi0.modeling_pi0")
    moved.__dict__.update({k: v for k, v in vars(modeling_pi0).items() if k != "get_gemma_config"})
    with pytest.raises(SmallBackboneError) as err:
        check_internals(PI0Config, moved)
    version = pi_backbone.lerobot_version()
    assert str(err.value) == (
        f"lerobot {version} changed the pi0 small-backbone path: "
        "lerobot.policies.pi0.modeling_pi0 no longer defines get_gemma_config"
    )


def _error(proc: subprocess.CompletedProcess) -> str:
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return errors[0]


def _launcher(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lerobot_diffrl.scripts.train_vla", *args],
        capture_output=True,
        text=True,
        env=subprocess_env(**env),
        cwd=REPO,
        timeout=300,
    )


@pytest.mark.slow
def test_launcher_names_the_switch_and_the_tokenizer(tiny_assets, tmp_path: Path) -> None:
    """Without ``LEROBOT_DIFFRL_SMALL_PI=1`` the small variants are one error naming it; a base model whose
    preprocessor asks for the (gated, uncached) PaliGemma tokenizer offline is one error naming it."""
    from tiny_models import build_tiny_pi_base

    base = build_tiny_pi_base(tmp_path / "base", "pi0", tiny_assets.dataset)
    args = [
        f"--config_path={REPO / 'recipes' / 'pi0_libero.json'}",
        f"--dataset.repo_id={tiny_assets.repo_id}",
        f"--dataset.root={tiny_assets.dataset}",
        f"--policy.pretrained_path={base}",
        *tiny_pi_overrides("pi0"),
        f"--output_dir={tmp_path / 'run'}",
        "--dry_run=true",
    ]
    proc = _launcher(args, {pi_backbone.ENV_VAR: "0"})
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "diffrl_tiny_vlm, diffrl_tiny_expert are lerobot_diffrl's small" in _error(proc)
    assert "set LEROBOT_DIFFRL_SMALL_PI=1" in _error(proc)

    gated = tmp_path / "gated_base"
    shutil.copytree(base, gated)
    pre = json.loads((gated / "policy_preprocessor.json").read_text())
    for step in pre["steps"]:
        if step["registry_name"] == "tokenizer_processor":
            step["config"]["tokenizer_name"] = "google/paligemma-3b-pt-224"
    (gated / "policy_preprocessor.json").write_text(json.dumps(pre))
    args = [
        f"--policy.pretrained_path={gated}" if a.startswith("--policy.pretrained_path") else a for a in args
    ]
    proc = _launcher(args, {pi_backbone.ENV_VAR: "1"})
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "google/paligemma-3b-pt-224" in _error(proc) and "HF_HUB_OFFLINE" in _error(proc)
    proc = _launcher([a.replace(str(gated), str(base)) for a in args], {pi_backbone.ENV_VAR: "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "launching: " in proc.stderr and not (tmp_path / "run").exists()

"""The recipe files: they parse as lerobot 0.6.1 ``TrainPipelineConfig``s, set only fields lerobot's pi0/pi05/
smolvla configs have, reproduce the published schedules, are documented with sources, and the accelerate configs
load with accelerate's own classes."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RECIPES = REPO / "recipes"
NAMES = ("pi0", "pi05", "smolvla")


def _parse(name: str, *args: str):
    """The recipe through draccus: ``decode`` (what a config file becomes) when there are no overrides, else the
    full command-line ``parse`` lerobot-train runs (slow: it builds help text for every registered type)."""
    import draccus
    import lerobot.policies.factory  # noqa: F401  (registers the policy config classes, as lerobot-train does)
    from lerobot.configs.train import TrainPipelineConfig

    path = RECIPES / f"{name}_libero.json"
    if not args:
        return draccus.decode(TrainPipelineConfig, json.loads(path.read_text()))
    with draccus.config_type("json"):
        return draccus.parse(TrainPipelineConfig, path, args=list(args))


@pytest.mark.parametrize("name", NAMES)
def test_recipe_parses_with_lerobots_train_config_and_sets_only_existing_fields(name: str) -> None:
    from lerobot.configs.train import TrainPipelineConfig
    from lerobot.policies.factory import get_policy_class

    raw = json.loads((RECIPES / f"{name}_libero.json").read_text())
    cfg = _parse(name)
    assert cfg.policy.type == name
    config_cls = type(cfg.policy)
    assert config_cls is get_policy_class(name).config_class
    policy_fields = {f.name for f in dataclasses.fields(config_cls)}
    assert set(raw["policy"]) - {"type"} <= policy_fields
    train_fields = {f.name for f in dataclasses.fields(TrainPipelineConfig)}
    assert set(raw) <= train_fields
    for key, value in raw["policy"].items():
        if key in ("type", "normalization_mapping", "device"):  # lerobot switches cuda to cpu on this machine
            continue
        got = getattr(cfg.policy, key)
        got = list(got) if isinstance(got, tuple) else got
        assert (str(got) if key == "pretrained_path" else got) == value, key
    assert (
        cfg.env_eval_freq == 0 and cfg.env is None
    )  # evaluation is lerobot-diffrl-eval's job, not the trainer's
    assert cfg.policy.push_to_hub is False


def test_command_line_overrides_apply_on_top_of_a_recipe() -> None:
    cfg = _parse("pi05", "--batch_size=2", "--dataset.repo_id=me/data", "--policy.n_action_steps=5")
    assert (cfg.batch_size, cfg.dataset.repo_id, cfg.policy.n_action_steps) == (2, "me/data", 5)
    assert cfg.policy.scheduler_warmup_steps == 10000  # the rest of the recipe is kept


def test_published_hyper_parameters() -> None:
    pi0, pi05, smolvla = (_parse(n) for n in NAMES)
    # openpi pi0_libero: TrainConfig defaults (batch 32, 30k steps, CosineDecaySchedule(1000, 2.5e-5, 30000,
    # 2.5e-6), AdamW(b1=0.9, b2=0.95, eps=1e-8, weight_decay=1e-10, clip 1.0)), Pi0Config(action_horizon=50).
    assert (pi0.batch_size, pi0.steps, pi0.policy.chunk_size, pi0.policy.tokenizer_max_length) == (
        32,
        30000,
        50,
        48,
    )
    opt = pi0.policy.get_optimizer_preset()
    assert (opt.lr, tuple(opt.betas), opt.eps, opt.weight_decay, opt.grad_clip_norm) == (
        2.5e-5,
        (0.9, 0.95),
        1e-8,
        1e-10,
        1.0,
    )
    # openpi pi05_libero: batch 256 (8 x 32), warmup 10k to 5e-5 then constant (decay_lr == peak), action_horizon 10,
    # quantile normalisation; LeRobot's LIBERO reproduction executes 10 actions per chunk.
    assert (pi05.batch_size, pi05.steps, pi05.policy.chunk_size, pi05.policy.n_action_steps) == (
        32,
        30000,
        10,
        10,
    )
    assert pi05.policy.tokenizer_max_length == 200
    assert {k: v.value for k, v in pi05.policy.normalization_mapping.items()} == {
        "VISUAL": "IDENTITY",
        "STATE": "QUANTILES",
        "ACTION": "QUANTILES",
    }
    # SmolVLA: lerobot 0.6.1 presets (unchanged from 0.4.4), batch 64 (smolvla docs), 100k steps (LIBERO docs), expert-only training.
    assert (smolvla.batch_size, smolvla.steps, smolvla.policy.optimizer_lr) == (64, 100000, 1e-4)
    assert smolvla.policy.train_expert_only and smolvla.policy.freeze_vision_encoder


def _lr_curve(cfg, steps: list[int]) -> list[float]:
    import torch

    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([param], lr=cfg.policy.optimizer_lr)
    sched = cfg.policy.get_scheduler_preset().build(opt, cfg.steps)
    out, step = [], 0
    for target in steps:
        while step < target:
            opt.step()
            sched.step()
            step += 1
        out.append(opt.param_groups[0]["lr"])
    return out


def test_schedules_match_openpi_at_the_recipe_length() -> None:
    pi0, pi05 = _parse("pi0"), _parse("pi05")
    # pi0: warm up over 1000 steps to 2.5e-5, cosine down to 2.5e-6 at 30000 (no auto-scaling: steps == decay).
    # lerobot counts the cosine from step 0 (optax from the end of warm-up): -0.3% at step 1000, midpoint at
    # 15000 instead of 15500 (recipes/README.md).
    lr = _lr_curve(pi0, [1000, 15000, 30000])
    assert lr[0] == pytest.approx(2.5e-5, rel=3e-3) and lr[1] == pytest.approx(
        (2.5e-5 + 2.5e-6) / 2, rel=1e-6
    )
    assert lr[2] == pytest.approx(2.5e-6)
    # pi05: linear warm-up over 10000 steps, then constant 5e-5 (openpi decays to decay_lr == peak_lr).
    lr = _lr_curve(pi05, [5000, 10000, 20000, 30000])
    assert lr[0] == pytest.approx(5e-5 * 0.5, rel=1e-3)
    assert lr[1:] == pytest.approx([5e-5] * 3)


def test_readme_documents_every_recipe_setting_with_a_source() -> None:
    readme = (RECIPES / "README.md").read_text()
    for name in NAMES:
        raw = json.loads((RECIPES / f"{name}_libero.json").read_text())
        keys = [k for k in raw["policy"] if k != "type"] + ["batch_size", "steps", "seed"]
        for key in keys:
            assert f"`{key}`" in readme, f"{name}: {key} not documented in recipes/README.md"
    for source in (
        "src/openpi/training/config.py",
        "src/openpi/training/optimizer.py",
        "docs/source/libero.mdx",
        "docs/source/pi05.mdx",
        "docs/source/smolvla.mdx",
        "configuration_smolvla.py",
    ):
        assert source in readme


EXPECTED_ACCELERATE = {
    "single_gpu": ("NO", 1, 1),
    "multi_gpu_ddp": ("MULTI_GPU", 8, 1),
    "fsdp": ("FSDP", 8, 1),
    "multi_node": ("MULTI_GPU", 16, 2),
}


@pytest.mark.parametrize("name", sorted(EXPECTED_ACCELERATE))
def test_accelerate_configs_load_and_validate_as_launch_configs(name: str) -> None:
    from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser

    path = RECIPES / "accelerate" / f"{name}.yaml"
    config = load_config_from_file(str(path))
    assert isinstance(config, ClusterConfig)
    kind, processes, machines = EXPECTED_ACCELERATE[name]
    assert (config.distributed_type.value, config.num_processes, config.num_machines) == (
        kind,
        processes,
        machines,
    )
    args = launch_command_parser().parse_args(["--config_file", str(path), "lerobot-train"])
    args, _, _ = _validate_launch_command(args)
    assert args.num_processes == processes and args.multi_gpu == (kind == "MULTI_GPU")
    assert args.use_fsdp == (kind == "FSDP")
    if name == "multi_node":
        assert args.num_machines == 2 and args.main_process_port == 29500


def test_fsdp_wrap_classes_exist_in_the_backbones() -> None:
    """accelerate raises on a wrap class the model lacks: the yaml lists pi0/pi05's, the README SmolVLA's."""
    import importlib

    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(RECIPES / "accelerate" / "fsdp.yaml"))
    classes = config.fsdp_config["fsdp_transformer_layer_cls_to_wrap"].split(",")
    modules = {
        "GemmaDecoderLayer": "transformers.models.gemma.modeling_gemma",
        "SiglipEncoderLayer": "transformers.models.siglip.modeling_siglip",
    }
    assert set(classes) == set(modules)
    for cls in classes:
        assert hasattr(importlib.import_module(modules[cls]), cls)
    readme = (RECIPES / "README.md").read_text()
    assert "--fsdp_transformer_layer_cls_to_wrap=LlamaDecoderLayer,SmolVLMEncoderLayer" in readme


def test_smolvla_fsdp_wrap_classes_are_in_a_real_smolvla(tmp_path: Path) -> None:
    from accelerate.utils.dataclasses import get_module_class_from_name
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.smolvla.configuration_smolvla import SmolVLAConfig
    from lerobot.policies.smolvla.modeling_smolvla import SmolVLAPolicy
    from tiny_models import TINY_IMAGE_SIZE, build_tiny_smolvlm

    vlm = build_tiny_smolvlm(tmp_path / "vlm")
    image = PolicyFeature(type=FeatureType.VISUAL, shape=(3, TINY_IMAGE_SIZE, TINY_IMAGE_SIZE))
    policy = SmolVLAPolicy(
        SmolVLAConfig(
            vlm_model_name=str(vlm),
            load_vlm_weights=False,
            num_vlm_layers=2,
            device="cpu",
            input_features={"observation.images.image": image},
            output_features={"action": PolicyFeature(type=FeatureType.ACTION, shape=(7,))},
        )
    )
    for name in ("LlamaDecoderLayer", "SmolVLMEncoderLayer"):
        assert get_module_class_from_name(policy, name) is not None

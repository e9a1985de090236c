"""Session fixtures shared by the recipe tests: a tiny SmolVLA, pi0 and pi05, each fine-tuned once with its real
recipe under ``accelerate launch`` (two processes), and one short LIBERO evaluation of each with
``lerobot-diffrl-eval``. The pi runs set ``LEROBOT_DIFFRL_SMALL_PI=1`` (the small backbone's hook).

Training and evaluating are the slow parts (about a minute each on two cores); every test that needs them reads
the same run instead of repeating it. Helpers live in recipe_helpers.py, tiny model builders in tiny_models.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from recipe_helpers import (  # noqa: E402
    REPO,
    EvalRun,
    PiAssets,
    TinyAssets,
    TrainedRun,
    pi_recipe_args,
    recipe_args,
    run_module,
)
from tiny_models import (  # noqa: E402
    build_tiny_pi_base,
    build_tiny_smolvla_base,
    build_tiny_smolvlm,
    write_tiny_libero_dataset,
)

from lerobot_diffrl.recipes.pi_backbone import ENV_VAR  # noqa: E402

SMALL_PI_ENV = {ENV_VAR: "1"}


@pytest.fixture(scope="session")
def tiny_assets(tmp_path_factory) -> TinyAssets:
    root = tmp_path_factory.mktemp("tiny_vla")
    vlm = build_tiny_smolvlm(root / "smolvlm")
    dataset = write_tiny_libero_dataset(root / "dataset", episodes=2, frames=16)
    base = build_tiny_smolvla_base(root / "smolvla_base", vlm, dataset)
    return TinyAssets(vlm=vlm, dataset=dataset, base=base)


@pytest.fixture(scope="session")
def trained_smolvla(tiny_assets, tmp_path_factory) -> TrainedRun:
    """The SmolVLA recipe fine-tuned for a few steps by ``lerobot-diffrl-train-vla`` with the repository's DDP
    accelerate config and two processes (torchrun + gloo on CPU)."""
    out = tmp_path_factory.mktemp("train") / "smolvla"
    args = [
        f"--accelerate_config={REPO / 'recipes' / 'accelerate' / 'multi_gpu_ddp.yaml'}",
        "--num_processes=2",
        *recipe_args(tiny_assets, out),
    ]
    proc = run_module("lerobot_diffrl.scripts.train_vla", args, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-6000:]
    checkpoint = out / "checkpoints" / "last" / "pretrained_model"
    return TrainedRun(assets=tiny_assets, output_dir=out, checkpoint=checkpoint, proc=proc)


def _eval(checkpoint: Path, out: Path, env: dict[str, str] | None = None) -> EvalRun:
    """``lerobot-diffrl-eval`` on ``checkpoint``: one 10-step episode of libero_object task 0."""
    args = [
        f"--policy.path={checkpoint}",
        "--policy.device=cpu",
        "--suites=libero_object",
        "--protocol.task_ids=[0]",
        "--protocol.episodes_per_task=1",
        "--protocol.episode_length=10",
        f"--output_dir={out}",
        "--update_card=true",
    ]
    proc = run_module("lerobot_diffrl.scripts.eval", args, timeout=900, env=env)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-6000:]
    return EvalRun(output_dir=out, args=args, proc=proc)


@pytest.fixture(scope="session")
def smolvla_eval(trained_smolvla, tmp_path_factory) -> EvalRun:
    return _eval(trained_smolvla.checkpoint, tmp_path_factory.mktemp("eval") / "smolvla")


@pytest.fixture(scope="session", params=["pi0", "pi05"])
def pi_assets(request, tiny_assets, tmp_path_factory) -> PiAssets:
    """A tiny pi0 / pi05 base model (small backbone, local tokenizer) on the shared tiny dataset."""
    policy_type = request.param
    base = build_tiny_pi_base(tmp_path_factory.mktemp(policy_type) / "base", policy_type, tiny_assets.dataset)
    return PiAssets(policy_type=policy_type, base=base, dataset=tiny_assets.dataset)


@pytest.fixture(scope="session")
def trained_pi(pi_assets, tmp_path_factory) -> TrainedRun:
    """The pi0 / pi05 recipe fine-tuned for a few steps by ``lerobot-diffrl-train-vla``, two DDP processes."""
    out = tmp_path_factory.mktemp("train") / pi_assets.policy_type
    args = [
        f"--accelerate_config={REPO / 'recipes' / 'accelerate' / 'multi_gpu_ddp.yaml'}",
        "--num_processes=2",
        *pi_recipe_args(pi_assets, out),
    ]
    proc = run_module("lerobot_diffrl.scripts.train_vla", args, timeout=900, env=SMALL_PI_ENV)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-6000:]
    checkpoint = out / "checkpoints" / "last" / "pretrained_model"
    return TrainedRun(assets=pi_assets, output_dir=out, checkpoint=checkpoint, proc=proc)


@pytest.fixture(scope="session")
def pi_eval(trained_pi, tmp_path_factory) -> EvalRun:
    out = tmp_path_factory.mktemp("eval") / trained_pi.assets.policy_type
    return _eval(trained_pi.checkpoint, out, env=SMALL_PI_ENV)

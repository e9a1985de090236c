"""Helpers of the recipe tests (fixtures live in conftest.py): how the CLIs are run and what the shared runs hold."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tiny_models import tiny_pi_overrides, tiny_smolvla_overrides

REPO = Path(__file__).resolve().parents[2]
TRAIN_STEPS = 40


def subprocess_env(**extra: str) -> dict[str, str]:
    env = dict(
        os.environ,
        HF_HUB_OFFLINE="1",
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        WANDB_MODE="disabled",
        TOKENIZERS_PARALLELISM="false",
    )
    env.update(extra)
    return env


def run_module(
    module: str, args: list[str], timeout: int = 600, cwd: Path = REPO, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """``python -m <module> args`` as a user would run the console script, output captured; ``env`` adds
    variables (e.g. ``LEROBOT_DIFFRL_SMALL_PI=1`` for the tiny pi models)."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        env=subprocess_env(**(env or {})),
        timeout=timeout,
        cwd=cwd,
    )


@dataclass(frozen=True)
class TinyAssets:
    vlm: Path
    dataset: Path
    base: Path
    repo_id: str = "local/tiny_libero"


@dataclass(frozen=True)
class PiAssets:
    """A tiny pi0 or pi05 base model built on the shared tiny dataset."""

    policy_type: str
    base: Path
    dataset: Path
    repo_id: str = "local/tiny_libero"


@dataclass(frozen=True)
class TrainedRun:
    assets: TinyAssets
    output_dir: Path
    checkpoint: Path
    proc: subprocess.CompletedProcess


@dataclass(frozen=True)
class EvalRun:
    output_dir: Path
    args: list[str]
    proc: subprocess.CompletedProcess


def recipe_args(assets: TinyAssets, output_dir: Path, steps: int = TRAIN_STEPS) -> list[str]:
    """The published SmolVLA recipe, pointed at the tiny data and models and shortened to ``steps``."""
    return _shortened_recipe("smolvla", assets, tiny_smolvla_overrides(assets.vlm), output_dir, steps)


def pi_recipe_args(assets: PiAssets, output_dir: Path, steps: int = TRAIN_STEPS) -> list[str]:
    """The published pi0/pi05 recipe, pointed at the tiny data and base model and shortened to ``steps``."""
    return _shortened_recipe(
        assets.policy_type, assets, tiny_pi_overrides(assets.policy_type), output_dir, steps
    )


def _shortened_recipe(
    policy_type: str, assets: TinyAssets | PiAssets, overrides: list[str], output_dir: Path, steps: int
) -> list[str]:
    """``recipes/<type>_libero.json`` on the tiny dataset and base model, with the tiny backbone's overrides."""
    return [
        f"--config_path={REPO / 'recipes' / f'{policy_type}_libero.json'}",
        f"--dataset.repo_id={assets.repo_id}",
        f"--dataset.root={assets.dataset}",
        f"--policy.pretrained_path={assets.base}",
        *overrides,
        "--policy.optimizer_lr=1e-3",
        "--batch_size=4",
        f"--steps={steps}",
        f"--save_freq={steps}",
        "--log_freq=1",
        "--num_workers=0",
        f"--output_dir={output_dir}",
    ]

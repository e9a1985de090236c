"""Session fixtures shared by the recipe tests: a tiny SmolVLA fine-tuned once with the real recipe under
``accelerate launch`` (two processes), and one short LIBERO evaluation of it with ``lerobot-diffrl-eval``.

Training and evaluating are the slow parts (about a minute each on two cores); every test that needs them reads
the same run instead of repeating it. Helpers live in recipe_helpers.py, tiny model builders in tiny_models.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from recipe_helpers import REPO, EvalRun, TinyAssets, TrainedRun, recipe_args, run_module  # noqa: E402
from tiny_models import build_tiny_smolvla_base, build_tiny_smolvlm, write_tiny_libero_dataset  # noqa: E402


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


@pytest.fixture(scope="session")
def smolvla_eval(trained_smolvla, tmp_path_factory) -> EvalRun:
    """``lerobot-diffrl-eval`` on the trained checkpoint: one 10-step episode of libero_object task 0."""
    out = tmp_path_factory.mktemp("eval") / "smolvla"
    args = [
        f"--policy.path={trained_smolvla.checkpoint}",
        "--policy.device=cpu",
        "--suites=libero_object",
        "--protocol.task_ids=[0]",
        "--protocol.episodes_per_task=1",
        "--protocol.episode_length=10",
        f"--output_dir={out}",
        "--update_card=true",
    ]
    proc = run_module("lerobot_diffrl.scripts.eval", args, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-6000:]
    return EvalRun(output_dir=out, args=args, proc=proc)

"""Integration with LeRobot's own CLIs: lerobot-train on a tiny dataset written here, then lerobot-eval."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import lerobot_diffrl.policies  # noqa: F401  (registers the policy types in this process)

BIN = Path(sys.executable).parent
SMALL_ARGS = [
    "--policy.vision_width=8",
    "--policy.unet_down_dims=[16,32]",
    "--policy.time_embed_dim=16",
    "--policy.image_feature_dim=16",
    "--policy.critic_hidden_dim=32",
]


def _env() -> dict[str, str]:
    env = dict(
        os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="2", MKL_NUM_THREADS="2", WANDB_MODE="disabled"
    )
    return env


def write_tiny_dataset(root: Path, episodes: int = 2, frames: int = 12, size: int = 32) -> None:
    """A finalized LeRobotDataset v3 with two cameras (PNG images), 8-d state, 7-d action and task strings."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    features = {
        "observation.images.image": {
            "dtype": "image",
            "shape": (size, size, 3),
            "names": ["height", "width", "channel"],
        },
        "observation.images.image2": {
            "dtype": "image",
            "shape": (size, size, 3),
            "names": ["height", "width", "channel"],
        },
        "observation.state": {"dtype": "float32", "shape": (8,), "names": None},
        "action": {"dtype": "float32", "shape": (7,), "names": None},
    }
    ds = LeRobotDataset.create("local/tiny", fps=20, features=features, root=root, use_videos=False)
    rng = np.random.default_rng(0)
    for ep in range(episodes):
        for _ in range(frames):
            ds.add_frame(
                {
                    "observation.images.image": rng.integers(0, 255, (size, size, 3), dtype=np.uint8),
                    "observation.images.image2": rng.integers(0, 255, (size, size, 3), dtype=np.uint8),
                    "observation.state": rng.normal(size=8).astype(np.float32),
                    "action": rng.uniform(-1, 1, size=7).astype(np.float32),
                    "task": ["pick up the bowl", "open the drawer"][ep % 2],
                }
            )
        ds.save_episode()
    ds.finalize()


@pytest.mark.slow
def test_lerobot_train_help_lists_the_policy_types() -> None:
    out = subprocess.run(
        [str(BIN / "lerobot-train"), "--help"], capture_output=True, text=True, env=_env(), timeout=180
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "diffrl" in out.stdout and "gaussrl" in out.stdout


@pytest.mark.slow
@pytest.mark.parametrize("policy_type", ["diffrl", "gaussrl"])
def test_lerobot_train_runs_and_checkpoint_loads(tmp_path: Path, policy_type: str) -> None:
    from lerobot.policies.factory import get_policy_class, make_pre_post_processors

    root = tmp_path / "tiny"
    write_tiny_dataset(root)
    out_dir = tmp_path / "out"
    extra = (
        SMALL_ARGS
        if policy_type == "diffrl"
        else SMALL_ARGS[:1] + SMALL_ARGS[3:] + ["--policy.head_hidden_dim=64"]
    )
    cmd = [
        str(BIN / "lerobot-train"),
        f"--policy.type={policy_type}",
        "--dataset.repo_id=local/tiny",
        f"--dataset.root={root}",
        "--policy.push_to_hub=false",
        "--steps=3",
        "--batch_size=2",
        f"--output_dir={out_dir}",
        "--policy.device=cpu",
        "--save_freq=3",
        "--log_freq=1",
        "--num_workers=0",
        "--wandb.enable=false",
        "--env_eval_freq=0",
        *extra,
    ]
    run = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=600)
    assert run.returncode == 0, (run.stdout[-3000:], run.stderr[-3000:])
    ckpt = out_dir / "checkpoints" / "000003" / "pretrained_model"
    policy = get_policy_class(policy_type).from_pretrained(ckpt)
    assert policy.config.tasks == ["pick up the bowl", "open the drawer"]
    assert policy.config.dataset_repo_id == "local/tiny"
    assert policy.config.vision_width == 8
    assert int(policy.ema_step) == 3  # lerobot-train called update() after each optimizer step
    assert "Model type not recognized" not in (ckpt / "README.md").read_text()
    pre, post = make_pre_post_processors(policy.config, pretrained_path=str(ckpt))
    obs = {
        "observation.images.image": torch.rand(3, 32, 32),
        "observation.images.image2": torch.rand(3, 32, 32),
        "observation.state": torch.zeros(8),
        "task": "open the drawer",
    }
    action = post(policy.select_action(pre(obs)))
    assert action.shape == (1, 7) and torch.isfinite(action).all()
    shutil.rmtree(root)


@pytest.mark.slow
def test_lerobot_eval_runs_a_trained_checkpoint_on_the_project_env(tmp_path: Path) -> None:
    """lerobot-train a tiny diffrl at the env's 128x128 resolution with lerobot-train's periodic evaluation on
    ``diffrl_env`` (0.6's defaults: async vector envs, here with 2 envs in worker processes), then lerobot-eval
    one short LIBERO episode (batch size 1: lerobot downgrades async to a sync env)."""
    pytest.importorskip("lerobot_diffrl.envs.configs")
    import json

    root = tmp_path / "tiny128"
    write_tiny_dataset(root, episodes=1, frames=10, size=128)
    train_dir = tmp_path / "train"
    train = subprocess.run(
        [
            str(BIN / "lerobot-train"),
            "--policy.type=diffrl",
            "--dataset.repo_id=local/tiny",
            f"--dataset.root={root}",
            "--policy.push_to_hub=false",
            "--steps=1",
            "--batch_size=2",
            f"--output_dir={train_dir}",
            "--policy.device=cpu",
            "--save_freq=1",
            "--num_workers=0",
            "--wandb.enable=false",
            "--env.type=diffrl_env",
            "--env.task=libero_object",
            "--env.task_ids=[0]",
            "--env.episode_length=8",
            "--env_eval_freq=1",
            "--eval.batch_size=2",
            "--eval.n_episodes=2",
            *SMALL_ARGS,
        ],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=600,
    )
    assert train.returncode == 0, train.stderr[-3000:]
    train_log = train.stdout + train.stderr
    assert "Eval policy at step 1" in train_log, train_log[-3000:]
    # the periodic evaluation: 2 episodes of libero_object task 0 in worker processes, with videos
    [overall] = [ln for ln in train_log.splitlines() if "Suite overall aggregated" in ln]
    assert "'n_episodes': 2" in overall, overall
    assert list((train_dir / "eval").glob("videos_step_*/**/*.mp4"))
    ckpt = train_dir / "checkpoints" / "000001" / "pretrained_model"
    eval_dir = tmp_path / "eval"
    run = subprocess.run(
        [
            str(BIN / "lerobot-eval"),
            f"--policy.path={ckpt}",
            "--env.type=diffrl_env",
            "--env.task=libero_object",
            "--env.task_ids=[0]",
            "--env.observation_height=128",
            "--env.observation_width=128",
            "--env.episode_length=20",
            "--eval.batch_size=1",
            "--eval.n_episodes=1",
            "--policy.device=cpu",
            f"--output_dir={eval_dir}",
        ],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=900,
    )
    assert run.returncode == 0, (run.stdout[-3000:], run.stderr[-3000:])
    info = json.loads((eval_dir / "eval_info.json").read_text())
    overall = info.get("overall", info.get("aggregated", {}))
    assert "pc_success" in overall and 0.0 <= overall["pc_success"] <= 100.0


@pytest.mark.slow
def test_accelerate_launch_trains_diffrl_with_two_processes(tmp_path: Path) -> None:
    """``accelerate launch $(which lerobot-train)`` with DDP over two CPU processes (gloo), as on several GPUs."""
    from lerobot.policies.factory import get_policy_class

    root = tmp_path / "tiny"
    write_tiny_dataset(root)
    out_dir = tmp_path / "out"
    cmd = [
        str(BIN / "accelerate"),
        "launch",
        # --cpu alone makes accelerate start one process whatever --num_processes says; --multi_gpu spawns the
        # ranks through torch.distributed.run, which on a machine without GPUs runs DDP over gloo on the CPU.
        "--multi_gpu",
        "--num_processes=2",
        "--num_machines=1",
        "--mixed_precision=no",
        "--dynamo_backend=no",
        str(BIN / "lerobot-train"),
        "--policy.type=diffrl",
        "--dataset.repo_id=local/tiny",
        f"--dataset.root={root}",
        "--policy.push_to_hub=false",
        "--steps=2",
        "--batch_size=2",
        f"--output_dir={out_dir}",
        "--save_freq=2",
        "--log_freq=1",
        "--num_workers=0",
        "--wandb.enable=false",
        "--env_eval_freq=0",
        *SMALL_ARGS,
    ]
    env = dict(_env(), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert run.returncode == 0, (run.stdout[-3000:], run.stderr[-3000:])
    assert "Effective batch size: 2 x 2 = 4" in run.stdout + run.stderr  # two DDP ranks, batch 2 each
    policy = get_policy_class("diffrl").from_pretrained(
        out_dir / "checkpoints" / "000002" / "pretrained_model"
    )
    assert int(policy.ema_step) == 2
    assert policy.config.tasks == ["pick up the bowl", "open the drawer"]

"""Proof that the trainer learns: DPPO lifts a mediocre BC policy on the passage task by >= 30 points.

Fixed seeds, CPU, one torch thread: the run is deterministic. Observed with seed 0: BC 0.21 -> 0.67 after 20
iterations; see benchmarks/rl_learning.py for the diffrl-vs-gaussrl comparison.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from rl_helpers import write_config

from lerobot_diffrl.rl.metrics_log import read_metrics
from lerobot_diffrl.rl.passage_warmstart import passage_rl_config, pretrain_passage_policy
from lerobot_diffrl.scripts.rl import main

REQUIRED_TRAIN_KEYS = {
    "iteration",
    "env_steps",
    "success_rate",
    "episode_length",
    "episode_return",
    "policy_loss",
    "value_loss",
    "clip_fraction",
    "approx_kl",
    "explained_variance",
    "env_steps_per_s",
    "rollout_s",
    "update_s",
    "actor_lr",
    "critic_lr",
}


@pytest.mark.slow
def test_dppo_gains_30_points_over_bc_on_the_passage_task(tmp_path: Path, capsys) -> None:
    torch.set_num_threads(1)
    ckpt = pretrain_passage_policy("diffrl", tmp_path / "bc", steps=2000, seed=0)
    cfg = passage_rl_config(ckpt, tmp_path / "run", iterations=20, seed=0)
    config_path = write_config(cfg, tmp_path / "rl.json")
    assert main([f"--config_path={config_path}"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    before, after = summary["success_before"], summary["success_after"]
    assert 0.1 <= before <= 0.6, f"BC should be mediocre, got {before}"
    assert after - before >= 0.30, f"DPPO gained only {after - before:.3f} ({before:.3f} -> {after:.3f})"
    assert summary["iterations"] == 20
    # 50 envs x 20 chunks x 4 actions per iteration at most; episodes that end mid-chunk execute fewer.
    assert 0.8 * 20 * 4000 <= summary["env_steps"] <= 20 * 4000

    records = read_metrics(tmp_path / "run")
    train = [r for r in records if r["event"] == "train"]
    assert [r["iteration"] for r in train] == list(range(1, 21))
    assert all(REQUIRED_TRAIN_KEYS <= r.keys() for r in train)
    assert train[0]["actor_updated"] == 0.0 and train[1]["actor_updated"] == 1.0  # critic warm-up
    assert all(0.0 <= r["clip_fraction"] <= 1.0 and r["approx_kl"] >= 0.0 for r in train)
    assert train[-1]["explained_variance"] > 0.2  # the critic learned something
    evals = [r for r in records if r["event"] == "eval"]
    assert [r["tag"] for r in evals] == ["start", "periodic", "final"]
    assert evals[-1]["eval_ci95_low"] < after < evals[-1]["eval_ci95_high"]
    assert Path(summary["checkpoint"], "model.safetensors").is_file()

"""``lerobot-diffrl-rl``: checkpoints and resume, Ctrl-C, SIGKILL during training, and bad input."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from rl_helpers import tiny_libero_checkpoint, write_config

from lerobot_diffrl.rl.checkpoint import PRETRAINED, TRAINING_STATE, last_checkpoint
from lerobot_diffrl.rl.metrics_log import read_metrics
from lerobot_diffrl.rl.passage_warmstart import passage_rl_config, pretrain_passage_policy
from lerobot_diffrl.scripts.rl import main


@pytest.fixture(scope="module")
def passage_bc(tmp_path_factory) -> Path:
    """A briefly BC-trained passage policy (quality does not matter here)."""
    torch.set_num_threads(1)
    return pretrain_passage_policy("diffrl", tmp_path_factory.mktemp("bc") / "diffrl", steps=100, seed=0)


def _quick_config(ckpt: Path, run: Path, iterations: int, tmp: Path, save_freq: int = 1, **eval_kw) -> Path:
    cfg = passage_rl_config(
        ckpt, run, iterations=iterations, seed=0, eval_episodes=eval_kw.get("episodes", 0)
    )
    cfg.env.n_envs = 8
    cfg.ppo.n_steps = 5
    cfg.ppo.batch_size = 40
    cfg.ppo.update_epochs = 2
    cfg.save_freq = save_freq
    return write_config(cfg, tmp / f"rl_{run.name}.json")


def test_checkpoint_layout_and_resume_continue_the_run(passage_bc: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    assert main([f"--config_path={_quick_config(passage_bc, run, 2, tmp_path)}"]) == 0
    ckpt = last_checkpoint(run)
    assert ckpt is not None and ckpt.name == "000002"
    model = ckpt / PRETRAINED
    for name in (
        "config.json",
        "model.safetensors",
        "README.md",
        "train_config.json",
        "policy_preprocessor.json",
        "policy_postprocessor.json",
    ):
        assert (model / name).is_file(), name
    state = ckpt / TRAINING_STATE
    progress = json.loads((state / "progress.json").read_text())
    assert progress["iteration"] == 2 and progress["env_steps"] > 0
    assert progress["reward_scaler"]["count"] > 1
    for name in (
        "actor/optimizer_state.safetensors",
        "critic/optimizer_state.safetensors",
        "rng_state.safetensors",
    ):
        assert (state / name).is_file(), name
    assert (state / "actor_scheduler" / "scheduler_state.json").is_file()
    # an RL checkpoint is a plain policy folder: it loads with from_pretrained, frozen base included
    from lerobot_diffrl.policies.diffrl.modeling_diffrl import DiffRLPolicy

    policy = DiffRLPolicy.from_pretrained(model)
    assert policy.config.rl_frozen_base is False  # K' == DDIM steps for the passage policy: no frozen copy
    assert policy.config.use_ema is False

    capsys.readouterr()
    assert main([f"--output_dir={run}", "--resume=true", "--iterations=4"]) == 0
    records = [r for r in read_metrics(run) if r["event"] == "train"]
    assert [r["iteration"] for r in records] == [1, 2, 3, 4]
    assert records[2]["env_steps"] > records[1]["env_steps"]
    resumed = json.loads((last_checkpoint(run) / TRAINING_STATE / "progress.json").read_text())
    assert resumed["iteration"] == 4
    assert resumed["reward_scaler"]["count"] > progress["reward_scaler"]["count"]
    # the scheduler resumed at step 3 of the (now 4-iteration) cosine instead of restarting from the peak
    peak, floor = 3e-4, 3e-5
    assert records[0]["actor_lr"] == pytest.approx(peak)
    assert records[3]["actor_lr"] == pytest.approx(
        floor + (peak - floor) * 0.5 * (1 + math.cos(math.pi * 3 / 4))
    )


def _spawn(config: Path, *extra: str) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    return subprocess.Popen(
        [sys.executable, "-m", "lerobot_diffrl.scripts.rl", f"--config_path={config}", *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A command started from a terminal has Ctrl-C's default disposition; a test suite run in the background
        # of a non-interactive shell inherits SIGINT ignored, so restore the default for the child.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _progress(run: Path) -> dict:
    """The progress record of the run's last checkpoint."""
    return json.loads((last_checkpoint(run) / TRAINING_STATE / "progress.json").read_text())


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.2)


@pytest.mark.slow
def test_ctrl_c_writes_a_checkpoint_and_exits_cleanly(passage_bc: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    proc = _spawn(_quick_config(passage_bc, run, 1000, tmp_path))
    _wait_for(run / "checkpoints" / "000001", proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "checkpoint of iteration" in err and "--resume=true" in err
    last = last_checkpoint(run)
    progress = json.loads((last / TRAINING_STATE / "progress.json").read_text())
    assert progress["iteration"] >= 1 and int(last.name) == progress["iteration"]
    assert not list((run / "checkpoints").glob(".tmp-*"))


@pytest.mark.slow
def test_sigterm_after_three_iterations_writes_a_checkpoint_and_resume_finishes(
    passage_bc: Path, tmp_path: Path
) -> None:
    """Preemption (SLURM, Kubernetes, Ray send SIGTERM) between periodic checkpoints (save_freq 5) keeps the work."""
    run = tmp_path / "run"
    config = _quick_config(passage_bc, run, 40, tmp_path, save_freq=5)
    proc = _spawn(config)
    deadline = time.monotonic() + 240
    while len([r for r in read_metrics(run) if "policy_loss" in r or "value_loss" in r]) < 3:
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.monotonic() < deadline, "three iterations never finished"
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-2000:]
    assert "checkpoint of iteration" in err and "terminated" in err
    stopped = _progress(run)["iteration"]
    assert 3 <= stopped < 40  # saved at the signal, not only at the periodic saves or the end
    resumed = _spawn(config, "--resume=true")
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err[-2000:]
    assert _progress(run)["iteration"] == 40


@pytest.mark.slow
def test_sigkill_never_leaves_a_corrupt_checkpoint_and_resume_recovers(
    passage_bc: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    config = _quick_config(passage_bc, run, 1000, tmp_path)
    proc = _spawn(config)
    _wait_for(run / "checkpoints" / "000002", proc)
    time.sleep(0.3)  # land the kill at an arbitrary point, possibly mid-save
    proc.kill()
    proc.communicate(timeout=60)
    last = last_checkpoint(run)
    done = int(last.name)
    assert done >= 2
    for ckpt in (run / "checkpoints").iterdir():
        if ckpt.name.startswith((".tmp", "last")):
            continue
        assert (ckpt / PRETRAINED / "model.safetensors").is_file()
        assert (ckpt / TRAINING_STATE / "progress.json").is_file()
    resumed = _spawn(config, f"--output_dir={run}", "--resume=true", f"--iterations={done + 1}")
    _, err = resumed.communicate(timeout=240)
    assert resumed.returncode == 0, err[-2000:]
    assert int(last_checkpoint(run).name) == done + 1
    assert not list((run / "checkpoints").glob(".tmp-*"))


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err, "expected an error line"
    return err[-1]


def test_bad_input_gets_one_clear_message_and_writes_nothing(
    passage_bc: Path, tmp_path: Path, capsys
) -> None:
    from lerobot.policies.diffusion.configuration_diffusion import DiffusionConfig

    foreign = tmp_path / "diffusion"
    foreign.mkdir()
    DiffusionConfig(device="cpu", push_to_hub=False)._save_pretrained(foreign)
    out = tmp_path / "out"
    base = ["--env.kind=passage", f"--output_dir={out}", "--device=cpu"]

    assert main([f"--policy_path={foreign}", *base]) == 2
    assert "holds a 'diffusion' policy" in _error(capsys)

    libero7 = tiny_libero_checkpoint(tmp_path / "libero7", env_state_dim=None)
    assert main([f"--policy_path={libero7}", *base]) == 2
    assert "7-d actions but the env takes 2-d" in _error(capsys)

    assert main([f"--policy_path={passage_bc}", *base, "--env.n_envs=0"]) == 2
    assert "n_envs must be >= 1" in _error(capsys)

    assert main([f"--policy_path={tmp_path / 'missing'}", *base]) == 2
    assert "not a policy checkpoint" in _error(capsys)

    assert main([f"--output_dir={tmp_path / 'never_trained'}", "--resume=true"]) == 2
    assert "cannot resume" in _error(capsys)

    (tmp_path / "half" / "checkpoints" / "000001" / PRETRAINED).mkdir(parents=True)
    (tmp_path / "half" / "checkpoints" / "last").symlink_to("000001")
    assert main([f"--output_dir={tmp_path / 'half'}", "--resume=true"]) == 2
    assert "training state incomplete" in _error(capsys)

    image_policy = tiny_libero_checkpoint(tmp_path / "pixels", image_size=32, env_state_dim=None)
    assert main([f"--policy_path={image_policy}", "--env.obs_mode=state", f"--output_dir={out}"]) == 2
    assert "uses camera images" in _error(capsys)

    assert not out.exists()  # nothing was written by any failed start
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("x")
    assert main([f"--policy_path={passage_bc}", "--env.kind=passage", f"--output_dir={existing}"]) == 2
    assert "already exists" in _error(capsys)
    assert [p.name for p in existing.iterdir()] == ["keep.txt"]

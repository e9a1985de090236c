"""hfvla through LeRobot's own CLIs, for every backbone: ``accelerate launch lerobot-train`` (DDP, two CPU
processes), checkpoint reload, ``lerobot-eval`` of a short LIBERO episode; and bad input (mismatched features, base
model offline)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import KINDS
from tiny_vlm import TASKS, write_tiny_vla_dataset

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
STEPS = 60  # training is ~3 s of each ~60 s run (19 steps/s); enough steps that every family's fall is well past the noise

#: One configuration per model family, together covering full fine-tuning and LoRA, frozen vision, one and
#: two cameras, action chunking, the state prompt, and both checkpoint modes.
CASES = {
    "idefics3": ["--policy.use_lora=false", "--policy.optimizer_lr=1e-3"],
    "paligemma": [
        "--policy.freeze_vision=true",
        "--policy.optimizer_lr=1e-2",
        "--policy.image_keys=[observation.images.image,observation.images.image2]",
        "--policy.chunk_size=2",
        "--policy.n_action_steps=2",
    ],
    "qwen2_5_vl": [
        "--policy.use_state=true",
        "--policy.checkpoint_weights=trainable",
        "--policy.optimizer_lr=1e-2",
    ],
}


def _env(**extra: str) -> dict[str, str]:
    # One intra-op thread per process: two DDP processes share two cores.
    return dict(
        os.environ,
        HF_HUB_OFFLINE="1",
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        WANDB_MODE="disabled",
        TOKENIZERS_PARALLELISM="false",
        **extra,
    )


def _train_args(dataset: Path, vlm: Path, out: Path, steps: int = STEPS) -> list[str]:
    return [
        "--policy.type=hfvla",
        f"--policy.vlm_path={vlm}",
        "--dataset.repo_id=local/tiny_vla",
        f"--dataset.root={dataset}",
        "--policy.push_to_hub=false",
        "--policy.device=cpu",
        f"--steps={steps}",
        "--batch_size=2",
        f"--output_dir={out}",
        f"--save_freq={steps}",
        "--log_freq=1",
        "--num_workers=0",
        "--wandb.enable=false",
        "--env_eval_freq=0",
    ]


def _free_port() -> int:
    """A TCP port no one listens on now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _losses(log: str) -> list[float]:
    return [float(m.group(2)) for m in re.finditer(r"step:(\d+) .*?loss:([0-9.]+)", log)]


def _assert_one_error(proc: subprocess.CompletedProcess, message: str) -> None:
    """Non-zero exit, and the message once, as the last thing on stderr."""
    assert proc.returncode != 0
    assert proc.stderr.count(message) == 1, proc.stderr[-3000:]
    last = [line for line in proc.stderr.splitlines() if line.strip()][-1]
    assert last.endswith(message), last


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return write_tiny_vla_dataset(tmp_path_factory.mktemp("data") / "tiny_vla")


@pytest.mark.parametrize("kind", KINDS)
def test_accelerate_two_process_training_reload_and_eval(tiny_vlms, dataset, tmp_path, kind):
    from lerobot.policies.factory import make_pre_post_processors

    from lerobot_diffrl.policies.hfvla.modeling_hfvla import HFVLAPolicy

    out = tmp_path / "train"
    cmd = [
        str(BIN / "accelerate"),
        "launch",
        # --multi_gpu makes accelerate spawn the processes through torch.distributed.run; on a machine without
        # GPUs, and with --policy.device=cpu, lerobot-train's Accelerator then runs DDP over gloo. (With --cpu,
        # accelerate's simple launcher starts a single process whatever --num_processes says.)
        "--multi_gpu",
        "--num_processes=2",
        "--num_machines=1",
        # A port of our own: two DDP runs on torch's default 29500 (another test, another job on the machine)
        # join each other's rendezvous and hang.
        f"--main_process_port={_free_port()}",
        "--mixed_precision=no",
        "--dynamo_backend=no",
        str(BIN / "lerobot-train"),
        *_train_args(dataset, tiny_vlms[kind], out),
        *CASES[kind],
    ]
    run = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=600)
    log = run.stdout + run.stderr
    assert run.returncode == 0, log[-4000:]
    assert "Effective batch size: 2 x 2 = 4" in log  # two DDP processes, batch 2 each
    losses = _losses(log)
    assert len(losses) == STEPS, log[-2000:]
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < first - 0.3, [losses, log[-1500:]]

    ckpt = out / "checkpoints" / f"{STEPS:06d}" / "pretrained_model"
    policy = HFVLAPolicy.from_pretrained(ckpt)
    assert policy.config.trained_action_dim == 7
    assert policy.config.dataset_repo_id == "local/tiny_vla"
    assert policy.config.vlm_path == str(tiny_vlms[kind])
    assert policy.config.use_lora == (kind != "idefics3")
    if kind != "paligemma":  # unset image_keys: LIBERO's first camera, the third-person view (OpenVLA)
        assert policy.config.image_keys == ["observation.images.image"]
    pre, post = make_pre_post_processors(policy.config, pretrained_path=str(ckpt))
    observation = {  # what lerobot-eval feeds after the env processor: 128x128 cameras, 8-d state, the task
        "observation.images.image": torch.rand(3, 128, 128),
        "observation.images.image2": torch.rand(3, 128, 128),
        "observation.state": torch.zeros(8),
        "task": TASKS[0],
    }
    action = post(policy.select_action(pre(observation)))
    stats = json.loads((dataset / "meta" / "stats.json").read_text())["action"]
    q01, q99 = torch.tensor(stats["q01"]), torch.tensor(stats["q99"])
    assert action.shape == (1, 7)
    assert (
        (action >= q01 - 1e-4) & (action <= q99 + 1e-4)
    ).all()  # decoded bin centres lie inside [q01, q99]

    _assert_libero_episode_runs(ckpt, tmp_path / "eval")


def _assert_libero_episode_runs(ckpt: Path, eval_dir: Path) -> None:
    """One short LIBERO episode with lerobot-eval on the project's env type (128x128 renders, two cameras, the
    8-d state): the checkpoint reloads in a fresh process and drives the simulator."""
    proc = subprocess.run(
        [
            str(BIN / "lerobot-eval"),
            f"--policy.path={ckpt}",
            "--env.type=diffrl_env",
            "--env.task=libero_object",
            "--env.task_ids=[0]",
            "--env.episode_length=8",
            "--eval.batch_size=1",
            "--eval.n_episodes=1",
            "--policy.device=cpu",
            f"--output_dir={eval_dir}",
        ],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=600,
    )
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
    info = json.loads((eval_dir / "eval_info.json").read_text())
    assert info["overall"]["n_episodes"] == 1
    assert info["per_task"][0]["metrics"]["successes"] == [False]  # 8 steps cannot solve a LIBERO task


def test_bad_input_is_refused_with_one_message_and_no_checkpoint(tiny_vlms, dataset, tmp_path):
    """A dataset without the camera the policy is told to read, and a base model that is not downloaded while
    offline. Both lerobot-train runs go concurrently (each is mostly LeRobot's start-up). (Unset, image_keys
    would take the wrist-only dataset's one camera.)"""
    wrist_only = write_tiny_vla_dataset(tmp_path / "wrist_only", episodes=1, frames=4, cameras=("image2",))
    repo = "HuggingFaceTB/SmolVLM-256M-Instruct"
    cases = {
        "camera": (
            [
                *_train_args(wrist_only, tiny_vlms["idefics3"], tmp_path / "camera", steps=2),
                "--policy.image_keys=[observation.images.image]",
            ],
            _env(),
            "hfvla needs camera(s) observation.images.image but the dataset/environment has "
            "observation.images.image2; set --policy.image_keys.",
        ),
        "offline": (
            _train_args(dataset, Path(repo), tmp_path / "offline", steps=2),
            _env(HF_HOME=str(tmp_path / "empty_hf_home")),
            f"base model {repo} is not available offline; download it first with hf download {repo}",
        ),
    }
    procs = {
        name: subprocess.Popen(
            [str(BIN / "lerobot-train"), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for name, (args, env, _) in cases.items()
    }
    for name, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=600)
        done = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
        _assert_one_error(done, cases[name][2])
        assert not (tmp_path / name / "checkpoints").exists()

"""In-memory state BC (``lerobot-diffrl-train-state``): lerobot-train's samples, its checkpoint, its errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "recipes"))
from tiny_models import write_tiny_libero_dataset  # noqa: E402

import lerobot_diffrl.policies  # noqa: E402, F401
from lerobot_diffrl.data.state_bc import _chunk_tables, _load_columns  # noqa: E402

CAMERAS = ["observation.images.image", "observation.images.image2"]


@pytest.fixture(scope="module")
def state_dataset(tmp_path_factory) -> Path:
    from lerobot.datasets.dataset_tools import remove_feature
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    root = tmp_path_factory.mktemp("state_bc")
    full = write_tiny_libero_dataset(root / "full", episodes=3, frames=20, env_state_dim=6)
    remove_feature(
        LeRobotDataset("local/tiny_libero", root=full),
        CAMERAS,
        output_dir=root / "state",
        repo_id="local/state",
    )
    return root / "state"


def test_samples_are_the_chunks_lerobot_train_draws(state_dataset: Path) -> None:
    """Every sample's action chunk equals LeRobotDataset's delta-timestamp query for the same frame (padding
    repeats the episode's last action), and the last drop_n_last_frames frames of each episode are skipped."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    horizon, drop = 16, 8
    ds = LeRobotDataset(
        "local/state", root=state_dataset, delta_timestamps={"action": [i / 20 for i in range(horizon)]}
    )
    keys = ["observation.state", "observation.environment_state"]
    data = _chunk_tables(_load_columns(ds), keys, horizon, drop)
    assert len(data["action"]) == 3 * (20 - drop)
    for sample, frame in ((0, 0), (5, 5), (12, 20), (23, 31)):  # frame 20 is episode 1's first
        item = ds[frame]
        torch.testing.assert_close(data["action"][sample], item["action"])
        torch.testing.assert_close(
            data["observation.environment_state"][sample], item["observation.environment_state"]
        )


def test_cli_writes_a_lerobot_train_checkpoint_that_learns(state_dataset: Path, tmp_path: Path) -> None:
    from lerobot.policies.factory import get_policy_class

    out = tmp_path / "bc"
    args = [
        "--policy.type=diffrl",
        "--policy.use_images=false",
        "--policy.denoiser=mlp",
        "--policy.num_train_timesteps=20",
        "--policy.optimizer_lr=1e-3",
        "--policy.scheduler_warmup_steps=20",
        "--policy.push_to_hub=false",
        "--dataset.repo_id=local/state",
        f"--dataset.root={state_dataset}",
        f"--output_dir={out}",
        "--steps=300",
        "--batch_size=32",
        "--seed=0",
    ]
    proc = subprocess.run(
        [sys.executable, "-m", "lerobot_diffrl.scripts.train_state", *args], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    last = out / "checkpoints" / "last"
    assert (last / "training_state" / "optimizer_state.safetensors").is_file()
    train_cfg = json.loads((last / "pretrained_model" / "train_config.json").read_text())
    assert train_cfg["steps"] == 300 and train_cfg["policy"]["type"] == "diffrl"
    policy = get_policy_class("diffrl").from_pretrained(last / "pretrained_model")
    assert set(policy.config.input_features) == {"observation.state", "observation.environment_state"}
    # the fitted denoiser beats the untrained one on the dataset's own chunks
    from lerobot.datasets.lerobot_dataset import LeRobotDataset
    from lerobot.policies.factory import make_pre_post_processors

    ds = LeRobotDataset(
        "local/state", root=state_dataset, delta_timestamps={"action": [i / 20 for i in range(16)]}
    )
    pre, _ = make_pre_post_processors(policy.config, pretrained_path=str(last / "pretrained_model"))
    items = [ds[i] for i in range(0, 36, 3)]
    batch = {
        k: torch.stack([it[k] for it in items])
        for k in ("observation.state", "observation.environment_state")
    }
    actions = torch.stack([it["action"] for it in items])
    batch["action"] = actions.reshape(-1, 7)
    batch = pre({**batch, "task": [it["task"] for it in items]})
    batch["action"] = batch["action"].reshape(actions.shape)
    fresh = get_policy_class("diffrl")(policy.config)
    torch.manual_seed(0)
    trained_loss = np.mean([policy.forward(batch)[0].item() for _ in range(20)])
    torch.manual_seed(0)
    fresh_loss = np.mean([fresh.forward(batch)[0].item() for _ in range(20)])
    assert trained_loss < 0.5 * fresh_loss


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--policy.use_images=true"], "trains a state policy"),
        (["--steps=0"], "steps"),
        (["--dataset.root=/nonexistent/demos"], "does not exist"),
    ],
)
def test_bad_input_is_one_error_line(
    state_dataset: Path, tmp_path: Path, extra: list[str], message: str
) -> None:
    args = [
        "--policy.type=diffrl",
        "--policy.use_images=false",
        "--policy.push_to_hub=false",
        "--dataset.repo_id=local/state",
        f"--dataset.root={state_dataset}",
        f"--output_dir={tmp_path / 'bc'}",
        *extra,
    ]
    proc = subprocess.run(
        [sys.executable, "-m", "lerobot_diffrl.scripts.train_state", *args], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error:") and message in proc.stderr
    assert not (tmp_path / "bc").exists()


def test_a_dataset_with_cameras_is_refused(tmp_path: Path) -> None:
    full = write_tiny_libero_dataset(tmp_path / "full", episodes=1, frames=12)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "lerobot_diffrl.scripts.train_state",
            "--policy.type=diffrl",
            "--policy.use_images=false",
            "--policy.push_to_hub=false",
            "--dataset.repo_id=local/tiny_libero",
            f"--dataset.root={full}",
            f"--output_dir={tmp_path / 'bc'}",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "strip the dataset's cameras" in proc.stderr
    assert not (tmp_path / "bc").exists()

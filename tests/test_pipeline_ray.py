"""The pipeline on a local Ray cluster (127.0.0.1): two expert groups at once, sharded generation, a killed worker.

Each run is the real chain on LIBERO, kept small: scripted demos of two libero_object tasks (20 steps each), a
state ``diffrl`` expert per task (50 BC steps), one DPPO iteration, and two generated episodes per task (in two
shards on Ray). The serial run of the same recipe is the reference: the Ray run must make the same experts and the
same episodes, only at once.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
pytest.importorskip("ray", reason="the Ray launcher's tests need the [ray] extra (setup.sh installs it)")

TWO_GROUPS = [
    '--tasks=["libero_object:0,1"]',
    "--stages=[demos,bc,rl,generate]",
    "--bc.per_task=true",
    "--demos.episodes_per_task=2",
    "--demos.args=[--image_size=32,--n_envs=2,--record_env_state=true,--keep=all,--max_steps=20]",
    "--bc.args=[--steps=50,--policy.use_images=false,--policy.denoiser=mlp,--policy.num_train_timesteps=20,"
    "--policy.ddim_steps=10,--policy.ft_denoising_steps=10,--batch_size=16,--num_workers=0,--log_freq=25]",
    "--rl.args=[--iterations=1,--env.n_envs=2,--env.obs_mode=state,--ppo.n_steps=2,--eval.freq=0,"
    "--eval.episodes_per_task=1,--eval.seed=0,--save_freq=1,--torch_threads=1]",
    "--generate.episodes_per_task=2",
    "--generate.args=[--keep=all,--image_size=32,--n_envs=1,--max_steps=10]",
]
GROUPS = ("libero_object_task00", "libero_object_task01")


def _env() -> dict[str, str]:
    return dict(
        os.environ,
        HF_HUB_OFFLINE="1",
        OMP_NUM_THREADS="1",
        WANDB_MODE="disabled",
        RAY_USAGE_STATS_ENABLED="0",
    )


def _pipeline(*args: str, timeout: int = 1200) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lerobot_diffrl.scripts.pipeline", *args],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=REPO,
        timeout=timeout,
    )


def _marker(run: Path, stage: str, group: str) -> dict:
    return json.loads((run / "stages" / stage / f"{group}.json").read_text())


def _episodes(root: Path) -> dict[tuple[int, int], dict[str, np.ndarray]]:
    """Each episode of a generated dataset by (task id, attempt): its actions and robot states."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    provenance = json.loads((root / "meta" / "provenance.json").read_text())
    frames = LeRobotDataset("local/check", root=root).hf_dataset.with_format("numpy")
    index = np.asarray(frames["episode_index"])
    out = {}
    for ep in provenance["episodes"]:
        rows = np.flatnonzero(index == ep["episode_index"])
        out[(ep["task_id"], ep["attempt"])] = {
            key: np.stack([frames[int(i)][key] for i in rows]) for key in ("action", "observation.state")
        }
    return out


def _overlap(a: dict, b: dict) -> bool:
    return a["started_at"] < b["finished_at"] and b["started_at"] < a["finished_at"]


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_two_groups_run_at_once_on_ray_and_make_what_the_serial_run_makes(tmp_path: Path) -> None:
    serial, on_ray = tmp_path / "serial", tmp_path / "ray"
    first = _pipeline(f"--output_dir={serial}", "--launcher.type=serial", *TWO_GROUPS)
    assert first.returncode == 0, first.stderr[-4000:]
    second = _pipeline(f"--output_dir={on_ray}", "--launcher.type=ray", "--generate.shards=2", *TWO_GROUPS)
    assert second.returncode == 0, second.stderr[-4000:]

    rl = {run: [_marker(run, "rl", g) for g in GROUPS] for run in (serial, on_ray)}
    assert _overlap(*rl[on_ray]), rl[on_ray]  # the two experts' RL ran at the same time
    assert not _overlap(*rl[serial])
    assert all(m["launcher"] == "ray" and m["attempts"] == 1 for m in rl[on_ray])
    assert "rl 0/2 (2 running)" in second.stderr  # the console counts each stage's running jobs
    for a, b in zip(rl[serial], rl[on_ray], strict=True):  # the same experts: same figures
        keys = ("iterations", "env_steps", "success_before", "success_after", "ci95_after")
        assert {k: a["figures"][k] for k in keys} == {k: b["figures"][k] for k in keys}

    # generation: two shards per group on Ray, one job per group serially; the same episodes either way
    shards = sorted(p.name for p in (on_ray / "stages" / "generate" / GROUPS[0]).iterdir())
    assert shards == ["shard-000-of-002.json", "shard-001-of-002.json"]
    expected, got = _episodes(serial / "dataset"), _episodes(on_ray / "dataset")
    assert sorted(got) == sorted(expected) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    for key, episode in expected.items():
        for column, values in episode.items():
            np.testing.assert_array_equal(got[key][column], values, err_msg=f"{key} {column}")
    merged = json.loads((on_ray / "dataset" / "meta" / "info.json").read_text())
    assert merged["total_episodes"] == 4 and merged["total_frames"] == 40


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_a_killed_ray_worker_is_retried_and_its_job_resumes(tmp_path: Path) -> None:
    """SIGKILL to the Ray worker running the demos job once an episode is committed: the scheduler starts the job
    again with ``--resume=true``, which keeps the committed episodes, and the stage ends with exactly 4."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from lerobot_diffrl.data.generation import work_dir
    from lerobot_diffrl.data.staging import EPISODE_FILE, EPISODES_DIR, TMP_PREFIX

    out = tmp_path / "run"
    args = [
        f"--output_dir={out}",
        "--stages=[demos]",
        '--tasks=["libero_object:0,1"]',
        "--demos.episodes_per_task=2",
        "--demos.args=[--image_size=32,--n_envs=1,--keep=all,--max_steps=40]",
        "--launcher.type=ray",
        "--launcher.max_retries=1",
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "lerobot_diffrl.scripts.pipeline", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=_env(),
        cwd=REPO,
        text=True,
    )
    log = out / "logs" / "demos-libero_object.log"
    committed = f"*/staging/{EPISODES_DIR}/[!{TMP_PREFIX[0]}]*/{EPISODE_FILE}"
    deadline, worker = time.monotonic() + 600, None
    while time.monotonic() < deadline and proc.poll() is None:
        found = re.search(r"\[ray\] worker pid (\d+)", log.read_text()) if log.is_file() else None
        if found and any(work_dir(out / "demos" / "libero_object").glob(committed)):
            worker = int(found.group(1))
            break
        time.sleep(0.2)
    assert worker is not None, "the job ended before its worker could be killed"
    os.kill(worker, signal.SIGKILL)
    output, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, output[-4000:]
    assert "worker lost (WorkerCrashedError" in output and "starting it again with its resume" in output

    marker = json.loads((out / "stages" / "demos" / "libero_object.json").read_text())
    assert marker["attempts"] == 2 and marker["launcher"] == "ray"
    runs = log.read_text(errors="replace").split("\n$ ")[1:]
    assert len(runs) == 2 and "--resume=true" in runs[1].splitlines()[0]
    finished = re.search(r"resume: (\d+) attempts already finished", runs[1])
    assert finished and int(finished.group(1)) >= 1, runs[1][-2000:]
    assert LeRobotDataset("local/demos", root=out / "demos" / "libero_object").num_episodes == 4

"""A generation killed with SIGKILL mid-run and started again with --resume ends with exactly its episodes."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from gen_helpers import BIN, cli_env, save_tiny_policy

from lerobot_diffrl.data.generation import work_dir
from lerobot_diffrl.data.staging import TMP_PREFIX
from lerobot_diffrl.scripts import generate as generate_cli

TASKS, PER_TASK, STEPS = (0, 1), 3, 6


def committed(episodes_dir: Path) -> list[str]:
    if not episodes_dir.is_dir():
        return []
    return sorted(p.name for p in episodes_dir.iterdir() if not p.name.startswith(TMP_PREFIX))


def group_alive(pgid: int) -> list[int]:
    """Live (not zombie) processes of a process group, from /proc."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            alive.append(int(stat.parent.name))
    return alive


@pytest.mark.slow
def test_sigkill_then_resume_yields_exactly_the_target_episodes(tmp_path: Path, caplog) -> None:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ckpt = save_tiny_policy(tmp_path / "ckpt")
    out = tmp_path / "ds"
    cmd = [
        str(BIN / "lerobot-diffrl-generate"),
        "--suite=libero_object",
        f"--task_ids={','.join(map(str, TASKS))}",
        f"--episodes_per_task={PER_TASK}",
        "--keep=all",
        f"--max_steps={STEPS}",
        "--image_size=32",
        "--n_envs=2",
        "--actor.type=diffrl",
        f"--actor.path={ckpt}",
        "--actor.device=cpu",
        f"--output_dir={out}",
        "--progress=false",
    ]
    episodes_dir = work_dir(out) / "shard-000-of-001" / "staging" / "episodes"
    log = open(tmp_path / "first.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=cli_env(), start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while len(committed(episodes_dir)) < 2:
            assert proc.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "no episode committed within 10 minutes"
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGKILL)  # the CLI, its forkserver and its simulator workers
    finally:
        proc.wait(timeout=60)
        log.close()
    deadline = time.monotonic() + 30
    while group_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not group_alive(proc.pid)  # nothing of the killed run survives (workers included)
    at_kill = committed(episodes_dir)
    assert 2 <= len(at_kill) < len(TASKS) * PER_TASK, at_kill
    assert not out.exists()

    with caplog.at_level(logging.INFO, logger="lerobot_diffrl.data.generation"):
        assert generate_cli.main([*cmd[1:], "--resume=true"]) == 0  # the resumed run, in-process
    assert f"resume: {len(at_kill)} attempts already finished" in caplog.text
    assert not work_dir(out).exists()

    ds = LeRobotDataset("local/ds", root=out)
    n = len(TASKS) * PER_TASK
    eps = ds.meta.episodes
    assert ds.num_episodes == n and eps["episode_index"] == list(range(n))
    assert eps["length"] == [STEPS] * n and ds.num_frames == n * STEPS  # keep=all, nobody succeeds in 6 steps
    assert eps["dataset_from_index"] == [STEPS * i for i in range(n)]
    assert eps["dataset_to_index"] == [STEPS * (i + 1) for i in range(n)]
    for key in ds.meta.video_keys:  # consecutive, non-overlapping spans in the joined videos
        start, end = eps[f"videos/{key}/from_timestamp"], eps[f"videos/{key}/to_timestamp"]
        np.testing.assert_allclose(start[1:], end[:-1], atol=1e-6)
    frame_index = []
    for i in range(ds.num_frames):  # every frame decodes
        item = ds[i]
        assert item["observation.images.image"].shape == (3, 32, 32)
        assert item["observation.images.image2"].shape == (3, 32, 32)
        frame_index.append(int(item["frame_index"]))
    assert frame_index == list(range(STEPS)) * n

    prov = json.loads((out / "meta" / "provenance.json").read_text())
    for task_id in TASKS:
        attempts = sorted(e["attempt"] for e in prov["episodes"] if e["task_id"] == task_id)
        assert attempts == list(range(PER_TASK))  # each planned attempt exactly once, none repeated
        entry = prov["per_task"][f"libero_object/{task_id}"]
        assert (entry["attempts"], entry["kept"]) == (PER_TASK, PER_TASK)

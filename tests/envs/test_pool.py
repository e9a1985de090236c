"""The worker pool: layout, auto-reset, truncation, init states, fault tolerance, clean shutdown."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from lerobot_diffrl.envs.pool import EnvPool, SlotSpec

pytestmark = pytest.mark.slow


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def wait_gone(pids: list[int], timeout_s: float = 10.0) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.1)
    return [p for p in pids if alive(p)]


@pytest.fixture(scope="module")
def state_pool():
    """Two slots of two suites in two workers; short episodes so truncation is cheap to reach."""
    pool = EnvPool(
        [SlotSpec("libero_object", 0, max_steps=4), SlotSpec("libero_spatial", 1, max_steps=6)],
        obs_mode="state",
        seed=3,
        step_timeout_s=30,
        n_workers=2,
    )
    yield pool
    pids = pool.worker_pids()
    pool.close()
    assert wait_gone(pids) == []


def test_state_layout_and_auto_reset(state_pool: EnvPool) -> None:
    obs, info = state_pool.reset(seed=3)
    assert obs["agent_pos"].shape == (2, 8) and obs["agent_pos"].dtype == np.float32
    assert obs["robot_state"].shape == (2, 34) and obs["object_state"].shape == (2, 256)
    assert "pixels" not in obs
    assert info["init_index"].tolist() == [3, 3]  # seed offset, first of each task
    ends = {0: [], 1: []}
    for step in range(1, 13):
        obs, reward, terminated, truncated, info = state_pool.step(np.zeros((2, 7)))
        assert not terminated.any() and (reward == 0).all()
        for slot, limit in ((0, 4), (1, 6)):
            assert truncated[slot] == (step % limit == 0), (step, slot)
            if truncated[slot]:
                final = info["final_info"][slot]
                assert final["elapsed_steps"] == limit and not final["is_success"] and not final["aborted"]
                assert info["TimeLimit.truncated"][slot]
                ends[slot].append((final["init_index"], int(info["init_index"][slot])))
                # the final obs is the truncated episode's last, the returned obs the next episode's first
                assert not np.allclose(info["final_obs"]["robot_state"][slot], obs["robot_state"][slot])
    # one slot per task: init states advance 3 -> 4 -> 5 -> 6 deterministically
    assert ends[0] == [(3, 4), (4, 5), (5, 6)]
    assert ends[1] == [(3, 4), (4, 5)]


def test_sigkill_mid_episode_is_reported_aborted_and_slot_recovers(state_pool: EnvPool) -> None:
    state_pool.reset(seed=0)
    state_pool.step(np.zeros((2, 7)))
    victim = state_pool.worker_pids()[0]
    os.kill(victim, signal.SIGKILL)
    obs, reward, terminated, truncated, info = state_pool.step(np.zeros((2, 7)))
    assert info["aborted"].tolist() == [True, False]
    assert truncated[0] and not terminated[0] and not info["is_success"][0] and reward[0] == 0.0
    assert info["final_info"][0]["aborted"] is True and info["final_info"][0]["is_success"] is False
    assert info["final_info"][1] is None and info["elapsed_steps"][1] == 2  # the other slot kept its episode
    assert info["init_index"][0] == 1  # the next init state of slot 0, the aborted one used state 0
    assert not alive(victim) and state_pool.worker_pids()[0] != victim
    obs, *_, info = state_pool.step(np.zeros((2, 7)))  # the restarted worker serves again
    assert not info["aborted"].any() and info["elapsed_steps"].tolist() == [1, 3]


def test_hang_is_detected_by_timeout(state_pool: EnvPool) -> None:
    state_pool.reset(seed=0)
    state_pool.inject_fault(1, "hang")
    hung = state_pool.worker_pids()[1]
    state_pool.step_timeout_s = 3.0
    try:
        start = time.monotonic()
        _, _, _, truncated, info = state_pool.step(np.zeros((2, 7)))
        assert time.monotonic() - start < 60
        assert info["aborted"].tolist() == [False, True] and truncated[1]
        assert state_pool.restarts >= 1 and not alive(hung)
        _, _, _, _, info = state_pool.step(np.zeros((2, 7)))
        assert not info["aborted"].any()
    finally:
        state_pool.step_timeout_s = 30.0


def test_pixel_pool_renders_only_requested_frames() -> None:
    with EnvPool(
        [SlotSpec("libero_object", 2)] * 2, obs_mode="pixels_state", image_size=(64, 64), n_workers=1
    ) as pool:
        assert len(pool.worker_pids()) == 1  # one worker hosting both slots
        obs, info = pool.reset(seed=0)
        assert obs["pixels"]["image"].shape == (2, 64, 64, 3) and obs["pixels"]["image2"].dtype == np.uint8
        assert info["rendered"].all() and info["init_index"].tolist() == [0, 1]
        first = obs["pixels"]["image"].copy()
        action = np.tile([0.5, 0, 0, 0, 0, 0, -1.0], (2, 1))
        obs, *_, info = pool.step(action, render=[True, False])
        assert info["rendered"].tolist() == [True, False]
        assert not np.array_equal(obs["pixels"]["image"][0], first[0])  # fresh frame: the arm moved
        np.testing.assert_array_equal(obs["pixels"]["image"][1], first[1])  # not rendered: previous frame
        pool.set_render(False)
        _, *_, info = pool.step(action)
        assert not info["rendered"].any()


def test_ctrl_c_leaves_no_process_behind(tmp_path) -> None:
    script = tmp_path / "run_pool.py"
    script.write_text(
        textwrap.dedent("""
        import sys, numpy as np
        from lerobot_diffrl.envs.pool import EnvPool, SlotSpec
        if __name__ == "__main__":
            with EnvPool([SlotSpec("libero_object", 0), SlotSpec("libero_object", 1)], obs_mode="state", n_workers=2) as pool:
                pool.reset(seed=0)
                print("PIDS", *pool.worker_pids(), flush=True)
                while True:
                    pool.step(np.zeros((2, 7)))
    """)
    )
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
        # as from a terminal: a suite run in a background shell would hand the child SIGINT ignored
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        line = ""
        while not line.startswith("PIDS"):
            line = proc.stdout.readline()
            assert line or proc.poll() is None, "the pool script ended before starting its workers"
        pids = [int(p) for p in line.split()[1:]]
        assert len(pids) == 2 and all(alive(p) for p in pids)
        time.sleep(1.0)
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in a terminal: the whole process group
        proc.wait(timeout=60)
        assert wait_gone(pids) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

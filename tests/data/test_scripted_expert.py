"""The privileged-state scripted expert: coverage, clear errors, geometry helpers, and real LIBERO episodes
(success, episode length, action bounds, determinism per seed)."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from lerobot_diffrl.data.expert_plans import finger_yaw, hand_clearance
from lerobot_diffrl.data.scripted_expert import (
    ScriptedExpert,
    Style,
    rotation_to_axis_angle,
    rotation_z,
)
from lerobot_diffrl.envs.pool import EnvPool, SlotSpec
from lerobot_diffrl.envs.suites import task_spec
from lerobot_diffrl.errors import ConfigError, UnknownTaskError

#: (slot, init state) pairs the episode test runs: the cream cheese (a flat box between taller neighbours)
#: and the bowl on the ramekin (tilted ~13 degrees), the two hardest cases of the calibration probe.
OBJECT_TASK, SPATIAL_TASK, INIT_STATE = SlotSpec("libero_object", 1), SlotSpec("libero_spatial", 5), 3


# -- coverage and errors (no simulator) ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("task", "covered"),
    [
        (SlotSpec("libero_object", 0), True),
        (SlotSpec("libero_spatial", 9), True),
        (("libero_goal", 8), True),
        (("libero_goal", 0), False),  # open a drawer: no pick-and-place
        (("libero_10", 0), False),
        (("no_such_suite", 0), False),
        ("libero_object", False),  # not a task at all
    ],
)
def test_supports(task, covered: bool) -> None:
    assert ScriptedExpert.supports(task) is covered


def test_supports_task_spec() -> None:
    assert ScriptedExpert.supports(task_spec("libero_object", 4))


def test_unsupported_task_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match=r"does not cover libero_goal task 0 .*open the middle drawer"):
        ScriptedExpert([SlotSpec("libero_goal", 0)])
    with pytest.raises(UnknownTaskError, match="unknown LIBERO suite"):
        ScriptedExpert([SlotSpec("libero_nope", 0)])
    with pytest.raises(UnknownTaskError, match="valid ids: 0..9"):
        ScriptedExpert([SlotSpec("libero_object", 12)])
    with pytest.raises(ConfigError, match="at least one slot"):
        ScriptedExpert([])


# -- geometry helpers ---------------------------------------------------------------------------------------
def test_axis_angle_of_rotations() -> None:
    np.testing.assert_allclose(rotation_to_axis_angle(rotation_z(0.3)), [0.0, 0.0, 0.3], atol=1e-12)
    np.testing.assert_allclose(rotation_to_axis_angle(np.eye(3)), np.zeros(3))
    half_turn = rotation_to_axis_angle(np.diag([1.0, -1.0, -1.0]))  # pi about x
    np.testing.assert_allclose(np.abs(half_turn), [math.pi, 0.0, 0.0], atol=1e-9)


def test_finger_yaw_is_the_symmetric_turn_nearest_home() -> None:
    assert finger_yaw(np.array([0.0, 1.0])) == pytest.approx(0.0)  # home: fingers close along world y
    assert finger_yaw(np.array([0.0, -1.0])) == pytest.approx(0.0)  # the gripper is symmetric
    assert abs(finger_yaw(np.array([1.0, 0.0]))) == pytest.approx(math.pi / 2)
    assert finger_yaw(np.array([1.0, 1.0])) == pytest.approx(-math.pi / 4)


def test_hand_clearance_sees_the_palm_and_fingers() -> None:
    tall = (np.array([-0.02, 0.08, 0.0]), np.array([0.02, 0.12, 0.15]))  # 8 cm away along the finger axis
    low = (np.array([-0.02, 0.08, 0.0]), np.array([0.02, 0.12, 0.01]))  # below the fingertips
    grasp = np.zeros(2)
    assert hand_clearance(grasp, 0.05, 0.0, [tall]) == 0.0  # the 21 cm palm reaches over it
    assert hand_clearance(grasp, 0.05, math.pi / 2, [tall]) > 0.04  # turned: the palm's narrow side
    assert hand_clearance(grasp, 0.05, 0.0, [low]) == 1.0  # nothing to hit
    assert hand_clearance(grasp, 0.05, 0.0, []) == 1.0


def test_style_draws_are_reproducible_and_bounded() -> None:
    from lerobot_diffrl.data.expert_plans import Grasp, Placement, TaskPlan

    plan = TaskPlan("s", 0, None, 0, Grasp("top"), Placement(1, (0.0, 0.0, 0.0), 0.0, 0.01))
    a = Style.draw(np.random.default_rng([0, 1, 2]), plan)
    b = Style.draw(np.random.default_rng([0, 1, 2]), plan)
    c = Style.draw(np.random.default_rng([1, 1, 2]), plan)
    assert a.gain == b.gain and np.array_equal(a.place_offset, b.place_offset) and a.pauses == b.pauses
    assert a.gain != c.gain
    for style in (a, c):
        assert 8.0 <= style.gain <= 12.0 and 0.7 <= style.speed <= 1.0
        assert np.linalg.norm(style.place_offset) <= 0.01  # well inside the 3 cm On() tolerance
        assert np.all(np.abs(style.grasp_offset) <= 0.004)


def test_bad_benchmark_arguments_exit_with_one_error_line(repo_root) -> None:
    script = repo_root / "benchmarks" / "scripted_expert_success.py"
    done = subprocess.run(
        [sys.executable, str(script), "--init_states", "9-3"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("error: --init_states must look like 0-49")


# -- real episodes ------------------------------------------------------------------------------------------
def run_episodes(pool: EnvPool, expert: ScriptedExpert, seed: int) -> dict:
    """One episode per slot from ``pool.reset(seed)``; records every observation, reset and action."""
    obs, infos = pool.reset(seed=seed)
    expert.reset(np.arange(pool.num_envs), obs, infos)
    record = {"obs": [], "resets": [], "actions": [], "final": {}}
    resets = np.arange(pool.num_envs)
    for _ in range(400):
        record["obs"].append(obs)
        record["resets"].append(resets)
        actions = expert.act(obs)
        record["actions"].append(actions)
        obs, _, _, _, infos = pool.step(actions)
        resets = np.flatnonzero(infos["_final"])
        for i in resets:
            record["final"].setdefault(int(i), infos["final_info"][i])
        if len(resets):
            expert.reset(resets, obs, infos)
        if len(record["final"]) == pool.num_envs:
            break
    return record


@pytest.fixture(scope="module")
def pool():
    with EnvPool([OBJECT_TASK, SPATIAL_TASK], obs_mode="state", seed=INIT_STATE, n_workers=2) as env_pool:
        yield env_pool


@pytest.fixture(scope="module")
def first_run(pool: EnvPool) -> dict:
    return run_episodes(pool, ScriptedExpert([OBJECT_TASK, SPATIAL_TASK], seed=0), INIT_STATE)


@pytest.mark.slow
def test_expert_solves_real_tasks(first_run: dict) -> None:
    for slot in (0, 1):
        info = first_run["final"][slot]
        assert info["init_index"] == INIT_STATE
        assert info["is_success"], f"slot {slot} ({info['task']}) failed"
        # a whole pick-and-place takes 100-250 steps (5-12 s at 20 Hz), well inside the 280-step limit
        assert 100 <= info["elapsed_steps"] <= 250, info["elapsed_steps"]
    actions = np.stack(first_run["actions"])
    assert np.all(np.isfinite(actions)) and np.all(np.abs(actions) <= 1.0)
    assert set(np.unique(actions[:, :, 6])) == {-1.0, 1.0}  # the gripper opened and closed


@pytest.mark.slow
def test_same_seed_replays_identical_actions(first_run: dict) -> None:
    replay = ScriptedExpert([OBJECT_TASK, SPATIAL_TASK], seed=0)
    for obs, resets, actions in zip(first_run["obs"], first_run["resets"], first_run["actions"], strict=True):
        if len(resets):
            replay.reset(resets, obs, {})
        np.testing.assert_array_equal(replay.act(obs), actions)


@pytest.mark.slow
def test_another_seed_moves_differently_and_still_succeeds(pool: EnvPool, first_run: dict) -> None:
    other = ScriptedExpert([OBJECT_TASK, SPATIAL_TASK], seed=1)
    other.reset(np.arange(2), first_run["obs"][0], {})
    assert not np.array_equal(other.act(first_run["obs"][0]), first_run["actions"][0])
    second = run_episodes(pool, ScriptedExpert([OBJECT_TASK, SPATIAL_TASK], seed=1), INIT_STATE)
    for slot in (0, 1):
        assert second["final"][slot]["init_index"] == INIT_STATE
        assert second["final"][slot]["is_success"]
    assert second["final"][0]["elapsed_steps"] != first_run["final"][0]["elapsed_steps"] or (
        second["final"][1]["elapsed_steps"] != first_run["final"][1]["elapsed_steps"]
    )


@pytest.mark.slow
def test_expert_needs_object_states_and_a_reset(first_run: dict) -> None:
    expert = ScriptedExpert([OBJECT_TASK, SPATIAL_TASK], seed=0)
    obs = first_run["obs"][0]
    with pytest.raises(ConfigError, match="call reset"):
        expert.act(obs)
    pixels_only = {k: v for k, v in obs.items() if not k.startswith("object_state")}
    with pytest.raises(ConfigError, match="obs_mode 'state' or 'pixels_state'"):
        expert.reset(np.arange(2), pixels_only, {})
    swapped = {k: v[::-1] for k, v in obs.items()}  # the spatial scene in the object slot
    with pytest.raises(ConfigError, match="is the slot running another task"):
        expert.reset(np.arange(2), swapped, {})

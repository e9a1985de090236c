"""The state fast path reproduces robosuite's step exactly: same qpos/qvel at every step, same object states,
rewards and success flags, on a libero_object and a libero_spatial task, over 200+ actions of a successful
scripted episode; a task it is not checked for falls back to robosuite's step and says so."""

from __future__ import annotations

import numpy as np
import pytest

from lerobot_diffrl.data.scripted_expert import ScriptedExpert
from lerobot_diffrl.envs.episode import TaskEpisode
from lerobot_diffrl.envs.fast_state import fast_step_unsupported
from lerobot_diffrl.envs.observations import lerobot_state
from lerobot_diffrl.envs.pool import SlotSpec
from lerobot_diffrl.envs.suites import task_spec

STEPS = 200
#: Fixture poses (a cabinet, a stove) are drawn from NumPy's global RNG at each soft reset; both paths draw the
#: same ones.
SCENE_SEED = 7


def _pool_obs(ep: TaskEpisode, raw: dict) -> dict:
    robot = ep.robot_state(raw)
    objects, length = ep.object_state(raw)
    return {
        "robot_state": robot[None],
        "agent_pos": lerobot_state(robot)[None],
        "object_state": objects[None],
        "object_state_len": np.array([length]),
    }


def _expert_actions(suite: str, task_id: int, init_index: int) -> np.ndarray:
    """The scripted expert's actions of one episode on robosuite's own step, padded with its last action."""
    ep = TaskEpisode(task_spec(suite, task_id), render=False, fast_state=False)
    np.random.seed(SCENE_SEED)
    obs = _pool_obs(ep, ep.reset(init_index))
    expert = ScriptedExpert([SlotSpec(suite, task_id)], seed=0)
    expert.reset(np.array([0]), obs, {})
    actions = []
    while not ep.done:
        actions.append(expert.act(obs)[0])
        obs = _pool_obs(ep, ep.step(actions[-1]).raw)
    ep.close()
    pad = max(0, STEPS - len(actions))
    return np.concatenate([np.stack(actions), np.repeat(actions[-1][None], pad, axis=0)])


def _trajectory(suite: str, task_id: int, init_index: int, actions: np.ndarray, fast: bool) -> list:
    """Per control step: qpos, qvel, object state, reward and success, stepping the simulator past success."""
    ep = TaskEpisode(task_spec(suite, task_id), render=False, fast_state=fast)
    assert ep.uses_fast_state is fast
    np.random.seed(SCENE_SEED)
    ep.reset(init_index)
    data, out = ep.sim.env.sim.data, []
    for action in actions:
        raw, reward, _, _ = ep._step_sim(np.clip(action, -1.0, 1.0))
        success = bool(ep.sim.check_success())
        out.append((data.qpos.copy(), data.qvel.copy(), ep.object_state(raw)[0], reward, success))
    ep.close()
    return out


@pytest.mark.slow
@pytest.mark.parametrize(
    ("suite", "task_id", "init_index"), [("libero_object", 1, 3), ("libero_spatial", 5, 3)]
)
def test_fast_path_gives_identical_states_rewards_and_success(
    suite: str, task_id: int, init_index: int
) -> None:
    actions = _expert_actions(suite, task_id, init_index)
    assert len(actions) >= STEPS
    normal = _trajectory(suite, task_id, init_index, actions, fast=False)
    fast = _trajectory(suite, task_id, init_index, actions, fast=True)
    for step, (a, b) in enumerate(zip(normal, fast, strict=True)):
        for name, x, y in zip(("qpos", "qvel", "object_state"), a[:3], b[:3], strict=True):
            assert np.array_equal(x, y), f"{name} differs at step {step}: {np.abs(x - y).max()}"
        assert (a[3], a[4]) == (b[3], b[4]), f"reward/success differ at step {step}"
    successes = [s[4] for s in normal]
    assert any(successes), "the scripted episode should succeed within the compared steps"
    assert [s[3] for s in normal] == [1.0 if s else 0.0 for s in successes]
    moved = np.abs(normal[-1][0] - normal[0][0]).max()
    assert moved > 0.05  # the arm and the object moved: the comparison is not of a resting scene


def test_rendering_envs_are_not_fast_stepped() -> None:
    ep = TaskEpisode(task_spec("libero_object", 0), render=False, fast_state=False)
    assert fast_step_unsupported(ep.sim) is None
    ep.sim.env.use_camera_obs = True  # what a pixel env has
    assert "renders cameras" in fast_step_unsupported(ep.sim)
    ep.close()


def test_unsupported_task_falls_back_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    import lerobot_diffrl.envs.episode as episode

    monkeypatch.setattr(
        episode, "fast_step_unsupported", lambda env: "controller JOINT_POSITION is not checked"
    )
    with pytest.warns(UserWarning, match=r"libero_object/0: state fast path off \(controller JOINT_POSITION"):
        ep = TaskEpisode(task_spec("libero_object", 0), render=False)
    assert not ep.uses_fast_state
    ep.reset(0)
    assert ep.step(np.zeros(7)).reward == 0.0
    ep.close()

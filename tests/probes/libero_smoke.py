"""Probe run by tests/test_libero_smoke.py in a child process with stdin closed.

Builds one task of a suite, resets it to an init state, steps it, then places the task's object on its target
and steps again, and prints one JSON line with what it saw. A child process because LIBERO's import-time
prompt (when its config is missing) must be proven absent with stdin closed and an empty home directory.
"""

import json
import sys

import numpy as np

from lerobot_diffrl.envs.libero_task import NOOP_ACTION, make_task_sim
from lerobot_diffrl.envs.suites import load_init_states, task_spec

suite, task_id, render = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "render"
spec = task_spec(suite, task_id)
states = load_init_states(spec)
sim = make_task_sim(spec, render=render, image_size=(96, 128))
sim.reset()
obs = sim.set_init_state(states[3])
state_after_init = sim.get_sim_state()
rewards, successes = [], []
for _ in range(5):
    obs, reward, _, _ = sim.step(NOOP_ACTION)
    rewards.append(float(reward))
    successes.append(bool(sim.check_success()))
shapes = {k: list(v.shape) for k, v in obs.items() if k.startswith("robot0_eef") or k.endswith("_image")}

# Put the object of interest just above its target and let it settle: the sparse reward must turn to 1.0.
obj, target = sim.obj_of_interest
joint = f"{obj}_joint0"
qpos = sim.sim.data.get_joint_qpos(joint).copy()
qpos[:3] = obs[f"{target}_pos"] + np.array([0.0, 0.0, 0.12 if suite == "libero_object" else 0.05])
sim.sim.data.set_joint_qpos(joint, qpos)
sim.sim.forward()
placed_rewards, placed_success = [], []
for _ in range(15):
    obs, reward, _, _ = sim.step(NOOP_ACTION)
    placed_rewards.append(float(reward))
    placed_success.append(bool(sim.check_success()))

# A soft reset to the same init state must reproduce the simulator state exactly.
sim.reset()
sim.set_init_state(states[3])
same_state = bool(np.array_equal(sim.get_sim_state(), state_after_init))
print(
    "PROBE "
    + json.dumps(
        {
            "language": spec.language,
            "n_init_states": len(states),
            "shapes": shapes,
            "rewards": rewards,
            "successes": successes,
            "placed_rewards": placed_rewards,
            "placed_success": placed_success,
            "soft_reset_reproduces_state": same_state,
            "image_mean": float(obs["agentview_image"].mean()) if render else None,
        }
    )
)

"""A LIBERO smoke demo (``lerobot-diffrl-demo``): one task headless and offline, driven a few steps.

It resets the task to a fixed init state, drives the gripper above the task's object of interest with a
privileged-state P-controller, and prints what happened: observation shapes, end-effector track, reward, success,
speed. With rendering on it saves the two camera views (in lerobot's orientation, rotated 180 degrees) as PNGs.
Why it exists: the quickest check that the simulator, the assets and software GL work on a new machine.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from lerobot_diffrl.envs.libero_setup import check_gl_backend, prepare_libero
from lerobot_diffrl.envs.libero_task import CAMERAS, make_task_sim
from lerobot_diffrl.envs.observations import CAMERA_KEYS
from lerobot_diffrl.envs.suites import load_init_states, task_spec
from lerobot_diffrl.errors import ConfigError


@dataclass
class DemoConfig:
    suite: str = "libero_object"
    task_id: int = 0
    init_state: int = 0
    steps: int = 30
    #: Render both cameras (software GL is ~10x slower than physics alone).
    render: bool = True
    image_size: int = 128
    output_dir: str = "outputs/demo"
    #: LIBERO asset folder (default: see `lerobot-diffrl-setup-libero`).
    libero_assets: str | None = None


def _reach_action(eef_pos: np.ndarray, target: np.ndarray) -> np.ndarray:
    """OSC delta action toward ``target`` (gripper open, orientation held)."""
    action = np.zeros(7)
    action[:3] = np.clip(10.0 * (target - eef_pos), -1.0, 1.0)
    action[6] = -1.0
    return action


def run_demo(cfg: DemoConfig) -> int:
    if cfg.steps < 1 or cfg.image_size < 16:
        raise ConfigError("--steps must be >= 1 and --image_size >= 16")
    prepare_libero(cfg.libero_assets)
    spec = task_spec(cfg.suite, cfg.task_id)
    states = load_init_states(spec)
    if not 0 <= cfg.init_state < len(states):
        raise ConfigError(f"--init_state must be in 0..{len(states) - 1} for {spec.suite}/{spec.task_id}")
    if cfg.render:
        print(f"OpenGL backend: {check_gl_backend()}")
    print(f"task {spec.suite}/{spec.task_id}: {spec.language!r} (init state {cfg.init_state}/{len(states)})")

    started = time.perf_counter()
    sim = make_task_sim(spec, render=cfg.render, image_size=(cfg.image_size, cfg.image_size))
    built = time.perf_counter()
    sim.reset()
    obs = sim.set_init_state(states[cfg.init_state])
    reset_done = time.perf_counter()

    target_name = sim.obj_of_interest[0]
    target = obs[f"{target_name}_pos"] + np.array([0.0, 0.0, 0.10])
    print(f"moving the gripper 10 cm above {target_name!r} at {np.round(target, 3).tolist()}")
    track, total_reward, success = [obs["robot0_eef_pos"].copy()], 0.0, False
    for _ in tqdm(range(cfg.steps), desc="env steps", unit="step"):
        obs, reward, _, _ = sim.step(_reach_action(obs["robot0_eef_pos"], target))
        total_reward += float(reward)
        success = success or bool(sim.check_success())
        track.append(obs["robot0_eef_pos"].copy())
    stepped = time.perf_counter()

    track_arr = np.stack(track)
    print(
        "observation:", {k: tuple(v.shape) for k, v in obs.items() if k.startswith("robot0_") or "image" in k}
    )
    for i in np.linspace(0, cfg.steps, num=min(cfg.steps, 5) + 1, dtype=int):
        print(f"  step {i:4d}  eef {np.round(track_arr[i], 3).tolist()}")
    print(
        f"distance to target: {np.linalg.norm(track_arr[0] - target):.3f} m -> "
        f"{np.linalg.norm(track_arr[-1] - target):.3f} m"
    )
    print(f"return {total_reward:.1f}, success {success} (sparse reward: 1.0 only when the task is solved)")
    print(
        f"build {built - started:.1f} s, reset {reset_done - built:.2f} s, "
        f"{cfg.steps / (stepped - reset_done):.1f} steps/s"
    )
    if cfg.render:
        from PIL import Image

        out = Path(cfg.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        for camera, key in zip(CAMERAS, CAMERA_KEYS, strict=True):
            frame = np.ascontiguousarray(obs[key][::-1, ::-1])  # lerobot's orientation
            Image.fromarray(frame).save(out / f"{camera}.png")
        print(f"camera views saved in {out}/")
    sim.close()
    return 0

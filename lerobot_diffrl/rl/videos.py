"""Evaluation videos: deterministic LIBERO episodes rendered from the agent-view camera, one MP4 each.

Why a separate small pool: state-mode training pools have no renderer (that is what makes them fast), so the
videos come from a pool with one slot per task in a camera mode, stepped one action at a time so every frame
is rendered. The policy acts exactly as in :func:`lerobot_diffrl.rl.evaluation.evaluate`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from lerobot.utils.io_utils import write_video

from lerobot_diffrl.envs.lerobot_batch import upright
from lerobot_diffrl.envs.suites import CONTROL_FPS
from lerobot_diffrl.rl.config import RLEnvConfig
from lerobot_diffrl.rl.envs import libero_slots
from lerobot_diffrl.rl.policy_io import LoadedPolicy, env_actions, policy_inputs
from lerobot_diffrl.rl.rollout import autocast


@torch.no_grad()
def record_videos(
    env_cfg: RLEnvConfig,
    loaded: LoadedPolicy,
    episodes_per_task: int,
    out_dir: Path,
    seed: int,
    device: torch.device,
    amp: bool = True,
) -> list[Path]:
    """Write ``episodes_per_task`` MP4s per task of ``env_cfg`` to ``out_dir``; return their paths."""
    from lerobot_diffrl.envs.pool import EnvPool
    from lerobot_diffrl.envs.suites import task_spec

    tasks = list(dict.fromkeys((s.suite, s.task_id) for s in libero_slots(env_cfg)))
    slots = [s for s in libero_slots(env_cfg) if (s.suite, s.task_id) in tasks][: len(tasks)]
    specs = [task_spec(s.suite, s.task_id) for s in slots]
    languages = [spec.language for spec in specs]
    mode = "pixels_state" if loaded.env_state_dim is not None else "pixels"
    out_dir.mkdir(parents=True, exist_ok=True)
    policy = loaded.policy
    n_act = policy.config.n_action_steps
    paths: list[Path] = []
    size = (env_cfg.image_size, env_cfg.image_size)
    with EnvPool(slots, obs_mode=mode, image_size=size, seed=seed, n_workers=1) as pool:
        obs, infos = pool.reset(seed=seed)
        for episode in range(episodes_per_task):
            frames: list[list[np.ndarray]] = [[upright(obs["pixels"]["image"][i])] for i in range(len(slots))]
            success = [False] * len(slots)
            active = np.ones(len(slots), dtype=bool)
            generator = torch.Generator(device=device).manual_seed(seed + episode)
            while active.any():
                batch = policy_inputs(loaded, obs, languages)
                with autocast(device, amp):
                    chunk = policy.predict_action_chunk(batch, generator=generator)
                actions = env_actions(loaded, chunk[:, :n_act])
                for k in range(n_act):
                    obs, _, term, trunc, infos = pool.step(actions[:, k], render=True)
                    for i in np.flatnonzero(active):
                        done = bool(term[i] or trunc[i])
                        image = (
                            infos["final_obs"]["pixels"]["image"][i] if done else obs["pixels"]["image"][i]
                        )
                        frames[i].append(upright(image))
                        if done:
                            success[i] = bool(term[i])
                            active[i] = False
                    if not active.any():
                        break
            for i, spec in enumerate(specs):
                tag = "success" if success[i] else "failure"
                path = out_dir / f"{spec.suite}_task{spec.task_id}_ep{episode}_{tag}.mp4"
                write_video(str(path), np.stack(frames[i]), fps=CONTROL_FPS)
                paths.append(path)
    return paths

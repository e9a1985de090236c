"""Pool observations -> the batch a LeRobot policy receives, without a per-step round trip through lerobot.

``lerobot-eval`` feeds a policy ``preprocess_observation`` + ``LiberoProcessorStep`` output; RL rollouts and
data generation call the policy thousands of times per second of simulation, so they convert the pool's
arrays here directly, with the same result (a test checks equality with lerobot's own pipeline):

* ``observation.images.<name>``: float32 (n, 3, H, W) in [0, 1], rotated 180 degrees (robosuite renders upside
  down; lerobot's LIBERO datasets and processor use the upright view);
* ``observation.state``: the 8-d LIBERO state (eef pos, eef axis-angle, gripper qpos), float32;
* ``observation.environment_state``: robosuite's object-state vector (privileged; what a state-based expert
  acts on), truncated or zero-padded to the policy's feature size;
* ``task``: one language instruction per slot.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from lerobot_diffrl.envs.observations import IMAGE_NAMES

OBS_IMAGE_PREFIX = "observation.images."
OBS_STATE = "observation.state"
OBS_ENV_STATE = "observation.environment_state"
IMAGE_KEYS: tuple[str, ...] = tuple(OBS_IMAGE_PREFIX + name for name in IMAGE_NAMES)


def upright(images: np.ndarray) -> np.ndarray:
    """Rotate uint8 frames (..., H, W, 3) by 180 degrees: robosuite's view -> lerobot's LIBERO view."""
    return np.ascontiguousarray(images[..., ::-1, ::-1, :])


def lerobot_batch(
    obs: dict[str, Any],
    tasks: Sequence[str],
    env_state_dim: int | None = None,
    device: torch.device | str = "cpu",
) -> dict[str, Any]:
    """Convert a pool (or passage) observation batch to LeRobot policy inputs (before normalisation).

    Args:
        obs: ``EnvPool`` observation dict (``agent_pos``, optionally ``pixels`` and ``object_state``).
        tasks: language instruction of every slot (len n).
        env_state_dim: include ``observation.environment_state`` with this many values (needs the pool in
            ``state`` or ``pixels_state`` mode); None leaves it out.
        device: where the tensors go.
    """
    state = torch.as_tensor(np.asarray(obs["agent_pos"], dtype=np.float32), device=device)
    batch: dict[str, Any] = {OBS_STATE: state, "task": list(tasks)}
    if len(batch["task"]) != state.shape[0]:
        raise ValueError(f"{len(batch['task'])} task strings for {state.shape[0]} observations")
    for name, frames in obs.get("pixels", {}).items():
        img = torch.as_tensor(frames, device=device).permute(0, 3, 1, 2)
        batch[OBS_IMAGE_PREFIX + name] = torch.flip(img, dims=[2, 3]).float().div_(255.0)
    if env_state_dim is not None:
        if "object_state" not in obs:
            raise ValueError("observation.environment_state needs the pool in 'state' or 'pixels_state' mode")
        values = np.asarray(obs["object_state"], dtype=np.float32)
        out = np.zeros((values.shape[0], env_state_dim), dtype=np.float32)
        width = min(env_state_dim, values.shape[1])
        out[:, :width] = values[:, :width]
        batch[OBS_ENV_STATE] = torch.as_tensor(out, device=device)
    return batch

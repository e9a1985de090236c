"""Tiny data and models for the recipe tests, built offline.

The tiny SmolVLM / SmolVLA / pi0 / pi05 builders are the package's own (:mod:`lerobot_diffrl.recipes.tiny_vla`, also used by the
pipeline's embedded recipe); this module adds a small LIBERO-layout dataset with learnable actions.
"""

from __future__ import annotations

from pathlib import Path

from lerobot_diffrl.recipes.tiny_vla import (  # noqa: F401  (re-exported for the tests)
    TINY_IMAGE_SIZE,
    build_tiny_pi_base,
    build_tiny_smolvla_base,
    build_tiny_smolvlm,
    tiny_pi_overrides,
    tiny_smolvla_overrides,
)

TASKS = (
    "pick up the alphabet soup and place it in the basket",
    "pick up the cream cheese and place it in the basket",
)


def write_tiny_libero_dataset(
    root: Path,
    repo_id: str = "local/tiny_libero",
    episodes: int = 2,
    frames: int = 16,
    size: int = 32,
    tasks: tuple[str, ...] = TASKS,
    state_dim: int = 8,
    env_state_dim: int = 0,
    state_names: list[str] | None = None,
) -> Path:
    """A finalized LeRobotDataset v3 in the LIBERO layout (two cameras, 8-d state, 7-d action, 20 fps).

    Actions follow a smooth per-episode trajectory (sines whose phase depends on the episode), so a policy can fit
    them and the training loss has somewhere to fall.
    """
    import numpy as np
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    image = {"dtype": "image", "shape": (size, size, 3), "names": ["height", "width", "channel"]}
    features = {
        "observation.images.image": image,
        "observation.images.image2": dict(image),
        "observation.state": {"dtype": "float32", "shape": (state_dim,), "names": state_names},
        "action": {"dtype": "float32", "shape": (7,), "names": None},
    }
    if env_state_dim:  # privileged object state, which RL-generated data may carry and human demos do not
        features["observation.environment_state"] = {
            "dtype": "float32",
            "shape": (env_state_dim,),
            "names": None,
        }
    ds = LeRobotDataset.create(
        repo_id, fps=20, features=features, root=root, use_videos=False, robot_type="panda"
    )
    rng = np.random.default_rng(0)
    for ep in range(episodes):
        phase = 0.7 * ep
        for t in range(frames):
            s = t / frames
            frame = {
                "observation.images.image": rng.integers(0, 255, (size, size, 3), dtype=np.uint8),
                "observation.images.image2": rng.integers(0, 255, (size, size, 3), dtype=np.uint8),
                "observation.state": np.full(state_dim, s, dtype=np.float32),
                "action": np.sin(2 * np.pi * s + phase + np.arange(7)).astype(np.float32),
                "task": tasks[ep % len(tasks)],
            }
            if env_state_dim:
                frame["observation.environment_state"] = np.full(env_state_dim, s, dtype=np.float32)
            ds.add_frame(frame)
        ds.save_episode()
    ds.finalize()
    return Path(root)

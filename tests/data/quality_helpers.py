"""Tiny, real, finalized LeRobotDataset v3 folders with LIBERO's keys, for the report and publishing tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

IMAGE_SIZE = 16

# ``next.reward`` is left out: lerobot 0.4.4 stores a float feature of shape (1,) as a scalar and encodes each
# value with float(array([x])), which numpy >= 2.4 rejects. Booleans of shape (1,) encode fine.
FEATURES = {
    "observation.images.image": {
        "dtype": "video",
        "shape": (IMAGE_SIZE, IMAGE_SIZE, 3),
        "names": ["height", "width", "channels"],
    },
    "observation.images.image2": {
        "dtype": "video",
        "shape": (IMAGE_SIZE, IMAGE_SIZE, 3),
        "names": ["height", "width", "channels"],
    },
    "observation.state": {"dtype": "float32", "shape": (8,), "names": None},
    "action": {"dtype": "float32", "shape": (7,), "names": None},
    "next.done": {"dtype": "bool", "shape": (1,), "names": None},
    "next.success": {"dtype": "bool", "shape": (1,), "names": None},
}


def line_episode(start, end, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Constant-velocity straight line from ``start`` to ``end``: (actions (T,7), states (T,8))."""
    start, end = np.asarray(start, float), np.asarray(end, float)
    t = np.linspace(0.0, 1.0, steps)[:, None]
    eef = start + t * (end - start)
    actions = np.zeros((steps, 7))
    actions[:, :3] = (end - start) / (steps - 1) * 10.0  # constant command: zero jerk, zero |delta a|
    actions[:, 6] = -1.0
    return actions, _state(eef)


def noisy_episode(start, end, steps: int, rng: np.random.Generator, scale: float = 0.2):
    """The same line with a random walk added to the path and white noise added to the actions."""
    actions, states = line_episode(start, end, steps)
    actions[:, :6] += rng.normal(0.0, scale, (steps, 6))
    states[:, :3] += np.cumsum(rng.normal(0.0, scale * 0.01, (steps, 3)), axis=0)
    return actions, states


def min_jerk_path(start, end, steps: int) -> np.ndarray:
    """Minimum-jerk reach (Flash & Hogan): ``start + (end - start) * (10 s^3 - 15 s^4 + 6 s^5)``, s in [0, 1]."""
    start, end = np.asarray(start, float), np.asarray(end, float)
    s = np.linspace(0.0, 1.0, steps)[:, None]
    return start + (end - start) * (10 * s**3 - 15 * s**4 + 6 * s**5)


def min_jerk_episode(
    start, end, steps: int, *, tremor: float = 0.0, tremor_hz: float = 6.0, fs: float = 20.0
) -> tuple[np.ndarray, np.ndarray]:
    """A minimum-jerk reach, optionally with a ``tremor`` (m) sinusoid at ``tremor_hz`` added along x, and the
    velocity commands that drive it (per-step displacement x 10, the last one repeated): (actions, states)."""
    eef = min_jerk_path(start, end, steps)
    eef[:, 0] += tremor * np.sin(2 * np.pi * tremor_hz * np.arange(steps) / fs)
    actions = np.zeros((steps, 7))
    step = np.diff(eef, axis=0) * 10.0
    actions[:, :3] = np.vstack([step, step[-1:]])
    actions[:, 6] = -1.0
    return actions, _state(eef)


def _state(eef: np.ndarray) -> np.ndarray:
    state = np.zeros((len(eef), 8))
    state[:, :3] = eef
    state[:, 6:] = [0.04, -0.04]
    return state


def make_dataset(
    root: Path,
    episodes: list[tuple[str, np.ndarray, np.ndarray]],
    *,
    success: list[bool] | None = None,
    provenance: dict | None = None,
    fps: int = 20,
    videos: bool = True,
    finalize: bool = True,
):
    """Write ``episodes`` (task, actions, states) as a finalized LeRobotDataset with two small cameras.

    Cameras are h264 videos, or with ``videos=False`` PNG images stored in the parquet files (cheaper to write).
    Returns the root; with ``finalize=False`` the still-open ``LeRobotDataset`` instead (keep it referenced:
    its destructor closes the writers).
    """
    from lerobot.configs.video import RGBEncoderConfig
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    features = {
        k: dict(ft, dtype="image") if ft["dtype"] == "video" and not videos else ft
        for k, ft in FEATURES.items()
    }
    ds = LeRobotDataset.create(
        f"local/{Path(root).name}",
        fps=fps,
        features=features,
        root=root,
        robot_type="panda",
        use_videos=videos,
        rgb_encoder=RGBEncoderConfig(vcodec="h264"),
    )
    for e, (task, actions, states) in enumerate(episodes):
        ok = True if success is None else success[e]
        for t in range(len(actions)):
            last = t == len(actions) - 1
            shade = np.uint8((40 * e + 5 * t) % 255)
            ds.add_frame(
                {
                    "observation.images.image": np.full((IMAGE_SIZE, IMAGE_SIZE, 3), shade, np.uint8),
                    "observation.images.image2": np.full((IMAGE_SIZE, IMAGE_SIZE, 3), 255 - shade, np.uint8),
                    "observation.state": states[t].astype(np.float32),
                    "action": actions[t].astype(np.float32),
                    "next.done": np.array([last]),
                    "next.success": np.array([last and ok]),
                    "task": task,
                }
            )
        ds.save_episode()
    if provenance is not None:
        (Path(root) / "meta" / "provenance.json").write_text(json.dumps(provenance, indent=2))
    if not finalize:
        return ds
    ds.finalize()
    return Path(root)


TASKS = ("put the bowl on the plate", "open the top drawer")


def smooth_and_noisy(
    tmp_path: Path, per_task: int = 3, steps: int = 24, noisy_success: list[bool] | None = None
) -> tuple[Path, Path]:
    """Two datasets over the same two tasks: smooth constant-velocity lines, and noisy versions of them.

    Smooth episode ``i`` of task ``k`` goes from (0.1k, 0, 1) to (0.1k + 0.3, 0.2 + 0.01i, 0.9) in ``steps``
    frames; noisy episode ``i`` has ``steps + 4i`` frames.
    """
    rng = np.random.default_rng(0)
    smooth, noisy = [], []
    for k, task in enumerate(TASKS):
        for i in range(per_task):
            start = [0.1 * k, 0.0, 1.0]
            end = [0.1 * k + 0.3, 0.2 + 0.01 * i, 0.9]
            smooth.append((task, *line_episode(start, end, steps)))
            noisy.append((task, *noisy_episode(start, end, steps + 4 * i, rng)))
    return (
        make_dataset(tmp_path / "smooth", smooth),
        make_dataset(tmp_path / "noisy", noisy, success=noisy_success, videos=False),
    )

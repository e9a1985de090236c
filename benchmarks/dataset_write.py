"""Dataset writing: the project's shard writer against lerobot's own add_frame/save_episode loop.

Both write the same recorded LIBERO frames (the scripted expert on libero_object, both cameras rendered by the
env pool at ``--size``, upright, as generation records them) into a fresh LeRobotDataset v3 with video, and both
end in a dataset that ``LeRobotDataset`` loads (checked after timing: episode and frame counts, actions equal,
decoded frames close to the source):

- ``project``: :class:`lerobot_diffrl.data.writer.EpisodeWriter` (episodes committed to staging, cameras encoded
  from memory on a thread pool, stats from histograms) + :func:`lerobot_diffrl.data.packing.pack_episodes`;
- ``baseline``: the loop lerobot's docs show: ``LeRobotDataset.create(..., use_videos=True)``, ``add_frame`` per
  frame, ``save_episode`` per episode, ``finalize()``; lerobot's defaults (PNG frames written synchronously,
  cameras encoded from the PNGs at each ``save_episode``);
- ``baseline+threads`` (optional, ``--threaded``): the same loop with lerobot-record's asynchronous PNG writer
  (4 threads per camera).

Both use lerobot's codec settings (libsvtav1, GOP 2, CRF 30, yuv420p) and write the same columns, including
``next.reward``/``next.done``/``next.success``.

Prints a table, then a JSON object as the last line (``project_frames_per_s``, ``baseline_frames_per_s``,
``ratio`` and details).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


class Collector:
    """Stands in for the episode writer during recording: keeps the episodes in memory."""

    def __init__(self) -> None:
        self.episodes = []

    def add(self, record, frames) -> None:
        self.episodes.append(frames)

    def discard(self, record) -> None:
        pass


def record(n_tasks: int, per_task: int, size: int, n_envs: int, max_steps: int) -> list:
    """Frames of real LIBERO episodes, recorded exactly as generation records them (ShardRollout)."""
    from lerobot_diffrl.data.actors import make_actor
    from lerobot_diffrl.data.rollout import ShardRollout
    from lerobot_diffrl.data.scheduler import AttemptScheduler
    from lerobot_diffrl.data.sharding import ShardSpec
    from lerobot_diffrl.envs.libero_setup import prepare_libero
    from lerobot_diffrl.envs.pool import EnvPool, SlotSpec
    from lerobot_diffrl.envs.suites import load_init_states, task_spec

    prepare_libero()
    tasks = [("libero_object", t) for t in range(n_tasks)]
    sched = AttemptScheduler(
        [(ref, len(load_init_states(task_spec(*ref)))) for ref in tasks],
        target=per_task,
        max_attempts=per_task,
        keep="all",
        seed=0,
        shard=ShardSpec(),
    )
    first = [a for a in (sched.next_attempt() for _ in range(n_envs)) if a is not None]
    slots = [SlotSpec(a.suite, a.task_id, max_steps) for a in first]
    actor = make_actor("scripted", slots, seed=0)
    collector = Collector()
    with EnvPool(slots, obs_mode="pixels_state", image_size=(size, size), seed=0) as pool:
        rollout = ShardRollout(
            sched, collector, actor, pool, first, image_size=(size, size), max_steps=max_steps
        )
        obs, infos = pool.reset(seed=0)
        rollout.run(obs, infos)
    return collector.episodes


def save_cache(path: Path, episodes: list) -> None:
    arrays = {}
    for i, ep in enumerate(episodes):
        for key, value in ep.images.items():
            arrays[f"{i}/{key}"] = value
        for name in ("state", "action", "reward", "done", "success"):
            arrays[f"{i}/{name}"] = getattr(ep, name)
        arrays[f"{i}/task"] = np.array(ep.task)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)


def load_cache(path: Path) -> list:
    from lerobot_diffrl.data.writer import EpisodeFrames

    data = np.load(path)
    n = 1 + max(int(k.split("/")[0]) for k in data.files)
    out = []
    for i in range(n):
        images = {k.split("/", 1)[1]: data[k] for k in data.files if k.startswith(f"{i}/observation.images.")}
        fields = {name: data[f"{i}/{name}"] for name in ("state", "action", "reward", "done", "success")}
        out.append(EpisodeFrames(images=images, task=str(data[f"{i}/task"]), **fields))
    return out


def write_project(episodes: list, root: Path, size: int) -> float:
    from lerobot_diffrl.data.features import FPS, ROBOT_TYPE, dataset_features
    from lerobot_diffrl.data.packing import pack_episodes
    from lerobot_diffrl.data.sharding import make_attempt
    from lerobot_diffrl.data.staging import AttemptRecord, Staging
    from lerobot_diffrl.data.writer import EpisodeWriter

    features = dataset_features(size)
    start = time.perf_counter()
    staging = Staging(root.parent / f"{root.name}.staging")
    with EpisodeWriter(staging, features, FPS) as writer:
        for i, ep in enumerate(episodes):
            attempt = make_attempt(0, "libero_object", 0, i, 50)
            writer.add(
                AttemptRecord.of(
                    attempt, success=bool(ep.success[-1]), kept=True, length=len(ep), task=ep.task
                ),
                ep,
            )
    pack_episodes(
        staging.kept_episodes(),
        root,
        repo_id="bench/project",
        features=features,
        fps=FPS,
        robot_type=ROBOT_TYPE,
        progress=False,
    )
    elapsed = time.perf_counter() - start
    shutil.rmtree(staging.root)
    return elapsed


def write_baseline(episodes: list, root: Path, size: int, threads: int = 0) -> float:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from lerobot_diffrl.data.features import DONE, FPS, REWARD, ROBOT_TYPE, SUCCESS, dataset_features

    features = dataset_features(size)
    start = time.perf_counter()
    ds = LeRobotDataset.create(
        "bench/baseline",
        fps=FPS,
        features=features,
        root=root,
        robot_type=ROBOT_TYPE,
        use_videos=True,
        image_writer_threads=threads,
    )
    for ep in episodes:
        for t in range(len(ep)):
            ds.add_frame(
                {
                    "observation.images.image": ep.images["observation.images.image"][t],
                    "observation.images.image2": ep.images["observation.images.image2"][t],
                    "observation.state": ep.state[t],
                    "action": ep.action[t],
                    REWARD: np.asarray([ep.reward[t]], dtype=np.float32),
                    DONE: np.asarray([ep.done[t]], dtype=bool),
                    SUCCESS: np.asarray([ep.success[t]], dtype=bool),
                    "task": ep.task,
                }
            )
        ds.save_episode()
    ds.finalize()
    if threads:
        ds.stop_image_writer()
    return time.perf_counter() - start


def verify(root: Path, episodes: list) -> float:
    """Load with LeRobotDataset; check counts, actions, tasks; return the mean abs error of decoded frames."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset(f"bench/{root.name}", root=root)
    assert ds.num_episodes == len(episodes) and ds.num_frames == sum(len(e) for e in episodes), root
    errors, start = [], 0
    for ep in episodes:
        for t in (0, len(ep) // 2, len(ep) - 1):
            item = ds[start + t]
            np.testing.assert_array_equal(item["action"].numpy(), ep.action[t])
            assert item["task"] == ep.task
            for key, frames in ep.images.items():
                errors.append(np.abs(item[key].permute(1, 2, 0).numpy() * 255.0 - frames[t]).mean())
        start += len(ep)
    return float(np.mean(errors))


def _head(ep, n: int) -> dict:
    """The first ``n`` frames of an episode, as EpisodeFrames fields."""
    return {
        "images": {k: v[:n] for k, v in ep.images.items()},
        **{name: getattr(ep, name)[:n] for name in ("state", "action", "reward", "done", "success")},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=256, help="camera resolution (the dataset default)")
    parser.add_argument("--tasks", type=int, default=2, help="libero_object tasks recorded")
    parser.add_argument("--episodes-per-task", type=int, default=2)
    parser.add_argument("--max-steps", type=int, default=200)
    parser.add_argument("--n-envs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1, help="write repeats per writer (best time is kept)")
    parser.add_argument(
        "--threaded", action="store_true", help="also time lerobot-record's threaded PNG writer"
    )
    parser.add_argument("--cache", type=Path, default=None, help="npz of recorded frames: reused if present")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(2)
    load_start = os.getloadavg()
    t0 = time.perf_counter()
    if args.cache is not None and args.cache.is_file():
        episodes = load_cache(args.cache)
    else:
        episodes = record(args.tasks, args.episodes_per_task, args.size, args.n_envs, args.max_steps)
        if args.cache is not None:
            save_cache(args.cache, episodes)
    record_s = time.perf_counter() - t0
    frames = sum(len(e) for e in episodes)
    size = int(episodes[0].images["observation.images.image"].shape[1])

    work = Path(tempfile.mkdtemp(prefix="dataset_write_", dir=args.workdir))
    runs: dict[str, list[float]] = {"project": [], "baseline": []}
    if args.threaded:
        runs["baseline+threads"] = []
    errors = {}
    try:
        # Warm-up (untimed): imports, codec initialisation and first-call caches on both sides.
        warm = [dataclasses.replace(e, **_head(e, 4)) for e in episodes[:1]]
        write_project(warm, work / "warm-project", size)
        write_baseline(warm, work / "warm-baseline", size)
        for r in range(args.repeats):
            for name in runs:  # interleaved, so load changes hit every writer alike
                root = work / f"{name.replace('+', '_')}-{r}"
                if name == "project":
                    runs[name].append(write_project(episodes, root, size))
                else:
                    runs[name].append(
                        write_baseline(episodes, root, size, threads=8 if "threads" in name else 0)
                    )
                errors[name] = verify(root, episodes)
                shutil.rmtree(root)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    best = {name: min(times) for name, times in runs.items()}
    fps = {name: frames / t for name, t in best.items()}
    print(
        f"{len(episodes)} episodes, {frames} frames, 2 cameras {size}x{size}, libsvtav1 (recorded in {record_s:.0f} s)"
    )
    print(f"{'writer':<18}{'seconds':>10}{'frames/s':>11}{'vs baseline':>13}{'decode err':>12}")
    for name in runs:
        print(
            f"{name:<18}{best[name]:>10.2f}{fps[name]:>11.1f}{fps[name] / fps['baseline']:>12.2f}x{errors[name]:>12.2f}"
        )
    result = {
        "lerobot_version": importlib.metadata.version("lerobot"),
        "project_frames_per_s": round(fps["project"], 2),
        "baseline_frames_per_s": round(fps["baseline"], 2),
        "ratio": round(fps["project"] / fps["baseline"], 2),
        "project_s": round(best["project"], 3),
        "baseline_s": round(best["baseline"], 3),
        "frames": frames,
        "episodes": len(episodes),
        "image_size": size,
        "cameras": 2,
        "vcodec": "libsvtav1",
        "repeats": args.repeats,
        "mean_abs_decode_error": {k: round(v, 3) for k, v in errors.items()},
        "cpu_count": os.cpu_count(),
        "load_avg_start": [round(x, 2) for x in load_start],
        "load_avg_end": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
    }
    if args.threaded:
        result["baseline_threads_frames_per_s"] = round(fps["baseline+threads"], 2)
        result["ratio_vs_threaded"] = round(fps["project"] / fps["baseline+threads"], 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()

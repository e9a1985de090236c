"""Env throughput: the project's EnvPool against lerobot's LiberoEnv in lerobot's own default vector env.

Same suite, task, cameras, resolution and render settings (LIBERO's ``OffScreenRenderEnv`` defaults on both
sides: the pool's images are identical to lerobot's, see ``tests/envs/test_gym_env.py``). Episodes are
``--episode-steps`` long (100: a typical successful libero_object episode), each followed by a reset the way
lerobot-eval resets its vector env (``reset(seed=...)``); the pool truncates at the same length and auto-resets,
so resets count on both sides. Workloads (``--n-envs`` envs):

- ``lerobot``: lerobot's ``libero`` env config, built by ``make_env`` as ``lerobot-eval`` builds it with its
  defaults (``use_async_envs=True``: lerobot 0.6's lazy AsyncVectorEnv, forkserver workers, hard resets),
  every frame rendered (it cannot do otherwise);
- ``record``: pool, pixels, every frame consumed (dataset generation);
- ``chunked``: pool, pixels, only every ``--chunk``-th observation consumed and rendered (DPPO's executed chunk);
- ``state``: pool, state mode (no renderer);
- ``scaling``: state-mode pool with 1..N workers (one slot each).

The last line printed is a JSON object with the figures.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import time

import numpy as np

from lerobot_diffrl.envs.pool import EnvPool, SlotSpec

SUITE = "libero_object"


def _actions(rng: np.random.Generator, n: int) -> np.ndarray:
    """Small random actions: the arm moves (the images change) without solving the task."""
    actions = rng.uniform(-0.3, 0.3, size=(n, 7))
    actions[:, 6] = -1.0
    return actions


def bench_lerobot(args: argparse.Namespace) -> dict:
    from lerobot_diffrl.envs.libero_setup import configure_gl_backend, prepare_libero

    configure_gl_backend()
    prepare_libero()
    from lerobot.configs.default import EvalConfig
    from lerobot.envs.configs import LiberoEnv
    from lerobot.envs.factory import make_env

    cfg = LiberoEnv(
        task=SUITE,
        task_ids=[args.task_id],
        observation_height=args.size,
        observation_width=args.size,
        episode_length=args.episode_steps,
    )
    envs = make_env(cfg, n_envs=args.n_envs, use_async_envs=EvalConfig().use_async_envs)
    vec = envs[SUITE][args.task_id]
    rng = np.random.default_rng(0)
    seed = 0
    vec.reset(seed=list(range(seed, seed + args.n_envs)))
    start = time.perf_counter()
    for _ in range(args.episodes):
        for _ in range(args.episode_steps):
            obs, *_ = vec.step(_actions(rng, args.n_envs).astype(np.float32))
        seed += args.n_envs
        t_reset = time.perf_counter()
        vec.reset(seed=list(range(seed, seed + args.n_envs)))
        reset_s = time.perf_counter() - t_reset
    elapsed = time.perf_counter() - start
    vector_env = type(vec).__name__
    vec.close()
    steps = args.episodes * args.episode_steps * args.n_envs
    return {"steps_per_s": steps / elapsed, "reset_s": reset_s, "seconds": elapsed, "vector_env": vector_env}


def bench_pool(
    args: argparse.Namespace, obs_mode: str, every: int, n_envs: int, n_workers: int | None, episodes: int
) -> dict:
    """``every``: render the observation of every ``every``-th step (1: all) and the first of each episode."""
    slots = [SlotSpec(SUITE, args.task_id, max_steps=args.episode_steps)] * n_envs
    t_build = time.perf_counter()
    with EnvPool(slots, obs_mode=obs_mode, image_size=(args.size, args.size), n_workers=n_workers) as pool:
        pool.reset(seed=0)
        build_s = time.perf_counter() - t_build
        rng = np.random.default_rng(0)
        renders = 0
        start = time.perf_counter()
        for _ in range(episodes):
            for t in range(1, args.episode_steps + 1):
                render = (
                    t % every == 0 or t == args.episode_steps
                )  # the last step's obs is the next episode's first
                _, _, _, truncated, info = pool.step(_actions(rng, n_envs), render=render)
                renders += int(info["rendered"].sum())
            assert truncated.all(), "episodes must truncate at --episode-steps"
        elapsed = time.perf_counter() - start
    steps = episodes * args.episode_steps * n_envs
    return {"steps_per_s": steps / elapsed, "seconds": elapsed, "build_s": build_s, "rendered_obs": renders}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer episodes (under 5 minutes on 2 cores)")
    parser.add_argument("--n-envs", type=int, default=2)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--task-id", type=int, default=0)
    parser.add_argument("--episode-steps", type=int, default=100)
    parser.add_argument("--chunk", type=int, default=8)
    parser.add_argument("--episodes", type=int, default=None, help="episodes per env (pixel workloads)")
    parser.add_argument("--max-workers", type=int, default=None, help="scaling sweep up to this many workers")
    args = parser.parse_args()
    os.environ.setdefault("MUJOCO_GL", "egl")
    if args.episodes is None:
        args.episodes = 1 if args.quick else 3
    max_workers = args.max_workers or max(2, min(os.cpu_count() or 1, 8))

    results: dict = {}
    # The pool first: lerobot's env creates GL contexts in this process.
    results["record"] = bench_pool(args, "pixels", 1, args.n_envs, None, args.episodes)
    print(f"record : {results['record']['steps_per_s']:.1f} steps/s", flush=True)
    results["chunked"] = bench_pool(args, "pixels", args.chunk, args.n_envs, None, 2 * args.episodes)
    print(f"chunked: {results['chunked']['steps_per_s']:.1f} steps/s", flush=True)
    results["state"] = bench_pool(args, "state", 1, args.n_envs, None, 3 * args.episodes)
    print(f"state  : {results['state']['steps_per_s']:.1f} steps/s", flush=True)
    scaling = {}
    for workers in range(1, max_workers + 1):
        scaling[workers] = bench_pool(args, "state", 1, workers, workers, 2 if args.quick else 4)[
            "steps_per_s"
        ]
        print(f"state, {workers} worker(s): {scaling[workers]:.1f} steps/s", flush=True)
    results["lerobot"] = bench_lerobot(args)
    print(f"lerobot: {results['lerobot']['steps_per_s']:.1f} steps/s", flush=True)

    base = results["lerobot"]["steps_per_s"]
    summary = {
        "date": time.strftime("%Y-%m-%d"),
        "lerobot_version": importlib.metadata.version("lerobot"),
        "lerobot_vector_env": results["lerobot"]["vector_env"],
        "machine": f"{platform.node()} {os.cpu_count()} cores, MUJOCO_GL={os.environ.get('MUJOCO_GL')}",
        "suite": SUITE,
        "task_id": args.task_id,
        "n_envs": args.n_envs,
        "image_size": args.size,
        "episode_steps": args.episode_steps,
        "episodes_per_env": args.episodes,
        "chunk": args.chunk,
        "lerobot_steps_per_s": round(base, 2),
        "lerobot_reset_s": round(results["lerobot"]["reset_s"], 2),
        "record_steps_per_s": round(results["record"]["steps_per_s"], 2),
        "record_ratio": round(results["record"]["steps_per_s"] / base, 2),
        "chunked_steps_per_s": round(results["chunked"]["steps_per_s"], 2),
        "chunked_ratio": round(results["chunked"]["steps_per_s"] / base, 2),
        "state_steps_per_s": round(results["state"]["steps_per_s"], 2),
        "state_ratio": round(results["state"]["steps_per_s"] / base, 2),
        "state_scaling_steps_per_s": {str(k): round(v, 2) for k, v in scaling.items()},
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

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
- ``state``: pool, state mode (no renderer, the fast path of :mod:`lerobot_diffrl.envs.fast_state`);
- ``state_1worker`` / ``state_1worker_robosuite``: one env in one worker, state mode, fast path against
  robosuite's own step (``fast_state=False``), side by side;
- ``physics``: MuJoCo's limit, the time of the 25 raw ``mj_step`` calls of each control step alone, measured on
  copies of the states a random-action episode passes through (same task, same controls);
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
    args: argparse.Namespace,
    obs_mode: str,
    every: int,
    n_envs: int,
    n_workers: int | None,
    episodes: int,
    fast_state: bool = True,
) -> dict:
    """``every``: render the observation of every ``every``-th step (1: all) and the first of each episode."""
    slots = [SlotSpec(SUITE, args.task_id, max_steps=args.episode_steps)] * n_envs
    t_build = time.perf_counter()
    size = (args.size, args.size)
    with EnvPool(
        slots, obs_mode=obs_mode, image_size=size, n_workers=n_workers, fast_state=fast_state
    ) as pool:
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


def bench_physics(args: argparse.Namespace, steps: int) -> dict:
    """Steps/s if a control step cost only its 25 raw ``mj_step`` calls: each control step of a random-action
    episode is replayed on a copy of its starting state with the controls robosuite applied in its first
    substep held, and only those ``mj_step`` calls are timed."""
    import copy

    import mujoco

    from lerobot_diffrl.envs.episode import TaskEpisode
    from lerobot_diffrl.envs.suites import task_spec

    ep = TaskEpisode(task_spec(SUITE, args.task_id), render=False, fast_state=False)
    ep.reset(0)
    model, data = ep.sim.env.sim.model._model, ep.sim.env.sim.data._data
    substeps = int(ep.sim.env.control_timestep / ep.sim.env.model_timestep)
    rng, physics_s = np.random.default_rng(0), 0.0
    for t in range(steps):
        if ep.done or ep.elapsed_steps >= args.episode_steps:
            ep.reset(t)
        replay = copy.copy(data)
        ep.step(_actions(rng, 1)[0], render=False)
        replay.ctrl[:] = data.ctrl  # the last substep's controls
        start = time.perf_counter()
        for _ in range(substeps):
            mujoco.mj_step(model, replay)
        physics_s += time.perf_counter() - start
    ep.close()
    return {"steps_per_s": steps / physics_s, "substeps": substeps, "ms_per_step": 1e3 * physics_s / steps}


def _summary(args: argparse.Namespace, results: dict, scaling: dict, fraction: float) -> dict:
    """The JSON line."""
    base = results["lerobot"]["steps_per_s"]
    return {
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
        "state_1worker_steps_per_s": round(results["state_1worker"]["steps_per_s"], 2),
        "state_1worker_robosuite_steps_per_s": round(results["state_1worker_robosuite"]["steps_per_s"], 2),
        "fast_path_speedup": round(
            results["state_1worker"]["steps_per_s"] / results["state_1worker_robosuite"]["steps_per_s"], 2
        ),
        "physics_limit_steps_per_s": round(results["physics"]["steps_per_s"], 2),
        "state_fraction_of_physics": round(fraction, 3),
        "state_robosuite_fraction_of_physics": round(
            results["state_1worker_robosuite"]["steps_per_s"] / results["physics"]["steps_per_s"], 3
        ),
    }


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
    one = 4 if args.quick else 10
    results["state_1worker_robosuite"] = bench_pool(args, "state", 1, 1, 1, one, fast_state=False)
    results["state_1worker"] = bench_pool(args, "state", 1, 1, 1, one)
    results["physics"] = bench_physics(args, one * args.episode_steps)
    fraction = results["state_1worker"]["steps_per_s"] / results["physics"]["steps_per_s"]
    print(
        f"state, 1 worker: {results['state_1worker']['steps_per_s']:.1f} steps/s fast path, "
        f"{results['state_1worker_robosuite']['steps_per_s']:.1f} robosuite's step; physics limit "
        f"{results['physics']['steps_per_s']:.1f} steps/s ({results['physics']['ms_per_step']:.2f} ms per "
        f"control step); fraction {fraction:.2f}",
        flush=True,
    )
    scaling = {}
    for workers in range(1, max_workers + 1):
        scaling[workers] = bench_pool(args, "state", 1, workers, workers, 2 if args.quick else 4)[
            "steps_per_s"
        ]
        print(f"state, {workers} worker(s): {scaling[workers]:.1f} steps/s", flush=True)
    results["lerobot"] = bench_lerobot(args)
    print(f"lerobot: {results['lerobot']['steps_per_s']:.1f} steps/s", flush=True)

    print(json.dumps(_summary(args, results, scaling, fraction)))


if __name__ == "__main__":
    main()

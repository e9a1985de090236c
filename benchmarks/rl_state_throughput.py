"""End-to-end RL throughput in state mode: the state fast path against robosuite's own step, side by side.

Runs ``lerobot-diffrl-rl`` twice on the same state expert and the same LIBERO task, once with
``--env.fast_state=true`` (the default) and once with ``--env.fast_state=false``, alternating the order over
``--repeats`` pairs so that a drifting machine load hits both alike, and reports the rollout env steps per second
each iteration logged (``metrics.jsonl``: env steps of the iteration's rollout over its wall time, policy
inference included, the PPO update excluded) and the whole iterations' env steps per second.

Usage::

    python benchmarks/rl_state_throughput.py \\
        --policy_path=outputs/benchmarks/method_libero/libero_object_0/diffrl_bc/checkpoints/last/pretrained_model

The last stdout line is a JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")


def one_run(args: argparse.Namespace, fast: bool, out: Path) -> dict:
    from lerobot_diffrl.recipes.commands import console_script
    from lerobot_diffrl.rl.metrics_log import read_metrics

    cmd = [
        console_script("lerobot-diffrl-rl"),
        f"--policy_path={args.policy_path}",
        f"--output_dir={out}",
        "--env.obs_mode=state",
        f"--env.suites={args.suite}",
        f"--env.tasks={args.task_id}",
        f"--env.n_envs={args.n_envs}",
        f"--env.fast_state={str(fast).lower()}",
        f"--iterations={args.iterations}",
        f"--ppo.n_steps={args.n_steps}",
        "--eval.episodes_per_task=0",
        f"--save_freq={args.iterations}",
        "--device=cpu",
        "--torch_threads=1",
    ]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"error: lerobot-diffrl-rl failed: {done.stderr.strip().splitlines()[-1:]}")
    train = [r for r in read_metrics(out) if r.get("event") == "train"]
    steps = sum(r["env_steps"] - (train[i - 1]["env_steps"] if i else 0) for i, r in enumerate(train))
    rollout_s = sum(r["rollout_s"] for r in train)
    update_s = sum(r["update_s"] for r in train)
    return {
        "rollout_steps_per_s": steps / rollout_s,
        "iteration_steps_per_s": steps / (rollout_s + update_s),
        "env_steps": steps,
        "wall_s": wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--policy_path", required=True, help="a state expert's pretrained_model folder")
    parser.add_argument("--suite", default="libero_object")
    parser.add_argument("--task_id", type=int, default=0)
    parser.add_argument("--n_envs", type=int, default=8)
    parser.add_argument("--n_steps", type=int, default=10)
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    if not (Path(args.policy_path) / "config.json").is_file():
        raise SystemExit(f"error: --policy_path {args.policy_path} holds no config.json")
    runs: dict[str, list[dict]] = {"fast": [], "robosuite": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for fast in (True, False) if r % 2 == 0 else (False, True):
                name = "fast" if fast else "robosuite"
                runs[name].append(one_run(args, fast, Path(tmp) / f"{name}{r}"))
                print(
                    f"{name:9s} run {r}: {runs[name][-1]['rollout_steps_per_s']:.1f} rollout env steps/s",
                    flush=True,
                )
    mean = {k: {m: sum(x[m] for x in v) / len(v) for m in v[0]} for k, v in runs.items()}
    print(f"{'step':10s} {'rollout env steps/s':>20s} {'iteration env steps/s':>22s}")
    for name, m in mean.items():
        print(f"{name:10s} {m['rollout_steps_per_s']:20.1f} {m['iteration_steps_per_s']:22.1f}")
    summary = {
        "benchmark": "rl_state_throughput",
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.node()} {os.cpu_count()} cores",
        "python": platform.python_version(),
        "settings": {k: v for k, v in vars(args).items() if k != "policy_path"},
        "fast_rollout_steps_per_s": round(mean["fast"]["rollout_steps_per_s"], 2),
        "robosuite_rollout_steps_per_s": round(mean["robosuite"]["rollout_steps_per_s"], 2),
        "rollout_speedup": round(
            mean["fast"]["rollout_steps_per_s"] / mean["robosuite"]["rollout_steps_per_s"], 2
        ),
        "fast_iteration_steps_per_s": round(mean["fast"]["iteration_steps_per_s"], 2),
        "robosuite_iteration_steps_per_s": round(mean["robosuite"]["iteration_steps_per_s"], 2),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    sys.exit(main())

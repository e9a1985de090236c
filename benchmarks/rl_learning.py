"""Does RL fine-tuning learn? DPPO (``diffrl``) and Gaussian PPO (``gaussrl``) side by side on the passage task.

Both policies are warm-started by behaviour cloning on the same imperfect scripted demos (half of them aim at
the wall beside the gap and get stuck; see ``lerobot_diffrl.envs.passage``), then fine-tuned by the same
trainer (``lerobot_diffrl.rl.trainer``) with the same settings (``passage_rl_config``), 50 parallel envs, sparse
success reward. Success is measured deterministically on the same 200 evaluation episodes before and after.
The last stdout line is a JSON object with ``diffrl_success_before/after``, ``gauss_success_before/after``,
``env_steps`` and timings.

Usage::

    python benchmarks/rl_learning.py            # BC 3000 steps, 40 RL iterations per policy
    python benchmarks/rl_learning.py --quick    # BC 2000 steps, 20 RL iterations (< 5 min on 2 cores)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def run(kind: str, root: Path, bc_steps: int, iterations: int, seed: int) -> dict:
    from lerobot_diffrl.rl.passage_warmstart import passage_rl_config, pretrain_passage_policy
    from lerobot_diffrl.rl.trainer import RLTrainer

    t0 = time.perf_counter()
    ckpt = pretrain_passage_policy(kind, root / f"{kind}_bc", steps=bc_steps, seed=seed)
    bc_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    summary = RLTrainer(passage_rl_config(ckpt, root / f"{kind}_rl", iterations, seed)).train()
    return {**summary, "bc_s": bc_s, "rl_s": time.perf_counter() - t0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    bc_steps, iterations = (2000, 20) if args.quick else (3000, 40)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("diffrl", "gaussrl"):
            results[kind] = run(kind, Path(tmp), bc_steps, iterations, args.seed)
    d, g = results["diffrl"], results["gaussrl"]
    print(f"\nRL learning on the passage task ({iterations} iterations, 50 envs, seed {args.seed})")
    print(
        f"{'policy':<10} {'BC success':>11} {'after RL':>9} {'gain':>7} {'env steps':>10} {'BC s':>6} {'RL s':>6}"
    )
    for name, r in (("diffrl", d), ("gaussrl", g)):
        gain = r["success_after"] - r["success_before"]
        print(
            f"{name:<10} {r['success_before']:>11.3f} {r['success_after']:>9.3f} {gain:>+7.3f} "
            f"{r['env_steps']:>10d} {r['bc_s']:>6.0f} {r['rl_s']:>6.0f}"
        )
    print(
        json.dumps(
            {
                "benchmark": "rl_learning",
                "quick": args.quick,
                "iterations": iterations,
                "diffrl_success_before": d["success_before"],
                "diffrl_success_after": d["success_after"],
                "diffrl_ci95_after": d["ci95_after"],
                "gauss_success_before": g["success_before"],
                "gauss_success_after": g["success_after"],
                "gauss_ci95_after": g["ci95_after"],
                "env_steps": d["env_steps"],
                "gauss_env_steps": g["env_steps"],
                "diffrl_wall_s": round(d["bc_s"] + d["rl_s"], 1),
                "gauss_wall_s": round(g["bc_s"] + g["rl_s"], 1),
                "machine": f"{platform.machine()} {os.cpu_count()} cores",
            }
        )
    )


if __name__ == "__main__":
    main()

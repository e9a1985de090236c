"""DPPO settings on one LIBERO task: one set of demos and one BC warm start, several RL variants side by side.

Why: ``method_libero.py``'s DPPO gain on libero_object task 0 was +0.06 with its settings (lr 1e-4 decaying,
30 chunks per env per iteration). This asks whether the learning rate, the clip range, the number of iterations
or whole episodes per iteration change that. Every variant starts from the same BC checkpoint and is evaluated on
the same 50 init states as ``method_libero.py``; the baseline is ``method_libero``'s own setting (``baseline``).

    python benchmarks/dppo_tuning.py                                   # all variants, ~1.2 h on 2 cores
    python benchmarks/dppo_tuning.py --variants=baseline,nsteps40_lr1e-4_const

Writes ``benchmarks/results/dppo_tuning_<suite><task>.json``; prints a table and, last, one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import method_libero as ml  # noqa: E402  (the same demo, BC and RL steps as the method benchmark)

#: name -> (extra lerobot-diffrl-rl flags, iterations).
VARIANTS: dict[str, tuple[str, int]] = {
    "baseline": ("--ppo.batch_size=1000", 10),
    "lr3e-4_const": ("--ppo.batch_size=1000 --ppo.actor_lr=3e-4 --ppo.min_lr_ratio=1.0", 10),
    "lr1e-3_const_clip05": (
        "--ppo.batch_size=1000 --ppo.actor_lr=1e-3 --ppo.min_lr_ratio=1.0 --ppo.clip_final=0.05 "
        "--ppo.clip_base=0.005",
        10,
    ),
    "lr1e-4_const_20it": ("--ppo.batch_size=1000 --ppo.actor_lr=1e-4 --ppo.min_lr_ratio=1.0", 20),
    "nsteps40_lr1e-4_const": (
        "--ppo.batch_size=1000 --ppo.actor_lr=1e-4 --ppo.min_lr_ratio=1.0 --ppo.n_steps=40",
        12,
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="libero_object:0")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--work_dir", default="outputs/benchmarks/dppo_tuning")
    args = parser.parse_args()
    unknown = [n for n in args.variants.split(",") if n not in VARIANTS]
    if unknown:
        raise SystemExit(f"error: unknown variant(s) {', '.join(unknown)}; variants: {', '.join(VARIANTS)}")
    suite, _, tid = args.task.partition(":")
    task = (suite, int(tid))
    run = argparse.Namespace(
        demos=8, image_size=64, bc_steps_diffrl=5000, bc_steps_gauss=2000, rl_iterations=10, n_envs=16,
        n_steps=30, eval_episodes=50, seed=0, rl_args="",
    )  # fmt: skip
    base = Path(args.work_dir) / f"{suite}_{tid}"
    shared = base / "shared"
    shared.mkdir(parents=True, exist_ok=True)
    _, state_root = ml.demos(task, shared, run)
    results = {}
    for name in args.variants.split(","):
        run.rl_args, run.rl_iterations = VARIANTS[name]
        work = base / name
        work.mkdir(exist_ok=True)
        if not (work / "diffrl_bc").exists():  # one BC for all: trained in the first variant, linked after
            first = next(iter(base.glob("*/diffrl_bc")), None)
            if first is not None and first.resolve().parent != work.resolve():
                (work / "diffrl_bc").symlink_to(first.resolve())
        t0 = time.perf_counter()
        res = ml.expert("diffrl", task, state_root, work, run)
        results[name] = {
            "rl_args": run.rl_args,
            "iterations": run.rl_iterations,
            "success_before": res["success_before"],
            "success_after": res["success_after"],
            "ci95_after": res.get("ci95_after"),
            "env_steps": res["env_steps"],
            "train_success": res["curve"]["train"],
            "wall_s": round(time.perf_counter() - t0, 1),
        }
    print(f"{'variant':<24} {'before':>7} {'after':>7} {'gain':>7} {'env steps':>10}")
    for name, r in results.items():
        gain = r["success_after"] - r["success_before"]
        print(
            f"{name:<24} {r['success_before']:>7.2f} {r['success_after']:>7.2f} {gain:>+7.2f} {r['env_steps']:>10}"
        )
    out = {"benchmark": "dppo_tuning", "task": f"{suite}/{tid}", "eval_init_states": 50, "variants": results}
    path = ml.REPO / "benchmarks" / "results" / f"dppo_tuning_{suite}{tid}.json"
    path.write_text(json.dumps(out, indent=1))
    print(json.dumps(out))


if __name__ == "__main__":
    main()

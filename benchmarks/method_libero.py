"""Does the method work on LIBERO? DPPO (``diffrl``) against Gaussian PPO (``gaussrl``) on real LIBERO tasks.

Per task, with the per-task state-expert recipe (``lerobot_diffrl.recipes.state_expert``, the README's commands):

1. ``lerobot-diffrl-generate --actor.type=scripted --record_env_state=true``: scripted demos with both cameras;
2. ``lerobot-edit-dataset --operation.type=remove_feature``: their camera-free copy for state BC;
3. ``lerobot-train --policy.type=diffrl`` and ``--policy.type=gaussrl`` on the same demos, same seed;
4. ``lerobot-diffrl-rl`` on each, same env-step budget, same seeds, evaluated deterministically before and after
   on init states 0 .. ``--eval_episodes`` - 1 (95% Wilson intervals).

Every stage writes into ``--work_dir`` and is skipped when its artefact exists, so a killed run resumes.
Output: a table, PNG plots of success against env steps, ``benchmarks/results/method_libero.json`` and, as the
last stdout line, the same JSON object. The assets are the project's stand-ins (see ``shared/notes``), so the
numbers are ours, not upstream LIBERO's.

Usage::

    python benchmarks/method_libero.py                      # the 4 tasks below, ~1.5 h on 2 cores
    python benchmarks/method_libero.py --tasks=libero_object:0 --eval_episodes=20 --rl_iterations=4
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
DEFAULT_TASKS = "libero_object:0,libero_object:1,libero_spatial:0,libero_spatial:1"
KINDS = ("diffrl", "gaussrl")


def sh(cmd: list[str], log: Path) -> None:
    """Run one project command (resolved next to this Python) with its output in ``log``; fail loudly."""
    from lerobot_diffrl.recipes.commands import console_script

    full = [console_script(cmd[0]), *cmd[1:]]
    with log.open("a") as out:
        out.write("$ " + " ".join(cmd) + "\n")
        out.flush()
        rc = subprocess.run(full, stdout=out, stderr=subprocess.STDOUT, cwd=REPO).returncode
    if rc != 0:
        tail = log.read_text().splitlines()[-5:]
        raise SystemExit(f"error: {cmd[0]} failed (exit {rc}); see {log}:\n" + "\n".join(tail))


def demos(task: tuple[str, int], work: Path, args: argparse.Namespace) -> tuple[Path, Path]:
    """Scripted demos (both cameras) and their camera-free copy."""
    from lerobot_diffrl.recipes.state_expert import strip_cameras_command

    suite, tid = task
    root, state_root = work / "demos", work / "demos_state"
    if not root.exists():
        sh(
            [
                "lerobot-diffrl-generate",
                f"--suite={suite}",
                f"--task_ids={tid}",
                f"--episodes_per_task={args.demos}",
                "--actor.type=scripted",
                "--record_env_state=true",
                f"--image_size={args.image_size}",
                "--n_envs=2",
                f"--seed={args.seed}",
                f"--output_dir={root}",
                f"--repo_id=local/{suite}_{tid}_demos",
                "--progress=false",
            ],
            work / "demos.log",
        )
    if not state_root.exists():
        sh(
            strip_cameras_command(
                root, f"local/{suite}_{tid}_demos", state_root, f"local/{suite}_{tid}_state"
            ),
            work / "demos.log",
        )
    return root, state_root


def expert(kind: str, task: tuple[str, int], state_root: Path, work: Path, args: argparse.Namespace) -> dict:
    """BC then RL of one expert; the RL run's summary plus its learning curve."""
    from lerobot_diffrl.recipes.state_expert import state_bc_command, state_rl_command
    from lerobot_diffrl.run_files import last_pretrained_model

    suite, tid = task
    bc_dir, rl_dir = work / f"{kind}_bc", work / f"{kind}_rl"
    steps = args.bc_steps_diffrl if kind == "diffrl" else args.bc_steps_gauss
    t0 = time.perf_counter()
    ckpt = last_pretrained_model(bc_dir)
    if not ckpt.exists():
        shutil.rmtree(bc_dir, ignore_errors=True)
        # lerobot-train's loader would take ~30 min per expert here (see lerobot_diffrl/data/state_bc.py)
        cmd = state_bc_command(
            kind,
            state_root,
            f"local/{suite}_{tid}_state",
            bc_dir,
            steps,
            args.seed,
            "lerobot-diffrl-train-state",
        )
        sh(cmd, work / f"{kind}_bc.log")
    bc_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    if not (rl_dir / "summary.json").exists():
        resume = ["--resume=true"] if rl_dir.exists() else []
        cmd = state_rl_command(
            ckpt,
            rl_dir,
            suite,
            tid,
            args.rl_iterations,
            args.n_envs,
            args.n_steps,
            args.eval_episodes,
            args.seed,
        )
        sh(cmd + args.rl_args.split() + resume, work / f"{kind}_rl.log")
    summary = json.loads((rl_dir / "summary.json").read_text())
    return {**summary, "bc_s": bc_s, "rl_s": time.perf_counter() - t0, "curve": curve(rl_dir)}


def curve(rl_dir: Path) -> dict[str, list]:
    """Training-rollout success per iteration and the deterministic evaluations, against env steps."""
    train, evals = [], []
    for line in (rl_dir / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec.get("event") == "eval":
            evals.append([rec["env_steps"], rec["eval_success_rate"]])
        elif "success_rate" in rec and "env_steps" in rec:
            train.append([rec["env_steps"], rec["success_rate"]])
    return {"train": train, "eval": evals}


def plot(per_task: dict[str, dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(per_task), figsize=(4 * len(per_task), 3.2), squeeze=False)
    for ax, (name, res) in zip(axes[0], per_task.items(), strict=True):
        for kind, colour in zip(KINDS, ("tab:blue", "tab:orange"), strict=True):
            c = res[kind]["curve"]
            if c["train"]:
                xs, ys = zip(*c["train"], strict=True)
                ax.plot(xs, ys, "--", color=colour, alpha=0.6, label=f"{kind} rollouts")
            if c["eval"]:
                xs, ys = zip(*c["eval"], strict=True)
                ax.plot(xs, ys, "o-", color=colour, label=f"{kind} eval")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("env steps")
        ax.set_ylim(-0.02, 1.02)
    axes[0][0].set_ylabel("success rate")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def task_row(name: str, res: dict, n: int) -> dict:
    from lerobot_diffrl.stats import wilson_interval

    row = {"task": name}
    for kind, tag in zip(KINDS, ("diffrl", "gauss"), strict=True):
        for when in ("before", "after"):
            p = res[kind][f"success_{when}"]
            row[f"{tag}_success_{when}"] = p
            row[f"{tag}_ci95_{when}"] = list(wilson_interval(round(p * n), n))
        row[f"{tag}_env_steps"] = res[kind]["env_steps"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=DEFAULT_TASKS, help="suite:task_id, comma separated")
    parser.add_argument("--demos", type=int, default=8)
    parser.add_argument("--image_size", type=int, default=64)
    parser.add_argument("--bc_steps_diffrl", type=int, default=5000)
    parser.add_argument("--bc_steps_gauss", type=int, default=2000)
    parser.add_argument("--rl_iterations", type=int, default=8)
    parser.add_argument("--n_envs", type=int, default=16)
    parser.add_argument("--n_steps", type=int, default=10, help="action chunks per env per iteration")
    parser.add_argument("--eval_episodes", type=int, default=50)
    parser.add_argument(
        "--rl_args",
        default="",
        help="extra lerobot-diffrl-rl flags for both experts, e.g. '--ppo.batch_size=1000'",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work_dir", default="outputs/benchmarks/method_libero")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "method_libero.json"))
    args = parser.parse_args()
    tasks = []
    for entry in args.tasks.split(","):
        suite, _, tid = entry.partition(":")
        tasks.append((suite.strip(), int(tid)))
    started = time.perf_counter()
    per_task: dict[str, dict] = {}
    for task in tasks:
        name = f"{task[0]}/{task[1]}"
        work = Path(args.work_dir) / name.replace("/", "_")
        work.mkdir(parents=True, exist_ok=True)
        _, state_root = demos(task, work, args)
        per_task[name] = {kind: expert(kind, task, state_root, work, args) for kind in KINDS}
        report(per_task, args, time.perf_counter() - started)  # partial results survive a stopped run
        print(
            f"[{time.perf_counter() - started:7.0f}s] {name}: "
            + ", ".join(
                f"{k} {per_task[name][k]['success_before']:.2f} -> {per_task[name][k]['success_after']:.2f}"
                for k in KINDS
            ),
            flush=True,
        )


def report(per_task: dict[str, dict], args: argparse.Namespace, wall_s: float) -> None:
    import numpy as np

    rows = [task_row(name, res, args.eval_episodes) for name, res in per_task.items()]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    plot(per_task, out.with_suffix(".png"))
    mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k.endswith(("_before", "_after"))}
    result = {
        "benchmark": "method_libero",
        "tasks": list(per_task),
        **{k: v for k, v in mean.items() if "success" in k},
        "diffrl_gain": mean["diffrl_success_after"] - mean["diffrl_success_before"],
        "gauss_gain": mean["gauss_success_after"] - mean["gauss_success_before"],
        "per_task": rows,
        "env_steps_per_task": rows[0]["diffrl_env_steps"],
        "eval_init_states": args.eval_episodes,
        "settings": {k: v for k, v in vars(args).items() if k not in ("out", "work_dir")},
        "curves": {name: {k: res[k]["curve"] for k in KINDS} for name, res in per_task.items()},
        "plot": out.with_suffix(".png").name,
        "wall_s": wall_s,
        "machine": f"{platform.node()} {os.cpu_count()} cores",
        "python": sys.version.split()[0],
    }
    out.write_text(json.dumps(result, indent=2))
    print(f"{'task':<18} {'diffrl before':>13} {'after':>6} {'gauss before':>13} {'after':>6}")
    for r in rows:
        print(
            f"{r['task']:<18} {r['diffrl_success_before']:>13.2f} {r['diffrl_success_after']:>6.2f} "
            f"{r['gauss_success_before']:>13.2f} {r['gauss_success_after']:>6.2f}"
        )
    print(json.dumps({k: v for k, v in result.items() if k != "curves"}))


if __name__ == "__main__":
    main()

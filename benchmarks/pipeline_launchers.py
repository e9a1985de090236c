"""Wall time of a two-group pipeline: the serial launcher against the concurrent ones, side by side in one run.

The recipe is the tiny one with two expert groups (``bc.per_task=true`` on libero_object tasks 0 and 1) through
demos, BC, RL and generation, scaled down so that three runs fit in minutes on two cores (``--scale=tiny``, the
default: 20-step scripted demos, 200 BC steps, one DPPO iteration, two 40-step generated episodes per task), or the
tiny recipe's own BC/RL/generation settings (``--scale=recipe``). Each launcher gets a fresh run folder; the RL
stage's overlap is read from the job markers. On a GPU machine pass ``--device=cuda``: the local launcher then gives
each job its own GPU.

    python benchmarks/pipeline_launchers.py                       # serial, local (2 CPU slots), ray
    python benchmarks/pipeline_launchers.py --launchers=serial,local --device=cuda

Prints a table and, as its last line, one JSON object.
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

REPO = Path(__file__).resolve().parents[1]
GROUPS = ("libero_object_task00", "libero_object_task01")
COMMON = [
    '--tasks=["libero_object:0,1"]',
    "--stages=[demos,bc,rl,generate]",
    "--bc.per_task=true",
]
TINY = [
    "--demos.episodes_per_task=2",
    "--demos.args=[--image_size=32,--n_envs=2,--record_env_state=true,--keep=all,--max_steps=20]",
    "--bc.args=[--steps=200,--policy.use_images=false,--policy.denoiser=mlp,--policy.num_train_timesteps=20,"
    "--policy.ddim_steps=10,--policy.ft_denoising_steps=10,--batch_size=64,--num_workers=0,--log_freq=100]",
    "--rl.args=[--iterations=1,--env.n_envs=4,--env.obs_mode=state,--ppo.n_steps=4,--eval.freq=0,"
    "--eval.episodes_per_task=2,--eval.seed=0,--save_freq=1,--torch_threads=1]",
    "--generate.episodes_per_task=2",
    "--generate.args=[--keep=all,--image_size=32,--n_envs=1,--max_steps=40]",
]
LAUNCHER_ARGS = {
    "serial": ["--launcher.type=serial"],
    "local": ["--launcher.type=local", "--launcher.cpu_slots=2"],
    "ray": ["--launcher.type=ray"],
}


def run(launcher: str, work: Path, extra: list[str]) -> dict:
    out = work / launcher
    shutil.rmtree(out, ignore_errors=True)
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", RAY_USAGE_STATS_ENABLED="0")
    cmd = [sys.executable, "-m", "lerobot_diffrl.scripts.pipeline", f"--output_dir={out}", *extra]
    started = time.perf_counter()
    proc = subprocess.run([*cmd, *LAUNCHER_ARGS[launcher]], capture_output=True, text=True, env=env, cwd=REPO)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"error: the {launcher} run failed: {proc.stderr.strip().splitlines()[-1]}")
    markers = [json.loads((out / "stages" / "rl" / f"{g}.json").read_text()) for g in GROUPS]
    a, b = markers
    overlap = max(0.0, min(a["finished_at"], b["finished_at"]) - max(a["started_at"], b["started_at"]))
    summary = json.loads((out / "summary.json").read_text())
    return {
        "wall_s": round(wall, 1),
        "stage_s": {stage: entry["seconds"] for stage, entry in summary["stages"].items()},
        "rl_overlap_s": round(overlap, 1),
        "episodes": summary["stages"]["generate"]["jobs"][-1]["figures"]["episodes"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--launchers", default="serial,local,ray")
    parser.add_argument("--scale", choices=("tiny", "recipe"), default="tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--work_dir", default="outputs/benchmarks/pipeline_launchers")
    args = parser.parse_args()
    unknown = [n for n in args.launchers.split(",") if n not in LAUNCHER_ARGS]
    if unknown:
        raise SystemExit(
            f"error: unknown launcher(s) {', '.join(unknown)}; launchers: {', '.join(LAUNCHER_ARGS)}"
        )
    extra = [*COMMON, *(TINY if args.scale == "tiny" else []), f"--device={args.device}"]
    work = Path(args.work_dir).resolve()
    results = {name: run(name, work, extra) for name in args.launchers.split(",")}
    base = results.get("serial")
    stages = list(next(iter(results.values()))["stage_s"])
    print(
        f"{'launcher':<8} {'wall s':>8} {'speed-up':>8} {'RL overlap s':>13} "
        + " ".join(f"{s:>9}" for s in stages)
    )
    for name, res in results.items():
        speedup = base["wall_s"] / res["wall_s"] if base else float("nan")
        cols = " ".join(f"{res['stage_s'].get(s, 0):>9.1f}" for s in stages)
        print(f"{name:<8} {res['wall_s']:>8.1f} {speedup:>8.2f} {res['rl_overlap_s']:>13.1f} {cols}")
    print(
        json.dumps(
            {
                "benchmark": "pipeline_launchers",
                "scale": args.scale,
                "device": args.device,
                "results": results,
                "speedup_vs_serial": {n: round(base["wall_s"] / r["wall_s"], 3) for n, r in results.items()}
                if base
                else None,
                "machine": f"{platform.node()} {os.cpu_count()} cores",
            }
        )
    )


if __name__ == "__main__":
    main()

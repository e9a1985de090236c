"""The paper's comparison at CPU scale: which data makes the better student, and which data is smoother?

Reads the experts ``benchmarks/method_libero.py`` trained (its ``--work_dir``) and, per task:

1. generates episodes with both cameras (``lerobot-diffrl-generate``, successes only, the same number per task
   and source) from every data source: the DPPO expert (``diffrl_rl``), its BC start (``diffrl_bc``), the
   Gaussian-PPO expert (``gauss_rl``), its BC start (``gauss_bc``), and the randomised scripted expert
   (``scripted``: the project's human-free stand-in for human demos, i.e. the demos the experts were cloned from);
2. compares them with ``lerobot-diffrl-report`` (jerk, SPARC, LDLJ, their length-adjusted values, variances);
3. trains one camera-only student per source on DPPO data, Gaussian-PPO data and scripted demos (``lerobot-train
   --policy.type=diffrl``: both cameras and the robot's proprioception, no privileged object state; the CPU
   stand-in for the VLA), with the same steps and the same number of episodes per task;
4. evaluates every student on the same init states (``lerobot-diffrl-rl --iterations=0``, pixels).

Output: ``benchmarks/results/data_sources_libero.json`` (the student table beside the paper's 81.9 / 76.6 / 69.3,
the report's figures), the report folder, and the JSON object as the last stdout line. Stages are skipped when
their artefact exists. The assets are stand-ins: the numbers are ours, not upstream LIBERO's.

Usage::

    python benchmarks/data_sources_libero.py            # after method_libero.py, ~40 min on 2 cores
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("OMP_NUM_THREADS", "1")

from method_libero import REPO, sh  # noqa: E402  (the sibling benchmark's runner)

from lerobot_diffrl.recipes.state_expert import STATE_BC_ARGS  # noqa: E402
from lerobot_diffrl.run_files import last_pretrained_model  # noqa: E402

#: Data source -> (policy type, its run folder in a method_libero task folder); scripted has none.
SOURCES: dict[str, tuple[str, str] | None] = {
    "diffrl_rl": ("diffrl", "diffrl_rl"),
    "diffrl_bc": ("diffrl", "diffrl_bc"),
    "scripted": None,
    "gauss_bc": ("gaussrl", "gaussrl_bc"),
    "gauss_rl": ("gaussrl", "gaussrl_rl"),
}
#: The sources students are trained on, with the paper's VLA success on the matching data (arXiv 2509.19752).
STUDENT_SOURCES = {"diffrl_rl": 0.819, "scripted": 0.766, "gauss_rl": 0.693}
#: The state experts' diffusion settings (MLP denoiser, K = 20, lr 1e-3), on cameras instead of the object state.
STUDENT_ARGS = [
    *(a for a in STATE_BC_ARGS["diffrl"] if not a.startswith(("--policy.use_images=", "--batch_size="))),
    "--policy.use_images=true",
    "--policy.vision_width=16",
    "--policy.image_feature_dim=32",
]


def generate(
    source: str, task: tuple[str, int], method_dir: Path, out: Path, args: argparse.Namespace
) -> bool:
    """``args.episodes`` successful episodes of ``source`` on ``task``; False when its policy never succeeds."""
    suite, tid = task
    if (out / "meta" / "info.json").exists():
        return True
    if (out.parent / f"{out.name}.failed").exists():
        return False
    spec = SOURCES[source]
    policy = None if spec is None else last_pretrained_model(method_dir / spec[1])
    if policy is not None and not policy.exists():
        raise SystemExit(f"error: {policy} does not exist: run benchmarks/method_libero.py first")
    actor = (
        ["--actor.type=scripted"]
        if spec is None
        else [f"--actor.type={spec[0]}", f"--actor.path={policy}", "--actor.device=cpu"]
    )
    cmd = [
        "lerobot-diffrl-generate",
        *actor,
        f"--suite={suite}",
        f"--task_ids={tid}",
        f"--episodes_per_task={args.episodes}",
        f"--max_attempts_per_task={args.max_attempts}",
        f"--image_size={args.image_size}",
        "--n_envs=2",
        f"--seed={args.seed + 1000}",
        f"--output_dir={out}",
        f"--repo_id=local/{source}_{suite}_{tid}",
        "--progress=false",
    ]
    try:
        sh(cmd, out.parent / f"{out.name}.log")
    except SystemExit as err:  # "no episode was kept": the source never succeeded within the attempt cap
        (out.parent / f"{out.name}.failed").write_text(str(err))
        shutil.rmtree(out, ignore_errors=True)
        return False
    return True


def merged(source: str, parts: list[Path], work: Path) -> Path:
    """The source's episodes of every task in one dataset, without the privileged object state."""
    from lerobot_diffrl.envs.lerobot_batch import OBS_ENV_STATE

    out = work / "students" / f"{source}_data"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = work / "students" / f"{source}_merged"
    shutil.rmtree(tmp, ignore_errors=True)
    sh(
        [
            "lerobot-diffrl-merge",
            f"--inputs=[{','.join(map(str, parts))}]",
            f"--output_dir={tmp}",
            f"--repo_id=local/{source}_merged",
        ],
        work / "students" / f"{source}.log",
    )
    info = json.loads((tmp / "meta" / "info.json").read_text())
    if OBS_ENV_STATE in info["features"]:
        sh(
            [
                "lerobot-edit-dataset",
                f"--repo_id=local/{source}_merged",
                f"--root={tmp}",
                f"--new_repo_id=local/{source}_data",
                f"--new_root={out}",
                "--operation.type=remove_feature",
                f"--operation.feature_names=['{OBS_ENV_STATE}']",
            ],
            work / "students" / f"{source}.log",
        )
        shutil.rmtree(tmp)
    else:
        tmp.rename(out)
    return out


def student(
    source: str, data: Path, tasks: list[tuple[str, int]], work: Path, args: argparse.Namespace
) -> dict:
    """Train the camera-only student on ``data`` and evaluate it on init states 0 .. eval_episodes - 1."""
    train = work / "students" / f"{source}_student"
    ckpt = last_pretrained_model(train)
    log = work / "students" / f"{source}.log"
    if not ckpt.exists():
        shutil.rmtree(train, ignore_errors=True)
        sh(
            [
                "lerobot-train",
                "--policy.type=diffrl",
                *STUDENT_ARGS,
                f"--dataset.repo_id=local/{source}_data",
                f"--dataset.root={data}",
                f"--output_dir={train}",
                f"--steps={args.student_steps}",
                f"--batch_size={args.student_batch}",
                f"--save_freq={args.student_steps}",
                f"--seed={args.seed}",
                "--policy.push_to_hub=false",
                "--policy.device=cpu",
                "--wandb.enable=false",
                "--env_eval_freq=0",
                "--num_workers=1",
                f"--policy.scheduler_warmup_steps={args.student_steps // 10}",
            ],
            log,
        )
    results = {}
    for suite, tid in tasks:
        ev = work / "students" / f"{source}_eval_{suite}_{tid}"
        if not (ev / "summary.json").exists():
            shutil.rmtree(ev, ignore_errors=True)
            sh(
                [
                    "lerobot-diffrl-rl",
                    f"--policy_path={ckpt}",
                    f"--output_dir={ev}",
                    "--iterations=0",
                    "--env.obs_mode=pixels",
                    f"--env.image_size={args.image_size}",
                    f"--env.suites={suite}",
                    f"--env.tasks={tid}",
                    "--env.n_envs=2",
                    f"--eval.episodes_per_task={args.eval_episodes}",
                    "--eval.seed=0",
                    "--device=cpu",
                    "--torch_threads=1",
                ],
                log,
            )
        results[f"{suite}/{tid}"] = json.loads((ev / "summary.json").read_text())["success_before"]
    return results


def report(sets: dict[str, list[Path]], work: Path) -> dict:
    out = work / "report"
    if not (out / "report.json").exists():
        names = [s for s in sets if sets[s]]
        parts = {s: merged(s, sets[s], work) for s in names}
        sh(
            [
                "lerobot-diffrl-report",
                f"--datasets=[{','.join(str(parts[s]) for s in names)}]",
                f"--labels=[{','.join(names)}]",
                f"--output_dir={out}",
            ],
            work / "report.log",
        )
    return json.loads((out / "report.json").read_text())


def main() -> None:
    from lerobot_diffrl.stats import wilson_interval

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="libero_object:0")
    parser.add_argument("--method_dir", default="outputs/benchmarks/method_libero")
    parser.add_argument("--work_dir", default="outputs/benchmarks/data_sources_libero")
    parser.add_argument("--episodes", type=int, default=4, help="successful episodes per task and source")
    parser.add_argument("--max_attempts", type=int, default=12)
    parser.add_argument("--image_size", type=int, default=64)
    parser.add_argument("--student_steps", type=int, default=800)
    parser.add_argument("--student_batch", type=int, default=16)
    parser.add_argument("--eval_episodes", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "data_sources_libero.json"))
    args = parser.parse_args()
    tasks = [(e.split(":")[0], int(e.split(":")[1])) for e in args.tasks.split(",")]
    work, started = Path(args.work_dir), time.perf_counter()
    sets: dict[str, list[Path]] = {s: [] for s in SOURCES}
    for suite, tid in tasks:
        method = Path(args.method_dir) / f"{suite}_{tid}"
        for source in SOURCES:
            out = work / "generated" / f"{source}_{suite}_{tid}"
            out.parent.mkdir(parents=True, exist_ok=True)
            if generate(source, (suite, tid), method, out, args):
                sets[source].append(out)
        print(f"[{time.perf_counter() - started:6.0f}s] generated {suite}/{tid}", flush=True)
    quality = report(sets, work)
    table = {}
    for source, paper in STUDENT_SOURCES.items():
        if len(sets[source]) != len(tasks):
            table[source] = {
                "paper_vla_success": paper,
                "student_success": None,
                "why": "source never succeeded",
            }
            continue
        per_task = student(source, merged(source, sets[source], work), tasks, work, args)
        n = args.eval_episodes * len(tasks)
        wins = round(sum(per_task.values()) * args.eval_episodes)
        table[source] = {
            "paper_vla_success": paper,
            "student_success": wins / n,
            "ci95": list(wilson_interval(wins, n)),
            "per_task": per_task,
        }
    summarise(table, quality, tasks, args, time.perf_counter() - started)


def summarise(table: dict, quality: dict, tasks: list, args: argparse.Namespace, wall_s: float) -> None:
    keys = (
        "n_episodes",
        "length_mean",
        "jerk",
        "jerk_adj",
        "sparc",
        "sparc_adj",
        "ldlj",
        "ldlj_adj",
        "path_length_var",
        "endpoint_var",
        "pairwise_distance",
        "action_var",
    )
    data = {
        d["label"]: {k: d["overall"].get(k) for k in keys if k in d["overall"]} for d in quality["datasets"]
    }
    result = {
        "benchmark": "data_sources_libero",
        "tasks": [f"{s}/{t}" for s, t in tasks],
        "episodes_per_task": args.episodes,
        "student_steps": args.student_steps,
        "eval_init_states": args.eval_episodes,
        "students": table,
        "data_quality": data,
        "wall_s": wall_s,
    }
    out = Path(args.out)
    out.write_text(json.dumps(result, indent=2))
    print(f"{'data source':<12} {'student success':>16} {'95% CI':>14} {'paper (pi0)':>12}")
    for source, row in table.items():
        s = row["student_success"]
        ci = f"{row['ci95'][0]:.2f}-{row['ci95'][1]:.2f}" if s is not None else "-"
        print(f"{source:<12} {s if s is None else f'{s:.2f}':>16} {ci:>14} {row['paper_vla_success']:>12.3f}")
    print(f"\n{'data source':<12} " + " ".join(f"{k:>10}" for k in ("jerk", "jerk_adj", "sparc", "ldlj")))
    for label, row in data.items():
        print(
            f"{label:<12} "
            + " ".join(f"{row.get(k) or float('nan'):>10.4g}" for k in ("jerk", "jerk_adj", "sparc", "ldlj"))
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()

"""Success of the scripted expert over every (task, init state) pair of the requested suites.

Runs :class:`lerobot_diffrl.data.scripted_expert.ScriptedExpert` on an :class:`EnvPool` in state mode (no
rendering), one slot per task. With ``pool.reset(seed=a)`` a slot that is the only one running its task starts
episode ``e`` from init state ``(a + e) % 50`` (``init_state_index`` in ``envs/episode.py``), so running
``n`` episodes per slot covers init states ``a .. a+n-1`` exactly once; the script checks the reported
``init_index`` of every episode against that. Episodes end at the suite's limit (lerobot-eval's: 280 steps for
libero_object and libero_spatial, 300 for libero_goal) or on success.

Prints a per-task table (success rate, mean length of successful episodes, mean length of all episodes) and,
last, one JSON line: ``{"libero_object_success": .., "libero_spatial_success": .., "per_task": {..},
"episodes": .., "wall_s": ..}``.

    python benchmarks/scripted_expert_success.py --suites libero_object,libero_spatial --init_states 0-49
    python benchmarks/scripted_expert_success.py --suites libero_goal --quick
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
from tqdm import tqdm

from lerobot_diffrl.data.scripted_expert import ScriptedExpert
from lerobot_diffrl.envs.pool import EnvPool, SlotSpec
from lerobot_diffrl.envs.suites import check_suite, load_init_states, num_tasks, parse_task_ids, task_spec
from lerobot_diffrl.errors import ConfigError
from lerobot_diffrl.scripts.cli import run_cli

QUICK_INIT_STATES = "0-2"


def parse_range(text: str) -> tuple[int, int]:
    """``"a-b"`` or ``"k"`` -> (first, count); init states must be a contiguous range (see module doc)."""
    try:
        parts = [int(p) for p in text.split("-")]
    except ValueError as err:
        raise ConfigError(f"--init_states must look like 0-49 or 7, got {text!r}") from err
    if len(parts) == 1:
        parts = parts * 2
    first, last = parts if len(parts) == 2 else (-1, -1)
    if not 0 <= first <= last:
        raise ConfigError(f"--init_states must look like 0-49 or 7 (first <= last), got {text!r}")
    return first, last - first + 1


def select_tasks(suites: list[str], task_ids: str | None) -> list[SlotSpec]:
    """The supported tasks of ``suites`` (optionally only ``task_ids``), as pool slots."""
    slots = []
    for suite in suites:
        check_suite(suite)
        ids = parse_task_ids(suite, task_ids) if task_ids else list(range(num_tasks(suite)))
        slots.extend(SlotSpec(suite, t) for t in ids if ScriptedExpert.supports((suite, t)))
    if not slots:
        raise ConfigError(f"the scripted expert covers no task of {', '.join(suites)}")
    return slots


def run(args: argparse.Namespace) -> dict:
    suites = [s.strip() for s in args.suites.split(",") if s.strip()]
    first, count = parse_range(QUICK_INIT_STATES if args.quick else args.init_states)
    slots = select_tasks(suites, args.tasks)
    n_states = [len(load_init_states(task_spec(slot.suite, slot.task_id))) for slot in slots]
    for slot, states in zip(slots, n_states, strict=True):
        if first + count > states:
            raise ConfigError(
                f"{slot.suite}/{slot.task_id} has {states} init states; asked for up to {first + count - 1}"
            )
    expert = ScriptedExpert(slots, seed=args.seed, randomize=not args.no_randomize)
    n = len(slots)
    results: list[list[tuple[int, bool, int]]] = [[] for _ in range(n)]  # (init, success, length) per slot
    started = time.perf_counter()
    with EnvPool(slots, obs_mode="state", seed=first, n_workers=args.n_workers) as pool:
        obs, infos = pool.reset(seed=first)
        expert.reset(np.arange(n), obs, infos)
        with tqdm(total=n * count, desc="episodes", unit="ep", file=sys.stderr) as progress:
            while any(len(r) < count for r in results):
                obs, _, _, _, infos = pool.step(expert.act(obs))
                ended = np.flatnonzero(infos["_final"])
                for i in ended:
                    info = infos["final_info"][i]
                    if len(results[i]) < count:
                        expected = (first + len(results[i])) % n_states[i]
                        if info.get("aborted"):
                            raise ConfigError(f"slot {i} ({slots[i]}) lost its worker: {info.get('reason')}")
                        if int(info["init_index"]) != expected:
                            raise ConfigError(
                                f"slot {i} ran init state {info['init_index']}, expected {expected}"
                            )
                        results[i].append((expected, bool(info["is_success"]), int(info["elapsed_steps"])))
                        progress.update(1)
                if len(ended):
                    expert.reset(ended, obs, infos)
    wall = time.perf_counter() - started
    per_task = {}
    for slot, rows in zip(slots, results, strict=True):
        ok = [length for _, success, length in rows if success]
        per_task[f"{slot.suite}/{slot.task_id}"] = {
            "success": float(np.mean([success for _, success, _ in rows])),
            "mean_len_success": float(np.mean(ok)) if ok else None,
            "mean_len": float(np.mean([length for _, _, length in rows])),
            "failed_inits": [init for init, success, _ in rows if not success],
            "task": task_spec(slot.suite, slot.task_id).language,
        }
    summary: dict = {}
    for suite in suites:
        rates = [v["success"] for k, v in per_task.items() if k.startswith(suite + "/")]
        if rates:
            summary[f"{suite}_success"] = float(np.mean(rates))
    summary.update(
        {
            "per_task": per_task,
            "episodes": n * count,
            "init_states": f"{first}-{first + count - 1}",
            "seed": args.seed,
            "randomize": not args.no_randomize,
            "wall_s": round(wall, 1),
        }
    )
    return summary


def print_table(summary: dict) -> None:
    print("| task | success | mean len (success) | mean len (all) | failed inits |")
    print("|---|---|---|---|---|")
    for key, row in summary["per_task"].items():
        ok_len = "-" if row["mean_len_success"] is None else f"{row['mean_len_success']:.0f}"
        failed = ", ".join(map(str, row["failed_inits"])) or "-"
        print(f"| {key} {row['task']} | {row['success']:.2f} | {ok_len} | {row['mean_len']:.0f} | {failed} |")
    for key, value in summary.items():
        if key.endswith("_success"):
            print(f"| **{key.removesuffix('_success')} average** | **{value:.3f}** | | | |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suites", default="libero_object,libero_spatial")
    parser.add_argument(
        "--tasks", default=None, help="comma-separated task ids (default: every supported one)"
    )
    parser.add_argument("--init_states", default="0-49", help="contiguous range of init states, e.g. 0-49")
    parser.add_argument("--quick", action="store_true", help=f"only init states {QUICK_INIT_STATES}")
    parser.add_argument("--seed", type=int, default=0, help="the expert's randomisation seed")
    parser.add_argument("--no_randomize", action="store_true", help="nominal waypoints, speeds and pauses")
    parser.add_argument("--n_workers", type=int, default=None)
    parser.add_argument("--output", default=None, help="also write the JSON summary to this file")
    args = parser.parse_args(argv)

    def body() -> int:
        summary = run(args)
        print_table(summary)
        line = json.dumps(summary)
        if args.output:
            with open(args.output, "w") as f:
                f.write(line + "\n")
        print(line)
        return 0

    return run_cli(body)


if __name__ == "__main__":
    raise SystemExit(main())

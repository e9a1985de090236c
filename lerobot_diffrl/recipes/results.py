"""Success tables with 95% confidence intervals from ``lerobot-eval``'s ``eval_info.json`` files.

Intervals are Wilson's (:func:`lerobot_diffrl.stats.wilson_interval`). Per-suite and overall intervals pool the episodes of their
tasks, which treats tasks as exchangeable; the per-task rows show how far that holds.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lerobot_diffrl.errors import DiffRLError
from lerobot_diffrl.stats import wilson_interval


@dataclass(frozen=True)
class TaskResult:
    """Episodes of one task (all seeds of a protocol), as counts."""

    suite: str
    task_id: int
    episodes: int
    successes: int
    language: str = ""

    @property
    def rate(self) -> float:
        return self.successes / self.episodes if self.episodes else float("nan")


def successes_from_eval_info(info: Mapping[str, Any]) -> list[bool]:
    """Every episode's success flag in one ``eval_info.json`` (``lerobot-eval``'s layout: ``per_task[*].metrics``)."""
    if "per_task" in info:
        flags: list[bool] = []
        for entry in info["per_task"]:
            flags.extend(bool(s) for s in entry["metrics"]["successes"])
        return flags
    if "per_episode" in info:  # lerobot's single-env layout (eval_policy's own info)
        return [bool(ep["success"]) for ep in info["per_episode"]]
    raise DiffRLError(
        "eval_info.json has neither per_task nor per_episode entries; not written by lerobot-eval?"
    )


def per_task_from_eval_info(info: Mapping[str, Any]) -> dict[tuple[str, int], list[bool]]:
    """``{(task_group, task_id): successes}`` of an ``eval_info.json``.

    With ``--env.type=libero`` and ``diffrl_env`` alike (their ``create_envs`` build one vector env per task) the
    group is the suite and the id the LIBERO task id.
    """
    out: dict[tuple[str, int], list[bool]] = {}
    for entry in info.get("per_task", []):
        key = (str(entry["task_group"]), int(entry["task_id"]))
        out.setdefault(key, []).extend(bool(s) for s in entry["metrics"]["successes"])
    return out


def _row(successes: int, episodes: int) -> dict[str, Any]:
    low, high = wilson_interval(successes, episodes)
    return {
        "episodes": episodes,
        "successes": successes,
        "success_rate": successes / episodes if episodes else None,
        "ci95": [low, high],
    }


def summarize(tasks: Iterable[TaskResult], protocol: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Per-task, per-suite and overall tables (rates in [0, 1], Wilson 95% intervals) with the protocol embedded.

    ``overall`` pools all episodes; ``suite_average`` is the unweighted mean of the suite rates, the "Average"
    column of LIBERO papers (equal to the pooled rate when every suite has as many episodes).
    """
    rows = sorted(tasks, key=lambda t: (t.suite, t.task_id))
    seen: set[tuple[str, int]] = set()
    for task in rows:
        if (task.suite, task.task_id) in seen:
            raise DiffRLError(f"task {task.suite}/{task.task_id} listed twice")
        seen.add((task.suite, task.task_id))
    per_task = [
        {"suite": t.suite, "task_id": t.task_id, "language": t.language, **_row(t.successes, t.episodes)}
        for t in rows
    ]
    suites: dict[str, list[TaskResult]] = {}
    for task in rows:
        suites.setdefault(task.suite, []).append(task)
    per_suite = []
    for suite, members in suites.items():
        n = sum(t.episodes for t in members)
        k = sum(t.successes for t in members)
        per_suite.append({"suite": suite, "tasks": len(members), **_row(k, n)})
    n_all = sum(t.episodes for t in rows)
    k_all = sum(t.successes for t in rows)
    rates = [s["success_rate"] for s in per_suite if s["success_rate"] is not None]
    return {
        "protocol": dict(protocol or {}),
        "per_task": per_task,
        "per_suite": per_suite,
        "overall": {"tasks": len(rows), **_row(k_all, n_all)},
        "suite_average": sum(rates) / len(rates) if rates else None,
    }


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}"


def _ci(ci: list[float]) -> str:
    return f"[{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"


def to_markdown(summary: Mapping[str, Any]) -> str:
    """The summary as Markdown: protocol line, per-suite table, per-task table (success in %)."""
    proto = summary.get("protocol", {})
    lines: list[str] = []
    if proto:
        keys = (
            "episodes_per_task",
            "seeds",
            "init_states",
            "fps",
            "image_size",
            "n_action_steps",
            "batch_size",
            "control_mode",
        )
        parts = [f"{k}={proto[k]}" for k in keys if k in proto]
        if "max_steps" in proto:
            parts.append("max_steps=" + ",".join(f"{s}:{v}" for s, v in proto["max_steps"].items()))
        lines += [f"Protocol: {'; '.join(parts)}.", ""]
    lines += [
        "| Suite | Tasks | Episodes | Success (%) | 95% CI (Wilson) |",
        "|---|---:|---:|---:|---|",
    ]
    for row in summary["per_suite"]:
        lines.append(
            f"| {row['suite']} | {row['tasks']} | {row['episodes']} | {_pct(row['success_rate'])} | "
            f"{_ci(row['ci95'])} |"
        )
    overall = summary["overall"]
    lines.append(
        f"| **all (pooled)** | {overall['tasks']} | {overall['episodes']} | "
        f"**{_pct(overall['success_rate'])}** | {_ci(overall['ci95'])} |"
    )
    if len(summary["per_suite"]) > 1:
        lines.append(f"| suite average | | | {_pct(summary['suite_average'])} | |")
    lines += [
        "",
        "| Suite | Task | Instruction | Episodes | Successes | Success (%) | 95% CI (Wilson) |",
        "|---|---:|---|---:|---:|---:|---|",
    ]
    for row in summary["per_task"]:
        lines.append(
            f"| {row['suite']} | {row['task_id']} | {row['language']} | {row['episodes']} | {row['successes']} | "
            f"{_pct(row['success_rate'])} | {_ci(row['ci95'])} |"
        )
    return "\n".join(lines) + "\n"


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_results(output_dir: Path, summary: Mapping[str, Any]) -> tuple[Path, Path]:
    """``results.json`` and ``results.md`` in ``output_dir`` (each written to a temp name, then renamed)."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = output_dir / "results.json", output_dir / "results.md"
    _write_atomic(json_path, json.dumps(summary, indent=2) + "\n")
    _write_atomic(md_path, to_markdown(summary))
    return json_path, md_path

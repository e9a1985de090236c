"""Quality report: per-task and overall trajectory metrics of one or several datasets, side by side.

The report is what makes the method's claims checkable: run it on the generated dataset, LIBERO's human data
and a Gaussian-RL dataset and read the side-by-side table (lower jerk, |delta a| and variances = smoother and
more consistent). Definitions are in :mod:`lerobot_diffrl.data.metrics`.

Aggregation rules:

- episode-level metrics (length, jerk, |delta a|, path length) are averaged over episodes;
- within-task metrics (path-length variance, endpoint variance, pairwise distance, action variance) are computed
  per task and the overall value is their mean over tasks with at least two episodes: pooling episodes of
  different tasks would measure how different the tasks are, not how consistent the data is;
- the success rate is pooled (all successes / all attempts) from the generation provenance when it recorded
  attempts, else from a per-frame success column, else "n/a";
- datasets are compared over the tasks they all contain ("common tasks") when their task sets differ, so a
  dataset of 10 tasks is not compared with one of 40 over different tasks.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lerobot_diffrl.data import metrics as M
from lerobot_diffrl.data.dataset_io import Episode, EpisodeSet
from lerobot_diffrl.errors import ConfigError

#: Default number of leading action dimensions the action metrics use: LIBERO's 6 arm dimensions (delta
#: position, delta rotation). The 7th, the gripper command, is +-1 and its open/close toggles would dominate jerk.
DEFAULT_ACTION_DIMS = 6


@dataclass(frozen=True)
class MetricSpec:
    key: str
    title: str
    unit: str
    #: "lower" or "higher" is better; None: descriptive only.
    better: str | None
    fmt: str = ".4g"


METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("n_episodes", "episodes", "", None, "d"),
    MetricSpec("success_rate", "generation success rate", "", "higher", ".1f"),
    MetricSpec("length_mean", "episode length mean", "steps", None, ".1f"),
    MetricSpec("length_std", "episode length std", "steps", None, ".1f"),
    MetricSpec("jerk", "mean squared jerk", "(a.u./step^3)^2", "lower"),
    MetricSpec("abs_delta_action", "mean abs delta action", "a.u./step", "lower"),
    MetricSpec("path_length_mean", "eef path length mean", "m", None),
    MetricSpec("path_length_var", "eef path length variance", "m^2", "lower"),
    MetricSpec("endpoint_var", "endpoint variance", "m^2", "lower"),
    MetricSpec("pairwise_distance", "pairwise trajectory distance", "m", "lower"),
    MetricSpec("action_var", "action variance", "a.u.^2", "lower"),
)
METRIC_BY_KEY = {m.key: m for m in METRICS}
#: The method's claims about its data, as "lower is better" metrics (smoother, more consistent, more efficient).
CLAIMS: tuple[tuple[str, str], ...] = (
    ("jerk", "smoother"),
    ("abs_delta_action", "smoother"),
    ("action_var", "more consistent"),
    ("path_length_var", "more consistent"),
    ("endpoint_var", "more consistent"),
    ("pairwise_distance", "more consistent"),
    ("length_mean", "more efficient"),
)
#: Episode-level values kept in the report for the distribution plots.
EPISODE_METRICS = ("length", "jerk", "abs_delta_action", "path_length")
#: Per-task values the task-metric plot shows.
TASK_METRICS = ("path_length_var", "endpoint_var", "pairwise_distance", "action_var")


@dataclass
class DatasetReport:
    """Metrics of one dataset: overall, over the common tasks, and per task."""

    label: str
    source: str
    fps: int
    n_episodes: int
    tasks: list[str]
    success_source: str
    overall: dict[str, float | None]
    common: dict[str, float | None]
    per_task: dict[str, dict[str, float | None]]
    episode_values: dict[str, list[float]] = field(default_factory=dict)


@dataclass
class Report:
    """The result of :func:`compute_report`; serialisable with :meth:`to_dict` / :meth:`from_dict`."""

    datasets: list[DatasetReport]
    common_tasks: list[str]
    settings: dict[str, Any]

    @property
    def labels(self) -> list[str]:
        return [d.label for d in self.datasets]

    @property
    def comparison_scope(self) -> str:
        all_same = len({tuple(sorted(d.tasks)) for d in self.datasets}) == 1
        if all_same:
            return f"all {len(self.common_tasks)} tasks"
        if not self.common_tasks:
            return "each dataset's own tasks (no task in common)"
        return f"the {len(self.common_tasks)} task(s) common to all datasets"

    def dataset(self, label: str) -> DatasetReport:
        for d in self.datasets:
            if d.label == label:
                return d
        raise KeyError(label)

    def to_dict(self) -> dict[str, Any]:
        return {
            "settings": self.settings,
            "common_tasks": self.common_tasks,
            "comparison_scope": self.comparison_scope,
            "metrics": {m.key: {"title": m.title, "unit": m.unit, "better": m.better} for m in METRICS},
            "datasets": [asdict(d) for d in self.datasets],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Report:
        return cls(
            datasets=[DatasetReport(**d) for d in data["datasets"]],
            common_tasks=list(data["common_tasks"]),
            settings=dict(data.get("settings", {})),
        )

    def save_json(self, path: Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n")
        return path

    @classmethod
    def load_json(cls, path: Path) -> Report:
        return cls.from_dict(json.loads(Path(path).read_text()))

    def comparison_table(self) -> str:
        """Markdown table: one row per metric, one column per dataset, the best value in bold."""
        header = ["metric", *self.labels]
        rows = [header, ["---"] + ["---:"] * len(self.labels)]
        for spec in METRICS:
            values = [d.common.get(spec.key) for d in self.datasets]
            best = _best(values, spec.better) if len(values) > 1 else None
            cells = []
            for i, v in enumerate(values):
                text = format_value(v, spec)
                cells.append(f"**{text}**" if best is not None and i in best else text)
            arrow = {"lower": " (lower is better)", "higher": " (higher is better)"}.get(
                spec.better or "", ""
            )
            unit = f" [{spec.unit}]" if spec.unit else ""
            rows.append([f"{spec.title}{unit}{arrow}", *cells])
        return "\n".join("| " + " | ".join(r) + " |" for r in rows)

    def claim_table(self, subject: str | None = None) -> str:
        """Markdown table checking the method's claims: is ``subject`` (default: the first dataset) smoother,
        more consistent and more efficient than each other dataset, over the compared tasks?"""
        if len(self.datasets) < 2:
            return ""
        own = self.dataset(subject) if subject else self.datasets[0]
        others = [d for d in self.datasets if d is not own]
        rows = [["claim", *[f"vs {d.label}" for d in others]], ["---"] + ["---"] * len(others)]
        for key, claim in CLAIMS:
            cells = []
            for other in others:
                a, b = own.common.get(key), other.common.get(key)
                if a is None or b is None:
                    cells.append("n/a")
                else:
                    spec = METRIC_BY_KEY[key]
                    verdict = "yes" if a < b else "no"
                    cells.append(f"{verdict} ({format_value(a, spec)} vs {format_value(b, spec)})")
            rows.append([f"{claim} ({METRIC_BY_KEY[key].title})", *cells])
        return "\n".join("| " + " | ".join(r) + " |" for r in rows)

    def per_task_table(self, label: str) -> str:
        """Markdown table of one dataset: one row per task, one column per metric."""
        d = self.dataset(label)
        keys = [m for m in METRICS]
        rows = [["task", *[m.title for m in keys]], ["---"] + ["---:"] * len(keys)]
        for task in d.tasks:
            rows.append([_md_escape(task), *[format_value(d.per_task[task].get(m.key), m) for m in keys]])
        rows.append(["**all tasks**", *[format_value(d.overall.get(m.key), m) for m in keys]])
        return "\n".join("| " + " | ".join(r) + " |" for r in rows)

    def to_markdown(self, plots: Sequence[str] = ()) -> str:
        lines = ["# Trajectory-quality report", ""]
        lines += [
            "| dataset | source | episodes | tasks | fps | success rate from |",
            "|---|---|---:|---:|---:|---|",
        ]
        for d in self.datasets:
            lines.append(
                f"| {d.label} | `{d.source}` | {d.n_episodes} | {len(d.tasks)} | {d.fps} | {d.success_source} |"
            )
        lines += ["", f"## Side by side (over {self.comparison_scope})", "", self.comparison_table(), ""]
        if len(self.datasets) > 1:
            lines += [
                f"## Claim check: {self.datasets[0].label} against the others",
                "",
                self.claim_table(),
                "",
            ]
        if plots:
            lines += ["## Plots", ""] + [f"![{Path(p).stem}]({p})" for p in plots] + [""]
        for d in self.datasets:
            lines += [f"## Per task: {d.label}", "", self.per_task_table(d.label), ""]
        lines += ["## Metric definitions", "", metric_definitions(self.settings), ""]
        return "\n".join(lines)


def metric_definitions(settings: dict[str, Any]) -> str:
    dims = settings.get("action_dims")
    dims_text = f"the first {dims} action dimensions" if dims else "all action dimensions"
    n = settings.get("resample_points", M.DEFAULT_RESAMPLE_POINTS)
    return "\n".join(
        [
            f"Action metrics use {dims_text}; the end-effector (eef) path is `observation.state[:3]` (m). "
            "Differences are per frame (one frame = one control step), not divided by dt.",
            "",
            "- **mean squared jerk**: mean of the squared third difference of the actions, over steps and "
            "dimensions, averaged over episodes.",
            "- **mean abs delta action**: mean of |a[t+1] - a[t]| over steps and dimensions, averaged over "
            "episodes.",
            "- **eef path length**: sum of the eef displacements of an episode; its **variance** is computed "
            "within each task (ddof=0), the overall value is the mean over tasks.",
            "- **endpoint variance**: within a task, mean squared distance of the final eef positions to their "
            "centroid; overall: mean over tasks.",
            f"- **pairwise trajectory distance**: eef paths resampled to {n} points uniformly in normalised "
            "time; mean point-to-point Euclidean distance, averaged over all pairs of episodes of a task "
            "(resampled L2, not DTW); overall: mean over tasks.",
            f"- **action variance**: actions resampled to {n} points in normalised time; variance across the "
            "task's episodes at each point, averaged over points and dimensions; overall: mean over tasks.",
            "- **generation success rate**: successes / attempts recorded by the generator "
            "(meta/provenance.json), else the fraction of episodes whose success column is true, else n/a.",
        ]
    )


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def format_value(value: float | None, spec: MetricSpec) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if spec.key == "success_rate":
        return f"{100 * value:.1f}%"
    if spec.fmt == "d":
        return str(int(value))
    return format(value, spec.fmt)


def _best(values: list[float | None], better: str | None) -> set[int] | None:
    finite = [(i, v) for i, v in enumerate(values) if v is not None and math.isfinite(v)]
    if better is None or len(finite) < 2:
        return None
    target = (min if better == "lower" else max)(v for _, v in finite)
    return {i for i, v in finite if v == target}


def _clean(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def _success_counts(es: EpisodeSet) -> tuple[dict[str, tuple[int, int]], str]:
    """Per-task (successes, attempts) and where they came from."""
    per_task = (es.provenance or {}).get("per_task")
    if isinstance(per_task, dict):
        counts = {}
        for task, entry in per_task.items():
            if isinstance(entry, dict) and "attempts" in entry and "successes" in entry:
                counts[str(entry.get("task", task))] = (int(entry["successes"]), int(entry["attempts"]))
        if counts:
            return counts, "provenance (successes / attempts)"
    if es.success_column:
        counts = {}
        for task, eps in es.by_task().items():
            counts[task] = (sum(bool(ep.success) for ep in eps), len(eps))
        return counts, f"column `{es.success_column}`"
    return {}, "n/a"


def _group_metrics(
    groups: dict[str, list[Episode]],
    counts: dict[str, tuple[int, int]],
    action_dims: int | None,
    n_points: int,
) -> tuple[dict[str, dict[str, float | None]], dict[str, float | None]]:
    """Per-task metrics and the overall aggregate over all the given groups."""
    per_task: dict[str, dict[str, float | None]] = {}
    all_eps: list[Episode] = []
    for task, eps in groups.items():
        all_eps += eps
        acts = [ep.actions[:, :action_dims] if action_dims else ep.actions for ep in eps]
        lengths = [ep.length for ep in eps]
        paths = [M.path_length(ep.eef) for ep in eps]
        succ = counts.get(task)
        per_task[task] = {
            "n_episodes": float(len(eps)),
            "success_rate": _clean(succ[0] / succ[1]) if succ and succ[1] else None,
            "length_mean": _clean(np.mean(lengths)),
            "length_std": _clean(np.std(lengths)),
            "jerk": _clean(
                np.nanmean([M.mean_squared_jerk(a) for a in acts]) if _any_len(acts, 4) else np.nan
            ),
            "abs_delta_action": _clean(
                np.nanmean([M.mean_abs_delta_action(a) for a in acts]) if _any_len(acts, 2) else np.nan
            ),
            "path_length_mean": _clean(np.mean(paths)),
            "path_length_var": _clean(M.population_variance(paths)),
            "endpoint_var": _clean(M.endpoint_variance(np.stack([ep.eef[-1] for ep in eps]))),
            "pairwise_distance": _clean(M.pairwise_trajectory_distance([ep.eef for ep in eps], n_points)),
            "action_var": _clean(M.action_variance(acts, n_points)),
        }
    overall: dict[str, float | None] = {"n_episodes": float(len(all_eps))}
    attempts = sum(counts[t][1] for t in groups if t in counts)
    overall["success_rate"] = (
        _clean(sum(counts[t][0] for t in groups if t in counts) / attempts) if attempts else None
    )
    acts = [ep.actions[:, :action_dims] if action_dims else ep.actions for ep in all_eps]
    lengths = [ep.length for ep in all_eps]
    overall["length_mean"] = _clean(np.mean(lengths)) if lengths else None
    overall["length_std"] = _clean(np.std(lengths)) if lengths else None
    overall["jerk"] = (
        _clean(np.nanmean([M.mean_squared_jerk(a) for a in acts])) if _any_len(acts, 4) else None
    )
    overall["abs_delta_action"] = (
        _clean(np.nanmean([M.mean_abs_delta_action(a) for a in acts])) if _any_len(acts, 2) else None
    )
    overall["path_length_mean"] = (
        _clean(np.mean([M.path_length(ep.eef) for ep in all_eps])) if all_eps else None
    )
    for key in TASK_METRICS:
        vals = [v[key] for v in per_task.values() if v[key] is not None]
        overall[key] = _clean(float(np.mean(vals))) if vals else None
    return per_task, overall


def _any_len(seqs: list[np.ndarray], n: int) -> bool:
    return any(len(s) >= n for s in seqs)


def dataset_report(
    es: EpisodeSet,
    common_tasks: Sequence[str] | None = None,
    *,
    action_dims: int | None = DEFAULT_ACTION_DIMS,
    resample_points: int = M.DEFAULT_RESAMPLE_POINTS,
) -> DatasetReport:
    """Metrics of one :class:`EpisodeSet`; ``common`` is computed over ``common_tasks`` (all tasks if None)."""
    groups = es.by_task()
    counts, success_source = _success_counts(es)
    per_task, overall = _group_metrics(groups, counts, action_dims, resample_points)
    if common_tasks is None or set(common_tasks) == set(groups):
        common = dict(overall)
    elif common_tasks:
        _, common = _group_metrics({t: groups[t] for t in common_tasks}, counts, action_dims, resample_points)
    else:
        common = dict(overall)
    if not any(t in groups for t in counts) and counts:
        # provenance keyed by something else than the task strings (e.g. "suite/id"): pooled rate only
        total_a = sum(a for _, a in counts.values())
        overall["success_rate"] = _clean(sum(s for s, _ in counts.values()) / total_a) if total_a else None
        common["success_rate"] = overall["success_rate"]
    acts = [ep.actions[:, :action_dims] if action_dims else ep.actions for ep in es.episodes]
    episode_values = {
        "length": [float(ep.length) for ep in es.episodes],
        "jerk": [_nan_to_none(M.mean_squared_jerk(a)) for a in acts],
        "abs_delta_action": [_nan_to_none(M.mean_abs_delta_action(a)) for a in acts],
        "path_length": [M.path_length(ep.eef) for ep in es.episodes],
    }
    return DatasetReport(
        label=es.label,
        source=es.source,
        fps=es.fps,
        n_episodes=len(es.episodes),
        tasks=list(groups),
        success_source=success_source,
        overall=overall,
        common=common,
        per_task=per_task,
        episode_values=episode_values,
    )


def _nan_to_none(v: float) -> float | None:
    return float(v) if math.isfinite(v) else None


def compute_report(
    sets: Sequence[EpisodeSet],
    *,
    action_dims: int | None = DEFAULT_ACTION_DIMS,
    resample_points: int = M.DEFAULT_RESAMPLE_POINTS,
) -> Report:
    """The report of one or several datasets (labels must be unique)."""
    if not sets:
        raise ConfigError("no dataset to report on")
    labels = [s.label for s in sets]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"dataset labels must be unique, got {labels}")
    if action_dims is not None and action_dims < 1:
        raise ConfigError(f"--action_dims must be >= 1 or null, got {action_dims}")
    if resample_points < 2:
        raise ConfigError(f"--resample_points must be >= 2, got {resample_points}")
    common = [t for t in sets[0].tasks if all(t in set(s.tasks) for s in sets[1:])]
    return Report(
        datasets=[
            dataset_report(s, common, action_dims=action_dims, resample_points=resample_points) for s in sets
        ],
        common_tasks=common,
        settings={"action_dims": action_dims, "resample_points": resample_points},
    )

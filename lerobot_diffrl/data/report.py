"""Quality report: per-task and overall trajectory metrics of one or several datasets, side by side.

The report is what makes the method's claims checkable: run it on the generated dataset, LIBERO's human data
and a Gaussian-RL dataset and read the side-by-side table (lower jerk, |delta a| and variances = smoother and
more consistent). Definitions are in :mod:`lerobot_diffrl.data.metrics`.

Aggregation rules:

- episode-level metrics (length, jerk, |delta a|, path length, SPARC, LDLJ) are averaged over episodes; SPARC
  and LDLJ (higher is smoother) also get their median, as a few near-still episodes can pull the mean;
- length control: longer episodes look smoother (a known confound, arXiv 2606.10229), so a dataset of long
  episodes could "win" on smoothness by being slow. Each per-episode smoothness metric (jerk, |delta a|,
  SPARC, LDLJ) is therefore also reported length-adjusted: one least-squares slope of the metric on
  ln(episode length), fitted over *all episodes of all compared datasets* with one intercept per (dataset,
  task) group (:func:`lerobot_diffrl.data.metrics.fit_log_length`), and each episode's value moved along it to
  the pooled mean log-length, ``value - slope * (ln L - mean ln L)`` (the residual plus the pooled mean, so it
  keeps the metric's units). Rows "... (length-adjusted)" average those values; the slopes are in the
  report's settings. One common slope is what makes the adjusted values comparable across datasets; fitting
  it within groups keeps it from absorbing the very dataset (or task) differences the report compares, e.g.
  when one dataset is both longer and jerkier. Without length variation inside any group the slope is 0 and
  the adjusted values equal the raw ones;
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
from lerobot_diffrl.data.quality import DEFAULT_ACTION_DIMS, QUALITY_BY_NAME, QUALITY_NAMES, episode_quality
from lerobot_diffrl.errors import ConfigError


@dataclass(frozen=True)
class MetricSpec:
    key: str
    title: str
    unit: str
    #: "lower" or "higher" is better; None: descriptive only.
    better: str | None
    fmt: str = ".4g"


def _per_episode(key: str, title: str, base: str) -> MetricSpec:
    """A dataset figure built from a per-episode quality figure: its unit and better direction are that
    figure's (:data:`lerobot_diffrl.data.quality.QUALITY_METRICS`, their one home)."""
    metric = QUALITY_BY_NAME[base]
    return MetricSpec(key, title, metric.unit, metric.better)


METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("n_episodes", "episodes", "", None, "d"),
    MetricSpec("success_rate", "generation success rate", "", "higher", ".1f"),
    MetricSpec("length_mean", "episode length mean", "steps", None, ".1f"),
    MetricSpec("length_std", "episode length std", "steps", None, ".1f"),
    _per_episode("jerk", "mean squared jerk", "jerk"),
    _per_episode("jerk_adj", "mean squared jerk (length-adjusted)", "jerk"),
    _per_episode("sparc", "SPARC mean", "sparc"),
    _per_episode("sparc_median", "SPARC median", "sparc"),
    _per_episode("sparc_adj", "SPARC (length-adjusted)", "sparc"),
    _per_episode("ldlj", "LDLJ mean", "ldlj"),
    _per_episode("ldlj_median", "LDLJ median", "ldlj"),
    _per_episode("ldlj_adj", "LDLJ (length-adjusted)", "ldlj"),
    _per_episode("abs_delta_action", "mean abs delta action", "abs_delta_action"),
    _per_episode("abs_delta_action_adj", "mean abs delta action (length-adjusted)", "abs_delta_action"),
    MetricSpec("path_length_mean", "eef path length mean", "m", None),
    MetricSpec("path_length_var", "eef path length variance", "m^2", "lower"),
    MetricSpec("endpoint_var", "endpoint variance", "m^2", "lower"),
    MetricSpec("pairwise_distance", "pairwise trajectory distance", "m", "lower"),
    MetricSpec("action_var", "action variance", "a.u.^2", "lower"),
)
METRIC_BY_KEY = {m.key: m for m in METRICS}
#: The method's claims about its data (smoother, more consistent, more efficient), each checked in its metric's
#: better direction.
CLAIMS: tuple[tuple[str, str], ...] = (
    ("jerk", "smoother"),
    ("jerk_adj", "smoother"),
    ("sparc", "smoother"),
    ("sparc_adj", "smoother"),
    ("ldlj", "smoother"),
    ("ldlj_adj", "smoother"),
    ("abs_delta_action", "smoother"),
    ("abs_delta_action_adj", "smoother"),
    ("action_var", "more consistent"),
    ("path_length_var", "more consistent"),
    ("endpoint_var", "more consistent"),
    ("pairwise_distance", "more consistent"),
    ("length_mean", "more efficient"),
)
#: Episode-level values kept in the report for the distribution plots.
EPISODE_METRICS = QUALITY_NAMES
#: Per-episode smoothness metrics that are also reported length-adjusted (as ``<key>_adj``).
LENGTH_ADJUSTED = ("jerk", "abs_delta_action", "sparc", "ldlj")
#: Per-episode metrics also aggregated by their median (``<key>_median``).
MEDIAN_METRICS = ("sparc", "ldlj")
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
                    verdict = "yes" if (a > b if spec.better == "higher" else a < b) else "no"
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
    fs = settings.get("fs", M.LIBERO_CONTROL_HZ)
    fits = settings.get("length_adjustment") or {}
    slopes = (
        ", ".join(
            f"{k} {v.get('slope') or 0.0:.4g} per unit ln(length) ({v.get('n', 0)} episodes)"
            for k, v in fits.items()
        )
        or "none (no fit recorded)"
    )
    return "\n".join(
        [
            f"Action metrics use {dims_text}; the end-effector (eef) path is `observation.state[:3]` (m). "
            "Differences are per frame (one frame = one control step), not divided by dt.",
            "",
            "- **mean squared jerk**: mean of the squared third difference of the actions, over steps and "
            "dimensions, averaged over episodes.",
            "- **mean abs delta action**: mean of |a[t+1] - a[t]| over steps and dimensions, averaged over "
            "episodes.",
            f"- **SPARC** (spectral arc length): of the eef speed profile at {fs:g} Hz (the control rate, not "
            "the dataset's fps metadata), zero padding level 4, normalised magnitude, cut-off 10 Hz then the "
            "last frequency with magnitude >= 0.05; minus the arc length over normalised frequency. "
            "Dimensionless, higher (closer to 0) is smoother; a single minimum-jerk reach is about -1.40. Mean "
            "and median over episodes.",
            f"- **LDLJ** (log dimensionless jerk): -ln(T^3 / v_peak^2 * integral |jerk|^2 dt) of the eef path "
            f"at {fs:g} Hz; dimensionless, higher is smoother (a minimum-jerk reach: about -5.3). Mean and "
            "median over episodes.",
            "- **length-adjusted** rows: longer episodes look smoother, so each episode's jerk, |delta a|, "
            "SPARC and LDLJ is also moved to the pooled mean log-length along one least-squares slope of the "
            "metric on ln(episode length) (value - slope * (ln L - mean ln L)), fitted over all episodes of "
            "all compared datasets with one intercept per (dataset, task), so that dataset differences are "
            f"not taken for a length effect; the row is the mean of those values. Slopes: {slopes}.",
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


def _episode_aggregates(records: list[dict[str, float]]) -> dict[str, float | None]:
    """Means (and medians) over episodes of the per-episode values, ignoring undefined ones."""
    out: dict[str, float | None] = {}
    lengths = [r["length"] for r in records]
    out["length_mean"] = _clean(np.mean(lengths)) if lengths else None
    out["length_std"] = _clean(np.std(lengths)) if lengths else None
    keys = [*LENGTH_ADJUSTED, *(f"{k}_adj" for k in LENGTH_ADJUSTED), "path_length"]
    for key in keys:
        out["path_length_mean" if key == "path_length" else key] = _finite_stat(records, key, np.mean)
    for key in MEDIAN_METRICS:
        out[f"{key}_median"] = _finite_stat(records, key, np.median)
    return out


def _finite_stat(records: list[dict[str, float]], key: str, stat) -> float | None:
    values = np.asarray([r.get(key, np.nan) for r in records], dtype=np.float64)
    values = values[np.isfinite(values)]
    return _clean(float(stat(values))) if len(values) else None


def _group_metrics(
    groups: dict[str, list[Episode]],
    counts: dict[str, tuple[int, int]],
    records: dict[int, dict[str, float]],
    action_dims: int | None,
    n_points: int,
) -> tuple[dict[str, dict[str, float | None]], dict[str, float | None]]:
    """Per-task metrics and the overall aggregate over all the given groups; ``records``: each episode's
    values (:func:`episode_records`) by episode index."""
    per_task: dict[str, dict[str, float | None]] = {}
    all_eps: list[Episode] = []
    for task, eps in groups.items():
        all_eps += eps
        acts = [ep.actions[:, :action_dims] if action_dims else ep.actions for ep in eps]
        paths = [records[ep.index]["path_length"] for ep in eps]
        succ = counts.get(task)
        per_task[task] = {
            "n_episodes": float(len(eps)),
            "success_rate": _clean(succ[0] / succ[1]) if succ and succ[1] else None,
            **_episode_aggregates([records[ep.index] for ep in eps]),
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
    overall.update(_episode_aggregates([records[ep.index] for ep in all_eps]))
    for key in TASK_METRICS:
        vals = [v[key] for v in per_task.values() if v[key] is not None]
        overall[key] = _clean(float(np.mean(vals))) if vals else None
    return per_task, overall


def episode_records(
    es: EpisodeSet, *, fs: float = M.LIBERO_CONTROL_HZ, action_dims: int | None = DEFAULT_ACTION_DIMS
) -> dict[int, dict[str, float]]:
    """Each episode's values (:func:`lerobot_diffrl.data.quality.episode_quality`), by episode index."""
    return {
        ep.index: episode_quality(ep.actions, ep.eef, fs=fs, action_dims=action_dims) for ep in es.episodes
    }


def fit_length_adjustment(
    sets: Sequence[EpisodeSet], pools: Sequence[dict[int, dict[str, float]]]
) -> dict[str, M.LogLengthFit]:
    """One fit of each :data:`LENGTH_ADJUSTED` metric on ln(length) over all episodes of all datasets, its
    slope estimated within each (dataset, task) group (``pools``: each dataset's :func:`episode_records`)."""
    rows, groups = [], []
    for i, (es, pool) in enumerate(zip(sets, pools, strict=True)):
        for ep in es.episodes:
            rows.append(pool[ep.index])
            groups.append((i, ep.task))
    lengths = [r["length"] for r in rows]
    return {key: M.fit_log_length(lengths, [r[key] for r in rows], groups) for key in LENGTH_ADJUSTED}


def add_length_adjusted(records: dict[int, dict[str, float]], fits: dict[str, M.LogLengthFit]) -> None:
    """Add ``<key>_adj`` (the value moved along the fit to the pooled mean log-length) to every record."""
    for r in records.values():
        for key, fit in fits.items():
            r[f"{key}_adj"] = fit.adjust(r[key], r["length"])


def dataset_report(
    es: EpisodeSet,
    common_tasks: Sequence[str] | None = None,
    *,
    action_dims: int | None = DEFAULT_ACTION_DIMS,
    resample_points: int = M.DEFAULT_RESAMPLE_POINTS,
    fs: float = M.LIBERO_CONTROL_HZ,
    records: dict[int, dict[str, float]] | None = None,
) -> DatasetReport:
    """Metrics of one :class:`EpisodeSet`; ``common`` is computed over ``common_tasks`` (all tasks if None).

    ``records``: the per-episode values with their length-adjusted ones (what :func:`compute_report` passes, so
    that the length fit pools every compared dataset); None: computed here, length fit over this dataset alone.
    """
    if records is None:
        records = episode_records(es, fs=fs, action_dims=action_dims)
        add_length_adjusted(records, fit_length_adjustment([es], [records]))
    groups = es.by_task()
    counts, success_source = _success_counts(es)
    per_task, overall = _group_metrics(groups, counts, records, action_dims, resample_points)
    if common_tasks is None or set(common_tasks) == set(groups) or not common_tasks:
        common = dict(overall)
    else:
        sub = {t: groups[t] for t in common_tasks}
        _, common = _group_metrics(sub, counts, records, action_dims, resample_points)
    if not any(t in groups for t in counts) and counts:
        # provenance keyed by something else than the task strings (e.g. "suite/id"): pooled rate only
        total_a = sum(a for _, a in counts.values())
        overall["success_rate"] = _clean(sum(s for s, _ in counts.values()) / total_a) if total_a else None
        common["success_rate"] = overall["success_rate"]
    keys = [*EPISODE_METRICS, *(f"{k}_adj" for k in LENGTH_ADJUSTED)]
    episode_values = {k: [_nan_to_none(records[ep.index][k]) for ep in es.episodes] for k in keys}
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
    fs: float = M.LIBERO_CONTROL_HZ,
) -> Report:
    """The report of one or several datasets (labels must be unique); ``fs``: the control rate (Hz) SPARC and
    LDLJ differentiate at (LIBERO: 20, whatever the datasets' fps metadata says)."""
    if not sets:
        raise ConfigError("no dataset to report on")
    labels = [s.label for s in sets]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"dataset labels must be unique, got {labels}")
    if action_dims is not None and action_dims < 1:
        raise ConfigError(f"--action_dims must be >= 1 or null, got {action_dims}")
    if resample_points < 2:
        raise ConfigError(f"--resample_points must be >= 2, got {resample_points}")
    if not (math.isfinite(fs) and fs > 0):
        raise ConfigError(f"--fs must be a positive control rate in Hz, got {fs}")
    common = [t for t in sets[0].tasks if all(t in set(s.tasks) for s in sets[1:])]
    pools = [episode_records(s, fs=fs, action_dims=action_dims) for s in sets]
    fits = fit_length_adjustment(sets, pools)
    for pool in pools:
        add_length_adjusted(pool, fits)
    kw = {"action_dims": action_dims, "resample_points": resample_points, "fs": fs}
    return Report(
        datasets=[dataset_report(s, common, records=p, **kw) for s, p in zip(sets, pools, strict=True)],
        common_tasks=common,
        settings={
            **kw,
            "length_adjustment": {
                k: {"slope": _clean(f.slope), "center_log_length": _clean(f.center), "n": f.n}
                for k, f in fits.items()
            },
        },
    )

"""PNG plots of a quality report: metric distributions per dataset and example end-effector paths.

Figures are built with matplotlib's object API on the Agg canvas (no pyplot, no global backend state), so they
render headless and from any thread or process.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from lerobot_diffrl.data.dataset_io import EpisodeSet
from lerobot_diffrl.data.report import EPISODE_METRICS, METRIC_BY_KEY, TASK_METRICS, Report

_EPISODE_TITLES = {
    "length": "episode length [steps]",
    "jerk": "mean squared jerk per episode",
    "abs_delta_action": "mean |delta a| per episode",
    "path_length": "eef path length per episode [m]",
    "sparc": "SPARC per episode (higher is smoother)",
    "ldlj": "LDLJ per episode (higher is smoother)",
}


def _save(fig: Figure, path: Path) -> Path:
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=110)
    return path


def _boxes(ax, data: list[np.ndarray], labels: list[str], title: str) -> None:
    present = [(d, lab) for d, lab in zip(data, labels, strict=True) if len(d)]
    ax.set_title(title, fontsize=9)
    if not present:
        ax.text(0.5, 0.5, "n/a", ha="center", va="center", transform=ax.transAxes)
        return
    values, names = zip(*present, strict=True)
    ax.boxplot(values, showfliers=False)
    ax.set_xticks(range(1, len(names) + 1), names, fontsize=8, rotation=15)
    rng = np.random.default_rng(0)
    for i, v in enumerate(values, start=1):
        ax.scatter(i + rng.uniform(-0.15, 0.15, len(v)), v, s=6, alpha=0.4)
    pooled = np.concatenate(values)
    positive = pooled[pooled > 0]
    # (never for signed metrics such as SPARC and LDLJ: a log axis would hide their negative values)
    if len(positive) and pooled.min() >= 0 and positive.max() / max(positive.min(), 1e-300) > 1e3:
        ax.set_yscale("log")  # jerk of noisy vs smooth data differs by orders of magnitude


def plot_distributions(report: Report, path: Path) -> Path:
    """Box plots of the episode-level metrics, one box per dataset."""
    fig = Figure(figsize=(14, 7), layout="constrained")
    axes = fig.subplots(2, 3).ravel()
    for ax, key in zip(axes, EPISODE_METRICS, strict=True):
        data = [
            np.asarray([v for v in d.episode_values.get(key, []) if v is not None], dtype=float)
            for d in report.datasets
        ]
        _boxes(ax, data, report.labels, _EPISODE_TITLES[key])
    fig.suptitle("Episode-level metric distributions")
    return _save(fig, path)


def plot_task_metrics(report: Report, path: Path) -> Path:
    """Box plots over tasks of the within-task consistency metrics, one box per dataset."""
    fig = Figure(figsize=(10, 7), layout="constrained")
    axes = fig.subplots(2, 2).ravel()
    for ax, key in zip(axes, TASK_METRICS, strict=True):
        spec = METRIC_BY_KEY[key]
        data = [
            np.asarray([t[key] for t in d.per_task.values() if t.get(key) is not None], dtype=float)
            for d in report.datasets
        ]
        _boxes(ax, data, report.labels, f"{spec.title} per task [{spec.unit}]")
    fig.suptitle("Within-task consistency (one point per task)")
    return _save(fig, path)


def plot_eef_paths(sets: Sequence[EpisodeSet], task: str, path: Path, max_paths: int = 10) -> Path:
    """Example end-effector paths of one task: x-y and x-z projections, one row per dataset."""
    fig = Figure(figsize=(9, 3.2 * len(sets) + 0.6), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(sets), 2, squeeze=False))
    for row, es in zip(axes, sets, strict=True):
        episodes = [ep for ep in es.episodes if ep.task == task][:max_paths]
        for ax, (i, j, name) in zip(row, [(0, 1, "x-y"), (0, 2, "x-z")], strict=True):
            for ep in episodes:
                (line,) = ax.plot(ep.eef[:, i], ep.eef[:, j], lw=1, alpha=0.8)
                ax.plot(ep.eef[0, i], ep.eef[0, j], "o", color=line.get_color(), ms=3)
                ax.plot(ep.eef[-1, i], ep.eef[-1, j], "x", color=line.get_color(), ms=5)
            ax.set_title(f"{es.label}: {name} ({len(episodes)} episodes)", fontsize=9)
            ax.set_xlabel(f"{'xyz'[i]} [m]")
            ax.set_ylabel(f"{'xyz'[j]} [m]")
            ax.set_aspect("equal", adjustable="datalim")
            if not episodes:
                ax.text(0.5, 0.5, "task not in dataset", ha="center", va="center", transform=ax.transAxes)
    short = task if len(task) <= 90 else task[:87] + "..."
    fig.suptitle(f"End-effector paths (o start, x end): {short}", fontsize=10)
    return _save(fig, path)


def example_task(report: Report, sets: Sequence[EpisodeSet]) -> str:
    """The task the path plot shows: the common task with the most episodes (else the first dataset's)."""
    candidates = report.common_tasks or sets[0].tasks
    counts = {t: min(sum(ep.task == t for ep in es.episodes) for es in sets) for t in candidates}
    return max(candidates, key=lambda t: (counts[t], -candidates.index(t)))


def make_plots(report: Report, sets: Sequence[EpisodeSet], output_dir: Path) -> list[Path]:
    """Write ``distributions.png``, ``task_metrics.png`` and ``eef_paths.png``; return their paths."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    return [
        plot_distributions(report, output_dir / "distributions.png"),
        plot_task_metrics(report, output_dir / "task_metrics.png"),
        plot_eef_paths(sets, example_task(report, sets), output_dir / "eef_paths.png"),
    ]

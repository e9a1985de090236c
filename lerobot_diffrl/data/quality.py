"""Per-episode quality figures: the one home of their names, and how they are computed, stored and read.

Why per episode and stored with the dataset: the dataset-level report says whether data is smoother on
average, but a user who wants to train on the best episodes (or weight them) needs each episode's figures, and
should not have to recompute them from the raw columns. The figures are those of
:mod:`lerobot_diffrl.data.metrics`: ``length``, ``jerk`` (mean squared jerk of the arm actions),
``abs_delta_action``, ``path_length`` (eef, m), ``sparc`` and ``ldlj`` (eef speed, at the control rate).

Where they live: LeRobotDataset v3 keeps one row per episode in ``meta/episodes/chunk-*/file-*.parquet``, and
lerobot's metadata writer (``LeRobotDatasetMetadata.save_episode``) stores any extra per-episode entry as a
column there, next to ``length`` and ``stats/*``. The generator adds the figures as the column group
``quality/<name>`` (:data:`QUALITY_PREFIX`) when it packs a dataset (:mod:`lerobot_diffrl.data.packing`);
lerobot's ``aggregate_datasets`` (``lerobot-diffrl-merge``) copies these columns along. Values are float64,
NaN where undefined (e.g. SPARC of an eef that never moves). Stored figures are computed with the defaults
(:data:`~lerobot_diffrl.data.metrics.LIBERO_CONTROL_HZ`, the first :data:`DEFAULT_ACTION_DIMS` action
dimensions).

For a dataset without them (a Hub dataset, an older generated one), :func:`dataset_quality` computes them from
``action`` and ``observation.state`` (eef position = ``observation.state[:, :3]``), the same way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lerobot_diffrl.data import metrics as M
from lerobot_diffrl.data.dataset_io import EEF_DIMS, EpisodeSet, column_2d

#: Default number of leading action dimensions the action metrics use: LIBERO's 6 arm dimensions (delta
#: position, delta rotation). The 7th, the gripper command, is +-1 and its open/close toggles would dominate jerk.
DEFAULT_ACTION_DIMS = 6
#: Column group of the figures in ``meta/episodes/*/*.parquet``.
QUALITY_PREFIX = "quality/"


@dataclass(frozen=True)
class QualityMetric:
    """One per-episode figure: its name (``quality/<name>`` column), which direction is better, its unit."""

    name: str
    #: "lower" or "higher" is better: the direction episodes are ranked in.
    better: str
    unit: str
    description: str


QUALITY_METRICS: tuple[QualityMetric, ...] = (
    QualityMetric("length", "lower", "frames", "episode length (one frame per control step)"),
    QualityMetric("jerk", "lower", "(a.u./step^3)^2", "mean squared third difference of the arm actions"),
    QualityMetric("abs_delta_action", "lower", "a.u./step", "mean |a[t+1] - a[t]| of the arm actions"),
    QualityMetric("path_length", "lower", "m", "end-effector path length"),
    QualityMetric("sparc", "higher", "", "spectral arc length of the eef speed (closer to 0 is smoother)"),
    QualityMetric("ldlj", "higher", "", "log dimensionless jerk of the eef path (higher is smoother)"),
)
QUALITY_BY_NAME = {m.name: m for m in QUALITY_METRICS}
QUALITY_NAMES = tuple(m.name for m in QUALITY_METRICS)


def quality_column(name: str) -> str:
    """The episodes-parquet column of figure ``name``."""
    return f"{QUALITY_PREFIX}{name}"


def episode_quality(
    actions: np.ndarray,
    eef: np.ndarray,
    *,
    fs: float = M.LIBERO_CONTROL_HZ,
    action_dims: int | None = DEFAULT_ACTION_DIMS,
) -> dict[str, float]:
    """All figures of one episode (``actions`` (T, A), ``eef`` (T, 3) in m, sampled at ``fs`` Hz); NaN where
    undefined. ``action_dims``: leading action dimensions the action metrics use (None: all)."""
    a = np.asarray(actions, dtype=np.float64)
    a = a[:, :action_dims] if action_dims and a.ndim == 2 else a
    p = np.asarray(eef, dtype=np.float64)
    return {
        "length": float(len(a)),
        "jerk": M.mean_squared_jerk(a),
        "abs_delta_action": M.mean_abs_delta_action(a),
        "path_length": M.path_length(p),
        "sparc": M.sparc(p, fs),
        "ldlj": M.log_dimensionless_jerk(p, fs),
    }


def table_quality(table: pa.Table, fs: float = M.LIBERO_CONTROL_HZ) -> dict[str, float]:
    """The figures of one episode's frames table (``action`` and ``observation.state`` columns), as the
    ``quality/<name>`` entries lerobot's ``save_episode`` writes into the episodes parquet."""
    values = episode_quality(
        column_2d(table, "action"), column_2d(table, "observation.state")[:, :EEF_DIMS], fs=fs
    )
    return {quality_column(k): v for k, v in values.items()}


def compute_quality(
    es: EpisodeSet, *, fs: float = M.LIBERO_CONTROL_HZ, action_dims: int | None = DEFAULT_ACTION_DIMS
) -> dict[int, dict[str, float]]:
    """Figures of every episode of a loaded dataset, by episode index."""
    return {
        ep.index: episode_quality(ep.actions, ep.eef, fs=fs, action_dims=action_dims) for ep in es.episodes
    }


def _episodes_files(root: Path) -> list[Path]:
    return sorted((Path(root) / "meta" / "episodes").glob("*/*.parquet"))


def stored_quality(root: Path) -> dict[int, dict[str, float]] | None:
    """The figures stored in ``root``'s episodes parquet, by episode index; None unless every episode has
    every figure's column and a length figure (a dataset written before they existed, or merged with one:
    lerobot's aggregate fills the columns such episodes lack with nulls)."""
    out: dict[int, dict[str, float]] = {}
    columns = [quality_column(n) for n in QUALITY_NAMES]
    for path in _episodes_files(root):
        names = pq.read_schema(path).names
        if not set(columns) <= set(names):
            return None
        table = pq.read_table(path, columns=["episode_index", *columns])
        index = table.column("episode_index").to_pylist()
        cols = {n: table.column(quality_column(n)).to_pylist() for n in QUALITY_NAMES}
        for row, ep in enumerate(index):
            out[int(ep)] = {n: _float(cols[n][row]) for n in QUALITY_NAMES}
    if any(math.isnan(v["length"]) for v in out.values()):
        return None  # never undefined when stored: these episodes have no stored figures
    return out or None


def _float(value: Any) -> float:
    return float("nan") if value is None else float(value)


def dataset_quality(
    es: EpisodeSet,
    *,
    fs: float = M.LIBERO_CONTROL_HZ,
    action_dims: int | None = DEFAULT_ACTION_DIMS,
    recompute: bool = False,
) -> tuple[dict[int, dict[str, float]], str]:
    """Per-episode figures of a loaded dataset and where they came from ("stored" or "computed").

    Stored figures are used when the dataset has them for every episode and the settings are the defaults
    they were stored with; any other setting, or ``recompute``, computes them from the actions and eef path.
    """
    defaults = fs == M.LIBERO_CONTROL_HZ and action_dims == DEFAULT_ACTION_DIMS
    if defaults and not recompute:
        stored = stored_quality(es.root)
        if stored is not None and set(stored) == {ep.index for ep in es.episodes}:
            return stored, "stored"
    return compute_quality(es, fs=fs, action_dims=action_dims), "computed"


def write_quality_columns(root: Path, quality: Mapping[int, Mapping[str, float]]) -> None:
    """Add (or replace) the ``quality/<name>`` columns of ``root``'s episodes parquet from ``quality``
    (by episode index, every episode required), e.g. after lerobot's ``delete_episodes`` dropped them.

    The files are rewritten without their ``huggingface`` schema metadata, which would list the old columns
    only; ``datasets`` infers the features of the new ones from the Arrow schema.
    """
    for path in _episodes_files(root):
        table = pq.read_table(path)
        index = [int(i) for i in table.column("episode_index").to_pylist()]
        missing = [i for i in index if i not in quality]
        if missing:
            raise KeyError(f"no quality figures for episode(s) {missing}")
        for name in QUALITY_NAMES:
            column = quality_column(name)
            values = pa.array([_finite_or_nan(quality[i][name]) for i in index], type=pa.float64())
            if column in table.column_names:
                table = table.set_column(table.column_names.index(column), column, values)
            else:
                table = table.append_column(column, values)
        metadata = {k: v for k, v in (table.schema.metadata or {}).items() if k != b"huggingface"}
        pq.write_table(table.replace_schema_metadata(metadata or None), path)


def _finite_or_nan(value: float | None) -> float:
    return float(value) if value is not None and math.isfinite(value) else float("nan")

"""Rank a dataset's episodes by a quality figure and write a copy without the worst ones.

Why: "smoother data trains better policies" can be tested, and used, by dropping the least smooth part of a
dataset and training on the rest. The figures are those of :mod:`lerobot_diffrl.data.quality` (stored in the
episodes parquet by the generator, else computed from ``action`` and ``observation.state``), ranked in each
figure's better direction (SPARC and LDLJ: higher is smoother; jerk, |delta a|, path length, length: lower is
better).

Rules:

- ``floor(drop_fraction * n_episodes)`` episodes are dropped (``0 <= drop_fraction < 1``, so at least one
  episode is always kept; 0 writes an unfiltered copy);
- the worst go first; an episode whose figure is undefined (NaN: too short, or an eef that never moves) ranks
  below every defined one, as such an episode says nothing good about itself; ties go by episode index, so the
  later episode is dropped first and the result is deterministic;
- the copy is made by lerobot 0.6.1's own ``delete_episodes`` (data re-indexed, statistics re-aggregated,
  videos copied, or re-encoded with the source's settings where a file mixes kept and dropped episodes), then
  the kept episodes' ``quality/<name>`` columns (which ``delete_episodes`` does not carry over) are written
  back and ``meta/provenance.json`` records what was dropped;
- everything is written to a temporary sibling of the output and renamed into place at the end, so a failure
  leaves nothing at the output path.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lerobot_diffrl.data import metrics as M
from lerobot_diffrl.data.dataset_io import episode_set_from_dataset, open_dataset
from lerobot_diffrl.data.provenance import filter_provenance, read_provenance, write_provenance
from lerobot_diffrl.data.quality import (
    DEFAULT_ACTION_DIMS,
    QUALITY_BY_NAME,
    QUALITY_NAMES,
    dataset_quality,
    write_quality_columns,
)
from lerobot_diffrl.errors import ConfigError, DatasetError

log = logging.getLogger(__name__)


@dataclass
class FilterResult:
    """What :func:`filter_dataset` did; episode indices are the source's."""

    source: str
    output: Path | None
    metric: str
    better: str
    #: "stored" (the dataset's quality/<name> columns) or "computed" (from its actions and eef path).
    figures: str
    n_episodes: int
    #: All episodes, worst first, with their score (NaN: undefined).
    ranking: list[tuple[int, float]]
    dropped: list[tuple[int, float]]
    kept: list[int] = field(default_factory=list)
    tasks: dict[int, str] = field(default_factory=dict)


def check_metric(metric: str) -> str:
    """``metric`` if it names a quality figure, else a :class:`ConfigError` listing them."""
    if metric not in QUALITY_BY_NAME:
        raise ConfigError(f"unknown --metric '{metric}'; choose one of: {', '.join(QUALITY_NAMES)}")
    return metric


def check_drop_fraction(drop_fraction: float | None) -> float:
    if drop_fraction is None:
        raise ConfigError("--drop_fraction is required: the fraction of episodes to drop, in [0, 1)")
    value = float(drop_fraction)
    if not (math.isfinite(value) and 0.0 <= value < 1.0):
        raise ConfigError(f"--drop_fraction must be in [0, 1), got {drop_fraction}")
    return value


def rank_episodes(scores: Mapping[int, float], better: str) -> list[tuple[int, float]]:
    """``(episode, score)`` worst first: undefined scores, then the worst defined ones; ties: later first."""
    if better not in ("lower", "higher"):
        raise ValueError(f"better must be 'lower' or 'higher', got {better!r}")
    sign = 1.0 if better == "lower" else -1.0  # sort key: larger = worse

    def badness(item: tuple[int, float]) -> tuple[int, float, int]:
        episode, score = item
        if not math.isfinite(score):
            return (0, 0.0, -episode)
        return (1, -sign * score, -episode)

    return sorted(((int(e), float(s)) for e, s in scores.items()), key=badness)


def drop_count(n_episodes: int, drop_fraction: float) -> int:
    """``floor(drop_fraction * n_episodes)``, robust to float rounding (0.3 * 10 is 3, not 2)."""
    return min(int(math.floor(drop_fraction * n_episodes + 1e-9)), max(n_episodes - 1, 0))


def _check_output(output: Path, source_root: Path) -> None:
    if output.exists():
        raise DatasetError(f"{output} already exists; choose a new --output_dir")
    src, out = source_root.resolve(), output.resolve()
    if out == src or src in out.parents:
        raise DatasetError(f"--output_dir {output} is inside the source dataset {source_root}")


def filter_dataset(
    source: str,
    output: Path | str | None,
    *,
    metric: str,
    drop_fraction: float | None,
    repo_id: str | None = None,
    fs: float = M.LIBERO_CONTROL_HZ,
    action_dims: int | None = DEFAULT_ACTION_DIMS,
    recompute: bool = False,
) -> FilterResult:
    """Rank ``source``'s episodes by ``metric`` and write those not in the worst ``drop_fraction`` to
    ``output`` as a LeRobotDataset v3 (id ``repo_id``, default ``local/<output name>``); ``output=None``
    ranks only. See the module docstring for the rules."""
    check_metric(metric)
    fraction = check_drop_fraction(drop_fraction)
    if not (math.isfinite(fs) and fs > 0):
        raise ConfigError(f"--fs must be a positive control rate in Hz, got {fs}")
    out = Path(output).expanduser() if output is not None else None
    if out is not None and out.exists():  # before the (possibly long) load
        raise DatasetError(f"{out} already exists; choose a new --output_dir")
    dataset, root, hub_id = open_dataset(source, videos=out is not None)
    es = episode_set_from_dataset(dataset, root, hub_id, source)
    quality, figures = dataset_quality(es, fs=fs, action_dims=action_dims, recompute=recompute)
    better = QUALITY_BY_NAME[metric].better
    ranking = rank_episodes({e: v[metric] for e, v in quality.items()}, better)
    dropped = ranking[: drop_count(len(ranking), fraction)]
    gone = {e for e, _ in dropped}
    result = FilterResult(
        source=source,
        output=out,
        metric=metric,
        better=better,
        figures=figures,
        n_episodes=len(ranking),
        ranking=ranking,
        dropped=dropped,
        kept=sorted(e for e in quality if e not in gone),
        tasks={ep.index: ep.task for ep in es.episodes},
    )
    if out is not None:
        _check_output(out, root)
        record = {"source": source, "metric": metric, "better": better, "drop_fraction": fraction}
        record |= {
            "figures": figures,
            "dropped": [{"episode_index": e, metric: _json(s)} for e, s in dropped],
        }
        _write_filtered(dataset, out, repo_id or f"local/{out.name}", result, quality, record)
    return result


def _json(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _write_filtered(
    dataset: Any,
    output: Path,
    repo_id: str,
    result: FilterResult,
    quality: Mapping[int, Mapping[str, float]],
    record: dict[str, Any],
) -> None:
    """Write the kept episodes to a temporary sibling of ``output`` and rename it into place."""
    from lerobot.datasets.dataset_tools import delete_episodes

    tmp = output.parent / f".{output.name}.filtering-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    output.parent.mkdir(parents=True, exist_ok=True)
    try:
        if result.dropped:
            try:
                delete_episodes(dataset, [e for e, _ in result.dropped], output_dir=tmp, repo_id=repo_id)
            except ValueError as err:  # lerobot's own checks (indices, video metadata)
                raise DatasetError(f"lerobot cannot filter this dataset: {str(err)[:500]}") from err
        else:
            shutil.copytree(dataset.root, tmp, ignore=shutil.ignore_patterns(".cache"))
        write_quality_columns(tmp, {new: quality[old] for new, old in enumerate(result.kept)})
        write_provenance(tmp, filter_provenance(read_provenance(dataset.root), result.kept, record))
        os.rename(tmp, output)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("kept %d of %d episodes in %s", len(result.kept), result.n_episodes, output)

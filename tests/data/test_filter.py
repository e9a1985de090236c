"""Ranking and filtering episodes by quality: exact drops on a dataset of known jerk, the output loads with its
videos and figures, stored figures are reused, and bad input is one error line with nothing left behind."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from quality_helpers import TASKS, make_dataset, min_jerk_episode

from lerobot_diffrl.data import filtering
from lerobot_diffrl.data import metrics as M
from lerobot_diffrl.data.filtering import drop_count, filter_dataset, rank_episodes
from lerobot_diffrl.data.quality import stored_quality
from lerobot_diffrl.scripts import filter as filter_cli

pytestmark = pytest.mark.filterwarnings("ignore:Converting input from bool:RuntimeWarning")
STEPS = 30
#: Per episode, the amplitude of a +-c alternation added to one arm action dimension (exact in float32):
#: its third difference is +-8c, so the episode's mean squared jerk over the 6 arm dims is 64 c^2 / 6.
WIGGLE = (0.0, 0.25, 0.0625, 0.5, 0.125, 0.03125)


def known_jerk(c: float) -> float:
    return 64 * c**2 / 6


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """Six minimum-jerk reaches over two tasks (h264 videos); episode e's commands are constant but for a
    +-WIGGLE[e] alternation, and its eef has a 6 Hz tremor of WIGGLE[e] cm."""
    episodes = []
    for e, c in enumerate(WIGGLE):
        actions, states = min_jerk_episode([0, 0, 1], [0.3, 0.1 + 0.01 * e, 0.9], STEPS, tremor=c / 100)
        actions[:, :3] = actions[:, :3].mean(axis=0)  # a constant command (no jerk of its own) ...
        actions[:, 3] = c * (-1.0) ** np.arange(STEPS)  # ... and the wiggle: jerk exactly 64 c^2 / 6
        episodes.append((TASKS[e % 2], actions, states))
    provenance = {
        "generator": "test",
        "per_task": {
            "s/0": {"suite": "s", "task_id": 0, "kept": 3},
            "s/1": {"suite": "s", "task_id": 1, "kept": 3},
        },
        "episodes": [{"episode_index": e, "suite": "s", "task_id": e % 2} for e in range(6)],
    }
    return make_dataset(tmp_path_factory.mktemp("filter") / "src", episodes, provenance=provenance)


@pytest.fixture(scope="module")
def filtered(source, tmp_path_factory) -> Path:
    """``source`` without its two jerkiest episodes, written by the CLI."""
    out = tmp_path_factory.mktemp("filtered") / "out"
    rc = filter_cli.main(
        [
            f"--dataset.root={source}",
            f"--output_dir={out}",
            "--repo_id=local/top",
            "--metric=jerk",
            "--drop_fraction=0.34",
        ]
    )
    assert rc == 0
    return out


def test_filter_drops_exactly_the_jerkiest_episodes(source, tmp_path, capsys):
    out = tmp_path / "out"
    rc = filter_cli.main(
        [f"--dataset.root={source}", f"--output_dir={out}", "--metric=jerk", "--drop_fraction=0.34"]
    )
    stdout = capsys.readouterr().out
    assert rc == 0
    assert (
        f"ranked 6 episodes of {source} by jerk (lower is better; figures computed from the frames)" in stdout
    )
    assert "dropped 2 of 6 episodes (worst first):" in stdout
    drops = [line.split() for line in stdout.splitlines() if line.startswith("  drop")]
    # floor(0.34 * 6) = 2: the 0.5 and 0.25 wiggles, worst first, with their known jerk
    assert [(int(r[2]), float(r[4])) for r in drops] == [
        (3, pytest.approx(known_jerk(0.5), rel=1e-3)),
        (1, pytest.approx(known_jerk(0.25), rel=1e-3)),
    ]
    assert f"wrote {out}: 4 episodes kept" in stdout
    assert not list(tmp_path.glob(".out.filtering-*"))


def test_filtered_dataset_loads_with_its_videos_figures_and_provenance(source, filtered):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    out = filtered
    src = LeRobotDataset("local/src", root=source)
    ds = LeRobotDataset("local/top", root=out)
    kept = [0, 2, 4, 5]
    assert ds.num_episodes == 4 and ds.num_frames == 4 * STEPS
    assert ds.meta.video_keys == ["observation.images.image", "observation.images.image2"]
    for new, old in enumerate(kept):
        for t in (0, STEPS - 1):
            a, b = ds[new * STEPS + t], src[old * STEPS + t]
            assert int(a["episode_index"]) == new and a["task"] == TASKS[old % 2]
            np.testing.assert_array_equal(a["action"].numpy(), b["action"].numpy())
            # the frames are the kept episode's own (make_dataset paints episode e, frame t a known shade)
            shade = ((40 * old + 5 * t) % 255) / 255
            assert abs(float(a["observation.images.image"].mean()) - shade) < 0.03
    quality = stored_quality(out)
    assert sorted(quality) == [0, 1, 2, 3]
    assert [quality[i]["jerk"] for i in range(4)] == pytest.approx(
        [known_jerk(WIGGLE[e]) for e in kept], rel=1e-4
    )
    assert [quality[i]["length"] for i in range(4)] == [STEPS] * 4
    assert ds.meta.episodes["quality/sparc"][0] == pytest.approx(quality[0]["sparc"])
    prov = json.loads((out / "meta" / "provenance.json").read_text())
    assert [e["episode_index"] for e in prov["episodes"]] == [0, 1, 2, 3]
    assert [e["task_id"] for e in prov["episodes"]] == [0, 0, 0, 1]  # source episodes 0, 2, 4, 5
    assert prov["per_task"]["s/1"]["kept"] == 1 and prov["per_task"]["s/0"]["kept"] == 3
    [record] = prov["filtered"]
    assert record["metric"] == "jerk" and record["drop_fraction"] == 0.34 and record["figures"] == "computed"
    assert [d["episode_index"] for d in record["dropped"]] == [3, 1]


def test_sparc_and_ldlj_rank_higher_as_smoother(source):
    from lerobot_diffrl.data.dataset_io import load_episode_set

    eps = load_episode_set(str(source)).episodes
    for metric, fn in (("sparc", M.sparc), ("ldlj", M.log_dimensionless_jerk)):
        scores = {ep.index: fn(ep.eef, 20.0) for ep in eps}
        result = filter_dataset(str(source), None, metric=metric, drop_fraction=0.2)
        assert result.better == "higher" and result.output is None
        assert [e for e, _ in result.ranking] == sorted(scores, key=scores.get)  # lowest (least smooth) first
        assert result.dropped == [(min(scores, key=scores.get), pytest.approx(min(scores.values())))]
        assert result.dropped[0][0] == 3  # the largest tremor is the least smooth
        if metric == "sparc":  # tremors of at most 0.6 mm leave a minimum-jerk reach's SPARC
            assert [scores[e] for e in (0, 2, 5)] == pytest.approx([-1.40] * 3, abs=0.01)


def test_stored_figures_are_reused_and_a_zero_fraction_copies(filtered, tmp_path):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    out = filtered
    stored = filter_dataset(str(out), None, metric="jerk", drop_fraction=0.5)
    assert stored.figures == "stored" and [e for e, _ in stored.dropped] == [2, 1]
    again = filter_dataset(str(out), None, metric="jerk", drop_fraction=0.5, recompute=True)
    assert again.figures == "computed" and again.ranking == [(e, pytest.approx(s)) for e, s in stored.ranking]
    assert filter_dataset(str(out), None, metric="jerk", drop_fraction=0.5, fs=10.0).figures == "computed"
    copy = tmp_path / "copy"
    result = filter_dataset(str(out), copy, metric="ldlj", drop_fraction=0.0)
    assert result.dropped == [] and result.kept == [0, 1, 2, 3]
    assert LeRobotDataset("local/copy", root=copy).num_episodes == 4
    assert stored_quality(copy) == stored_quality(out)


def test_episodes_without_stored_figures_make_them_computed(filtered, tmp_path):
    """A merge of a dataset with figures and one without leaves null figures: those are not stored ones."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = tmp_path / "partly"
    shutil.copytree(filtered, root)
    [path] = (root / "meta" / "episodes").glob("*/*.parquet")
    table = pq.read_table(path)
    column = table.column_names.index("quality/length")
    table = table.set_column(column, "quality/length", pa.array([30.0, None, 30.0, 30.0], pa.float64()))
    pq.write_table(table, path)
    assert stored_quality(root) is None
    assert filter_dataset(str(root), None, metric="jerk", drop_fraction=0.5).figures == "computed"


def test_ranking_puts_undefined_scores_first_and_breaks_ties_by_index():
    scores = {0: 1.0, 1: float("nan"), 2: 3.0, 3: 1.0, 4: 2.0}
    assert [e for e, _ in rank_episodes(scores, "lower")] == [1, 2, 4, 3, 0]
    assert [e for e, _ in rank_episodes(scores, "higher")] == [1, 3, 0, 4, 2]
    assert drop_count(10, 0.3) == 3 and drop_count(100, 0.29) == 29 and drop_count(3, 0.99) == 2
    assert drop_count(5, 0.0) == 0 and drop_count(1, 0.9) == 0


def test_a_failure_while_writing_leaves_no_output(source, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(filtering, "write_quality_columns", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        filter_dataset(str(source), tmp_path / "out", metric="jerk", drop_fraction=0.5)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "case, expected",
    [
        ("missing", "error: dataset folder {tmp}/nowhere does not exist"),
        (
            "no_dataset",
            "error: --dataset.root (a local folder) or --dataset.repo_id (a Hub dataset) is required",
        ),
        ("metric", "error: unknown --metric 'smoothness'; choose one of: length, jerk, abs_delta_action, "),
        ("fraction_one", "error: --drop_fraction must be in [0, 1), got 1.0"),
        ("fraction_negative", "error: --drop_fraction must be in [0, 1), got -0.1"),
        ("no_fraction", "error: --drop_fraction is required"),
        ("exists", "error: {tmp}/taken already exists; choose a new --output_dir"),
        ("inside", "error: --output_dir {source}/meta/sub is inside the source dataset"),
        ("not_a_dataset", "error: {tmp}/empty is not a LeRobotDataset: meta/info.json is missing"),
        (
            "hub_offline",
            "error: dataset 'nobody/not-cached' is neither a local folder nor in the LeRobot cache",
        ),
    ],
)
def test_bad_input_is_one_error_line_and_writes_nothing(case, expected, source, tmp_path, capsys):
    (tmp_path / "taken").mkdir()
    (tmp_path / "empty").mkdir()
    ok = [f"--dataset.root={source}", f"--output_dir={tmp_path / 'out'}", "--drop_fraction=0.2"]
    argv = {
        "missing": [f"--dataset.root={tmp_path / 'nowhere'}", *ok[1:]],
        "no_dataset": ok[1:],
        "metric": [*ok, "--metric=smoothness"],
        "fraction_one": [*ok[:2], "--drop_fraction=1.0"],
        "fraction_negative": [*ok[:2], "--drop_fraction=-0.1"],
        "no_fraction": ok[:2],
        "exists": [ok[0], f"--output_dir={tmp_path / 'taken'}", ok[2]],
        "inside": [ok[0], f"--output_dir={source / 'meta' / 'sub'}", ok[2]],
        "not_a_dataset": [f"--dataset.root={tmp_path / 'empty'}", *ok[1:]],
        "hub_offline": ["--dataset.repo_id=nobody/not-cached", *ok[1:]],
    }[case]
    before = sorted(p.name for p in source.rglob("*"))
    rc = filter_cli.main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert rc == 2 and "Traceback" not in err
    assert len(lines) == 1 and lines[0].startswith(expected.format(tmp=tmp_path, source=source)), lines
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "taken"]
    assert list((tmp_path / "taken").iterdir()) == []
    assert sorted(p.name for p in source.rglob("*")) == before
    assert not list(source.parent.glob(".*filtering*"))


def test_console_script_is_installed_and_refuses_bad_input(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "lerobot-diffrl-filter"),
            f"--dataset.root={tmp_path}",
            "--metric=x",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert [line for line in proc.stderr.splitlines() if line.startswith("error:")] == [
        "error: unknown --metric 'x'; choose one of: length, jerk, abs_delta_action, path_length, sparc, ldlj"
    ]

"""Quality report on real tiny LeRobotDatasets: hand-computed values, comparison, outputs and bad input."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from quality_helpers import TASKS, line_episode, make_dataset, min_jerk_episode, smooth_and_noisy

from lerobot_diffrl.data import metrics as M
from lerobot_diffrl.data.dataset_io import load_episode_set
from lerobot_diffrl.data.report import Report, compute_report
from lerobot_diffrl.errors import DatasetError
from lerobot_diffrl.scripts import report as report_cli

# lerobot 0.4.4's stats code warns about every bool column (next.done, next.success) it histograms.
pytestmark = pytest.mark.filterwarnings("ignore:Converting input from bool:RuntimeWarning")
STEPS = 24
NOISY_SUCCESS = [True, False, True, True, True, True]  # task 0: 2 of 3, task 1: 3 of 3


@pytest.fixture(scope="module")
def datasets(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("report")
    smooth, noisy = smooth_and_noisy(base, per_task=3, steps=STEPS, noisy_success=NOISY_SUCCESS)
    one_task = make_dataset(
        base / "one_task",
        [(TASKS[0], *line_episode([0, 0, 1], [0.3, 0.25, 0.9], 30)) for _ in range(2)],
        videos=False,
    )
    state_only = make_dataset_without_action(base / "no_action")
    return {"smooth": smooth, "noisy": noisy, "one_task": one_task, "no_action": state_only}


def make_dataset_without_action(root: Path) -> Path:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset.create(
        "local/no_action",
        fps=20,
        features={"observation.state": {"dtype": "float32", "shape": (8,), "names": None}},
        root=root,
        use_videos=False,
    )
    for t in range(5):
        ds.add_frame({"observation.state": np.full(8, t, np.float32), "task": "wave"})
    ds.save_episode()
    ds.finalize()
    return root


def smooth_path_lengths() -> np.ndarray:
    return np.array([math.sqrt(0.3**2 + (0.2 + 0.01 * i) ** 2 + 0.1**2) for i in range(3)])


def test_episodes_load_as_written(datasets):
    es = load_episode_set(str(datasets["smooth"]), "smooth")
    assert es.tasks == list(TASKS)
    assert [ep.index for ep in es.episodes] == list(range(6))
    assert es.fps == 20 and es.success_column == "next.success" and es.provenance is None
    actions, states = line_episode([0.1, 0.0, 1.0], [0.4, 0.21, 0.9], STEPS)  # task 1, episode 1
    ep = es.episodes[4]
    assert ep.task == TASKS[1] and ep.length == STEPS and ep.success is True
    np.testing.assert_allclose(ep.actions, actions, atol=1e-6)
    np.testing.assert_allclose(ep.eef, states[:, :3], atol=1e-6)


def test_smooth_dataset_metrics_match_hand_computed_values(datasets):
    es = load_episode_set(str(datasets["smooth"]), "smooth")
    report = compute_report([es])
    [d] = report.datasets
    lengths = smooth_path_lengths()
    # Only the y command differs between episodes of a task: (0.2 + 0.01 i) / 23 * 10 for i = 0, 1, 2.
    y_var = np.var([(0.2 + 0.01 * i) / (STEPS - 1) * 10 for i in range(3)])
    assert d.overall["n_episodes"] == 6 and [t["n_episodes"] for t in d.per_task.values()] == [3, 3]
    expected = {
        "success_rate": 1.0,
        "length_mean": STEPS,
        "length_std": 0.0,
        "jerk": 0.0,
        "abs_delta_action": 0.0,
        "path_length_mean": lengths.mean(),
        "path_length_var": np.var(lengths),
        "endpoint_var": np.var([0.0, 0.01, 0.02]),  # endpoints differ only in y by 0.01 i
        "pairwise_distance": 0.005 * (1 + 2 + 1) / 3,  # offset grows linearly to 0.01 |i - j|: mean half
        "action_var": y_var / 6,  # averaged over the 6 arm dimensions
    }
    for scope in (d.overall, *d.per_task.values()):
        for key, value in expected.items():
            assert scope[key] == pytest.approx(value, rel=2e-3, abs=1e-9), key
    assert d.success_source == "column `next.success`"
    assert report.common_tasks == list(TASKS) and report.comparison_scope == "all 2 tasks"


def test_noisy_dataset_is_worse_on_every_smoothness_and_variance_metric(datasets):
    sets = [load_episode_set(str(datasets[k]), k) for k in ("smooth", "noisy")]
    report = compute_report(sets)
    smooth, noisy = (d.common for d in report.datasets)
    for key in (
        "jerk",
        "abs_delta_action",
        "path_length_var",
        "endpoint_var",
        "pairwise_distance",
        "action_var",
    ):
        assert noisy[key] > smooth[key], key
    assert noisy["jerk"] > 0.1 and noisy["abs_delta_action"] > 0.1
    assert noisy["length_mean"] == pytest.approx(STEPS + 4) and noisy["length_std"] == pytest.approx(
        np.std([STEPS, STEPS + 4, STEPS + 8])
    )
    assert noisy["success_rate"] == pytest.approx(5 / 6)
    assert report.dataset("noisy").per_task[TASKS[0]]["success_rate"] == pytest.approx(2 / 3)
    table = report.comparison_table()
    assert "| metric | smooth | noisy |" in table
    assert "| mean squared jerk [(a.u./step^3)^2] (lower is better) | **0** |" in table
    assert "| generation success rate (higher is better) | **100.0%** | 83.3% |" in table
    claims = report.claim_table().splitlines()
    assert claims[0] == "| claim | vs noisy |"
    assert len(claims) == 2 + 13 and all("| yes (" in row for row in claims[2:])
    assert "| smoother (mean squared jerk) | yes (0 vs " in claims[2]
    # SPARC and LDLJ are "higher is smoother": the claim holds because the smooth values are the higher ones
    assert "| smoother (SPARC mean) | yes (-2.634 vs -2.835) |" in claims
    assert "| SPARC mean (higher is better) | **-2.634** | -2.835 |" in table
    assert claims[-1] == "| more efficient (episode length mean) | yes (24.0 vs 28.0) |"
    # from the other side every claim fails
    assert all("| no (" in row for row in report.claim_table("noisy").splitlines()[2:])


#: Reach lengths (frames) of the minimum-jerk datasets, per task; the tremor dataset's are 10 frames longer.
REACH_STEPS = (21, 31, 41)


@pytest.fixture(scope="module")
def reaches(tmp_path_factory) -> dict[str, Path]:
    """Minimum-jerk reaches, and the same reaches 10 frames longer with a 6 Hz, 3 mm tremor."""
    base = tmp_path_factory.mktemp("reaches")
    smooth, tremor = [], []
    for k, task in enumerate(TASKS):
        for steps in REACH_STEPS:
            start, end = [0.1 * k, 0.0, 1.0], [0.1 * k + 0.25, 0.1 + steps / 1000, 0.9]
            smooth.append((task, *min_jerk_episode(start, end, steps)))
            tremor.append((task, *min_jerk_episode(start, end, steps + 10, tremor=0.003)))
    return {
        "minjerk": make_dataset(base / "minjerk", smooth, videos=False),
        "tremor": make_dataset(base / "tremor", tremor, videos=False),
    }


def within_group_slope(log_lengths, values, groups) -> float:
    """Least squares with one dummy per group: the coefficient of ln(length), via numpy's lstsq."""
    labels = sorted(set(groups))
    design = np.column_stack([log_lengths, *[[g == lab for g in groups] for lab in labels]]).astype(float)
    return float(np.linalg.lstsq(design, np.asarray(values), rcond=None)[0][0])


def test_sparc_ldlj_and_their_length_adjusted_values_match_a_direct_computation(reaches):
    sets = [load_episode_set(str(reaches[k]), k) for k in ("minjerk", "tremor")]
    report = compute_report(sets)
    direct, groups, log_lengths = {}, [], []
    for i, es in enumerate(sets):
        for ep in es.episodes:  # the eef as stored (float32), differentiated at LIBERO's 20 Hz
            direct.setdefault(es.label, []).append(
                (M.sparc(ep.eef, 20.0), M.log_dimensionless_jerk(ep.eef, 20.0))
            )
            groups.append((i, ep.task))
            log_lengths.append(math.log(ep.length))
    values = {lab: np.array(v) for lab, v in direct.items()}
    # a minimum-jerk reach: SPARC about -1.40 whatever its length and amplitude
    np.testing.assert_allclose(values["minjerk"][:, 0], -1.40, atol=0.01)
    assert np.all(values["tremor"][:, 0] < -2.0) and np.all(
        values["tremor"][:, 1] < values["minjerk"][:, 1].min()
    )
    pooled = np.vstack([values["minjerk"], values["tremor"]])
    center = np.mean(log_lengths)
    for col, key in enumerate(("sparc", "ldlj")):
        slope = within_group_slope(log_lengths, pooled[:, col], groups)
        assert report.settings["length_adjustment"][key]["slope"] == pytest.approx(slope, rel=1e-9, abs=1e-12)
        adjusted = pooled[:, col] - slope * (np.array(log_lengths) - center)
        for i, label in enumerate(("minjerk", "tremor")):
            d = report.dataset(label)
            mine, adj = values[label][:, col], adjusted[6 * i : 6 * i + 6]
            assert d.overall[key] == pytest.approx(mine.mean(), rel=1e-9)
            assert d.overall[f"{key}_median"] == pytest.approx(np.median(mine), rel=1e-9)
            assert d.overall[f"{key}_adj"] == pytest.approx(adj.mean(), rel=1e-9)
            assert d.per_task[TASKS[1]][key] == pytest.approx(mine[3:].mean(), rel=1e-9)
            assert d.episode_values[key] == pytest.approx(list(mine), rel=1e-9)
            assert d.episode_values[f"{key}_adj"] == pytest.approx(list(adj), rel=1e-9)
    # the tremor reaches are also longer; adjusted for length, they are still the less smooth ones
    claims = report.claim_table()
    for title in ("SPARC mean", "SPARC (length-adjusted)", "LDLJ mean", "LDLJ (length-adjusted)"):
        assert f"| smoother ({title}) | yes (" in claims
    assert "| SPARC (length-adjusted) (higher is better) | **" in report.comparison_table()
    md = report.to_markdown()
    assert "**SPARC** (spectral arc length): of the eef speed profile at 20 Hz" in md
    assert "one intercept per (dataset, task)" in md and "sparc " in md.split("Slopes: ")[1]
    assert Report.from_dict(json.loads(json.dumps(report.to_dict()))) == report


def test_length_adjustment_of_a_single_dataset_fits_its_own_episodes(reaches):
    es = load_episode_set(str(reaches["minjerk"]))
    d = compute_report([es]).datasets[0]
    # fitted over the same pool, the adjusted values keep the raw mean (they are moved to its mean log-length)
    for key in ("jerk", "abs_delta_action", "sparc", "ldlj"):
        assert d.overall[f"{key}_adj"] == pytest.approx(d.overall[key], rel=1e-9)
    jerk = [M.mean_squared_jerk(ep.actions[:, :6]) for ep in es.episodes]
    assert d.overall["jerk"] == pytest.approx(np.mean(jerk), rel=1e-9)
    # the shorter reaches (same distance in fewer steps) are the jerkier per step: the slope is negative
    assert jerk[0] > jerk[1] > jerk[2]


def test_success_rate_comes_from_provenance_attempts(datasets, tmp_path):
    root = tmp_path / "with_provenance"
    shutil.copytree(datasets["smooth"], root)
    per_task = {TASKS[0]: {"attempts": 5, "successes": 3}, TASKS[1]: {"attempts": 4, "successes": 3}}
    (root / "meta" / "provenance.json").write_text(json.dumps({"per_task": per_task}))
    d = compute_report([load_episode_set(str(root))]).datasets[0]
    assert d.success_source == "provenance (successes / attempts)"
    assert d.per_task[TASKS[0]]["success_rate"] == pytest.approx(0.6)
    assert d.per_task[TASKS[1]]["success_rate"] == pytest.approx(0.75)
    assert d.overall["success_rate"] == pytest.approx(6 / 9)


def test_datasets_with_different_tasks_are_compared_on_common_tasks(datasets):
    sets = [load_episode_set(str(datasets[k]), k) for k in ("smooth", "one_task")]
    report = compute_report(sets)
    assert report.common_tasks == [TASKS[0]]
    assert report.comparison_scope == "the 1 task(s) common to all datasets"
    smooth = report.dataset("smooth")
    assert smooth.common["n_episodes"] == 3 and smooth.overall["n_episodes"] == 6
    for key in ("path_length_var", "endpoint_var", "pairwise_distance", "action_var", "length_mean"):
        assert smooth.common[key] == pytest.approx(smooth.per_task[TASKS[0]][key])
    one = report.dataset("one_task")
    assert one.common["endpoint_var"] == 0.0 and one.common["pairwise_distance"] == 0.0


def test_report_json_round_trip_and_markdown(datasets):
    report = compute_report([load_episode_set(str(datasets[k]), k) for k in ("smooth", "noisy")])
    again = Report.from_dict(json.loads(json.dumps(report.to_dict())))
    assert again == report
    md = report.to_markdown(["distributions.png"])
    assert "## Side by side (over all 2 tasks)" in md
    assert "## Claim check: smooth against the others\n\n" + report.claim_table() in md
    assert "![distributions](distributions.png)" in md
    assert "## Per task: noisy" in md and f"| {TASKS[1]} | 3 | 100.0% |" in md
    assert "resampled L2, not DTW" in md


def test_cli_writes_report_plots_and_card(datasets, tmp_path, capsys):
    import matplotlib.image

    own = tmp_path / "smooth"
    shutil.copytree(datasets["smooth"], own)
    out = tmp_path / "out"
    rc = report_cli.main(
        [
            f"--datasets=[{own}, {datasets['noisy']}]",
            "--labels=[diffusion-RL, human]",
            f"--output_dir={out}",
            "--update_card=true",
        ]
    )
    assert rc == 0
    stdout = capsys.readouterr().out
    assert "| metric | diffusion-RL | human |" in stdout
    assert "Claim check: diffusion-RL against the others:" in stdout and "| claim | vs human |" in stdout
    assert sorted(p.name for p in out.iterdir()) == [
        "distributions.png",
        "eef_paths.png",
        "report.json",
        "report.md",
        "task_metrics.png",
    ]
    for png in out.glob("*.png"):
        h, w, _ = matplotlib.image.imread(png).shape
        assert h > 300 and w > 600
    report = Report.load_json(out / "report.json")
    assert report.labels == ["diffusion-RL", "human"]
    assert report.dataset("diffusion-RL").overall["jerk"] == 0.0
    card = (own / "README.md").read_text()
    assert report.comparison_table() in card
    assert "![eef_paths](meta/report/eef_paths.png)" in card
    assert sorted(p.name for p in (own / "meta" / "report").iterdir()) == [
        "distributions.png",
        "eef_paths.png",
        "report.json",
        "task_metrics.png",
    ]


@pytest.mark.parametrize(
    "case, expected",
    [
        ("missing", "error: dataset '{missing}' not found: no such folder, and it is not a Hub repo id"),
        ("labels", "error: --labels has 1 entries but --datasets has 2; give one per dataset"),
        ("no_action", "error: dataset '{no_action}' has no 'action' feature (it has: "),
        (
            "hub_offline",
            "error: dataset 'nobody/not-cached' is neither a local folder nor in the LeRobot cache",
        ),
        ("card_on_hub", "error: --update_card needs the first dataset to be a local folder, got 'nobody/x'"),
        ("none", "error: --datasets is required"),
    ],
)
def test_cli_bad_input_is_one_error_line(case, expected, datasets, tmp_path, capsys):
    missing = str(tmp_path / "nowhere" / "ds")
    smooth, no_action = str(datasets["smooth"]), str(datasets["no_action"])
    argv = {
        "missing": [f"--datasets=[{smooth}, {missing}]"],
        "labels": [f"--datasets=[{smooth}, {smooth}]", "--labels=[a]"],
        "no_action": [f"--datasets=[{no_action}]"],
        "hub_offline": ["--datasets=[nobody/not-cached]"],
        "card_on_hub": ["--datasets=[nobody/x]", "--update_card=true"],
        "none": [],
    }[case]
    rc = report_cli.main([*argv, f"--output_dir={tmp_path / 'out'}"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert rc == 2
    assert len(lines) == 1 and lines[0].startswith(expected.format(missing=missing, no_action=no_action))
    assert "Traceback" not in err
    assert not (tmp_path / "out" / "report.json").exists()


def test_missing_parquet_is_refused_before_lerobot_tries_the_hub(datasets, tmp_path):
    root = tmp_path / "broken"
    shutil.copytree(datasets["smooth"], root)
    (root / "data" / "chunk-000" / "file-000.parquet").unlink()
    with pytest.raises(DatasetError, match=r"data file\(s\) missing: data/chunk-000/file-000.parquet"):
        load_episode_set(str(root))


@pytest.mark.slow
def test_console_script_reads_a_hub_repo_id_from_the_lerobot_cache(datasets, tmp_path):
    """`lerobot-diffrl-report` resolves a repo id through LeRobotDataset's cache, offline."""
    home = tmp_path / "lerobot_home"
    shutil.copytree(datasets["noisy"], home / "someone" / "noisy-libero")
    env = dict(os.environ, HF_LEROBOT_HOME=str(home), HF_HUB_OFFLINE="1")
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "lerobot-diffrl-report"),
            f"--datasets=[{datasets['smooth']}, someone/noisy-libero]",
            f"--output_dir={tmp_path / 'out'}",
            "--plots=false",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| metric | smooth | someone/noisy-libero |" in proc.stdout
    report = Report.load_json(tmp_path / "out" / "report.json")
    assert report.dataset("someone/noisy-libero").n_episodes == 6
    assert report.dataset("someone/noisy-libero").source == "someone/noisy-libero"

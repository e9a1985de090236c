"""Wilson intervals against hand-computed values, and the per-task / per-suite tables built from eval_info.json."""

from __future__ import annotations

import json
import math

import pytest

from lerobot_diffrl.recipes.results import (
    TaskResult,
    per_task_from_eval_info,
    successes_from_eval_info,
    summarize,
    to_markdown,
    write_results,
)
from lerobot_diffrl.stats import wilson_interval


def _hand_wilson(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Textbook form: (p + z^2/2n -+ z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)."""
    p = k / n
    a = p + z * z / (2 * n)
    b = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    c = 1 + z * z / n
    return (a - b) / c, (a + b) / c


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [
        # Values worked by hand with z = 1.96 (z^2 = 3.8415), 4 decimals.
        (5, 10, 0.2366, 0.7634),  # centre 0.5, half-width 1.96*sqrt(0.025+0.0096)/1.38415 = 0.2634
        (0, 10, 0.0, 0.2775),  # upper = z^2 / (n + z^2) = 3.8415 / 13.8415
        (10, 10, 0.7225, 1.0),
        (45, 50, 0.7864, 0.9565),  # centre (0.9+0.0384)/1.0768 = 0.8715, half 0.0851
        (0, 1, 0.0, 0.7935),
        (1, 1, 0.2065, 1.0),
        (490, 500, 0.9636, 0.9891),  # a 98% LIBERO suite (10 tasks x 50 episodes)
    ],
)
def test_wilson_interval_matches_hand_computed_values(k: int, n: int, low: float, high: float) -> None:
    lo, hi = wilson_interval(k, n)
    assert lo == pytest.approx(low, abs=1e-4) and hi == pytest.approx(high, abs=1e-4)
    ref_lo, ref_hi = _hand_wilson(k, n)
    assert lo == pytest.approx(max(0.0, ref_lo), abs=1e-12) and hi == pytest.approx(
        min(1.0, ref_hi), abs=1e-12
    )


def test_wilson_interval_edges_and_bad_counts() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)
    lo, hi = wilson_interval(0, 50)
    assert lo == 0.0 and 0 < hi < 0.08  # never a zero-width interval at 0%
    with pytest.raises(ValueError):
        wilson_interval(3, 2)
    with pytest.raises(ValueError):
        wilson_interval(-1, 2)


def _libero_eval_info() -> dict:
    """The layout lerobot 0.4.4's lerobot-eval writes for --env.type=libero over two suites."""

    def entry(group: str, task_id: int, successes: list[bool]) -> dict:
        return {
            "task_group": group,
            "task_id": task_id,
            "metrics": {
                "sum_rewards": [float(s) for s in successes],
                "max_rewards": [float(s) for s in successes],
                "successes": successes,
                "video_paths": [],
            },
        }

    return {
        "per_task": [
            entry("libero_object", 0, [True, True, False, True]),
            entry("libero_object", 1, [True, True, True, True]),
            entry("libero_spatial", 3, [False, False, True, False]),
        ],
        "per_group": {},
        "overall": {"n_episodes": 12, "pc_success": 100 * 8 / 12},
    }


def test_eval_info_parsing_per_task_and_flat() -> None:
    info = _libero_eval_info()
    per_task = per_task_from_eval_info(info)
    assert per_task[("libero_object", 1)] == [True] * 4
    assert sum(per_task[("libero_spatial", 3)]) == 1
    flags = successes_from_eval_info(info)
    assert len(flags) == 12 and sum(flags) == 8 == round(info["overall"]["pc_success"] * 12 / 100)
    single = {"per_episode": [{"success": True}, {"success": False}]}
    assert successes_from_eval_info(single) == [True, False]


def test_summary_pools_tasks_per_suite_and_overall(tmp_path) -> None:
    tasks = [
        TaskResult("libero_object", 0, 50, 45, "pick up the alphabet soup and place it in the basket"),
        TaskResult("libero_object", 1, 50, 50, "pick up the cream cheese and place it in the basket"),
        TaskResult("libero_spatial", 0, 50, 25, "pick up the black bowl ..."),
    ]
    summary = summarize(tasks, {"episodes_per_task": 50, "seeds": [0], "fps": 20})
    suites = {row["suite"]: row for row in summary["per_suite"]}
    assert suites["libero_object"]["episodes"] == 100 and suites["libero_object"]["successes"] == 95
    assert suites["libero_object"]["success_rate"] == pytest.approx(0.95)
    assert suites["libero_object"]["ci95"] == pytest.approx(list(wilson_interval(95, 100)))
    assert suites["libero_spatial"]["success_rate"] == pytest.approx(0.5)
    assert summary["overall"]["episodes"] == 150 and summary["overall"]["successes"] == 120
    assert summary["overall"]["success_rate"] == pytest.approx(0.8)
    # The LIBERO "Average" is the mean of suite rates, not the pooled rate when suites differ in size.
    assert summary["suite_average"] == pytest.approx((0.95 + 0.5) / 2)
    assert summary["protocol"]["fps"] == 20

    md = to_markdown(summary)
    assert "| libero_object | 2 | 100 | 95.0 | [88.8, 97.8] |" in md
    assert (
        "| libero_object | 0 | pick up the alphabet soup and place it in the basket | 50 | 45 | 90.0 | [78.6, 95.7] |"
        in md
    )
    assert "| **all (pooled)** | 3 | 150 | **80.0** |" in md
    assert "| suite average | | | 72.5 | |" in md
    assert md.startswith("Protocol: episodes_per_task=50; seeds=[0]; fps=20.")

    json_path, md_path = write_results(tmp_path, summary)
    assert json.loads(json_path.read_text()) == json.loads(json.dumps(summary))
    assert md_path.read_text() == md
    assert not list(tmp_path.glob(".*tmp"))


def test_duplicate_tasks_are_rejected() -> None:
    from lerobot_diffrl.errors import DiffRLError

    with pytest.raises(DiffRLError, match="listed twice"):
        summarize([TaskResult("libero_goal", 1, 5, 1), TaskResult("libero_goal", 1, 5, 2)])

"""Real LIBERO, headless, offline, with stdin closed: nothing may prompt."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = Path(__file__).parent / "probes" / "libero_smoke.py"


def run_probe(tmp_path: Path, suite: str, task_id: int, render: bool) -> dict:
    env = dict(os.environ)
    env.pop("LIBERO_CONFIG_PATH", None)
    env["HOME"] = str(tmp_path)  # LIBERO's config goes to a fresh ~/.libero: it must be written, not asked
    proc = subprocess.run(
        [sys.executable, str(PROBE), suite, str(task_id), "render" if render else "state"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / ".libero" / "config.yaml").is_file()
    line = next(line for line in proc.stdout.splitlines() if line.startswith("PROBE "))
    return json.loads(line[len("PROBE ") :])


@pytest.mark.slow
@pytest.mark.parametrize(
    ("suite", "task_id", "render", "language"),
    [
        ("libero_object", 0, True, "pick up the alphabet soup and place it in the basket"),
        (
            "libero_spatial",
            0,
            False,
            "pick up the black bowl between the plate and the ramekin and place it on the plate",
        ),
    ],
)
def test_task_builds_resets_steps_and_rewards_success(tmp_path, suite, task_id, render, language):
    seen = run_probe(tmp_path, suite, task_id, render)
    assert seen["language"] == language
    assert seen["n_init_states"] == 50
    assert seen["shapes"]["robot0_eef_pos"] == [3]
    assert seen["shapes"]["robot0_eef_quat"] == [4]
    if render:
        # camera_heights x camera_widths as requested (96 x 128), RGB, and not a blank frame
        assert seen["shapes"]["agentview_image"] == [96, 128, 3]
        assert seen["shapes"]["robot0_eye_in_hand_image"] == [96, 128, 3]
        assert 20 < seen["image_mean"] < 235
    else:
        assert "agentview_image" not in seen["shapes"]
    # doing nothing from an init state neither succeeds nor earns reward
    assert seen["rewards"] == [0.0] * 5
    assert seen["successes"] == [False] * 5
    # with the object on its target the task is solved: sparse reward 1.0 exactly when successful
    assert any(seen["placed_success"])
    assert all(
        r == (1.0 if s else 0.0) for r, s in zip(seen["placed_rewards"], seen["placed_success"], strict=True)
    )
    assert seen["soft_reset_reproduces_state"]

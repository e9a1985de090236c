"""A Hub token in the environment never reaches a log, card, provenance file, recipe or summary.

Real commands with a fake token in ``HF_TOKEN`` and ``HUGGING_FACE_HUB_TOKEN``: the pipeline's demos stage (a real
generation on LIBERO, with its provenance, logs, markers, recipe and summary), then the quality report writing the
dataset's card. Every byte they wrote, and their console output, is searched for the token.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FAKE_TOKEN = "hf_FakeTokenForLeakTest" + "q7" * 8


def _run(*cmd: str) -> subprocess.CompletedProcess:
    env = dict(
        os.environ,
        HF_HUB_OFFLINE="1",
        OMP_NUM_THREADS="1",
        HF_TOKEN=FAKE_TOKEN,
        HUGGING_FACE_HUB_TOKEN=FAKE_TOKEN,
    )
    return subprocess.run(list(cmd), capture_output=True, text=True, env=env, cwd=REPO, timeout=900)


@pytest.mark.slow
def test_a_hub_token_in_the_environment_is_written_nowhere(tmp_path: Path) -> None:
    out = tmp_path / "run"
    pipeline = _run(
        sys.executable,
        "-m",
        "lerobot_diffrl.scripts.pipeline",
        f"--output_dir={out}",
        "--stages=[demos]",
        "--demos.episodes_per_task=1",
        "--demos.args=[--image_size=32,--n_envs=1,--keep=all,--max_steps=10]",
    )
    assert pipeline.returncode == 0, pipeline.stderr[-3000:]
    demos = out / "demos" / "libero_object"
    report = _run(
        sys.executable,
        "-m",
        "lerobot_diffrl.scripts.report",
        f"--datasets=[{demos}]",
        "--labels=[demos]",
        f"--output_dir={tmp_path / 'report'}",
        "--update_card=true",
    )
    assert report.returncode == 0, report.stderr[-3000:]
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    names = {p.name for p in written}
    assert {"provenance.json", "README.md", "recipe.json", "summary.json", "summary.md"} <= names
    assert any(p.suffix == ".log" for p in written) and any(p.name == "report.json" for p in written)
    leaked = [str(p) for p in written if FAKE_TOKEN.encode() in p.read_bytes()]
    assert not leaked, leaked
    for proc in (pipeline, report):
        assert FAKE_TOKEN not in proc.stdout + proc.stderr

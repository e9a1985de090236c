"""SIGTERM is handled as Ctrl-C by every command (run_cli), and the pipeline forwards it to its running job."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest
from tqdm import tqdm

from lerobot_diffrl.recipes.launchers import LocalLauncher
from lerobot_diffrl.recipes.pipeline_config import LauncherConfig, PipelineConfig
from lerobot_diffrl.recipes.pipeline_schedule import Scheduler
from lerobot_diffrl.recipes.pipeline_stages import Job, RunLayout
from lerobot_diffrl.scripts.cli import run_cli
from lerobot_diffrl.signals import TERMINATED_EXIT, Terminated, sigterm_as_interrupt


def _sigterm_self_after(seconds: float) -> None:
    threading.Timer(seconds, os.kill, (os.getpid(), signal.SIGTERM)).start()


def test_run_cli_turns_sigterm_into_a_clean_stop(capsys) -> None:
    cleaned = []

    def work() -> None:
        try:
            _sigterm_self_after(0.2)
            time.sleep(30)
        except KeyboardInterrupt:
            cleaned.append(True)  # the commands' save-and-exit path
            raise

    before = signal.getsignal(signal.SIGTERM)
    assert run_cli(work) == TERMINATED_EXIT
    assert cleaned == [True]
    assert capsys.readouterr().err.strip().splitlines()[-1] == "terminated"
    assert signal.getsignal(signal.SIGTERM) is before  # restored


def test_a_second_sigterm_does_not_cut_the_save_short() -> None:
    saved = []
    with pytest.raises(Terminated), sigterm_as_interrupt():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        except Terminated:
            os.kill(os.getpid(), signal.SIGTERM)  # ignored while saving
            time.sleep(0.2)
            saved.append(True)
            raise
    assert saved == [True]


def test_pipeline_forwards_sigterm_to_its_running_job(tmp_path: Path) -> None:
    marker = tmp_path / "child_saved"
    child = (
        "import signal, sys, time\n"
        f"def stop(*_):\n    open({str(marker)!r}, 'w').write('saved'); sys.exit(143)\n"
        "signal.signal(signal.SIGTERM, stop)\nprint('running', flush=True)\ntime.sleep(60)\n"
    )
    layout = RunLayout(tmp_path / "run")
    job = Job("rl", "rl/group", tmp_path / "out", command=lambda: [sys.executable, "-c", child])
    cfg = PipelineConfig(launcher=LauncherConfig(type="local", cpu_slots=2))
    launcher = LocalLauncher(cfg)
    started = time.monotonic()
    with pytest.raises(Terminated), sigterm_as_interrupt(), tqdm(disable=True) as bar:
        _sigterm_self_after(1.5)
        Scheduler([job], launcher, layout, cfg).run(bar)
    launcher.shutdown()
    assert marker.read_text() == "saved"
    assert time.monotonic() - started < 30
    assert "running" in layout.log("rl/group").read_text()
    assert not (layout.markers / "rl").exists()  # a stopped job is not finished

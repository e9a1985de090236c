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

from lerobot_diffrl.recipes.pipeline_runner import run_command
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
    log = tmp_path / "job.log"
    started = time.monotonic()
    with pytest.raises(Terminated), sigterm_as_interrupt(), tqdm(disable=True) as bar:
        _sigterm_self_after(1.5)
        run_command([sys.executable, "-c", child], log, bar, dict(os.environ))
    assert marker.read_text() == "saved"
    assert time.monotonic() - started < 30
    assert "running" in log.read_text()

"""Run a pipeline's jobs as a graph: each starts once the jobs it reads from have finished and its launcher has room.

Why a graph rather than stage after stage: the jobs of one stage are independent (one BC, RL run and generation
per expert group, one evaluation per suite), and a group's RL need not wait for the other groups' BC. Each job is
still the same command line, with the same marker, log, skip and resume as in a serial run; the launcher only
decides where it runs (:mod:`lerobot_diffrl.recipes.launchers`).

Failure: the first job that fails stops the run; the jobs still running are sent SIGTERM, so they save what they
have (a checkpoint, their committed episodes) and are resumed by the next run, as after Ctrl-C. A job whose Ray
worker or node died is started again, up to ``launcher.max_retries`` times, with the command its leftovers call
for (``--resume=true``).
"""

from __future__ import annotations

import json
import shlex
import time
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from lerobot_diffrl.data.staging import write_json_atomic
from lerobot_diffrl.errors import DiffRLError
from lerobot_diffrl.recipes.launchers import STOP_GRACE_S, LocalLauncher, WorkerLost, output_lines
from lerobot_diffrl.recipes.pipeline_config import PipelineConfig
from lerobot_diffrl.recipes.pipeline_stages import Job, RunLayout
from lerobot_diffrl.signals import Terminated

#: How often the console refreshes while jobs run.
POLL_S = 1.0


class StageFailed(DiffRLError):
    """A stage's command exited non-zero (or its worker was lost more often than ``launcher.max_retries``)."""


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Markers, recipe and summary: atomic (a killed run never leaves a torn marker), keys in pipeline order."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, data, sort_keys=False)


def marker_path(layout: RunLayout, job: Job) -> Path:
    """``stages/<stage>/<job>.json`` (``stages/<stage>.json`` is the stage's own marker)."""
    return layout.markers / job.stage / f"{job.name.split('/', 1)[-1]}.json"


def last_error(log: Path) -> str:
    """The line of a failed command's log that says why (its ``error:`` line, else its last line)."""
    if not log.is_file():
        return "(no output)"
    lines = output_lines(log.read_text(errors="replace"))
    for line in reversed(lines):
        if line.startswith("error:") or "Error" in line.split(":", 1)[0]:
            return line[:400]
    return lines[-1][:400] if lines else "(no output)"


@dataclass
class _Attempt:
    """A job that is running: when it started, with which command, and how many times it was started."""

    job: Job
    command: list[str] | None
    started_at: float
    attempt: int = 1


@dataclass
class _Progress:
    """Per stage: how many jobs there are, run, finished and failed; shown as the progress bar's postfix."""

    total: dict[str, int]
    finished: dict[str, int] = field(default_factory=dict)
    running: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    latest: str = ""

    def line(self) -> str:
        parts = []
        for stage, total in self.total.items():
            text = f"{stage} {self.finished.get(stage, 0)}/{total}"
            if self.running.get(stage):
                text += f" ({self.running[stage]} running)"
            if self.failed.get(stage):
                text += f" ({self.failed[stage]} failed)"
            parts.append(text)
        return " | ".join(parts) + (f" | {self.latest}" if self.latest else "")

    def add(self, counts: dict[str, int], stage: str, step: int) -> None:
        counts[stage] = counts.get(stage, 0) + step


class Scheduler:
    """Starts ready jobs on the launcher, collects them, writes their markers, retries lost ones."""

    def __init__(
        self, jobs: list[Job], launcher: LocalLauncher, layout: RunLayout, cfg: PipelineConfig
    ) -> None:
        self.jobs, self.launcher, self.layout, self.cfg = jobs, launcher, layout, cfg
        self.names = {job.name for job in jobs}
        self.by_stage: dict[str, list[str]] = {}
        for job in jobs:
            self.by_stage.setdefault(job.stage, []).append(job.name)
        self.records: dict[str, dict[str, Any]] = {}
        self.running: dict[Future, _Attempt] = {}
        self.progress = _Progress({stage: len(names) for stage, names in self.by_stage.items()})
        launcher.on_line = self._on_line

    def _on_line(self, name: str, text: str) -> None:
        self.progress.latest = f"{name}: {text[-60:]}"

    def ready(self, job: Job) -> bool:
        """Every job (or every job of every stage) it needs has finished; needs outside this run count as met."""
        for need in job.needs:
            if need in self.names and need not in self.records:
                return False
            if need in self.by_stage and any(n not in self.records for n in self.by_stage[need]):
                return False
        return True

    def run(self, bar: tqdm) -> dict[str, dict[str, Any]]:
        """All jobs, finished or skipped; raises :class:`StageFailed` (or an in-process job's own error) on the
        first failure."""
        self.bar = bar
        pending = list(self.jobs)
        try:
            while pending or self.running:
                pending = self._start_ready(pending)
                if not self.running:
                    break
                bar.set_postfix_str(self.progress.line(), refresh=True)
                done, _ = wait(list(self.running), timeout=POLL_S, return_when=FIRST_COMPLETED)
                for future in done:
                    self._collect(future, self.running.pop(future))
        except KeyboardInterrupt as stop:
            self._stop(terminated=isinstance(stop, Terminated))
            raise
        except BaseException:
            self._stop(terminated=True)
            raise
        bar.set_postfix_str(self.progress.line(), refresh=True)
        assert not pending, f"jobs never became ready: {[j.name for j in pending]}"
        return self.records

    def _start_ready(self, pending: list[Job]) -> list[Job]:
        left = []
        for job in pending:
            if not self.ready(job):
                left.append(job)
            elif self._skip(job):
                continue
            elif self.launcher.fits(job):
                self._start(job)
            else:
                left.append(job)
        return left

    def _skip(self, job: Job) -> bool:
        marker = marker_path(self.layout, job)
        if not (marker.is_file() and job.output.exists()):
            return False
        self._done(job, {**json.loads(marker.read_text()), "status": "skipped"})
        return True

    def _start(self, job: Job, attempt: int = 1) -> None:
        command = job.command() if job.command is not None else None
        if command is not None:
            log = self.layout.log(job.name)
            future = self.launcher.submit(job, command, {**child_env(self.cfg), **job.env}, log)
            where = self.launcher.placement(job)
            tqdm.write(f"[{job.name}] ({where}) {shlex.join(command)}\n    log: {log}")
        else:
            future = self.launcher.submit_action(job)
            tqdm.write(f"[{job.name}]")
        self.running[future] = _Attempt(job, command, time.time(), attempt)
        self.progress.add(self.progress.running, job.stage, 1)

    def _collect(self, future: Future, run: _Attempt) -> None:
        job = run.job
        self.progress.add(self.progress.running, job.stage, -1)
        try:
            code = future.result()
        except WorkerLost as lost:
            if run.attempt > self.cfg.launcher.max_retries:
                self._fail(job, f"its worker was lost {run.attempt} time(s), last: {lost}")
            tqdm.write(f"[{job.name}] worker lost ({lost}); starting it again with its resume")
            self._start(job, run.attempt + 1)
            return
        except (
            Exception
        ):  # an in-process job's own error (e.g. a demo dataset without the task) stops the run
            self.progress.add(self.progress.failed, job.stage, 1)
            raise
        if job.command is not None and code != 0:
            log = self.layout.log(job.name)
            self._fail(job, f"failed with exit status {code}: {last_error(log)} (log: {log})")
        self._finish(run)

    def _fail(self, job: Job, why: str) -> None:
        self.progress.add(self.progress.failed, job.stage, 1)
        raise StageFailed(
            f"stage {job.stage} ({job.name}) {why}. Fix it and run the pipeline again: finished jobs are "
            "skipped, this one resumes."
        )

    def _finish(self, run: _Attempt) -> None:
        job, now = run.job, time.time()
        record = {
            "job": job.name,
            "stage": job.stage,
            "output": str(job.output),
            "command": shlex.join(run.command) if run.command else None,
            "seconds": round(now - run.started_at, 1),
            "started_at": round(run.started_at, 3),
            "finished_at": round(now, 3),
            "launcher": self.launcher.name,
            "attempts": run.attempt,
            "figures": job.figures(),
        }
        write_json(marker_path(self.layout, job), record)
        self._done(job, {**record, "status": "ran"})

    def _done(self, job: Job, record: dict[str, Any]) -> None:
        self.records[job.name] = record
        self.progress.add(self.progress.finished, job.stage, 1)
        self.bar.update()
        if all(name in self.records for name in self.by_stage[job.stage]):
            write_json(
                self.layout.markers / f"{job.stage}.json",
                {"stage": job.stage, "jobs": self.by_stage[job.stage]},
            )

    def _stop(self, terminated: bool) -> None:
        """Let the running jobs save and stop; keep the markers of those that finished meanwhile."""
        if not self.running:
            return
        self.launcher.interrupt(terminated)
        done, not_done = wait(list(self.running), timeout=STOP_GRACE_S)
        for future in done:
            run = self.running.pop(future)
            try:
                if future.result() == 0:
                    self._finish(run)
            except BaseException:  # noqa: BLE001  (stopped or failed: resumed by the next run)
                pass
        if not_done:
            self.launcher.kill()


def child_env(cfg: PipelineConfig) -> dict[str, str]:
    """The pipeline's additions to each command's environment (unbuffered output, the LIBERO assets)."""
    env = {"PYTHONUNBUFFERED": "1"}
    if cfg.libero_assets:
        env["LEROBOT_DIFFRL_LIBERO_ASSETS"] = str(Path(cfg.libero_assets).expanduser().resolve())
    return env

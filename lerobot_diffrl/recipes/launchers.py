"""Where the pipeline's jobs run: one after another, several at once on this machine, or as Ray tasks.

A launcher only runs what it is given: a command line with its environment and log, or an in-process action.
Which job runs when, markers, skips and resumes stay with the scheduler
(:mod:`lerobot_diffrl.recipes.pipeline_schedule`), so every launcher gives a job exactly the semantics of a serial
run. The local launcher gives each GPU job its own GPUs through ``CUDA_VISIBLE_DEVICES`` and runs CPU jobs in a
fixed number of slots; the serial launcher is the local one with room for one job. The Ray launcher is in
:mod:`lerobot_diffrl.recipes.ray_launcher` (Ray is an optional extra).
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from lerobot_diffrl.errors import ConfigError
from lerobot_diffrl.recipes.pipeline_config import LauncherConfig, PipelineConfig
from lerobot_diffrl.recipes.pipeline_stages import Job

#: Seconds a job gets to save and exit after the pipeline forwards SIGTERM to it.
STOP_GRACE_S = 120
_LINE_SPLIT = re.compile(r"[\r\n]+")


def output_lines(text: str) -> list[str]:
    """A command's output as its non-empty lines (progress bars redraw with ``\r``, so both count as breaks)."""
    return [line.strip() for line in _LINE_SPLIT.split(text) if line.strip()]


class WorkerLost(Exception):
    """The process running a job died (a killed Ray worker or node): the job may start again and resume."""


def gpus_per_job(cfg: PipelineConfig) -> int:
    """GPUs one device of a job takes: ``launcher.gpus_per_job``, else 1 with ``device=cuda``."""
    if cfg.launcher.gpus_per_job is not None:
        return cfg.launcher.gpus_per_job
    return 1 if cfg.device.startswith("cuda") else 0


def job_gpus(cfg: PipelineConfig, job: Job) -> int:
    return job.devices * gpus_per_job(cfg)


def run_command(
    argv: list[str],
    log: Path,
    env: dict[str, str],
    on_line: Callable[[str], None] | None = None,
    on_start: Callable[[subprocess.Popen], None] | None = None,
) -> int:
    """Run ``argv`` with its output appended to ``log``; ``on_line`` sees its latest output line."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as fh:
        fh.write(f"\n$ {shlex.join(argv)}\n".encode())
        fh.flush()
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        if on_start is not None:
            on_start(proc)
        assert proc.stdout is not None
        pending = b""
        while chunk := proc.stdout.read1(65536):
            fh.write(chunk)
            fh.flush()
            if on_line is not None:
                pending = (pending + chunk)[-2000:]
                lines = output_lines(pending.decode(errors="replace"))
                if lines:
                    on_line(lines[-1])
        return proc.wait()


class LocalLauncher:
    """Jobs as child processes of the pipeline, as many at once as there are free GPUs and CPU slots."""

    name = "local"

    def __init__(self, cfg: PipelineConfig, cpu_slots: int | None = None) -> None:
        self.cfg = cfg
        self.cpu_slots = cpu_slots or cfg.launcher.cpu_slots or max(1, (os.cpu_count() or 2) // 2)
        self.free_gpus = visible_gpus()
        self.total_gpus = len(self.free_gpus)
        self.free_cpu = self.cpu_slots
        self.held: dict[str, list[str] | None] = {}  # job name -> its GPUs (None: a CPU slot)
        self.procs: dict[str, subprocess.Popen] = {}
        self.lock = threading.Lock()
        self.pool = ThreadPoolExecutor(max_workers=self.cpu_slots + self.total_gpus + 1)
        self.on_line: Callable[[str, str], None] | None = None

    def describe(self) -> str:
        gpus = f", GPUs {','.join(self.free_gpus)}" if self.total_gpus else ""
        return f"{self.name} launcher: {self.cpu_slots} CPU slot(s){gpus}"

    def check(self, jobs: list[Job]) -> None:
        """A job asking for more GPUs than this machine has could never start."""
        for job in jobs:
            need = job_gpus(self.cfg, job)
            if need > self.total_gpus:
                raise ConfigError(
                    f"job {job.name} asks for {need} GPU(s) and this machine has {self.total_gpus} "
                    "(set --device=cpu, lower launcher.gpus_per_job or vla.num_processes, or use launcher.type=ray)"
                )

    def fits(self, job: Job) -> bool:
        need = job_gpus(self.cfg, job)
        return len(self.free_gpus) >= need if need else self.free_cpu >= 1

    def _hold(self, job: Job) -> dict[str, str]:
        need = job_gpus(self.cfg, job)
        with self.lock:
            if need:
                ids, self.free_gpus = self.free_gpus[:need], self.free_gpus[need:]
                self.held[job.name] = ids
                return {"CUDA_VISIBLE_DEVICES": ",".join(ids)}
            self.free_cpu -= 1
            self.held[job.name] = None
            return {}

    def _release(self, name: str) -> None:
        with self.lock:
            ids = self.held.pop(name)
            self.procs.pop(name, None)
            if ids is None:
                self.free_cpu += 1
            else:
                self.free_gpus = sorted(self.free_gpus + ids, key=int)

    def placement(self, job: Job) -> str:
        ids = self.held.get(job.name)
        return f"GPU {','.join(ids)}" if ids else "CPU"

    def submit(self, job: Job, argv: list[str], env: dict[str, str], log: Path) -> Future:
        """Run the command in a thread of this process; ``env`` is added to the pipeline's environment."""
        env = {**os.environ, **env, **self._hold(job)}

        def started(proc: subprocess.Popen) -> None:
            self.procs[job.name] = proc

        def line(text: str) -> None:
            if self.on_line is not None:
                self.on_line(job.name, text)

        future = self.pool.submit(run_command, argv, log, env, line, started)
        future.add_done_callback(lambda _: self._release(job.name))
        return future

    def submit_action(self, job: Job) -> Future:
        assert job.action is not None
        self._hold(job)
        future = self.pool.submit(job.action)
        future.add_done_callback(lambda _: self._release(job.name))
        return future

    def interrupt(self, terminated: bool) -> None:
        """Ctrl-C reached the commands too (one process group); SIGTERM sent to the pipeline alone is forwarded,
        so every running command saves and stops as on its own preemption."""
        if terminated:
            for proc in list(self.procs.values()):
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        for proc in list(self.procs.values()):
            if proc.poll() is None:
                proc.kill()

    def shutdown(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


class SerialLauncher(LocalLauncher):
    """One job at a time, in pipeline order (the behaviour before launchers existed)."""

    name = "serial"

    def __init__(self, cfg: PipelineConfig) -> None:
        super().__init__(cfg, cpu_slots=1)

    def fits(self, job: Job) -> bool:
        return not self.held and super().fits(job)


def visible_gpus() -> list[str]:
    """This process's GPUs as ``CUDA_VISIBLE_DEVICES`` names them (all of torch's when it is unset)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [g.strip() for g in visible.split(",") if g.strip() and g.strip() != "-1"]
    try:
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    except Exception:  # noqa: BLE001  (a broken CUDA install means no usable GPU)
        return []


def make_launcher(cfg: PipelineConfig) -> LocalLauncher:
    """The launcher ``launcher.type`` names (Ray's is imported only when asked for)."""
    launcher: LauncherConfig = cfg.launcher
    if launcher.type == "serial":
        return SerialLauncher(cfg)
    if launcher.type == "ray":
        from lerobot_diffrl.recipes.ray_launcher import RayLauncher

        return RayLauncher(cfg)
    return LocalLauncher(cfg)

"""The Ray launcher: each pipeline job is a Ray task with declared resources, on a cluster or on a Ray started here.

Why a task runs the job's command line rather than the job's Python: the command is what a user types, has its own
resume, and writes its own artefacts and log; the task only reserves the job's GPUs, CPUs and memory on some node
and runs it there. The command dies with its worker (``PR_SET_PDEATHSIG``), so a killed worker or node leaves no
orphan writing into the run folder. Ray's own task retries are off: a lost job is started again by the scheduler,
which rebuilds its command from what the dead attempt left (``--resume=true``), exactly as a re-run of the
pipeline would.

Every node must see the run folder and the package at the same paths (a shared filesystem, or one machine), as
they do on a SLURM allocation (``recipes/slurm/ray_pipeline.sbatch``). In-process jobs (splitting the demos,
merging, building the tiny VLA base) run on the driver.
"""

from __future__ import annotations

import os
import socket
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from lerobot_diffrl.errors import ConfigError
from lerobot_diffrl.recipes.launchers import WorkerLost, job_gpus, visible_gpus
from lerobot_diffrl.recipes.pipeline_config import PipelineConfig
from lerobot_diffrl.recipes.pipeline_stages import Job

#: Seconds to wait for a given head address to answer before giving up.
CONNECT_TIMEOUT_S = 5.0
#: The object store a run needs: tasks return only exit codes (Ray's minimum is 75 MiB).
OBJECT_STORE_BYTES = 128 * 1024**2
#: Environment the driver passes on to every job (the rest is the worker's own).
FORWARDED_ENV = ("HF_", "LEROBOT_", "MUJOCO_", "PYOPENGL_", "WANDB_", "OMP_NUM_THREADS", "PYTHONUNBUFFERED")
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the command's process: get SIGKILL when the worker that started it dies (Linux)."""
    import ctypes
    import signal

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def run_in_worker(argv: list[str], env: dict[str, str], log: str) -> int:
    """Body of a job's Ray task: run the command on this node, output appended to ``log``; its exit status."""
    import shlex
    import signal
    import subprocess

    path = Path(log)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab") as fh:
        fh.write(
            f"\n$ {shlex.join(argv)}\n[ray] worker pid {os.getpid()} on {socket.gethostname()}\n".encode()
        )
        fh.flush()
        proc = subprocess.Popen(
            argv,
            stdout=fh,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
            preexec_fn=_die_with_parent,
        )
        try:
            return proc.wait()
        except KeyboardInterrupt:  # ray.cancel: let the command save and stop, as on its own preemption
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
            raise


def check_reachable(address: str) -> None:
    """One clear error for a head that does not answer, before Ray's own retries (minutes of log lines)."""
    if address == "auto":
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"launcher.address must be 'auto' or host:port, got {address!r}")
    try:
        with socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as err:
        raise ConfigError(
            f"no Ray cluster answers at {address} ({err.strerror or err}): start one with 'ray start --head' "
            "or give the head's address (launcher.address)"
        ) from None


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "launcher.type=ray needs Ray: pip install 'lerobot_policy_diffrl[ray]' (or use launcher.type=local)"
        ) from None
    return ray


class RayLauncher:
    """Jobs as Ray tasks; Ray queues each until a node has its resources."""

    name = "ray"

    def __init__(self, cfg: PipelineConfig) -> None:
        self.cfg = cfg
        self.ray = _import_ray()
        address = cfg.launcher.address
        if address is not None:
            check_reachable(address)
        self.started_here = address is None
        try:
            if self.started_here:
                self.ray.init(
                    num_cpus=os.cpu_count(),
                    num_gpus=len(visible_gpus()),
                    include_dashboard=False,
                    log_to_driver=False,
                    object_store_memory=OBJECT_STORE_BYTES,
                )
            else:
                self.ray.init(address=address, log_to_driver=False)
        except ConnectionError as err:
            raise ConfigError(
                f"cannot join the Ray cluster at {address}: {str(err).splitlines()[0]}"
            ) from None
        self.task = self.ray.remote(run_in_worker)
        self.refs: dict[str, object] = {}
        self.actions = ThreadPoolExecutor(max_workers=2)
        self.on_line = None

    def describe(self) -> str:
        res = self.ray.cluster_resources()
        where = "a local Ray" if self.started_here else f"the Ray cluster at {self.cfg.launcher.address}"
        return f"ray launcher on {where}: {res.get('CPU', 0):g} CPUs, {res.get('GPU', 0):g} GPUs"

    def check(self, jobs: list[Job]) -> None:
        resources = self.ray.cluster_resources()
        gpus, cpus = resources.get("GPU", 0.0), resources.get("CPU", 0.0)
        for job in jobs:
            need = job_gpus(self.cfg, job)
            if need > gpus:
                raise ConfigError(
                    f"job {job.name} asks for {need} GPU(s) and the Ray cluster has {gpus:g} "
                    "(set --device=cpu, or lower launcher.gpus_per_job or vla.num_processes)"
                )
        if self.cfg.launcher.cpus_per_job > cpus:
            raise ConfigError(
                f"launcher.cpus_per_job={self.cfg.launcher.cpus_per_job:g} and the Ray cluster has {cpus:g} CPUs"
            )

    def fits(self, job: Job) -> bool:
        return True

    def placement(self, job: Job) -> str:
        return "ray"

    def submit(self, job: Job, argv: list[str], env: dict[str, str], log: Path) -> Future:
        forwarded = {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_ENV)}
        memory = self.cfg.launcher.memory_gb_per_job
        options = {
            "num_cpus": self.cfg.launcher.cpus_per_job,
            "num_gpus": job_gpus(self.cfg, job),
            "max_retries": 0,
            "name": job.name,
        }
        if memory is not None:
            options["memory"] = int(memory * 1024**3)
        ref = self.task.options(**options).remote(argv, {**forwarded, **env}, str(log))
        self.refs[job.name] = ref
        return _translated(ref.future(), self.ray)

    def submit_action(self, job: Job) -> Future:
        assert job.action is not None
        return self.actions.submit(job.action)

    def interrupt(self, terminated: bool) -> None:
        """Running tasks get KeyboardInterrupt, and forward SIGTERM to their commands (which save and stop)."""
        for ref in list(self.refs.values()):
            try:
                self.ray.cancel(ref, force=False)
            except Exception:  # noqa: BLE001  (a finished task cannot be cancelled)
                pass

    def kill(self) -> None:
        for ref in list(self.refs.values()):
            try:
                self.ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001
                pass

    def shutdown(self) -> None:
        self.actions.shutdown(wait=False, cancel_futures=True)
        if self.ray.is_initialized():
            self.ray.shutdown()


def _translated(future: Future, ray) -> Future:
    """``future`` with a dead worker or node turned into :class:`WorkerLost` (the scheduler retries those)."""
    lost = (
        ray.exceptions.WorkerCrashedError,
        ray.exceptions.NodeDiedError,
        ray.exceptions.LocalRayletDiedError,
        ray.exceptions.ObjectLostError,
        ray.exceptions.OwnerDiedError,
    )
    out: Future = Future()

    def done(f: Future) -> None:
        if f.cancelled():
            out.set_exception(WorkerLost("the task was cancelled"))
            return
        err = f.exception()
        if err is None:
            out.set_result(f.result())
        elif isinstance(err, lost):
            out.set_exception(WorkerLost(f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"))
        else:
            out.set_exception(err)

    future.add_done_callback(done)
    return out

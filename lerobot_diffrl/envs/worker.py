"""The pool's simulator worker process: hosts one or several slots, each a :class:`TaskEpisode`.

Runs in a process started with spawn or forkserver, so its GL context (if any) is created here and never
inherited. Protocol (small tuples over a pipe; observations go through :mod:`lerobot_diffrl.envs.shm`):

- parent -> worker ``("reset", [(slot, SlotTask, init_index, render), ...])``, reply ``("ok", infos)``;
- ``("step", render_mask, next_init)`` (per hosted slot, actions in shared memory): step, write obs; a slot
  whose episode ends gets its final obs in plane 1 and is reset to ``next_init`` = (task, init index), a soft
  reset unless the slot changed task (SAME_STEP auto-reset);
  reply ``("ok", {slot: final_info})`` for the slots that ended;
- ``("fault", kind)`` (tests only): ``"hang"`` makes the next step block, ``"crash"`` aborts the process;
- ``("close",)``. Errors reply ``("error", kind, message)``. EOF on the pipe (parent gone) ends the worker.

SIGINT is ignored here: Ctrl-C in a terminal reaches the whole process group, and the parent, not the
workers, decides how to shut down (it kills them in :meth:`EnvPool.close`).
"""

from __future__ import annotations

import os
import signal
import time
import traceback
from dataclasses import dataclass
from typing import Any

import numpy as np

from lerobot_diffrl.envs.episode import TaskEpisode
from lerobot_diffrl.envs.observations import CAMERA_KEYS
from lerobot_diffrl.envs.shm import SCALAR, BufferSpec, SharedBuffers


@dataclass(frozen=True)
class SlotTask:
    """What a slot runs: a task and its episode settings."""

    suite: str
    task_id: int
    max_steps: int | None = None


@dataclass(frozen=True)
class WorkerConfig:
    """Everything a worker needs, picklable."""

    worker_id: int
    shm_name: str
    buffers: BufferSpec
    render: bool
    image_size: tuple[int, int]
    control_mode: str
    build_seed: int
    settle_steps: int
    gpu_device: int = -1
    fast_state: bool = True


class _Worker:
    def __init__(self, cfg: WorkerConfig):
        from lerobot_diffrl.envs.suites import task_spec

        self._task_spec = task_spec
        self.cfg = cfg
        self.buf = SharedBuffers(cfg.buffers, name=cfg.shm_name)
        self.episodes: dict[int, TaskEpisode] = {}
        self.fault: str | None = None

    def _episode(self, slot: int, task: SlotTask) -> TaskEpisode:
        """The slot's simulator; rebuilt only when the slot changes task (else: soft reset)."""
        ep = self.episodes.get(slot)
        if ep is not None and (ep.spec.suite, ep.spec.task_id, ep.max_steps) != (
            task.suite,
            task.task_id,
            task.max_steps or ep.spec.max_steps,
        ):
            ep.close()
            ep = None
        if ep is None:
            ep = TaskEpisode(
                self._task_spec(task.suite, task.task_id),
                render=self.cfg.render,
                image_size=self.cfg.image_size,
                max_steps=task.max_steps,
                control_mode=self.cfg.control_mode,
                build_seed=self.cfg.build_seed,
                settle_steps=self.cfg.settle_steps,
                render_gpu_device_id=self.cfg.gpu_device,
                fast_state=self.cfg.fast_state,
            )
            self.episodes[slot] = ep
        return ep

    def _write(self, slot: int, plane: int, ep: TaskEpisode, raw: dict[str, Any], rendered: bool) -> None:
        buf = self.buf
        buf.robot[plane, slot] = ep.robot_state(raw)
        objects, length = ep.object_state(raw)
        buf.objects[plane, slot] = objects
        buf.object_len[slot] = length
        if rendered and buf.spec.image_size is not None:
            for cam, key in enumerate(CAMERA_KEYS):
                buf.images[plane, slot, cam] = raw[key]

    def reset(self, items: list[tuple[int, SlotTask, int, bool]]) -> dict[int, dict]:
        infos = {}
        for slot, task, init_index, render in items:
            ep = self._episode(slot, task)
            raw = ep.reset(init_index, render=render)
            self._write(slot, 0, ep, raw, render and ep.renders)
            row = self.buf.scalars[slot]
            row[:] = 0
            row[SCALAR["init_index"]] = ep.init_index
            row[SCALAR["rendered"]] = float(render and ep.renders)
            infos[slot] = {"task": ep.spec.name, "init_index": ep.init_index}
        return infos

    def step(
        self, render_mask: dict[int, bool], next_init: dict[int, tuple[SlotTask, int]]
    ) -> dict[int, dict]:
        """One step of every slot with the action in shared memory."""
        self._maybe_fault()
        finals: dict[int, dict] = {}
        for slot, render in render_mask.items():
            ep = self.episodes[slot]
            result = ep.step(self.buf.actions[slot], render=render)
            self._record(slot, ep, result, result.reward, 1, render, next_init, finals)
        return finals

    def step_chunk(
        self, chunks: dict[int, tuple[np.ndarray, bool]], next_init: dict[int, tuple[SlotTask, int]]
    ) -> dict[int, dict]:
        """Execute an action chunk per slot, stopping at the end of its episode (DPPO's multi-step wrapper).

        Only the observation returned is rendered (when asked): the chunk's last step, or the step that
        reaches the time limit, whose final observation a learner bootstraps from. A success ends the chunk
        without a rendered final frame (nothing bootstraps from it).
        """
        self._maybe_fault()
        finals: dict[int, dict] = {}
        for slot, (actions, render) in chunks.items():
            ep = self.episodes[slot]
            total, executed = 0.0, 0
            for k, action in enumerate(actions):
                last = k == len(actions) - 1 or ep.elapsed_steps + 1 >= ep.max_steps
                result = ep.step(action, render=render and last)
                total += result.reward
                executed += 1
                if result.terminated or result.truncated:
                    break
            self._record(slot, ep, result, total, executed, render, next_init, finals)
        return finals

    def _maybe_fault(self) -> None:
        if self.fault == "hang":
            while True:
                time.sleep(3600)
        if self.fault == "crash":
            os.kill(os.getpid(), signal.SIGSEGV)

    def _record(
        self,
        slot: int,
        ep: TaskEpisode,
        result: Any,
        reward: float,
        executed: int,
        render: bool,
        next_init: dict[int, tuple[SlotTask, int]],
        finals: dict[int, dict],
    ) -> None:
        """Write a slot's step outcome to shared memory; auto-reset it when its episode ended."""
        row = self.buf.scalars[slot]
        row[SCALAR["reward"]] = reward
        row[SCALAR["terminated"]] = result.terminated
        row[SCALAR["truncated"]] = result.truncated
        row[SCALAR["is_success"]] = result.is_success
        row[SCALAR["elapsed_steps"]] = ep.elapsed_steps
        row[SCALAR["executed_steps"]] = executed
        row[SCALAR["final_rendered"]] = 0.0
        if result.terminated or result.truncated:
            self._write(slot, 1, ep, result.raw, result.rendered)
            row[SCALAR["final_rendered"]] = float(result.rendered)
            finals[slot] = {
                "is_success": result.is_success,
                "aborted": False,
                "elapsed_steps": ep.elapsed_steps,
                "init_index": ep.init_index,
                "task": ep.spec.name,
                "suite": ep.spec.suite,
                "task_id": ep.spec.task_id,
            }
            next_task, next_index = next_init[slot]
            ep = self._episode(slot, next_task)
            raw = ep.reset(next_index, render=render)
            row[SCALAR["init_index"]] = ep.init_index
            row[SCALAR["rendered"]] = float(render and ep.renders)
            self._write(slot, 0, ep, raw, render and ep.renders)
        else:
            row[SCALAR["rendered"]] = float(result.rendered)
            self._write(slot, 0, ep, result.raw, result.rendered)

    def close(self) -> None:
        for ep in self.episodes.values():
            ep.close()
        self.episodes.clear()
        self.buf.close()


def worker_main(cfg: WorkerConfig, conn: Any) -> None:
    """Entry point of a worker process (see the module docstring for the protocol)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if cfg.render:
        from lerobot_diffrl.envs.libero_setup import configure_gl_backend

        configure_gl_backend()
        if cfg.gpu_device >= 0:
            os.environ["MUJOCO_EGL_DEVICE_ID"] = str(cfg.gpu_device)
    try:
        from lerobot_diffrl.envs.libero_setup import prepare_libero

        prepare_libero()
        worker = _Worker(cfg)
    except Exception as err:  # report set-up errors to the parent rather than dying silently
        conn.send(("error", type(err).__name__, f"{err}\n{traceback.format_exc()}"))
        return
    conn.send(("ready", os.getpid()))
    try:
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                break
            cmd = msg[0]
            try:
                if cmd == "reset":
                    conn.send(("ok", worker.reset(msg[1])))
                elif cmd == "step":
                    conn.send(("ok", worker.step(msg[1], msg[2])))
                elif cmd == "step_chunk":
                    conn.send(("ok", worker.step_chunk(msg[1], msg[2])))
                elif cmd == "fault":
                    worker.fault = msg[1]
                    conn.send(("ok", {}))
                elif cmd == "close":
                    break
                else:
                    conn.send(("error", "ValueError", f"unknown command {cmd!r}"))
            except Exception as err:
                conn.send(("error", type(err).__name__, f"{err}\n{traceback.format_exc()}"))
    finally:
        worker.close()

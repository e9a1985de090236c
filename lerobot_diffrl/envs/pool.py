"""A vectorized pool of LIBERO simulator workers for RL rollouts and data generation.

Why not gymnasium's ``AsyncVectorEnv``: it pickles every observation through a pipe, cannot skip rendering of
frames nobody consumes, has no per-slot task assignment, and a dead or hung child takes the whole vector env
down. Here:

- workers are processes started with forkserver (or spawn); each creates its own GL context and hosts one or
  several *slots*; a slot runs any (suite, task, init state) and a pool may mix suites;
- observations travel through shared memory (:mod:`lerobot_diffrl.envs.shm`), pipes carry small messages;
- episodes follow :class:`lerobot_diffrl.envs.episode.TaskEpisode`: soft reset, settle steps not rendered,
  truncation at the suite's limit (:data:`lerobot_diffrl.envs.suites.SUITE_MAX_STEPS`), reward 1.0 on success;
- auto-reset with gymnasium's SAME_STEP semantics: a slot whose episode ended returns the first observation
  of its next episode; the final observation and info are in ``infos["final_obs"]``/``infos["final_info"]``;
- ``step(actions, render=mask)`` renders only the slots whose observation will be consumed;
- state mode steps through :mod:`lerobot_diffrl.envs.fast_state` (bit-identical simulator states, ~1.7x the
  steps per second; ``fast_state=False`` takes robosuite's own step, e.g. to compare);
- a worker that dies or does not answer within ``step_timeout_s`` is killed and restarted; its slots'
  episodes are reported as aborted (``infos["aborted"]``, ``truncated=True``, ``is_success=False``) and the
  slots continue with fresh episodes. Closing (also at interpreter exit) kills every worker.

Observations (dict of arrays over slots, layouts in :mod:`lerobot_diffrl.envs.observations`): ``agent_pos``
(n, 8) float32 and ``robot_state`` (n, 34) always; ``object_state`` (n, 256) and ``object_state_len`` (n,) in
``state``/``pixels_state`` modes; ``pixels: {image, image2}`` (n, H, W, 3) uint8, unflipped, in
``pixels``/``pixels_state`` modes (stale where ``infos["rendered"]`` is False).
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import re
import signal
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import wait
from typing import Any

import numpy as np

from lerobot_diffrl.envs.episode import CONTROL_MODES, SETTLE_STEPS, init_state_index
from lerobot_diffrl.envs.observations import IMAGE_NAMES, check_obs_mode, lerobot_state, mode_renders
from lerobot_diffrl.envs.shm import SCALAR, BufferSpec, SharedBuffers
from lerobot_diffrl.envs.suites import load_init_states, task_spec
from lerobot_diffrl.envs.worker import SlotTask, WorkerConfig, worker_main
from lerobot_diffrl.errors import ConfigError, DiffRLError, RenderBackendError

log = logging.getLogger(__name__)

#: Public name of a slot's task; the same dataclass the workers receive.
SlotSpec = SlotTask


def default_workers() -> int:
    """Worker processes a pool starts when not told (capped by its number of slots): one per core, in every mode.

    State mode: physics is single-threaded Python, so workers scale with cores. Pixel modes: measured on the 2-core
    machine with LeRobot 0.6.1's stack (Mesa llvmpipe through EGL, 2026-12-01), two workers with one slot each
    render two 128x128 two-camera slots at 12 steps/s against 8.4 for one worker hosting both; the actor's
    process mostly waits while the workers step, so it needs no core of its own.
    """
    return os.cpu_count() or 1


class WorkerFailure(DiffRLError):
    """A worker could not be started or restarted (the pool cannot serve its slots)."""


def visible_gpus() -> list[int]:
    """EGL device ids to spread workers over: none unless ``MUJOCO_GL=egl`` and NVIDIA devices exist."""
    if os.environ.get("MUJOCO_GL", "egl").lower() != "egl":
        return []
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [int(v) for v in visible.split(",") if v.strip().isdigit()]
    return sorted(int(m.group(1)) for d in os.listdir("/dev") if (m := re.fullmatch(r"nvidia(\d+)", d)))


@dataclass
class _WorkerHandle:
    process: Any
    conn: Any
    slots: list[int]
    config: WorkerConfig


class _Resources:
    """What must be released even if the pool object is dropped without close() (weakref finalizer)."""

    def __init__(self) -> None:
        self.workers: list[_WorkerHandle] = []
        self.buffers: SharedBuffers | None = None

    @staticmethod
    def stop(handle: _WorkerHandle, grace_s: float) -> None:
        proc = handle.process
        if proc.is_alive() and grace_s > 0:
            try:
                handle.conn.send(("close",))
            except (OSError, ValueError):
                pass
            proc.join(grace_s)
        if proc.is_alive():
            try:
                os.kill(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.join(5.0)
        try:
            handle.conn.close()
        except OSError:
            pass

    def close(self, grace_s: float = 2.0) -> None:
        for handle in self.workers:
            self.stop(handle, grace_s)
        self.workers = []
        if self.buffers is not None:
            self.buffers.close()
            self.buffers = None


class EnvPool:
    """``n = len(slots)`` LIBERO envs in worker processes (see the module docstring)."""

    def __init__(
        self,
        slots: Sequence[SlotSpec],
        *,
        obs_mode: str = "state",
        image_size: tuple[int, int] = (128, 128),
        seed: int = 0,
        n_workers: int | None = None,
        step_timeout_s: float = 60.0,
        reset_timeout_s: float = 300.0,
        context: str = "forkserver",
        control_mode: str = "relative",
        build_seed: int = 0,
        settle_steps: int = SETTLE_STEPS,
        gpu_ids: Sequence[int] | None = None,
        fast_state: bool = True,
    ):
        self.slots: list[SlotSpec] = [self._check_slot(s) for s in slots]
        if not self.slots:
            raise ConfigError("an EnvPool needs at least one slot (n_envs >= 1)")
        self.obs_mode = check_obs_mode(obs_mode)
        if control_mode not in CONTROL_MODES:
            raise ConfigError(f"control_mode must be one of {CONTROL_MODES}, got {control_mode!r}")
        if context not in ("forkserver", "spawn"):
            raise ConfigError(
                f"context must be 'forkserver' or 'spawn' (fork breaks GL contexts), got {context!r}"
            )
        n = len(self.slots)
        if n_workers is None:
            n_workers = min(n, default_workers())
        if not isinstance(n_workers, int) or not 1 <= n_workers <= n:
            raise ConfigError(f"n_workers must be between 1 and the number of slots ({n}), got {n_workers!r}")
        height, width = (int(v) for v in image_size)
        if height < 1 or width < 1:
            raise ConfigError(f"image_size must be positive, got {tuple(image_size)}")
        self.image_size = (height, width)
        self.renders = mode_renders(self.obs_mode)
        if self.renders:
            from lerobot_diffrl.envs.libero_setup import check_gl_backend, configure_gl_backend

            check_gl_backend(configure_gl_backend())  # a clear RenderBackendError before any worker starts
        self.seed = int(seed)
        self.step_timeout_s = step_timeout_s
        self.reset_timeout_s = reset_timeout_s
        self.n_workers = n_workers
        self._ctx = mp.get_context(context)
        self._render_default = True
        self._assignment = self._assignment_table()
        self._episodes = np.zeros(n, dtype=np.int64)  # episodes started per slot since the last seeded reset
        self._init_plan: Callable[[int, int], int | None] | None = None
        self._last_obs: dict[str, Any] | None = None
        self._restarts = 0
        self._closed = False
        self._res = _Resources()
        self._finalizer = weakref.finalize(self, self._res.close, 0.0)
        gpus = list(gpu_ids) if gpu_ids is not None else (visible_gpus() if self.renders else [])
        self._res.buffers = SharedBuffers(BufferSpec(n, self.image_size if self.renders else None))
        try:
            for w in range(n_workers):
                config = WorkerConfig(
                    worker_id=w,
                    shm_name=self._res.buffers.name,
                    buffers=self._res.buffers.spec,
                    render=self.renders,
                    image_size=self.image_size,
                    control_mode=control_mode,
                    build_seed=build_seed,
                    settle_steps=settle_steps,
                    gpu_device=gpus[w % len(gpus)] if gpus else -1,
                    fast_state=fast_state,
                )
                self._res.workers.append(self._start_worker(config, list(range(w, n, n_workers))))
        except BaseException:
            self.close()
            raise

    # -- set-up -----------------------------------------------------------------------------------------
    @staticmethod
    def _check_slot(slot: Any) -> SlotSpec:
        if isinstance(slot, tuple) and not isinstance(slot, SlotSpec):
            slot = SlotSpec(*slot)
        if not isinstance(slot, SlotSpec):
            raise ConfigError(f"a slot is a SlotSpec(suite, task_id), got {slot!r}")
        spec = task_spec(slot.suite, slot.task_id)  # UnknownTaskError for unknown suites/ids
        if slot.max_steps is not None and slot.max_steps < 1:
            raise ConfigError(f"max_steps must be >= 1, got {slot.max_steps}")
        load_init_states(spec)
        return slot

    def _start_worker(self, config: WorkerConfig, slots: list[int]) -> _WorkerHandle:
        parent_conn, child_conn = self._ctx.Pipe()
        process = self._ctx.Process(
            target=worker_main,
            args=(config, child_conn),
            name=f"libero-worker-{config.worker_id}",
            daemon=True,
        )
        process.start()
        child_conn.close()
        handle = _WorkerHandle(process, parent_conn, slots, config)
        if not parent_conn.poll(self.reset_timeout_s):
            _Resources.stop(handle, 0)
            raise WorkerFailure(
                f"worker {config.worker_id} did not start within {self.reset_timeout_s:.0f} s"
            )
        try:
            reply = parent_conn.recv()
        except EOFError as err:
            _Resources.stop(handle, 0)
            raise WorkerFailure(
                f"worker {config.worker_id} died while starting (exit {process.exitcode})"
            ) from err
        if reply[0] != "ready":
            _Resources.stop(handle, 0)
            raise WorkerFailure(f"worker {config.worker_id} failed to start: {reply[1]}: {reply[2]}")
        return handle

    # -- properties -------------------------------------------------------------------------------------
    @property
    def num_envs(self) -> int:
        return len(self.slots)

    @property
    def restarts(self) -> int:
        """Workers restarted after a crash or a hang since the pool started."""
        return self._restarts

    def worker_pids(self) -> list[int]:
        return [h.process.pid for h in self._res.workers]

    def worker_of_slot(self, slot: int) -> int:
        return next(i for i, h in enumerate(self._res.workers) if slot in h.slots)

    def max_steps(self) -> np.ndarray:
        return np.array([s.max_steps or task_spec(s.suite, s.task_id).max_steps for s in self.slots])

    # -- init-state assignment --------------------------------------------------------------------------
    def _assignment_table(self) -> list[tuple[int, int, int]]:
        """(rank among the slots running the same task, number of such slots, init states) per slot.

        Cached because ``task_spec`` costs ~1.5 ms: per step and slot that was >10% of a state step."""
        counts: dict[tuple[str, int], int] = {}
        table = []
        for slot in self.slots:
            key = (slot.suite, slot.task_id)
            rank = counts.get(key, 0)
            counts[key] = rank + 1
            table.append([rank, 0, len(load_init_states(task_spec(*key)))])
        for row, slot in zip(table, self.slots, strict=True):
            row[1] = counts[(slot.suite, slot.task_id)]
        return [tuple(row) for row in table]

    def _init_index(self, slot: int, episode: int) -> int:
        if self._init_plan is not None:
            planned = self._init_plan(slot, episode)
            if planned is not None:
                return int(planned)
        rank, n_same, n_states = self._assignment[slot]
        return init_state_index(self.seed, rank, n_same, episode, n_states)

    def set_init_plan(self, plan: Callable[[int, int], int | None] | None) -> None:
        """Let ``plan(slot, episode)`` choose the init state of each episode (None: the pool's own rule).

        Why: the pool's rule (a function of its seed, the slot's rank among its task's slots and the slot's
        episode count) suits RL, but generation needs attempt ``j`` of a task to start from the init state its
        shard plan gives it, whichever slot runs it, so that shards are disjoint and a resumed run repeats exactly
        the unfinished attempts. The pool asks the plan at every reset (``reset``, auto-reset inside ``step``,
        and the restart of a crashed worker); an episode the plan leaves open (None) falls back to the rule.
        """
        self._init_plan = plan

    def episode_count(self, slot: int) -> int:
        """The episode number of ``slot``'s current episode, as the init plan sees it (0 after the seeded reset;
        aborted episodes count)."""
        return int(self._episodes[slot])

    def set_task(self, slot: int, task: SlotSpec) -> None:
        """Run ``task`` in ``slot`` from its next episode on (auto-reset or :meth:`reset`)."""
        self.slots[slot] = self._check_slot(task)
        self._assignment = self._assignment_table()

    def set_render(self, render: bool) -> None:
        """Default of ``step(render=None)``: render every observation (recording) or none."""
        self._render_default = bool(render)

    # -- messaging --------------------------------------------------------------------------------------
    def _gather(
        self, handles: list[_WorkerHandle], timeout_s: float
    ) -> tuple[dict[int, Any], dict[int, str]]:
        """Replies of ``handles`` (by worker index) and failures (worker index -> reason)."""
        index = {id(h.conn): i for i, h in enumerate(self._res.workers) if h in handles}
        pending = {h.conn: index[id(h.conn)] for h in handles}
        replies: dict[int, Any] = {}
        failures: dict[int, str] = {}
        deadline = time.monotonic() + timeout_s
        while pending:
            remaining = deadline - time.monotonic()
            ready = wait(list(pending), timeout=max(remaining, 0)) if remaining > 0 else []
            if not ready:
                for w in pending.values():
                    failures[w] = f"no answer within {timeout_s:.0f} s"
                break
            for conn in ready:
                w = pending.pop(conn)
                try:
                    reply = conn.recv()
                except (EOFError, OSError):
                    code = self._res.workers[w].process.exitcode
                    failures[w] = f"worker process died (exit code {code})"
                    continue
                if reply[0] == "ok":
                    replies[w] = reply[1]
                else:
                    failures[w] = f"{reply[1]}: {reply[2]}"
        return replies, failures

    def _send(self, handle: _WorkerHandle, msg: tuple) -> bool:
        try:
            handle.conn.send(msg)
            return True
        except (OSError, ValueError, BrokenPipeError):
            return False

    def _reset_items(self, slots: list[int], render: bool) -> list[tuple[int, SlotSpec, int, bool]]:
        return [(s, self.slots[s], self._init_index(s, int(self._episodes[s])), render) for s in slots]

    def _restart(self, w: int, reason: str) -> dict[int, Any]:
        """Kill worker ``w``, start a fresh one for its slots and reset them to their next init states."""
        self._check_open()
        old = self._res.workers[w]
        log.warning("restarting LIBERO worker %d (pid %s): %s", w, old.process.pid, reason)
        _Resources.stop(old, 0)
        self._restarts += 1
        handle = self._start_worker(old.config, old.slots)
        self._res.workers[w] = handle
        for s in old.slots:
            self._episodes[s] += 1  # the aborted episode used its init state
        self._send(handle, ("reset", self._reset_items(old.slots, self.renders)))
        replies, failures = self._gather([handle], self.reset_timeout_s)
        if failures:
            raise WorkerFailure(f"restarted worker {w} failed to reset its slots: {failures[w]}")
        return replies[w]

    # -- gym-like API -----------------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise ConfigError("this EnvPool is closed")

    def reset(self, seed: int | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        """Start a new episode in every slot. A ``seed`` restarts the init-state sequence from that seed."""
        self._check_open()
        if seed is not None:
            self.seed = int(seed)
            self._episodes[:] = 0
        elif self._last_obs is not None:
            self._episodes += 1
        render = self.renders
        handles = self._res.workers
        for h in handles:
            self._send(h, ("reset", self._reset_items(h.slots, render)))
        replies, failures = self._gather(handles, self.reset_timeout_s)
        for w, reason in failures.items():
            if reason.startswith(("RenderBackendError", "OSError")) or "OpenGL" in reason or "EGL" in reason:
                raise RenderBackendError(
                    f"LIBERO worker could not render (MUJOCO_GL={os.environ.get('MUJOCO_GL')}): "
                    f"{reason.splitlines()[0]}; try MUJOCO_GL=egl or MUJOCO_GL=osmesa"
                )
            self._restart(w, reason)
        buf = self._res.buffers
        obs = self._collect(0)
        infos = {
            "init_index": buf.scalars[:, SCALAR["init_index"]].astype(np.int64),
            "rendered": buf.scalars[:, SCALAR["rendered"]] > 0,
            "is_success": np.zeros(self.num_envs, dtype=bool),
        }
        self._last_obs = obs
        return obs, infos

    def _render_mask(self, render: bool | Sequence[bool] | np.ndarray | None) -> np.ndarray:
        if render is None:
            render = self._render_default
        mask = np.broadcast_to(np.asarray(render, dtype=bool), (self.num_envs,)).copy()
        return mask & self.renders

    def step(
        self, actions: np.ndarray, render: bool | Sequence[bool] | np.ndarray | None = None
    ) -> tuple[dict[str, Any], np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every slot with ``actions`` (n, 7) in [-1, 1]; ``render`` (bool or per-slot mask) says whose
        images must be fresh. Returns ``obs, reward, terminated, truncated, infos`` (see module docstring)."""
        self._check_open()
        if self._last_obs is None:
            raise ConfigError("call reset() before step()")
        actions = np.asarray(actions, dtype=np.float64)
        if actions.shape != (self.num_envs, 7):
            raise ConfigError(f"actions must have shape ({self.num_envs}, 7), got {actions.shape}")
        mask = self._render_mask(render)
        self._res.buffers.actions[:] = actions
        return self._advance(lambda h: ("step", {s: bool(mask[s]) for s in h.slots}), self.step_timeout_s)

    def step_chunk(
        self, actions: np.ndarray, render: bool | Sequence[bool] | np.ndarray | None = None
    ) -> tuple[dict[str, Any], np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Execute an action chunk (n, k, 7) per slot in one round trip, as DPPO's multi-step wrapper does.

        A slot stops at the end of its episode (the rest of its chunk is dropped, never applied to the next
        episode) and auto-resets. ``reward`` is the chunk's summed reward, ``infos["executed_steps"]`` how
        many actions ran; only the returned observation is rendered (see the worker's ``step_chunk``).
        Why: one message per chunk instead of per step, and no rendering of the frames a chunked policy
        never looks at.
        """
        self._check_open()
        if self._last_obs is None:
            raise ConfigError("call reset() before step_chunk()")
        actions = np.asarray(actions, dtype=np.float64)
        if actions.ndim != 3 or actions.shape[0] != self.num_envs or actions.shape[2] != 7:
            raise ConfigError(f"actions must have shape ({self.num_envs}, k, 7), got {actions.shape}")
        mask = self._render_mask(render)
        timeout = self.step_timeout_s * max(1, actions.shape[1])
        return self._advance(
            lambda h: ("step_chunk", {s: (actions[s], bool(mask[s])) for s in h.slots}), timeout
        )

    def _advance(
        self, message: Any, timeout_s: float
    ) -> tuple[dict[str, Any], np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Send every worker ``message(handle) + (next_init,)``, then gather outcomes, restarting failures."""
        buf = self._res.buffers
        handles = self._res.workers
        for h in handles:
            next_init = {s: (self.slots[s], self._init_index(s, int(self._episodes[s]) + 1)) for s in h.slots}
            self._send(h, (*message(h), next_init))
        replies, failures = self._gather(handles, timeout_s)

        n = self.num_envs
        aborted = np.zeros(n, dtype=bool)
        final_info: list[dict | None] = [None] * n
        for finals in replies.values():
            for s, info in finals.items():
                final_info[s] = info
        scalars = buf.scalars
        reward = scalars[:, SCALAR["reward"]].copy()
        terminated = scalars[:, SCALAR["terminated"]] > 0
        truncated = scalars[:, SCALAR["truncated"]] > 0
        is_success = scalars[:, SCALAR["is_success"]] > 0
        elapsed = scalars[:, SCALAR["elapsed_steps"]].astype(np.int64)
        executed = scalars[:, SCALAR["executed_steps"]].astype(np.int64)
        final_obs = self._collect(1)
        for w, reason in failures.items():
            slots = self._res.workers[w].slots
            self._restart(w, reason)
            for s in slots:
                aborted[s] = True
                reward[s], terminated[s], truncated[s], is_success[s], executed[s] = (
                    0.0,
                    False,
                    True,
                    False,
                    0,
                )
                task = self.slots[s]
                final_info[s] = {
                    "is_success": False,
                    "aborted": True,
                    "reason": reason.splitlines()[0],
                    "suite": task.suite,
                    "task_id": task.task_id,
                    "elapsed_steps": int(elapsed[s]),
                }
                _copy_slot(final_obs, self._last_obs, s)
        done = terminated | truncated
        for s in np.flatnonzero(done & ~aborted):
            self._episodes[s] += 1
        obs = self._collect(0)
        infos = {
            "is_success": is_success,
            "TimeLimit.truncated": truncated & ~terminated,
            "aborted": aborted,
            "elapsed_steps": elapsed,
            "executed_steps": executed,
            "init_index": scalars[:, SCALAR["init_index"]].astype(np.int64),
            "rendered": scalars[:, SCALAR["rendered"]] > 0,
            "_final": done,
            "final_obs": final_obs,
            "final_info": final_info,
        }
        self._last_obs = obs
        return obs, reward, terminated, truncated, infos

    def _collect(self, plane: int) -> dict[str, Any]:
        """A copy of one plane of the shared buffers as an observation batch."""
        buf = self._res.buffers
        robot = buf.robot[plane].copy()
        obs: dict[str, Any] = {"agent_pos": lerobot_state(robot), "robot_state": robot}
        if self.obs_mode in ("state", "pixels_state"):
            obs["object_state"] = buf.objects[plane].copy()
            obs["object_state_len"] = buf.object_len.copy()
        if self.renders:
            obs["pixels"] = {name: buf.images[plane, :, cam].copy() for cam, name in enumerate(IMAGE_NAMES)}
        return obs

    # -- fault injection (tests) ------------------------------------------------------------------------
    def inject_fault(self, worker: int, kind: str) -> None:
        """Make worker ``worker`` hang (``"hang"``) or crash (``"crash"``) at its next step. For tests."""
        if kind not in ("hang", "crash"):
            raise ConfigError(f"fault kind must be 'hang' or 'crash', got {kind!r}")
        handle = self._res.workers[worker]
        self._send(handle, ("fault", kind))
        _, failures = self._gather([handle], self.step_timeout_s)
        if failures:
            raise WorkerFailure(f"worker {worker} did not accept the fault: {failures[worker]}")

    # -- shutdown ---------------------------------------------------------------------------------------
    def close(self) -> None:
        """Stop every worker (SIGKILL after a short grace period) and free the shared memory. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._res.close()
        self._finalizer.detach()

    def __enter__(self) -> EnvPool:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _copy_slot(dst: dict[str, Any], src: dict[str, Any], slot: int) -> None:
    for key, value in src.items():
        if isinstance(value, dict):
            _copy_slot(dst[key], value, slot)
        else:
            dst[key][slot] = value[slot]

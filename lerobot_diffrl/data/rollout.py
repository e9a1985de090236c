"""The generation loop of one shard: env pool + actor + scheduler + episode writer.

Every step: each slot's next episode is (re)planned from the scheduler as late as possible (the pool reads it
only if the slot's episode ends during the step), the actor acts for all slots, the frames of slots running an
attempt are recorded (camera images upright, as lerobot's LIBERO datasets have them; with ``env_state_dim``
also the object state as ``lerobot_batch`` would feed it to a policy), and the pool steps. A slot
whose episode ended hands its frames to the writer (kept) or records the attempt as done (not kept), and starts
its planned attempt, which the pool has already reset it into (same-step auto-reset). Slots with nothing to do
run idle episodes that are neither rendered nor recorded.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from lerobot_diffrl.data.actors import Actor
from lerobot_diffrl.data.features import DONE, REWARD, SUCCESS, env_state_rows
from lerobot_diffrl.data.scheduler import DISCARD, KEEP, AttemptScheduler
from lerobot_diffrl.data.sharding import Attempt
from lerobot_diffrl.data.staging import AttemptRecord
from lerobot_diffrl.data.writer import EpisodeFrames, EpisodeWriter
from lerobot_diffrl.envs.lerobot_batch import IMAGE_KEYS, OBS_IMAGE_PREFIX
from lerobot_diffrl.envs.pool import EnvPool, SlotSpec
from lerobot_diffrl.envs.suites import task_spec


@dataclass
class EpisodeBuffer:
    """Frames of one running attempt, preallocated for the slot's step limit (``env_state``: only when the
    dataset records ``observation.environment_state``)."""

    attempt: Attempt
    task: str
    images: dict[str, np.ndarray]
    state: np.ndarray
    action: np.ndarray
    outcome: dict[str, np.ndarray] = field(default_factory=dict)
    length: int = 0
    env_state: np.ndarray | None = None

    @classmethod
    def allocate(
        cls,
        attempt: Attempt,
        task: str,
        max_steps: int,
        image_size: tuple[int, int],
        env_state_dim: int | None = None,
    ) -> EpisodeBuffer:
        h, w = image_size
        return cls(
            attempt=attempt,
            task=task,
            images={k: np.empty((max_steps, h, w, 3), dtype=np.uint8) for k in IMAGE_KEYS},
            state=np.empty((max_steps, 8), dtype=np.float32),
            env_state=None
            if env_state_dim is None
            else np.empty((max_steps, env_state_dim), dtype=np.float32),
            action=np.empty((max_steps, 7), dtype=np.float32),
            outcome={
                REWARD: np.zeros(max_steps, dtype=np.float32),
                DONE: np.zeros(max_steps, dtype=bool),
                SUCCESS: np.zeros(max_steps, dtype=bool),
            },
        )

    def frames(self) -> EpisodeFrames:
        n = self.length
        return EpisodeFrames(
            images={k: v[:n] for k, v in self.images.items()},
            state=self.state[:n],
            action=self.action[:n],
            reward=self.outcome[REWARD][:n],
            done=self.outcome[DONE][:n],
            success=self.outcome[SUCCESS][:n],
            task=self.task,
            env_state=None if self.env_state is None else self.env_state[:n],
        )


@dataclass
class RolloutStats:
    steps: int = 0
    recorded_frames: int = 0
    episodes_finished: int = 0
    idle_slot_steps: int = 0


class ShardRollout:
    """Runs the scheduler's attempts in a :class:`EnvPool` with an init plan until the shard is done."""

    def __init__(
        self,
        scheduler: AttemptScheduler,
        writer: EpisodeWriter,
        actor: Actor,
        pool: EnvPool,
        first: list[Attempt | None],
        *,
        image_size: tuple[int, int],
        max_steps: int | None,
        progress: bool = True,
        env_state_dim: int | None = None,
    ):
        self.scheduler = scheduler
        self.writer = writer
        self.actor = actor
        self.pool = pool
        self.n = pool.num_envs
        self.image_size = image_size
        self.max_steps = max_steps
        self.env_state_dim = env_state_dim
        self.current: list[Attempt | None] = list(first)
        self.plan: dict[tuple[int, int], int] = {}
        for s, attempt in enumerate(first):
            if attempt is not None:
                # the seeded reset starts episode 0; a worker crash during it restarts the slot as episode 1
                self.plan[(s, 0)] = self.plan[(s, 1)] = attempt.init_index
        self.buffers: list[EpisodeBuffer | None] = [None] * self.n
        self.elapsed = np.zeros(self.n, dtype=np.int64)
        # idle slots whose episode ended early (unrendered) while an attempt waited: render every step
        self.force_render = np.zeros(self.n, dtype=bool)
        self.slot_specs: list[SlotSpec] = list(pool.slots)
        self.stats = RolloutStats()
        pool.set_init_plan(self.planned)
        self._languages: dict[tuple[str, int], str] = {}
        total = sum(s.target for s in scheduler.tasks.values())
        kept = sum(s.kept for s in scheduler.tasks.values())
        self.bar = tqdm(total=total, initial=kept, desc="episodes kept", unit="ep", disable=not progress)

    # -- helpers ----------------------------------------------------------------------------------------
    def spec(self, attempt: Attempt) -> SlotSpec:
        return SlotSpec(attempt.suite, attempt.task_id, self.max_steps)

    def language(self, ref: tuple[str, int]) -> str:
        if ref not in self._languages:
            self._languages[ref] = task_spec(*ref).language
        return self._languages[ref]

    def episode_limit(self, s: int) -> int:
        spec = self.slot_specs[s]
        return spec.max_steps or task_spec(spec.suite, spec.task_id).max_steps

    def planned(self, slot: int, episode: int) -> int | None:
        """The pool's init plan (:meth:`EnvPool.set_init_plan`): init index of ``episode`` of ``slot``."""
        return self.plan.get((slot, episode))

    # -- episode starts ---------------------------------------------------------------------------------
    def _start(self, slots: np.ndarray, obs: dict, infos: dict) -> None:
        """Slots ``slots`` just started an episode (``self.current`` says which attempt, None for idle)."""
        for s in slots:
            attempt = self.current[s]
            self.elapsed[s] = 0
            self.buffers[s] = None
            if attempt is None:
                continue
            if not infos["rendered"][s]:
                # Its first frame was not rendered (an idle episode ended early): run it again later.
                self.scheduler.release(attempt)
                self.current[s] = None
                self.force_render[s] = True
                continue
            self.force_render[s] = False
            if int(infos["init_index"][s]) != attempt.init_index:
                raise RuntimeError(
                    f"internal error: slot {s} started init state {int(infos['init_index'][s])}, planned "
                    f"{attempt.init_index} (EnvPool no longer asks _init_index when resetting?)"
                )
            self.slot_specs[s] = self.spec(attempt)
            self.buffers[s] = EpisodeBuffer.allocate(
                attempt,
                self.language(attempt.task_ref),
                self.episode_limit(s),
                self.image_size,
                self.env_state_dim,
            )
        seeds = np.array([a.seed if a is not None else 0 for a in self.current], dtype=np.int64)
        self.actor.reset(slots, obs, {**infos, "episode_seed": seeds}, slots=list(self.slot_specs))

    # -- planning ---------------------------------------------------------------------------------------
    def _plan_next(self) -> list[Attempt | None]:
        """Reserve every slot's next attempt for the coming step (released again if its episode goes on)."""
        tentative: list[Attempt | None] = []
        for s in range(self.n):
            running = self.current[s]
            prefer = running.task_ref if running else (self.slot_specs[s].suite, self.slot_specs[s].task_id)
            attempt = self.scheduler.next_attempt(prefer=prefer, assume_failed=running)
            tentative.append(attempt)
            key = (s, self.pool.episode_count(s) + 1)
            if attempt is None:
                self.plan.pop(key, None)
                continue
            self.plan[key] = attempt.init_index
            spec = self.spec(attempt)
            if self.pool.slots[s] != spec:
                self.pool.set_task(s, spec)
        return tentative

    def _render_mask(self, tentative: list[Attempt | None]) -> np.ndarray:
        """Render running attempts, and the reset frame of a planned attempt that may start this step."""
        mask = np.array([a is not None for a in self.current])
        for s in np.flatnonzero(~mask):
            last_step = self.elapsed[s] + 1 >= self.episode_limit(s)
            mask[s] = tentative[s] is not None and (last_step or self.force_render[s])
        return mask

    # -- recording --------------------------------------------------------------------------------------
    def _record_obs(self, obs: dict, actions: np.ndarray, rendered: np.ndarray) -> None:
        env_state = None
        if self.env_state_dim is not None:
            if "object_state" not in obs:
                raise RuntimeError(
                    "internal error: recording object states needs the pool in 'pixels_state' mode"
                )
            env_state = env_state_rows(obs["object_state"], self.env_state_dim)
        for s, buf in enumerate(self.buffers):
            if buf is None:
                continue
            if not rendered[s]:
                raise RuntimeError(f"internal error: slot {s} records a frame that was not rendered")
            t = buf.length
            for key in IMAGE_KEYS:
                buf.images[key][t] = obs["pixels"][key[len(OBS_IMAGE_PREFIX) :]][s, ::-1, ::-1]
            buf.state[t] = obs["agent_pos"][s]
            if buf.env_state is not None:
                buf.env_state[t] = env_state[s]
            buf.action[t] = actions[s]

    def _record_outcome(self, reward: np.ndarray, done: np.ndarray, infos: dict) -> None:
        for s, buf in enumerate(self.buffers):
            if buf is None:
                continue
            t = buf.length
            buf.outcome[REWARD][t] = reward[s]
            buf.outcome[DONE][t] = done[s]
            buf.outcome[SUCCESS][t] = infos["is_success"][s]
            buf.length += 1
            self.stats.recorded_frames += 1

    def _finish(self, s: int, infos: dict) -> None:
        attempt, buf = self.current[s], self.buffers[s]
        self.buffers[s] = None
        if attempt is None or buf is None:
            return
        final = infos["final_info"][s] or {}
        success, aborted = bool(final.get("is_success")), bool(final.get("aborted"))
        outcome = self.scheduler.finish(attempt, success=success, aborted=aborted)
        self.stats.episodes_finished += 1
        record = AttemptRecord.of(
            attempt, success=success, kept=outcome == KEEP, length=buf.length, task=buf.task, aborted=aborted
        )
        if outcome == KEEP:
            self.writer.add(record, buf.frames())
            self.bar.update(1)
        elif outcome == DISCARD:
            self.writer.discard(record)
        finished = [t for t in self.scheduler.tasks.values()]
        attempts = sum(t.finished for t in finished)
        self.bar.set_postfix(
            attempts=attempts, success=f"{sum(t.successes for t in finished) / max(attempts, 1):.0%}"
        )

    def _drop_useless(self) -> None:
        """Stop recording attempts whose task already has its episodes (planned speculatively, see
        ``AttemptScheduler.next_attempt``): the slot idles instead of finishing an episode nobody keeps."""
        for s, attempt in enumerate(self.current):
            if attempt is not None and self.scheduler.useless(attempt):
                self.scheduler.release(attempt)
                self.current[s] = None
                self.buffers[s] = None

    # -- main loop --------------------------------------------------------------------------------------
    def run(self, obs: dict, infos: dict) -> RolloutStats:
        """Run until the scheduler is done. ``obs, infos`` come from the seeded ``pool.reset``."""
        self._start(np.arange(self.n), obs, infos)
        rendered = np.asarray(infos["rendered"], dtype=bool)
        try:
            while not self.scheduler.done():
                tentative = self._plan_next()
                actions = np.asarray(self.actor.act(obs), dtype=np.float32)
                self._record_obs(obs, actions, rendered)
                mask = self._render_mask(tentative)
                obs, reward, terminated, truncated, infos = self.pool.step(actions, render=mask)
                done = np.asarray(infos["_final"], dtype=bool)
                self._record_outcome(reward, terminated | truncated, infos)
                self.stats.steps += 1
                self.stats.idle_slot_steps += int(sum(a is None for a in self.current))
                self.elapsed += 1
                for s in range(self.n):
                    if tentative[s] is not None and not done[s]:
                        self.scheduler.release(tentative[s])
                ended = np.flatnonzero(done)
                for s in ended:
                    self._finish(s, infos)
                    self.current[s] = tentative[s]
                    self.slot_specs[s] = self.pool.slots[s]
                    self.plan = {
                        k: v for k, v in self.plan.items() if k[0] != s or k[1] > self.pool.episode_count(s)
                    }
                if len(ended):
                    self._start(ended, obs, infos)
                self._drop_useless()
                rendered = np.asarray(infos["rendered"], dtype=bool)
        finally:
            for s, attempt in enumerate(self.current):
                if attempt is not None and self.buffers[s] is not None:
                    self.scheduler.release(attempt)  # unfinished: runs again on resume
            self.bar.close()
        return self.stats

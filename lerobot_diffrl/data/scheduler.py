"""Which attempt each env slot runs next, until every task of the shard has its episodes.

Pure bookkeeping (no simulator), so it is unit-testable and cheap to call every step:

- ``keep="success"``: a task needs ``target`` successful episodes; attempts are drawn in order while
  kept + running < target and the attempt cap is not reached. A failed attempt frees its place.
- ``keep="all"``: a task runs exactly ``target`` attempts; every finished one is kept.
- An aborted attempt (its simulator worker died) is not the policy's fault: it is retried with the same init
  state and seed, up to ``max_retries`` times, then counted as a failure.
- Attempts finished in an earlier run (resume) are skipped; attempts that were running when that run was killed
  were never recorded, so they run again with the same (init state, seed).
- A slot keeps its task while that task needs attempts (changing task rebuilds the simulator: ~1-2 s).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field

from lerobot_diffrl.data.sharding import Attempt, ShardSpec, make_attempt
from lerobot_diffrl.data.staging import AttemptRecord
from lerobot_diffrl.errors import ConfigError

KEEP_MODES = ("success", "all")
KEEP, DISCARD, RETRY = "keep", "discard", "retry"
TaskRef = tuple[str, int]


@dataclass
class TaskState:
    """Progress of one task in this shard."""

    ref: TaskRef
    n_init_states: int
    target: int
    cap: int
    kept: int = 0
    successes: int = 0
    finished: int = 0  # attempts finished (kept or not), counting those of earlier runs
    running: set[int] = field(default_factory=set)
    done_numbers: set[int] = field(default_factory=set)
    retry: list[int] = field(default_factory=list)  # heap of attempt numbers to run again
    retries: dict[int, int] = field(default_factory=dict)
    next_local: int = 0  # next local attempt index of this shard not yet handed out

    @property
    def issued(self) -> int:
        return self.finished + len(self.running)


class AttemptScheduler:
    def __init__(
        self,
        tasks: Iterable[tuple[TaskRef, int]],
        *,
        target: int,
        max_attempts: int,
        keep: str,
        seed: int,
        shard: ShardSpec,
        finished: Iterable[AttemptRecord] = (),
        max_retries: int = 2,
    ):
        """``tasks``: ((suite, task_id), number of init states) pairs; ``target``/``max_attempts`` are per task
        for the whole run and are split over the shards."""
        if keep not in KEEP_MODES:
            raise ConfigError(f"keep must be one of {KEEP_MODES}; got {keep!r}")
        if target < 1:
            raise ConfigError(f"the episode target per task must be >= 1; got {target}")
        if max_attempts < target:
            raise ConfigError(
                f"max_attempts per task ({max_attempts}) is below the episode target ({target})"
            )
        self.keep = keep
        self.seed = seed
        self.shard = shard
        self.max_retries = max_retries
        self.tasks: dict[TaskRef, TaskState] = {}
        for position, (ref, n_init) in enumerate(tasks):
            share = shard.share(target, rotate=position)
            cap = share if keep == "all" else shard.share(max_attempts, rotate=position)
            self.tasks[ref] = TaskState(ref, n_init, share, cap)
        for record in finished:
            state = self.tasks.get((record.suite, record.task_id))
            if state is None or record.number in state.done_numbers:
                continue
            state.done_numbers.add(record.number)
            state.finished += 1
            state.kept += int(record.kept)
            state.successes += int(record.success)

    # -- queries ----------------------------------------------------------------------------------------
    def needed(self, ref: TaskRef, assume_failed: Attempt | None = None) -> int:
        """How many more attempts the task could start now (``assume_failed``: see :meth:`next_attempt`)."""
        s = self.tasks[ref]
        room = s.cap - s.issued
        if self.keep == "all":
            return max(0, room)
        running = len(s.running) - int(assume_failed is not None and assume_failed.task_ref == ref)
        return max(0, min(room, s.target - s.kept - running))

    def done(self) -> bool:
        return all(not s.running and self.needed(ref) == 0 for ref, s in self.tasks.items())

    def short(self) -> dict[TaskRef, tuple[int, int]]:
        """Tasks that ended below target: (kept, target)."""
        return {ref: (s.kept, s.target) for ref, s in self.tasks.items() if s.kept < s.target}

    # -- transitions ------------------------------------------------------------------------------------
    def _number(self, s: TaskState) -> int:
        if s.retry:
            return heapq.heappop(s.retry)
        while True:
            number = self.shard.attempt_number(s.next_local)
            s.next_local += 1
            if number not in s.done_numbers and number not in s.running:
                return number

    def next_attempt(
        self, prefer: TaskRef | None = None, assume_failed: Attempt | None = None
    ) -> Attempt | None:
        """Reserve the next attempt, from ``prefer`` when it needs one, else from the neediest task.

        ``assume_failed``: a running attempt to count as failed while deciding (success mode: it then frees its
        place toward the target); a slot plans its next attempt before its current one ends and must not go
        idle just because its own attempt might succeed. If it does succeed, the extra attempt may end up above
        the target and is then recorded but not kept.
        """
        candidates = [ref for ref in self.tasks if self.needed(ref, assume_failed) > 0]
        if not candidates:
            return None
        ref = prefer if prefer in candidates else max(candidates, key=lambda r: self.needed(r, assume_failed))
        s = self.tasks[ref]
        number = self._number(s)
        s.running.add(number)
        return make_attempt(self.seed, ref[0], ref[1], number, s.n_init_states)

    def useless(self, attempt: Attempt) -> bool:
        """A running attempt that can no longer be kept (success mode: its task reached the target)."""
        s = self.tasks[attempt.task_ref]
        return self.keep == "success" and s.kept >= s.target

    def release(self, attempt: Attempt) -> None:
        """Give back a reserved attempt that never started."""
        s = self.tasks[attempt.task_ref]
        s.running.discard(attempt.number)
        heapq.heappush(s.retry, attempt.number)

    def finish(self, attempt: Attempt, *, success: bool, aborted: bool = False) -> str:
        """Record a finished attempt: ``"keep"`` (write its episode), ``"discard"`` (record it as done, not
        kept) or ``"retry"`` (aborted; it will be handed out again, record nothing)."""
        s = self.tasks[attempt.task_ref]
        s.running.discard(attempt.number)
        if aborted and s.retries.get(attempt.number, 0) < self.max_retries:
            s.retries[attempt.number] = s.retries.get(attempt.number, 0) + 1
            heapq.heappush(s.retry, attempt.number)
            return RETRY
        s.done_numbers.add(attempt.number)
        s.finished += 1
        s.successes += int(success)
        keep = (self.keep == "all" and not aborted) or (self.keep == "success" and success)
        keep = keep and s.kept < s.target
        s.kept += int(keep)
        return KEEP if keep else DISCARD

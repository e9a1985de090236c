"""An :class:`EnvPool` whose slots start the episodes a generation plan chooses (task *and* init state).

The pool assigns init states itself (a function of its seed, the slot's rank among the slots of its task and
the slot's episode count), which is right for RL but not for generation: there, attempt ``j`` of a task must
start from the init state the shard plan gives it (:mod:`lerobot_diffrl.data.sharding`), whichever slot runs
it, so that shards are disjoint and a resumed run repeats exactly the unfinished attempts. The pool asks
``_init_index(slot, episode)`` whenever it resets a slot (``reset``, auto-reset inside ``step``, and the restart
of a crashed worker); this subclass answers from ``plan`` and falls back to the pool's own rule for episodes the
plan leaves open (idle slots). The task of the next episode is set with the pool's public ``set_task``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from lerobot_diffrl.envs.pool import EnvPool, SlotSpec


class PlannedPool(EnvPool):
    """An EnvPool asking ``plan(slot, episode)`` (see :meth:`set_plan`) for the init index of each episode."""

    def __init__(self, slots: Sequence[SlotSpec], **kwargs: Any):
        self._plan: Callable[[int, int], int | None] = lambda slot, episode: None
        super().__init__(slots, **kwargs)

    def set_plan(self, plan: Callable[[int, int], int | None]) -> None:
        """``plan(slot, episode)`` -> init index of that episode of that slot, or None to let the pool choose."""
        self._plan = plan

    def episode_count(self, slot: int) -> int:
        """The pool's episode number of ``slot``'s current episode (0 after the seeded reset; aborted episodes
        count), which is what it passes to ``_init_index``."""
        return int(self._episodes[slot])

    def _init_index(self, slot: int, episode: int) -> int:
        planned = self._plan(slot, episode)
        return super()._init_index(slot, episode) if planned is None else int(planned)

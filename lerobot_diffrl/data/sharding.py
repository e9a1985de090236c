"""Which episodes a generation shard owns: disjoint, deterministic sets of (task, init state, seed).

The unit of work is an *attempt*: the ``j``-th attempt of a task. Attempt ``j`` of task ``t`` starts from init
state ``(seed + j) mod n_init(t)`` and gives the actor the episode seed ``hash(seed, suite, task, j)``, whatever
process runs it. Shard ``k`` of ``n`` owns the attempts ``j = k, k + n, k + 2n, ...`` of every task, so shards
never share a (task, init state, seed) triple, each shard cycles through its share of the init states, and a
resumed run re-creates exactly the attempts it had not finished. A task's episode target and attempt cap are
split over the shards (the ``N mod n`` extra episodes of task ``i`` go to the shards after ``i``, so few
episodes per task still spread over every shard).

Why attempts rather than fixed episode lists: when only successes are kept the number of attempts per task is not
known in advance; attempts are drawn in order until the target is reached or the cap is hit.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

from lerobot_diffrl.errors import ConfigError


@dataclass(frozen=True)
class ShardSpec:
    """Shard ``index`` of ``count``."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ConfigError(
                f"shard index must be in 0..num_shards-1 and num_shards >= 1; got {self.index} of {self.count}"
            )

    @property
    def name(self) -> str:
        return f"shard-{self.index:03d}-of-{self.count:03d}"

    def share(self, total: int, rotate: int = 0) -> int:
        """This shard's part of ``total`` (an episode target or an attempt cap). The ``total mod count`` extra
        units go to ``count`` consecutive shards starting at ``rotate``, so that over tasks (``rotate`` = task
        position) every shard gets a fair part even when ``total < count``."""
        return total // self.count + (1 if (self.index - rotate) % self.count < total % self.count else 0)

    def attempt_number(self, local: int) -> int:
        """Global attempt number of this shard's ``local``-th attempt of a task."""
        return self.index + local * self.count


def resolve_shard(shard_index: int | None, num_shards: int | None) -> tuple[ShardSpec, bool]:
    """The shard this process runs, and whether it came from a multi-process launcher.

    Explicit ``--shard_index/--num_shards`` (job arrays) win. Otherwise, under ``accelerate launch`` (its
    multi-GPU launcher is ``torch.distributed.run``) or ``torchrun``, ``RANK``/``WORLD_SIZE`` give the shard.
    They are read from the environment rather than from accelerate's ``PartialState``: shards share nothing but
    the file system (no process group is needed), and accelerate 1.15's ``PartialState`` reports a single
    process under a CPU-only ``torchrun`` (``accelerate launch --cpu`` starts one process without MPI).
    """
    if (shard_index is None) != (num_shards is None):
        raise ConfigError("give both --shard_index and --num_shards, or neither")
    if shard_index is not None and num_shards is not None:
        return ShardSpec(shard_index, num_shards), False
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        return ShardSpec(int(os.environ.get("RANK", "0")), world), True
    return ShardSpec(0, 1), False


def launched_device() -> str:
    """This process's device under a multi-process launcher: its local GPU, else the CPU."""
    import torch

    if torch.cuda.is_available():
        return f"cuda:{int(os.environ.get('LOCAL_RANK', '0')) % torch.cuda.device_count()}"
    return "cpu"


@dataclass(frozen=True, order=True)
class Attempt:
    """The ``number``-th attempt (global numbering) of one task, with its init state and episode seed."""

    suite: str
    task_id: int
    number: int
    init_index: int
    seed: int

    @property
    def key(self) -> str:
        return attempt_key(self.suite, self.task_id, self.number)

    @property
    def task_ref(self) -> tuple[str, int]:
        return (self.suite, self.task_id)


def attempt_key(suite: str, task_id: int, number: int) -> str:
    return f"{suite}__{task_id:03d}__{number:06d}"


def episode_seed(seed: int, suite: str, task_id: int, number: int) -> int:
    """A 63-bit seed for one attempt, independent of the process, shard and slot that runs it."""
    digest = hashlib.sha256(f"{seed}/{suite}/{task_id}/{number}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def make_attempt(seed: int, suite: str, task_id: int, number: int, n_init_states: int) -> Attempt:
    if n_init_states < 1:
        raise ConfigError(f"{suite}/{task_id} has no init states")
    return Attempt(
        suite=suite,
        task_id=task_id,
        number=number,
        init_index=(seed + number) % n_init_states,
        seed=episode_seed(seed, suite, task_id, number),
    )

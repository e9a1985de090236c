"""Shared-memory buffers between the pool and its workers.

Why: a 128x128 pixel step of 2 envs is ~200 kB of images; pickling that through a pipe every step costs copies
and allocations in both processes. Workers write observations straight into NumPy views of one shared block; the
pipes carry only small control messages. The parent creates and unlinks the block; workers only attach.

Layout, per slot (``plane`` 0 is the current observation, plane 1 the final observation of an episode that
ended at this step, for SAME_STEP auto-reset):
``actions (n, 7)``, ``robot (2, n, 34)``, ``objects (2, n, 256)``, ``object_len (n,)``,
``scalars (n, 9)`` (see :data:`SCALARS`), and when rendering ``images (2, n, 2, H, W, 3)`` uint8.
"""

from __future__ import annotations

from dataclasses import dataclass
from multiprocessing import resource_tracker, shared_memory

import numpy as np

from lerobot_diffrl.envs.observations import OBJECT_STATE_DIM, ROBOT_STATE_DIM

#: Columns of the per-slot ``scalars`` array.
SCALARS = (
    "reward",
    "terminated",
    "truncated",
    "is_success",
    "elapsed_steps",
    "init_index",
    "rendered",
    "final_rendered",
    "executed_steps",
)
SCALAR = {name: i for i, name in enumerate(SCALARS)}


@dataclass(frozen=True)
class BufferSpec:
    """Shapes of the shared block; picklable, sent to workers so they build the same views."""

    n_slots: int
    image_size: tuple[int, int] | None  # None: no images (state mode)

    def fields(self) -> list[tuple[str, tuple[int, ...], np.dtype]]:
        n = self.n_slots
        out = [
            ("actions", (n, 7), np.dtype(np.float64)),
            ("robot", (2, n, ROBOT_STATE_DIM), np.dtype(np.float64)),
            ("objects", (2, n, OBJECT_STATE_DIM), np.dtype(np.float64)),
            ("object_len", (n,), np.dtype(np.int64)),
            ("scalars", (n, len(SCALARS)), np.dtype(np.float64)),
        ]
        if self.image_size is not None:
            h, w = self.image_size
            out.append(("images", (2, n, 2, h, w, 3), np.dtype(np.uint8)))
        return out

    def nbytes(self) -> int:
        return sum(_aligned(int(np.prod(shape)) * dtype.itemsize) for _, shape, dtype in self.fields())


def _aligned(nbytes: int, align: int = 64) -> int:
    return (nbytes + align - 1) // align * align


class SharedBuffers:
    """NumPy views (``.actions``, ``.robot``, ...) over one shared-memory block."""

    def __init__(self, spec: BufferSpec, name: str | None = None):
        self.spec = spec
        self._owner = name is None
        if self._owner:
            self.shm = shared_memory.SharedMemory(create=True, size=max(spec.nbytes(), 1))
        else:
            # Attaching must not register the block with this process's resource tracker: Python 3.11 would
            # unlink it (and warn) when the worker exits, under the parent's feet.
            register = resource_tracker.register
            resource_tracker.register = lambda *args, **kwargs: None
            try:
                self.shm = shared_memory.SharedMemory(name=name)
            finally:
                resource_tracker.register = register
        offset = 0
        for field, shape, dtype in spec.fields():
            view = np.ndarray(shape, dtype=dtype, buffer=self.shm.buf, offset=offset)
            if self._owner:
                view.fill(0)
            setattr(self, field, view)
            offset += _aligned(int(np.prod(shape)) * dtype.itemsize)

    @property
    def name(self) -> str:
        return self.shm.name

    def close(self) -> None:
        """Drop the views, close the mapping and, in the parent, unlink the block."""
        for field, _, _ in self.spec.fields():
            setattr(self, field, None)
        try:
            self.shm.close()
        except BufferError:  # a caller still holds a view; the mapping goes with the process
            pass
        if self._owner:
            try:
                self.shm.unlink()
            except FileNotFoundError:
                pass

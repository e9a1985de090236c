"""SIGTERM handled like Ctrl-C, so that preemption (SLURM, Kubernetes, Ray all send SIGTERM first) keeps the work.

Why one mechanism: every long command already saves and exits cleanly on ``KeyboardInterrupt`` (RL writes a
checkpoint, generation keeps its committed episodes, the pipeline lets the running job save). Raising
:class:`Terminated`, a ``KeyboardInterrupt``, from the SIGTERM handler sends preemption down the same tested path.
After the first SIGTERM further ones are ignored, so a second signal cannot cut the checkpoint short; the
scheduler's SIGKILL after its grace period still can, which the atomic checkpoint and episode writes survive.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

#: Exit status after SIGTERM, as shells report it (128 + 15).
TERMINATED_EXIT = 143


class Terminated(KeyboardInterrupt):
    """The process received SIGTERM (handled as an interruption)."""


def _raise_terminated(signum: int, frame: object) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Terminated()


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)

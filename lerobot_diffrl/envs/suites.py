"""Which LIBERO suites and tasks exist, their init states and episode limits.

The maximum episode lengths follow lerobot's ``TASK_SUITE_MAX_STEPS`` (``lerobot.envs.libero``) (longest human demo of the suite plus
margin), so an episode truncates where ``lerobot-eval`` would stop it and the two evaluations agree.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

import numpy as np

from lerobot_diffrl.envs.libero_setup import prepare_libero
from lerobot_diffrl.errors import UnknownTaskError

#: Steps (20 Hz) after which an episode truncates, per suite. Longest human demo in brackets.
SUITE_MAX_STEPS: dict[str, int] = {
    "libero_spatial": 280,  # (193)
    "libero_object": 280,  # (254)
    "libero_goal": 300,  # (270)
    "libero_10": 520,  # (505)
    "libero_90": 400,  # (373)
}
SUITES: tuple[str, ...] = tuple(SUITE_MAX_STEPS)
#: LIBERO's control rate: 25 MuJoCo substeps of 2 ms per env step.
CONTROL_FPS = 20


@dataclass(frozen=True)
class TaskSpec:
    """One LIBERO task, named by suite and index, with what is needed to build and reset it."""

    suite: str
    task_id: int
    name: str
    language: str
    bddl_file: Path
    init_states_file: Path

    @property
    def max_steps(self) -> int:
        return SUITE_MAX_STEPS[self.suite]


def check_suite(suite: str) -> str:
    """Return ``suite`` if LIBERO knows it, else raise listing the known ones."""
    if suite not in SUITE_MAX_STEPS:
        raise UnknownTaskError(f"unknown LIBERO suite {suite!r}; known suites: {', '.join(SUITES)}")
    return suite


@cache
def _benchmark(suite: str):
    prepare_libero()
    from libero.libero import benchmark

    return benchmark.get_benchmark_dict()[check_suite(suite)]()


def num_tasks(suite: str) -> int:
    return _benchmark(check_suite(suite)).n_tasks


def task_spec(suite: str, task_id: int) -> TaskSpec:
    """Describe task ``task_id`` of ``suite``; raises :class:`UnknownTaskError` for unknown names or ids."""
    bench = _benchmark(check_suite(suite))
    if not isinstance(task_id, int) or isinstance(task_id, bool) or not 0 <= task_id < bench.n_tasks:
        raise UnknownTaskError(f"task id {task_id!r} is not in {suite} (valid ids: 0..{bench.n_tasks - 1})")
    from libero.libero import get_libero_path

    task = bench.get_task(task_id)
    return TaskSpec(
        suite=suite,
        task_id=task_id,
        name=task.name,
        language=task.language,
        bddl_file=Path(get_libero_path("bddl_files")) / task.problem_folder / task.bddl_file,
        init_states_file=Path(get_libero_path("init_states")) / task.problem_folder / task.init_states_file,
    )


def parse_task_ids(suite: str, task_ids: str | list[int] | None) -> list[int]:
    """``None`` or ``"all"`` means every task; otherwise a list or a string of ids and ranges (``"0,2,5-7"``)."""
    if task_ids is None or task_ids == "all":
        return list(range(num_tasks(suite)))
    if isinstance(task_ids, str):
        ids: list[int] = []
        try:
            for part in (p.strip() for p in task_ids.split(",")):
                if "-" in part.lstrip("-"):
                    lo, hi = part.split("-", 1)
                    ids.extend(range(int(lo), int(hi) + 1))
                elif part:
                    ids.append(int(part))
        except ValueError as err:
            raise UnknownTaskError(
                f"task ids must be integers or ranges separated by commas (e.g. 0,2,5-7), got {task_ids!r}"
            ) from err
        task_ids = ids
    ids = list(task_ids)
    for task_id in ids:
        task_spec(suite, task_id)
    return ids


@lru_cache(maxsize=64)
def load_init_states(spec: TaskSpec) -> np.ndarray:
    """The task's fixed init states (50 per task in LIBERO), as a float64 array (n, state_dim)."""
    import torch

    if not os.path.exists(spec.init_states_file):
        raise UnknownTaskError(
            f"init states of {spec.suite}/{spec.task_id} missing at {spec.init_states_file}"
        )
    # LIBERO's files are NumPy arrays pickled by torch.save; allow exactly the globals such an array needs, so a
    # redirected LIBERO config (``~/.libero/config.yaml``) cannot make this load run arbitrary code.
    import numpy._core.multiarray as multiarray
    from torch.serialization import safe_globals

    allowed = [
        (multiarray._reconstruct, "numpy.core.multiarray._reconstruct"),
        np.ndarray,
        (np.dtype, "numpy.dtype"),
        type(np.dtype(np.float64)),
    ]
    try:
        with safe_globals(allowed):
            states = torch.load(spec.init_states_file, weights_only=True)
    except Exception as err:  # noqa: BLE001  (unpickling errors of every kind mean "not an init-state file")
        raise UnknownTaskError(
            f"init states of {spec.suite}/{spec.task_id} at {spec.init_states_file} are not a plain array of "
            f"states: {str(err).splitlines()[0][:200]}"
        ) from None
    return np.asarray(states, dtype=np.float64)

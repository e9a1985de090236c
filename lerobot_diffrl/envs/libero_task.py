"""Builds the simulator of one LIBERO task with the project's settings.

Why not ``OffScreenRenderEnv`` as lerobot uses it: that class always creates an offscreen GL context, even when
nobody reads pixels, and hard-resets (rebuilds the MuJoCo model, ~1.6 s) on every reset. Here the renderer is
created only when pixels are asked for, and ``hard_reset=False`` makes a reset a 30 ms soft reset; after
``set_init_state`` the simulator state equals the hard-reset one (``../shared/notes/machine.md``). Camera
settings are LIBERO's defaults, the same ``OffScreenRenderEnv`` gives lerobot, so images match lerobot's.
"""

from __future__ import annotations

import numpy as np

from lerobot_diffrl.envs.libero_setup import configure_gl_backend, prepare_libero
from lerobot_diffrl.envs.suites import TaskSpec

#: LIBERO camera names, in lerobot's order: ``observation.images.image`` then ``observation.images.image2``.
CAMERAS: tuple[str, ...] = ("agentview", "robot0_eye_in_hand")
#: The no-op LIBERO and lerobot use to let objects settle after a reset (gripper open).
NOOP_ACTION = np.array([0, 0, 0, 0, 0, 0, -1], dtype=np.float64)


def make_task_sim(
    spec: TaskSpec,
    *,
    render: bool,
    image_size: tuple[int, int] = (128, 128),
    seed: int = 0,
    horizon: int = 100_000,
    render_gpu_device_id: int = -1,
):
    """Construct LIBERO's ``ControlEnv`` for ``spec``.

    ``render=False`` creates no renderer and no camera observables (the fast path for RL on state).
    ``seed`` seeds the construction: LIBERO samples fixture poses that are not in the init-state vector with
    NumPy's global RNG, so two envs built with the same seed render the same scene.
    ``horizon`` is robosuite's internal step limit; episodes are truncated by the caller at the suite's limit,
    so it only has to exceed any episode (robosuite counts steps across soft resets until its own reset).
    ``render_gpu_device_id`` picks the EGL device on a multi-GPU machine (-1: MuJoCo's default).
    """
    prepare_libero()
    if render:
        configure_gl_backend()
    from libero.libero.envs.env_wrapper import ControlEnv

    height, width = image_size
    np.random.seed(seed)
    return ControlEnv(
        bddl_file_name=str(spec.bddl_file),
        has_renderer=False,
        has_offscreen_renderer=render,
        use_camera_obs=render,
        camera_names=list(CAMERAS),
        camera_heights=height,
        camera_widths=width,
        hard_reset=False,
        horizon=horizon,
        ignore_done=True,
        render_gpu_device_id=render_gpu_device_id,
    )

"""lerobot-diffrl: diffusion-policy RL on LIBERO that generates LeRobotDatasets for VLA training.

Importing this package has no side effects: LIBERO set-up, asset resolution and registration happen only when
asked for (see :mod:`lerobot_diffrl.envs.libero_setup` and :mod:`lerobot_diffrl.registration`).
"""

__version__ = "0.1.0"

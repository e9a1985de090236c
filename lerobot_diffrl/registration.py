"""Registration of the project's types with LeRobot's registries.

Importing the config modules is what registers them: ``PreTrainedConfig.register_subclass`` and
``EnvConfig.register_subclass`` run at class definition. Config modules import neither torch models nor
simulators, so discovery stays cheap inside ``lerobot-train``/``lerobot-eval`` start-up.
"""

from __future__ import annotations

import importlib

#: Modules whose import registers a LeRobot type (policy configs, the env config and the gym id).
REGISTERING_MODULES: tuple[str, ...] = (
    "lerobot_diffrl.policies",
    "lerobot_diffrl.envs.configs",
)


def register_all() -> None:
    """Import every registering module once (idempotent: Python caches modules).

    With ``LEROBOT_DIFFRL_SMALL_PI=1`` it also installs the small pi0/pi05 backbones
    (:mod:`lerobot_diffrl.recipes.pi_backbone`), so that the ``lerobot-train``/``lerobot-eval`` processes this
    plugin is discovered in can build and load them; unset, lerobot's pi0/pi05 are left untouched.
    """
    for module in REGISTERING_MODULES:
        importlib.import_module(module)
    from lerobot_diffrl.recipes.pi_backbone import install_from_env

    install_from_env()

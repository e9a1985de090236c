"""The project's LeRobot policy types: ``diffrl`` (diffusion, DPPO-ready) and ``gaussrl`` (Gaussian baseline).

Importing this package registers both config classes with LeRobot's draccus registry. It deliberately imports
only the configuration modules (no torch models), so plugin discovery inside ``lerobot-train``/``lerobot-eval``
stays cheap; LeRobot finds ``modeling_*``/``processor_*`` next to each config module by naming convention.
"""

from lerobot_diffrl.policies.diffrl.configuration_diffrl import DiffRLConfig
from lerobot_diffrl.policies.gaussrl.configuration_gaussrl import GaussRLConfig
from lerobot_diffrl.policies.hfvla.configuration_hfvla import HFVLAConfig

__all__ = ["DiffRLConfig", "GaussRLConfig", "HFVLAConfig"]

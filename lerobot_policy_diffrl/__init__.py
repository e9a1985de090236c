"""Entry module that LeRobot's plugin discovery imports.

LeRobot (``register_third_party_plugins``) imports every installed distribution whose name starts with
``lerobot_policy_`` under that very name. Importing this module registers the project's policy types and env
type with LeRobot's draccus registries; the implementation lives in :mod:`lerobot_diffrl`.
"""

from lerobot_diffrl.registration import register_all

register_all()

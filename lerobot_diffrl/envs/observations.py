"""Observation layouts: robosuite's raw dict -> fixed-size arrays, and arrays -> lerobot's LIBERO layout.

Why fixed-size arrays: the pool writes observations into shared memory whose shape is fixed at start-up, and a
pool may mix tasks (and suites) whose scenes hold different numbers of objects. Why lerobot's layout: a policy
evaluated with ``lerobot-eval`` sees observations through ``LiberoProcessorStep``, which expects the raw nested
``robot_state`` dict and unflipped images; emitting exactly that keeps training and evaluation identical.

Layouts (float64 unless stated):

``robot_state`` (:data:`ROBOT_STATE_DIM` = 34): eef pos (3), eef quat xyzw (4), eef rotation matrix row-major
(9, the OSC controller's ``ee_ori_mat`` as lerobot reports it), gripper qpos (2), gripper qvel (2), joint pos (7),
joint vel (7). See :data:`ROBOT_STATE_SLICES`.

``agent_pos`` (:data:`LEROBOT_STATE_DIM` = 8, float32): lerobot's ``observation.state`` for LIBERO: eef pos (3),
axis-angle of the eef quat (3), gripper qpos (2), computed as ``LiberoProcessorStep`` computes it.

``object_state`` (:data:`OBJECT_STATE_DIM` = 256): robosuite's ``object-state`` vector (per object of the scene:
pos 3, quat 4, pos relative to the eef 3, quat relative to the eef 4), zero-padded. ``object_state_len`` says how
many leading values are real for a task.

Images are uint8 HWC exactly as robosuite returns them (upside down; lerobot's processor flips them).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lerobot_diffrl.envs.libero_task import CAMERAS
from lerobot_diffrl.errors import ConfigError

ROBOT_STATE_DIM = 34
LEROBOT_STATE_DIM = 8
OBJECT_STATE_DIM = 256
ROBOT_STATE_SLICES: dict[str, slice] = {
    "eef_pos": slice(0, 3),
    "eef_quat": slice(3, 7),
    "eef_mat": slice(7, 16),
    "gripper_qpos": slice(16, 18),
    "gripper_qvel": slice(18, 20),
    "joint_pos": slice(20, 27),
    "joint_vel": slice(27, 34),
}
#: robosuite observation keys of the two cameras, in lerobot's order (``image``, ``image2``).
CAMERA_KEYS: tuple[str, ...] = tuple(f"{camera}_image" for camera in CAMERAS)
IMAGE_NAMES: tuple[str, ...] = ("image", "image2")
#: Observation modes of the pool: what is computed per step.
OBS_MODES: tuple[str, ...] = ("state", "pixels", "pixels_state")


def check_obs_mode(obs_mode: str) -> str:
    if obs_mode not in OBS_MODES:
        raise ConfigError(f"obs_mode must be one of {', '.join(OBS_MODES)}, got {obs_mode!r}")
    return obs_mode


def mode_renders(obs_mode: str) -> bool:
    """True for modes with cameras: they need a renderer (GL context) in the simulator."""
    return check_obs_mode(obs_mode) != "state"


def quat2axisangle(quat: np.ndarray) -> np.ndarray:
    """xyzw quaternion(s) -> axis-angle, the same formula as ``LiberoProcessorStep`` (and robosuite)."""
    quat = np.asarray(quat, dtype=np.float64)
    w = np.clip(quat[..., 3], -1.0, 1.0)
    den = np.sqrt(np.maximum(1.0 - w * w, 0.0))
    angle = 2.0 * np.arccos(w)
    safe = den > 1e-10
    scale = np.where(safe, angle / np.where(safe, den, 1.0), 0.0)
    return quat[..., :3] * scale[..., None]


def robot_vector(raw: dict[str, Any], sim_env: Any) -> np.ndarray:
    """The 34-d proprioception of one raw robosuite observation (``sim_env``: the LIBERO ``ControlEnv``)."""
    out = np.empty(ROBOT_STATE_DIM, dtype=np.float64)
    out[ROBOT_STATE_SLICES["eef_pos"]] = raw["robot0_eef_pos"]
    out[ROBOT_STATE_SLICES["eef_quat"]] = raw["robot0_eef_quat"]
    out[ROBOT_STATE_SLICES["eef_mat"]] = np.asarray(sim_env.robots[0].controller.ee_ori_mat).reshape(9)
    out[ROBOT_STATE_SLICES["gripper_qpos"]] = raw["robot0_gripper_qpos"]
    out[ROBOT_STATE_SLICES["gripper_qvel"]] = raw["robot0_gripper_qvel"]
    out[ROBOT_STATE_SLICES["joint_pos"]] = raw["robot0_joint_pos"]
    out[ROBOT_STATE_SLICES["joint_vel"]] = raw["robot0_joint_vel"]
    return out


def lerobot_state(robot: np.ndarray) -> np.ndarray:
    """8-d ``observation.state`` from 34-d (or batched ``(n, 34)``) robot vectors, as float32."""
    robot = np.asarray(robot)
    return np.concatenate(
        [
            robot[..., ROBOT_STATE_SLICES["eef_pos"]],
            quat2axisangle(robot[..., ROBOT_STATE_SLICES["eef_quat"]]),
            robot[..., ROBOT_STATE_SLICES["gripper_qpos"]],
        ],
        axis=-1,
    ).astype(np.float32)


def object_vector(raw: dict[str, Any]) -> tuple[np.ndarray, int]:
    """robosuite's ``object-state`` zero-padded to :data:`OBJECT_STATE_DIM`, and its real length."""
    values = np.asarray(raw.get("object-state", np.zeros(0)), dtype=np.float64).reshape(-1)
    if values.size > OBJECT_STATE_DIM:
        raise ConfigError(f"object state of {values.size} values exceeds OBJECT_STATE_DIM={OBJECT_STATE_DIM}")
    out = np.zeros(OBJECT_STATE_DIM, dtype=np.float64)
    out[: values.size] = values
    return out, int(values.size)


def lerobot_robot_state(robot: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
    """34-d robot vector(s) -> lerobot's nested ``robot_state`` dict (works batched on ``(n, 34)``)."""
    robot = np.asarray(robot, dtype=np.float64)
    lead = robot.shape[:-1]
    part = {key: robot[..., sl] for key, sl in ROBOT_STATE_SLICES.items()}
    return {
        "eef": {
            "pos": part["eef_pos"],
            "quat": part["eef_quat"],
            "mat": part["eef_mat"].reshape(*lead, 3, 3),
        },
        "gripper": {"qpos": part["gripper_qpos"], "qvel": part["gripper_qvel"]},
        "joints": {"pos": part["joint_pos"], "vel": part["joint_vel"]},
    }


def to_lerobot_raw(obs: dict[str, Any]) -> dict[str, Any]:
    """A pool observation batch -> lerobot's raw LIBERO layout (``pixels``/``robot_state``), so that
    ``lerobot.envs.utils.preprocess_observation`` and ``LiberoProcessorStep`` apply unchanged."""
    out: dict[str, Any] = {"robot_state": lerobot_robot_state(obs["robot_state"])}
    if "pixels" in obs:
        out["pixels"] = dict(obs["pixels"])
    if "object_state" in obs:
        out["environment_state"] = obs["object_state"]
    return out

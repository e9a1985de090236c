"""State mode's fast step: robosuite's ``env.step`` without the work a camera-free observation does not need.

Where a state-mode step's time goes (``BENCHMARKS.md``, "State fast path"): robosuite runs 25 physics
substeps per 20 Hz control step, and around each one it calls ``mj_forward`` twice (once in its step loop, once
in the OSC controller's ``update``) before ``mj_step`` computes the same forward dynamics a third time; then it
walks every observable's sampling clock. That is about a third of the step, beside the controller's own numpy.

This step does the same work in MuJoCo's split form, which its documentation gives for exactly this case
(controls computed from the current state): ``mj_step1`` (position and velocity stages) -> controller ->
``mj_step2`` (actuation, acceleration, constraints, integration). The controller reads only position- and
velocity-stage quantities (site poses, Jacobians, mass matrix, bias forces), which ``mj_step1`` computes
exactly as ``mj_forward`` does, so its torques, and therefore every ``qpos``/``qvel``, are bit-identical. The
policy substep keeps a full ``mj_forward`` because robosuite's robot then also records the force-torque sensors
(acceleration stage) in its history buffers.

Observables are sampled by robosuite's own code, only on the substeps where their shared clock says they
sample or wrap; in between the clock is advanced here with the same floating-point additions. The controller,
its goal, the gripper, the reward, LIBERO's predicates and the observation dict are robosuite's and LIBERO's
own functions: nothing about them is re-implemented.

The fast step only runs where those assumptions are checked (:func:`fast_step_unsupported`); elsewhere the
caller uses robosuite's step and says so.
"""

from __future__ import annotations

from typing import Any

import mujoco
import numpy as np

#: Integrators for which MuJoCo defines ``mj_step1`` + ``mj_step2`` as equal to ``mj_step`` (not RK4).
_SPLIT_INTEGRATORS = (mujoco.mjtIntegrator.mjINT_EULER, mujoco.mjtIntegrator.mjINT_IMPLICITFAST)
#: Controllers whose ``update`` reads only position/velocity-stage data (robosuite's OSC, LIBERO's default).
_SUPPORTED_CONTROLLERS = ("OperationalSpaceController",)


def fast_step_unsupported(control_env: Any) -> str | None:
    """Why the fast step cannot reproduce this LIBERO env exactly, or None when it can."""
    env = control_env.env
    if getattr(env, "has_offscreen_renderer", False) or getattr(env, "use_camera_obs", False):
        return "the env renders cameras (the fast step is for state mode)"
    if getattr(env, "viewer", None) is not None:
        return "the env has an on-screen viewer"
    if len(env.robots) != 1:
        return f"the env has {len(env.robots)} robots, the fast step is checked for one"
    controller = type(env.robots[0].controller).__name__
    if controller not in _SUPPORTED_CONTROLLERS:
        return f"controller {controller} is not one the fast step is checked for ({_SUPPORTED_CONTROLLERS})"
    if env.action_dim != 7:
        return f"action dimension {env.action_dim} (LIBERO converts non-pose actions in its own step)"
    integrator = env.sim.model._model.opt.integrator
    if integrator not in _SPLIT_INTEGRATORS:
        return f"MuJoCo integrator {mujoco.mjtIntegrator(integrator).name} has no split step"
    return None


class _ObservableClock:
    """The sampling clock robosuite keeps in each observable, kept once for all of them.

    Valid only while every enabled observable has the same clock (same sampling period, no delay, same time
    since its last sample and same sampled flag), which :meth:`uniform` checks at the start of every step.
    """

    def __init__(self, env: Any) -> None:
        self.env = env
        self.observables = [o for o in env._observables.values() if o.is_enabled()]
        first = self.observables[0]
        self.period = first._sampling_timestep
        self.time = first._time_since_last_sample
        self.sampled = first._sampled

    def uniform(self) -> bool:
        return all(
            o._sampling_timestep == self.period
            and o._current_delay == 0
            and o._time_since_last_sample == self.time
            and o._sampled == self.sampled
            for o in self.observables
        )

    def tick(self, dt: float) -> None:
        """One substep: advance the clock, and let robosuite sample where any observable would act."""
        later = self.time + dt
        samples = not self.sampled and self.period >= later
        if not (samples or later >= self.period):
            self.time = later
            return
        for observable in self.observables:
            observable._time_since_last_sample = self.time
        self.env._update_observables()
        first = self.observables[0]
        self.time, self.sampled = first._time_since_last_sample, first._sampled

    def store(self) -> None:
        for observable in self.observables:
            observable._time_since_last_sample = self.time


class _ArmSubstep:
    """robosuite's ``SingleArm.control`` for the substeps between two actions, with its constants looked up once.

    Between actions robosuite's robot re-runs the OSC controller and the gripper on the same action: this does
    the same calls in the same order (``run_controller``, torque clipping, ``format_action``, the gripper's
    control-range scaling), with the controller's state read straight from MuJoCo's arrays instead of through
    name lookups and fresh Jacobian buffers. Every value is computed by the same numpy operation as in
    robosuite, so the controls are bit-identical (``tests/envs/test_fast_state.py``).
    """

    def __init__(self, env: Any) -> None:
        robot = env.robots[0]
        self.robot, self.controller, self.gripper = robot, robot.controller, robot.gripper
        model = env.sim.model
        self.model, self.data = model._model, env.sim.data._data
        self.site = model.site_name2id(self.controller.eef_name)
        self.qpos_index, self.qvel_index = self.controller.qpos_index, self.controller.qvel_index
        self.torque_low, self.torque_high = robot.torque_limits
        self.joint_actuators = robot._ref_joint_actuator_indexes
        self.grip_actuators = [model.actuator_name2id(a) for a in self.gripper.actuators]
        ctrl_range = model.actuator_ctrlrange[self.grip_actuators]
        self.grip_bias = 0.5 * (ctrl_range[:, 1] + ctrl_range[:, 0])
        self.grip_weight = 0.5 * (ctrl_range[:, 1] - ctrl_range[:, 0])
        self.arm_dim = self.controller.control_dim

    def _update_controller(self) -> None:
        """What ``Controller.update`` stores, from the data ``mj_step1`` has just computed. The expressions are
        robosuite's own, copies and reshapes included: the memory layout of these arrays decides which BLAS
        kernel the controller's products take, and with it the last bits of the torques."""
        c, data, nv = self.controller, self.data, self.model.nv
        jacp, jacr = np.zeros((3, nv)), np.zeros((3, nv))
        mujoco.mj_jacSite(self.model, data, jacp, None, self.site)
        mujoco.mj_jacSite(self.model, data, None, jacr, self.site)
        c.ee_pos = np.array(data.site_xpos[self.site])
        c.ee_ori_mat = np.array(data.site_xmat[self.site].reshape([3, 3]))
        c.ee_pos_vel = np.array(np.dot(jacp, data.qvel))
        c.ee_ori_vel = np.array(np.dot(jacr, data.qvel))
        c.joint_pos = np.array(data.qpos[self.qpos_index])
        c.joint_vel = np.array(data.qvel[self.qvel_index])
        c.J_pos = np.array(jacp.reshape((3, -1))[:, self.qvel_index])
        c.J_ori = np.array(jacr.reshape((3, -1))[:, self.qvel_index])
        c.J_full = np.array(np.vstack([c.J_pos, c.J_ori]))
        mass_matrix = np.ndarray(shape=(nv, nv), dtype=np.float64, order="C")
        mujoco.mj_fullM(self.model, mass_matrix, data.qM)
        c.mass_matrix = mass_matrix[self.qvel_index, :][:, self.qvel_index]
        c.new_update = False

    def __call__(self, action: np.ndarray) -> None:
        self._update_controller()
        torques = self.controller.run_controller()
        self.robot.torques = np.clip(torques, self.torque_low, self.torque_high)
        grip = self.gripper.format_action(action[self.arm_dim :])
        self.data.ctrl[self.grip_actuators] = self.grip_bias + self.grip_weight * grip
        self.data.ctrl[self.joint_actuators] = self.robot.torques


def _no_forward() -> None:
    """Stands in for ``MjSim.forward`` inside the controller: ``mj_step1`` has just computed it."""


class FastStateStep:
    """``control_env.step`` for a state-mode LIBERO ``ControlEnv`` (see the module docstring).

    Built once per simulator; robosuite makes a new controller at every reset, so the per-arm constants are
    looked up again whenever the controller changes.
    """

    def __init__(self, control_env: Any) -> None:
        self.control_env = control_env
        self._arm: _ArmSubstep | None = None

    def _arm_substep(self, env: Any) -> _ArmSubstep:
        if self._arm is None or self._arm.controller is not env.robots[0].controller:
            self._arm = _ArmSubstep(env)
        return self._arm

    def __call__(self, action: np.ndarray) -> tuple[dict, float, bool, dict] | None:
        """What ``ControlEnv.step(action)`` returns, or None (nothing changed) when the observables' clocks
        differ this step: the caller then takes robosuite's own step."""
        env = self.control_env.env
        clock = _ObservableClock(env)
        if not clock.uniform():
            return None
        if env.done:
            raise ValueError("executing action in terminated episode")
        sim, arm = env.sim, self._arm_substep(env)
        model, data = sim.model._model, sim.data._data
        env.timestep += 1
        substeps = int(env.control_timestep / env.model_timestep)
        sim.forward = _no_forward  # an instance attribute shadows the method for the controller's update
        try:
            for i in range(substeps):
                if i == 0:  # robosuite's own control: it sets the goal and records the sensors' history
                    mujoco.mj_forward(model, data)
                    env._pre_action(action, True)
                else:
                    mujoco.mj_step1(model, data)
                    arm(action)
                mujoco.mj_step2(model, data)
                clock.tick(env.model_timestep)
        finally:
            del sim.forward
            clock.store()
        env.cur_time += env.control_timestep
        reward, _, info = env._post_action(action)
        return env._get_observations(), reward, env._check_success(), info

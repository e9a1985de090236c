"""The pinned LIBERO evaluation protocol: what every reported success rate of this project was measured under.

Why pin it: LIBERO numbers that do not reproduce are the most frequent complaint about VLA evaluation (fps 20 vs
30, image size, 180-degree flip, init states, episodes per task, how many actions of a chunk are executed; see
``lerobot#952``, ``#1316``, ``#3247``, ``#3368``). The protocol below fixes each of them, and the evaluation command
writes the resolved protocol (with the values taken from the checkpoint) next to every result.

Defaults follow LIBERO's standard protocol as openpi and OpenVLA-OFT run it: every task of a suite, 50 episodes
per task, one per fixed init state (LIBERO ships 50 per task), 20 Hz control, the episode limit of the suite
(:data:`lerobot_diffrl.envs.suites.SUITE_MAX_STEPS`), LeRobot's LIBERO observation (two cameras rotated upright,
8-d state) through ``--env.type=diffrl_env``.

Seeds and init states: episode ``e`` of a run with seed ``s`` resets with seed ``s + e``, and ``diffrl_env`` maps a
one-task run's seed to init state ``(s + e) % 50``. With ``seeds=[0]`` and 50 episodes every init state is played
once. The seed also seeds torch (the flow-matching / diffusion noise of the policy), so ``seeds=[0, 1000, 2000]``
with ``episodes_per_task=10`` replays init states 0-9 three times under different policy noise (1000 % 50 == 0).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from lerobot_diffrl.envs.suites import CONTROL_FPS, SUITE_MAX_STEPS, check_suite
from lerobot_diffrl.errors import ConfigError

#: LIBERO's four standard suites (LIBERO-90 is evaluated separately in the literature).
STANDARD_SUITES: tuple[str, ...] = ("libero_spatial", "libero_object", "libero_goal", "libero_10")
#: Fixed init states LIBERO ships per task.
INIT_STATES_PER_TASK = 50
#: Image side used when a checkpoint does not declare its camera shape (LIBERO's rendering size in openpi and
#: lerobot 0.4.4's LIBERO env).
DEFAULT_IMAGE_SIZE = 256


@dataclass
class EvalProtocol:
    """Everything that changes a LIBERO success rate, pinned. ``None`` means "take it from the checkpoint"."""

    #: Episodes per task; 50 plays each of LIBERO's fixed init states once (with ``seeds=[0]``).
    episodes_per_task: int = 50
    #: One ``lerobot-eval`` run per (task, seed); see the module docstring for what a seed selects.
    seeds: list[int] = field(default_factory=lambda: [0])
    #: Task ids to run in every suite; ``None`` runs all tasks.
    task_ids: list[int] | None = None
    #: Reset to LIBERO's fixed init states (true) rather than the task's default layout.
    init_states: bool = True
    #: Environment steps per second. LIBERO's simulator runs at 20 Hz; anything else is rejected.
    fps: int = CONTROL_FPS
    #: Rendered camera side; ``None`` = the checkpoint's camera shape (what it was trained on).
    image_size: int | None = None
    #: Actions executed per predicted chunk before replanning; ``None`` = the checkpoint's ``n_action_steps``.
    n_action_steps: int | None = None
    #: Episode limit in steps; ``None`` = the suite's limit from ``SUITE_MAX_STEPS``.
    episode_length: int | None = None
    #: Sub-environments one ``lerobot-eval`` run steps together (speed only; results are per episode).
    batch_size: int = 10
    #: lerobot's LIBERO observation: two cameras plus proprioception.
    obs_type: str = "pixels_agent_pos"
    #: Delta end-effector control, as LIBERO's demonstrations.
    control_mode: str = "relative"

    def validate(self) -> None:
        """Raise :class:`ConfigError` for values no LIBERO evaluation can honour."""

        def positive(name: str, value: int | None) -> None:
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ConfigError(f"protocol.{name} must be a positive integer, got {value!r}")

        positive("episodes_per_task", self.episodes_per_task)
        positive("batch_size", self.batch_size)
        positive("image_size", self.image_size)
        positive("n_action_steps", self.n_action_steps)
        positive("episode_length", self.episode_length)
        if not self.seeds:
            raise ConfigError("protocol.seeds must list at least one seed")
        if len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"protocol.seeds has duplicates: {self.seeds}")
        if self.fps != CONTROL_FPS:
            raise ConfigError(
                f"protocol.fps={self.fps}: LIBERO's simulator steps at {CONTROL_FPS} Hz (25 MuJoCo substeps of "
                "2 ms); another rate would only mislabel the videos"
            )
        if self.obs_type not in ("pixels", "pixels_agent_pos"):
            raise ConfigError(f"protocol.obs_type must be pixels or pixels_agent_pos, got {self.obs_type!r}")
        if self.control_mode not in ("relative", "absolute"):
            raise ConfigError(
                f"protocol.control_mode must be relative or absolute, got {self.control_mode!r}"
            )

    def max_steps(self, suite: str) -> int:
        return self.episode_length if self.episode_length is not None else SUITE_MAX_STEPS[check_suite(suite)]

    def fingerprint(self) -> dict[str, Any]:
        """The fields two result sets must share to be merged (all of them except the task selection)."""
        out = asdict(self)
        out.pop("task_ids")
        return out


def parse_suites(suites: str | list[str]) -> list[str]:
    """``"libero_object,libero_spatial"``, ``"standard"`` (the four standard suites) or ``"all"`` to a checked list."""
    if isinstance(suites, str):
        if suites.strip() == "standard":
            return list(STANDARD_SUITES)
        if suites.strip() == "all":
            return list(SUITE_MAX_STEPS)
        names = [part.strip() for part in suites.split(",") if part.strip()]
    else:
        names = list(suites)
    if not names:
        raise ConfigError("no suite given: pass --suites=libero_object[,libero_spatial,...], standard or all")
    if len(set(names)) != len(names):
        raise ConfigError(f"suites listed twice: {names}")
    return [check_suite(name) for name in names]


def resolved_protocol(
    protocol: EvalProtocol,
    suites: list[str],
    image_size: tuple[int, int],
    n_action_steps: int | None,
    policy: str,
) -> dict[str, Any]:
    """The protocol as actually run: pinned fields plus the values taken from the checkpoint, for the results."""
    out = asdict(protocol)
    out.update(
        suites=list(suites),
        image_size=list(image_size),
        n_action_steps=n_action_steps,
        max_steps={suite: protocol.max_steps(suite) for suite in suites},
        env_type="diffrl_env",
        camera_views=["agentview (observation.images.image)", "eye_in_hand (observation.images.image2)"],
        image_rotation="180 degrees (upright), by lerobot's LiberoProcessorStep",
        state="8-d: eef position (3), axis-angle (3), gripper joints (2)",
        init_state_rule="episode e of seed s starts from init state (s + e) % 50 of its task",
        policy=policy,
    )
    return out

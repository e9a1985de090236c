"""What ``lerobot-diffrl-pipeline`` runs: the stages, their wiring, and the tiny embedded default recipe.

A pipeline recipe does not re-declare the commands' options. Each stage names the command that does the work
(``lerobot-diffrl-generate``, ``lerobot-train``, ``lerobot-diffrl-rl``, ``lerobot-diffrl-report``,
``lerobot-diffrl-train-vla``, ``lerobot-diffrl-eval``) and carries ``args``: extra ``--flag=value`` arguments passed
to it verbatim. The pipeline adds only the wiring (input and output folders, suite and tasks, seed, device). A
recipe therefore reads like the commands a user would type, and every option of every command stays reachable.

The defaults below ARE the tiny embedded recipe (``recipes/pipeline/tiny.json`` holds the same values): two
libero_object tasks, a scripted-expert warm start, a small pixel ``diffrl`` expert, two DPPO iterations, a handful
of generated episodes, and a SmolVLA built from a tiny local SmolVLM. On two CPU cores it runs the whole chain in a
few minutes. It checks that the chain works, not that the method works: that needs the full-scale recipe on GPUs
(``recipes/pipeline/paper_libero.json``; costs in ``recipes/README.md``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lerobot_diffrl.envs.suites import SUITES, check_suite, parse_task_ids
from lerobot_diffrl.errors import ConfigError
from lerobot_diffrl.recipes.state_expert import STATE_BC_ARGS, STATE_RL_ARGS

#: The stages, in the order they run. Each consumes the artefact of an earlier one.
STAGES: tuple[str, ...] = ("demos", "bc", "rl", "generate", "report", "vla", "eval")
EXPERT_TYPES = ("diffrl", "gaussrl")
BC_TRAINERS = ("lerobot-train", "lerobot-diffrl-train-state")
#: The VLAs stage 6 can fine-tune (lerobot's pi0, pi05, smolvla; this package's hfvla).
VLA_TYPES = ("pi0", "pi05", "smolvla", "hfvla")
DEMO_SOURCES = ("scripted", "dataset")
#: How the pipeline's jobs are run (``lerobot_diffrl.recipes.launchers``).
LAUNCHERS = ("serial", "local", "ray")


@dataclass
class DemosStage:
    """Stage 1, warm-start demonstrations: the scripted expert (no human at all) or an existing LeRobotDataset."""

    #: ``scripted``: ``lerobot-diffrl-generate --actor.type=scripted`` per suite; ``dataset``: use ``repo_id``.
    source: str = "scripted"
    #: ``source=dataset``: the LeRobotDataset (Hub id such as ``lerobot/libero``, or a local folder with ``root``).
    repo_id: str | None = None
    root: str | None = None
    episodes_per_task: int = 8
    #: Extra ``lerobot-diffrl-generate`` arguments (``source=scripted``). The object state is recorded for the
    #: tiny recipe's state expert.
    args: list[str] = field(
        default_factory=lambda: ["--image_size=64", "--n_envs=2", "--record_env_state=true"]
    )


@dataclass
class BCStage:
    """Stage 2, behaviour cloning with plain ``lerobot-train --policy.type=<expert>``."""

    #: ``diffrl`` (the method) or ``gaussrl`` (the Gaussian-PPO baseline the paper compares against).
    policy_type: str = "diffrl"
    #: One expert per task, as the paper does; false trains one task-conditioned expert per suite.
    per_task: bool = False
    #: Train on a camera-free copy of the demos (``lerobot-edit-dataset --operation.type=remove_feature``): a
    #: state expert (``--policy.use_images=false``) then does not wait on decoding video frames it never reads.
    strip_cameras: bool = True
    #: ``lerobot-train``, or ``lerobot-diffrl-train-state`` (its flags and checkpoint, the dataset in memory; state
    #: experts only): lerobot's loader costs ~0.45 s per 128-sample step here, the state model ~0.03 s, so the
    #: tiny recipe's 5000 steps take ~3 min instead of ~35. It restarts an interrupted run (no resume).
    trainer: str = "lerobot-diffrl-train-state"
    #: Extra ``lerobot-train`` arguments (steps, batch size, policy sizes). The tiny recipe's: the state-expert
    #: recipe (``recipes/state_expert.py``) with a shorter schedule.
    args: list[str] = field(
        default_factory=lambda: [
            "--steps=5000",
            *STATE_BC_ARGS["diffrl"],
            "--policy.scheduler_warmup_steps=500",
            "--num_workers=0",
            "--log_freq=500",
        ]
    )


@dataclass
class RLStage:
    """Stage 3, RL fine-tuning of each expert with ``lerobot-diffrl-rl`` (DPPO, or PPO for ``gaussrl``)."""

    args: list[str] = field(
        default_factory=lambda: [
            "--iterations=3",
            "--env.n_envs=16",
            "--env.obs_mode=state",
            "--ppo.n_steps=8",
            *STATE_RL_ARGS,
            "--ppo.lr_warmup_iters=1",
            "--eval.freq=0",
            "--eval.episodes_per_task=10",
            "--eval.seed=0",
            "--save_freq=3",
            "--torch_threads=1",
        ]
    )


@dataclass
class GenerateStage:
    """Stage 4, rollouts of the fine-tuned experts as one LeRobotDataset (``lerobot-diffrl-generate``, merged)."""

    episodes_per_task: int = 2
    #: Jobs per expert group (``--shard_index/--num_shards``, disjoint attempts), merged with the other groups'
    #: datasets. With ``--keep=all`` the merged episodes are those of a single job with the same seed; with
    #: ``--keep=success`` each shard fills its part of the target from its own attempts.
    shards: int = 1
    #: Extra ``lerobot-diffrl-generate`` arguments. The tiny expert succeeds on ~20% of init states, so the tiny
    #: recipe keeps every episode (``--keep=all`` adds the success column) to bound its cost; the paper keeps
    #: successes only (``benchmarks/data_sources_libero.py`` does: a failed episode is far jerkier).
    args: list[str] = field(default_factory=lambda: ["--keep=all", "--image_size=64", "--n_envs=2"])


@dataclass
class ReportStage:
    """Stage 5, ``lerobot-diffrl-report`` on the generated dataset side by side with the warm-start demos."""

    compare_with_demos: bool = True
    args: list[str] = field(default_factory=list)


@dataclass
class VLAStage:
    """Stage 6, VLA fine-tuning on the generated dataset with ``lerobot-diffrl-train-vla`` (accelerate launch)."""

    #: A ``lerobot-train`` recipe file (``recipes/<name>.json``; relative paths are looked up in the working
    #: folder, then in this repository's checkout); ``null`` to train ``policy_type`` from its defaults (hfvla,
    #: which has no published recipe).
    recipe: str | None = "recipes/smolvla_libero.json"
    #: The VLA: pi0, pi05, smolvla or hfvla. Default: the recipe's ``policy.type``; given both, they must agree.
    policy_type: str | None = None
    #: Build a tiny base model of the VLA's type locally instead of downloading the recipe's (offline, CPU):
    #: a tiny SmolVLM and SmolVLA base (smolvla), a tiny pi0/pi05 base on this package's small backbone (pi0,
    #: pi05; its commands run with ``LEROBOT_DIFFRL_SMALL_PI=1``), or a tiny SmolVLM as hfvla's ``vlm_path``.
    tiny_backbone: bool = True
    accelerate_config: str = "recipes/accelerate/multi_gpu_ddp.yaml"
    num_processes: int = 2
    #: Extra ``lerobot-train`` arguments (forwarded by the launcher).
    args: list[str] = field(
        default_factory=lambda: [
            "--steps=60",
            "--batch_size=4",
            "--policy.optimizer_lr=1e-3",
            "--policy.scheduler_warmup_steps=5",
            "--policy.scheduler_decay_steps=60",
            "--log_freq=10",
            "--num_workers=0",
        ]
    )


@dataclass
class EvalStage:
    """Stage 7, ``lerobot-diffrl-eval`` of the fine-tuned VLA on the run's tasks under the pinned protocol."""

    args: list[str] = field(
        default_factory=lambda: ["--protocol.episodes_per_task=1", "--protocol.episode_length=16"]
    )


@dataclass
class LauncherConfig:
    """Where and how many of the pipeline's jobs run at once. Not part of the recipe's identity: a run folder can
    be continued with another launcher (it is recorded in ``recipe.json``)."""

    #: ``local`` (default): as many jobs at once as this machine holds, one GPU each (``CUDA_VISIBLE_DEVICES``)
    #: with ``device=cuda``, else ``cpu_slots`` at once; ``serial``: one job after another; ``ray``: each job a
    #: Ray task on a cluster (``pip install 'lerobot_policy_diffrl[ray]'``).
    type: str = "local"
    #: Jobs without a GPU run at once (local launcher; default: half the cores, at least 1).
    cpu_slots: int | None = None
    #: GPUs per GPU job (BC, RL, generation, evaluation with ``device=cuda``; the VLA job asks
    #: ``vla.num_processes`` times this). Default 1 with ``device=cuda``, else 0.
    gpus_per_job: int | None = None
    #: Ray: CPUs and memory (GiB) each job reserves; an RL or generation job's simulator workers count here.
    cpus_per_job: float = 1.0
    memory_gb_per_job: float | None = None
    #: Ray: ``null`` starts a Ray on this machine for the run; ``auto`` joins the cluster this machine is part of;
    #: ``host:port`` (or ``ray://host:port``) joins that cluster's head.
    address: str | None = None
    #: Ray: times a job whose worker or node died is started again (it continues through its own resume).
    max_retries: int = 2

    def validate(self) -> None:
        if self.type not in LAUNCHERS:
            raise ConfigError(f"launcher.type must be one of {', '.join(LAUNCHERS)}, got {self.type!r}")
        for name in ("cpu_slots", "gpus_per_job", "max_retries"):
            value = getattr(self, name)
            if value is not None and value < (1 if name == "cpu_slots" else 0):
                raise ConfigError(
                    f"launcher.{name} must be >= {1 if name == 'cpu_slots' else 0}, got {value}"
                )
        if self.cpus_per_job <= 0 or (self.memory_gb_per_job is not None and self.memory_gb_per_job <= 0):
            raise ConfigError("launcher.cpus_per_job and launcher.memory_gb_per_job must be > 0")
        if self.address is not None and self.type != "ray":
            raise ConfigError(f"launcher.address is for launcher.type=ray (got type {self.type!r})")


@dataclass
class PipelineConfig:
    #: Run name; the run folder is ``output_dir`` or ``outputs/pipeline/<name>``.
    name: str = "tiny_libero_object"
    output_dir: str | None = None
    #: ``suite:task ids`` entries, e.g. ``libero_object:0,1`` or ``libero_goal:all``.
    tasks: list[str] = field(default_factory=lambda: ["libero_object:0"])
    #: The stages to run, in pipeline order; a stage whose artefact exists is skipped.
    stages: list[str] = field(default_factory=lambda: list(STAGES))
    seed: int = 0
    #: Device for training, RL and evaluation (``cpu``, ``cuda``).
    device: str = "cpu"
    #: LIBERO asset folder (default: see ``lerobot-diffrl-setup-libero``).
    libero_assets: str | None = None
    demos: DemosStage = field(default_factory=DemosStage)
    bc: BCStage = field(default_factory=BCStage)
    rl: RLStage = field(default_factory=RLStage)
    generate: GenerateStage = field(default_factory=GenerateStage)
    report: ReportStage = field(default_factory=ReportStage)
    vla: VLAStage = field(default_factory=VLAStage)
    eval: EvalStage = field(default_factory=EvalStage)
    launcher: LauncherConfig = field(default_factory=LauncherConfig)

    def run_dir(self) -> Path:
        return Path(self.output_dir) if self.output_dir else Path("outputs") / "pipeline" / self.name

    def suite_tasks(self) -> dict[str, list[int]]:
        """``tasks`` resolved to task ids per suite (suite order as given); raises on unknown suites or ids."""
        resolved: dict[str, list[int]] = {}
        for entry in self.tasks:
            suite, sep, ids = entry.partition(":")
            suite = suite.strip()
            if not sep:
                raise ConfigError(
                    f"tasks entries look like 'libero_object:0,1' or 'libero_goal:all', got {entry!r}"
                )
            check_suite(suite)
            if suite in resolved:
                raise ConfigError(f"suite {suite} is listed twice in tasks")
            resolved[suite] = parse_task_ids(suite, ids.strip() or "all")
        if not resolved:
            raise ConfigError(
                f"tasks is empty: give e.g. ['libero_object:0,1'] (suites: {', '.join(SUITES)})"
            )
        return resolved

    def validate(self) -> None:
        """Raise :class:`ConfigError` for a recipe no run can honour, before anything is written."""
        unknown = [s for s in self.stages if s not in STAGES]
        if unknown:
            raise ConfigError(
                f"unknown stage(s) {', '.join(map(repr, unknown))}: stages are {', '.join(STAGES)}"
            )
        if len(set(self.stages)) != len(self.stages):
            raise ConfigError(f"stages lists a stage twice: {self.stages}")
        if list(self.stages) != [s for s in STAGES if s in self.stages]:
            raise ConfigError(f"stages must keep the pipeline order {', '.join(STAGES)}; got {self.stages}")
        if not self.name or "/" in self.name:
            raise ConfigError(f"name must be a plain folder name, got {self.name!r}")
        if self.demos.source not in DEMO_SOURCES:
            raise ConfigError(
                f"demos.source must be one of {', '.join(DEMO_SOURCES)}, got {self.demos.source!r}"
            )
        if self.demos.source == "dataset" and not self.demos.repo_id:
            raise ConfigError(
                "demos.source=dataset needs demos.repo_id (a Hub id or, with demos.root, a local id)"
            )
        if self.bc.policy_type not in EXPERT_TYPES:
            raise ConfigError(
                f"bc.policy_type must be one of {', '.join(EXPERT_TYPES)}, got {self.bc.policy_type!r}"
            )
        for name, value in (
            ("demos.episodes_per_task", self.demos.episodes_per_task),
            ("generate.episodes_per_task", self.generate.episodes_per_task),
            ("generate.shards", self.generate.shards),
            ("vla.num_processes", self.vla.num_processes),
        ):
            if value < 1:
                raise ConfigError(f"{name} must be >= 1, got {value}")
        if self.bc.trainer not in BC_TRAINERS:
            raise ConfigError(f"bc.trainer must be one of {', '.join(BC_TRAINERS)}, got {self.bc.trainer!r}")
        if self.bc.strip_cameras and "--policy.use_images=false" not in self.bc.args:
            raise ConfigError(
                "bc.strip_cameras trains on demos without cameras: it needs a state expert "
                "(--policy.use_images=false in bc.args), or set bc.strip_cameras=false"
            )
        if self.vla.policy_type is not None and self.vla.policy_type not in VLA_TYPES:
            raise ConfigError(
                f"vla.policy_type must be one of {', '.join(VLA_TYPES)}, got {self.vla.policy_type!r}"
            )
        if self.vla.recipe is None and self.vla.policy_type is None:
            raise ConfigError("the VLA stage needs vla.recipe (a recipes/*.json file) or vla.policy_type")
        self.launcher.validate()
        self.suite_tasks()

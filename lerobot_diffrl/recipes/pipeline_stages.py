"""The commands each pipeline stage runs, and how each one continues after an interruption.

A stage is one or more jobs (one per expert group for BC, RL and generation). A job is the exact command line a
user could type, its output folder, what "finished" means for it, and the jobs whose artefacts it reads
(``needs``), so that independent jobs can run at once (:mod:`lerobot_diffrl.recipes.pipeline_schedule`). Paths are
fixed by the run folder and commands are built only when a job starts, so a job can be rebuilt at any time, and
what a command reads from an earlier job's artefact (per-task BC on a demo dataset reads its episode list) is
read once that job has finished.

Continuing an interrupted job uses each command's own resume: ``--resume=true`` for generation and RL (they keep
their staged episodes and checkpoints), ``lerobot-train --config_path=<last checkpoint>/train_config.json
--resume=true`` for training, and a plain re-run for the evaluation (it skips finished runs). A job that left
nothing resumable behind is started afresh.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lerobot_diffrl.data.provenance import read_provenance
from lerobot_diffrl.errors import ConfigError, DatasetError
from lerobot_diffrl.recipes.commands import console_script
from lerobot_diffrl.recipes.pipeline_config import PipelineConfig
from lerobot_diffrl.run_files import last_checkpoint_link, last_pretrained_model


@dataclass(frozen=True)
class Group:
    """The tasks one expert is trained on: one task (the paper's per-task experts) or one suite's tasks."""

    suite: str
    task_ids: tuple[int, ...]
    name: str


@dataclass
class Job:
    stage: str
    name: str  # e.g. "bc/libero_object"
    output: Path
    #: Builds the command for the current state of ``output`` (fresh or resumed); may clear leftovers.
    command: Callable[[], list[str]] | None = None
    #: In-process work instead of a command (building the tiny VLA backbone, merging).
    action: Callable[[], None] | None = None
    #: Figures for the summary, read from the job's artefact once it is finished.
    figures: Callable[[], dict] = field(default=lambda: {})
    #: Environment variables the command needs on top of the pipeline's (e.g. the small pi backbone's switch).
    env: dict[str, str] = field(default_factory=dict)
    #: Jobs (by name) or whole stages whose artefacts this job reads; one not in this run counts as finished (a
    #: stage run on its own checks the earlier stage's marker first).
    needs: tuple[str, ...] = ()
    #: Devices the command runs on with ``device=cuda`` (the VLA's ``accelerate`` processes); 0 for a CPU job.
    devices: int = 0


#: The in-process jobs other jobs name in their ``needs``.
SPLIT_JOB = "bc/demos_per_group"
MERGE_JOB = "generate/merge"


class RunLayout:
    """Where every artefact of a run lives."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def demos(self, suite: str) -> Path:
        return self.root / "demos" / suite

    def bc(self, group: Group) -> Path:
        return self.root / "bc" / group.name

    def rl(self, group: Group) -> Path:
        return self.root / "rl" / group.name

    @property
    def group_demos(self) -> Path:
        return self.root / "demos" / "per_group"

    def state_demos(self, group: Group) -> Path:
        """The camera-free copy of ``group``'s demos that a state expert trains on (``bc.strip_cameras``)."""
        return self.root / "demos" / "state" / group.name

    def generated(self, group: Group) -> Path:
        return self.root / "generated" / group.name

    @property
    def dataset(self) -> Path:
        return self.root / "dataset"

    @property
    def report(self) -> Path:
        return self.root / "report"

    @property
    def vla_backbone(self) -> Path:
        return self.root / "vla" / "backbone"

    @property
    def vla_train(self) -> Path:
        return self.root / "vla" / "train"

    def eval(self, suite: str) -> Path:
        return self.root / "eval" / suite

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def log(self, job_name: str) -> Path:
        """Where the output of job ``job_name`` (``<stage>/<group>``) goes."""
        return self.logs / f"{job_name.replace('/', '-')}.log"

    @property
    def markers(self) -> Path:
        return self.root / "stages"


def expert_groups(cfg: PipelineConfig) -> list[Group]:
    groups = []
    for suite, ids in cfg.suite_tasks().items():
        if cfg.bc.per_task:
            groups.extend(Group(suite, (t,), f"{suite}_task{t:02d}") for t in ids)
        else:
            groups.append(Group(suite, tuple(ids), suite))
    return groups


def resolve_file(path: str, what: str) -> Path:
    """A recipe file given relative to the working folder or to this repository's checkout."""
    candidates = [Path(path).expanduser()]
    if not candidates[0].is_absolute():
        candidates.append(Path(__file__).resolve().parents[2] / path)
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    raise ConfigError(f"{what} not found: {path}")


def _devices(cfg: PipelineConfig, count: int = 1) -> int:
    """How many GPUs' worth a job of a model-running stage takes (none on CPU)."""
    return count if cfg.device.startswith("cuda") else 0


def _ids(task_ids: tuple[int, ...] | list[int]) -> str:
    return ",".join(str(t) for t in task_ids)


def _fresh(output: Path) -> None:
    """Remove what an interrupted job left when nothing of it can be resumed."""
    if output.exists():
        shutil.rmtree(output)


def _generation_leftovers(output: Path) -> bool:
    from lerobot_diffrl.data.generation import work_dir

    return output.exists() or work_dir(output).exists()


def _provenance_figures(root: Path) -> dict:
    info = json.loads((root / "meta" / "info.json").read_text())
    figures = {"episodes": info["total_episodes"], "frames": info["total_frames"], "path": str(root)}
    provenance = read_provenance(root)
    if provenance is not None:
        per_task = provenance.get("per_task", {})
        attempts = sum(int(v.get("attempts", 0)) for v in per_task.values())
        successes = sum(int(v.get("successes", 0)) for v in per_task.values())
        if attempts:
            figures.update(attempts=attempts, success_rate=round(successes / attempts, 4))
    return figures


def _last_loss(log: Path) -> float | None:
    """The last ``loss:`` value lerobot-train logged (its log line format: ``... loss:0.123 ...``)."""
    if not log.is_file():
        return None
    found = None
    for line in log.read_text(errors="replace").splitlines():
        if " loss:" in line:
            try:
                found = float(line.split(" loss:", 1)[1].split()[0])
            except ValueError:
                continue
    return found


def _training_figures(train_dir: Path, log: Path) -> dict:
    return {"checkpoint": str(last_pretrained_model(train_dir)), "final_loss": _last_loss(log)}


def _lerobot_train_command(
    output: Path, fresh_args: list[str], launcher: list[str] | None = None
) -> list[str]:
    """``lerobot-train`` (or the VLA launcher), resumed from the last checkpoint when one exists."""
    config = last_pretrained_model(output) / "train_config.json"
    prefix = launcher or [console_script("lerobot-train")]
    if config.is_file():
        return [*prefix, f"--config_path={config}", "--resume=true"]
    _fresh(output)
    return [*prefix, *fresh_args]


def demo_jobs(cfg: PipelineConfig, layout: RunLayout) -> list[Job]:
    if cfg.demos.source == "dataset":  # nothing to make: check now that every group will find its demos
        repo_id, root = _demo_dataset(cfg, layout, next(iter(cfg.suite_tasks())))

        def figures() -> dict:
            from lerobot.datasets.lerobot_dataset import LeRobotDatasetMetadata

            meta = LeRobotDatasetMetadata(repo_id, root=root)
            return {"episodes": meta.total_episodes, "frames": meta.total_frames, "path": repo_id}

        return [
            Job(
                "demos",
                "demos/dataset",
                layout.markers,
                action=lambda: episodes_per_group(cfg, layout),
                figures=figures,
            )
        ]
    jobs = []
    for suite, ids in cfg.suite_tasks().items():
        out = layout.demos(suite)

        def command(suite: str = suite, ids: list[int] = ids, out: Path = out) -> list[str]:
            cmd = [
                console_script("lerobot-diffrl-generate"),
                "--actor.type=scripted",
                f"--suite={suite}",
                f"--task_ids={_ids(ids)}",
                f"--episodes_per_task={cfg.demos.episodes_per_task}",
                f"--seed={cfg.seed}",
                f"--output_dir={out}",
                f"--repo_id=local/{cfg.name}_demos_{suite}",
                *cfg.demos.args,
            ]
            return [*cmd, "--resume=true"] if _generation_leftovers(out) else cmd

        jobs.append(
            Job("demos", f"demos/{suite}", out, command=command, figures=lambda o=out: _provenance_figures(o))
        )
    return jobs


def _needs_split(cfg: PipelineConfig) -> bool:
    """Whether each expert group trains on a part of the demo dataset rather than all of it."""
    return cfg.demos.source == "dataset" or cfg.bc.per_task


def _group_demos(cfg: PipelineConfig, layout: RunLayout, group: Group) -> tuple[str, Path | None]:
    """The demo dataset (repo id, local root) group ``group``'s expert is trained on."""
    if _needs_split(cfg):
        return f"local/{cfg.name}_demos_{group.name}", layout.group_demos / group.name
    return f"local/{cfg.name}_demos_{group.suite}", layout.demos(group.suite)


def _demo_dataset(cfg: PipelineConfig, layout: RunLayout, suite: str) -> tuple[str, Path | None]:
    if cfg.demos.source == "dataset":
        return cfg.demos.repo_id or "", Path(cfg.demos.root) if cfg.demos.root else None
    return f"local/{cfg.name}_demos_{suite}", layout.demos(suite)


def episodes_per_group(cfg: PipelineConfig, layout: RunLayout) -> dict[str, list[int]]:
    """Episode indices of each expert group's tasks in its suite's demo dataset (one metadata read per suite)."""
    from lerobot.datasets.lerobot_dataset import LeRobotDatasetMetadata

    from lerobot_diffrl.envs.suites import task_spec

    found: dict[str, list[int]] = {}
    for suite in cfg.suite_tasks():
        repo_id, root = _demo_dataset(cfg, layout, suite)
        try:
            meta = LeRobotDatasetMetadata(repo_id, root=root)
        except Exception as err:  # noqa: BLE001  (Hub, network and format errors all mean "cannot read it")
            raise DatasetError(
                f"cannot read the demo dataset {repo_id}: {str(err).splitlines()[0][:300]}"
            ) from None
        episode_tasks = list(zip(meta.episodes["episode_index"], meta.episodes["tasks"], strict=True))
        for group in (g for g in expert_groups(cfg) if g.suite == suite):
            wanted = {task_spec(suite, t).language for t in group.task_ids}
            found[group.name] = [int(i) for i, tasks in episode_tasks if wanted & set(tasks)]
            if not found[group.name]:
                raise DatasetError(
                    f"the demo dataset {repo_id} has no episode of: {'; '.join(sorted(wanted))}"
                )
    return found


def split_job(cfg: PipelineConfig, layout: RunLayout) -> Job:
    """One demo dataset per expert group, cut out of the demos with lerobot's ``split_dataset``.

    Why not ``lerobot-train --dataset.episodes=[...]`` (which works since lerobot 0.6 for any selection): with it
    the expert would normalise with the whole dataset's statistics and embed every task of the dataset, while a
    per-task expert should see its own task's action and state ranges and only its own task. A real per-group
    dataset carries its own ``meta/stats.json`` and task list, and is what a user can inspect.
    """

    def split() -> None:
        from lerobot.datasets.dataset_tools import split_dataset
        from lerobot.datasets.lerobot_dataset import LeRobotDataset

        tmp = layout.group_demos.with_name(layout.group_demos.name + ".tmp")
        _fresh(tmp)
        episodes = episodes_per_group(cfg, layout)
        for suite in cfg.suite_tasks():
            splits = {g.name: episodes[g.name] for g in expert_groups(cfg) if g.suite == suite}
            split_dataset(LeRobotDataset(*_demo_dataset(cfg, layout, suite)), splits, output_dir=tmp)
        _fresh(layout.group_demos)
        tmp.rename(layout.group_demos)

    def figures() -> dict:
        out = {}
        for group in expert_groups(cfg):
            info = json.loads((layout.group_demos / group.name / "meta" / "info.json").read_text())
            out[group.name] = {"episodes": info["total_episodes"], "frames": info["total_frames"]}
        return out

    return Job("bc", SPLIT_JOB, layout.group_demos, action=split, figures=figures, needs=("demos",))


def _demos_job(cfg: PipelineConfig, group: Group) -> str:
    """The job whose dataset ``group``'s BC (or its camera-free copy) reads."""
    return SPLIT_JOB if _needs_split(cfg) else f"demos/{group.suite}"


def strip_cameras_job(cfg: PipelineConfig, layout: RunLayout, group: Group) -> Job:
    """``lerobot-edit-dataset`` writing the camera-free copy of ``group``'s demos (a half-written copy of a killed
    run is removed first: the command has no resume)."""
    from lerobot_diffrl.recipes.state_expert import strip_cameras_command

    out = layout.state_demos(group)

    def command() -> list[str]:
        repo_id, root = _group_demos(cfg, layout, group)
        _fresh(out)
        cmd = strip_cameras_command(root, repo_id, out, f"local/{cfg.name}_state_demos_{group.name}")
        return [console_script(cmd[0]), *cmd[1:]]

    return Job("bc", _strip_job(group), out, command=command, needs=(_demos_job(cfg, group),))


def _strip_job(group: Group) -> str:
    return f"bc/state_demos_{group.name}"


def _bc_demos(cfg: PipelineConfig, layout: RunLayout, group: Group) -> tuple[str, Path | None]:
    """The dataset ``group``'s BC reads: its demos, or their camera-free copy with ``bc.strip_cameras``."""
    if cfg.bc.strip_cameras:
        return f"local/{cfg.name}_state_demos_{group.name}", layout.state_demos(group)
    return _group_demos(cfg, layout, group)


def bc_jobs(cfg: PipelineConfig, layout: RunLayout) -> list[Job]:
    jobs = [split_job(cfg, layout)] if _needs_split(cfg) else []
    for group in expert_groups(cfg):
        out, name = layout.bc(group), f"bc/{group.name}"
        if cfg.bc.strip_cameras:
            jobs.append(strip_cameras_job(cfg, layout, group))

        def command(group: Group = group, out: Path = out) -> list[str]:
            repo_id, root = _bc_demos(cfg, layout, group)
            args = [
                f"--policy.type={cfg.bc.policy_type}",
                f"--dataset.repo_id={repo_id}",
                f"--dataset.root={root}",
                f"--output_dir={out}",
                f"--job_name={cfg.name}_bc_{group.name}",
                f"--policy.device={cfg.device}",
                "--policy.push_to_hub=false",
                "--wandb.enable=false",
                "--env_eval_freq=0",
                f"--seed={cfg.seed}",
            ]
            if cfg.bc.trainer != "lerobot-train":  # the in-memory trainer has no resume: start afresh
                _fresh(out)
                return [console_script(cfg.bc.trainer), *args, *cfg.bc.args]
            return _lerobot_train_command(out, [*args, *cfg.bc.args])

        jobs.append(
            Job(
                "bc",
                name,
                out,
                command=command,
                figures=lambda o=out, n=name: _training_figures(o, layout.log(n)),
                needs=(_strip_job(group) if cfg.bc.strip_cameras else _demos_job(cfg, group),),
                devices=_devices(cfg),
            )
        )
    return jobs


def rl_jobs(cfg: PipelineConfig, layout: RunLayout) -> list[Job]:
    jobs = []
    for group in expert_groups(cfg):
        out = layout.rl(group)

        def command(group: Group = group, out: Path = out) -> list[str]:
            cmd = [
                console_script("lerobot-diffrl-rl"),
                f"--policy_path={last_pretrained_model(layout.bc(group))}",
                f"--output_dir={out}",
                f"--env.suites={group.suite}",
                f"--env.tasks={_ids(group.task_ids)}",
                f"--seed={cfg.seed}",
                f"--device={cfg.device}",
                *cfg.rl.args,
            ]
            if last_checkpoint_link(out).exists():
                return [*cmd, "--resume=true"]
            _fresh(out)
            return cmd

        def figures(out: Path = out) -> dict:
            summary = json.loads((out / "summary.json").read_text())
            keys = ("iterations", "env_steps", "success_before", "success_after", "ci95_after", "checkpoint")
            return {k: summary.get(k) for k in keys}

        jobs.append(
            Job(
                "rl",
                f"rl/{group.name}",
                out,
                command=command,
                figures=figures,
                needs=(f"bc/{group.name}",),
                devices=_devices(cfg),
            )
        )
    return jobs


def generation_outputs(cfg: PipelineConfig, layout: RunLayout, group: Group) -> list[Path]:
    """The datasets ``group``'s generation writes: one, or one per shard (``generate.shards``)."""
    from lerobot_diffrl.data.sharding import ShardSpec

    if cfg.generate.shards == 1:
        return [layout.generated(group)]
    count = cfg.generate.shards
    return [layout.generated(group) / ShardSpec(k, count).name for k in range(count)]


def _generate_command(
    cfg: PipelineConfig, layout: RunLayout, group: Group, shard: int, out: Path
) -> list[str]:
    cmd = [
        console_script("lerobot-diffrl-generate"),
        f"--actor.type={cfg.bc.policy_type}",
        f"--actor.path={last_pretrained_model(layout.rl(group))}",
        f"--actor.device={cfg.device}",
        f"--suite={group.suite}",
        f"--task_ids={_ids(group.task_ids)}",
        f"--episodes_per_task={cfg.generate.episodes_per_task}",
        f"--seed={cfg.seed}",
        f"--output_dir={out}",
        f"--repo_id=local/{cfg.name}_{group.name}",
        *cfg.generate.args,
    ]
    if cfg.generate.shards > 1:
        cmd += [f"--shard_index={shard}", f"--num_shards={cfg.generate.shards}"]
    return [*cmd, "--resume=true"] if _generation_leftovers(out) else cmd


def generate_jobs(cfg: PipelineConfig, layout: RunLayout) -> list[Job]:
    """One generation job per expert group and shard, then one merge of them all into the run's dataset."""
    jobs = []
    for group in expert_groups(cfg):
        outputs = generation_outputs(cfg, layout, group)
        for shard, out in enumerate(outputs):
            name = f"generate/{group.name}" + (f"/{out.name}" if len(outputs) > 1 else "")
            jobs.append(
                Job(
                    "generate",
                    name,
                    out,
                    command=lambda g=group, k=shard, o=out: _generate_command(cfg, layout, g, k, o),
                    needs=(f"rl/{group.name}",),
                    devices=_devices(cfg),
                )
            )
    inputs = [out for group in expert_groups(cfg) for out in generation_outputs(cfg, layout, group)]

    def merge() -> None:
        from lerobot_diffrl.data.merge import merge_datasets

        _fresh(layout.dataset)
        merge_datasets(inputs, layout.dataset, repo_id=f"local/{cfg.name}")

    jobs.append(
        Job(
            "generate",
            MERGE_JOB,
            layout.dataset,
            action=merge,
            figures=lambda: _provenance_figures(layout.dataset),
            needs=tuple(job.name for job in jobs),
        )
    )
    return jobs


def report_jobs(cfg: PipelineConfig, layout: RunLayout) -> list[Job]:
    datasets = [str(layout.dataset)]
    labels = [f"{cfg.bc.policy_type} (generated)"]
    if cfg.report.compare_with_demos and cfg.demos.source == "scripted":
        for suite in cfg.suite_tasks():
            datasets.append(str(layout.demos(suite)))
            labels.append(f"scripted demos ({suite})")
    elif cfg.report.compare_with_demos:
        datasets.append(cfg.demos.root or cfg.demos.repo_id or "")
        labels.append("warm-start demos")

    def command() -> list[str]:
        return [
            console_script("lerobot-diffrl-report"),
            f"--datasets=[{','.join(datasets)}]",
            f"--labels=[{','.join(labels)}]",
            f"--output_dir={layout.report}",
            "--update_card=true",
            *cfg.report.args,
        ]

    def figures() -> dict:
        report = json.loads((layout.report / "report.json").read_text())
        keys = (
            "n_episodes",
            "success_rate",
            "jerk",
            "sparc",
            "ldlj",
            "abs_delta_action",
            "path_length_var",
            "action_var",
        )
        return {d["label"]: {k: d["overall"].get(k) for k in keys} for d in report["datasets"]}

    needs = (MERGE_JOB, "demos") if cfg.report.compare_with_demos else (MERGE_JOB,)
    return [Job("report", "report", layout.report, command=command, figures=figures, needs=needs)]


def vla_policy_type(cfg: PipelineConfig) -> str:
    """The VLA stage's policy type: ``vla.policy_type``, else the recipe's ``policy.type`` (they must agree)."""
    from lerobot_diffrl.recipes.pipeline_config import VLA_TYPES

    recipe_type = None
    if cfg.vla.recipe is not None:
        recipe = resolve_file(cfg.vla.recipe, "VLA recipe (vla.recipe)")
        try:
            recipe_type = (json.loads(recipe.read_text()).get("policy") or {}).get("type")
        except (OSError, json.JSONDecodeError) as err:
            raise ConfigError(f"cannot read the VLA recipe {recipe}: {err}") from err
    chosen = cfg.vla.policy_type or recipe_type
    if cfg.vla.policy_type and recipe_type and cfg.vla.policy_type != recipe_type:
        raise ConfigError(
            f"vla.policy_type={cfg.vla.policy_type!r} but the recipe {cfg.vla.recipe} trains {recipe_type!r}"
        )
    if chosen not in VLA_TYPES:
        raise ConfigError(f"the VLA stage trains one of {', '.join(VLA_TYPES)}; got {chosen!r}")
    return chosen


def vla_env(cfg: PipelineConfig) -> dict[str, str]:
    """Environment of the VLA's training and evaluation: a tiny pi0/pi05 needs the small-backbone hook."""
    from lerobot_diffrl.recipes.pi_backbone import ENV_VAR

    if cfg.vla.tiny_backbone and vla_policy_type(cfg) in ("pi0", "pi05"):
        return {ENV_VAR: "1"}
    return {}


def _tiny_vla(
    cfg: PipelineConfig, layout: RunLayout, policy_type: str
) -> tuple[Callable[[], None], list[str]]:
    """The in-process builder of the tiny base model for ``policy_type`` and the train arguments that use it."""
    from lerobot_diffrl.recipes import tiny_vla

    backbone = layout.vla_backbone
    repo_id = f"local/{cfg.name}"
    vlm = backbone / "smolvlm"
    base = backbone / f"{policy_type}_base"

    def build() -> None:
        from lerobot.datasets.lerobot_dataset import LeRobotDatasetMetadata

        _fresh(backbone)  # rebuilt whole unless its job finished (the base names the VLM folder by path)
        meta = LeRobotDatasetMetadata(repo_id, root=layout.dataset)
        words = sorted({w for task in meta.tasks.index for w in str(task).split()})
        if policy_type in ("pi0", "pi05"):
            tiny_vla.build_tiny_pi_base(base, policy_type, layout.dataset, repo_id=repo_id, words=words)
            return
        tiny_vla.build_tiny_smolvlm(vlm, words=words)
        if policy_type == "smolvla":
            tiny_vla.build_tiny_smolvla_base(base, vlm, layout.dataset, repo_id=repo_id)

    if policy_type in ("pi0", "pi05"):
        overrides = [f"--policy.pretrained_path={base}", *tiny_vla.tiny_pi_overrides(policy_type)]
    elif policy_type == "smolvla":
        overrides = [f"--policy.pretrained_path={base}", *tiny_vla.tiny_smolvla_overrides(vlm)]
    else:
        overrides = [f"--policy.vlm_path={vlm}"]
    return build, [a for a in overrides if not a.startswith("--policy.device")]


def vla_jobs(cfg: PipelineConfig, layout: RunLayout) -> list[Job]:
    policy_type = vla_policy_type(cfg)
    accelerate = resolve_file(cfg.vla.accelerate_config, "accelerate config (vla.accelerate_config)")
    env = vla_env(cfg)
    jobs = []
    tiny_args: list[str] = []
    if cfg.vla.tiny_backbone:
        build_backbone, tiny_args = _tiny_vla(cfg, layout, policy_type)
        jobs.append(
            Job("vla", "vla/backbone", layout.vla_backbone, action=build_backbone, needs=(MERGE_JOB,))
        )
    if cfg.vla.recipe is not None:
        policy_args = [f"--config_path={resolve_file(cfg.vla.recipe, 'VLA recipe (vla.recipe)')}"]
    else:
        policy_args = [f"--policy.type={policy_type}", "--policy.push_to_hub=false"]
    out = layout.vla_train

    def command() -> list[str]:
        launcher = [
            console_script("lerobot-diffrl-train-vla"),
            f"--accelerate_config={accelerate}",
            f"--num_processes={cfg.vla.num_processes}",
        ]
        args = [
            *policy_args,
            f"--dataset.repo_id=local/{cfg.name}",
            f"--dataset.root={layout.dataset}",
            f"--output_dir={out}",
            f"--job_name={cfg.name}_vla",
            f"--seed={cfg.seed}",
            f"--policy.device={cfg.device}",
            *tiny_args,
        ]
        return _lerobot_train_command(out, [*args, *cfg.vla.args], launcher=launcher)

    jobs.append(
        Job(
            "vla",
            "vla/train",
            out,
            command=command,
            figures=lambda: _training_figures(out, layout.log("vla/train")),
            env=env,
            needs=tuple(job.name for job in jobs) or (MERGE_JOB,),
            devices=_devices(cfg, cfg.vla.num_processes),
        )
    )
    return jobs


def eval_jobs(cfg: PipelineConfig, layout: RunLayout) -> list[Job]:
    suites = cfg.suite_tasks()
    env = vla_env(cfg)
    jobs = []
    for suite, ids in suites.items():
        out = layout.eval(suite)

        def command(suite: str = suite, ids: list[int] = ids, out: Path = out) -> list[str]:
            return [
                console_script("lerobot-diffrl-eval"),
                f"--policy.path={last_pretrained_model(layout.vla_train)}",
                f"--policy.device={cfg.device}",
                f"--suites={suite}",
                f"--protocol.task_ids=[{_ids(ids)}]",
                f"--output_dir={out}",
                f"--update_card={'true' if len(suites) == 1 else 'false'}",
                *cfg.eval.args,
            ]

        def figures(out: Path = out) -> dict:
            overall = json.loads((out / "results.json").read_text())["overall"]
            return {k: overall.get(k) for k in ("tasks", "episodes", "successes", "success_rate", "ci95")}

        jobs.append(
            Job(
                "eval",
                f"eval/{suite}",
                out,
                command=command,
                figures=figures,
                env=env,
                needs=("vla/train",),
                devices=_devices(cfg),
            )
        )
    return jobs


STAGE_JOBS: dict[str, Callable[[PipelineConfig, RunLayout], list[Job]]] = {
    "demos": demo_jobs,
    "bc": bc_jobs,
    "rl": rl_jobs,
    "generate": generate_jobs,
    "report": report_jobs,
    "vla": vla_jobs,
    "eval": eval_jobs,
}

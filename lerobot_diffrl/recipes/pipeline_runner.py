"""Run a pipeline recipe: every job on the recipe's launcher, skipping what is finished and resuming what is not.

Why a marker per job: an artefact folder can exist half-made (a killed training run has a ``checkpoints/last`` from
an earlier save, a killed generation has its staged episodes). A job counts as finished only once its command
exited 0 and the runner wrote ``stages/<stage>/<job>.json`` (command, seconds, figures) next to it. Anything else
is resumed with the command's own resume (see :mod:`lerobot_diffrl.recipes.pipeline_stages`).

Why the recipe is stored: skipping a finished stage is right only if the recipe that made it is the one being run.
The first run writes ``recipe.json``; a later run in the same folder with a recipe that differs (beyond which
stages to run) is refused before anything runs.

Which job runs when is :mod:`lerobot_diffrl.recipes.pipeline_schedule`'s (a job starts once the jobs it reads
from have finished), where it runs the launcher's (:mod:`lerobot_diffrl.recipes.launchers`). The launcher is
stored in ``recipe.json`` but is not part of the recipe: a run started on one machine can be continued on a
cluster. Each command's output goes to ``logs/<stage>-<job>.log``; the console shows one progress bar over the
jobs, with each stage's finished, running and failed jobs. A failed command is one error naming the stage, its
exit status, its last error line and its log, and the run can be started again as it was.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from typing import Any

from tqdm import tqdm

from lerobot_diffrl.errors import ConfigError
from lerobot_diffrl.recipes.launchers import make_launcher
from lerobot_diffrl.recipes.pipeline_config import STAGES, PipelineConfig
from lerobot_diffrl.recipes.pipeline_schedule import Scheduler, StageFailed, write_json
from lerobot_diffrl.recipes.pipeline_stages import STAGE_JOBS, Job, RunLayout

RECIPE_FILE = "recipe.json"
SUMMARY_JSON = "summary.json"
SUMMARY_MD = "summary.md"
#: Recipe fields that do not change what a stage makes.
NOT_IDENTITY = ("stages", "output_dir", "launcher")
__all__ = ["StageFailed", "run_pipeline", "check_recipe", "recipe_identity"]


def recipe_identity(cfg: PipelineConfig) -> dict[str, Any]:
    data = asdict(cfg)
    for key in NOT_IDENTITY:
        data.pop(key, None)
    return data


def _differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    keys = sorted(set(old) | set(new))
    out = []
    for key in keys:
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}")
    return out


def check_recipe(layout: RunLayout, cfg: PipelineConfig) -> None:
    """Store the recipe in a new run folder; refuse a run folder made by another recipe."""
    path = layout.root / RECIPE_FILE
    identity = recipe_identity(cfg)
    if path.is_file():
        stored = json.loads(path.read_text())
        stored = {k: v for k, v in stored.items() if k not in NOT_IDENTITY}
        started_by = (json.loads(path.read_text()).get("launcher") or {}).get("type", "serial")
        diffs = _differences(stored, json.loads(json.dumps(identity, default=str)))
        if diffs:
            raise ConfigError(
                f"{layout.root} holds a run of another recipe, started by the {started_by} launcher (it differs "
                f"in {', '.join(diffs[:6])}): use another --output_dir (or --name), or delete that folder to "
                "start over"
            )
    elif layout.root.exists() and any(layout.root.iterdir()):
        raise ConfigError(
            f"{layout.root} exists and is not a pipeline run folder: choose another --output_dir"
        )
    else:
        write_json(path, {**identity, "stages": list(cfg.stages), "launcher": asdict(cfg.launcher)})


def check_prerequisites(layout: RunLayout, cfg: PipelineConfig, jobs: list[Job]) -> None:
    """A stage run on its own needs the artefacts of the earlier stages its jobs read, from a previous run of
    this folder (their stage markers)."""
    for job in jobs:
        for need in job.needs:
            needed = need.split("/", 1)[0]
            if needed in cfg.stages or (needed == "demos" and cfg.demos.source == "dataset"):
                continue
            if not (layout.markers / f"{needed}.json").is_file():
                raise ConfigError(
                    f"stage {job.stage!r} needs the artefact of stage {needed!r}, which this run folder does not "
                    f"have: add {needed!r} to --stages (finished stages are skipped)"
                )


def run_pipeline(cfg: PipelineConfig) -> dict[str, Any]:
    """Run the recipe's jobs on its launcher; returns the summary that is also written to the run folder."""
    cfg.validate()
    layout = RunLayout(cfg.run_dir())
    jobs = [job for stage in STAGES if stage in cfg.stages for job in STAGE_JOBS[stage](cfg, layout)]
    check_prerequisites(layout, cfg, jobs)
    launcher = make_launcher(cfg)  # before the recipe is stored: a launcher that cannot start leaves nothing
    try:
        launcher.check(jobs)
        check_recipe(layout, cfg)
        started = time.perf_counter()
        tqdm.write(launcher.describe())
        with tqdm(total=len(jobs), desc="pipeline", unit="job") as bar:
            records = Scheduler(jobs, launcher, layout, cfg).run(bar)
    finally:
        launcher.shutdown()
    summary = {
        "name": cfg.name,
        "run_dir": str(layout.root),
        "seconds": round(time.perf_counter() - started, 1),
        "launcher": cfg.launcher.type,
        "stages": _stage_summaries(jobs, records),
    }
    write_json(layout.root / SUMMARY_JSON, summary)
    (layout.root / SUMMARY_MD).write_text(summary_markdown(summary))
    return summary


def _stage_summaries(jobs: list[Job], records: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per stage, in pipeline order: ran or skipped, its wall time this run (first start to last end), its jobs."""
    stages: dict[str, Any] = {}
    for job in jobs:
        stages.setdefault(job.stage, []).append(records[job.name])
    out = {}
    for stage, recs in stages.items():
        ran = [r for r in recs if r["status"] == "ran"]
        seconds = max(r["finished_at"] for r in ran) - min(r["started_at"] for r in ran) if ran else 0.0
        status = "ran" if ran else "skipped"
        out[stage] = {"status": status, "seconds": round(seconds, 1), "jobs": recs}
    return out


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return str(value)


def headline(summary: dict[str, Any]) -> list[str]:
    """What the run shows about the method, in three sentences: expert success before and after RL, and the
    generated data's smoothness against the demos' (from the RL and report jobs' figures)."""
    jobs = {j["job"]: j.get("figures") or {} for e in summary["stages"].values() for j in e["jobs"]}
    lines = []
    for name, fig in jobs.items():
        if name.startswith("rl/") and fig.get("success_before") is not None:
            lines.append(
                f"- Expert `{name[3:]}`: success {_pct(fig['success_before'])} after BC, "
                f"{_pct(fig.get('success_after'))} after RL ({fig.get('env_steps')} env steps)."
            )
    report = jobs.get("report") or {}
    sets = [v for v in report.values() if isinstance(v, dict)]
    if len(sets) >= 2 and sets[0].get("jerk") and sets[1].get("jerk"):
        lines.append(
            f"- Generated data: mean squared jerk {_fmt(sets[0]['jerk'])} against {_fmt(sets[1]['jerk'])} for the "
            f"demos ({sets[0]['jerk'] / sets[1]['jerk']:.2f}x); SPARC {_fmt(sets[0].get('sparc'))} against "
            f"{_fmt(sets[1].get('sparc'))} (closer to 0 is smoother)."
        )
    return [*lines, ""] if lines else []


def _pct(value: Any) -> str:
    return f"{100 * value:.0f}%" if isinstance(value, int | float) else "n/a"


def summary_markdown(summary: dict[str, Any]) -> str:
    """One table row per job: stage, job, ran/skipped, seconds, its key figures; then how to re-run a job."""
    lines = [
        f"# Pipeline run `{summary['name']}`",
        "",
        f"Run folder: `{summary['run_dir']}`; {summary['seconds']:.0f} s this time.",
        "",
        *headline(summary),
        "| stage | job | status | seconds | figures |",
        "|---|---|---|---:|---|",
    ]
    commands = []
    for stage, entry in summary["stages"].items():
        for job in entry["jobs"]:
            figures = job.get("figures") or {}
            parts = []
            for key, value in figures.items():
                if isinstance(value, dict):  # the report: one entry per dataset
                    inner = ", ".join(f"{k} {_fmt(v)}" for k, v in value.items() if v is not None)
                    parts.append(f"**{key}**: {inner}")
                elif value is not None and key not in ("path", "checkpoint"):
                    parts.append(f"{key} {_fmt(value)}")
            lines.append(
                f"| {stage} | {job['job']} | {job['status']} | {job['seconds']} | {'; '.join(parts) or '-'} |"
            )
            if job.get("command"):
                commands.append(f"{job['command']}")
    lines += ["", "Commands (each can be run on its own):", "", "```bash", *commands, "```", ""]
    return "\n".join(lines)

"""Run a pipeline recipe: stage by stage, job by job, skipping what is finished and resuming what is not.

Why a marker per job: an artefact folder can exist half-made (a killed training run has a ``checkpoints/last`` from
an earlier save, a killed generation has its staged episodes). A job counts as finished only once its command
exited 0 and the runner wrote ``stages/<stage>/<job>.json`` (command, seconds, figures) next to it. Anything else
is resumed with the command's own resume (see :mod:`lerobot_diffrl.recipes.pipeline_stages`).

Why the recipe is stored: skipping a finished stage is right only if the recipe that made it is the one being run.
The first run writes ``recipe.json``; a later run in the same folder with a recipe that differs (beyond which
stages to run) is refused before anything runs.

Each command's output goes to ``logs/<stage>-<job>.log``; the console shows one progress bar over the stages with
the command's latest line. A failed command is one error naming the stage, its exit status, its last error line
and its log, and the run can be started again as it was.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tqdm import tqdm

from lerobot_diffrl.data.staging import write_json_atomic
from lerobot_diffrl.errors import ConfigError, DiffRLError
from lerobot_diffrl.recipes.pipeline_config import STAGES, PipelineConfig
from lerobot_diffrl.recipes.pipeline_stages import STAGE_JOBS, Job, RunLayout
from lerobot_diffrl.signals import Terminated

RECIPE_FILE = "recipe.json"
SUMMARY_JSON = "summary.json"
SUMMARY_MD = "summary.md"
#: The stage whose artefact each stage consumes.
REQUIRES = {
    "bc": "demos",
    "rl": "bc",
    "generate": "rl",
    "report": "generate",
    "vla": "generate",
    "eval": "vla",
}
#: Recipe fields that do not change what a stage makes.
NOT_IDENTITY = ("stages", "output_dir")


class StageFailed(DiffRLError):
    """A stage's command exited non-zero."""


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Markers, recipe and summary: atomic (a killed run never leaves a torn marker), keys in pipeline order."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, data, sort_keys=False)


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
        diffs = _differences(stored, json.loads(json.dumps(identity, default=str)))
        if diffs:
            raise ConfigError(
                f"{layout.root} holds a run of another recipe (it differs in {', '.join(diffs[:6])}): use another "
                "--output_dir (or --name), or delete that folder to start over"
            )
    elif layout.root.exists() and any(layout.root.iterdir()):
        raise ConfigError(
            f"{layout.root} exists and is not a pipeline run folder: choose another --output_dir"
        )
    else:
        _write_json(path, {**identity, "stages": list(cfg.stages)})


def check_prerequisites(layout: RunLayout, cfg: PipelineConfig) -> None:
    """A stage run on its own needs the earlier stage's artefact from a previous run of this folder."""
    for stage in cfg.stages:
        needed = REQUIRES.get(stage)
        if needed is None or needed in cfg.stages:
            continue
        if needed == "demos" and cfg.demos.source == "dataset":
            continue
        if not (layout.markers / f"{needed}.json").is_file():
            raise ConfigError(
                f"stage {stage!r} needs the artefact of stage {needed!r}, which this run folder does not have: "
                f"add {needed!r} to --stages (finished stages are skipped)"
            )


def marker_path(layout: RunLayout, job: Job) -> Path:
    """``stages/<stage>/<job>.json`` (``stages/<stage>.json`` is the stage's own marker)."""
    return layout.markers / job.stage / f"{job.name.split('/', 1)[-1]}.json"


_LINE_SPLIT = re.compile(r"[\r\n]+")


def _last_error(log: Path) -> str:
    lines = [ln.strip() for ln in _LINE_SPLIT.split(log.read_text(errors="replace")) if ln.strip()]
    for line in reversed(lines):
        if line.startswith("error:") or "Error" in line.split(":", 1)[0]:
            return line[:400]
    return lines[-1][:400] if lines else "(no output)"


def run_command(argv: list[str], log: Path, bar: tqdm, env: dict[str, str]) -> int:
    """Run ``argv`` with its output appended to ``log``; its latest line becomes the progress bar's postfix."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as fh:
        fh.write(f"\n$ {shlex.join(argv)}\n".encode())
        fh.flush()
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        assert proc.stdout is not None
        try:
            pending = b""
            while chunk := proc.stdout.read1(65536):
                fh.write(chunk)
                fh.flush()
                pending = (pending + chunk)[-2000:]
                lines = [ln for ln in _LINE_SPLIT.split(pending.decode(errors="replace")) if ln.strip()]
                if lines:
                    bar.set_postfix_str(lines[-1].strip()[-70:], refresh=True)
            return proc.wait()
        except KeyboardInterrupt as stop:
            # Ctrl-C reached the command too (one process group); a SIGTERM sent to the pipeline alone is
            # forwarded, so the command saves and stops as it would on its own preemption.
            if isinstance(stop, Terminated) and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
            raise


def _child_env(cfg: PipelineConfig) -> dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if cfg.libero_assets:
        env["LEROBOT_DIFFRL_LIBERO_ASSETS"] = str(Path(cfg.libero_assets).expanduser().resolve())
    return env


def run_job(job: Job, layout: RunLayout, cfg: PipelineConfig, bar: tqdm) -> dict[str, Any]:
    marker = marker_path(layout, job)
    if marker.is_file() and job.output.exists():
        record = json.loads(marker.read_text())
        return {**record, "status": "skipped"}
    started = time.perf_counter()
    command: list[str] | None = None
    bar.set_postfix_str(job.name, refresh=True)
    if job.command is not None:
        command = job.command()
        log = layout.log(job.name)
        tqdm.write(f"[{job.name}] {shlex.join(command)}\n    log: {log}")
        code = run_command(command, log, bar, {**_child_env(cfg), **job.env})
        if code != 0:
            raise StageFailed(
                f"stage {job.stage} ({job.name}) failed with exit status {code}: {_last_error(log)} "
                f"(log: {log}). Fix it and run the pipeline again: finished jobs are skipped, this one resumes."
            )
    elif job.action is not None:
        tqdm.write(f"[{job.name}]")
        job.action()
    record = {
        "job": job.name,
        "stage": job.stage,
        "output": str(job.output),
        "command": shlex.join(command) if command else None,
        "seconds": round(time.perf_counter() - started, 1),
        "figures": job.figures(),
    }
    _write_json(marker, record)
    return {**record, "status": "ran"}


def run_pipeline(cfg: PipelineConfig) -> dict[str, Any]:
    """Run the recipe's stages; returns the summary that is also written to the run folder."""
    cfg.validate()
    layout = RunLayout(cfg.run_dir())
    check_prerequisites(layout, cfg)
    check_recipe(layout, cfg)
    started = time.perf_counter()
    stages: dict[str, Any] = {}
    with tqdm(total=len(cfg.stages), desc="pipeline", unit="stage") as bar:
        for stage in STAGES:
            if stage not in cfg.stages:
                continue
            bar.set_description(f"pipeline: {stage}")
            t0 = time.perf_counter()
            jobs = [run_job(job, layout, cfg, bar) for job in STAGE_JOBS[stage](cfg, layout)]
            status = "skipped" if all(j["status"] == "skipped" for j in jobs) else "ran"
            stages[stage] = {"status": status, "seconds": round(time.perf_counter() - t0, 1), "jobs": jobs}
            _write_json(layout.markers / f"{stage}.json", {"stage": stage, "jobs": [j["job"] for j in jobs]})
            bar.update()
    summary = {
        "name": cfg.name,
        "run_dir": str(layout.root),
        "seconds": round(time.perf_counter() - started, 1),
        "stages": stages,
    }
    _write_json(layout.root / SUMMARY_JSON, summary)
    (layout.root / SUMMARY_MD).write_text(summary_markdown(summary))
    return summary


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

"""What ``lerobot-diffrl-eval`` does: LIBERO success tables for any LeRobot checkpoint under the pinned protocol.

It runs ``lerobot-eval --env.type=diffrl_env`` once per (suite, task, seed): one task per run is the unit of
resumption, so a run whose ``eval_info.json`` is complete (and reports that very suite and task) is skipped when
the command is started again with the same protocol. Runs are written to a temporary folder and renamed when
complete. At the end it writes ``results.json`` and ``results.md`` (per-task and per-suite success with Wilson 95%
intervals, protocol embedded) and, with ``update_card``, the checkpoint's model card. The command
(:mod:`lerobot_diffrl.scripts.eval`) only parses its flags and calls :func:`evaluate`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lerobot_diffrl.errors import CheckpointError, ConfigError, DiffRLError
from lerobot_diffrl.recipes.commands import console_script
from lerobot_diffrl.recipes.eval_protocol import (
    DEFAULT_IMAGE_SIZE,
    EvalProtocol,
    parse_suites,
    resolved_protocol,
)

RUN_FILE = "run.json"
EVAL_INFO = "eval_info.json"
PROTOCOL_FILE = "protocol.json"


@dataclass
class PolicyRef:
    #: Checkpoint folder (``.../pretrained_model``) or Hub repo id.
    path: str | None = None
    #: Device for ``lerobot-eval`` (``cuda``, ``cpu``); default: the checkpoint's, or what is available.
    device: str | None = None


@dataclass
class EvalCommandConfig:
    policy: PolicyRef = field(default_factory=PolicyRef)
    #: Comma-separated suite names, ``standard`` (spatial, object, goal, 10) or ``all``.
    suites: str = "standard"
    protocol: EvalProtocol = field(default_factory=EvalProtocol)
    #: Where runs and tables go; default ``outputs/eval/<checkpoint name>``.
    output_dir: Path | None = None
    #: Write the results into the checkpoint's model card (``README.md``; local checkpoints only).
    update_card: bool = False


@dataclass(frozen=True)
class RunSpec:
    suite: str
    task_id: int
    seed: int

    def relpath(self) -> Path:
        return Path("runs") / self.suite / f"task_{self.task_id:02d}" / f"seed_{self.seed}"


def _lerobot_eval() -> str:
    return console_script("lerobot-eval", "install lerobot (pip install 'lerobot[libero]')")


def _default_output_dir(checkpoint: Path) -> Path:
    from lerobot_diffrl.run_files import PRETRAINED_MODEL_DIR

    name = checkpoint.parent.parent.name if checkpoint.name == PRETRAINED_MODEL_DIR else checkpoint.name
    return Path("outputs") / "eval" / name


def eval_command(
    spec: RunSpec, protocol: EvalProtocol, policy: str, device: str | None, image_hw: tuple[int, int]
) -> list[str]:
    """The ``lerobot-eval`` command line of one run, every protocol field explicit (``--output_dir`` is added by
    :func:`run_one`)."""
    n = protocol.episodes_per_task
    cmd = [
        _lerobot_eval(),
        f"--policy.path={policy}",
        "--env.type=diffrl_env",
        f"--env.task={spec.suite}",
        f"--env.task_ids=[{spec.task_id}]",
        f"--env.observation_height={image_hw[0]}",
        f"--env.observation_width={image_hw[1]}",
        f"--env.episode_length={protocol.max_steps(spec.suite)}",
        f"--env.obs_type={protocol.obs_type}",
        f"--env.control_mode={protocol.control_mode}",
        f"--env.init_states={'true' if protocol.init_states else 'false'}",
        f"--eval.n_episodes={n}",
        f"--eval.batch_size={min(protocol.batch_size, n)}",
        f"--seed={spec.seed}",
    ]
    if device:
        cmd.append(f"--policy.device={device}")
    if protocol.n_action_steps is not None:
        cmd.append(f"--policy.n_action_steps={protocol.n_action_steps}")
    return cmd


def finished_successes(run_dir: Path, spec: RunSpec, episodes: int) -> list[bool] | None:
    """The run's success flags if ``run_dir`` holds a complete run of ``spec`` with ``episodes`` episodes."""
    from lerobot_diffrl.recipes.results import per_task_from_eval_info

    try:
        record = json.loads((run_dir / RUN_FILE).read_text())
        info = json.loads((run_dir / EVAL_INFO).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if (record.get("suite"), record.get("task_id"), record.get("seed")) != (
        spec.suite,
        spec.task_id,
        spec.seed,
    ):
        return None
    flags = per_task_from_eval_info(info).get((spec.suite, spec.task_id), [])
    return flags if len(flags) == episodes else None


def _check_protocol_file(output_dir: Path, fingerprint: dict[str, Any]) -> None:
    """Refuse to mix runs of different protocols or checkpoints in one output folder."""
    path = output_dir / PROTOCOL_FILE
    if path.exists():
        previous = json.loads(path.read_text())
        if previous != fingerprint:
            changed = sorted(
                k for k in set(previous) | set(fingerprint) if previous.get(k) != fingerprint.get(k)
            )
            raise ConfigError(
                f"{output_dir} holds runs of another protocol or checkpoint (differs in {', '.join(changed)}); "
                "use a new --output_dir or the same settings to resume"
            )
        return
    output_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{PROTOCOL_FILE}.tmp")
    tmp.write_text(json.dumps(fingerprint, indent=2) + "\n")
    os.replace(tmp, path)


def run_one(cmd: list[str], spec: RunSpec, output_dir: Path, episodes: int) -> list[bool]:
    """Run one ``lerobot-eval`` into a temporary folder, check it, rename it into place; return its successes."""
    final = output_dir / spec.relpath()
    tmp = final.with_name(f".{final.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    # lerobot-eval creates its output folder itself; the log lives beside it until the run is complete.
    log_path = tmp.parent / f".{final.name}.log"
    start = time.time()
    with open(log_path, "w") as log:
        proc = subprocess.run(
            [*cmd, f"--output_dir={tmp}"], stdout=log, stderr=subprocess.STDOUT, check=False
        )
    if proc.returncode != 0:
        tail = log_path.read_text().strip().splitlines()[-15:]
        failed_log = output_dir / "logs" / f"{spec.suite}_task{spec.task_id:02d}_seed{spec.seed}.failed.log"
        failed_log.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(log_path), failed_log)
        shutil.rmtree(tmp, ignore_errors=True)
        raise DiffRLError(
            f"lerobot-eval failed on {spec.suite} task {spec.task_id} seed {spec.seed} (exit {proc.returncode}); "
            f"log: {failed_log}\n" + "\n".join(tail)
        )
    record = {
        "suite": spec.suite,
        "task_id": spec.task_id,
        "seed": spec.seed,
        "episodes": episodes,
        "command": [*cmd, f"--output_dir={final}"],
        "wall_s": round(time.time() - start, 1),
    }
    shutil.move(str(log_path), tmp / "lerobot_eval.log")
    info_path = tmp / EVAL_INFO
    if info_path.is_file():  # lerobot-eval records absolute video paths: point them at the final folder
        info_path.write_text(info_path.read_text().replace(str(tmp), str(final)))
    (tmp / RUN_FILE).write_text(json.dumps(record, indent=2) + "\n")
    flags = finished_successes(tmp, spec, episodes)
    if flags is None:
        raise DiffRLError(f"lerobot-eval wrote no complete {EVAL_INFO} for {spec} in {tmp}")
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    return flags


def evaluate(cfg: EvalCommandConfig) -> dict[str, Any]:
    """Run (or resume) the protocol for ``cfg`` and write the tables; returns the summary."""
    from lerobot_diffrl.envs.suites import parse_task_ids, task_spec
    from lerobot_diffrl.recipes.preflight import libero_camera_shape, read_policy_config, resolve_pretrained
    from lerobot_diffrl.recipes.results import TaskResult, summarize, to_markdown, write_results

    if not cfg.policy.path:
        raise ConfigError("--policy.path is required (a checkpoint folder or a Hub repo id)")
    protocol = cfg.protocol
    protocol.validate()
    suites = parse_suites(cfg.suites)
    checkpoint = resolve_pretrained(cfg.policy.path, "policy checkpoint")
    config = read_policy_config(checkpoint)
    camera_hw = libero_camera_shape(config, checkpoint)
    if protocol.image_size is not None:
        image_hw = (protocol.image_size, protocol.image_size)
    else:
        image_hw = camera_hw or (DEFAULT_IMAGE_SIZE, DEFAULT_IMAGE_SIZE)
    n_action_steps = protocol.n_action_steps or config.get("n_action_steps")
    chunk = config.get("chunk_size")
    if protocol.n_action_steps is not None and chunk is not None and protocol.n_action_steps > chunk:
        raise ConfigError(
            f"protocol.n_action_steps={protocol.n_action_steps} exceeds the checkpoint's chunk_size={chunk}"
        )
    runs = [
        RunSpec(suite, task_id, seed)
        for suite in suites
        for task_id in parse_task_ids(suite, protocol.task_ids)
        for seed in protocol.seeds
    ]
    policy_arg = str(checkpoint.resolve()) if Path(cfg.policy.path).expanduser().is_dir() else cfg.policy.path
    output_dir = Path(cfg.output_dir) if cfg.output_dir else _default_output_dir(checkpoint)
    fingerprint = {
        **protocol.fingerprint(),
        "image_size": list(image_hw),
        "n_action_steps": n_action_steps,
        "policy": policy_arg,
    }
    _check_protocol_file(output_dir, fingerprint)
    resolved = resolved_protocol(protocol, suites, image_hw, n_action_steps, policy_arg)

    successes = _run_all(runs, protocol, policy_arg, cfg.policy.device, image_hw, output_dir)
    tasks = []
    for suite in suites:
        for task_id in parse_task_ids(suite, protocol.task_ids):
            flags = [
                f for spec in runs if (spec.suite, spec.task_id) == (suite, task_id) for f in successes[spec]
            ]
            language = task_spec(suite, task_id).language
            tasks.append(TaskResult(suite, task_id, len(flags), sum(flags), language=language))
    summary = summarize(tasks, resolved)
    json_path, md_path = write_results(output_dir, summary)
    print(to_markdown(summary))
    print(f"wrote {json_path} and {md_path}", file=sys.stderr)
    if cfg.update_card:
        from lerobot_diffrl.recipes.vla_card import write_vla_card

        if not Path(cfg.policy.path).expanduser().is_dir():
            raise CheckpointError("--update_card=true needs a local checkpoint folder as --policy.path")
        card = write_vla_card(checkpoint, summary)
        print(f"wrote {card}", file=sys.stderr)
    return summary


def _run_all(
    runs: list[RunSpec],
    protocol: EvalProtocol,
    policy_arg: str,
    device: str | None,
    image_hw: tuple[int, int],
    output_dir: Path,
) -> dict[RunSpec, list[bool]]:
    """Each run's per-episode successes: read back for runs already finished in ``output_dir`` (resume), run
    as one ``lerobot-eval`` call each for the others."""
    from tqdm import tqdm

    successes: dict[RunSpec, list[bool]] = {}
    todo = []
    for spec in runs:
        flags = finished_successes(output_dir / spec.relpath(), spec, protocol.episodes_per_task)
        if flags is None:
            todo.append(spec)
        else:
            successes[spec] = flags
    if successes:
        print(
            f"resuming: {len(successes)} of {len(runs)} runs already complete in {output_dir}",
            file=sys.stderr,
        )
    bar = tqdm(todo, desc="LIBERO eval", unit="run")
    for spec in bar:
        bar.set_postfix_str(f"{spec.suite} task {spec.task_id} seed {spec.seed}")
        cmd = eval_command(spec, protocol, policy_arg, device, image_hw)
        successes[spec] = run_one(cmd, spec, output_dir, protocol.episodes_per_task)
        done = [f for flags in successes.values() for f in flags]
        bar.set_postfix_str(
            f"{spec.suite} task {spec.task_id}: running success {100 * sum(done) / len(done):.1f}%"
        )
    return successes

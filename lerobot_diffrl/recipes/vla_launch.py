"""What ``lerobot-diffrl-train-vla`` does: check a VLA recipe against its data and models, then launch it with
accelerate (the command, :mod:`lerobot_diffrl.scripts.train_vla`, only calls :func:`launch`).

Everything except the launcher's own flags is passed unchanged to ``accelerate launch $(which lerobot-train)``, so
the run is exactly the documented one. Before launching, the recipe is parsed the way lerobot-train parses it and
checked (see :mod:`lerobot_diffrl.recipes.preflight`). If the training itself fails, checkpoint folders it left
incomplete are removed (and the output folder, if it holds no complete checkpoint).
"""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from lerobot_diffrl.config_files import check_config_file
from lerobot_diffrl.errors import CheckpointError, ConfigError, DatasetError
from lerobot_diffrl.recipes.commands import console_script

LAUNCHER_FLAGS = ("accelerate_config", "num_processes", "dry_run")


def _bin(name: str) -> str:
    return console_script(name, "install lerobot and accelerate in this environment")


def split_args(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    """Separate the launcher's own ``--flag=value`` arguments from those forwarded to lerobot-train."""
    own: dict[str, str] = {}
    rest: list[str] = []
    for arg in argv:
        key = arg[2:].split("=", 1)[0] if arg.startswith("--") else ""
        if key in LAUNCHER_FLAGS:
            if "=" not in arg:
                raise ConfigError(f"--{key} needs a value (--{key}=...)")
            own[key] = arg.split("=", 1)[1]
        else:
            rest.append(arg)
    return own, rest


def check_small_pi_installed(args: list[str], config_path: str | None, policy_path: str | None) -> None:
    """A small pi0/pi05 backbone named on the command line, in the recipe or in a ``--policy.path`` config needs
    its hook; without it lerobot's config rejects the name and draccus reports only "Couldn't instantiate"."""
    from lerobot_diffrl.recipes import pi_backbone

    texts = list(args)
    for path in (
        Path(config_path) if config_path else None,
        Path(policy_path) / "config.json" if policy_path else None,
    ):
        if path is not None and path.is_file():
            texts.append(path.read_text())
    used = [v for v in pi_backbone.VARIANTS if any(v in text for text in texts)]
    if used and not pi_backbone.installed():
        raise ConfigError(
            f"{', '.join(used)} are lerobot_diffrl's small pi0/pi05 backbones, which lerobot does not know: set "
            f"{pi_backbone.ENV_VAR}=1 to install them (lerobot_diffrl.recipes.pi_backbone)"
        )


def parse_train_config(args: list[str]) -> Any:
    """Build lerobot's ``TrainPipelineConfig`` from the forwarded arguments as ``lerobot-train`` would."""
    import draccus
    import lerobot.policies.factory  # noqa: F401  (registers lerobot's policy config classes)
    from draccus.utils import DecodingError, ParsingError
    from lerobot.configs import parser
    from lerobot.configs.policies import PreTrainedConfig
    from lerobot.configs.train import TrainPipelineConfig

    from lerobot_diffrl.recipes.preflight import resolve_pretrained
    from lerobot_diffrl.registration import register_all

    register_all()  # the project's own types (diffrl, gaussrl, diffrl_env), as lerobot's plugin discovery would

    config_path = parser.parse_arg("config_path", args)
    policy_path = parser.parse_arg("policy.path", args)
    check_small_pi_installed(args, config_path, policy_path)
    cli_args = parser.filter_path_args(["policy"], list(args))
    try:
        if config_path:
            check_config_file(config_path)
            cli_args = parser.filter_arg("config_path", cli_args)
            with draccus.config_type("json"):
                cfg = draccus.parse(TrainPipelineConfig, config_path, args=cli_args)
        else:
            cfg = draccus.parse(TrainPipelineConfig, None, args=cli_args)
        if policy_path:
            local = resolve_pretrained(policy_path, "policy.path")
            cfg.policy = PreTrainedConfig.from_pretrained(
                local, cli_overrides=parser.get_cli_overrides("policy", args)
            )
            cfg.policy.pretrained_path = Path(policy_path)
    except (DecodingError, ParsingError, ValueError, TypeError) as err:
        raise ConfigError(f"invalid training configuration: {err}".splitlines()[0]) from None
    except SystemExit as err:  # draccus/argparse reject unknown flags by exiting
        raise ConfigError("invalid lerobot-train arguments (see the usage message above)") from err
    if cfg.policy is None:
        raise ConfigError("no policy: pass --config_path=recipes/<recipe>.json or --policy.path=<checkpoint>")
    return cfg


def _check_base_model(cfg: Any) -> Path | None:
    """The base model's local folder (``policy.pretrained_path``), checked to be a complete checkpoint of the
    recipe's type; ``None`` when the recipe trains from scratch or resumes."""
    from lerobot_diffrl.hub import hub_offline
    from lerobot_diffrl.recipes.preflight import read_policy_config, resolve_pretrained

    policy = cfg.policy
    if not policy.pretrained_path or cfg.resume:
        return None
    base = resolve_pretrained(policy.pretrained_path, "base model (policy.pretrained_path)")
    base_type = read_policy_config(base).get("type")
    if base_type != policy.type:
        raise CheckpointError(
            f"base model {policy.pretrained_path} is a {base_type!r} checkpoint but the recipe trains "
            f"{policy.type!r}"
        )
    if base.is_dir() and not (base / "model.safetensors").is_file():
        if Path(str(policy.pretrained_path)).expanduser().is_dir() or hub_offline():
            raise CheckpointError(f"base model {policy.pretrained_path} has no model.safetensors in {base}")
    return base


def _check_quantile_stats(policy: Any, meta: Any, name: str) -> None:
    """pi05 (and any QUANTILES mapping) needs q01/q99 statistics, which lerobot >= 0.6 computes."""
    quantile_keys = [
        key
        for kind, key in (("STATE", "observation.state"), ("ACTION", "action"))
        if getattr(policy.normalization_mapping.get(kind), "value", None) == "QUANTILES" and key in meta.stats
    ]
    missing = [k for k in quantile_keys if "q01" not in meta.stats[k] or "q99" not in meta.stats[k]]
    if missing:
        raise DatasetError(
            f"{policy.type} normalizes {', '.join(missing)} by quantiles but dataset {name} has no q01/q99 stats: "
            "recompute them (lerobot's augment_dataset_quantile_stats.py) or pass "
            '--policy.normalization_mapping=\'{"VISUAL": "IDENTITY", "STATE": "MEAN_STD", "ACTION": "MEAN_STD"}\''
        )


def preflight(cfg: Any) -> Any:
    """Every check of :mod:`lerobot_diffrl.recipes.preflight` that applies to ``cfg``; returns the dataset meta."""
    from lerobot_diffrl.recipes.preflight import check_dataset, check_dataset_fits_policy, check_pi, check_vlm

    policy = cfg.policy
    base = _check_base_model(cfg)
    if not cfg.resume:  # a resumed run loads its checkpoint's own processors (and tokenizer name)
        check_pi(policy, base)
    if policy.type == "smolvla":
        check_vlm(policy.vlm_model_name)
    if not cfg.dataset.repo_id:
        raise ConfigError("--dataset.repo_id is required")
    meta = check_dataset(cfg.dataset.repo_id, cfg.dataset.root)
    name = cfg.dataset.repo_id + (f" ({cfg.dataset.root})" if cfg.dataset.root else "")
    check_dataset_fits_policy(meta.features, policy, name, cfg.rename_map)
    if cfg.dataset.episodes:
        bad = [e for e in cfg.dataset.episodes if not 0 <= e < meta.total_episodes]
        if bad:
            raise ConfigError(f"dataset.episodes {bad[:5]} are not in {name} (0..{meta.total_episodes - 1})")
    _check_quantile_stats(policy, meta, name)
    if not cfg.resume and cfg.output_dir is not None and Path(cfg.output_dir).exists():
        raise ConfigError(
            f"output folder {cfg.output_dir} exists: choose a new --output_dir or pass --resume=true"
        )
    if cfg.policy.push_to_hub and not cfg.policy.repo_id:
        raise ConfigError(
            "--policy.repo_id is required with policy.push_to_hub=true (or --policy.push_to_hub=false)"
        )
    return meta


def check_accelerate_config(path: str) -> Any:
    from accelerate.commands.config.config_args import load_config_from_file

    if not Path(path).is_file():
        raise ConfigError(f"accelerate config not found: {path}")
    try:
        config = load_config_from_file(path)
    except (ValueError, TypeError, KeyError) as err:
        raise ConfigError(f"invalid accelerate config {path}: {err}") from None
    return config


def _clean_failed_run(output_dir: Path, existed: bool) -> None:
    """Remove checkpoints a failed run left incomplete, and the output folder if it holds no complete one."""
    from lerobot_diffrl.run_files import CHECKPOINTS_DIR, PRETRAINED_MODEL_DIR, TRAINING_STATE_DIR

    checkpoints = output_dir / CHECKPOINTS_DIR
    complete = 0
    if checkpoints.is_dir():
        for step_dir in sorted(p for p in checkpoints.iterdir() if p.is_dir() and not p.is_symlink()):
            ok = (step_dir / PRETRAINED_MODEL_DIR / "model.safetensors").is_file() and (
                step_dir / TRAINING_STATE_DIR
            ).is_dir()
            if ok:
                complete += 1
            else:
                shutil.rmtree(step_dir, ignore_errors=True)
                print(f"removed incomplete checkpoint {step_dir}", file=sys.stderr)
    if not existed and complete == 0 and output_dir.exists():
        shutil.rmtree(output_dir, ignore_errors=True)
        print(f"removed {output_dir}: the run saved no complete checkpoint", file=sys.stderr)


def launch(argv: list[str]) -> int:
    if any(arg in ("-h", "--help") for arg in argv):
        print(__doc__)
        print("Every other flag is lerobot-train's: see `lerobot-train --help`.")
        return 0
    own, args = split_args(argv)
    cfg = parse_train_config(args)
    preflight(cfg)
    accelerate_cmd = [_bin("accelerate"), "launch"]
    if "accelerate_config" in own:
        check_accelerate_config(own["accelerate_config"])
        accelerate_cmd.append(f"--config_file={own['accelerate_config']}")
    if "num_processes" in own:
        if not own["num_processes"].isdigit() or int(own["num_processes"]) < 1:
            raise ConfigError(f"--num_processes must be a positive integer, got {own['num_processes']!r}")
        accelerate_cmd.append(f"--num_processes={own['num_processes']}")
    if cfg.output_dir is None:  # name it here so that a failed run can be cleaned up
        now = dt.datetime.now()
        cfg.output_dir = (
            Path("outputs/train") / f"{now:%Y-%m-%d}" / f"{now:%H-%M-%S}_{cfg.job_name or cfg.policy.type}"
        )
        args = [*args, f"--output_dir={cfg.output_dir}"]
    cmd = [*accelerate_cmd, _bin("lerobot-train"), *args]
    print("launching: " + " ".join(cmd), file=sys.stderr)
    if own.get("dry_run", "false").lower() in ("1", "true", "yes"):
        return 0
    output_dir = Path(cfg.output_dir)
    existed = output_dir.exists()
    proc = subprocess.run(cmd, check=False)
    if proc.returncode != 0:
        _clean_failed_run(output_dir, existed)
        print(f"error: training failed (exit {proc.returncode})", file=sys.stderr)
        return proc.returncode
    return 0

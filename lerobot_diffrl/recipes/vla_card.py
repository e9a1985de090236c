"""Model card of a VLA fine-tuned with the project's recipes: data, recipe and LIBERO results in one README.

Why our own card: lerobot 0.4.4's card template knows the policy type and a dataset id, not what the dataset was
made of (RL-generated data, mixed with human demonstrations at a ratio), the hyper-parameters the run used, or
the evaluation protocol behind a success rate. The card is written as ``README.md`` into the checkpoint's
``pretrained_model/`` folder (what ``push_model_to_hub`` uploads), with Hub metadata (base model, datasets,
``model-index`` results) built by ``huggingface_hub``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lerobot_diffrl.recipes.mixing import MIXING_FILE
from lerobot_diffrl.recipes.results import to_markdown

_PRETTY_SUITES = {
    "libero_spatial": "LIBERO-Spatial",
    "libero_object": "LIBERO-Object",
    "libero_goal": "LIBERO-Goal",
    "libero_10": "LIBERO-Long (libero_10)",
    "libero_90": "LIBERO-90",
}


def _load_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _mixing_record(dataset: Mapping[str, Any]) -> dict[str, Any] | None:
    from lerobot.utils.constants import HF_LEROBOT_HOME

    root = Path(dataset["root"]) if dataset.get("root") else HF_LEROBOT_HOME / str(dataset.get("repo_id", ""))
    return _load_json(root / "meta" / MIXING_FILE)


def _recipe_rows(train: Mapping[str, Any]) -> list[tuple[str, Any]]:
    policy = train.get("policy") or {}
    optimizer = train.get("optimizer") or {}
    scheduler = train.get("scheduler") or {}
    rows: list[tuple[str, Any]] = [
        ("policy type", policy.get("type")),
        ("base model", policy.get("pretrained_path")),
        ("training steps", train.get("steps")),
        ("batch size per process", train.get("batch_size")),
        ("seed", train.get("seed")),
        ("optimizer", optimizer.get("type")),
        ("peak learning rate", optimizer.get("lr")),
        ("betas", optimizer.get("betas")),
        ("weight decay", optimizer.get("weight_decay")),
        ("grad clip norm", optimizer.get("grad_clip_norm")),
        ("scheduler", scheduler.get("type")),
        ("warmup steps", scheduler.get("num_warmup_steps")),
        ("decay steps", scheduler.get("num_decay_steps")),
        ("final learning rate", scheduler.get("decay_lr")),
        ("chunk size", policy.get("chunk_size")),
        ("executed actions per chunk", policy.get("n_action_steps")),
        ("dtype", policy.get("dtype")),
        ("freeze vision encoder", policy.get("freeze_vision_encoder")),
        ("train action expert only", policy.get("train_expert_only")),
        ("VLM backbone", policy.get("vlm_model_name")),
        ("PEFT", (train.get("peft") or {}).get("method_type") if train.get("peft") else None),
    ]
    steps, decay = train.get("steps"), scheduler.get("num_decay_steps")
    if scheduler.get("type") == "cosine_decay_with_warmup" and steps and decay and steps < decay:
        warmup = int(scheduler.get("num_warmup_steps", 0) * steps / decay)
        rows.append(
            (
                "schedule as run",
                f"warm-up {warmup}, decay {steps} (lerobot scales it to runs shorter than the decay)",
            )
        )
    return [(k, v) for k, v in rows if v is not None]


def render_vla_card(checkpoint: Path, summary: Mapping[str, Any] | None = None) -> str:
    """The card text (YAML metadata + Markdown) for ``checkpoint``, from its ``config.json``,
    ``train_config.json`` (written by lerobot-train) and an evaluation ``summary``
    (:func:`lerobot_diffrl.recipes.results.summarize`)."""
    from huggingface_hub import ModelCard

    checkpoint = Path(checkpoint)
    config = _load_json(checkpoint / "config.json") or {}
    train = _load_json(checkpoint / "train_config.json") or {}
    policy_type = config.get("type", (train.get("policy") or {}).get("type", "policy"))
    dataset = train.get("dataset") or {}
    mixing = _mixing_record(dataset) if dataset else None
    name = train.get("job_name") or checkpoint.parent.parent.name or f"{policy_type}-libero"
    data = _card_data(name, policy_type, train, dataset, mixing, summary)
    lines = [
        f"# {name}",
        "",
        f"A `{policy_type}` vision-language-action policy fine-tuned with LeRobot's `lerobot-train` on the "
        "LIBERO manipulation benchmark using a recipe of the `lerobot-diffrl` project (diffusion-policy RL data "
        "for VLA training).",
        "",
        "## Training data",
        "",
        *_training_data_lines(dataset, mixing),
        "",
        "## Recipe",
        "",
    ]
    rows = _recipe_rows(train)
    if rows:
        lines += ["| setting | value |", "|---|---|"] + [f"| {k} | `{v}` |" for k, v in rows]
        lines += ["", "The complete configuration is `train_config.json` in this folder."]
    else:
        lines.append("Not recorded (no train_config.json in the checkpoint).")
    lines += ["", "## LIBERO evaluation", ""]
    if summary:
        lines += [
            "Evaluated with `lerobot-diffrl-eval` (one `lerobot-eval --env.type=diffrl_env` run per task and seed). "
            "Success rates in %, 95% Wilson score intervals.",
            "",
            to_markdown(summary),
        ]
    else:
        lines.append(
            "Not evaluated yet: run `lerobot-diffrl-eval --policy.path=<this folder> --update_card=true`."
        )
    lines += [
        "",
        "## Use",
        "",
        "```bash",
        "lerobot-eval --policy.path=<this repo> --env.type=libero --env.task=libero_object "
        "--eval.batch_size=10 --eval.n_episodes=50",
        "```",
    ]
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines) + "\n"))


def _card_data(
    name: str,
    policy_type: str,
    train: Mapping[str, Any],
    dataset: Mapping[str, Any],
    mixing: Mapping[str, Any] | None,
    summary: Mapping[str, Any] | None,
) -> Any:
    """The Hub metadata: datasets (the mix's sources too), base model (a Hub id only) and one eval result
    per evaluated suite, so the Hub shows the success rates."""
    from huggingface_hub import EvalResult, ModelCardData

    datasets = [dataset["repo_id"]] if dataset.get("repo_id") else []
    if mixing:
        datasets += [
            src["repo_id"] for src in mixing.get("sources", []) if src.get("repo_id") not in datasets
        ]
    eval_results = [
        EvalResult(
            task_type="robotics",
            task_name="Robot manipulation",
            dataset_type="libero",
            dataset_name=_PRETTY_SUITES.get(row["suite"], row["suite"]),
            dataset_config=row["suite"],
            metric_type="success_rate",
            metric_name="Success rate (%)",
            metric_value=round(100 * row["success_rate"], 1),
            verified=False,
        )
        for row in (summary or {}).get("per_suite", [])
        if row.get("success_rate") is not None
    ]
    base_model = (train.get("policy") or {}).get("pretrained_path")
    hub_base = base_model and "/" in str(base_model) and not Path(str(base_model)).is_absolute()
    return ModelCardData(
        license="apache-2.0",
        library_name="lerobot",
        pipeline_tag="robotics",
        tags=["LeRobot", "robotics", "vla", "libero", policy_type, "lerobot-diffrl"],
        datasets=datasets or None,
        base_model=str(base_model) if hub_base else None,
        model_name=name,
        eval_results=eval_results or None,
    )


def _training_data_lines(dataset: Mapping[str, Any], mixing: Mapping[str, Any] | None) -> list[str]:
    """The card's "Training data" bullets: the dataset, its episode selection and, for a mix, each source."""
    if not dataset:
        return ["- Not recorded (no train_config.json in the checkpoint)."]
    lines = [
        f"- Dataset: `{dataset.get('repo_id')}`"
        + (f" (local root `{dataset['root']}`)" if dataset.get("root") else "")
    ]
    if dataset.get("episodes"):
        lines.append(f"- Episodes used: {len(dataset['episodes'])} selected episodes")
    if mixing:
        lines.append(
            f"- Mixed dataset: {mixing.get('ratio_basis', 'frames')} ratio "
            + ", ".join(f"`{s['repo_id']}` {100 * s['share']:.1f}%" for s in mixing.get("sources", []))
            + (f" (suites: {', '.join(mixing['suites'])})" if mixing.get("suites") else "")
        )
        for src in mixing.get("sources", []):
            lines.append(
                f"  - `{src['repo_id']}`: {src['episodes_used']} of {src['episodes_available']} episodes, "
                f"{src['frames_used']} frames"
            )
    return lines


def write_vla_card(checkpoint: Path, summary: Mapping[str, Any] | None = None) -> Path:
    """Write the card as ``checkpoint/README.md`` (temp file, then rename) and return its path."""
    path = Path(checkpoint) / "README.md"
    tmp = path.with_name(".README.md.tmp")
    tmp.write_text(render_vla_card(checkpoint, summary))
    os.replace(tmp, path)
    return path

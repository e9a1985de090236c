"""The project's model card (README.md) for ``diffrl`` / ``gaussrl`` checkpoints.

lerobot's ``generate_model_card`` renders a template that knows only built-in policy types and their base
models. This card says what the checkpoint is: architecture and parameter counts, the
training data, the diffusion settings (K, DDIM steps, K'), and metrics when they are known
(``config.card_metrics``, e.g. set by RL/eval code before saving). It is generated offline (no Hub access).
"""

from __future__ import annotations

from typing import Any

from huggingface_hub import ModelCard, ModelCardData


def _fmt_params(n: int) -> str:
    return f"{n / 1e6:.2f} M"


def build_model_card(
    config: Any,
    dataset_repo_id: str | None,
    license: str | None,
    tags: list[str] | None,
    param_counts: dict[str, int],
    head_lines: list[str],
) -> ModelCard:
    """Return a ``ModelCard`` (YAML metadata + markdown body) for a policy config."""
    policy_type = config.type
    card_data = ModelCardData(
        license=license or "apache-2.0",
        library_name="lerobot",
        pipeline_tag="robotics",
        tags=sorted(set(tags or []) | {"robotics", "lerobot", policy_type, "lerobot_policy_diffrl"}),
        model_name=policy_type,
        datasets=[dataset_repo_id] if dataset_repo_id else None,
    )
    cams = sorted(config.used_image_features)
    if cams:
        trunk = "one shared" if config.share_camera_trunk else "one per camera"
        vision = (
            f"ResNet-18 trunk with GroupNorm, base width {config.vision_width} ({trunk}; "
            f"{'torchvision ' + config.pretrained_backbone_weights if config.pretrained_backbone_weights else 'random init'}), "
            f"{config.image_pooling} pooling -> {config.image_feature_dim} features per camera; cameras: "
            + ", ".join(f"`{c}` {tuple(config.used_image_features[c].shape)}" for c in cams)
        )
    else:
        vision = "none (state-only variant)"
    state = config.robot_state_feature
    lines = [
        f"# `{policy_type}` policy (lerobot_policy_diffrl)",
        "",
        "A LeRobot policy from the `lerobot_policy_diffrl` plugin: behaviour cloning, then PPO fine-tuning "
        "(DPPO) on LIBERO. Install the plugin (`pip install lerobot_policy_diffrl`) so that LeRobot knows "
        f"the `{policy_type}` type, then e.g. `lerobot-eval --policy.path=<this repo or folder> ...`.",
        "",
        "## Architecture",
        "",
        f"- Vision: {vision}",
        f"- State: {'`observation.state` ' + str(tuple(state.shape)) + ' -> MLP ' + str(config.state_feature_dim) if state is not None else 'none'}",
        f"- Task conditioning: learned embedding ({config.task_embedding_dim}-d) for {len(config.tasks)} task(s), "
        f"capacity {config.max_tasks - 1}",
        *[f"- {line}" for line in head_lines],
        f"- Action chunk: predict {config.horizon}, execute {config.n_action_steps}; action dim {config.action_dim}",
        f"- Critic: residual MLP {config.critic_num_blocks}x{config.critic_hidden_dim} "
        f"({config.critic_encoder} encoder)",
        f"- Parameters: actor {_fmt_params(param_counts['actor'])} (encoder {_fmt_params(param_counts['encoder'])}, "
        f"head {_fmt_params(param_counts['head'])}), critic {_fmt_params(param_counts['critic'])}, "
        f"total {_fmt_params(param_counts['total'])}",
        "",
        "## Training data",
        "",
        f"- Dataset: {('`' + dataset_repo_id + '`') if dataset_repo_id else 'not recorded'}",
        f"- Tasks: {', '.join(repr(t) for t in config.tasks[:20]) or 'none'}"
        + (f" ... (+{len(config.tasks) - 20})" if len(config.tasks) > 20 else ""),
        f"- Normalisation: {', '.join(f'{k}: {v.value}' for k, v in config.normalization_mapping.items())}",
        "",
        "## Metrics",
        "",
    ]
    if config.card_metrics:
        lines += ["| metric | value |", "|---|---|"]
        lines += [f"| {k} | {v:.4g} |" for k, v in sorted(config.card_metrics.items())]
    else:
        lines.append("No metrics recorded yet.")
    card = ModelCard(f"---\n{card_data.to_yaml()}\n---\n\n" + "\n".join(lines) + "\n")
    return card

"""The ``hfvla`` policy: a Hugging Face vision-language model trained to write actions as tokens, as OpenVLA does.

Training (``forward``): the prompt (camera images + "What action should the robot take to <task>?", in the model's
chat format) is followed by ``chunk_size x action_dim`` action tokens and the end-of-sequence token; labels are
-100 everywhere except on those tokens, so the loss is the cross-entropy of the actions (and of stopping) only.
Padded steps of a chunk at the end of an episode (``action_is_pad``) are not supervised.

Inference (``select_action``): greedy decoding of exactly ``chunk_size x action_dim`` tokens with every logit
outside the action window masked, so each generated token is a bin; bin centres are the normalised actions, which
the post-processor maps back to the dataset's units with its q01/q99 quantiles.

Checkpoint layout (``pretrained_model/``): LeRobot's ``config.json`` and ``model.safetensors``, a ``vlm/`` folder
with the VLM's transformers config and processor (tokenizer, image processor, chat template, all JSON), and a
``README.md`` card. ``checkpoint_weights="full"`` stores every weight (loads with no base model, bit-exact);
``"trainable"`` stores only trainable tensors and reloads the frozen rest from ``vlm_path``.
"""

# No ``from __future__ import annotations``: as in LeRobot's own policies, ``__init__``'s ``config`` annotation is
# then the config class itself, not the string "HFVLAConfig", for code that reads it with ``inspect.signature``.
import builtins
import copy
import inspect
import json
import logging
import shutil
from collections import deque
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from huggingface_hub import ModelCard, ModelCardData, snapshot_download
from huggingface_hub.constants import CONFIG_NAME, SAFETENSORS_SINGLE_FILE
from huggingface_hub.errors import HfHubHTTPError, HFValidationError, LocalEntryNotFoundError
from lerobot.configs.policies import PreTrainedConfig
from lerobot.policies.pretrained import PreTrainedPolicy
from safetensors.torch import load_file, load_model, save_file, save_model
from torch import Tensor, nn
from transformers import LogitsProcessor, LogitsProcessorList

from lerobot_diffrl.errors import CheckpointError, ConfigError
from lerobot_diffrl.policies.hfvla.action_tokenizer import ActionTokenizer
from lerobot_diffrl.policies.hfvla.configuration_hfvla import HFVLAConfig
from lerobot_diffrl.policies.hfvla.vlm_backbone import (
    apply_image_processor_overrides,
    load_processor,
    load_vlm,
    make_trainable,
    model_type_in,
    resolve_vlm,
)

T = TypeVar("T", bound="HFVLAPolicy")
logger = logging.getLogger(__name__)

VLM_DIR = "vlm"
TASK_KEY = "task"
CHAT_TEMPLATE_JINJA, CHAT_TEMPLATE_JSON = "chat_template.jinja", "chat_template.json"
#: Processor attributes that name placeholder token ids (never to be used as action tokens).
PROCESSOR_TOKEN_ATTRS = ("image_token_id", "video_token_id", "fake_image_token_id", "global_image_token_id")


class ActionTokenMask(LogitsProcessor):
    """Sets every logit outside the action-token window to -inf, so greedy decoding can only emit bins."""

    def __init__(self, first_id: int, end_id: int) -> None:
        self.first_id, self.end_id = first_id, end_id

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        masked = torch.full_like(scores, float("-inf"))
        masked[:, self.first_id : self.end_id] = scores[:, self.first_id : self.end_id]
        return masked


class HFVLAPolicy(PreTrainedPolicy):
    """OpenVLA-style VLA on any transformers VLM (see module docstring)."""

    config_class = HFVLAConfig
    name = "hfvla"

    def __init__(
        self,
        config: HFVLAConfig,
        dataset_stats: dict[str, dict[str, Tensor]] | None = None,
        dataset_meta: Any | None = None,
        vlm_source: str | Path | None = None,
        **kwargs: Any,
    ) -> None:
        """Build the policy.

        A new policy loads the pretrained VLM from ``config.vlm_path``. ``vlm_source`` (set by ``from_pretrained``)
        is a checkpoint's ``vlm/`` folder: the processor and architecture come from there, and the weights from the
        checkpoint (``full``) or from ``vlm_path`` plus the checkpoint's trainable tensors (``trainable``).
        ``dataset_stats`` is unused (normalisation is in the processors); ``dataset_meta`` names the dataset in the
        model card.
        """
        super().__init__(config)
        config.validate_features()
        self.config: HFVLAConfig = config
        if config.trained_action_dim is None:
            config.trained_action_dim = config.action_dim
        if dataset_meta is not None and config.dataset_repo_id is None:
            config.dataset_repo_id = getattr(dataset_meta, "repo_id", None)

        processor_folder, weights_folder = _vlm_folders(config, vlm_source)
        vlm = load_vlm(
            weights_folder or processor_folder,
            torch_dtype=config.torch_dtype,
            attn_implementation=config.attn_implementation,
            trust_remote_code=config.trust_remote_code,
            weights=weights_folder is not None,
        )
        self.processor = load_processor(processor_folder, config.trust_remote_code)
        if vlm_source is None:  # a checkpoint's saved processor already has them
            apply_image_processor_overrides(self.processor, config.image_processor_overrides)
        if config.gradient_checkpointing:
            # Non-reentrant checkpointing gives gradients to LoRA weights inside checkpointed blocks even when the
            # blocks' inputs (frozen embeddings, pixel patches) do not require grad.
            vlm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        self.vlm = make_trainable(
            vlm,
            use_lora=config.use_lora,
            freeze_vision=config.freeze_vision,
            lora_r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            lora_target_modules=config.lora_target_modules,
        )

        tokenizer = self.processor.tokenizer
        reserved = [getattr(self.processor, a, None) for a in PROCESSOR_TOKEN_ATTRS]
        reserved += [getattr(self.base_vlm.config, a, None) for a in ("image_token_id", "image_token_index")]
        self.action_tokenizer = ActionTokenizer.from_tokenizer(
            tokenizer, config.n_action_bins, config.action_token_skip, reserved
        )
        n_embed = self.base_vlm.get_output_embeddings().weight.shape[0]
        if self.action_tokenizer.vocab_end > n_embed:
            raise ConfigError(
                f"action token ids reach {self.action_tokenizer.vocab_end - 1} but the model's output layer has "
                f"{n_embed} rows; the tokenizer does not belong to this model."
            )
        if tokenizer.eos_token_id is None:
            raise ConfigError(f"the tokenizer of {config.vlm_path} has no end-of-sequence token.")
        self.eos_token_id = int(tokenizer.eos_token_id)
        params = inspect.signature(self.base_vlm.forward).parameters
        # PaliGemma-style prefix-LM models attend bidirectionally over token_type 0 and causally over type 1.
        self._prefix_lm = "token_type_ids" in params
        self._chat = bool(config.use_chat_template and getattr(self.processor, "chat_template", None))
        self._warned_no_task = False
        self._queue: deque[Tensor] = deque(maxlen=config.n_action_steps)

    # --- structure ---------------------------------------------------------------------------------
    @property
    def base_vlm(self) -> nn.Module:
        """The transformers model (inside the peft wrapper when LoRA is on)."""
        get_base = getattr(self.vlm, "get_base_model", None)
        return get_base() if callable(get_base) else self.vlm

    @property
    def device(self) -> torch.device:
        return next(self.vlm.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.vlm.parameters()).dtype

    def get_optim_params(self) -> list[nn.Parameter]:
        """Trainable parameters only (LoRA adapters, or the unfrozen model)."""
        return [p for p in self.parameters() if p.requires_grad]

    def reset(self) -> None:
        """Clear the action queue (lerobot calls this at every environment reset)."""
        self._queue.clear()

    # --- prompt and inputs -------------------------------------------------------------------------
    def _tasks(self, batch: dict, n: int) -> list[str]:
        tasks = batch.get(TASK_KEY)
        if tasks is None:
            if not self._warned_no_task:
                logger.warning("hfvla: the batch has no `task`; prompting with an empty instruction.")
                self._warned_no_task = True
            return [""] * n
        if isinstance(tasks, str):
            return [tasks] * n
        return [str(t) for t in tasks]

    def prompts(self, batch: dict) -> list[str]:
        """The prompt text of each sample, before the processor expands image placeholders."""
        n = self._batch_size(batch)
        tasks = self._tasks(batch, n)
        states = None
        if self.config.use_state:
            states = self.action_tokenizer.state_text(batch["observation.state"].reshape(n, -1))
        n_images = len(self.config.image_keys)
        out = []
        for i, task in enumerate(tasks):
            question = self.config.prompt_template.format(task=task.strip().rstrip(".").lower())
            if states is not None:
                question += f" State: {states[i]}"
            if self._chat:
                content = [{"type": "image"}] * n_images + [{"type": "text", "text": question}]
                messages = [{"role": "user", "content": content}]
                out.append(
                    self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
                )
            else:
                image_token = getattr(self.processor, "image_token", None) or ""
                out.append(image_token * n_images + f"In: {question}\nOut:")
        return out

    def _batch_size(self, batch: dict) -> int:
        image = batch[self.config.image_keys[0]]
        return 1 if image.dim() == 3 else int(image.shape[0])

    def _images(self, batch: dict, n: int) -> list[list[np.ndarray]]:
        """Per sample, one uint8 HWC image per camera (what the datasets store; the VLM's image processor resizes
        and normalises them)."""
        cams = []
        for key in self.config.image_keys:
            img = batch[key].reshape(n, *batch[key].shape[-3:])
            cams.append(
                (img.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu()
            )
        return [[cam[i].numpy() for cam in cams] for i in range(n)]

    def encode_prompts(self, batch: dict) -> dict[str, Tensor]:
        """Processor outputs (left-padded ``input_ids``, ``attention_mask``, pixel tensors) on the model's device."""
        n = self._batch_size(batch)
        enc = self.processor(
            text=self.prompts(batch), images=self._images(batch, n), return_tensors="pt", padding=True
        )
        out = {}
        for key, value in enc.items():
            if not isinstance(value, Tensor):
                continue
            value = value.to(self.device)
            out[key] = value.to(self.dtype) if value.is_floating_point() else value
        # Prefix-LM models (PaliGemma) attend bidirectionally over token type 0: the whole prompt. Others get none.
        # transformers 5's PaliGemma processor also returns prompt ``labels``, which are not ours to train on.
        out.pop("token_type_ids", None)
        out.pop("labels", None)
        if self._prefix_lm:
            out["token_type_ids"] = torch.zeros_like(out["input_ids"])
        return out

    def training_inputs(self, batch: dict) -> tuple[dict[str, Tensor], Tensor]:
        """Model inputs with the action tokens and EOS appended and their labels, plus the action token targets
        (B, chunk_size x action_dim)."""
        enc = self.encode_prompts(batch)
        actions = batch["action"].to(self.device)
        if actions.dim() == 2:
            actions = actions[:, None]
        n, chunk, dim = actions.shape
        targets = self.action_tokenizer.encode(actions).reshape(n, chunk * dim)
        eos = torch.full((n, 1), self.eos_token_id, dtype=torch.long, device=self.device)
        appended = torch.cat([targets, eos], dim=1)
        supervised = appended.clone()
        is_pad = batch.get("action_is_pad")
        if is_pad is not None:
            pad = is_pad.to(self.device).reshape(n, chunk).bool().repeat_interleave(dim, dim=1)
            supervised[:, :-1][pad] = -100
        prompt_ids = enc.pop("input_ids")
        prompt_mask = enc.pop("attention_mask")
        inputs = {
            "input_ids": torch.cat([prompt_ids, appended], dim=1),
            "attention_mask": torch.cat([prompt_mask, torch.ones_like(appended)], dim=1),
            "labels": torch.cat([torch.full_like(prompt_ids, -100), supervised], dim=1),
            **enc,
        }
        if self._prefix_lm:  # the prompt is the bidirectional prefix (0), the actions the causal suffix (1)
            inputs["token_type_ids"] = torch.cat(
                [torch.zeros_like(prompt_ids), torch.ones_like(appended)], dim=1
            )
        # transformers 5's Qwen2-VL family (and Gemma 3) tag every prompt token as text (0), image (1) or video
        # (2) for M-RoPE; the appended action tokens are text, as generate() tags the tokens it appends.
        mm_types = inputs.get("mm_token_type_ids")
        if mm_types is not None:
            inputs["mm_token_type_ids"] = torch.cat([mm_types, mm_types.new_zeros(appended.shape)], dim=1)
        return inputs, targets

    # --- training ----------------------------------------------------------------------------------
    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        """Cross-entropy on the action tokens (+ EOS); logs token accuracy and the L1 error of the decoded
        actions in normalised units (OpenVLA's training metrics)."""
        inputs, targets = self.training_inputs(batch)
        out = self.vlm(**inputs, use_cache=False)
        n_act = targets.shape[1]
        with torch.no_grad():
            logits = out.logits[:, -(n_act + 2) : -2].float()
            supervised = inputs["labels"][:, -(n_act + 1) : -1] != -100
            accuracy = (logits.argmax(-1) == targets)[supervised].float().mean()
            window = logits[..., self.action_tokenizer.first_id : self.action_tokenizer.vocab_end]
            pred_bins = self.action_tokenizer.n_bins - 1 - window.argmax(-1)
            true = self.action_tokenizer.decode(targets)
            l1 = (self.action_tokenizer.bin_centres(pred_bins) - true).abs()[supervised].mean()
        return out.loss, {"action_accuracy": float(accuracy), "action_l1": float(l1)}

    # --- inference ---------------------------------------------------------------------------------
    @torch.no_grad()
    def generate_action_tokens(self, batch: dict[str, Tensor]) -> Tensor:
        """Greedy, action-constrained generation of chunk_size x action_dim tokens, (B, n_tokens)."""
        enc = self.encode_prompts(batch)
        n_tokens = self.config.tokens_per_step
        base = self.base_vlm
        generation_config = copy.deepcopy(base.generation_config)
        generation_config.update(
            do_sample=False,
            num_beams=1,
            temperature=None,
            top_p=None,
            top_k=None,
            max_new_tokens=n_tokens,
            min_new_tokens=n_tokens,
            pad_token_id=self.processor.tokenizer.pad_token_id,
            eos_token_id=self.eos_token_id,
        )
        mask = ActionTokenMask(self.action_tokenizer.first_id, self.action_tokenizer.vocab_end)
        sequences = self.vlm.generate(
            **enc, generation_config=generation_config, logits_processor=LogitsProcessorList([mask])
        )
        return sequences[:, -n_tokens:]

    @torch.no_grad()
    def predict_action_chunk(self, batch: dict[str, Tensor], **kwargs: Any) -> Tensor:
        """Normalised actions to execute, (B, n_action_steps, action_dim)."""
        tokens = self.generate_action_tokens(batch)
        chunk = self.action_tokenizer.decode(tokens).reshape(
            tokens.shape[0], self.config.chunk_size, self.config.action_dim
        )
        return chunk[:, : self.config.n_action_steps].to(self.device)

    @torch.no_grad()
    def select_action(self, batch: dict[str, Tensor], **kwargs: Any) -> Tensor:
        """One action (B, action_dim) per call; a new chunk is generated every ``n_action_steps`` calls."""
        if len(self._queue) == 0:
            self._queue.extend(self.predict_action_chunk(batch).transpose(0, 1))
        return self._queue.popleft()

    # --- save / load -------------------------------------------------------------------------------
    def _save_pretrained(self, save_directory: Path, state_dict: dict[str, Tensor] | None = None) -> None:
        """config.json, model.safetensors (every weight, or the trainable ones), vlm/ and README.md.

        ``state_dict`` is what LeRobot 0.6's ``save_pretrained`` passes: a full state dict gathered across ranks
        (FSDP), or None to save this module's own tensors (DDP, single process).
        """
        save_directory = Path(save_directory)
        self.config._save_pretrained(save_directory)
        self._save_weights(save_directory / SAFETENSORS_SINGLE_FILE, state_dict)
        vlm_dir = save_directory / VLM_DIR
        self.base_vlm.config.save_pretrained(vlm_dir)
        if getattr(self.base_vlm, "generation_config", None) is not None:
            self.base_vlm.generation_config.save_pretrained(vlm_dir)
        self.processor.save_pretrained(vlm_dir)
        _chat_template_as_json(vlm_dir)
        self.generate_model_card(
            self.config.dataset_repo_id, self.config.type, self.config.license, self.config.tags
        ).save(str(save_directory / "README.md"))

    def _save_weights(self, path: Path, state_dict: dict[str, Tensor] | None) -> None:
        """Every tensor (``full``) or the trainable ones (``trainable``), from ``state_dict`` when one is given.

        A given state dict holds tied weights under each of their names (as ``state_dict()`` does), as separate
        copies once gathered; one name per tensor this module shares is written, as ``save_model`` writes it, so
        that the strict ``load_model`` of ``from_pretrained`` accepts the file.
        """
        trainable = {k for k, p in self.named_parameters() if p.requires_grad}
        if state_dict is None:
            if self.config.checkpoint_weights == "full":
                save_model(self, str(path))
            else:
                save_file(
                    {k: p.detach().contiguous() for k, p in self.named_parameters() if k in trainable}, path
                )
            return
        if self.config.checkpoint_weights == "full":
            own = self.state_dict()
            kept = {k: state_dict[k] for k in _without_shared(own) if k in state_dict}
        else:
            kept = {k: v for k, v in state_dict.items() if k in trainable}
        save_file({k: v.detach().contiguous() for k, v in kept.items()}, path)

    def generate_model_card(
        self,
        dataset_repo_id: str | None,
        model_type: str,
        license: str | None,
        tags: list[str] | None,
        cfg: Any | None = None,
        dataset_meta: Any | None = None,
    ) -> ModelCard:
        """A card that says what the checkpoint is (LeRobot's template does not know plugin types).

        ``cfg`` (the train config) and ``dataset_meta`` are what LeRobot 0.6's ``push_model_to_hub`` passes; the
        card needs only the dataset's repo id from them.
        """
        if dataset_repo_id is None and dataset_meta is not None:
            dataset_repo_id = getattr(dataset_meta, "repo_id", None)
        cfg = self.config
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        total = sum(p.numel() for p in self.parameters())
        dataset = dataset_repo_id or cfg.dataset_repo_id
        base = cfg.vlm_path if not Path(cfg.vlm_path).expanduser().exists() else None
        data = ModelCardData(
            license=license or "apache-2.0",
            library_name="lerobot",
            pipeline_tag="robotics",
            tags=sorted(set(tags or []) | {"robotics", "lerobot", "hfvla", "vla", "lerobot_policy_diffrl"}),
            model_name="hfvla",
            base_model=base,
            datasets=[dataset] if dataset else None,
        )
        mode = f"LoRA r={cfg.lora_r}, alpha={cfg.lora_alpha}" if cfg.use_lora else "full fine-tuning"
        lines = [
            "# `hfvla` policy (lerobot_policy_diffrl)",
            "",
            f"An OpenVLA-style vision-language-action model built on `{cfg.vlm_path}` "
            f"({type(self.base_vlm).__name__}). Install `lerobot_policy_diffrl` so that LeRobot knows the `hfvla` "
            "type, then e.g. `lerobot-eval --policy.path=<this repo or folder> ...`.",
            "",
            f"- Cameras: {', '.join(f'`{k}`' for k in cfg.image_keys)}; state in prompt: {cfg.use_state}",
            f"- Actions: {cfg.trained_action_dim}-d, q01/q99-normalised, {cfg.n_action_bins} bins per dimension on "
            f"token ids {self.action_tokenizer.first_id}..{self.action_tokenizer.vocab_end - 1}; chunk "
            f"{cfg.chunk_size}, execute {cfg.n_action_steps}",
            f"- Fine-tuning: {mode}{', vision frozen' if cfg.freeze_vision else ''}; trainable "
            f"{trainable / 1e6:.2f} M of {total / 1e6:.2f} M parameters; checkpoint weights: {cfg.checkpoint_weights}",
            f"- Dataset: {('`' + dataset + '`') if dataset else 'not recorded'}",
        ]
        return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines) + "\n")

    @classmethod
    def from_pretrained(
        cls: builtins.type[T],
        pretrained_name_or_path: str | Path,
        *,
        config: PreTrainedConfig | None = None,
        **kwargs: Any,
    ) -> T:
        """Load a saved policy (folder or Hub repo) strictly: a missing, unexpected or mis-shaped tensor is a
        ``CheckpointError``, never silently random weights."""
        kwargs.pop("strict", None)
        folder = _checkpoint_folder(pretrained_name_or_path, kwargs.get("revision"))
        for needed in (CONFIG_NAME, SAFETENSORS_SINGLE_FILE, f"{VLM_DIR}/config.json"):
            if not (folder / needed).is_file():
                raise CheckpointError(
                    f"{pretrained_name_or_path} is not a saved hfvla policy: {needed} is missing."
                )
        if config is None:
            config = PreTrainedConfig.from_pretrained(folder)
        if not isinstance(config, HFVLAConfig):
            raise CheckpointError(
                f"{pretrained_name_or_path} holds a {getattr(config, 'type', type(config).__name__)!r} policy, "
                "not 'hfvla'."
            )
        for hub_key in ("revision", "cache_dir", "force_download", "token", "local_files_only", "proxies"):
            kwargs.pop(hub_key, None)
        return super().from_pretrained(
            folder, config=config, vlm_source=folder / VLM_DIR, strict=True, **kwargs
        )

    @classmethod
    def _load_as_safetensor(cls, model: T, model_file: str, map_location: str, strict: bool) -> T:
        if model.config.checkpoint_weights == "full":
            try:
                load_model(model, model_file, strict=True, device=str(map_location))
            except RuntimeError as err:
                raise CheckpointError(
                    f"{model_file} does not match this hfvla model: {_first_line(err)}"
                ) from err
            return model
        state = load_file(model_file, device=str(map_location))
        expected = {k: p for k, p in model.named_parameters() if p.requires_grad}
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        mismatched = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
        if missing or unexpected or mismatched:
            raise CheckpointError(
                f"{model_file} does not match this hfvla model (is vlm_path the base it was trained from?): "
                f"{len(missing)} missing, {len(unexpected)} unexpected, {len(mismatched)} mis-shaped tensors, "
                f"e.g. {(missing + unexpected + mismatched)[:3]}."
            )
        model.load_state_dict(state, strict=False)
        return model


def _vlm_folders(config: HFVLAConfig, vlm_source: str | Path | None) -> tuple[Path, Path | None]:
    """(folder of the processor and architecture, folder of the pretrained weights or None).

    A new policy takes both from ``vlm_path``. A checkpoint (``vlm_source``) brings its processor and architecture;
    a ``trainable`` one takes its frozen weights from ``vlm_path``, which must then be the same kind of model: a
    different one is refused here, before its tokenizer or image token can make a less telling error.
    """
    if vlm_source is None:
        folder = resolve_vlm(config.vlm_path, config.vlm_revision)
        return folder, folder
    saved = Path(vlm_source)
    if config.checkpoint_weights != "trainable":
        return saved, None
    base = resolve_vlm(config.vlm_path, config.vlm_revision)
    saved_type = model_type_in(saved)
    base_type = model_type_in(base)
    if saved_type != base_type:
        raise CheckpointError(
            f"this hfvla checkpoint holds only the trainable tensors of a {saved_type!r} model, but vlm_path "
            f"{config.vlm_path} is a {base_type!r} model (is vlm_path the base it was trained from?)."
        )
    return saved, base


def _chat_template_as_json(folder: Path) -> None:
    """Rewrite transformers 5's ``chat_template.jinja`` as the ``chat_template.json`` it still loads (and prefers).

    LeRobot's Hub upload keeps only ``*.json``, ``*.safetensors``, ``*.md`` and ``*.yaml`` files, so a pushed
    checkpoint would lose a ``.jinja`` template (transformers 4 wrote JSON when asked, 5 always writes Jinja).
    Extra named templates (``additional_chat_templates/``) cannot sit beside the JSON file, and hfvla only ever
    applies the default one, so they are dropped.
    """
    jinja = folder / CHAT_TEMPLATE_JINJA
    if not jinja.is_file():
        return
    template = jinja.read_text(encoding="utf-8")
    (folder / CHAT_TEMPLATE_JSON).write_text(
        json.dumps({"chat_template": template}, indent=2), encoding="utf-8"
    )
    jinja.unlink()
    shutil.rmtree(folder / "additional_chat_templates", ignore_errors=True)


def _without_shared(state: dict[str, Tensor]) -> list[str]:
    """Names of ``state`` with each shared storage (tied weights) kept once, under its first name; safetensors'
    ``load_model`` accepts a file that holds any one name of each shared group."""
    seen: set[tuple[int, int, int]] = set()
    names = []
    for name, tensor in state.items():
        key = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tensor.numel())
        if key not in seen:
            seen.add(key)
            names.append(name)
    return names


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return " ".join(line.strip() for line in text[:3])[:500]


def _checkpoint_folder(name_or_path: str | Path, revision: str | None = None) -> Path:
    """Local folder of a saved policy: the folder itself, or a snapshot of the Hub repo."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    if str(name_or_path).startswith(("/", "./", "../", "~")) or path.exists():
        raise CheckpointError(f"checkpoint directory {path} does not exist.")
    try:
        return Path(
            snapshot_download(
                str(name_or_path),
                revision=revision,
                allow_patterns=["*.json", "*.safetensors", "*.md", f"{VLM_DIR}/*"],
            )
        )
    except LocalEntryNotFoundError as err:
        raise CheckpointError(
            f"policy {name_or_path} is not available offline; download it first with "
            f"hf download {name_or_path}"
        ) from err
    except HFValidationError as err:
        raise CheckpointError(f"{name_or_path!r} is neither a folder nor a Hub repo id.") from err
    except HfHubHTTPError as err:
        raise CheckpointError(f"cannot download policy {name_or_path}: {err}") from err

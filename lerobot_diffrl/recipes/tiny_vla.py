"""Tiny, randomly initialised VLA base models built offline (SmolVLA, pi0, pi05), for the pipeline and tests.

The full-scale VLA stage fine-tunes ``lerobot/smolvla_base`` (SmolVLM2-500M); that needs the Hub and a GPU. The
tiny recipe runs the same chain on a CPU with no network, so it writes a SmolVLM of a few layers (config, word-level
tokenizer over the dataset's task words, SmolVLM's image and video processors, random weights) and a SmolVLA "base
model" on top of it, saved like ``lerobot/smolvla_base``. SmolVLA loads its VLM with ``AutoConfig.from_pretrained``
/ ``AutoProcessor.from_pretrained`` / ``AutoTokenizer.from_pretrained``; these folders satisfy exactly that, so
lerobot builds its real ``SmolVLMWithExpertModel`` from them. Nothing here replaces lerobot code.

pi0/pi05 have no such hook (their sizes and tokenizer id are hard-coded), so their tiny base models use the small
variants of :mod:`lerobot_diffrl.recipes.pi_backbone` and a word-level tokenizer saved inside the base model folder,
which the saved preprocessor names instead of ``google/paligemma-3b-pt-224``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: The special tokens SmolVLM's processor and lerobot's SmolVLA read as tokenizer attributes (``<name>_id``).
IMAGE_TOKENS = {
    "fake_image_token": "<fake_token_around_image>",
    "image_token": "<image>",
    "global_image_token": "<global-img>",
    "end_of_utterance_token": "<end_of_utterance>",
}
#: Image side the tiny vision tower is built for; SmolVLA resizes (with padding) every camera to it.
TINY_IMAGE_SIZE = 32


def _tiny_tokenizer(words: list[str]):
    """A word-level fast tokenizer over ``words`` plus the special tokens SmolVLM expects."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<unk>", "<|im_start|>", "<|im_end|>", *IMAGE_TOKENS.values(), "<row_1_col_1>"]
    vocab = {token: i for i, token in enumerate(specials)}
    for word in words:
        vocab.setdefault(word, len(vocab))
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<pad>",
        unk_token="<unk>",
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        additional_special_tokens=list(IMAGE_TOKENS.values()),
        extra_special_tokens=dict(IMAGE_TOKENS),
        model_max_length=128,
    )


DEFAULT_WORDS = (
    "pick up the alphabet soup and place it in basket bowl plate open close drawer put on top of cabinet "
    "turn stove push black cream cheese ketchup tomato sauce butter milk orange juice"
).split()


def build_tiny_smolvlm(out_dir: Path, words: list[str] | None = None) -> Path:
    """Write a tiny SmolVLM (config, tokenizer, processors; random weights) to ``out_dir`` and return it.

    Sizes: vision tower 1 layer, width 32, 32x32 images in 8x8 patches (16 patches, 4 tokens after the pixel
    shuffle); text model 2 layers, width 64, 4 heads of 16 (2 key/value heads). The weights are saved too, so the
    folder also loads with ``load_vlm_weights=true``.
    """
    from transformers import (
        SmolVLMConfig,
        SmolVLMForConditionalGeneration,
        SmolVLMImageProcessor,
        SmolVLMProcessor,
        SmolVLMVideoProcessor,
    )

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = _tiny_tokenizer(list(words or DEFAULT_WORDS))
    image_size = {"longest_edge": TINY_IMAGE_SIZE}
    processor = SmolVLMProcessor(
        image_processor=SmolVLMImageProcessor(
            size=image_size, max_image_size=image_size, do_image_splitting=False
        ),
        tokenizer=tokenizer,
        video_processor=SmolVLMVideoProcessor(size=image_size, max_image_size=image_size),
        image_seq_len=4,
    )
    config = SmolVLMConfig(
        image_token_id=tokenizer.convert_tokens_to_ids(IMAGE_TOKENS["image_token"]),
        pad_token_id=tokenizer.pad_token_id,
        scale_factor=2,
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": TINY_IMAGE_SIZE,
            "patch_size": 8,
        },
        text_config={
            "model_type": "llama",
            "vocab_size": len(tokenizer),
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 16,
            "max_position_embeddings": 512,
            "pad_token_id": tokenizer.pad_token_id,
        },
    )
    import torch

    torch.manual_seed(0)
    model = SmolVLMForConditionalGeneration(config)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir


#: ``--policy.*`` overrides that shrink a SmolVLA recipe to the tiny VLM (the rest of the recipe stays as published).
def tiny_smolvla_overrides(vlm_dir: Path) -> list[str]:
    return [
        f"--policy.vlm_model_name={vlm_dir}",
        "--policy.load_vlm_weights=false",
        "--policy.num_vlm_layers=2",
        f"--policy.resize_imgs_with_padding=[{TINY_IMAGE_SIZE},{TINY_IMAGE_SIZE}]",
        "--policy.chunk_size=4",
        "--policy.n_action_steps=4",
        "--policy.tokenizer_max_length=16",
        "--policy.device=cpu",
    ]


def build_tiny_smolvla_base(
    out_dir: Path, vlm_dir: Path, dataset_root: Path, repo_id: str = "local/tiny_libero"
):
    """A tiny SmolVLA "base model" saved like ``lerobot/smolvla_base`` (weights, config, processors), for the
    recipe's ``policy.pretrained_path``. Its features and normalisation statistics come from the dataset."""
    import torch
    from lerobot.configs.types import FeatureType
    from lerobot.datasets.lerobot_dataset import LeRobotDatasetMetadata
    from lerobot.policies.factory import make_pre_post_processors
    from lerobot.policies.smolvla.configuration_smolvla import SmolVLAConfig
    from lerobot.policies.smolvla.modeling_smolvla import SmolVLAPolicy
    from lerobot.utils.feature_utils import dataset_to_policy_features

    meta = LeRobotDatasetMetadata(repo_id, root=dataset_root)
    features = dataset_to_policy_features(meta.features)
    torch.manual_seed(0)
    cfg = SmolVLAConfig(
        vlm_model_name=str(vlm_dir),
        load_vlm_weights=False,
        num_vlm_layers=2,
        resize_imgs_with_padding=(TINY_IMAGE_SIZE, TINY_IMAGE_SIZE),
        chunk_size=4,
        n_action_steps=4,
        tokenizer_max_length=16,
        device="cpu",
        push_to_hub=False,
        input_features={k: f for k, f in features.items() if f.type is not FeatureType.ACTION},
        output_features={k: f for k, f in features.items() if f.type is FeatureType.ACTION},
    )
    policy = SmolVLAPolicy(cfg)
    pre, post = make_pre_post_processors(cfg, dataset_stats=meta.stats)
    out_dir = Path(out_dir)
    policy.save_pretrained(out_dir)
    pre.save_pretrained(out_dir)
    post.save_pretrained(out_dir)
    return out_dir


#: The pi types this module builds tiny base models for, and the tokenizer id their processors hard-code.
PI_TYPES = ("pi0", "pi05")
PALIGEMMA_TOKENIZER = "google/paligemma-3b-pt-224"
#: Folder of the tiny pi base model that holds its tokenizer (the saved preprocessor points at it).
PI_TOKENIZER_DIR = "tokenizer"
#: Prompt length per type: pi0 tokenizes the task; pi05 adds "Task: ..., State: <8 bins>;\nAction: ".
PI_TOKENIZER_MAX_LENGTH = {"pi0": 16, "pi05": 32}
#: Words of pi05's prompt template and its discretised state (256 bins written as integers).
PI05_PROMPT_WORDS = ["Task", "State", "Action", ":", ",", ";", *(str(i) for i in range(256))]


def tiny_pi_settings(policy_type: str) -> dict[str, Any]:
    """The ``PI0Config``/``PI05Config`` fields of a tiny pi model (small variants, 32x32 images, float32, CPU)."""
    if policy_type not in PI_TYPES:
        raise ValueError(f"not a pi policy type: {policy_type!r} (expected one of {PI_TYPES})")
    return {
        "paligemma_variant": "diffrl_tiny_vlm",
        "action_expert_variant": "diffrl_tiny_expert",
        "image_resolution": (TINY_IMAGE_SIZE, TINY_IMAGE_SIZE),
        "dtype": "float32",
        "gradient_checkpointing": False,
        "chunk_size": 4,
        "n_action_steps": 4,
        "tokenizer_max_length": PI_TOKENIZER_MAX_LENGTH[policy_type],
        "device": "cpu",
    }


def tiny_pi_overrides(policy_type: str) -> list[str]:
    """``--policy.*`` overrides that shrink a pi0/pi05 recipe to the tiny model (the rest stays as published)."""
    out = []
    for key, value in tiny_pi_settings(policy_type).items():
        if isinstance(value, tuple):
            value = "[" + ",".join(str(v) for v in value) + "]"
        elif isinstance(value, bool):
            value = str(value).lower()
        out.append(f"--policy.{key}={value}")
    return out


def build_tiny_pi_tokenizer(out_dir: Path, words: list[str] | None = None) -> Path:
    """A word-level tokenizer (task words, pi05's prompt words and state bins) within the small VLM vocabulary."""
    from lerobot_diffrl.recipes.pi_backbone import VARIANTS

    tokenizer = _tiny_tokenizer([*(words or DEFAULT_WORDS), *PI05_PROMPT_WORDS])
    vocab = VARIANTS["diffrl_tiny_vlm"].vocab_size
    if len(tokenizer) > vocab:
        raise ValueError(f"tiny pi tokenizer has {len(tokenizer)} tokens; the small VLM embeds {vocab}")
    tokenizer.save_pretrained(out_dir)
    return Path(out_dir)


@contextlib.contextmanager
def _paligemma_tokenizer_at(policy_type: str, tokenizer_dir: Path) -> Iterator[None]:
    """While building processors, make ``make_<type>_pre_post_processors`` name ``tokenizer_dir`` instead of the
    hard-coded PaliGemma id (which would need the Hub); the saved pipeline then records the local folder."""
    import importlib

    module = importlib.import_module(f"lerobot.policies.{policy_type}.processor_{policy_type}")
    stock = module.TokenizerProcessorStep

    def local_step(**kwargs: Any) -> Any:
        if kwargs.get("tokenizer_name") != PALIGEMMA_TOKENIZER:
            from lerobot_diffrl.recipes.pi_backbone import _changed

            raise _changed(f"{module.__name__} no longer asks for the tokenizer {PALIGEMMA_TOKENIZER!r}")
        return stock(**{**kwargs, "tokenizer_name": str(tokenizer_dir)})

    module.TokenizerProcessorStep = local_step
    try:
        yield
    finally:
        module.TokenizerProcessorStep = stock


def build_tiny_pi_base(
    out_dir: Path,
    policy_type: str,
    dataset_root: Path,
    repo_id: str = "local/tiny_libero",
    words: list[str] | None = None,
) -> Path:
    """A tiny pi0/pi05 "base model" saved like ``lerobot/pi0_base`` (weights, config, processors) plus its
    tokenizer, for the recipe's ``policy.pretrained_path``. Features and statistics come from the dataset.

    Installs :mod:`lerobot_diffrl.recipes.pi_backbone` in this process; processes that load the result need it
    too (``LEROBOT_DIFFRL_SMALL_PI=1``).
    """
    import torch
    from lerobot.configs.types import FeatureType
    from lerobot.datasets.lerobot_dataset import LeRobotDatasetMetadata
    from lerobot.policies.factory import get_policy_class, make_policy_config, make_pre_post_processors
    from lerobot.utils.feature_utils import dataset_to_policy_features

    from lerobot_diffrl.recipes.pi_backbone import install

    install((policy_type,))
    out_dir = Path(out_dir).resolve()
    tokenizer_dir = build_tiny_pi_tokenizer(out_dir / PI_TOKENIZER_DIR, words)
    meta = LeRobotDatasetMetadata(repo_id, root=dataset_root)
    features = dataset_to_policy_features(meta.features)
    cfg = make_policy_config(
        policy_type,
        push_to_hub=False,
        input_features={k: f for k, f in features.items() if f.type is not FeatureType.ACTION},
        output_features={k: f for k, f in features.items() if f.type is FeatureType.ACTION},
        **tiny_pi_settings(policy_type),
    )
    torch.manual_seed(0)
    policy = get_policy_class(policy_type)(cfg)
    with _paligemma_tokenizer_at(policy_type, tokenizer_dir):
        pre, post = make_pre_post_processors(cfg, dataset_stats=meta.stats)
    policy.save_pretrained(out_dir)
    pre.save_pretrained(out_dir)
    post.save_pretrained(out_dir)
    return out_dir

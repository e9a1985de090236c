"""Tiny, randomly initialised SmolVLA backbones built offline, for the pipeline's embedded default recipe and tests.

The full-scale VLA stage fine-tunes ``lerobot/smolvla_base`` (SmolVLM2-500M); that needs the Hub and a GPU. The
tiny recipe runs the same chain on a CPU with no network, so it writes a SmolVLM of a few layers (config, word-level
tokenizer over the dataset's task words, SmolVLM's image and video processors, random weights) and a SmolVLA "base
model" on top of it, saved like ``lerobot/smolvla_base``. SmolVLA loads its VLM with ``AutoConfig.from_pretrained``
/ ``AutoProcessor.from_pretrained`` / ``AutoTokenizer.from_pretrained``; these folders satisfy exactly that, so
lerobot builds its real ``SmolVLMWithExpertModel`` from them. Nothing here replaces lerobot code.
"""

from __future__ import annotations

from pathlib import Path

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
    from lerobot.datasets.utils import dataset_to_policy_features
    from lerobot.policies.factory import make_pre_post_processors
    from lerobot.policies.smolvla.configuration_smolvla import SmolVLAConfig
    from lerobot.policies.smolvla.modeling_smolvla import SmolVLAPolicy

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

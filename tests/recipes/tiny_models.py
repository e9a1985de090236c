"""Tiny, randomly initialised backbones built offline, so the pi0-family recipes can be exercised without the Hub.

SmolVLA loads its VLM with ``AutoConfig.from_pretrained(vlm_model_name)`` and ``AutoProcessor.from_pretrained(...)``
and its tokenizer step with ``AutoTokenizer.from_pretrained(vlm_model_name)``: a local folder holding a SmolVLM
config with a few-layer text model and vision tower, a word-level tokenizer that knows SmolVLM's image tokens, and
SmolVLM's image and video processors is all it needs. Nothing here is a stand-in for lerobot code: lerobot builds
its real ``SmolVLMWithExpertModel`` from this folder.
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


TASKS = (
    "pick up the alphabet soup and place it in the basket",
    "pick up the cream cheese and place it in the basket",
)


def write_tiny_libero_dataset(
    root: Path,
    repo_id: str = "local/tiny_libero",
    episodes: int = 2,
    frames: int = 16,
    size: int = 32,
    tasks: tuple[str, ...] = TASKS,
    state_dim: int = 8,
    env_state_dim: int = 0,
    state_names: list[str] | None = None,
) -> Path:
    """A finalized LeRobotDataset v3 in the LIBERO layout (two cameras, 8-d state, 7-d action, 20 fps).

    Actions follow a smooth per-episode trajectory (sines whose phase depends on the episode), so a policy can fit
    them and the training loss has somewhere to fall.
    """
    import numpy as np
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    image = {"dtype": "image", "shape": (size, size, 3), "names": ["height", "width", "channel"]}
    features = {
        "observation.images.image": image,
        "observation.images.image2": dict(image),
        "observation.state": {"dtype": "float32", "shape": (state_dim,), "names": state_names},
        "action": {"dtype": "float32", "shape": (7,), "names": None},
    }
    if env_state_dim:  # privileged object state, which RL-generated data may carry and human demos do not
        features["observation.environment_state"] = {
            "dtype": "float32",
            "shape": (env_state_dim,),
            "names": None,
        }
    ds = LeRobotDataset.create(
        repo_id, fps=20, features=features, root=root, use_videos=False, robot_type="panda"
    )
    rng = np.random.default_rng(0)
    for ep in range(episodes):
        phase = 0.7 * ep
        for t in range(frames):
            s = t / frames
            frame = {
                "observation.images.image": rng.integers(0, 255, (size, size, 3), dtype=np.uint8),
                "observation.images.image2": rng.integers(0, 255, (size, size, 3), dtype=np.uint8),
                "observation.state": np.full(state_dim, s, dtype=np.float32),
                "action": np.sin(2 * np.pi * s + phase + np.arange(7)).astype(np.float32),
                "task": tasks[ep % len(tasks)],
            }
            if env_state_dim:
                frame["observation.environment_state"] = np.full(env_state_dim, s, dtype=np.float32)
            ds.add_frame(frame)
        ds.save_episode()
    ds.finalize()
    return Path(root)


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

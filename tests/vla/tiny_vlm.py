"""Tiny randomly initialised vision-language models, built offline, saved like a Hub checkpoint.

Each builder writes a folder that ``AutoConfig`` / ``AutoModelForImageTextToText`` / ``AutoProcessor`` load exactly
like a real checkpoint (config.json, model.safetensors, tokenizer and processor files), so the ``hfvla`` policy is
exercised through the same loading path it uses for ``HuggingFaceTB/SmolVLM-256M-Instruct``,
``google/paligemma-3b-pt-224`` or ``Qwen/Qwen2.5-VL-3B-Instruct``; only the sizes differ (2 layers, hidden 64,
32x32 images, a ~700-token vocabulary).

Tokenizers are trained here with the ``tokenizers`` library (byte-level BPE, as SmolLM2/Qwen/GPT-2 use; for
PaliGemma a Gemma-style "▁" BPE with byte fallback, as Gemma's). Like real LLM vocabularies, the end of the *base*
vocabulary holds tokens that ordinary text never produces: 256 (byte-level spellings of) CJK characters that no BPE
merge reaches. They play the role of Llama's rare tokens that OpenVLA overwrites with action bins. Model special
tokens (image placeholders, end of turn, padding) are *added* tokens after the base vocabulary, as in the real
tokenizers, so ``tokenizer.vocab_size`` excludes them (Gemma keeps ``<pad> <eos> <bos> <unk>`` at ids 0-3 of the
base vocabulary, as the real one does).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch

#: Text the tiny tokenizers are trained on: the hfvla prompt, LIBERO-style instructions and digits.
CORPUS = [
    "In: What action should the robot take to pick up the bowl?\nOut:",
    "What action should the robot take to open the drawer?",
    "pick up the alphabet soup and place it in the basket",
    "pick up the cream cheese and place it in the basket",
    "put the black bowl on the plate",
    "open the top drawer of the cabinet",
    "turn on the stove and put the moka pot on it",
    "State: 0 1 2 3 4 5 6 7 8 9 10 100 128 200 255",
    "User: Assistant: user assistant system",
] * 4

N_RESERVED = 256  # unreachable base-vocabulary tokens at the end (the "least used" ids)
IMAGE_SIZE = 32
PATCH = 8

IDEFICS3_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] | capitalize }}:"
    "{% for item in message['content'] %}{% if item['type'] == 'image' %}<image>"
    "{% else %} {{ item['text'] }}{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)
QWEN_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% for item in message['content'] %}{% if item['type'] == 'image' %}"
    "<|vision_start|><|image_pad|><|vision_end|>{% else %}{{ item['text'] }}{% endif %}{% endfor %}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character map of byte-level BPE (what ``tokenizers``' ByteLevel uses).

    Written out here because transformers moves it between releases (``models.gpt2.tokenization_gpt2`` in 4.x,
    ``convert_slow_tokenizer`` in 5.x) and the tests only need the fixed table.
    """
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    chars = list(printable)
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, chars), strict=True))


def _train_bpe(special_tokens: list[str], merges_budget: int = 160):
    """Byte-level BPE trained on CORPUS, then N_RESERVED unreachable tokens appended to the base vocabulary and the
    model's special tokens added after it. Returns a ``tokenizers.Tokenizer``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=len(alphabet) + merges_budget, initial_alphabet=alphabet, show_progress=False
    )
    tok.train_from_iterator(CORPUS, trainer)
    model = json.loads(tok.to_str())["model"]
    vocab: dict[str, int] = dict(model["vocab"])
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    byte_char = bytes_to_unicode()
    code = 0x4E00
    while len(vocab) < len(model["vocab"]) + N_RESERVED:
        piece = "".join(byte_char[b] for b in chr(code).encode("utf-8"))
        code += 1
        if piece not in vocab:
            vocab[piece] = len(vocab)
    tok.model = models.BPE(vocab=vocab, merges=merges)
    tok.add_special_tokens(special_tokens)
    return tok


def _gemma_tokenizer():
    """A Gemma-style tokenizer (``GemmaTokenizer``: BPE over "▁"-joined text with byte fallback, as SentencePiece
    exports are) trained on CORPUS, with ``<pad> <eos> <bos> <unk> <mask>`` as ids 0-4 of the base vocabulary and
    N_RESERVED CJK characters, which the corpus never contains, at its end.

    transformers 5 rebuilds a ``GemmaTokenizer`` from the vocabulary and merges of ``tokenizer.json`` with its own
    normaliser and decoder, so a byte-level vocabulary (``_train_bpe``) would not survive a save and reload; the
    real PaliGemma tokenizer is built this way too (``<unk>`` must then be a base-vocabulary token).
    """
    from tokenizers import Tokenizer, models, normalizers, trainers
    from transformers import GemmaTokenizer

    specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Replace(" ", "▁")
    alphabet = sorted(set("".join(CORPUS).replace(" ", "▁")))
    trainer = trainers.BpeTrainer(
        vocab_size=len(specials) + len(alphabet) + 160,
        special_tokens=specials,
        initial_alphabet=alphabet,
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer)
    model = json.loads(tok.to_str())["model"]
    vocab: dict[str, int] = dict(model["vocab"])
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    base = len(vocab)
    vocab.update({chr(0x4E00 + i): base + i for i in range(N_RESERVED)})
    return GemmaTokenizer(vocab=vocab, merges=merges, extra_special_tokens=["<image>"])


def _save(out: Path, model: torch.nn.Module, processor) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def build_tiny_idefics3(out: Path, seed: int = 0) -> Path:
    """SmolVLM-style (Idefics3: SigLIP-like vision, pixel-shuffle connector, Llama text) with a chat template."""
    from transformers import (
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        Idefics3ImageProcessor,
        Idefics3Processor,
        PreTrainedTokenizerFast,
    )

    rows = [f"<row_{i + 1}_col_{j + 1}>" for i in range(6) for j in range(6)]
    specials = ["<|endoftext|>", "<|im_start|>", "<fake_token_around_image>", "<image>", "<end_of_utterance>"]
    specials += ["<global-img>", *rows]
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=_train_bpe(specials),
        bos_token="<|im_start|>",
        eos_token="<end_of_utterance>",
        pad_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        additional_special_tokens=[
            "<fake_token_around_image>",
            "<image>",
            "<end_of_utterance>",
            "<global-img>",
        ],
    )
    image_processor = Idefics3ImageProcessor(
        do_resize=True,
        size={"longest_edge": IMAGE_SIZE},
        max_image_size={"longest_edge": IMAGE_SIZE},
        do_image_splitting=False,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    )
    scale = 2
    seq_len = (IMAGE_SIZE // PATCH) ** 2 // scale**2
    processor = Idefics3Processor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        image_seq_len=seq_len,
        chat_template=IDEFICS3_TEMPLATE,
    )
    config = Idefics3Config(
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": IMAGE_SIZE,
            "patch_size": PATCH,
        },
        text_config={
            "model_type": "llama",
            "vocab_size": len(tokenizer),
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 512,
            "pad_token_id": tokenizer.pad_token_id,
        },
        scale_factor=scale,
        image_token_id=processor.image_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    return _save(out, Idefics3ForConditionalGeneration(config).eval(), processor)


def build_tiny_paligemma(out: Path, seed: int = 0) -> Path:
    """PaliGemma-style (SigLIP vision + Gemma text, prefix-LM attention); no chat template, as the real one."""
    from transformers import (
        PaliGemmaConfig,
        PaliGemmaForConditionalGeneration,
        PaliGemmaProcessor,
        SiglipImageProcessor,
    )

    tokenizer = _gemma_tokenizer()
    image_processor = SiglipImageProcessor(
        size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}, image_mean=[0.5] * 3, image_std=[0.5] * 3
    )
    image_processor.image_seq_length = (IMAGE_SIZE // PATCH) ** 2
    processor = PaliGemmaProcessor(image_processor=image_processor, tokenizer=tokenizer)
    config = PaliGemmaConfig(
        vision_config={
            "model_type": "siglip_vision_model",
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": IMAGE_SIZE,
            "patch_size": PATCH,
            "projection_dim": 64,
            "vision_use_head": False,  # as PaliGemma: the SigLIP pooling head is not used
        },
        text_config={
            "model_type": "gemma",
            "vocab_size": len(processor.tokenizer),
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 1,
            "head_dim": 16,
            "max_position_embeddings": 512,
        },
        image_token_index=processor.image_token_id,
        projection_dim=64,
        hidden_size=64,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    return _save(out, PaliGemmaForConditionalGeneration(config).eval(), processor)


def build_tiny_qwen2_5_vl(out: Path, seed: int = 0) -> Path:
    """Qwen2.5-VL-style (windowed ViT with 2x2 patch merger, M-RoPE text model) with a chat template."""
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2TokenizerFast,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
    )

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>"]
    specials += ["<|image_pad|>", "<|video_pad|>"]
    tokenizer = Qwen2TokenizerFast(
        tokenizer_object=_train_bpe(specials),
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
    )
    pixels = IMAGE_SIZE * IMAGE_SIZE
    sizes = {
        "patch_size": PATCH,
        "merge_size": 2,
        "temporal_patch_size": 2,
        "min_pixels": pixels,
        "max_pixels": pixels,
    }
    image_processor = Qwen2VLImageProcessor(**sizes)
    video_processor = Qwen2VLVideoProcessor(**sizes)
    processor = Qwen2_5_VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=QWEN_TEMPLATE,
    )
    ids = tokenizer.convert_tokens_to_ids
    config = Qwen2_5_VLConfig(
        vision_config={
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "patch_size": PATCH,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": 2 * 2 * PATCH,
            "fullatt_block_indexes": [1],
            "out_hidden_size": 64,
        },
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 512,
            "rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 3]},
        },
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    return _save(out, Qwen2_5_VLForConditionalGeneration(config).eval(), processor)


BUILDERS: dict[str, Callable[[Path], Path]] = {
    "idefics3": build_tiny_idefics3,
    "paligemma": build_tiny_paligemma,
    "qwen2_5_vl": build_tiny_qwen2_5_vl,
}


TASKS = ["pick up the alphabet soup and place it in the basket", "open the top drawer of the cabinet"]


def tiny_action(task_index: int, frame: int, frames: int) -> list[float]:
    """The dataset's action: a per-task, per-dimension level, raised by 0.4 in the second half of the episode
    (the images' grey level tells the halves apart). Each episode spans two values per dimension, which lerobot's
    per-episode q01/q99 need, and the whole dataset uses a few dozen action tokens: a signal that a tiny random
    model learns within a few steps, with LoRA too."""
    step = 0.4 if frame >= frames // 2 else 0.0
    return [0.5 * (1 if (d + task_index) % 2 else -1) * (d + 1) / 7 - 0.2 + step for d in range(7)]


def write_tiny_vla_dataset(
    root: Path,
    episodes: int = 4,
    frames: int = 10,
    size: int = IMAGE_SIZE,
    cameras: tuple[str, ...] = ("image", "image2"),
) -> Path:
    """A finalized LeRobotDataset v3 (PNG images, 8-d state, 7-d action, two tasks, 20 fps) with a learnable
    signal: the action is a function of the task and of the frame index, and the images' grey level encodes the
    frame index."""
    import numpy as np
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    features = {
        f"observation.images.{cam}": {
            "dtype": "image",
            "shape": (size, size, 3),
            "names": ["height", "width", "channel"],
        }
        for cam in cameras
    }
    features["observation.state"] = {"dtype": "float32", "shape": (8,), "names": None}
    features["action"] = {"dtype": "float32", "shape": (7,), "names": None}
    ds = LeRobotDataset.create("local/tiny_vla", fps=20, features=features, root=root, use_videos=False)
    for ep in range(episodes):
        task = ep % len(TASKS)
        for t in range(frames):
            grey = np.full((size, size, 3), int(255 * t / max(frames - 1, 1)), dtype=np.uint8)
            frame = {f"observation.images.{cam}": grey for cam in cameras}
            frame["observation.state"] = np.linspace(-1, 1, 8, dtype=np.float32) * (t / frames)
            frame["action"] = np.asarray(tiny_action(task, t, frames), dtype=np.float32)
            frame["task"] = TASKS[task]
            ds.add_frame(frame)
        ds.save_episode()
    ds.finalize()
    return root

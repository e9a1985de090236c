"""The hfvla policy on tiny random Idefics3 (SmolVLM), PaliGemma and Qwen2.5-VL models, in-process."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from conftest import KINDS
from vla_helpers import make_batch, make_config

from lerobot_diffrl.errors import CheckpointError, ConfigError
from lerobot_diffrl.policies.hfvla.modeling_hfvla import HFVLAPolicy
from lerobot_diffrl.policies.hfvla.vlm_backbone import resolve_vlm, vision_module_names


def _train(policy: HFVLAPolicy, batch: dict, steps: int, lr: float = 3e-3) -> list[float]:
    opt = torch.optim.AdamW(policy.get_optim_params(), lr=lr)
    policy.train()
    losses = []
    for _ in range(steps):
        loss, _ = policy.forward(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    policy.eval()
    return losses


@pytest.mark.parametrize("kind", KINDS)
def test_labels_supervise_only_action_tokens_and_eos(tiny_vlms, kind):
    policy = HFVLAPolicy(make_config(tiny_vlms[kind], cameras=2, chunk_size=3, n_action_steps=2))
    batch = make_batch(2, chunk=3)
    batch["action_is_pad"][1, 2] = True  # the last step of sample 1's chunk lies beyond its episode
    inputs, targets = policy.training_inputs(batch)
    n_act = 3 * 7
    assert targets.shape == (2, n_act)
    assert torch.equal(targets, policy.action_tokenizer.encode(batch["action"]).reshape(2, n_act))
    ids, labels = inputs["input_ids"], inputs["labels"]
    eos = policy.processor.tokenizer.eos_token_id
    assert torch.equal(ids[:, -n_act - 1 : -1], targets) and (ids[:, -1] == eos).all()
    assert (labels[:, : -n_act - 1] == -100).all()  # prompt, images and padding are never supervised
    assert torch.equal(labels[0, -n_act - 1 :], torch.cat([targets[0], torch.tensor([eos])]))
    assert (labels[1, -8:-1] == -100).all() and torch.equal(labels[1, -n_act - 1 : -8], targets[1, :-7])
    assert labels[1, -1] == eos
    assert inputs["attention_mask"][:, -n_act - 1 :].all()
    if policy._prefix_lm:  # PaliGemma: bidirectional prefix (type 0), causal suffix (type 1)
        assert torch.equal(inputs["token_type_ids"], (labels != -100).long() | (inputs["token_type_ids"] > 0))
        assert (inputs["token_type_ids"][:, -n_act - 1 :] == 1).all()
        assert (inputs["token_type_ids"][:, : -n_act - 1] == 0).all()


def test_prompt_follows_openvla_and_the_chat_template(tiny_vlms):
    batch = make_batch(1)
    smol = HFVLAPolicy(make_config(tiny_vlms["idefics3"], cameras=2))
    assert smol.prompts(batch) == [
        "User:<image><image> What action should the robot take to pick up the alphabet soup and place it in "
        "the basket?<end_of_utterance>\nAssistant:"
    ]
    pali = HFVLAPolicy(make_config(tiny_vlms["paligemma"], state=True))  # no chat template: OpenVLA's format
    state = " ".join(str(b) for b in pali.action_tokenizer.discretize(batch["observation.state"][0]).tolist())
    assert pali.prompts(batch) == [
        "<image>In: What action should the robot take to pick up the alphabet soup and place it in the basket? "
        f"State: {state}\nOut:"
    ]


@pytest.mark.parametrize("kind", KINDS)
def test_training_and_constrained_greedy_decoding_agree(tiny_vlms, kind):
    """After memorising a batch, generation reproduces the trained action tokens: prompt, masks and positions at
    inference are those of training. Every generated token is an action token."""
    torch.manual_seed(0)
    policy = HFVLAPolicy(make_config(tiny_vlms[kind], cameras=2, state=True, use_lora=False, chunk_size=2))
    batch = make_batch(2, chunk=2)
    _, targets = policy.training_inputs(batch)
    losses = _train(policy, batch, steps=35)
    assert losses[-1] < 0.5 * losses[0]
    tokens = policy.generate_action_tokens(batch)
    assert policy.action_tokenizer.is_action_token(tokens).all()
    assert torch.equal(tokens, targets)
    chunk = policy.predict_action_chunk(batch)
    assert chunk.shape == (2, 1, 7)  # n_action_steps=1 of chunk_size=2
    assert (chunk - batch["action"][:, :1]).abs().max() <= 1 / 256 + 1e-6


def test_constrained_decoding_never_emits_other_tokens(tiny_vlms):
    """Even when the model strongly prefers a non-action token, only action tokens come out."""
    policy = HFVLAPolicy(make_config(tiny_vlms["idefics3"], chunk_size=2, n_action_steps=2))
    head = policy.base_vlm.get_output_embeddings().weight
    with torch.no_grad():
        head[policy.eos_token_id] = 50 * head[policy.eos_token_id].sign()
        head[policy.action_tokenizer.first_id : policy.action_tokenizer.vocab_end] *= 0.01
    batch = make_batch(3)
    enc = policy.encode_prompts(batch)
    with torch.no_grad():
        free_choice = policy.vlm(**enc).logits[:, -1].argmax(-1)
    assert not policy.action_tokenizer.is_action_token(free_choice).any()
    tokens = policy.generate_action_tokens(batch)
    assert tokens.shape == (3, 14) and policy.action_tokenizer.is_action_token(tokens).all()
    policy.reset()
    first = policy.select_action(batch)
    second = policy.select_action(batch)  # from the queue: the second action of the same chunk
    chunk = policy.action_tokenizer.decode(tokens).reshape(3, 2, 7)
    assert torch.equal(first, chunk[:, 0]) and torch.equal(second, chunk[:, 1])


@pytest.mark.parametrize("kind", KINDS)
def test_lora_trains_only_adapters(tiny_vlms, kind):
    policy = HFVLAPolicy(make_config(tiny_vlms[kind], use_lora=True))
    trainable = [n for n, p in policy.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    vision = vision_module_names(policy.base_vlm)
    assert vision
    assert any(f".{v}." in n for n in trainable for v in ("vision_model", "vision_tower", "visual"))

    frozen_vision = HFVLAPolicy(make_config(tiny_vlms[kind], use_lora=True, freeze_vision=True))
    names = [n for n, p in frozen_vision.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n for n in names)
    vision_words = (".vision_model.", ".vision_tower.", ".visual.", ".connector.", ".multi_modal_projector.")
    assert not any(w in n for n in names for w in vision_words)
    assert len(names) < len(trainable)

    qv = HFVLAPolicy(make_config(tiny_vlms[kind], use_lora=True, lora_target_modules="q_proj,v_proj"))
    qv_names = [n for n, p in qv.named_parameters() if p.requires_grad]
    assert qv_names and all(".q_proj." in n or ".v_proj." in n for n in qv_names)

    full = HFVLAPolicy(make_config(tiny_vlms[kind], use_lora=False, freeze_vision=True))
    for name, param in full.base_vlm.named_parameters():
        in_vision = any(name == v or name.startswith(v + ".") for v in vision)
        assert param.requires_grad != in_vision, name
    # an optimizer step moves only what is trainable
    before = {n: p.detach().clone() for n, p in frozen_vision.named_parameters()}
    _train(frozen_vision, make_batch(2), steps=1, lr=1e-2)
    changed = {n for n, p in frozen_vision.named_parameters() if not torch.equal(p, before[n])}
    assert changed and changed <= set(names)


@pytest.mark.parametrize("kind", KINDS)
def test_bfloat16_lora_with_gradient_checkpointing_reaches_every_adapter(tiny_vlms, kind):
    """Every trainable tensor gets a gradient (what DDP needs), also inside checkpointed vision blocks."""
    config = make_config(tiny_vlms[kind], cameras=2, torch_dtype="bfloat16", gradient_checkpointing=True)
    policy = HFVLAPolicy(config)
    assert policy.dtype == torch.bfloat16
    policy.train()
    loss, metrics = policy.forward(make_batch(2))
    loss.backward()
    assert torch.isfinite(loss) and set(metrics) == {"action_accuracy", "action_l1"}
    assert [n for n, p in policy.named_parameters() if p.requires_grad and p.grad is None] == []
    policy.eval()
    assert policy.action_tokenizer.is_action_token(policy.generate_action_tokens(make_batch(2))).all()


@pytest.mark.parametrize(
    ("kind", "overrides"),
    [
        ("idefics3", {"use_lora": False}),
        ("paligemma", {"use_lora": True, "freeze_vision": True}),
        ("qwen2_5_vl", {"use_lora": True, "checkpoint_weights": "trainable"}),
    ],
)
def test_checkpoint_reloads_bit_exactly(tiny_vlms, tmp_path, kind, overrides):
    torch.manual_seed(0)
    policy = HFVLAPolicy(make_config(tiny_vlms[kind], cameras=2, chunk_size=2, n_action_steps=2, **overrides))
    batch = make_batch(2, chunk=2)
    _train(policy, batch, steps=3, lr=1e-2)
    expected = policy.generate_action_tokens(batch)
    policy.save_pretrained(tmp_path / "saved")
    card = (tmp_path / "saved" / "README.md").read_text()
    assert "hfvla" in card and "Model type not recognized" not in card
    # Keep only what LeRobot's push_model_to_hub uploads (allow_patterns in lerobot/policies/pretrained.py).
    ckpt = tmp_path / "ckpt"
    for path in (tmp_path / "saved").rglob("*"):
        if path.is_file() and path.suffix in (".json", ".safetensors", ".md", ".yaml"):
            (ckpt / path.relative_to(tmp_path / "saved")).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, ckpt / path.relative_to(tmp_path / "saved"))
    assert (ckpt / "vlm" / "chat_template.json").is_file() or kind == "paligemma"

    loaded = HFVLAPolicy.from_pretrained(ckpt)
    assert loaded.prompts(batch) == policy.prompts(batch)
    assert loaded.config.trained_action_dim == 7 and loaded.config.image_keys == policy.config.image_keys
    reference = dict(policy.state_dict())
    for name, tensor in loaded.state_dict().items():
        assert torch.equal(tensor, reference[name]), name
    assert torch.equal(loaded.generate_action_tokens(batch), expected)
    assert [n for n, p in loaded.named_parameters() if p.requires_grad] == [
        n for n, p in policy.named_parameters() if p.requires_grad
    ]
    size = (ckpt / "model.safetensors").stat().st_size
    n_bytes = sum(p.numel() * 4 for p in policy.parameters() if p.requires_grad)
    if overrides.get("checkpoint_weights") == "trainable":
        assert size < 2 * n_bytes  # only the adapters
    else:
        assert size > sum(p.numel() * 4 for p in policy.parameters()) * 0.9


SPLIT = {"do_image_splitting": True, "size": {"longest_edge": 64}}  # 2x2 tiles of 32 px + the global image


def test_image_processor_overrides_apply_and_persist(tiny_vlms, tmp_path):
    batch = make_batch(1)
    plain = HFVLAPolicy(make_config(tiny_vlms["idefics3"]))
    split = HFVLAPolicy(make_config(tiny_vlms["idefics3"], image_processor_overrides=SPLIT))
    assert split.processor.image_processor.do_image_splitting is True
    # 4 tiles + the global image instead of the global image alone
    assert (
        split.encode_prompts(batch)["input_ids"].shape[1] > plain.encode_prompts(batch)["input_ids"].shape[1]
    )
    split.save_pretrained(tmp_path / "ckpt")
    reloaded = HFVLAPolicy.from_pretrained(tmp_path / "ckpt")
    assert reloaded.processor.image_processor.do_image_splitting is True
    assert torch.equal(reloaded.encode_prompts(batch)["input_ids"], split.encode_prompts(batch)["input_ids"])
    with pytest.raises(ConfigError, match="has no attribute 'no_such_setting'"):
        HFVLAPolicy(make_config(tiny_vlms["idefics3"], image_processor_overrides={"no_such_setting": 1}))


def test_checkpoint_problems_are_checkpoint_errors(tiny_vlms, tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        HFVLAPolicy.from_pretrained(tmp_path / "missing")
    policy = HFVLAPolicy(make_config(tiny_vlms["idefics3"]))
    policy.save_pretrained(tmp_path / "ckpt")
    (tmp_path / "ckpt" / "vlm" / "config.json").unlink()
    with pytest.raises(CheckpointError, match="vlm/config.json is missing"):
        HFVLAPolicy.from_pretrained(tmp_path / "ckpt")
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    config["vlm_path"] = str(tiny_vlms["paligemma"])  # a trainable-only checkpoint on the wrong base
    config["checkpoint_weights"] = "trainable"
    policy.config.checkpoint_weights = "trainable"
    policy.save_pretrained(tmp_path / "lora")
    (tmp_path / "lora" / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="is vlm_path the base it was trained from"):
        HFVLAPolicy.from_pretrained(tmp_path / "lora")


def test_features_that_do_not_match_are_config_errors(tiny_vlms):
    with pytest.raises(ConfigError, match=r"needs camera\(s\) observation.images.wrist .* has observation"):
        HFVLAPolicy(make_config(tiny_vlms["idefics3"], image_keys=["observation.images.wrist"]))
    with pytest.raises(ConfigError, match="predicts 7-d actions but the dataset/environment has 6-d"):
        HFVLAPolicy(make_config(tiny_vlms["idefics3"], action_dim=6, trained_action_dim=7))
    with pytest.raises(ConfigError, match="use_state=True needs a 1-d `observation.state`"):
        cfg = make_config(tiny_vlms["idefics3"], state=True)
        cfg.input_features.pop("observation.state")
        HFVLAPolicy(cfg)
    with pytest.raises(ConfigError, match="n_action_steps must be in"):
        make_config(tiny_vlms["idefics3"], chunk_size=2, n_action_steps=3)


def test_base_model_problems(tmp_path):
    with pytest.raises(CheckpointError) as err:
        resolve_vlm("hfvla-tests/never-downloaded")
    assert str(err.value) == (
        "base model hfvla-tests/never-downloaded is not available offline; download it first with "
        "hf download hfvla-tests/never-downloaded"
    )
    with pytest.raises(CheckpointError, match="does not exist"):
        resolve_vlm(str(tmp_path / "nowhere"))
    openvla = tmp_path / "openvla-7b"
    openvla.mkdir()
    (openvla / "config.json").write_text(
        json.dumps(
            {
                "model_type": "openvla",
                "auto_map": {"AutoModelForVision2Seq": "modeling_prismatic.OpenVLAForActionPrediction"},
            }
        )
    )
    with pytest.raises(ConfigError, match="OpenVLA .* transformers==4.40.1"):
        HFVLAPolicy(make_config(openvla))
    text_only = tmp_path / "llama"
    text_only.mkdir()
    (text_only / "config.json").write_text(json.dumps({"model_type": "llama", "vocab_size": 300}))
    with pytest.raises(ConfigError, match="not a vision-language model"):
        from lerobot_diffrl.policies.hfvla.vlm_backbone import load_vlm

        load_vlm(text_only, weights=False)


def test_processors_normalise_what_the_policy_reads_with_quantiles(tiny_vlms):
    from lerobot_diffrl.errors import DatasetError
    from lerobot_diffrl.policies.hfvla.processor_hfvla import make_hfvla_pre_post_processors

    config = make_config(tiny_vlms["idefics3"])
    stats = {"action": {"q01": torch.full((7,), -2.0), "q99": torch.full((7,), 2.0)}}
    pre, post = make_hfvla_pre_post_processors(config, dataset_stats=stats)  # no state stats needed: unused
    out = pre(
        {
            "observation.images.image": torch.rand(3, 32, 32),
            "observation.state": torch.full((8,), 5.0),
            "action": torch.full((7,), 1.0),
            "task": "open the drawer",
        }
    )
    assert torch.allclose(out["action"], torch.full((1, 7), 0.5))  # 2 (1 - -2) / 4 - 1
    assert torch.equal(out["observation.state"], torch.full((1, 8), 5.0))  # untouched: not used by the policy
    assert torch.allclose(post(torch.full((1, 7), -1.0)), torch.full((1, 7), -2.0))
    with pytest.raises(DatasetError, match="no q01/q99 quantiles.*augment_dataset_quantile_stats"):
        make_hfvla_pre_post_processors(config, dataset_stats={"action": {"min": torch.zeros(7)}})
    with pytest.raises(DatasetError, match="'observation.state'"):
        make_hfvla_pre_post_processors(make_config(tiny_vlms["idefics3"], state=True), dataset_stats=stats)

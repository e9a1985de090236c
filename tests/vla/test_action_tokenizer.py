"""OpenVLA-style action tokens: quantile normalisation, 256 bins, the least-used vocabulary ids, round trips."""

from __future__ import annotations

import pytest
import torch
from tiny_vlm import CORPUS, N_RESERVED, build_tiny_idefics3

from lerobot_diffrl.errors import ConfigError
from lerobot_diffrl.policies.hfvla.action_tokenizer import ActionTokenizer


def test_round_trip_error_is_at_most_half_a_bin():
    tok = ActionTokenizer(vocab_end=1000, n_bins=256)
    x = torch.rand(10_000, 7) * 2 - 1
    decoded = tok.decode(tok.encode(x))
    assert decoded.shape == x.shape
    assert (decoded - x).abs().max() <= 1 / 256 + 1e-6  # within 1/255 of the input, as OpenVLA's bins
    # exact bin centres decode to themselves; every bin is reachable
    centres = tok.bin_centres(torch.arange(256))
    assert torch.equal(tok.decode(tok.encode(centres)), centres)
    assert tok.discretize(x).unique().numel() == 256


def test_bins_order_and_clipping():
    tok = ActionTokenizer(vocab_end=1000, n_bins=256)
    values = torch.tensor([-5.0, -1.0, -0.999, 0.0, 0.999, 1.0, 7.0])
    bins = tok.discretize(values)
    assert bins.tolist() == [0, 0, 0, 128, 255, 255, 255]
    ids = tok.encode(values)
    # bin b is token vocab_end - 1 - b: the most negative value takes the very last id, as in OpenVLA
    assert ids.tolist() == [999, 999, 999, 871, 744, 744, 744]
    assert tok.first_id == 744 and bool(tok.is_action_token(ids).all())
    assert tok.decode(ids)[0] == pytest.approx(-1 + 1 / 256) and tok.decode(ids)[-1] == pytest.approx(
        1 - 1 / 256
    )
    with pytest.raises(ValueError, match="not action tokens"):
        tok.decode(torch.tensor([743]))


def test_quantile_normalisation_round_trip_through_lerobot_steps():
    """lerobot's QUANTILES Normalizer + bins + Unnormalizer recover actions within half a bin in dataset units."""
    from lerobot.configs.types import FeatureType, NormalizationMode, PolicyFeature
    from lerobot.processor import (
        NormalizerProcessorStep,
        TransitionKey,
        UnnormalizerProcessorStep,
        create_transition,
    )

    q01 = torch.tensor([-0.5, 0.0, -2.0, 1.0, -1.0, -0.1, -1.0])
    q99 = torch.tensor([0.5, 3.0, 2.0, 1.5, 1.0, 0.1, 1.0])
    stats = {"action": {"q01": q01, "q99": q99}}
    features = {"action": PolicyFeature(type=FeatureType.ACTION, shape=(7,))}
    norm_map = {"ACTION": NormalizationMode.QUANTILES}
    normalize = NormalizerProcessorStep(features=features, norm_map=norm_map, stats=stats)
    unnormalize = UnnormalizerProcessorStep(features=features, norm_map=norm_map, stats=stats)
    tok = ActionTokenizer(vocab_end=500, n_bins=256)
    actions = q01 + torch.rand(1000, 7) * (q99 - q01)
    normalised = normalize(create_transition(action=actions))[TransitionKey.ACTION]
    assert normalised.min() >= -1 and normalised.max() <= 1
    decoded = tok.decode(tok.encode(normalised))
    back = unnormalize(create_transition(action=decoded))[TransitionKey.ACTION]
    assert ((back - actions).abs() <= (q99 - q01) / 2 / 256 + 1e-5).all()
    # outliers beyond the quantiles saturate at the outermost bin centres
    outlier = normalize(create_transition(action=q99[None] + 10))[TransitionKey.ACTION]
    top = unnormalize(create_transition(action=tok.decode(tok.encode(outlier))))[TransitionKey.ACTION]
    assert torch.allclose(top[0], q99 - (q99 - q01) / 512, atol=1e-5)


def test_least_used_ids_of_a_real_tokenizer(tmp_path):
    """The window is the last 256 ids of the base vocabulary: below the added special tokens, never produced by
    tokenising ordinary text, and not overlapping any special id."""
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(build_tiny_idefics3(tmp_path / "vlm"))
    tokenizer = processor.tokenizer
    tok = ActionTokenizer.from_tokenizer(tokenizer, reserved_ids=[processor.image_token_id])
    assert tok.vocab_end == tokenizer.vocab_size
    assert set(tok.token_ids.tolist()) == set(range(tokenizer.vocab_size - N_RESERVED, tokenizer.vocab_size))
    assert not set(tok.token_ids.tolist()) & set(tokenizer.all_special_ids)
    assert (
        max(tokenizer.all_special_ids) >= tokenizer.vocab_size
    )  # specials are added after the base vocabulary
    used = {i for text in CORPUS for i in tokenizer(text).input_ids}
    assert not used & set(tok.token_ids.tolist())
    skipped = ActionTokenizer.from_tokenizer(tokenizer, skip=10)
    assert skipped.vocab_end == tokenizer.vocab_size - 10 and skipped.first_id == tokenizer.vocab_size - 266
    with pytest.raises(ConfigError, match="action_token_skip"):
        ActionTokenizer.from_tokenizer(tokenizer, reserved_ids=[tokenizer.vocab_size - 3])
    with pytest.raises(ConfigError, match="fewer than n_action_bins"):
        ActionTokenizer(vocab_end=100, n_bins=256)


def test_state_text_uses_the_same_bins():
    tok = ActionTokenizer(vocab_end=1000)
    assert tok.state_text(torch.tensor([[-1.0, 0.0, 1.0], [0.5, -0.5, 2.0]])) == ["0 128 255", "192 64 255"]

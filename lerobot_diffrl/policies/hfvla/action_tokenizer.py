"""OpenVLA-style action tokens: normalised actions -> 256 uniform bins -> the least-used ids of a VLM's vocabulary.

Actions reach the policy already normalised by lerobot's ``NormalizerProcessorStep`` in ``QUANTILES`` mode, i.e.
``2 (a - q01) / (q99 - q01) - 1`` with the dataset's 1st and 99th percentiles (OpenVLA's "BOUNDS_Q99"
normalisation). Here they are clipped to [-1, 1] (the 2 percent of outliers beyond the quantiles saturate, as in
OpenVLA) and cut into ``n_bins`` equal bins of width ``2 / n_bins``; a bin decodes to its centre, so the round-trip
error is at most ``1 / n_bins`` in normalised units.

Bin ``b`` is written as token id ``end - 1 - b`` where ``end = tokenizer.vocab_size - skip``: the last ``n_bins``
ids of the *base* vocabulary (added special tokens such as ``<image>`` come after it and are never used). For a
BPE vocabulary those are the merges learnt last, i.e. the rarest ones; OpenVLA overwrites Llama-2's ids
31744..31999 the same way (``prismatic/vla/action_tokenizer.py``). ``skip`` moves the window down for vocabularies
whose last ids are in use (openpi's FAST tokenizer skips PaliGemma's last 128 ``<seg>`` tokens).

Difference from OpenVLA's implementation, on purpose: OpenVLA digitises with ``np.digitize`` over 256 *edges*,
which gives 255 usable bins (the 256th id is reached only by exactly +1.0); here all 256 bins have equal width.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

from lerobot_diffrl.errors import ConfigError


class ActionTokenizer:
    """Maps normalised actions to bin token ids and back.

    Args:
        vocab_end: One past the highest action token id (``tokenizer.vocab_size - skip``).
        n_bins: Number of uniform bins over [-1, 1] (OpenVLA: 256).
    """

    def __init__(self, vocab_end: int, n_bins: int = 256) -> None:
        if n_bins < 2:
            raise ConfigError(f"n_action_bins must be at least 2; got {n_bins}.")
        if vocab_end < n_bins:
            raise ConfigError(
                f"the vocabulary has only {vocab_end} usable ids, fewer than n_action_bins={n_bins}."
            )
        self.n_bins = n_bins
        self.vocab_end = vocab_end
        #: token id of bin b is token_ids[b] (descending: bin 0, the most negative value, is the last id).
        self.token_ids = torch.arange(vocab_end - 1, vocab_end - 1 - n_bins, -1, dtype=torch.long)

    @classmethod
    def from_tokenizer(
        cls, tokenizer, n_bins: int = 256, skip: int = 0, reserved_ids: Iterable[int | None] = ()
    ) -> ActionTokenizer:
        """The action tokenizer for a Hugging Face tokenizer.

        Raises ``ConfigError`` if an action id would collide with a special token (``tokenizer.all_special_ids``
        or ``reserved_ids``, e.g. the processor's image token): the window must then move (``skip``).
        """
        end = int(tokenizer.vocab_size) - skip
        tok = cls(end, n_bins)
        reserved = {int(i) for i in [*tokenizer.all_special_ids, *reserved_ids] if i is not None}
        clash = sorted(reserved & set(tok.token_ids.tolist()))
        if clash:
            raise ConfigError(
                f"action token ids {tok.token_ids.min().item()}..{tok.token_ids.max().item()} include special "
                f"token id(s) {clash[:5]} of this tokenizer; set policy.action_token_skip so that the last "
                f"{n_bins} ids before vocab_size - skip are ordinary tokens."
            )
        return tok

    @property
    def first_id(self) -> int:
        """Lowest action token id."""
        return self.vocab_end - self.n_bins

    def discretize(self, actions: Tensor) -> Tensor:
        """Bin index (long, same shape) of each normalised value; values are clipped to [-1, 1] first."""
        x = actions.detach().float().clamp(-1.0, 1.0)
        return ((x + 1.0) * (self.n_bins / 2.0)).floor().long().clamp(0, self.n_bins - 1)

    def bin_centres(self, bins: Tensor) -> Tensor:
        """Centre of each bin in normalised units, float32."""
        return -1.0 + (bins.float() + 0.5) * (2.0 / self.n_bins)

    def encode(self, actions: Tensor) -> Tensor:
        """Token ids (long, same shape) of normalised actions."""
        return self.token_ids.to(actions.device)[self.discretize(actions)]

    def is_action_token(self, token_ids: Tensor) -> Tensor:
        """Boolean mask of ids that are action tokens."""
        return (token_ids >= self.first_id) & (token_ids < self.vocab_end)

    def token_bins(self, token_ids: Tensor) -> Tensor:
        """Bin index of each action token id; ``ValueError`` for an id outside the action window."""
        if not bool(self.is_action_token(token_ids).all()):
            bad = token_ids[~self.is_action_token(token_ids)].unique()[:5].tolist()
            raise ValueError(
                f"token ids {bad} are not action tokens ({self.first_id}..{self.vocab_end - 1})."
            )
        return self.vocab_end - 1 - token_ids.long()

    def decode(self, token_ids: Tensor) -> Tensor:
        """Normalised actions (bin centres, float32, same shape) of action token ids."""
        return self.bin_centres(self.token_bins(token_ids))

    def state_text(self, state: Tensor) -> list[str]:
        """Normalised states (B, S) as space-separated bin numbers, one string per row (``use_state`` prompts)."""
        return [" ".join(str(int(b)) for b in row) for row in self.discretize(state).cpu()]

"""Whether the Hugging Face Hub may be reached: the one reading of ``HF_HUB_OFFLINE`` every command uses.

Why read both the variable and huggingface_hub's constant: huggingface_hub reads ``HF_HUB_OFFLINE`` once, at
its import, so a variable set later (a test, a launcher) is only in the environment; and a user who sets the
constant in code is only in the constant. The accepted spellings are huggingface_hub's own.
"""

from __future__ import annotations

import os

#: Values huggingface_hub reads as true for its boolean variables (``constants._is_true``).
_TRUE = frozenset({"1", "ON", "YES", "TRUE"})


def hub_offline() -> bool:
    """Whether Hub access is disabled (``HF_HUB_OFFLINE``, read now and at huggingface_hub's import)."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE) or os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in _TRUE

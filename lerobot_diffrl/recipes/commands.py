"""Finding the console scripts the recipes launch (``lerobot-train``, ``lerobot-eval``, ``accelerate``, ours).

Why next to the running Python first: the commands must come from the same environment as the package that
launches them (a venv that is not activated has its scripts off ``PATH``); ``PATH`` is the fallback.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from lerobot_diffrl.errors import ConfigError


def console_script(
    name: str, install_hint: str = "install lerobot-diffrl and lerobot in this environment"
) -> str:
    """Absolute path of console script ``name``; :class:`ConfigError` naming ``install_hint`` if absent."""
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    if not found:
        raise ConfigError(f"{name} not found: {install_hint}")
    return found

"""Config files given with ``--config_path``: checked before draccus reads them.

Why a module of its own: the commands (``scripts.cli``) and the library code that forwards a recipe to another
command (the VLA launcher) both check the file, and library code does not import a CLI module.
"""

from __future__ import annotations

import json
from pathlib import Path

from lerobot_diffrl.errors import ConfigError


def check_config_file(path: str) -> None:
    """A missing, unreadable or malformed config file as one :class:`ConfigError` naming the file and the
    first problem, before draccus (whose messages are a traceback or the repr of a file object)."""
    import yaml

    file = Path(path).expanduser()
    if not file.is_file():
        raise ConfigError(f"--config_path {path} does not exist")
    try:
        text = file.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"--config_path {path} cannot be read: {err}") from None
    try:
        data = json.loads(text) if file.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as err:
        kind = "JSON" if file.suffix == ".json" else "YAML"
        raise ConfigError(
            f"--config_path {path} is not valid {kind}: {' '.join(str(err).split())[:240]}"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"--config_path {path} must hold a mapping of fields, got {type(data).__name__}")

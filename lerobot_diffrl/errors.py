"""Errors that entry points turn into one clear line and a non-zero exit.

Library code raises these with a message that names the fix; CLIs catch :class:`DiffRLError` (see
:func:`lerobot_diffrl.scripts.cli.run_cli`) and print ``error: <message>`` instead of a traceback. Anything
else escaping an entry point is a bug and keeps its traceback.
"""

from __future__ import annotations


class DiffRLError(Exception):
    """Base class of the project's user-facing errors."""


class LiberoSetupError(DiffRLError):
    """LIBERO cannot be set up: missing assets, unwritable config, LIBERO not installed."""


class UnknownTaskError(DiffRLError):
    """An unknown LIBERO suite name or a task id outside the suite."""


class RenderBackendError(DiffRLError):
    """No OpenGL backend (EGL, OSMesa) could start for MuJoCo's offscreen rendering."""


class ConfigError(DiffRLError):
    """An argument or configuration that cannot be honoured (wrong type, wrong shape, out of range)."""


class CheckpointError(DiffRLError):
    """A checkpoint is missing, incomplete, or of the wrong policy type."""


class DatasetError(DiffRLError):
    """A dataset is missing, not finalized, or its features do not match what is required."""

"""Shared entry-point wrapper: one clear line and a non-zero exit for user errors."""

from __future__ import annotations

import sys
from collections.abc import Callable

from lerobot_diffrl.errors import DiffRLError

#: Exit status for errors the user can fix (bad arguments, missing files, unknown tasks).
USER_ERROR_EXIT = 2
#: Exit status after Ctrl-C, as shells report SIGINT.
INTERRUPTED_EXIT = 130


def run_cli(main: Callable[[], object]) -> int:
    """Run ``main`` and map the project's errors to ``error: <message>`` on stderr and exit status 2."""
    try:
        result = main()
    except DiffRLError as err:
        print(f"error: {err}", file=sys.stderr)
        return USER_ERROR_EXIT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return INTERRUPTED_EXIT
    return int(result) if isinstance(result, int) else 0

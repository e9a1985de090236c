"""Shared entry-point plumbing: draccus parsing and one clear line plus a non-zero exit for user errors."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

import draccus
from draccus.utils import DecodingError, ParsingError

from lerobot_diffrl.errors import DiffRLError

#: Exit status for errors the user can fix (bad arguments, missing files, unknown tasks), as argparse uses.
USER_ERROR_EXIT = 2
#: Exit status after Ctrl-C, as shells report SIGINT.
INTERRUPTED_EXIT = 130


def parse_config[ConfigT](config_class: type[ConfigT], argv: Sequence[str] | None = None) -> ConfigT:
    """Parse ``--field=value`` overrides (and ``--config_path=<json|yaml>``) into ``config_class``, LeRobot-style.

    Unknown flags exit with status 2 and argparse's usage line; a value that does not decode into its field's
    type (``--steps=many``) exits with status 2 and one ``error:`` line.
    """
    try:
        return draccus.parse(config_class=config_class, args=list(sys.argv[1:] if argv is None else argv))
    except (DecodingError, ParsingError) as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(USER_ERROR_EXIT) from None


def run_cli(main: Callable[[], object]) -> int:
    """Run ``main``; map the project's errors to ``error: <message>`` on stderr and exit status 2."""
    try:
        result = main()
    except DiffRLError as err:
        print(f"error: {err}", file=sys.stderr)
        return USER_ERROR_EXIT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return INTERRUPTED_EXIT
    return int(result) if isinstance(result, int) else 0

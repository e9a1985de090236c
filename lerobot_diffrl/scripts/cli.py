"""Shared entry-point plumbing: draccus parsing and one clear line plus a non-zero exit for user errors."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence

import draccus
from draccus.utils import DecodingError, ParsingError

from lerobot_diffrl.config_files import check_config_file
from lerobot_diffrl.errors import ConfigError, DiffRLError
from lerobot_diffrl.signals import TERMINATED_EXIT, Terminated, sigterm_as_interrupt

#: Exit status for errors the user can fix (bad arguments, missing files, unknown tasks), as argparse uses.
USER_ERROR_EXIT = 2
#: Exit status after Ctrl-C, as shells report SIGINT.
INTERRUPTED_EXIT = 130


def config_path_of(argv: Sequence[str]) -> str | None:
    """The ``--config_path`` of a command line (``--config_path=X`` or ``--config_path X``), if any."""
    for i, arg in enumerate(argv):
        if arg.startswith("--config_path="):
            return arg.split("=", 1)[1]
        if arg == "--config_path" and i + 1 < len(argv):
            return argv[i + 1]
    return None


def parse_config[ConfigT](config_class: type[ConfigT], argv: Sequence[str] | None = None) -> ConfigT:
    """Parse ``--field=value`` overrides (and ``--config_path=<json|yaml>``) into ``config_class``, LeRobot-style.

    Unknown flags exit with status 2 and argparse's usage line; a value that does not decode into its field's
    type (``--steps=many``), a missing or malformed config file exit with status 2 and one ``error:`` line.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        path = config_path_of(args)
        if path is not None:
            check_config_file(path)
        return draccus.parse(config_class=config_class, args=args)
    except (DecodingError, ParsingError, ConfigError) as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(USER_ERROR_EXIT) from None


def show_project_logs(level: int = logging.INFO) -> None:
    """Show this package's log records at ``level`` on stderr.

    Why not ``logging.basicConfig`` alone: a library imported before it runs installs a root handler first, which
    makes ``basicConfig`` a no-op and leaves the root at WARNING, so the resume and progress facts a user needs
    (``resume: 3 attempts already finished``) were silently dropped. The package's own logger gets the level,
    and a handler only when nobody installed one; other libraries' INFO noise stays hidden.
    """
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("lerobot_diffrl").setLevel(level)


def run_cli(main: Callable[[], object]) -> int:
    """Run ``main``; map the project's errors to ``error: <message>`` on stderr and exit status 2, and SIGTERM
    to the same clean stop as Ctrl-C (:mod:`lerobot_diffrl.signals`), exit status 143."""
    try:
        with sigterm_as_interrupt():
            result = main()
    except DiffRLError as err:
        print(f"error: {err}", file=sys.stderr)
        return USER_ERROR_EXIT
    except Terminated:
        print("terminated", file=sys.stderr)
        return TERMINATED_EXIT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return INTERRUPTED_EXIT
    return int(result) if isinstance(result, int) else 0

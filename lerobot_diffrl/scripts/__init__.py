"""The project's command-line entry points (thin: parse, call the library, map errors to one line).

Every command first checks the installed LeRobot against the declared range, so a LeRobot 0.4/0.5 environment
gets one ``error:`` line instead of an import traceback from whichever module meets the old API first.
"""

import sys

from lerobot_diffrl.base_version import check_lerobot_version
from lerobot_diffrl.errors import DiffRLError

try:
    check_lerobot_version()
except DiffRLError as _err:
    print(f"error: {_err}", file=sys.stderr)
    raise SystemExit(2) from None

"""The LeRobot release this package runs on, checked against what is installed.

Why a check at all: a user who installs the package with ``--no-deps`` (or whose environment was changed after
the install) would otherwise meet LeRobot 0.4/0.5 as an ``ImportError`` deep inside some module. The accepted
range is read from the installed distribution's own requirements, so ``pyproject.toml`` stays its one home.
"""

from __future__ import annotations

from importlib import metadata

from lerobot_diffrl.errors import DiffRLError

DISTRIBUTION = "lerobot_policy_diffrl"


def lerobot_requirement() -> str:
    """The ``lerobot`` specifier this distribution declares (e.g. ``>=0.6.1,<0.7``)."""
    from packaging.requirements import Requirement

    for line in metadata.requires(DISTRIBUTION) or []:
        req = Requirement(line)
        if req.name == "lerobot" and req.marker is None:
            lower_first = sorted(req.specifier, key=lambda s: not s.operator.startswith(">"))
            return ",".join(str(s) for s in lower_first)
    raise DiffRLError(f"{DISTRIBUTION} declares no lerobot requirement: reinstall it")


def check_lerobot_version() -> None:
    """Raise :class:`DiffRLError` naming the fix unless the installed lerobot is in the declared range."""
    from packaging.specifiers import SpecifierSet

    spec = lerobot_requirement()
    try:
        installed = metadata.version("lerobot")
    except metadata.PackageNotFoundError:
        raise DiffRLError(f"lerobot is not installed: pip install 'lerobot[libero]{spec}'") from None
    if not SpecifierSet(spec).contains(installed, prereleases=True):
        raise DiffRLError(
            f"{DISTRIBUTION} needs lerobot{spec}, but lerobot {installed} is installed: "
            f"pip install 'lerobot[libero,pi,smolvla]{spec}' (LeRobot 0.4.x/0.5.x are not supported)"
        )

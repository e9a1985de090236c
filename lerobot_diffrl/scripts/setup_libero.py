"""``lerobot-diffrl-setup-libero``: make LIBERO usable headless and offline in one step.

Writes LIBERO's config.yaml (so nothing prompts), resolves the asset folder, optionally links it where
hf-libero looks first (so lerobot's own ``--env.type=libero`` finds it too, offline), and checks that an
OpenGL backend starts. Safe to run again: every step is idempotent.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from lerobot_diffrl.envs.libero_setup import (
    check_gl_backend,
    link_assets_into_package,
    prepare_libero,
)
from lerobot_diffrl.scripts.cli import parse_config, run_cli


@dataclass
class SetupLiberoConfig:
    #: LIBERO asset folder; default: $LEROBOT_DIFFRL_LIBERO_ASSETS, hf-libero's locations, then its download.
    assets: str | None = None
    #: Symlink the folder at <site-packages>/libero/libero/assets, where hf-libero looks first.
    link: bool = False
    #: Start an offscreen OpenGL context with $MUJOCO_GL (default egl) to prove rendering works.
    check_gl: bool = True


def setup_libero(cfg: SetupLiberoConfig) -> int:
    paths = prepare_libero(cfg.assets)
    print(f"LIBERO config: {paths.config_file}")
    print(f"LIBERO assets: {paths.assets}")
    if cfg.link:
        print(f"linked for hf-libero: {link_assets_into_package(paths.assets)}")
    if cfg.check_gl:
        print(f"OpenGL backend: {check_gl_backend()} (MUJOCO_GL)")
    return 0


def main(argv: list[str] | None = None) -> int:
    cfg = parse_config(SetupLiberoConfig, argv)
    return run_cli(lambda: setup_libero(cfg))


if __name__ == "__main__":
    sys.exit(main())

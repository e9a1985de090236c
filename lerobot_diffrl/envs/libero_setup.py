"""The one place that sets LIBERO up: config file, asset folder, GL backend.

Why this module exists: upstream LIBERO calls ``input()`` at import time when its ``config.yaml`` is missing
(headless runs die with EOFError), hf-libero ignores the config's ``assets`` key and downloads its assets from the
Hub on first use (which fails offline), and MuJoCo picks its GL backend from ``MUJOCO_GL`` only at import.
Everything that imports ``libero`` in this project calls :func:`prepare_libero` first.

Asset resolution order (first hit wins):
1. an explicit path (``--libero_assets`` / the ``assets`` argument);
2. the ``LEROBOT_DIFFRL_LIBERO_ASSETS`` environment variable;
3. hf-libero's own locations: ``<site-packages>/libero/libero/assets``, then ``~/.cache/libero/assets``;
4. hf-libero's Hub download, unless ``HF_HUB_OFFLINE`` is set.
Otherwise :class:`LiberoSetupError` names the fix.

Nothing here runs at import time: importing the package never touches the user's home directory.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import MutableMapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from lerobot_diffrl.errors import LiberoSetupError, RenderBackendError
from lerobot_diffrl.hub import hub_offline

ASSETS_ENV_VAR = "LEROBOT_DIFFRL_LIBERO_ASSETS"
CONFIG_ENV_VAR = "LIBERO_CONFIG_PATH"
#: Sub-folders every LIBERO asset tree has; a folder lacking one of them is not an asset tree.
ASSET_SUBDIRS = (
    "articulated_objects",
    "scenes",
    "stable_hope_objects",
    "stable_scanned_objects",
    "turbosquid_objects",
)
#: Keys LIBERO's ``get_libero_path`` reads from config.yaml.
CONFIG_KEYS = ("assets", "bddl_files", "benchmark_root", "datasets", "init_states")
#: Keys that point into the LIBERO installation itself; a config whose folders are gone is stale.
PACKAGE_KEYS = ("benchmark_root", "bddl_files", "init_states")
GL_BACKENDS = ("egl", "osmesa", "glfw")


@dataclass(frozen=True)
class LiberoPaths:
    """Where LIBERO reads its files from after :func:`prepare_libero`."""

    config_file: Path
    assets: Path
    benchmark_root: Path


def _libero_package_root() -> Path:
    """``<site-packages>/libero/libero`` located without importing it (its import may prompt)."""
    spec = importlib.util.find_spec("libero")
    if spec is None or not spec.submodule_search_locations:
        raise LiberoSetupError(
            "LIBERO is not installed: install this package with its dependencies "
            "(pip install lerobot_policy_diffrl, which pulls lerobot[libero] and hf-libero)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "libero"


def is_asset_tree(path: Path) -> bool:
    """True when ``path`` holds LIBERO's scene and object folders."""
    return path.is_dir() and all((path / sub).is_dir() for sub in ASSET_SUBDIRS)


def hf_libero_asset_locations() -> list[Path]:
    """The folders hf-libero itself looks at, in its own order."""
    return [_libero_package_root() / "assets", Path.home() / ".cache" / "libero" / "assets"]


def resolve_assets_path(assets: str | os.PathLike | None = None) -> Path:
    """Find LIBERO's asset tree (see the module docstring for the order) or raise with the fix."""
    if assets is not None:
        path = Path(assets).expanduser().resolve()
        if not is_asset_tree(path):
            raise LiberoSetupError(
                f"{path} is not a LIBERO asset folder (it needs {', '.join(ASSET_SUBDIRS)}); "
                "pass the folder that contains LIBERO's 'scenes' and object folders"
            )
        return path
    from_env = os.environ.get(ASSETS_ENV_VAR)
    if from_env:
        path = Path(from_env).expanduser().resolve()
        if not is_asset_tree(path):
            raise LiberoSetupError(
                f"{ASSETS_ENV_VAR}={from_env} is not a LIBERO asset folder "
                f"(it needs {', '.join(ASSET_SUBDIRS)}); fix or unset the variable"
            )
        return path
    for candidate in hf_libero_asset_locations():
        if is_asset_tree(candidate):
            return candidate.resolve()
    if hub_offline():
        raise LiberoSetupError(
            "LIBERO assets not found and HF_HUB_OFFLINE is set, so hf-libero cannot download them; "
            f"set {ASSETS_ENV_VAR}=<folder with LIBERO's assets> or run "
            "`lerobot-diffrl-setup-libero --assets <folder>` (looked in: "
            + ", ".join(str(p) for p in hf_libero_asset_locations())
            + ")"
        )
    return _download_assets()


def _download_assets() -> Path:
    """hf-libero's own Hub download into ``~/.cache/libero/assets``."""
    write_libero_config()  # download_utils imports libero.libero, which must not prompt
    try:
        from libero.libero.utils.download_utils import download_assets_from_huggingface

        path = Path(download_assets_from_huggingface())
    except Exception as err:  # network, auth, disk: all end in the same advice
        raise LiberoSetupError(
            f"LIBERO assets are not installed and downloading them from the Hugging Face Hub failed ({err}); "
            f"set {ASSETS_ENV_VAR}=<folder with LIBERO's assets> to use a local copy"
        ) from err
    if not is_asset_tree(path):
        raise LiberoSetupError(f"hf-libero's download at {path} is incomplete; delete it and retry")
    return path


def libero_config_dir() -> Path:
    """LIBERO's config folder: ``$LIBERO_CONFIG_PATH`` or LIBERO's own default ``~/.libero``."""
    return Path(os.environ.get(CONFIG_ENV_VAR, str(Path.home() / ".libero"))).expanduser()


def default_libero_config(assets: Path | None = None) -> dict[str, str]:
    """The config LIBERO would write after its prompt when the user answers 'N', plus the asset folder."""
    root = _libero_package_root()
    return {
        "benchmark_root": str(root),
        "bddl_files": str(root / "bddl_files"),
        "init_states": str(root / "init_files"),
        "datasets": str((root / ".." / "datasets").resolve()),
        "assets": str(assets if assets is not None else root / "assets"),
    }


def write_libero_config(assets: Path | None = None) -> Path:
    """Write LIBERO's config.yaml non-interactively unless a complete one exists; return its path.

    An existing file with every key is the user's and is left alone (hf-libero ignores its ``assets`` entry
    anyway), unless its package folders no longer exist, as after deleting the virtual environment it was
    written for: then it is rewritten. A file missing keys would make LIBERO assert later: an error here.
    """
    config_dir = libero_config_dir()
    config_file = config_dir / "config.yaml"
    if config_file.exists():
        try:
            existing = yaml.safe_load(config_file.read_text()) or {}
        except yaml.YAMLError as err:
            raise LiberoSetupError(
                f"{config_file} is not valid YAML ({err}); delete it to regenerate"
            ) from err
        missing = [key for key in CONFIG_KEYS if key not in existing]
        if missing:
            raise LiberoSetupError(
                f"{config_file} lacks {', '.join(missing)}; delete it (it is regenerated) or add the keys"
            )
        if all(Path(existing[key]).is_dir() for key in PACKAGE_KEYS):
            return config_file
        # The config points into a LIBERO installation that is gone (a deleted virtual environment, say):
        # it cannot serve anyone, so it is regenerated for the installed LIBERO.
    try:
        config_dir.mkdir(parents=True, exist_ok=True)
        tmp = config_file.with_suffix(".yaml.tmp")
        tmp.write_text(yaml.safe_dump(default_libero_config(assets)))
        os.replace(tmp, config_file)
    except OSError as err:
        raise LiberoSetupError(
            f"cannot write LIBERO's config at {config_file} ({err}); set {CONFIG_ENV_VAR} to a writable folder"
        ) from err
    return config_file


def prepare_libero(assets: str | os.PathLike | None = None) -> LiberoPaths:
    """Make ``import libero.libero`` safe and point hf-libero at a resolved asset tree.

    Idempotent. Exports the resolved folder in ``LEROBOT_DIFFRL_LIBERO_ASSETS`` so that worker processes
    started later (spawn/forkserver) resolve the same folder without searching again.
    """
    asset_path = resolve_assets_path(assets)
    config_file = write_libero_config(asset_path)
    os.environ[ASSETS_ENV_VAR] = str(asset_path)
    os.environ.setdefault(CONFIG_ENV_VAR, str(config_file.parent))
    import libero.libero as libero_pkg  # safe now: the config exists, so no prompt

    # hf-libero's get_assets_path() returns this cache when it is set and exists; it never reads the config.
    libero_pkg._assets_path_cache = str(asset_path)
    return LiberoPaths(config_file=config_file, assets=asset_path, benchmark_root=_libero_package_root())


def link_assets_into_package(assets: Path) -> Path:
    """Symlink an asset tree where hf-libero looks first, so lerobot's own ``--env.type=libero`` works offline.

    That path is inside site-packages; it is the location hf-libero documents for local assets.
    """
    target = _libero_package_root() / "assets"
    if target.is_symlink() or target.exists():
        if target.resolve() == assets.resolve():
            return target
        if target.is_symlink():
            target.unlink()
        else:
            raise LiberoSetupError(f"{target} already exists and is not a link; remove it to link {assets}")
    try:
        target.symlink_to(assets.resolve(), target_is_directory=True)
    except OSError as err:
        raise LiberoSetupError(f"cannot link {assets} at {target} ({err})") from err
    return target


_GL_PROBE = """
import warnings
warnings.simplefilter("error")  # glfw reports a missing display as a warning and returns a dead context
import mujoco
model = mujoco.MjModel.from_xml_string(
    '<mujoco><worldbody><light pos="0 0 1"/><geom type="sphere" size=".1"/></worldbody></mujoco>'
)
data = mujoco.MjData(model)
mujoco.mj_forward(model, data)
renderer = mujoco.Renderer(model, 16, 16)
renderer.update_scene(data)
assert renderer.render().shape == (16, 16, 3)
renderer.close()
"""

#: Backends whose probe succeeded in this process (a probe costs a child process and ~1 s).
_working_backends: set[str] = set()


def _requested_backend(backend: str | None) -> str:
    return (backend or os.environ.get("MUJOCO_GL") or "egl").lower()


def set_gl_environment(env: MutableMapping[str, str], backend: str) -> None:
    """Point ``env`` at ``backend``: ``MUJOCO_GL`` and a ``PYOPENGL_PLATFORM`` that agrees with it.

    robosuite's renderer goes through PyOpenGL, which picks its platform from ``PYOPENGL_PLATFORM``; a stale
    value (egl under glfw, say) makes it load the wrong library, so glfw clears it.
    """
    env["MUJOCO_GL"] = backend
    if backend in ("egl", "osmesa"):
        env["PYOPENGL_PLATFORM"] = backend
    else:
        env.pop("PYOPENGL_PLATFORM", None)


def check_gl_backend(backend: str | None = None, timeout_s: float = 60.0) -> str:
    """Start an offscreen GL context with ``backend`` (default ``$MUJOCO_GL`` or egl) in a child process.

    A child process, because a GL context created in a parent that later forks simulator workers deadlocks
    them, and because a backend that cannot start may abort the process rather than raise.
    Returns the backend name; raises :class:`RenderBackendError` naming ``MUJOCO_GL`` otherwise.
    """
    backend = _requested_backend(backend)
    if backend in _working_backends:
        return backend
    if backend not in GL_BACKENDS:
        raise RenderBackendError(
            f"MUJOCO_GL={backend!r} is not a MuJoCo GL backend; use MUJOCO_GL=egl (GPU or Mesa) or "
            "MUJOCO_GL=osmesa (CPU, needs libosmesa6)"
        )
    env = dict(os.environ)
    set_gl_environment(env, backend)
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _GL_PROBE], env=env, capture_output=True, text=True, timeout=timeout_s
        )
    except subprocess.TimeoutExpired as err:
        raise RenderBackendError(
            f"MUJOCO_GL={backend}: starting an OpenGL context hung for {timeout_s:.0f} s; "
            "try MUJOCO_GL=osmesa or MUJOCO_GL=egl"
        ) from err
    if proc.returncode != 0:
        detail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        hint = {
            "egl": "install libegl1 and libgl1-mesa-dri (Mesa) or an NVIDIA driver, or try MUJOCO_GL=osmesa",
            "osmesa": "install libosmesa6, or try MUJOCO_GL=egl",
            "glfw": "glfw needs a display; on a headless machine use MUJOCO_GL=egl or MUJOCO_GL=osmesa",
        }[backend]
        raise RenderBackendError(f"MUJOCO_GL={backend}: cannot start an OpenGL context ({detail}); {hint}")
    _working_backends.add(backend)
    return backend


def configure_gl_backend(backend: str | None = None) -> str:
    """Choose the GL backend for this process and its children before MuJoCo is imported.

    ``PYOPENGL_PLATFORM`` must agree with ``MUJOCO_GL`` or robosuite's renderer picks another platform.
    """
    backend = _requested_backend(backend)
    set_gl_environment(os.environ, backend)
    return backend

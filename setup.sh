#!/usr/bin/env bash
# One-step set-up of lerobot-diffrl on a fresh Debian/Ubuntu machine (idempotent: a second run takes seconds).
#   1. system libraries for headless rendering (EGL/OSMesa with Mesa) and video encoding (ffmpeg);
#   2. a virtual environment in .venv with the package and its test extras, installed with uv;
#   3. LIBERO set up non-interactively, with its assets from $LEROBOT_DIFFRL_LIBERO_ASSETS, from an offline
#      copy at ../shared/libero_assets when there is one, or else hf-libero's own download.
# Environment: PYTHON (interpreter for the venv, default python3.11 or python3), EXTRAS (default "test").
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

APT_PACKAGES=(libegl1 libgl1-mesa-dri libosmesa6 ffmpeg)
if command -v apt-get >/dev/null 2>&1 && ! dpkg -s "${APT_PACKAGES[@]}" >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "[setup] installing ${APT_PACKAGES[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${APT_PACKAGES[@]}" >/dev/null
fi

PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
if ! command -v uv >/dev/null 2>&1; then
  echo "[setup] installing uv"
  "$PYTHON" -m pip install -q uv
fi
UV="$(command -v uv || echo "$PYTHON -m uv")"
[ -x .venv/bin/python ] || $UV venv -q --python "$PYTHON" .venv
echo "[setup] installing lerobot_policy_diffrl[${EXTRAS:-test}] into .venv"
$UV pip install -q --python .venv/bin/python -e ".[${EXTRAS:-test}]"

if [ -z "${LEROBOT_DIFFRL_LIBERO_ASSETS:-}" ] && [ -d ../shared/libero_assets ]; then
  export LEROBOT_DIFFRL_LIBERO_ASSETS="$(cd ../shared/libero_assets && pwd)"
fi
export MUJOCO_GL="${MUJOCO_GL:-egl}"
# --link puts the assets where hf-libero looks first, so lerobot's own LIBERO env finds them too.
.venv/bin/lerobot-diffrl-setup-libero --link=true
echo "[setup] done"

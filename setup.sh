#!/usr/bin/env bash
# One-step set-up of lerobot-diffrl on a fresh Debian/Ubuntu machine (idempotent: a second run takes seconds).
#   1. a Python >= 3.12 (what lerobot 0.6.1 requires), found in this order: $PYTHON; python3.12, python3.13 and
#      python3 on PATH; pyenv's versions (${PYENV_ROOT:-~/.pyenv}/versions/3.12*, 3.13*, ...); uv's managed ones
#      (`uv python find`, ${XDG_DATA_HOME:-~/.local/share}/uv/python/cpython-3.1x*). Nothing is ever installed
#      into that interpreter: a system Python (PEP 668 "externally managed", like Debian 12's 3.11) stays as it is;
#   2. system libraries for headless rendering (EGL/OSMesa with Mesa) and video encoding (ffmpeg), with apt-get;
#   3. a virtual environment in .venv (recreated if an older set-up left a Python < 3.12 there), uv installed inside
#      it unless uv is already on PATH, and the package with its test extras installed by uv;
#   4. LIBERO set up non-interactively, with its assets from $LEROBOT_DIFFRL_LIBERO_ASSETS, from an offline
#      copy at ../shared/libero_assets when there is one, or else hf-libero's own download.
# Environment: PYTHON (interpreter for the venv; must be >= 3.12), EXTRAS (default "test").
# Usage: ./setup.sh [--find-python-only]   (the flag prints the interpreter step 1 chooses, then exits)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

FIND_PYTHON_ONLY=0
for arg in "$@"; do
  case "$arg" in
    --find-python-only) FIND_PYTHON_ONLY=1 ;;
    *) echo "error: unknown argument '$arg' (usage: ./setup.sh [--find-python-only])" >&2; exit 2 ;;
  esac
done

die() {
  echo "error: $*" >&2
  exit 1
}

# --- 1. a Python >= 3.12 ---------------------------------------------------------------------------------------
# probe CMD: prints "MAJOR.MINOR INTERPRETER" for a command that runs as Python, nothing (and fails) otherwise.
# INTERPRETER is the real one behind a venv or a pyenv shim. A pyenv shim for a version that is not selected
# exits 127; its message is swallowed here.
probe() {
  "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2], getattr(sys, "_base_executable", "") or sys.executable)' \
    2>/dev/null </dev/null
}
version_ok() { # MAJOR.MINOR >= 3.12
  local major="${1%%.*}" minor="${1#*.}"
  [[ "$major" =~ ^[0-9]+$ && "$minor" =~ ^[0-9]+$ ]] || return 1
  [ "$major" -gt 3 ] || { [ "$major" -eq 3 ] && [ "$minor" -ge 12 ]; }
}

PY=""
PYVER=""
try_python() { # try_python CMD: sets PY/PYVER and succeeds when CMD is a working Python >= 3.12
  local out
  out="$(probe "$1")" || return 1
  version_ok "${out%% *}" || return 1
  PYVER="${out%% *}"
  PY="${out#* }"
  [ -x "$PY" ] || PY="$1"
}

# Newest first within each pattern ("3.12.10" after "3.12.9"), 3.12 before 3.13: 3.12 is what lerobot 0.6.1
# was measured on.
glob_newest_first() {
  local pattern
  for pattern in "$@"; do
    compgen -G "$pattern" | sort -rV || true
  done
}

find_python() {
  PY=""
  PYVER=""
  if [ -n "${PYTHON:-}" ]; then
    local cmd out
    cmd="$(command -v "$PYTHON" 2>/dev/null)" || die "PYTHON=$PYTHON is not a command; point PYTHON at a Python >= 3.12, or unset it"
    out="$(probe "$cmd")" || die "PYTHON=$PYTHON does not run as Python; point PYTHON at a Python >= 3.12, or unset it"
    version_ok "${out%% *}" || die "PYTHON=$PYTHON is Python ${out%% *}, but lerobot>=0.6.1 needs Python >= 3.12 (Python 3.11 and lerobot 0.4.x are no longer supported); point PYTHON at a Python >= 3.12, or unset it"
    try_python "$cmd"
    return 0
  fi
  local name candidate
  for name in python3.12 python3.13 python3; do
    candidate="$(command -v "$name" 2>/dev/null)" || continue
    try_python "$candidate" && return 0
  done
  local pyenv_root="${PYENV_ROOT:-$HOME/.pyenv}"
  while IFS= read -r candidate; do
    [ -n "$candidate" ] && try_python "$candidate" && return 0
  done < <(glob_newest_first "$pyenv_root/versions/3.12*/bin/python3" "$pyenv_root/versions/3.1[3-9]*/bin/python3")
  if command -v uv >/dev/null 2>&1; then
    candidate="$(uv python find --system --no-project --no-python-downloads '>=3.12' 2>/dev/null </dev/null)" &&
      [ -n "$candidate" ] && try_python "$candidate" && return 0
  fi
  local uv_pythons="${XDG_DATA_HOME:-$HOME/.local/share}/uv/python"
  while IFS= read -r candidate; do
    [ -n "$candidate" ] && try_python "$candidate" && return 0
  done < <(glob_newest_first "$uv_pythons/cpython-3.12*/bin/python3" "$uv_pythons/cpython-3.1[3-9]*/bin/python3")
  return 1
}

NO_PYTHON_MESSAGE="no Python >= 3.12 found (lerobot>=0.6.1 needs it; looked at \$PYTHON, python3.12/python3.13/python3 on PATH, pyenv's and uv's Pythons); get one with 'sudo apt-get install python3.12 python3.12-venv' (Ubuntu 24.04), 'pyenv install 3.12' or 'uv python install 3.12', then run ./setup.sh again (or with PYTHON=/path/to/python3.12)"

find_python || true
if [ "$FIND_PYTHON_ONLY" -eq 1 ]; then
  [ -n "$PY" ] || die "$NO_PYTHON_MESSAGE"
  echo "$PY"
  exit 0
fi

# --- 2. system libraries ----------------------------------------------------------------------------------------
apt_has_candidate() { # apt_has_candidate PKG: apt knows an installable version of PKG
  local candidate
  candidate="$(apt-cache policy "$1" 2>/dev/null | sed -n 's/^ *Candidate: *//p')"
  [ -n "$candidate" ] && [ "$candidate" != "(none)" ]
}

APT_PACKAGES=(libegl1 libgl1-mesa-dri libosmesa6 ffmpeg)
if command -v apt-get >/dev/null 2>&1; then
  if [ -z "$PY" ]; then
    # No Python >= 3.12 anywhere: take the distribution's when it has one (Ubuntu 24.04, deadsnakes), else stop
    # here, before touching the system.
    apt_has_candidate python3.12-venv || die "$NO_PYTHON_MESSAGE"
    APT_PACKAGES+=(python3.12 python3.12-venv)
  elif [[ "$PY" == /usr/bin/* ]] && ! command -v uv >/dev/null 2>&1 &&
    ! dpkg -s "python$PYVER-venv" >/dev/null 2>&1 && apt_has_candidate "python$PYVER-venv"; then
    # Debian/Ubuntu's own Python makes venvs only with its pythonX.Y-venv package (ensurepip is split off).
    APT_PACKAGES+=("python$PYVER-venv")
  fi
  if ! dpkg -s "${APT_PACKAGES[@]}" >/dev/null 2>&1; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "[setup] installing ${APT_PACKAGES[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${APT_PACKAGES[@]}" >/dev/null
  fi
  if [ -z "$PY" ]; then
    find_python || die "$NO_PYTHON_MESSAGE"
  fi
elif [ -z "$PY" ]; then
  die "$NO_PYTHON_MESSAGE"
fi

# --- 3. the virtual environment, uv inside it, the package ------------------------------------------------------
if [ -e .venv ]; then
  venv_out="$(probe .venv/bin/python)" || venv_out=""
  if [ -z "$venv_out" ]; then
    echo "[setup] .venv has no working Python; recreating it with Python $PYVER ($PY)"
    rm -rf .venv
  elif ! version_ok "${venv_out%% *}"; then
    echo "[setup] .venv is Python ${venv_out%% *} (left by the lerobot 0.4.x set-up); recreating it with Python $PYVER ($PY)"
    rm -rf .venv
  fi
fi
if [ ! -e .venv ]; then
  echo "[setup] creating .venv with Python $PYVER ($PY)"
  if command -v uv >/dev/null 2>&1; then
    uv venv -q --python "$PY" .venv || { rm -rf .venv; die "uv venv --python $PY .venv failed (see above)"; }
  else
    "$PY" -m venv .venv ||
      { rm -rf .venv; die "$PY -m venv .venv failed (see above); on Debian/Ubuntu install python$PYVER-venv"; }
  fi
fi

if command -v uv >/dev/null 2>&1; then
  UV="$(command -v uv)"
else
  UV=.venv/bin/uv
  if [ ! -x "$UV" ]; then
    echo "[setup] installing uv into .venv"
    .venv/bin/python -m pip --version >/dev/null 2>&1 || .venv/bin/python -m ensurepip -q >/dev/null ||
      die ".venv has no pip to install uv with; install uv (https://docs.astral.sh/uv/) or remove .venv and run again"
    .venv/bin/python -m pip install -q --disable-pip-version-check uv ||
      die "installing uv into .venv failed (see above)"
  fi
fi

echo "[setup] installing lerobot_policy_diffrl[${EXTRAS:-test}] into .venv"
# uv upgrades a lerobot < 0.6 left in .venv; a resolver conflict ends in one error line after uv's explanation.
"$UV" pip install -q --python .venv/bin/python -e ".[${EXTRAS:-test}]" ||
  die "installing lerobot_policy_diffrl failed (see above); it needs Python >= 3.12 and lerobot>=0.6.1,<0.7 (lerobot 0.4.x/0.5.x are not supported)"

# --- 4. LIBERO --------------------------------------------------------------------------------------------------
if [ -z "${LEROBOT_DIFFRL_LIBERO_ASSETS:-}" ] && [ -d ../shared/libero_assets ]; then
  LEROBOT_DIFFRL_LIBERO_ASSETS="$(cd ../shared/libero_assets && pwd)"
  export LEROBOT_DIFFRL_LIBERO_ASSETS
fi
export MUJOCO_GL="${MUJOCO_GL:-egl}"
# --link puts the assets where hf-libero looks first, so lerobot's own LIBERO env finds them too.
.venv/bin/lerobot-diffrl-setup-libero --link=true
echo "[setup] done"

"""setup.sh finds a Python >= 3.12 without ever installing into a system interpreter (PEP 668), and fails with
one `error:` line when there is none.

Most tests run `setup.sh --find-python-only` (interpreter discovery only) with a fake PATH and HOME: stub
interpreters that report 3.11 and refuse `pip install` the way Debian 12's externally-managed /usr/bin/python3 does
(recording any such attempt), broken pyenv shims, and fake pyenv/uv version folders holding a link to a real
>= 3.12 interpreter. One test runs the README's real command on this machine's own Python when it is an
externally-managed < 3.12; one runs the whole script on a tiny stand-in project (venv, uv inside it, editable
install, resolver error), which needs PyPI but no torch.
"""

from __future__ import annotations

import glob
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

SETUP = Path(__file__).resolve().parents[1] / "setup.sh"
BASH = shutil.which("bash") or "/bin/bash"
# What setup.sh itself calls besides bash builtins and the interpreters it probes.
TOOLS = ("dirname", "sort", "sed", "id", "rm", "cat", "env", "mkdir", "ln", "readlink", "uname")


def real_python312() -> str | None:
    """A real interpreter >= 3.12 outside any venv: the one behind this test's venv, or pyenv's."""
    candidates = [getattr(sys, "_base_executable", ""), sys.executable]
    candidates += sorted(glob.glob("/root/.pyenv/versions/3.1[2-9]*/bin/python3"))
    for candidate in candidates:
        if not candidate or not os.access(candidate, os.X_OK):
            continue
        out = subprocess.run(
            [
                candidate,
                "-c",
                "import sys; print(sys.version_info >= (3, 12), sys.prefix == sys.base_prefix)",
            ],
            capture_output=True,
            text=True,
        )
        if out.returncode == 0 and out.stdout.split() == ["True", "True"]:
            return candidate
    return None


REAL_312 = real_python312()
needs_312 = pytest.mark.skipif(REAL_312 is None, reason="no real Python >= 3.12 interpreter found")


def write_script(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def stub_python311(path: Path, log: Path, pip_marker: Path) -> Path:
    """A Debian-12-like python3: reports 3.11 and, like PEP 668, refuses `-m pip` (after recording the call)."""
    # The PEP 668 marker a real externally-managed interpreter carries next to its stdlib.
    stdlib = path.parent.parent / "lib" / "python3.11"
    stdlib.mkdir(parents=True, exist_ok=True)
    (stdlib / "EXTERNALLY-MANAGED").write_text("[externally-managed]\nError=use a venv\n")
    return write_script(
        path,
        f"""#!/bin/sh
echo "$0 $*" >> '{log}'
case "$1" in
  -c) echo "3.11 $0"; exit 0 ;;
  --version|-V) echo "Python 3.11.2"; exit 0 ;;
  -m) case "$2" in pip|ensurepip|uv)
        echo "$0 $*" >> '{pip_marker}'
        echo "error: externally-managed-environment" >&2; exit 1 ;;
      esac ;;
esac
exit 1
""",
    )


def broken_shim(path: Path) -> Path:
    """A pyenv shim for a version pyenv has not selected: it prints to stderr and exits 127."""
    name = path.name
    return write_script(
        path,
        f"""#!/bin/sh
echo "pyenv: {name}: command not found" >&2
echo "The \\`{name}' command exists in these Python versions:" >&2
exit 127
""",
    )


class Sandbox:
    """A fake HOME and a PATH of stubs plus only the basic tools setup.sh needs (no system Python, no uv)."""

    def __init__(self, root: Path):
        self.root = root
        self.home = root / "home"
        self.home.mkdir()
        self.bin = root / "bin"
        self.bin.mkdir()
        tools = root / "tools"
        tools.mkdir()
        for tool in TOOLS:
            found = shutil.which(tool)
            if found:
                (tools / tool).symlink_to(found)
        self.path = f"{self.bin}:{tools}"
        self.log = root / "python-calls.log"
        self.pip_marker = root / "pip-was-invoked"
        self.py311 = stub_python311(self.bin / "python3", self.log, self.pip_marker)
        (self.bin / "python3.11").symlink_to(self.py311)
        broken_shim(self.bin / "python3.12")
        broken_shim(self.bin / "python3.13")

    def link_python(self, where: Path) -> Path:
        """Put a real >= 3.12 interpreter at `where` (as a symlink, as pyenv/uv folders hold it)."""
        assert REAL_312
        where.parent.mkdir(parents=True, exist_ok=True)
        where.symlink_to(REAL_312)
        return where

    def env(self, **extra: str) -> dict[str, str]:
        return {"PATH": self.path, "HOME": str(self.home), "LANG": "C.UTF-8", **extra}

    def run(self, *args: str, script: Path = SETUP, **extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [BASH, str(script), *args],
            env=self.env(**extra),
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=120,
        )


@pytest.fixture
def box(tmp_path) -> Sandbox:
    return Sandbox(tmp_path)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


def assert_one_error_line(result: subprocess.CompletedProcess) -> str:
    lines = error_lines(result.stderr)
    assert result.returncode != 0, result.stdout
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error:"), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_setup_script_is_valid_bash_in_strict_mode():
    subprocess.run([BASH, "-n", str(SETUP)], check=True)
    assert "set -euo pipefail" in SETUP.read_text()


def test_only_an_externally_managed_311_stops_with_one_line_saying_how_to_get_312(box, tmp_path):
    result = box.run("--find-python-only")
    line = assert_one_error_line(result)
    assert "3.12" in line
    assert (
        "apt-get install python3.12" in line
        and "pyenv install 3.12" in line
        and "uv python install 3.12" in line
    )
    assert result.stdout == ""
    assert "pyenv:" not in result.stderr  # the broken shims' noise is swallowed
    assert box.log.exists()  # the 3.11 stub was probed
    assert not box.pip_marker.exists(), box.pip_marker.read_text()

    # The README's command itself (no flag), on a copy so that nothing lands in the repository: the same one line,
    # no apt-get, no venv, and still no pip run by the 3.11 interpreter.
    project = tmp_path / "project"
    project.mkdir()
    script = project / "setup.sh"
    shutil.copy(SETUP, script)
    apt_log = tmp_path / "apt.log"
    write_script(box.bin / "apt-get", f"#!/bin/sh\necho \"apt-get $*\" >> '{apt_log}'\nexit 1\n")
    write_script(
        box.bin / "apt-cache",
        '#!/bin/sh\necho "$2:"\necho "  Installed: (none)"\necho "  Candidate: (none)"\n',
    )
    write_script(box.bin / "dpkg", "#!/bin/sh\nexit 1\n")
    result = box.run(script=script)
    assert_one_error_line(result)
    assert "no Python >= 3.12 found" in result.stderr
    assert not apt_log.exists(), apt_log.read_text()
    assert not (project / ".venv").exists()
    assert not box.pip_marker.exists(), box.pip_marker.read_text()


@needs_312
@pytest.mark.parametrize("where", ["pyenv", "PYENV_ROOT", "uv", "XDG_DATA_HOME"])
def test_a_312_in_pyenv_or_uv_wins_over_the_311_first_on_path(box, where):
    extra: dict[str, str] = {}
    if where == "pyenv":
        link = box.link_python(box.home / ".pyenv/versions/3.12.1/bin/python3")
    elif where == "PYENV_ROOT":
        extra["PYENV_ROOT"] = str(box.root / "pyenv-root")
        link = box.link_python(box.root / "pyenv-root/versions/3.12.1/bin/python3")
    elif where == "uv":
        link = box.link_python(
            box.home / ".local/share/uv/python/cpython-3.12.1-linux-x86_64-gnu/bin/python3"
        )
    else:
        extra["XDG_DATA_HOME"] = str(box.root / "xdg")
        link = box.link_python(box.root / "xdg/uv/python/cpython-3.12.1-linux-x86_64-gnu/bin/python3")
    result = box.run("--find-python-only", **extra)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(link)
    assert result.stderr == ""
    assert box.log.exists()  # the 3.11 was looked at ...
    assert not box.pip_marker.exists()  # ... and never asked to install anything


@needs_312
def test_python_3_12_on_path_is_taken_before_pyenv(box):
    on_path = box.bin / "python3.12"
    on_path.unlink()
    box.link_python(on_path)
    box.link_python(box.home / ".pyenv/versions/3.13.0/bin/python3")
    result = box.run("--find-python-only")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(on_path)


@needs_312
@pytest.mark.parametrize("given", ["name", "path"])
def test_python_311_given_explicitly_is_one_error_line_even_with_a_312_around(box, given):
    box.link_python(box.home / ".pyenv/versions/3.12.1/bin/python3")
    python = "python3.11" if given == "name" else str(box.py311)
    result = box.run("--find-python-only", PYTHON=python)
    line = assert_one_error_line(result)
    assert "3.11" in line and ">= 3.12" in line
    assert not box.pip_marker.exists()


def test_python_that_is_no_command_is_one_error_line(box):
    line = assert_one_error_line(box.run("--find-python-only", PYTHON="python3.99"))
    assert "PYTHON=python3.99" in line


@needs_312
def test_python_312_given_explicitly_is_used(box):
    result = box.run("--find-python-only", PYTHON=REAL_312)
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()).resolve() == Path(REAL_312).resolve()


def probe_version(python: str) -> tuple[int, int]:
    out = subprocess.run(
        [python, "-c", "import sys; print(*sys.version_info[:2])"], capture_output=True, text=True, check=True
    )
    major, minor = out.stdout.split()
    return int(major), int(minor)


def system_python_is_externally_managed_311() -> bool:
    python = "/usr/bin/python3"
    if not os.access(python, os.X_OK):
        return False
    out = subprocess.run(
        [
            python,
            "-c",
            "import sys, sysconfig; print(sys.version_info < (3, 12), sysconfig.get_path('stdlib'))",
        ],
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        return False
    older, stdlib = out.stdout.split()
    return older == "True" and (Path(stdlib) / "EXTERNALLY-MANAGED").exists()


@needs_312
def test_a_fresh_login_shell_with_usr_bin_first_still_picks_a_312(tmp_path):
    """A new user's login shell: /etc/profile puts /usr/bin first, where Debian 12 has only its 3.11."""
    home = tmp_path / "home"
    link = home / ".pyenv/versions/3.12.1/bin/python3"
    link.parent.mkdir(parents=True)
    link.symlink_to(REAL_312)
    result = subprocess.run(
        ["env", "-i", f"HOME={home}", "PATH=/usr/bin:/bin", BASH, "-lc", f"'{SETUP}' --find-python-only"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    chosen = result.stdout.strip().splitlines()[-1]
    assert probe_version(chosen) >= (3, 12)
    if system_python_is_externally_managed_311() and not any(
        shutil.which(name, path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        for name in ("python3.12", "python3.13")
    ):
        assert chosen == str(link)


@pytest.mark.skipif(
    not system_python_is_externally_managed_311(),
    reason="/usr/bin/python3 is not an externally-managed Python < 3.12 (not Debian 12)",
)
def test_readme_command_on_debian_12s_own_python_fails_cleanly_and_installs_nothing(tmp_path):
    """The issue's case for real: a fresh HOME, a login shell, only Debian's PEP 668 /usr/bin/python3 (3.11)."""
    home = tmp_path / "home"
    home.mkdir()
    login = ["env", "-i", f"HOME={home}", "PATH=/usr/bin:/bin", BASH, "-lc"]
    found = subprocess.run(
        [*login, f"'{SETUP}' --find-python-only"], capture_output=True, text=True, timeout=120
    )
    if found.returncode == 0:
        pytest.skip(f"this machine has a Python >= 3.12 on its default PATH: {found.stdout.strip()}")
    policy = subprocess.run(["apt-cache", "policy", "python3.12-venv"], capture_output=True, text=True)
    if "Candidate:" in policy.stdout and "Candidate: (none)" not in policy.stdout:
        pytest.skip("apt would install python3.12 here; not the Debian 12 case")
    site = subprocess.run(
        ["/usr/bin/python3", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    before = sorted(os.listdir(site)) if os.path.isdir(site) else []
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(SETUP, project / "setup.sh")
    result = subprocess.run([*login, "./setup.sh"], cwd=project, capture_output=True, text=True, timeout=120)
    line = assert_one_error_line(result)
    assert "no Python >= 3.12 found" in line and "python3.12" in line
    assert not (project / ".venv").exists()
    after = sorted(os.listdir(site)) if os.path.isdir(site) else []
    assert after == before


# How this machine reaches PyPI (a proxy, its CA, a local index): not what the test is about, so kept.
PASSED_THROUGH = (
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "PIP_CERT",
    "PIP_FIND_LINKS",
    "PIP_INDEX_URL",
    "PIP_EXTRA_INDEX_URL",
    "UV_INDEX_URL",
    "UV_DEFAULT_INDEX",
    "UV_EXTRA_INDEX_URL",
    "UV_NATIVE_TLS",
    "UV_SYSTEM_CERTS",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
)

STAND_IN_PYPROJECT = """\
[build-system]
requires = ["hatchling>=1.21"]
build-backend = "hatchling.build"

[project]
name = "lerobot_policy_diffrl"
version = "0.0.0"
requires-python = ">=3.12"
dependencies = [{dependencies}]

[project.optional-dependencies]
test = []

[project.scripts]
lerobot-diffrl-setup-libero = "fake_setup_libero:main"

[tool.hatch.build.targets.wheel]
packages = ["fake_setup_libero"]
"""

FAKE_SETUP_LIBERO = """\
import os
import sys


def main():
    print("fake setup-libero", *sys.argv[1:], "MUJOCO_GL=" + os.environ.get("MUJOCO_GL", ""))
"""


@needs_312
def test_whole_script_on_a_stand_in_project_replaces_an_old_311_venv_installs_uv_inside_and_is_idempotent(
    tmp_path,
):
    """The real flow minus lerobot: venv from a found 3.12, uv installed into it, editable install, LIBERO step.

    Needs PyPI (uv and hatchling, a few MB), no torch. apt is stubbed as "everything installed".
    """
    project = tmp_path / "project"
    (project / "fake_setup_libero").mkdir(parents=True)
    (project / "fake_setup_libero" / "__init__.py").write_text(FAKE_SETUP_LIBERO)
    (project / "pyproject.toml").write_text(STAND_IN_PYPROJECT.format(dependencies=""))
    shutil.copy(SETUP, project / "setup.sh")
    stubs = tmp_path / "stubs"
    apt_log = tmp_path / "apt.log"
    write_script(stubs / "dpkg", "#!/bin/sh\nexit 0\n")
    write_script(stubs / "apt-get", f"#!/bin/sh\necho \"apt-get $*\" >> '{apt_log}'\nexit 1\n")
    home = tmp_path / "home"
    home.mkdir()
    pip_marker = tmp_path / "pip-was-invoked"
    # What the old 0.4.4 set-up left: a .venv on Python 3.11 (here an externally-managed-like stub).
    stub_python311(project / ".venv" / "bin" / "python", tmp_path / "old-venv.log", pip_marker)
    env = {
        "PATH": f"{stubs}:/usr/bin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "PYTHON": REAL_312,
        "UV_CACHE_DIR": str(tmp_path / "uv-cache"),
    }
    for key in PASSED_THROUGH:
        if key in os.environ:
            env[key] = os.environ[key]
    if shutil.which("uv", path=env["PATH"]):
        pytest.skip("uv is on the default PATH here; this test covers the no-uv machine")

    def setup() -> subprocess.CompletedProcess:
        return subprocess.run(
            [BASH, "./setup.sh"], cwd=project, env=env, capture_output=True, text=True, timeout=300
        )

    def base_site_packages() -> list[str]:
        site = subprocess.run(
            [REAL_312, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return sorted(os.listdir(site)) if os.path.isdir(site) else []

    base_before = base_site_packages()
    first = setup()
    assert first.returncode == 0, first.stdout + first.stderr
    assert "recreating it" in first.stdout and "3.11" in first.stdout
    assert "installing uv into .venv" in first.stdout
    assert "fake setup-libero --link=true MUJOCO_GL=egl" in first.stdout
    assert (project / ".venv/bin/uv").exists()
    assert probe_version(str(project / ".venv/bin/python")) >= (3, 12)
    assert not pip_marker.exists()
    assert not apt_log.exists()
    # The base interpreter got nothing: uv lives only in the venv.
    assert base_site_packages() == base_before

    started = time.monotonic()
    second = setup()
    assert second.returncode == 0, second.stdout + second.stderr
    assert "creating .venv" not in second.stdout and "installing uv" not in second.stdout
    assert time.monotonic() - started < 30

    # A resolver conflict (as when someone forces lerobot 0.4.4) ends in one clear error line, no traceback.
    (project / "pyproject.toml").write_text(
        STAND_IN_PYPROJECT.format(dependencies='"lerobot>=0.6.1,<0.7", "lerobot==0.4.4"')
    )
    broken = setup()
    assert broken.returncode != 0
    last = error_lines(broken.stderr)[-1]
    assert last.startswith("error: installing lerobot_policy_diffrl failed"), broken.stderr
    assert "lerobot>=0.6.1,<0.7" in last
    assert "Traceback" not in broken.stderr

"""The README's set-up commands are the ones CI runs, and every console script is documented."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess


def first_code_block(readme: str) -> list[str]:
    block = re.search(r"```bash\n(.*?)```", readme, re.S)
    assert block, "README must start with a bash code block"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_readme_starts_with_the_two_setup_commands(repo_root):
    readme = (repo_root / "README.md").read_text()
    assert readme.index("```bash") < 40, "the two commands come first"
    commands = [line.split("#")[0].strip() for line in first_code_block(readme)]
    assert len(commands) == 2
    main_job, tests = commands
    assert main_job == "./setup.sh && .venv/bin/lerobot-diffrl-pipeline"
    assert tests == "./setup.sh && .venv/bin/python -m pytest"


def test_ci_runs_exactly_the_readme_test_command(repo_root):
    ci = (repo_root / ".ci" / "run").read_text()
    extract = re.search(r"test_command=\$\((.*)\)\n", ci).group(1)
    extracted = subprocess.run(
        ["bash", "-c", extract], cwd=repo_root, capture_output=True, text=True, check=True
    )
    readme_tests = first_code_block((repo_root / "README.md").read_text())[1].split("#")[0].strip()
    assert extracted.stdout.strip() == readme_tests


def test_every_console_script_is_documented(repo_root):
    readme = (repo_root / "README.md").read_text()
    scripts = [
        ep.name
        for ep in importlib.metadata.distribution("lerobot_policy_diffrl").entry_points
        if ep.group == "console_scripts"
    ]
    assert scripts
    for name in scripts:
        assert f"`{name}" in readme, f"{name} is not documented in the README"

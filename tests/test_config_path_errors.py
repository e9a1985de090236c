"""Every command answers a missing, malformed, non-mapping or unknown-field ``--config_path`` (JSON or YAML)
with one ``error:`` line naming the file and exit status 2, and writes nothing."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest

SCRIPTS = sorted(
    ep
    for ep in importlib.metadata.entry_points(group="console_scripts")
    if ep.value.startswith("lerobot_diffrl.scripts.")
)
BAD_FILES = {
    "missing.json": None,
    "syntax.json": '{"seed": 3,\n',
    "syntax.yaml": "seed: [3\n",
    "list.json": "[1, 2]",
    "unknown.json": '{"no_such_field_anywhere": 1}',
}
EXPECTED = {
    "missing.json": "does not exist",
    "syntax.json": "is not valid JSON",
    "syntax.yaml": "is not valid YAML",
    "list.json": "must hold a mapping",
    "unknown.json": "no_such_field_anywhere",
}


def test_every_project_command_is_covered() -> None:
    assert len(SCRIPTS) >= 13, [ep.name for ep in SCRIPTS]


@pytest.mark.parametrize("name", sorted(BAD_FILES))
@pytest.mark.parametrize("script", SCRIPTS, ids=lambda ep: ep.name)
def test_bad_config_path_is_one_error_line(script, name: str, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / name
    if BAD_FILES[name] is not None:
        path.write_text(BAD_FILES[name])
    main = script.load()
    try:
        code = main([f"--config_path={path}"])
    except SystemExit as stop:
        code = stop.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, (script.name, err)
    assert len(err) == 1 and err[0].startswith("error:"), (script.name, err)
    assert EXPECTED[name] in err[0], (script.name, err[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ([name] if BAD_FILES[name] is not None else [])

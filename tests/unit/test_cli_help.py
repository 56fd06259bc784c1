"""The CLI's help and the README say the same: one line per command, from mpsoa_lab.__main__."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mpsoa_lab.__main__ import COMMANDS, main

README = Path(__file__).resolve().parents[2] / "README.md"


def _readme_commands() -> dict[str, str]:
    lines = re.findall(
        r"^\.venv/bin/python -m mpsoa_lab (\w+)\b[^#\n]*# (.+)$", README.read_text(), re.M
    )
    return dict(lines)


def test_the_readme_lists_every_command_with_its_help_line():
    assert _readme_commands() == COMMANDS


def test_the_main_help_lists_every_command_with_its_line(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for name, line in COMMANDS.items():
        assert f"{name} {line}" in text, name
    assert "`" not in text  # no markup for a terminal


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_command_describes_itself(name, capsys):
    with pytest.raises(SystemExit):
        main([name, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert COMMANDS[name][1:] + "." in text and "`" not in text

"""python -m mpsoa_lab review: bad input is told in one line, before any node starts."""

from __future__ import annotations

import pytest

from mpsoa_lab.__main__ import main


@pytest.mark.parametrize(
    "argv, told",
    [
        (["--sync-url", "amqp://h//"], "needs both --sync-url and --async-url"),
        (["--async-url", "amqp://h//"], "needs both --sync-url and --async-url"),
        (["--notebooks", "77"], "no notebook '77' in"),
    ],
)
def test_bad_input_is_told_before_anything_starts(argv, told, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("MPSOA_LAB_HOME", str(tmp_path / "home"))
    assert main(["review", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mpsoa-lab: ") and told in err
    assert not (tmp_path / "home").exists()  # no lab was started


def test_the_notebooks_are_listed_when_one_is_unknown(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("MPSOA_LAB_HOME", str(tmp_path / "home"))
    main(["review", "--notebooks", "01", "nope"])
    assert "01_architecture, 02_exchanges_queues_bindings" in capsys.readouterr().err

"""make test's two pytest sessions (tools/run-tests.sh), with a fake Python that records its
arguments and answers with a given pytest status: both sessions always run, the status is the
first failure's, and a session that selected nothing is not a failure unless neither ran."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "tools" / "run-tests.sh"


def run(tmp_path: Path, first: int, second: int, *args: str) -> tuple[int, list[str], str]:
    """run-tests.sh with a fake python whose pytest exits ``first``, then ``second``."""
    calls = tmp_path / "calls"
    fake = tmp_path / "python"
    fake.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> {calls}\n'
        f'n=$(wc -l < {calls}); [ "$n" = 1 ] && exit {first}; exit {second}\n'
    )
    fake.chmod(0o755)
    done = subprocess.run(
        ["sh", str(SCRIPT), str(fake), *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    return done.returncode, calls.read_text().splitlines(), done.stdout + done.stderr


def test_first_the_tests_beside_others_two_at_a_time_then_the_rest_one_at_a_time(tmp_path):
    status, calls, said = run(tmp_path, 0, 0, "-k", "lab")
    assert status == 0 and len(calls) == 2, said
    beside, alone = calls
    assert beside.startswith("-m pytest tests -m beside_others -n 3 --dist loadfile")
    assert "notebooks" not in beside.split() and "--nbval-lax" not in beside
    assert alone.startswith("-m pytest tests notebooks -m not beside_others --nbval-lax")
    for call, junit in ((beside, "junit-beside-others"), (alone, "junit-one-at-a-time")):
        assert call.endswith("-k lab")  # the extra arguments go to both
        assert f"--junitxml=.pytest_cache/{junit}.xml" in call and "--timeout=900" in call
    assert "1/2 beside others, three at a time: passed" in said
    assert "2/2 one at a time, notebooks included: passed" in said


@pytest.mark.parametrize(
    ("first", "second", "status"),
    [(1, 0, 1), (0, 2, 2), (1, 3, 1), (5, 0, 0), (0, 5, 0), (5, 1, 1), (5, 5, 5)],
)
def test_both_sessions_run_and_the_first_failure_is_the_status(tmp_path, first, second, status):
    got, calls, said = run(tmp_path, first, second)
    assert got == status and len(calls) == 2, said
    if first not in (0, 5):
        assert f"FAILED (pytest status {first})" in said
    if (first, second) == (5, 5):
        assert "no test was selected" in said


def test_an_interrupted_session_ends_the_run(tmp_path):
    """pytest's status 2 (Ctrl-C, or a collection error): the other session does not run."""
    status, calls, said = run(tmp_path, 2, 0)
    assert status == 2 and len(calls) == 1, said
    assert "stopped during 1/2 beside others" in said and "did not run" in said


def test_make_test_and_make_test_rabbitmq4_run_both_sessions():
    makefile = (SCRIPT.parents[1] / "Makefile").read_text()
    recipes = {}
    for block in makefile.split("\n\n"):
        for target in ("test", "test-rabbitmq4"):
            if f"\n{target}: " in f"\n{block}":
                recipes[target] = block.split(f"{target}: ", 1)[1]
    assert set(recipes) == {"test", "test-rabbitmq4"}
    for target, recipe in recipes.items():
        assert "sh tools/run-tests.sh $(BIN)/python $(PYTEST_ARGS)" in recipe, target
        assert "-m pytest" not in recipe, target  # no session of its own beside the two

"""The lab's life cycle table (mpsoa_lab.running.lifecycle), walked whole: what each command may
do about each thing it can find, and how what it finds is classified."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from mpsoa_lab.plumbing import settings as settings_mod
from mpsoa_lab.plumbing.state import StateFile
from mpsoa_lab.running import lifecycle
from mpsoa_lab.running.lifecycle import (
    CHANGES,
    READ_ONLY,
    STATE_VERSION,
    STEPS,
    Command,
    Found,
    Step,
)


def test_every_command_has_one_step_for_everything_it_can_find():
    assert set(STEPS) == {(c, f) for c in Command for f in Found}


@pytest.mark.parametrize("command", sorted(READ_ONLY, key=lambda c: c.value))
def test_a_command_that_only_reads_cannot_reach_a_change(command):
    reached = {STEPS[command, found] for found in Found}
    assert not reached & CHANGES, reached
    assert reached <= {Step.SHOW, Step.SAY_NONE}


def test_only_down_stops_and_only_up_starts_or_attaches():
    for (command, found), step in STEPS.items():
        if step is Step.STOP:
            assert command is Command.DOWN
        if step in (Step.START, Step.ATTACH, Step.CLEAR_AND_START, Step.REFUSE):
            assert command is Command.UP, (command, found)


def test_a_lab_that_others_hold_is_never_cleared_away_by_up():
    for found in (Found.HELD_USABLE, Found.HELD_UNUSABLE):
        assert STEPS[Command.UP, found] in (Step.ATTACH, Step.REFUSE)
    assert STEPS[Command.UP, Found.HELD_UNUSABLE] is Step.REFUSE
    assert STEPS[Command.UP, Found.FREE_UNUSABLE] is Step.CLEAR_AND_START


def test_env_points_only_at_a_lab_that_someone_holds():
    for found in Found:
        shows = STEPS[Command.ENV, found] is Step.SHOW
        assert shows == (found in (Found.HELD_USABLE, Found.HELD_UNUSABLE)), found


def test_the_table_in_the_modules_text_is_the_table_that_runs():
    rows = [
        line.split()
        for line in lifecycle.__doc__.splitlines()
        if line.split() and line.split()[0] in {c.value for c in Command}
    ]
    words = {step: re.sub(r"[^a-z ]", "", step.name.lower().replace("_", " ")) for step in Step}
    aliases = {"say none": "say none", "clear and start": "clear start"}
    for row in rows:
        command = Command(row[0])
        cells = " ".join(row[1:]).replace(",", "")
        expected = " ".join(aliases.get(words[STEPS[command, f]], words[STEPS[command, f]])
                            for f in Found)  # fmt: skip
        assert cells == expected, command
    assert len(rows) == len(Command)


def _external(env_urls: tuple[str, str]) -> settings_mod.Settings:
    sync, async_ = env_urls
    return settings_mod.load({"MPSOA_SYNC_BROKER_URL": sync, "MPSOA_ASYNC_BROKER_URL": async_})


def _state(settings: settings_mod.Settings) -> dict:
    return {
        "version": STATE_VERSION,
        "id": "abc123",
        "external": True,
        "brokers": lifecycle.external_brokers(settings),
        "nodes": {},
        "components": {},
        "spaces": {},
    }


def test_what_a_process_finds_is_classified_by_kind_and_holders(tmp_path):
    urls = ("amqp://guest:guest@127.0.0.1:1/", "amqp://guest:guest@127.0.0.1:2/")
    settings = _external(urls)
    other = _external(("amqp://guest:guest@127.0.0.1:3/", urls[1]))
    state_file = StateFile(tmp_path)
    state = _state(settings)
    assert lifecycle.find(None, settings, state_file) is Found.NOTHING
    assert lifecycle.find(state, settings, state_file) is Found.FREE_USABLE
    assert lifecycle.find(state, other, state_file) is Found.FREE_UNUSABLE
    assert lifecycle.find({**state, "version": 1}, settings, state_file) is Found.FREE_UNUSABLE
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        state_file.add_holder(holder.pid)
        state_file.add_holder(os.getpid())  # the caller is never "another"
        assert lifecycle.find(state, settings, state_file) is Found.HELD_USABLE
        assert lifecycle.find(state, other, state_file) is Found.HELD_UNUSABLE
    finally:
        holder.kill()
        holder.wait()
    assert lifecycle.find(state, settings, state_file, prune=False) is Found.FREE_USABLE
    assert (tmp_path / "holders" / str(holder.pid)).exists()  # a reader leaves the file
    assert lifecycle.find(state, settings, state_file) is Found.FREE_USABLE
    assert not (tmp_path / "holders" / str(holder.pid)).exists()  # up prunes it


def test_a_lab_of_its_own_nodes_is_usable_only_while_its_epmd_runs():
    own = settings_mod.load({})
    state = {"version": STATE_VERSION, "external": False, "brokers": {"sync": {}}}
    assert not lifecycle.usable({**state, "components": {}}, own)  # no epmd recorded
    assert not lifecycle.usable({**state, "external": True}, own)

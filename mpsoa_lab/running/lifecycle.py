"""The lab's life cycle in one table: what a command finds under the lab home, and the one
step it may take about it.

Every command of ``python -m mpsoa_lab`` (and :func:`~mpsoa_lab.running.lab.up`, which the
notebooks call) first reads the state file and classifies what it found (:func:`find`, one of
:class:`Found`), then looks its step up in :data:`STEPS`. Only that step runs. Commands that
only read (``status``, ``env``) have no step in the table that starts, heals or stops
anything, so they cannot reach a teardown by construction; ``tests/unit/test_lifecycle.py``
walks the whole table.

==========  ===========  ===============  ==============  ===============  ==============
command     nothing      held, usable     free, usable    free, unusable   held, unusable
==========  ===========  ===============  ==============  ===============  ==============
up          start        attach           attach          clear, start     refuse
status      say none     show             show            show             show
env         say none     show             say none        say none         show
down        say none     stop             stop            stop             stop
==========  ===========  ===============  ==============  ===============  ==============

*Usable* means these settings can attach to it: a lab of the same kind (own nodes, or the same
brokers given by URL) whose epmd still runs; *held* means a process other than the caller holds
it. A free lab is reaped a few seconds after its last holder left, so ``env`` does not point a
client at it; ``attach`` heals a usable lab (dead nodes started again, a dead reaper replaced).
"""

from __future__ import annotations

import enum
import os
from typing import Any

from ..plumbing.component import component_from_dict
from ..plumbing.settings import ROLES, Settings
from ..plumbing.state import StateFile

__all__ = [
    "STATE_VERSION",
    "Command",
    "Found",
    "Step",
    "STEPS",
    "READ_ONLY",
    "CHANGES",
    "find",
    "step",
    "usable",
    "external_brokers",
]

#: The layout of the state file this code writes; a lab written by another is not usable.
STATE_VERSION = 2


class Command(enum.Enum):
    UP = "up"  # also run, edge, make lab and every notebook's mpsoa_lab.up()
    STATUS = "status"
    ENV = "env"
    DOWN = "down"


class Found(enum.Enum):
    NOTHING = "no lab"
    HELD_USABLE = "a lab that others hold, usable with these settings"
    FREE_USABLE = "a lab nobody else holds, usable with these settings"
    FREE_UNUSABLE = "what is left of a lab nobody holds that these settings cannot use"
    HELD_UNUSABLE = "a lab that others hold and these settings cannot use"


class Step(enum.Enum):
    START = "start a lab"
    ATTACH = "attach to it, healing what died"
    CLEAR_AND_START = "remove what is left, then start a lab"
    REFUSE = "refuse (LabInUse): nothing started or stopped"
    SHOW = "print what the state file says"
    SAY_NONE = "say that no lab is up and how to start one"
    STOP = "stop everything the lab started"


#: The steps that start, heal or stop something.
CHANGES = frozenset({Step.START, Step.ATTACH, Step.CLEAR_AND_START, Step.STOP})
#: The commands that only read: none of their steps may be in :data:`CHANGES`.
READ_ONLY = frozenset({Command.STATUS, Command.ENV})

_ = Found
STEPS: dict[tuple[Command, Found], Step] = {
    (Command.UP, _.NOTHING): Step.START,
    (Command.UP, _.HELD_USABLE): Step.ATTACH,
    (Command.UP, _.FREE_USABLE): Step.ATTACH,
    (Command.UP, _.FREE_UNUSABLE): Step.CLEAR_AND_START,
    (Command.UP, _.HELD_UNUSABLE): Step.REFUSE,
    (Command.STATUS, _.NOTHING): Step.SAY_NONE,
    (Command.STATUS, _.HELD_USABLE): Step.SHOW,
    (Command.STATUS, _.FREE_USABLE): Step.SHOW,
    (Command.STATUS, _.FREE_UNUSABLE): Step.SHOW,
    (Command.STATUS, _.HELD_UNUSABLE): Step.SHOW,
    (Command.ENV, _.NOTHING): Step.SAY_NONE,
    (Command.ENV, _.HELD_USABLE): Step.SHOW,
    (Command.ENV, _.FREE_USABLE): Step.SAY_NONE,
    (Command.ENV, _.FREE_UNUSABLE): Step.SAY_NONE,
    (Command.ENV, _.HELD_UNUSABLE): Step.SHOW,
    (Command.DOWN, _.NOTHING): Step.SAY_NONE,
    (Command.DOWN, _.HELD_USABLE): Step.STOP,
    (Command.DOWN, _.FREE_USABLE): Step.STOP,
    (Command.DOWN, _.FREE_UNUSABLE): Step.STOP,
    (Command.DOWN, _.HELD_UNUSABLE): Step.STOP,
}
del _


def external_brokers(settings: Settings) -> dict[str, dict[str, str]]:
    """The brokers given by URL in ``settings``, as the state file records them."""
    return {
        role: {"url": settings.broker_url(role), "management_url": settings.management_url(role)}
        for role in ROLES
    }


def _epmd_alive(state: dict[str, Any]) -> bool:
    return any(
        data.get("type") == "epmd" and component_from_dict(data).is_running()
        for data in state.get("components", {}).values()
    )


def usable(state: dict[str, Any] | None, settings: Settings) -> bool:
    """Whether a lab found in the state file can be attached to with these settings."""
    if not state or state.get("version") != STATE_VERSION or not state.get("brokers"):
        return False
    if settings.external:
        return bool(state.get("external")) and state["brokers"] == external_brokers(settings)
    return not state.get("external") and _epmd_alive(state)


def find(
    state: dict[str, Any] | None, settings: Settings, state_file: StateFile, *, prune: bool = True
) -> Found:
    """What the state file holds, as seen by a process with ``settings``: the caller itself
    does not count as a holder. ``prune=False`` for commands that only read."""
    if not state:
        return Found.NOTHING
    others = [pid for pid in state_file.live_holders(prune=prune) if pid != os.getpid()]
    if usable(state, settings):
        return Found.HELD_USABLE if others else Found.FREE_USABLE
    return Found.HELD_UNUSABLE if others else Found.FREE_UNUSABLE


def step(command: Command, found: Found) -> Step:
    """The one step ``command`` takes about ``found``."""
    return STEPS[command, found]

"""The lab's watchdog: ``python -m mpsoa_lab.running.reaper <home> <lab-id>``.

It runs in a session of its own, so it survives the notebook kernel or test process that
started the lab. Twice a second it looks at the lab's holders; when none has been alive for
``MPSOA_LAB_GRACE`` seconds it stops every process the lab started and removes the state file.
Components started on behalf of one holder (``owner`` in the state file, e.g. the Celery workers
of one notebook) are stopped as soon as that holder is gone, and its space (its vhost on each
node, its services' storage) is deleted.
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

from ..plumbing import settings as settings_mod
from ..plumbing.component import component_from_dict, stop_components
from ..plumbing.state import StateFile
from .lab import teardown
from .spaces import close_spaces

__all__ = ["main"]

POLL = 0.5


def _stop_orphans(state: dict, live: set[int]) -> bool:
    """Stop components whose owner is gone, forget those that ended; True if the state changed."""
    components = state.get("components", {})
    orphans, ended = [], []
    for key, data in components.items():
        if data.get("owner") is None:
            continue  # the lab's own (nodes, epmd): they live as long as the lab
        component = component_from_dict(data)
        if data["owner"] not in live:
            orphans.append((key, component))
        elif not component.is_running() and not component.KEEP_WHEN_STOPPED:
            ended.append(key)
    stop_components([component for _, component in orphans], timeout=10.0)
    for key in ended + [key for key, _ in orphans]:
        components.pop(key, None)
    return bool(orphans or ended)


def main(argv: list[str] | None = None) -> int:
    home, lab_id = (argv or sys.argv[1:])[:2]
    state_file = StateFile(Path(home))
    grace = settings_mod.load().grace
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    alone_since: float | None = None
    while True:
        time.sleep(POLL)
        with state_file.lock():
            state = state_file.read()
            if not state or state.get("id") != lab_id:
                return 0  # stopped by someone else, or replaced by a newer lab
            live = set(state_file.live_holders())
            changed = _stop_orphans(state, live)
            changed = close_spaces(Path(home), state, live) or changed
            if changed:
                state_file.write(state)
            if live:
                alone_since = None
                continue
            alone_since = alone_since or time.monotonic()
            if time.monotonic() - alone_since < grace:
                continue
            print(
                f"{time.ctime()}: no holder left for {grace:.0f} s; stopping lab {lab_id}",
                flush=True,
            )
            teardown(state, home=Path(home))
            state_file.remove()
            return 0


if __name__ == "__main__":
    sys.exit(main())

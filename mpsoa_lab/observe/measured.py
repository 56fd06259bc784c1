"""Figures measured on another RabbitMQ version than the one a notebook runs on, kept beside it.

A notebook runs on one server. Where a figure depends on the version (notebook 06's backlog
memory: RabbitMQ 3.x keeps a persistent backlog in memory, 4.x on disk), a reader on one version
should see the other's figure too, measured and with its conditions, not quoted from memory. A
run made with ``MPSOA_RECORD_MEASURED=1`` (``make test-rabbitmq4`` sets it) writes its figures
to a JSON file committed beside the notebooks; every run prints the figures recorded there for
the versions it is not running on, with when and how they were measured.

The file keeps the last :data:`KEEP` runs of each version: their spread shows too.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

__all__ = ["RECORD_ENV", "KEEP", "record_measured", "recorded_runs", "format_recorded"]

#: Set to ``1`` to have :func:`record_measured` write the run's figures.
RECORD_ENV = "MPSOA_RECORD_MEASURED"
#: How many runs of each server version a file keeps (the newest).
KEEP = 3


def record_measured(
    path: Path | str, version: str, figures: dict[str, float], conditions: str
) -> bool:
    """Add this run's ``figures`` for server ``version`` to ``path`` if :data:`RECORD_ENV` is
    ``1``; say whether it did. Figures are rounded to whole units where they are that large."""
    if os.environ.get(RECORD_ENV) != "1":
        return False
    path = Path(path)
    runs = _read(path)
    runs.append(
        {
            "version": version,
            "date": time.strftime("%Y-%m-%d"),
            "figures": {k: round(v, 1) for k, v in figures.items()},
            "conditions": conditions,
        }
    )
    kept: list[dict[str, Any]] = []
    for run in reversed(runs):  # newest first, at most KEEP of a version
        if sum(r["version"] == run["version"] for r in kept) < KEEP:
            kept.append(run)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(list(reversed(kept)), indent=1) + "\n")
    return True


def recorded_runs(path: Path | str, *, besides: str | None = None) -> list[dict[str, Any]]:
    """The runs recorded in ``path``, oldest first; with ``besides``, those of other versions."""
    return [r for r in _read(Path(path)) if besides is None or r["version"] != besides]


def format_recorded(runs: list[dict[str, Any]], labels: dict[str, str], unit: str) -> str:
    """One line per recorded run: its version, date, each figure under its label, conditions."""
    if not runs:
        return "no run on another version recorded yet (MPSOA_RECORD_MEASURED=1 records one)"
    lines = []
    for run in runs:
        figures = ", ".join(
            f"{label} {run['figures'][key]:.0f} {unit}"
            for key, label in labels.items()
            if key in run["figures"]
        )
        lines.append(f"RabbitMQ {run['version']} ({run['date']}): {figures}; {run['conditions']}")
    return "\n".join(lines)


def _read(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return json.loads(path.read_text())

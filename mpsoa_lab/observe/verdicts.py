"""Verdicts: what each notebook found about a claim of the 2014 design, recorded where it is measured.

A notebook asserts a claim, then records what it asserted::

    verdicts = Verdicts("04_sync_calls")
    verdicts.record(
        "sync-round-robin",
        claim="RabbitMQ's round robin spreads a service's sync calls over its two daemons",
        verdict="holds",
        number=f"{a} and {b} of {a + b} calls",
        conditions="2 workers, prefetch 1, 100 calls, one caller",
        evidence="§2 round robin",
    )

Each record names the 2014 statement, the verdict (``holds``, ``fails``, ``partly`` or
``obsolete``), the number that decides it with its conditions, the remedy where the verdict is not
``holds``, and the cell that holds the evidence. Records go to one JSON file per notebook under
``<lab home>/results/verdicts/``: several notebooks may run at once, and a notebook run again
replaces its own records. :func:`load_verdicts` reads them all back, for a review page.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..plumbing import settings
from ..plumbing.util import kernel_shell

__all__ = ["VERDICTS", "Verdict", "Verdicts", "load_verdicts", "verdicts_dir"]

#: The verdicts a claim can get.
VERDICTS = ("holds", "fails", "partly", "obsolete")
_ID = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
_NOTEBOOK = re.compile(r"^\d\d_[a-z0-9_]+$")


def verdicts_dir(home: Path | str | None = None) -> Path:
    """Where verdicts are kept: ``results/verdicts`` under the lab home (``MPSOA_LAB_HOME``)."""
    return Path(home if home is not None else settings.load().home) / "results" / "verdicts"


@dataclass(frozen=True)
class Verdict:
    """One claim of the 2014 design, and what a notebook measured about it."""

    id: str
    claim: str
    verdict: str
    number: str
    conditions: str
    evidence: str
    notebook: str
    remedy: str = ""
    recorded_at: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        if not _ID.match(self.id):
            raise ValueError(
                f"verdict id {self.id!r}: use lower-case words joined by '-', e.g. 'sync-round-robin'"
            )
        if self.verdict not in VERDICTS:
            raise ValueError(
                f"verdict {self.verdict!r} for {self.id!r}: use one of {', '.join(VERDICTS)}"
            )
        for name in ("claim", "number", "conditions", "evidence"):
            if not str(getattr(self, name)).strip():
                raise ValueError(
                    f"verdict {self.id!r}: {name} is empty; say what was measured and where"
                )
        if self.verdict != "holds" and not self.remedy.strip():
            raise ValueError(
                f"verdict {self.id!r} is {self.verdict!r}: give the remedy (what to do instead)"
            )

    def line(self) -> str:
        """The record in one line, as a notebook prints it beside its evidence."""
        remedy = f" Remedy: {self.remedy}" if self.remedy else ""
        return f"[{self.verdict.upper()}] {self.id}: {self.number} ({self.conditions}).{remedy}"

    def __str__(self) -> str:
        return self.line()


class Verdicts:
    """The verdicts of one notebook, written to ``<lab home>/results/verdicts/<notebook>.json``."""

    def __init__(self, notebook: str, home: Path | str | None = None) -> None:
        if not _NOTEBOOK.match(notebook):
            raise ValueError(
                f"notebook {notebook!r}: give the notebook's file name without .ipynb, e.g. '04_sync_calls'"
            )
        self.notebook = notebook
        self.path = verdicts_dir(home) / f"{notebook}.json"
        self._records: dict[str, Verdict] = {}

    def record(
        self,
        id: str,  # noqa: A002 - the record's field is called id
        *,
        claim: str,
        verdict: str,
        number: str,
        conditions: str,
        evidence: str,
        remedy: str = "",
        show: bool = True,
    ) -> None:
        """Record one verdict (replacing an earlier one with the same id) and show its line.

        In a notebook the line is one output with the whole record beside it as JSON (media
        type :data:`~mpsoa_lab.observe.claims.MIME`, which readers do not render), so a saved
        notebook carries its verdicts (:func:`mpsoa_lab.observe.claims.from_notebooks`);
        elsewhere the line is printed. Returns nothing; the records are the :class:`Verdicts`
        object's items (``for v in verdicts``).
        """
        entry = Verdict(id, claim, verdict, number, conditions, evidence, self.notebook, remedy)
        self._records[id] = entry
        self._write()
        if show:
            _show(entry)

    def __iter__(self):
        return iter(self._records.values())

    def __len__(self) -> int:
        return len(self._records)

    def _write(self) -> None:
        # The first record of a run replaces what an earlier run of this notebook left.
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            tmp = self.path.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(json.dumps([asdict(v) for v in self._records.values()], indent=1))
            tmp.replace(self.path)


def _show(entry: Verdict) -> None:
    if kernel_shell() is None:  # a terminal, a script, a worker
        print(entry.line())
        return
    from IPython.display import display

    from .claims import MIME

    display({"text/plain": entry.line(), MIME: asdict(entry)}, raw=True)


def load_verdicts(home: Path | str | None = None) -> list[Verdict]:
    """Every verdict recorded under the lab home, in notebook order."""
    found = []
    for path in sorted(verdicts_dir(home).glob("*.json")):
        found.extend(Verdict(**entry) for entry in json.loads(path.read_text()))
    return found

"""A progress bar for long notebook cells that is saved the way it ended.

``tqdm.notebook`` draws an ipywidget: a saved notebook (on GitHub, or opened without the widget
state) shows its text fallback as it was when the cell *started*, a bar at 0 %. This bar is a
plain-text display updated in place (at most twice a second, and once more when it closes),
with tqdm's own formatting, so the saved output is the finished bar. Outside a notebook it is
tqdm's terminal bar.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

from tqdm import tqdm

from ..plumbing.util import kernel_shell

__all__ = ["progress"]


class _NotebookBar:
    """The subset of tqdm's API the notebooks use: iterate, ``update``, ``set_postfix_str``,
    ``close``, and ``with``."""

    def __init__(
        self,
        iterable: Iterable | None = None,
        *,
        total: float | None = None,
        desc: str = "",
        unit: str = "it",
        mininterval: float = 0.5,
        **_: Any,
    ):
        from IPython.display import Pretty, display

        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.iterable, self.total, self.desc, self.unit = iterable, total, desc, unit
        self.n, self.postfix, self.mininterval = 0, "", mininterval
        self._started = self._shown = time.monotonic()
        self._pretty = Pretty
        self._handle = display(Pretty(self._text()), display_id=True)
        self._closed = False
        self._lock = threading.Lock()  # callers' threads update one bar

    def _text(self) -> str:
        return tqdm.format_meter(
            self.n,
            self.total,
            time.monotonic() - self._started,
            ncols=90,
            prefix=self.desc,
            unit=self.unit,
            postfix=self.postfix or None,
        )

    def _refresh(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._shown >= self.mininterval:
            self._shown = now
            self._handle.update(self._pretty(self._text()))

    def update(self, n: float = 1) -> None:
        with self._lock:
            self.n += n
            self._refresh()

    def set_postfix_str(self, text: str = "", refresh: bool = True) -> None:
        self.postfix = text
        if refresh:
            self._refresh()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._refresh(force=True)

    def __iter__(self) -> Iterator[Any]:
        try:
            for item in self.iterable or ():
                yield item
                self.update()
        finally:
            self.close()

    def __enter__(self) -> _NotebookBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress(iterable: Iterable | None = None, **options: Any) -> Any:
    """``tqdm(iterable, total=..., desc=..., unit=...)`` that a saved notebook shows finished."""
    if kernel_shell() is None:
        return tqdm(iterable, **options)
    return _NotebookBar(iterable, **options)

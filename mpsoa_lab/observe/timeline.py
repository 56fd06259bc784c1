"""Per-worker timelines of a traced run: which worker held and ran which task, when."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from typing import Any

from .tracing import TaskTrace

__all__ = ["plot_timeline"]


def plot_timeline(
    traces: Iterable[TaskTrace],
    ax: Any = None,
    *,
    t0: float | None = None,
    colors: Mapping[str, str] | None = None,
    kind: Any = None,
    workers: list[str] | None = None,
    labels: Mapping[str, str] | None = None,
    title: str | None = None,
    legend: bool = True,
) -> Any:
    """A Gantt-like chart: one row per worker; in its upper half a bar per task from started to
    finished, in its lower half a thin hatched bar per task for the time the worker held it
    before running it (received to started; overlapping ones stacked).

    ``kind(trace) -> str`` names each task's class (e.g. "long"/"short") and ``colors`` maps
    classes to colors. Times are seconds after ``t0`` (default: the first publish).
    ``workers`` orders the rows (hostnames); ``labels`` names them (default: the node name).
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    traces = [t for t in traces if t.started is not None and t.finished is not None]
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 2.5))
    if t0 is None:
        t0 = min((t.published or t.received) for t in traces)
    kind = kind or (lambda t: t.task or "task")
    colors = dict(colors or {})
    palette = itertools.cycle(plt.rcParams["axes.prop_cycle"].by_key()["color"])

    def color_of(k: str) -> str:
        if k not in colors:
            colors[k] = next(palette)
        return colors[k]

    workers = workers or sorted({t.worker for t in traces})
    held_kinds: set[str] = set()
    for row, worker in enumerate(workers):
        mine = sorted((t for t in traces if t.worker == worker), key=lambda t: t.started)
        held = [t for t in mine if t.received is not None and t.started - t.received > 0.005]
        lane_ends: list[float] = []  # stack overlapping holds in lanes
        lanes = []
        for t in sorted(held, key=lambda t: t.received):
            free = next((i for i, end in enumerate(lane_ends) if end <= t.received), None)
            if free is None:
                lane_ends.append(t.started)
                free = len(lane_ends) - 1
            lane_ends[free] = t.started
            lanes.append((t, free))
        height = min(0.12, 0.36 / max(1, len(lane_ends)))
        for t, lane in lanes:
            held_kinds.add(kind(t))
            color = color_of(kind(t))
            y = row - 0.06 - (lane + 1) * height
            ax.broken_barh(
                [(t.received - t0, t.started - t.received)],
                (y, height * 0.85),
                facecolors="none",
                edgecolors=color,
                hatch="////",
                linewidth=0.6,
            )
        for t in mine:
            color = color_of(kind(t))
            ax.broken_barh(
                [(t.started - t0, t.finished - t.started)],
                (row, 0.4),
                facecolors=color,
                edgecolors="white",
                linewidth=1.0,
            )
    ax.set_yticks(range(len(workers)))
    ax.set_yticklabels([(labels or {}).get(w, w.split("@")[0]) for w in workers])
    ax.set_ylim(-0.55, len(workers) - 0.45)
    ax.set_xlabel("seconds after the first publish")
    if legend:
        handles = [Patch(facecolor=c, label=f"{k} task running") for k, c in colors.items()]
        handles += [
            Patch(
                facecolor="none",
                edgecolor=c,
                hatch="////",
                label=f"{k} task held by the worker (received, not started)",
            )
            for k, c in colors.items()
            if k in held_kinds
        ]
        ax.legend(
            handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False
        )
    if title:
        ax.set_title(title, fontsize=10, loc="left")
    ax.grid(axis="x", alpha=0.3)
    return ax

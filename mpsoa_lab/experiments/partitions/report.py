"""What notebook 11 shows of its runs: one table row per queue and side, and a timeline.

:func:`rows` and :func:`table` give, for each run (mode, fault) and queue kind, what each side's
publisher saw; :func:`plot_timeline` draws the messages each publisher got confirmed per second
against the time since the fault began, the fault shaded, the heal and the operator's restart
marked, and the confirmed messages later lost written beside each line; :func:`views` what each
node said of the cluster before the heal and after it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .split import SplitRun
from .views import TIMEOUT

__all__ = ["rows", "table", "views", "plot_timeline", "plot_lost", "recovery"]

COLUMNS = (
    "mode",
    "fault",
    "queue",
    "side",
    "sent in fault",
    "confirmed in",
    "confirmed after",
    "lost",
    "duplicated",
    "told",
)


def recovery(run: SplitRun) -> str:
    """How the cluster came back: by itself after N s, after the operator's restart, or not."""
    if run.t_normal is None:
        return "not serving normally by the end of the run"
    seconds = f"{run.normal_after_s:.1f} s after the {'heal' if run.fault == 'split' else 'resume'}"
    if run.t_restart is not None:
        return f"only after the operator restarted node 1: {seconds}"
    return f"by itself, {seconds}"


def rows(runs: Iterable[SplitRun]) -> list[dict[str, Any]]:
    """One row per run, queue kind and side (minority first)."""
    out = []
    for run in runs:
        for count in sorted(run.counts, key=lambda c: (c.kind, c.side != "minority")):
            unknown = "unreadable" if count.lost is None else None
            out.append(
                {
                    "mode": run.mode,
                    "fault": run.fault,
                    "queue": count.kind,
                    "side": count.side,
                    "sent in fault": count.published_split,
                    "confirmed in": count.confirmed_split,
                    "confirmed after": count.confirmed_late,
                    "lost": unknown or count.lost,
                    "duplicated": unknown or count.duplicated,
                    "told": count.told or "nothing",
                }
            )
    return out


def table(runs: Iterable[SplitRun]) -> str:
    """:func:`rows` as aligned text, each column as wide as its longest cell."""
    return _aligned([list(COLUMNS), *([str(r[c]) for c in COLUMNS] for r in rows(runs))])


def views(run: SplitRun) -> str:
    """Each node's own view of the cluster (read from its management API, see
    :mod:`.views`) at two moments: the last read over before the heal (or the resume), when
    the split was at its longest, and the last read of the run, after healing and recovery."""
    before = run.t_heal - TIMEOUT  # a read that started then had its answer before the heal
    moments = {"before the heal": before, "after healing": float("inf")}
    if run.fault == "suspend":
        moments = {"before the resume": before, "after the resume": float("inf")}
    seen = {label: {v.index: str(v) for v in run.views_at(t)} for label, t in moments.items()}
    nodes = sorted({i for by_node in seen.values() for i in by_node})
    data = [
        [f"node {i + 1}", *(seen[label].get(i, "not read") for label in moments)] for i in nodes
    ]
    return _aligned([["", *moments], *data])


def _aligned(table: list[list[str]]) -> str:
    """Rows of cells as text, each column as wide as its widest cell, two spaces apart."""
    widths = [max(len(row[c]) for row in table) for c in range(len(table[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in table]
    return "\n".join(line.rstrip() for line in lines)


def _per_second(times: Iterable[float], start: float, end: float) -> tuple[list[float], list[int]]:
    bins = [0] * (int(end - start) + 1)
    for t in times:
        if start <= t <= end:
            bins[int(t - start)] += 1
    return [start + i + 0.5 for i in range(len(bins))], bins


def plot_timeline(run: SplitRun, ax: Any = None) -> Any:
    """Confirms per second of each publisher, by the time they came, against seconds since the
    fault began; the fault shaded, the heal and any restart marked."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(8, 3.2))[1]
    end = run.t_end
    for name, publisher in sorted(run.publishers.items()):
        kind, side = name.split("-")
        xs, ys = _per_second(publisher.confirmed.values(), run.t_start, end)
        lost = run.count(kind, side).lost
        label = f"{kind}, {side} side" + ("" if not lost else f" ({lost} confirmed, then lost)")
        ax.plot(
            [x - run.t_split for x in xs],
            ys,
            linestyle="--" if side == "minority" else "-",
            color="tab:red" if kind == "mirrored" else "tab:blue",
            label=label,
        )
    ax.axvspan(0, run.t_heal - run.t_split, color="0.85", label=f"{run.fault} (node 1)")
    if run.t_restart is not None:
        ax.axvline(run.t_restart - run.t_split, color="k", linestyle=":", label="operator restart")
    ax.set_xlabel(f"seconds since the {run.fault} began")
    ax.set_ylabel("confirms per second")
    ax.set_ylim(bottom=0)
    ax.set_title(f"{run.mode}: {run.fault} of node 1, RabbitMQ {run.version}")
    ax.legend(fontsize=7, loc="upper right")
    return ax


def plot_lost(runs: Iterable[SplitRun], ax: Any = None) -> Any:
    """Confirmed messages lost, per run and queue kind, both sides together; a queue that could
    not be read is written as such instead of a bar (its losses are unknown, not zero)."""
    import matplotlib.pyplot as plt

    runs = list(runs)
    ax = ax or plt.subplots(figsize=(8, 3))[1]
    kinds = sorted({c.kind for run in runs for c in run.counts})
    width = 0.8 / max(1, len(kinds))
    for k, kind in enumerate(kinds):
        for i, run in enumerate(runs):
            x = i + (k - (len(kinds) - 1) / 2) * width
            lost = run.lost(kind)
            if lost is None:
                ax.text(x, 0, "unreadable", rotation=90, ha="center", va="bottom", fontsize=7)
                continue
            color = "tab:red" if kind == "mirrored" else "tab:blue"
            ax.bar(x, lost, width, color=color, label=kind if i == 0 else None)
            ax.text(x, lost, str(lost), ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(runs)), [f"{r.mode}\n{r.fault}" for r in runs])
    ax.set_ylabel("confirmed messages lost")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    return ax

"""Draw a broker topology: exchanges on the left, queues on the right, one arrow per binding.

The input is what :meth:`mpsoa_lab.plumbing.management.Management.topology` returns, so the picture
shows what the broker holds. Each arrow is labelled with its binding key. The layout only
depends on the names, so the same topology always gives the same picture:

* exchanges top to bottom in name order;
* queues grouped by the first exchange bound to them, in name order within a group, so that
  the arrows of one exchange fan out without crossing those of the next; each exchange sits
  level with the middle of its group (when every exchange has one);
* two bindings between the same exchange and queue are drawn as two arcs.

>>> fig = draw_topology(Management.for_broker(lab.sync).topology(prefix="mplogin"))  # doctest: +SKIP

The figure is a plain :class:`matplotlib.figure.Figure`, not one of pyplot's: nothing piles up
in pyplot's figure list when a script draws many. A notebook shows it as a cell's value once
the inline backend is on (``%matplotlib inline``); ``fig.savefig(...)`` works everywhere.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

__all__ = ["draw_topology", "layout"]

#: Fill colour of an exchange box, by exchange type.
EXCHANGE_COLOURS = {
    "topic": "#fde2b4",
    "direct": "#cfe3f7",
    "fanout": "#d8f0d2",
    "headers": "#eadcf5",
}
QUEUE_COLOUR = "#e9e9e9"

_EX_X, _Q_X = 0.16, 0.84  # box centres, in axes units (0..1)
_EX_W, _Q_W = 0.26, 0.28  # box widths
_BOX_H = 0.62  # box height, in rows


def layout(topology: dict[str, list[dict[str, Any]]]) -> tuple[dict[str, float], dict[str, float]]:
    """Row positions (0 = top) of every exchange and queue; deterministic."""
    exchanges = sorted(
        {e["name"] for e in topology.get("exchanges", [])}
        | {b["source"] for b in topology.get("bindings", [])}
    )
    queue_names = {q["name"] for q in topology.get("queues", [])} | {
        b["destination"] for b in topology.get("bindings", []) if b["destination_type"] == "queue"
    }
    rank = {name: i for i, name in enumerate(exchanges)}
    first_source: dict[str, int] = {}
    for b in topology.get("bindings", []):
        if b["destination_type"] == "queue":
            r = rank[b["source"]]
            first_source[b["destination"]] = min(r, first_source.get(b["destination"], r))
    queues = sorted(queue_names, key=lambda q: (first_source.get(q, len(exchanges)), q))
    rows = max(len(exchanges), len(queues), 1)

    def spread(names: list[str]) -> dict[str, float]:
        step = rows / max(len(names), 1)
        return {name: (i + 0.5) * step for i, name in enumerate(names)}

    q_rows = spread(queues)
    groups: dict[int, list[float]] = defaultdict(list)
    for q, r in first_source.items():
        groups[r].append(q_rows[q])
    if len(queues) >= len(exchanges) and all(groups.get(i) for i in range(len(exchanges))):
        # Each exchange level with the middle of its own group of queues.
        ex_rows = {name: sum(groups[i]) / len(groups[i]) for i, name in enumerate(exchanges)}
    else:
        ex_rows = spread(exchanges)
    return ex_rows, q_rows


def _box(ax: Any, x: float, y: float, width: float, text: str, colour: str) -> None:
    ax.add_patch(
        FancyBboxPatch(
            (x - width / 2, y - _BOX_H / 2),
            width,
            _BOX_H,
            boxstyle="round,pad=0.0,rounding_size=0.12",
            facecolor=colour,
            edgecolor="#555555",
            linewidth=1.0,
            mutation_aspect=1.0,
        )
    )
    ax.text(x, y, text, ha="center", va="center", fontsize=9, family="monospace")


def _point_on_arc(
    ax: Any, start: tuple[float, float], end: tuple[float, float], rad: float, t: float
) -> tuple[float, float]:
    """The point at ``t`` along matplotlib's ``arc3`` curve (a quadratic Bezier built in display
    space), in data coordinates: where a label sits on its arrow."""
    to_display = ax.transData
    (x0, y0), (x2, y2) = to_display.transform([start, end])
    cx, cy = (x0 + x2) / 2 + rad * (y2 - y0), (y0 + y2) / 2 - rad * (x2 - x0)
    u = 1 - t
    point = (u * u * x0 + 2 * t * u * cx + t * t * x2, u * u * y0 + 2 * t * u * cy + t * t * y2)
    return tuple(to_display.inverted().transform(point))


def draw_topology(
    topology: dict[str, list[dict[str, Any]]],
    *,
    title: str | None = None,
    width: float = 8.0,
    dpi: int = 100,
) -> Figure:
    """A figure of ``topology`` (exchanges, queues, bindings with their binding keys)."""
    ex_rows, q_rows = layout(topology)
    rows = max(len(ex_rows), len(q_rows), 1)
    height = 0.55 * rows + (1.1 if title else 0.8)
    fig = Figure(figsize=(width, height), dpi=dpi)
    ax = fig.add_axes((0.01, 0.01, 0.98, 0.98 - (0.35 if title else 0.2) / height))
    loops = any(b["destination_type"] != "queue" for b in topology.get("bindings", []))
    ax.set_xlim(-0.14 if loops else 0, 1)  # room on the left for exchange-to-exchange arcs
    ax.set_ylim(rows, -0.6)  # row 0 at the top; room for the column headings
    ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=11)
    ax.text(
        _EX_X,
        -0.45,
        "exchanges",
        ha="center",
        va="center",
        fontsize=9,
        style="italic",
        color="#555555",
    )
    ax.text(
        _Q_X, -0.45, "queues", ha="center", va="center", fontsize=9, style="italic", color="#555555"
    )

    types = {e["name"]: e.get("type", "?") for e in topology.get("exchanges", [])}
    for name, y in ex_rows.items():
        kind = types.get(name, "?")
        _box(ax, _EX_X, y, _EX_W, f"{name}\n({kind})", EXCHANGE_COLOURS.get(kind, "#ffffff"))
    for name, y in q_rows.items():
        _box(ax, _Q_X, y, _Q_W, name, QUEUE_COLOUR)

    # Several bindings between the same two entities become arcs bending apart.
    seen: dict[tuple[str, str, str], int] = defaultdict(int)
    for b in topology.get("bindings", []):
        end = (b["source"], b["destination_type"], b["destination"])
        nth = seen[end]
        seen[end] += 1
        bend = 0.0 if nth == 0 else (0.12 * ((nth + 1) // 2)) * (1 if nth % 2 else -1)
        y0 = ex_rows[b["source"]]
        key = b["routing_key"] if b["routing_key"] != "" else '""'
        if b["destination_type"] == "queue":
            x0, x1, y1 = _EX_X + _EX_W / 2, _Q_X - _Q_W / 2, q_rows[b["destination"]]
            rad, t = bend, 0.68
        else:  # exchange-to-exchange binding: an arc on the left of the exchange column
            x0 = x1 = _EX_X - _EX_W / 2
            y1 = ex_rows[b["destination"]]
            rad, t = 0.6 + bend, 0.5
        ax.add_patch(
            FancyArrowPatch(
                (x0, y0),
                (x1, y1),
                arrowstyle="-|>",
                mutation_scale=12,
                connectionstyle=f"arc3,rad={rad}",
                color="#333333",
                linewidth=1.0,
                shrinkA=2,
                shrinkB=2,
            )
        )
        lx, ly = _point_on_arc(ax, (x0, y0), (x1, y1), rad, t)
        ax.text(
            lx,
            ly,
            key,
            ha="center",
            va="center",
            fontsize=8,
            family="monospace",
            bbox={
                "boxstyle": "round,pad=0.15",
                "facecolor": "white",
                "edgecolor": "none",
                "alpha": 0.9,
            },
        )
    return fig

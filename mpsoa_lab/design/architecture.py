"""A picture of the design: the edge and application layers, wired by REST or by AMQP.

The picture is drawn from the platform's own definitions (:data:`~mpsoa_lab.design.naming.SERVICES`
and the queue names), so it changes when they change.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch

from .naming import KINDS, SERVICES, queue_name

__all__ = ["draw_architecture", "what_the_edge_must_know"]

_COLORS = {
    "edge": "#dbe9f6",
    "lb": "#f6e3c7",
    "service": "#e2f0d9",
    "broker": "#f8d7da",
    "queue": "#fff2cc",
}


def _box(ax, x, y, w, h, text, kind, fontsize=8):
    ax.add_patch(
        FancyBboxPatch(
            (x, y),
            w,
            h,
            boxstyle="round,pad=0.01,rounding_size=0.02",
            fc=_COLORS[kind],
            ec="#555",
            lw=0.8,
        )
    )
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=fontsize)


def _arrow(ax, x0, y0, x1, y1, style="-|>", color="#444"):
    ax.annotate(
        "",
        xy=(x1, y1),
        xytext=(x0, y0),
        arrowprops=dict(arrowstyle=style, color=color, lw=0.8, shrinkA=0, shrinkB=0),
    )


def what_the_edge_must_know(services=SERVICES) -> dict[str, list[str]]:
    """The addresses the edge needs in each design: one per service, or one per broker."""
    return {
        "REST between services": [
            f"https://{s}.internal (DNS, load balancer, web server)" for s in services
        ],
        "AMQP through RabbitMQ": ["sync broker URL", "async broker URL"],
    }


def draw_architecture(services=SERVICES) -> Figure:
    """Two panels: the edge calling services over HTTP, and the same over two RabbitMQ brokers."""
    fig, (rest, amqp) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=100)
    n = len(services)
    rows = [0.78 - i * (0.62 / max(n - 1, 1)) for i in range(n)]

    rest.set_title("REST between services", fontsize=10)
    _box(rest, 0.02, 0.42, 0.16, 0.16, "edge\n(HTTP)", "edge")
    for y, service in zip(rows, services):
        _box(rest, 0.34, y - 0.05, 0.16, 0.1, "load\nbalancer", "lb", 7)
        _box(rest, 0.62, y - 0.07, 0.34, 0.14, f"{service}\nnginx + uWSGI, own DNS", "service", 7)
        _arrow(rest, 0.18, 0.5, 0.34, y)
        _arrow(rest, 0.50, y, 0.62, y)
    rest.text(
        0.02,
        0.02,
        f"the edge knows {n} addresses; each service runs a web server",
        fontsize=7,
        color="#333",
    )

    amqp.set_title("AMQP through RabbitMQ (the 2014 design)", fontsize=10)
    _box(amqp, 0.015, 0.42, 0.12, 0.16, "edge\n(publishes\ntasks)", "edge", 7)
    brokers = {"sync": (0.55, 0.97), "async": (0.03, 0.45)}
    for kind in KINDS:
        y0, y1 = brokers[kind]
        amqp.add_patch(
            FancyBboxPatch(
                (0.19, y0),
                0.40,
                y1 - y0 - 0.02,
                boxstyle="round,pad=0.005",
                fc=_COLORS["broker"],
                ec="#a33",
                lw=0.8,
                alpha=0.5,
            )
        )
        amqp.text(0.20, y1 - 0.05, f"{kind} broker", fontsize=7, color="#a33", weight="bold")
        _arrow(amqp, 0.13, 0.5, 0.19, (y0 + y1) / 2)
        step = (y1 - y0 - 0.1) / n
        for i, service in enumerate(services):
            y = y1 - 0.1 - (i + 0.5) * step
            _box(amqp, 0.21, y - 0.035, 0.14, 0.07, f"{service}\n(topic)", "broker", 6)
            _box(amqp, 0.41, y - 0.03, 0.17, 0.06, queue_name(service, kind), "queue", 6)
            _arrow(amqp, 0.35, y, 0.41, y)
            _box(
                amqp,
                0.66,
                y - 0.035,
                0.32,
                0.07,
                f"celery worker -Q {queue_name(service, kind)}",
                "service",
                6,
            )
            _arrow(amqp, 0.58, y, 0.66, y)
    amqp.text(
        0.0,
        -0.02,
        "the edge knows 2 broker URLs; services run as Celery daemons, no web server",
        fontsize=7,
        color="#333",
    )
    for ax in (rest, amqp):
        ax.set_xlim(0, 1)
        ax.set_ylim(-0.05, 1)
        ax.axis("off")
    fig.tight_layout()
    return fig

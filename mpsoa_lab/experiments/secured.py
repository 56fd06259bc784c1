"""What "secured from unwanted access" takes for this design: one table across notebooks 12 and
13, a line per layer, each with what it stopped in this run, what still got through with it in
place, and what it cost, every figure measured in the same run.

The layers, from the broker outwards to the message:

- *guest on loopback only*: every socket the lab's nodes listen on, read from the operating
  system (the management API reports its HTTP listener as ``::`` even when it is bound to
  127.0.0.1), and the guest user from this machine;
- *a user per party* (:mod:`mpsoa_lab.experiments.permissions`), with topic permissions and the
  reply exchange: the cross-service attempts, the control of each party, and a pickle published
  by the edge's user to a task the edge calls;
- *TLS with peer verification* (:mod:`mpsoa_lab.experiments.tls_cost`): the clients turned away;
- *JSON only* (:mod:`mpsoa_lab.experiments.pickle_payload`): that same pickle, at the lab's
  JSON-only worker;
- *signed messages* (:mod:`mpsoa_lab.experiments.signed_messages`): forged bodies, and
  messages made from captured signed ones.

Each :class:`Layer` is built from those experiments' results by a function of its own here, so
each line's numbers and words come from one place.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from ..running.lab import Lab

__all__ = [
    "Layer",
    "sockets_of",
    "listening",
    "guest_connects",
    "on_loopback",
    "guest_on_loopback",
    "user_per_party",
    "tls_peer_verification",
    "json_only",
    "signed_messages",
    "table",
]


@dataclass(frozen=True)
class Layer:
    name: str
    where: str  # the notebook section that shows it in full
    stopped: int  # attempts this layer stopped, of...
    aimed: int  # ...the attempts aimed at what it is for
    stops: str
    through: int  # attempts that got through with the layer in place, of...
    tried: int  # ...those tried
    does_not: str
    cost: str
    ratio: float | None = None  # the cost as one ratio against going without, where there is one

    @property
    def stops_all(self) -> bool:
        return self.aimed > 0 and self.stopped == self.aimed


def sockets_of(node: Any) -> list[str]:
    """``host:port`` of every TCP socket ``node`` listens on, as the operating system sees it
    (the node's process and its children)."""
    process = node.process.process() if node.process else None
    if process is None:
        raise RuntimeError(f"the node {node.name} is not running")
    found = set()
    for proc in [process, *process.children(recursive=True)]:
        for conn in proc.net_connections(kind="inet"):
            if conn.status == "LISTEN":
                found.add(f"{conn.laddr.ip}:{conn.laddr.port}")
    return sorted(found)


def listening(lab: Lab) -> dict[str, list[str]]:
    """:func:`sockets_of` each of the lab's nodes, by role; the lab's own nodes only."""
    return {role: sockets_of(lab.node(role, "read the sockets of")) for role in lab.brokers}


def guest_connects(lab: Lab, role: str = "sync") -> bool:
    """Whether guest/guest opens a connection to the lab's ``role`` node from this machine."""
    from kombu import Connection

    node = lab.node(role, "connect as guest to")
    try:
        with Connection(f"amqp://guest:guest@{node.address}:{node.amqp_port}//") as conn:
            conn.connect()
        return True
    except Exception:  # noqa: BLE001 - refused is an answer
        return False


def on_loopback(address: str) -> bool:
    """Whether ``host:port`` (``[v6]:port`` too) is on a loopback address (127.0.0.0/8, ::1)."""
    return ipaddress.ip_address(address.rsplit(":", 1)[0].strip("[]")).is_loopback


def guest_on_loopback(sockets: dict[str, list[str]], guest_connected: bool) -> Layer:
    """``sockets`` from :func:`listening`; ``guest_connected``: guest/guest got in from here."""
    every = [s for found in sockets.values() for s in found]
    loopback = [s for s in every if on_loopback(s)]
    return Layer(
        name="guest on loopback only",
        where="every lab node",
        stopped=len(loopback),
        aimed=len(every),
        stops=f"guest/guest from another machine: {len(loopback)} of {len(every)} listening "
        "sockets on 127.0.0.1",
        through=int(guest_connected),
        tried=1,
        does_not="any process on this machine, as guest, with every right",
        cost="none",
    )


def _is_control(attempt: Any) -> bool:
    return "the control" in attempt.what


def user_per_party(closed: list[Any], edge_pickle_ran: bool, call: Any) -> Layer:
    """``closed``: :func:`~mpsoa_lab.experiments.permissions.cross_service` with the reply
    exchange; ``edge_pickle_ran``: a pickle the edge's user published to a task it calls ran
    code in a worker that accepts pickle; ``call``:
    :func:`~mpsoa_lab.experiments.permissions.call_cost`."""
    aimed = [a for a in closed if not _is_control(a)]
    controls = [a for a in closed if _is_control(a)]
    through = sum(a.allowed for a in controls) + int(edge_pickle_ran)
    return Layer(
        name="a user per party",
        where="13 · 1",
        stopped=sum(not a.allowed for a in aimed),
        aimed=len(aimed),
        stops=f"{sum(not a.allowed for a in aimed)} of {len(aimed)} cross-service attempts "
        "(publish, consume, tap, declare, the default exchange)",
        through=through,
        tried=len(controls) + 1,
        does_not="a party's own tasks, with any body: its controls, and a pickle from the edge "
        "to a task it calls, which ran code",
        cost=f"sync call x{call.ratio:.2f} (the edge's user against the lab's, taking turns)",
        ratio=call.ratio,
    )


def tls_peer_verification(gets_in: dict[str, str], cost: Any) -> Layer:
    """``gets_in`` and ``cost`` from :mod:`mpsoa_lab.experiments.tls_cost`."""
    others = {who: how for who, how in gets_in.items() if how != "connected"}
    connect = cost.median("tls_connect") / cost.median("plain_connect")
    call = cost.median("tls_call") / cost.median("plain_call")
    return Layer(
        name="TLS with peer verification",
        where="13 · 2",
        stopped=len(others),
        aimed=len(gets_in) - 1,
        stops=f"{len(others)} of {len(gets_in) - 1} clients without the authority's certificate",
        through=len(gets_in) - len(others),
        tried=1,
        does_not="a client with a certificate, whatever its user may publish",
        cost=f"new connection x{connect:.1f}, sync call x{call:.2f}",
        ratio=call,
    )


def json_only(workers: dict[str, Any], codec: Any) -> Layer:
    """``workers`` from :func:`~mpsoa_lab.experiments.pickle_payload.to_worker`; ``codec``: a
    :class:`~mpsoa_lab.experiments.signed_messages.Cost` (CPU time per body, JSON and pickle)."""
    ours, old = workers["lab (JSON only)"], workers["2014 (pickle accepted)"]
    ratio = codec.codec_json_ms / codec.codec_pickle_ms
    return Layer(
        name="JSON only",
        where="12 · 1",
        stopped=int(not ours.marker),
        aimed=1,
        stops="a pickle that runs code in the worker (in the 2014 worker it "
        f"{'ran' if old.marker else 'did not run'})",
        through=int(ours.good_task_ran),
        tried=1,
        does_not="any JSON task from whoever may publish: the one after the pickle ran",
        cost=f"codec CPU x{ratio:.1f} against pickle; Celery's default since 4.0",
        ratio=ratio,
    )


FORGED = ("unsigned", "body changed", "stranger's key")
CAPTURED = ("task header", "replay", "reply_to")


def signed_messages(run: Any) -> Layer:
    """``run`` from :func:`mpsoa_lab.experiments.signed_messages.run`."""
    forged = sum(run.cases[k].runs == 0 for k in FORGED)
    forged += run.results["forged JSON"].answer.startswith("raised")
    captured = sum(run.cases[k].runs > 0 for k in CAPTURED)
    captured += run.results["request swapped"].answer.startswith("returned")
    cost = run.cost
    size, codec = cost.signed_bytes / cost.json_bytes, cost.codec_signed_ms / cost.codec_json_ms
    latency = cost.signed_median / cost.json_median
    return Layer(
        name="signed messages",
        where="12 · 3",
        stopped=forged,
        aimed=len(FORGED) + 1,
        stops=f"{forged} of {len(FORGED) + 1} forged bodies and results",
        through=captured,
        tried=len(CAPTURED) + 1,
        does_not="messages made from captured signed ones: replayed, headers and reply_to "
        "changed, a request swapped",
        cost=f"bytes x{size:.1f}, codec CPU x{codec:.0f}, sync call x{latency:.2f}",
        ratio=latency,
    )


def table(layers: list[Layer]) -> str:
    """One block per layer: what it stopped, what got through, its cost."""
    lines = []
    for layer in layers:
        lines += [
            f"{layer.name} ({layer.where})",
            f"  stopped  {layer.stopped}/{layer.aimed}  {layer.stops}",
            f"  through  {layer.through}/{layer.tried}  {layer.does_not}",
            f"  cost     {layer.cost}",
        ]
    return "\n".join(lines)

"""``make bench``: Celery against raw kombu, side by side in one run, on the lab's own brokers.

``python -m mpsoa_lab.bench [--quick] [--output benchmarks/results.json]``

(a) **Sync round trip.** ``send_task("mpledger.sync.entry_count").get()`` through Celery (a
    ``rpc://`` result) against a raw AMQP request and reply with kombu on the same broker:
    the request goes through the same topic exchange, the reply comes back on RabbitMQ's
    direct reply-to (``amq.rabbitmq.reply-to``), and a raw kombu responder process does the
    same work as the task (the same function, and the same line in the service's execution
    log). p50 and p99 of the round trip.
(b) **Async publish rate.** ``send_task("mpledger.async.record_entry")`` against
    ``Producer.publish`` of the same arguments to the same exchange and routing key, both
    persistent, no publisher confirms. Messages per second on the publishing side; every
    message is then counted in the queue.
(c) **End to end.** A burst of N ``record_entry`` tasks, from the first publish to the last
    execution recorded in the service's storage, with one and with two Celery workers.

Each measurement is repeated in rounds after a warm-up; inside a round the variants run one
after the other in an order that rotates from round to round, so a noisy neighbour hurts
them alike. Figures are medians over rounds; a ratio is the median of the per-round ratios
(each round pairs runs made seconds apart). Where a target is missed, the output shows where
the time goes, measured with timers around each step of a publish (and a cProfile listing).

In (a) the two sync workers (prefork, the recommended pool, and solo) take turns on their
queue through Celery's own remote control (``cancel_consumer``/``add_consumer``), every switch
checked on the broker; in (c) workers are started afresh for every burst.
Everything the benchmark starts (workers, the raw responder) is stopped before it returns,
and the rows it wrote in the service's storage are removed.

The modules, in the order a run uses them: :mod:`.workload` (task and queue names, worker
settings, counts), :mod:`.session` (set-up and clean-up of a run), :mod:`.raw` (the raw kombu
responder and its client), :mod:`.sync_roundtrip` (a), :mod:`.publish` and
:mod:`.publish_breakdown` (b), :mod:`.end_to_end` (c), :mod:`.targets`, :mod:`.recommended`,
:mod:`.conditions` and :mod:`.runner` (``results.json``), :mod:`.report` (the printed table),
:mod:`.cli` (the command line); helpers in :mod:`.rounds`, :mod:`.storage` and
:mod:`.message_size`.
"""

from __future__ import annotations

from .cli import main
from .recommended import RECOMMENDED
from .report import format_report
from .runner import run
from .targets import TARGETS
from .workload import FULL, QUICK, Counts

__all__ = ["FULL", "QUICK", "RECOMMENDED", "TARGETS", "Counts", "format_report", "main", "run"]

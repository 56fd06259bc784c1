"""Notebook 10's harness: the design's queues on a three-node cluster, and a node lost under load.

One module per job, from the bottom up:

* :mod:`.versions`: the server's version (:func:`server_version`) and what it says of classic
  queue mirroring (:func:`mirroring_note`, :func:`check_mirroring`, :class:`MirroringUnavailable`).
* :mod:`.queues`: the three ways of holding the design's queues, :data:`CONFIGS` (``2014``:
  classic queues with the ``x-ha-policy: all`` argument that ``CELERY_QUEUE_HA_POLICY = 'all'``
  produced; ``mirrored``: classic queues mirrored by :data:`MIRRORING_POLICY`; ``quorum``), the
  ones a version runs (:func:`configs_for`), Celery's ``task_queues`` for one
  (:func:`celery_queues`) and a vhost of its own (:func:`cluster_vhost`).
* :mod:`.ha_setting`: the design's six queues declared with the 2014 argument, and what the
  broker says of each (:func:`ha_setting_2014`).
* :mod:`.clients`: the publisher apps, queue declarations, one HAProxy address and prefetch
  reads the runs share, and the caller's exclusive reply queue (:class:`TransientReplyRPC`,
  :data:`TRANSIENT_REPLY_BACKEND`).
* :mod:`.load`: sync calls (:class:`Call`) and async tasks sent in threads during a run.
* :mod:`.clean_stop`: a queue's leader stopped cleanly and started again (:func:`rejoin`,
  :class:`Rejoin`).
* :mod:`.node_loss_run`: what a node-loss run recorded (:class:`NodeLossRun`) and how long a
  stream of successes stopped (:func:`longest_gap`); pure.
* :mod:`.node_loss_driver`: the node leading the busiest queue killed under load, every task
  counted (:func:`node_loss`).
* :mod:`.quorum`: what quorum queues change for Celery, read on the broker
  (:func:`quorum_specifics`).
* :mod:`.costs`: sync latency, async throughput and memory of one configuration
  (:func:`cost`, :class:`CostRun`), and each kind of queue's confirm latency side by side
  (:func:`confirm_latency`).
* :mod:`.reporting`: tables and plots of the runs (:func:`loss_table`, :func:`rejoin_table`,
  :func:`cost_table`, :func:`plot_node_loss`); pure.

Everything a function starts (workers, vhosts, apps) is stopped or deleted before it returns,
whatever happened; a node it stopped or killed is started again.
"""

from __future__ import annotations

from .clean_stop import STEADY_S, SYNC_TIMEOUT, Rejoin, rejoin, rejoin_together
from .clients import TRANSIENT_REPLY_BACKEND, TransientReplyRPC
from .costs import CostRun, confirm_latency, cost
from .ha_setting import HaSetting, ha_setting_2014
from .load import Call
from .node_loss_driver import node_loss
from .node_loss_run import NodeLossRun, longest_gap, runs_to_end
from .queues import (
    ASYNC_TASK,
    CONFIGS,
    MIRRORING_POLICY,
    QueueConfig,
    celery_queues,
    cluster_vhost,
    configs_for,
)
from .quorum import quorum_specifics
from .reporting import cost_table, loss_table, plot_node_loss, rejoin_table, single_copy_outcome
from .versions import MirroringUnavailable, check_mirroring, mirroring_note, server_version

__all__ = [
    "QueueConfig",
    "CONFIGS",
    "MIRRORING_POLICY",
    "ASYNC_TASK",
    "configs_for",
    "MirroringUnavailable",
    "server_version",
    "mirroring_note",
    "check_mirroring",
    "celery_queues",
    "cluster_vhost",
    "HaSetting",
    "ha_setting_2014",
    "Call",
    "Rejoin",
    "NodeLossRun",
    "node_loss",
    "rejoin",
    "rejoin_together",
    "SYNC_TIMEOUT",
    "STEADY_S",
    "quorum_specifics",
    "TransientReplyRPC",
    "TRANSIENT_REPLY_BACKEND",
    "longest_gap",
    "runs_to_end",
    "single_copy_outcome",
    "loss_table",
    "CostRun",
    "cost",
    "confirm_latency",
    "cost_table",
    "rejoin_table",
    "plot_node_loss",
]

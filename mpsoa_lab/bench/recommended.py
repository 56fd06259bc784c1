"""The lab's recommended settings for what the benchmark measures, each with the reason for it
(written to ``results.json`` as ``recommended_settings``; the figures are measured with them)."""

from __future__ import annotations

__all__ = ["RECOMMENDED"]

#: The lab's recommended settings for these measurements, each with the reason for it.
RECOMMENDED: list[dict[str, str]] = [
    {
        "where": "edge",
        "setting": "broker_pool_limit = 10 (Celery's default), not 0",
        "reason": "publishes reuse pooled connections; the 2014 BROKER_POOL_LIMIT = 0 opens and "
        "closes a TCP and AMQP connection for every message (variant "
        "celery_connection_per_message). The limit is one for the whole process: each "
        "app's first use of its pool resizes every kombu pool in the process, so one app "
        "with 0 unpools all the others",
    },
    {
        "where": "edge",
        "setting": "one long-lived producer for a burst: "
        "with app.producer_or_acquire() as p: send_task(..., producer=p)",
        "reason": "one pool acquire and release per burst instead of per message "
        "(variant celery_producer_per_call)",
    },
    {
        "where": "edge",
        "setting": "async app: task_ignore_result = True, no result backend",
        "reason": "fire and forget: no reply queue is declared or read for each task",
    },
    {
        "where": "edge",
        "setting": "sync app: result_backend = 'rpc://', result_persistent = False",
        "reason": "a reply goes straight back on one reply queue per client, as a transient "
        "message; no result store to write and poll",
    },
    {
        "where": "edge",
        "setting": "task_serializer = result_serializer = 'json', accept_content = ['json']",
        "reason": "safe (pickle runs code chosen by whoever can publish) and the same encoder "
        "as the raw side",
    },
    {
        "where": "edge",
        "setting": "task_send_sent_event = False (default)",
        "reason": "no extra event message for every task sent",
    },
    {
        "where": "edge",
        "setting": "delivery mode: transient for sync, persistent for async",
        "reason": "a sync request is worthless once its caller gave up, so it need not touch "
        "disk; a fire-and-forget task must survive a broker restart",
    },
    {
        "where": "edge",
        "setting": "task_publish_retry = True (default), kept",
        "reason": "a publish survives a dropped connection; costs a little per message "
        "(the celery_stripped variant shows how little)",
    },
    {
        "where": "worker",
        "setting": "--pool prefork --concurrency 1 (the lab's default); more "
        "worker processes to scale",
        "reason": "the solo pool runs the task in the consuming process and answers a sync call "
        "sooner (no hand-over to a pool child: compare the solo row), but in async bursts "
        "it stalled for up to 10 s at a time here: always with prefetch multiplier 1, "
        "and now and then with 4 (see --e2e-pools prefork,solo). A caller blocked on a "
        "sync call cannot afford that; prefork did not stall",
    },
    {
        "where": "worker",
        "setting": "--prefetch-multiplier 4 (Celery's default)",
        "reason": "keeps a few messages in hand for short tasks, so a worker does not wait on the "
        "broker between two; 1 with late acks is for long tasks (notebook 05)",
    },
    {
        "where": "worker",
        "setting": "stop with Celery's remote 'shutdown', then SIGTERM",
        "reason": "a warm shutdown that also reaches an idle solo worker, which acts on SIGTERM "
        "only when something wakes it",
    },
    {
        "where": "worker",
        "setting": "--without-mingle --without-gossip --without-heartbeat, "
        "task events off (no -E), --loglevel WARNING",
        "reason": "no broker chatter, no event message and no two log lines for every task; the "
        "raw responder does none of these either",
    },
]

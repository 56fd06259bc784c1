"""The table printed at the end of a run, from the results alone: medians, ratios, targets,
breakdowns of where the time goes, counts and conditions."""

from __future__ import annotations

from typing import Any

__all__ = ["format_report"]

_SYNC_LABELS = {
    "raw": "raw kombu, direct reply-to, responder process",
    "celery_prefork": "Celery rpc://, prefork c=1 worker (recommended)",
    "celery_solo": "Celery rpc://, solo worker",
}
_PUBLISH_LABELS = {
    "raw": "raw kombu Producer.publish, long-lived producer",
    "celery_recommended": "Celery send_task, long-lived producer (recommended)",
    "celery_producer_per_call": "Celery send_task, producer from the pool per call",
    "celery_stripped": "Celery, no argsrepr/declare/retry (not recommended)",
    "celery_connection_per_message": "Celery, a connection per message (pool limit 0)",
}


def format_report(results: dict[str, Any]) -> str:
    """The table printed at the end of a run: medians, ratios, targets, breakdowns, conditions."""
    s, p, e = results["sync"], results["async_publish"], results["end_to_end"]
    cond, tg, counts = results["conditions"], results["targets"], results["conditions"]["counts"]
    out: list[str] = []
    add = out.append

    add(
        f"Celery against raw kombu, {results['mode']} run, {results['duration_s']:.0f} s "
        "(medians over rounds; ratio = median of the per-round Celery/raw ratios)"
    )
    add("")
    add(
        f"(a) sync round trip, {s['task']}: {counts['sync_rounds']} rounds x "
        f"{counts['sync_calls']} calls per variant"
    )
    add(f"    {'':52} {'p50 ms':>8} {'p99 ms':>8}")
    for v in s["variants"]:
        m = s["median"][v]
        add(f"    {_SYNC_LABELS[v]:52} {m['p50_ms']:8.2f} {m['p99_ms']:8.2f}")
    for key, ratio in s["ratios"].items():
        add(f"    {'ratio ' + key:52} {ratio['p50_ms']:7.2f}x {ratio['p99_ms']:7.2f}x")
    t = tg["sync_p50"]
    add(f"    target: {t['description']} -> {t['measured']:.2f}x: {t['result'].upper()}")
    add("    where a round trip goes (medians, ms; the caller's clock and the execution log):")
    add(f"      {'':50} " + " ".join(f"{v:>14}" for v in s["variants"]))
    for part in next(iter(s["breakdown_ms"].values())):
        cells = [s["breakdown_ms"][v].get(part) for v in s["variants"]]
        fmt = "{:14d}" if "matched" in part else "{:14.3f}"
        add(
            f"      {part:50} "
            + " ".join(fmt.format(c) if c is not None else f"{'-':>14}" for c in cells)
        )
    caller = s["celery_caller_ms"]
    add(f"    a Celery caller, step by step ({caller['calls']} calls, medians, ms):")
    for k, v in caller.items():
        if k != "calls":
            add(f"      {k:70} {v:7.3f}")

    add("")
    add(
        f"(b) async publish, {p['task']}: {counts['publish_rounds']} rounds x "
        f"{counts['publish_messages']} messages ({counts['publish_connection_messages']} "
        "for a connection per message), persistent, no confirms"
    )
    add(f"    {'':52} {'msgs/s':>9} {'Celery/raw':>10}")
    for v in p["variants"]:
        ratio = p["ratios"].get(f"{v}/raw")
        add(
            f"    {_PUBLISH_LABELS[v]:52} {p['median_msgs_per_s'][v]:9,.0f} "
            f"{'' if ratio is None else f'{ratio:9.3f}x':>10}"
        )
    t = tg["async_publish"]
    add(f"    target: {t['description']} -> {t['measured']:.2f}x: {t['result'].upper()}")
    b = p["breakdown_us_per_message"]
    add(
        f"    where a publish goes (timers, us per message; {b['messages']} messages in chunks "
        f"of {b['chunk']}, median chunk):"
    )
    add(f"      Celery, recommended: {b['celery_total']:.1f} us in all")
    for k, v in b["celery"].items():
        add(f"        {k:56} {v:7.1f}")
    add(f"      raw kombu: {b['raw_total']:.1f} us in all")
    for k, v in b["raw"].items():
        add(f"        {k:56} {v:7.1f}")
    add("      most own time in a Celery publish (cProfile, us per message):")
    for row in p["profile_top"][:6]:
        add(f"        {row['function'][:62]:62} {row['own_us_per_message']:6.1f}")
    m = p["message"]
    add(
        f"    message: payload {m['payload_bytes']} B; Celery body "
        f"{m['celery'].get('body_bytes')} B + headers {m['celery'].get('headers_bytes')} B; "
        f"raw body {m['raw']['body_bytes']} B"
    )

    add("")
    add(
        f"(c) end to end, burst of {e['tasks_per_burst']} {e['task']} tasks, first publish "
        f"to last execution logged: {counts['e2e_rounds']} rounds"
    )
    add(f"    {'':52} {'tasks/s':>9} {'task body ms':>12}")
    for v in e["configs"]:
        pool, k = v.rsplit("_", 1)
        label = f"{k} worker{'s' if k != '1' else ''}, {pool}"
        label += ", concurrency 1" if pool == "prefork" else ""
        add(
            f"    {label:52} {e['median_tasks_per_s'][v]:9,.0f} {e['median_task_body_ms'][v]:12.3f}"
        )
    for pool, ratio in e["two_over_one"].items():
        add(f"    {'two workers / one, ' + pool:52} {ratio:8.2f}x")
    stalled = e["stalls"]["bursts with a gap of over 1 s between two tasks"]
    add(
        "    bursts with a gap of over 1 s between two tasks: "
        + ", ".join(f"{k} {v}" for k, v in stalled.items())
    )
    ct = e["counts"]
    add(
        f"    counted: {ct.get('published', 0)} published, {ct.get('distinct', 0)} executed "
        f"once, {ct.get('lost', 0)} lost, {ct.get('duplicated', 0)} duplicated, "
        f"{ct.get('stored', 0)} ledger rows"
    )

    out += _lab_start(results.get("lab_start"))
    v, mach, w = cond["versions"], cond["machine"], cond["workers"]
    add("")
    add(
        "conditions: "
        + ", ".join(f"{k} {v[k]}" for k in ("celery", "kombu", "amqp", "rabbitmq", "python"))
    )
    add(
        f"  {mach['platform']}, {mach['cpu_count']} CPUs, load average "
        f"{mach['load_average_at_start']} at start, {mach['load_average_at_end']} at end"
    )
    add(
        f"  workers: concurrency {w['concurrency']}, prefetch multiplier "
        f"{w['prefetch_multiplier']}, {w['options']}"
    )
    add(
        f"  delivery: sync {cond['delivery_mode']['sync']}, async {cond['delivery_mode']['async']};"
        " json; no publisher confirms"
    )
    if results.get("missed"):
        add("")
        add("TARGET MISSED:")
        out += [f"  {note}" for note in results["missed"]]
    return "\n".join(out)


def _lab_start(start: dict[str, Any] | None) -> list[str]:
    """(d): ``python -m mpsoa_lab up`` against its two nodes started by hand, side by side."""
    if not start:
        return []
    if "skipped" in start:
        return ["", f"(d) the lab's start against its nodes' own boot: skipped, {start['skipped']}"]
    verdict = "PASS" if start["met"] else "FAIL"
    return [
        "",
        f"(d) the lab's start against its nodes' own boot, {start['rounds']} rounds in turn",
        f"    python -m mpsoa_lab up, to 'The lab is up'        {start['up_median_s']:8.2f} s"
        f"   rounds: {', '.join(f'{x:.2f}' for x in start['up_s'])}",
        f"    the same two nodes by hand, to ready               {start['nodes_median_s']:8.2f} s"
        f"   rounds: {', '.join(f'{x:.2f}' for x in start['nodes_by_hand_s'])}",
        f"    target: up at most {start['target']:.2f}x the nodes' boot -> "
        f"{start['ratio']:.2f}x (median of the rounds' ratios): {verdict}",
    ]

"""Notebook 11's counting, without a broker: confirms kept by delivery tag, what each side's
publisher is counted for, when views agree, and the table and timeline drawn from a run."""

from __future__ import annotations

from collections import Counter

import matplotlib

matplotlib.use("Agg")

from mpsoa_lab.experiments.partitions import report  # noqa: E402
from mpsoa_lab.experiments.partitions.split import SplitRun, _count  # noqa: E402
from mpsoa_lab.experiments.partitions.traffic import CountingPublisher, Event  # noqa: E402
from mpsoa_lab.experiments.partitions.views import View, agreed  # noqa: E402


def publisher(name: str = "mirrored-minority") -> CountingPublisher:
    return CountingPublisher(name, "127.77.1.1", 5672, "q")


def test_confirms_are_counted_by_delivery_tag_single_multiple_and_nacked():
    p = publisher()
    p._pending = {1: "a", 2: "b", 3: "c", 4: "d"}
    p.sent = dict.fromkeys("abcde", 0.0)
    p._on_ack(2, True, p.confirmed)  # multiple: 1 and 2
    p._nack(4, False)
    assert sorted(p.confirmed) == ["a", "b"] and sorted(p.nacked) == ["d"]
    assert p.unconfirmed == ["c", "e"]  # c pending, e never given a tag (its channel closed)
    assert [e.kind for e in p.events] == ["nacked"]
    p._on_ack(3, False, p.confirmed)
    p._on_ack(3, False, p.confirmed)  # a repeated ack changes nothing
    assert sorted(p.confirmed) == ["a", "b", "c"]


def run_with(p: CountingPublisher, held: Counter, **times) -> tuple[SplitRun, object]:
    run = SplitRun("ignore", "3.10.8", 6, "split", 0.0, t_split=10.0, t_heal=20.0, **times)
    run.publishers[p.name] = p
    return run, _count(run, p.name, p, held)


def test_a_side_is_counted_by_message_id():
    p = publisher()
    p.sent = {"m-1": 5.0, "m-2": 12.0, "m-3": 15.0, "m-4": 18.0, "m-5": 25.0}
    p.confirmed = {"m-1": 5.1, "m-2": 12.1, "m-3": 21.0, "m-5": 25.1}  # m-3's ack came late
    p.events = [Event(11.0, "closed", "x"), Event(12.0, "reconnected"), Event(40.0, "refused")]
    held = Counter({"m-1": 1, "m-3": 2, "mirrored-minority-9": 1, "other-1": 3})
    run, count = run_with(p, held, t_end=30.0)
    assert (count.published_split, count.confirmed_split, count.confirmed_late) == (3, 1, 1)
    assert count.confirmed == 4 and count.unconfirmed == 1  # m-4: no answer at all
    assert count.lost == 2  # m-2 and m-5 were confirmed and are not in the queue
    assert count.duplicated == 1  # m-3 twice; another publisher's doubles are not its own
    assert count.told == "closed x1"  # from the fault to the end; a reconnection is no news


def test_an_unreadable_queue_leaves_losses_unknown_and_the_table_says_so():
    p = publisher()
    p.sent, p.confirmed = {"m-1": 12.0}, {"m-1": 12.1}
    run, count = run_with(p, None, t_end=30.0)
    run.counts = [count]
    assert count.lost is None and run.lost("mirrored") is None
    row = report.rows([run])[0]
    assert row["lost"] == row["duplicated"] == "unreadable"


def test_views_agree_only_when_every_node_answers_sees_all_and_lists_no_partition():
    all3 = frozenset({0, 1, 2})
    ok = [View(0, i, True, all3) for i in range(3)]
    assert agreed(ok, 3)
    assert not agreed(ok[:2], 3)
    assert not agreed([*ok[:2], View(0, 2, False)], 3)
    assert not agreed([*ok[:2], View(0, 2, True, all3, frozenset({0}))], 3)
    assert str(View(0, 0, True, frozenset({0}), frozenset({1, 2}))) == (
        "sees 1 running; partitioned from 2,3"
    )


def test_the_table_and_the_timeline_of_a_run():
    a, b = publisher("quorum-minority"), publisher("quorum-majority")
    a.sent, a.confirmed = {"x": 11.0}, {"x": 21.0}
    b.sent, b.confirmed = {"y": 11.0, "z": 12.0}, {"y": 11.1, "z": 12.1}
    run = SplitRun("pause_minority", "4.0.5", 6, "split", 0.0, t_split=10.0, t_heal=20.0)
    run.t_normal, run.t_end = 23.0, 25.0
    run.publishers = {a.name: a, b.name: b}
    run.counts = [_count(run, n, p, Counter({"x": 1, "y": 1})) for n, p in run.publishers.items()]
    text = report.table([run]).splitlines()
    assert text[0].split()[:4] == ["mode", "fault", "queue", "side"]
    assert [line.split()[3] for line in text[1:]] == ["minority", "majority"]
    assert report.recovery(run) == "by itself, 3.0 s after the heal"
    ax = report.plot_timeline(run)
    labels = ax.get_legend_handles_labels()[1]
    assert "quorum, majority side (1 confirmed, then lost)" in labels  # z
    assert "split (node 1)" in labels and ax.get_ylim()[0] == 0


def test_the_losses_of_runs_side_by_side_unreadable_written_not_drawn_as_zero():
    runs = []
    for mode, held in (("ignore", Counter()), ("autoheal", None)):
        p = publisher("quorum-minority")
        p.sent, p.confirmed = {"x": 11.0}, {"x": 11.1}
        run = SplitRun(mode, "3.10.8", 6, "split", 0.0, t_split=10.0, t_heal=20.0, t_end=25.0)
        run.publishers = {p.name: p}
        run.counts = [_count(run, p.name, p, held)]
        runs.append(run)
    ax = report.plot_lost(runs)
    assert [round(b.get_height()) for b in ax.patches] == [1]  # ignore lost x; autoheal unknown
    assert "unreadable" in [t.get_text() for t in ax.texts]


def test_each_nodes_last_view_at_a_time():
    run = SplitRun("ignore", "3.10.8", 6, "split", 0.0)
    run.views = [View(1.0, 0, False), View(1.0, 1, True), View(2.0, 0, True), View(3.0, 1, False)]
    assert run.views_at(2.5) == [View(2.0, 0, True), View(1.0, 1, True)]
    assert run.views_at(0.5) == []


def test_each_nodes_view_before_the_heal_and_after_it():
    run = SplitRun("ignore", "3.10.8", 6, "split", 0.0, t_split=10.0, t_heal=20.0, t_end=30.0)
    alone, others, all3 = frozenset({0}), frozenset({1, 2}), frozenset({0, 1, 2})
    run.views = [View(18.0, 0, True, alone), View(18.0, 1, True, others), View(19.0, 0, True)]
    run.views += [View(21.0, 0, False)]  # the read at 19 s may have been answered after the heal
    run.views += [View(29.0, 1, True, all3, alone), View(31.0, 1, True, all3)]
    lines = report.views(run).splitlines()
    assert lines[0].split() == ["before", "the", "heal", "after", "healing"]
    assert lines[1].split("  ")[0] == "node 1" and lines[1].endswith("no answer")
    assert "sees 1 running" in lines[1]
    assert lines[2].startswith("node 2") and lines[2].endswith("sees 1,2,3 running")
    assert "sees 2,3 running" in lines[2] and len(lines) == 3  # node 3 was never read
    run.views = run.views[:-1]  # the last read of node 2 listed node 1 as partitioned from it
    assert report.views(run).splitlines()[2].endswith("sees 1,2,3 running; partitioned from 1")
    run.fault = "suspend"
    assert "before the resume" in report.views(run).splitlines()[0]


def test_a_node_paused_itself_only_when_its_log_says_it_saw_a_minority():
    run = SplitRun("pause_minority", "3.10.8", 6, "suspend", 0.0, hold=10.0)
    assert run.hosts and not run.paused(0)  # no log read: not paused
    run.logs = {0: ["rabbit on node rabbit@b down: net_tick_timeout"], 1: []}
    assert not run.paused(0)
    run.logs[0].append("Cluster minority/secondary status detected - awaiting recovery")
    assert run.paused(0) and not run.paused(1) and not run.paused(2)

"""What a node that failed to start shows of its log: the cause first, then how it ended."""

from __future__ import annotations

from mpsoa_lab.plumbing.node import log_excerpt

STAMP = "2026-11-24 08:38:49.198085+00:00"

# The shape of a real boot that failed on a port clash (RabbitMQ 3.10): the cause early on,
# then a long shutdown, so that the last lines alone say nothing about why.
PORT_CLASH = "\n".join(
    [
        f"{STAMP} [info] <0.223.0> Running boot step step_{i} defined by app rabbit"
        for i in range(40)
    ]
    + [
        (
            f"{STAMP} [error] <0.766.0> Failed to start Ranch listener {{acceptor,{{127,0,0,1}},24403}} "
            "for reason eaddrinuse (address already in use)"
        ),
        f"{STAMP} [error] <0.763.0>     reason: {{listen_error,{{acceptor,{{127,0,0,1}},24403}},eaddrinuse}}",
    ]
    + [f"{STAMP} [info] <0.666.0> Stopping application 'app_{i}'" for i in range(60)]
    + [f"{STAMP} [notice] <0.44.0> Application rabbit exited with reason: stopped"]
)


def numbered(excerpt: str) -> dict[int, str]:
    rows = {}
    for row in excerpt.splitlines():
        if row.strip() != "...":
            number, text = row.split(": ", 1)
            rows[int(number)] = text
    return rows


def test_a_port_clash_shows_its_cause_and_the_tail():
    excerpt = log_excerpt(PORT_CLASH, errors=10, tail=5)
    rows = numbered(excerpt)
    assert sorted(rows) == [41, 42, 99, 100, 101, 102, 103]  # the two error lines, the last five
    assert "eaddrinuse (address already in use)" in rows[41]
    assert rows[103].endswith("Application rabbit exited with reason: stopped")
    lines = excerpt.splitlines()
    assert [row.strip() for row in lines].count("...") == 2  # before the errors, before the tail
    assert lines[0].strip() == "..." and lines[-1].startswith("  103: ")


def test_the_last_lines_alone_would_have_missed_it():
    tail_only = "\n".join(PORT_CLASH.splitlines()[-15:])
    assert "eaddrinuse" not in tail_only
    assert "eaddrinuse" in log_excerpt(PORT_CLASH)


def test_only_the_first_error_lines_and_case_does_not_matter():
    text = "\n".join(
        ["boot"] + [f"ERROR number {i}" for i in range(8)] + ["Crash dump written", "end"]
    )
    rows = numbered(log_excerpt(text, errors=3, tail=1))
    assert rows == {2: "ERROR number 0", 3: "ERROR number 1", 4: "ERROR number 2", 11: "end"}


def test_each_word_marks_an_error_line():
    words = [
        "error",
        "eaddrinuse",
        "crash",
        "failed",
        "fatal",
        "exception",
        "could_not_start",
        "init terminating in do_boot",
    ]
    text = "\n".join(["quiet"] + [f"a line with {w} in it" for w in words] + ["quiet"] * 5)
    rows = numbered(log_excerpt(text, errors=len(words), tail=0))
    assert sorted(rows) == list(range(2, 2 + len(words)))


def test_errors_in_the_tail_are_shown_once_without_a_gap():
    text = "one\ntwo\nboot failed\nfour"
    assert log_excerpt(text, errors=5, tail=3) == (
        "     ...\n    2: two\n    3: boot failed\n    4: four"
    )


def test_a_clean_log_gives_its_tail_only():
    text = "\n".join(f"line {i}" for i in range(1, 21)) + "\n   \n"
    rows = numbered(log_excerpt(text, errors=10, tail=3))
    assert rows == {19: "line 19", 20: "line 20", 21: "   "}
    assert log_excerpt("", errors=10, tail=3) == ""


def test_a_long_line_keeps_its_beginning_and_its_reason():
    line = "Error during startup: " + "x" * 1000 + " for reason eaddrinuse"
    [row] = log_excerpt(line, width=120).splitlines()
    text = row.split(": ", 1)[1]
    assert text.startswith("Error during startup: ") and text.endswith("for reason eaddrinuse")
    assert " ... " in text and len(text) <= 120


def test_numbers_count_from_where_the_text_starts_in_its_file():
    rows = numbered(log_excerpt("starting\nfailed to boot", errors=1, tail=1, first_line=501))
    assert rows == {502: "failed to boot"}

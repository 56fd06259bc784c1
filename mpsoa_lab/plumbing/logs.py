"""Log excerpts for start errors: the cause first, then how it ended."""

from __future__ import annotations

import re

__all__ = ["log_excerpt", "ERROR_LINE"]

#: Words that mark a line of a node's console output or log as an error worth showing first.
ERROR_LINE = re.compile(
    r"error|eaddrinuse|crash|fail|fatal|exception|could_not|terminating", re.IGNORECASE
)


def log_excerpt(
    text: str, errors: int = 10, tail: int = 10, width: int = 300, first_line: int = 1
) -> str:
    """The first ``errors`` error-looking lines of a log and its last ``tail`` lines, in order.

    A node that fails to boot (a port already taken: ``eaddrinuse``) says why early on, then
    logs a long shutdown; the tail alone shows only the shutdown. Each line carries its number
    (``first_line`` is the number of the first line of ``text`` in its file), a gap is shown as
    ``...``, and a line longer than ``width`` keeps its beginning and its end (where Erlang
    puts the reason).
    """
    lines = text.splitlines()
    picked = [i for i, line in enumerate(lines) if ERROR_LINE.search(line)][:errors]
    shown = sorted(set(picked) | set(range(max(0, len(lines) - tail), len(lines))))
    out, previous = [], -1
    for i in shown:
        if i > previous + 1:
            out.append("     ...")
        line = lines[i]
        if len(line) > width:
            keep = max(0, width - 5) // 2
            line = f"{line[:keep]} ... {line[-keep:]}" if keep else line[:width]
        out.append(f"{i + first_line:>5}: {line}")
        previous = i
    return "\n".join(out)

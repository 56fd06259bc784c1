"""``python -m mpsoa_lab.bench``: run the benchmark from a terminal (``make bench``).

The raw responder's child process comes in here too (``--serve-raw-sync``); see :mod:`.cli`.
"""

from __future__ import annotations

import sys

from .cli import main

__all__: list[str] = []

if __name__ == "__main__":
    sys.exit(main())

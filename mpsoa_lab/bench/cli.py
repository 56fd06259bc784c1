"""The command line: ``python -m mpsoa_lab.bench [--quick] [--output ...] [--e2e-pools ...]``.

``--serve-raw-sync URL NAME`` (not shown in ``--help``) is how the benchmark starts its raw
responder in a child process (:func:`~mpsoa_lab.bench.raw.start_responder`).
"""

from __future__ import annotations

import argparse

from . import __doc__ as _package_doc
from .raw import serve_raw_sync
from .report import format_report
from .runner import run
from .workload import E2E_POOLS

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table and write the figures (or serve as raw responder)."""
    parser = argparse.ArgumentParser(
        prog="python -m mpsoa_lab.bench", description=(_package_doc or "").split("\n")[0]
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small counts (CI: proves the benchmark works, in well under 30 s)",
    )
    parser.add_argument(
        "--output",
        default="benchmarks/results.json",
        help="where to write the figures (default: %(default)s)",
    )
    parser.add_argument(
        "--e2e-pools",
        default=",".join(E2E_POOLS),
        help="worker pools for the end-to-end part, comma-separated "
        "(default: %(default)s; 'prefork,solo' adds the solo pool)",
    )
    parser.add_argument(
        "--serve-raw-sync", nargs=2, metavar=("URL", "NAME"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.serve_raw_sync:
        return serve_raw_sync(*args.serve_raw_sync)
    results = run(
        quick=args.quick,
        output=args.output,
        e2e_pools=tuple(p for p in args.e2e_pools.split(",") if p),
    )
    print(format_report(results))
    print(f"\nwritten to {args.output}")
    return 0

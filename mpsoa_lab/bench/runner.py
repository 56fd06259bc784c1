"""One benchmark run from start to end: the three parts on a lab, side by side, then the
headline ratios, the targets' verdicts and the conditions, returned and written as JSON."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .conditions import conditions, load_average, machine
from .end_to_end import end_to_end
from .lab_start import lab_start
from .publish import publish_rates
from .recommended import RECOMMENDED
from .session import BenchSession
from .sync_roundtrip import sync_round_trips
from .targets import missed, verdicts
from .workload import E2E_POOLS, FULL, POOLS, QUICK

if TYPE_CHECKING:
    from ..running.lab import Lab

__all__ = ["run"]


def _round(value: float, digits: int = 4) -> float:
    """``value`` to ``digits`` significant digits."""
    return float(f"{value:.{digits}g}")


def run(
    *,
    quick: bool = False,
    output: str | Path | None = None,
    lab: Lab | None = None,
    log: Callable[[str], None] | None = None,
    e2e_pools: tuple[str, ...] = E2E_POOLS,
) -> dict[str, Any]:
    """Run the benchmark on ``lab`` (default: ``mpsoa_lab.up()``); return and write the figures."""
    import mpsoa_lab

    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    counts = QUICK if quick else FULL
    if not e2e_pools or set(e2e_pools) - set(POOLS):
        raise ValueError(f"e2e_pools must name pools among {POOLS}, not {e2e_pools!r}")
    started, wall = time.monotonic(), time.time()
    own_lab = lab is None
    lab = lab or mpsoa_lab.up()
    try:
        conditions_machine = machine()
        with BenchSession(lab, counts, log, e2e_pools) as bench:
            sync = sync_round_trips(bench)
            publish = publish_rates(bench)
            e2e = end_to_end(bench)
            purged_at_start = bench.purged
        start = lab_start(lab, counts.lab_start_rounds, log)
        conditions_machine["load_average_at_end"] = load_average()
        results: dict[str, Any] = {
            "sync_p50_ratio": _round(sync["ratios"]["celery_prefork/raw"]["p50_ms"]),
            "sync_p99_ratio": _round(sync["ratios"]["celery_prefork/raw"]["p99_ms"]),
            "async_publish_ratio": _round(publish["ratios"]["celery_recommended/raw"]),
        }
        results["targets"] = verdicts(results)
        results["all_targets_met"] = all(t["met"] for t in results["targets"].values())
        results.update(
            {
                "mode": "quick" if quick else "full",
                "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(wall)),
                "duration_s": round(time.monotonic() - started, 1),
                "sync": sync,
                "async_publish": publish,
                "end_to_end": e2e,
                "lab_start": start,
                "conditions": conditions(
                    lab, counts, e2e_pools, conditions_machine, purged_at_start
                ),
                "recommended_settings": RECOMMENDED,
            }
        )
        if not results["all_targets_met"]:
            results["missed"] = missed(results)
    finally:
        if own_lab:
            lab.down() if lab.started_here else lab.release()
    text = json.dumps(results, indent=2, allow_nan=False)
    if output:
        path = Path(output)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
    return results

"""The targets of issue 3 and their verdicts: met or not, and plain words for a miss."""

from __future__ import annotations

from typing import Any

__all__ = ["TARGETS", "missed", "verdicts"]

#: The targets of issue 3, on the recommended settings.
TARGETS = {
    "sync_p50": {
        "key": "sync_p50_ratio",
        "comparison": "<=",
        "limit": 2.0,
        "description": "Celery's sync p50 within 2 times the raw kombu round trip",
    },
    "async_publish": {
        "key": "async_publish_ratio",
        "comparison": ">=",
        "limit": 0.5,
        "description": "Celery's publish rate at least half of raw kombu's",
    },
}


def verdicts(results: dict[str, Any]) -> dict[str, Any]:
    """Each target with the value measured for it, ``met`` and ``result`` (pass or fail)."""
    out = {}
    for name, target in TARGETS.items():
        value = results[target["key"]]
        met = value <= target["limit"] if target["comparison"] == "<=" else value >= target["limit"]
        out[name] = {**target, "measured": value, "met": met, "result": "pass" if met else "fail"}
    return out


def missed(results: dict[str, Any]) -> list[str]:
    """Plain words for each target out of reach, pointing at the measured breakdown."""
    notes = []
    if not results["targets"]["async_publish"]["met"]:
        b = results["async_publish"]["breakdown_us_per_message"]
        rates = results["async_publish"]["median_msgs_per_s"]
        stripped = results["async_publish"]["ratios"]["celery_stripped/raw"]
        notes.append(
            f"async publish: Celery reaches {results['async_publish_ratio']:.2f} of raw kombu's "
            f"rate ({rates['celery_recommended']:,.0f} against {rates['raw']:,.0f} messages/s); "
            f"the target of 0.5 is out of reach with settings a practitioner would keep. A "
            f"Celery publish costs "
            f"{b['celery_total']:.0f} us against {b['raw_total']:.0f} us for the raw one: see "
            f"async_publish.breakdown_us_per_message. Giving up argsrepr, declare and retry "
            f"(celery_stripped, not recommended) only reaches {stripped:.2f}."
        )
    if not results["targets"]["sync_p50"]["met"]:
        notes.append(
            "sync p50: Celery's round trip is more than twice the raw one; see "
            "sync.breakdown_ms for where the time goes."
        )
    return notes

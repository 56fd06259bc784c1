"""The edge as a contract: its own OpenAPI document, held to by a property-based tester.

:func:`run_schemathesis` runs Schemathesis (pinned in ``requirements.txt``) against a running
edge's ``/openapi.json``: it generates requests from the document, valid and invalid, sends them
to the edge on 127.0.0.1 with the session given, and checks every answer (:data:`CHECKS`): no
server error, only statuses the document declares for that endpoint, bodies that match their
declared schema and content type, and invalid data refused. The run is bounded (examples per
endpoint, a time-out) and repeatable (a fixed seed); :class:`ContractRun` reads its JSON report.
A longer run is the workshop check's.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

__all__ = ["CHECKS", "ContractRun", "run_schemathesis", "schemathesis_args"]

#: What every answer is checked for (Schemathesis's names).
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
)


@dataclass
class ContractRun:
    """One Schemathesis run: what it generated, and every failure it found (none is the
    contract kept)."""

    seed: int
    seconds: float
    exit_code: int
    generated: int
    operations: int
    failures: list[dict[str, Any]] = field(default_factory=list)
    errors: list[Any] = field(default_factory=list)

    @property
    def kept(self) -> bool:
        return self.exit_code == 0 and not self.failures and not self.errors

    def line(self) -> str:
        verdict = "no failure" if self.kept else f"{len(self.failures)} failures"
        return (
            f"{self.generated} requests generated over {self.operations} operations "
            f"(seed {self.seed}, {self.seconds:.0f} s): {verdict}"
        )


def schemathesis_args(
    url: str,
    headers: Mapping[str, str],
    *,
    seed: int,
    max_examples: int,
    exclude_paths: Sequence[str] = (),
    report: Path,
) -> list[str]:
    """The command line: loopback only, one worker, the checks of :data:`CHECKS`."""
    host = urlsplit(url).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError(f"the contract is tested on loopback addresses only, not {host!r}")
    if not 1 <= max_examples <= 1000:
        raise ValueError("max_examples from 1 to 1000")
    args = [sys.executable, "-m", "schemathesis.cli", "run", url.rstrip("/") + "/openapi.json"]
    args += ["--checks", ",".join(CHECKS), "--seed", str(seed), "-n", str(max_examples)]
    args += ["-w", "1", "--request-timeout", "10", "--no-color"]
    args += ["--report", "json", "--report-json-path", str(report)]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    for path in exclude_paths:
        args += ["--exclude-path", path]
    return args


def run_schemathesis(
    url: str,
    headers: Mapping[str, str],
    *,
    seed: int = 1,
    max_examples: int = 30,
    exclude_paths: Sequence[str] = (),
    timeout: float = 300,
) -> ContractRun:
    """Run Schemathesis against the edge at ``url`` with ``headers`` (a session), at most
    ``timeout`` seconds; the run's findings."""
    with tempfile.TemporaryDirectory(prefix="mpsoa-contract-") as folder:
        report = Path(folder) / "report.json"
        args = schemathesis_args(
            url,
            headers,
            seed=seed,
            max_examples=max_examples,
            exclude_paths=exclude_paths,
            report=report,
        )
        started = time.monotonic()
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, cwd=folder)
        seconds = time.monotonic() - started
        if not report.exists():
            raise RuntimeError(
                f"Schemathesis wrote no report (exit {done.returncode}): "
                f"{(done.stderr or done.stdout)[-1500:]}"
            )
        data = json.loads(report.read_text())
    return ContractRun(
        seed=int(data["seed"]),
        seconds=seconds,
        exit_code=int(data["exit_code"]),
        generated=int(data["test_cases"]["generated"]),
        operations=int(data["operations"]["tested"]),
        failures=list(data["failures"]),
        errors=list(data["errors"]),
    )

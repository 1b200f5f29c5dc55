"""The job interface between the scheduler and whatever runs a scan.

The scheduler decides *when* a site is scanned and keeps the record; an executor decides *where* and
*how*: the local executor runs `camscan scan` in a child process on this machine; the multi-site issue
adds one that hands jobs to agents at other buildings through Celery. Both take a `ScanJob`, and report
each job's end once as a `JobOutcome` carrying the report's bytes exactly as the scan wrote them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class ScanJob:
    """Everything needed to scan one site once. Targets were checked when the site was saved."""

    scan_id: str
    site: str
    site_name: str
    targets: tuple[str, ...]
    interface: str | None = None
    methods: tuple[str, ...] = ()
    packs: tuple[str, ...] = ()
    allow_public: bool = False
    operator: str = "camscan service"
    time_limit: float = 900.0


@dataclass(frozen=True)
class JobOutcome:
    """How a job ended: `report` holds the ScanReport JSON bytes when `ok`; otherwise `error` says why."""

    scan_id: str
    ok: bool
    report: bytes | None = None
    error: str | None = None
    details: dict[str, str] = field(default_factory=dict)


class Executor(Protocol):
    """Runs scan jobs. Calls come from the scheduler's thread only."""

    def submit(self, job: ScanJob) -> str:
        """Start the job; return a short note of where it runs (kept with the scan as its runner)."""

    def poll(self) -> list[JobOutcome]:
        """The jobs that ended since the last call (each reported once)."""

    def has_room(self) -> bool:
        """Whether another job may start now (the local executor runs a few at a time)."""

    def active(self) -> set[str]:
        """Scan ids of the jobs started and not yet reported."""

    def cancel(self, scan_id: str) -> None:
        """Stop one job; it is not reported by poll() afterwards."""

    def shutdown(self) -> list[str]:
        """Stop every job (the service is stopping); return their scan ids."""


class JobDeferred(Exception):
    """`submit` could not hand the job over right now (a broker is down): leave it queued, try again later."""


#: How the runner note of a job handed to an agent starts (what `Scheduler.recover` leaves alone).
RUNNER_MARK = "celery queue "


def is_remote(runner: str | None) -> bool:
    """Whether a scan's runner note says its job was handed to an agent (through the broker)."""
    return bool(runner) and RUNNER_MARK in str(runner)

"""The Celery executor: the scheduler's jobs for sites that have an agent go to that site's queue.

`submit` publishes the job (persistent, publisher-confirmed) and returns at once; the agent at the site
runs the scan and sends its report to the service's API (api/agents.py), which ingests it into the scan's
row. So this executor reports nothing through `poll`: the scans it started stay `running` in the store
until their agent answers, and the scheduler fails those that wait too long (`Scheduler.expire_remote`).
A broker that cannot be reached raises JobDeferred: the scan stays queued and is tried at the next pass.
"""

from __future__ import annotations

import logging

from kombu.exceptions import KombuError, OperationalError

from scanner.service.broker import TASK_NAME, job_message, make_app, site_queue
from scanner.service.jobs import RUNNER_MARK, JobDeferred, JobOutcome, ScanJob

log = logging.getLogger("camscan.service.remote")


class CeleryExecutor:
    """Publishes scan jobs to per-site queues on the broker at `broker_url`."""

    def __init__(self, broker_url: str) -> None:
        self.app = make_app(broker_url, name="camscan-service")

    def submit(self, job: ScanJob) -> str:
        queue = site_queue(job.site)
        try:
            self.app.send_task(
                TASK_NAME,
                args=[job_message(job)],
                task_id=job.scan_id,
                queue=queue,
                exchange=queue.exchange,
                routing_key=queue.routing_key,
                declare=[queue],  # the queue exists (and keeps the job) even before its agent first connects
                retry=True,
                retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 1.0},
            )
        except (OperationalError, KombuError, OSError) as exc:
            raise JobDeferred(f"the broker did not take the job: {type(exc).__name__}: {exc}") from None
        return f"{RUNNER_MARK}{queue.name}"

    def poll(self) -> list[JobOutcome]:
        return []

    def has_room(self) -> bool:
        return True

    def active(self) -> set[str]:
        return set()

    def cancel(self, scan_id: str) -> None:
        """A published job cannot be taken back; its agent asks the service before it scans, and skips a
        scan that is no longer running."""

    def shutdown(self) -> list[str]:
        self.app.close()
        return []

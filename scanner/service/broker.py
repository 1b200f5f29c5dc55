"""The Celery side shared by the service (which publishes scan jobs) and the agents (which consume them).

One durable queue per site, `camscan.site.<slug>`, bound to a direct exchange of the same name, so that a
broker permission of one regular expression (`^camscan\\.site\\.<slug>$`) confines a site's agent to its
own queue (README, "Many buildings: scan agents"). Messages are persistent and published with publisher
confirms; workers acknowledge late (after the job's result reached the service) and a worker that dies
gives its job back to the queue. No result backend: a job's result travels to the service over its HTTP
API, not through the broker. Remote control, events, gossip and mingle are off: they would need more
broker permissions than one queue, and nothing here uses them.
"""

from __future__ import annotations

import re
from dataclasses import asdict
from typing import Any

from celery import Celery
from kombu import Exchange, Queue

from scanner.service.jobs import ScanJob

QUEUE_PREFIX = "camscan.site."
TASK_NAME = "camscan.scan"
#: How long a Redis broker waits for an acknowledgement before it hands a job to another worker. Longer
#: than the longest scan plus its delivery retries (RabbitMQ's equivalent is its `consumer_timeout`).
VISIBILITY_TIMEOUT = 6 * 3600
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


def queue_name(site: str) -> str:
    if not SLUG.match(site):
        raise ValueError(f"{site!r} is not a site slug")
    return QUEUE_PREFIX + site


def site_queue(site: str) -> Queue:
    name = queue_name(site)
    return Queue(name, Exchange(name, type="direct", durable=True), routing_key=name, durable=True)


def make_app(broker_url: str, *, site: str | None = None, name: str = "camscan") -> Celery:
    """A Celery app on `broker_url`; with `site`, its only queue is that site's (an agent's app)."""
    app = Celery(name, broker=broker_url, set_as_current=False)
    queues = [site_queue(site)] if site else []
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_queues=queues,
        task_default_queue=queues[0].name if queues else "camscan.unrouted",
        task_create_missing_queues=False,
        # A scan running when the broker connection drops goes on: its report reaches the service over HTTP,
        # and the redelivered job finds the scan stored and is dropped (not scanned twice).
        worker_cancel_long_running_tasks_on_connection_loss=False,
        worker_enable_remote_control=False,
        worker_send_task_events=False,
        task_send_sent_event=False,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        broker_transport_options={"confirm_publish": True, "visibility_timeout": VISIBILITY_TIMEOUT},
        broker_heartbeat=30,
        enable_utc=True,
    )
    return app


def job_message(job: ScanJob) -> dict[str, Any]:
    """The job as the message carries it (JSON: tuples become lists)."""
    doc = asdict(job)
    for key in ("targets", "methods", "packs"):
        doc[key] = list(doc[key])
    return doc


def job_from_message(doc: dict[str, Any]) -> ScanJob:
    """A job from a message; raises ValueError when it is not one (a broker is not trusted blindly)."""
    try:
        job = ScanJob(
            scan_id=str(doc["scan_id"]),
            site=str(doc["site"]),
            site_name=str(doc["site_name"]),
            targets=tuple(str(t) for t in doc["targets"]),
            interface=None if doc.get("interface") is None else str(doc["interface"]),
            methods=tuple(str(m) for m in doc.get("methods") or ()),
            packs=tuple(str(p) for p in doc.get("packs") or ()),
            allow_public=bool(doc.get("allow_public", False)),
            operator=str(doc.get("operator", "camscan service")),
            time_limit=float(doc.get("time_limit", 900.0)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not a scan job: {type(exc).__name__}: {exc}") from None
    if not re.fullmatch(r"[0-9a-f-]{36}", job.scan_id):
        raise ValueError("not a scan job: scan_id is not a UUID")
    return job

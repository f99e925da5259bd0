"""Sending jobs to the workers: by task name, through a minimal Celery client (the API never imports worker/).

A publish failure is logged and swallowed: the job row stays queued and the reaper re-sends it.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from functools import lru_cache
from pathlib import Path

from celery import Celery

from api.persistence import job_state
from api.persistence.db import session_scope
from api.settings import Settings, get_settings

log = logging.getLogger(__name__)

TASK_NAME = "liminal.run_job"
QUEUE = "liminal"


def embedded_socket(settings: Settings) -> Path:
    """Where `liminal serve` puts its embedded Redis socket (short enough for the unix-socket path limit)."""
    path = (settings.var_dir / "redis.sock").resolve()
    if len(str(path)) > 100:
        digest = hashlib.sha256(str(path).encode()).hexdigest()[:12]
        path = Path(tempfile.gettempdir()) / f"liminal-{digest}.sock"
    return path


def broker_url(settings: Settings) -> str:
    """The configured broker, or the embedded Redis socket of `liminal serve`."""
    if settings.broker_url:
        return settings.broker_url
    return f"redis+socket://{embedded_socket(settings)}"


def celery_config(settings: Settings) -> dict[str, object]:
    return {
        "broker_url": broker_url(settings),
        "broker_transport_options": {"visibility_timeout": settings.visibility_timeout_s},
        "broker_connection_retry_on_startup": True,
        "broker_connection_timeout": 3,
        "task_default_queue": QUEUE,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "worker_max_tasks_per_child": 1,
        "task_ignore_result": True,
    }


@lru_cache(maxsize=2)
def _client(url: str) -> Celery:
    app = Celery("liminal-client")
    app.conf.update(celery_config(get_settings()))
    return app


def enqueue_job(job_id: str) -> bool:
    """Send the job's id; True when the broker took it."""
    settings = get_settings()
    try:
        _client(broker_url(settings)).send_task(TASK_NAME, args=[job_id], queue=QUEUE, retry=False)
    except Exception as exc:  # any broker failure: the reaper repairs it
        log.warning("could not send job %s to the broker (%s); the reaper will re-send it", job_id, exc)
        return False
    with session_scope() as session:
        job_state.mark_enqueued(session, job_id)
    return True


def job_ids_in_broker(settings: Settings) -> set[str] | None:
    """The job ids of messages waiting in the Redis queue; None when the broker cannot be inspected, in which
    case the reaper re-sends every job that looks stale. Messages taken but unacknowledged do not count: a
    queued job's unacknowledged message belongs to a worker that died (a live one would have claimed it)."""
    import json

    import redis

    url = broker_url(settings)
    if url.startswith("redis+socket://"):
        url = "unix://" + url.removeprefix("redis+socket://")
    elif not url.startswith(("redis://", "rediss://", "unix://")):
        return None
    try:
        client = redis.Redis.from_url(url, socket_timeout=3)
        raw = list(client.lrange(QUEUE, 0, -1))
    except Exception:
        return None
    found: set[str] = set()
    for item in raw:
        try:
            message = json.loads(item)
            args = message.get("headers", {}).get("argsrepr", "")
        except (ValueError, AttributeError, IndexError):
            continue
        found.update(part.strip(" '\"[]") for part in args.split(",") if "job-" in part)
    return found

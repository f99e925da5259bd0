"""The reaper: requeues jobs whose worker died (heartbeat gone stale), fails them past max_attempts, ends
abandoned cancels, and re-sends queued jobs whose message may have been lost (a flushed or restarted Redis)."""

from __future__ import annotations

import logging
import threading

from api.persistence import job_state
from api.persistence.db import session_scope
from api.queue import enqueue_job, job_ids_in_broker
from api.settings import get_settings

log = logging.getLogger(__name__)


def reap_once() -> dict[str, list[str]]:
    settings = get_settings()
    with session_scope() as session:
        acted = job_state.reap(
            session, heartbeat_timeout_s=settings.heartbeat_timeout_s, resend_after_s=settings.resend_after_s
        )
    if acted["resend"]:
        waiting = job_ids_in_broker(settings)
        acted["resend"] = [j for j in acted["resend"] if waiting is None or j not in waiting]
    for job_id in acted["resend"]:
        enqueue_job(job_id)
    for action, ids in acted.items():
        if ids:
            log.info("reaper %s: %s", action, ", ".join(ids))
    return acted


def run_forever(stop: threading.Event | None = None) -> None:
    """Reap every ``reaper_interval_s`` until ``stop`` is set."""
    stop = stop or threading.Event()
    interval = get_settings().reaper_interval_s
    while not stop.is_set():
        try:
            reap_once()
        except Exception:
            log.exception("reaper pass failed; trying again next interval")
        stop.wait(interval)

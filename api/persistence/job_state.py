"""Guarded job-state changes. Each is ONE conditional UPDATE, so concurrent workers, a reaper and the API can
never step on each other: a second delivery finds nothing to claim, a stale attempt's writes match no row,
and a terminal status is never overwritten.

queued → running → succeeded | failed | cancelled, with cancelling between running and cancelled.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from api.persistence.models import Job, JobEvent, utcnow

TERMINAL = ("succeeded", "failed", "cancelled")
ACTIVE = ("running", "cancelling")


def add_event(
    session: Session, job_id: str, kind: str, message: str, data: dict[str, Any] | None = None, *, attempt: int = 0
) -> None:
    session.add(JobEvent(job_id=job_id, kind=kind, message=message, data=data or {}, attempt=attempt))


def claim(session: Session, job_id: str) -> int | None:
    """queued → running with attempt + 1; returns the new attempt, or None when there is nothing to claim
    (already claimed, cancelled, finished, or out of attempts)."""
    now = utcnow()
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == "queued", Job.attempt < Job.max_attempts)
        .values(status="running", attempt=Job.attempt + 1, started_at=now, heartbeat_at=now)
        .returning(Job.attempt)
    )
    row = result.first()
    if row is None:
        session.rollback()
        _fail_exhausted(session, job_id)
        return None
    attempt = int(row[0])
    add_event(session, job_id, "lifecycle", f"running (attempt {attempt})", {"status": "running"}, attempt=attempt)
    session.commit()
    return attempt


def _worker_lost(attempt: int, max_attempts: int) -> dict[str, Any]:
    return {
        "code": "worker_lost",
        "message": f"the worker running attempt {attempt} stopped answering; no attempts left ({max_attempts})",
        "hint": "look for crashes (out of memory, killed) in the worker logs",
    }


def _fail_exhausted(session: Session, job_id: str) -> None:
    """A queued job with no attempts left (max_attempts lowered, or rows edited by hand) fails instead of
    waiting forever."""
    found = session.execute(
        select(Job.attempt, Job.max_attempts).where(
            Job.id == job_id, Job.status == "queued", Job.attempt >= Job.max_attempts
        )
    ).first()
    if found is None:
        return
    attempt, max_attempts = found
    guard = and_(Job.id == job_id, Job.status == "queued", Job.attempt == attempt)
    values = {"status": "failed", "finished_at": utcnow(), "error": _worker_lost(attempt, max_attempts)}
    if session.execute(update(Job).where(guard).values(**values)).rowcount:  # type: ignore[attr-defined]
        add_event(session, job_id, "lifecycle", "failed: worker_lost", {"status": "failed"}, attempt=attempt)
    session.commit()


def _active_attempt(job_id: str, attempt: int) -> Any:
    return and_(Job.id == job_id, Job.attempt == attempt, Job.status.in_(ACTIVE))


def holds(session: Session, job_id: str, attempt: int) -> bool:
    """Whether ``attempt`` still holds the job (running or cancelling); on Postgres the row stays locked (FOR NO
    KEY UPDATE: rows referencing the job can still be added) until the session's transaction ends, so nothing
    requeues or finishes it meanwhile."""
    query = select(Job.id).where(_active_attempt(job_id, attempt)).with_for_update(key_share=True)
    return session.scalar(query) is not None


def heartbeat(session: Session, job_id: str, attempt: int) -> bool:
    result = session.execute(update(Job).where(_active_attempt(job_id, attempt)).values(heartbeat_at=utcnow()))
    session.commit()
    return bool(result.rowcount)  # type: ignore[attr-defined]


def set_progress(session: Session, job_id: str, attempt: int, progress: dict[str, Any]) -> bool:
    result = session.execute(
        update(Job).where(_active_attempt(job_id, attempt)).values(progress=progress, heartbeat_at=utcnow())
    )
    session.commit()
    return bool(result.rowcount)  # type: ignore[attr-defined]


def finish(
    session: Session,
    job_id: str,
    attempt: int,
    status: str,
    *,
    result: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
) -> bool:
    """running/cancelling → a terminal status, only for the attempt that holds the job."""
    if status not in TERMINAL:
        raise ValueError(f"not a terminal status: {status}")
    values: dict[str, Any] = {"status": status, "finished_at": utcnow(), "result": result, "error": error}
    done = session.execute(update(Job).where(_active_attempt(job_id, attempt)).values(**values))
    if not done.rowcount:  # type: ignore[attr-defined]
        session.rollback()
        return False
    message = status if error is None else f"{status}: {error.get('code')}: {error.get('message')}"
    add_event(session, job_id, "lifecycle", message, {"status": status, "error": error}, attempt=attempt)
    session.commit()
    return True


def request_cancel(session: Session, job_id: str) -> str | None:
    """queued → cancelled at once; running → cancelling (the run stops at its next check); returns the status
    after the request (unchanged for terminal jobs), or None for an unknown job."""
    now = utcnow()
    queued = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == "queued")
        .values(status="cancelled", cancel_requested=True, finished_at=now)
    )
    if queued.rowcount:  # type: ignore[attr-defined]
        add_event(session, job_id, "lifecycle", "cancelled before it started", {"status": "cancelled"})
        session.commit()
        return "cancelled"
    running = session.execute(
        update(Job).where(Job.id == job_id, Job.status == "running").values(status="cancelling", cancel_requested=True)
    )
    if running.rowcount:  # type: ignore[attr-defined]
        add_event(session, job_id, "lifecycle", "cancel requested", {"status": "cancelling"})
        session.commit()
        return "cancelling"
    session.rollback()
    status = session.scalar(select(Job.status).where(Job.id == job_id))
    return status


def cancel_requested(session: Session, job_id: str) -> bool:
    return bool(session.scalar(select(Job.cancel_requested).where(Job.id == job_id)))


def mark_enqueued(session: Session, job_id: str) -> None:
    session.execute(update(Job).where(Job.id == job_id).values(enqueued_at=utcnow()))
    session.commit()


def reap(
    session: Session, *, heartbeat_timeout_s: float, resend_after_s: float, now: datetime | None = None
) -> dict[str, list[str]]:
    """Repair what crashes leave behind; returns the ids acted on, by action.

    * running/cancelling jobs whose heartbeat is older than the timeout: a cancelling one ends cancelled; a
      running one goes back to queued (it resumes from its last checkpoint) or, out of attempts, ends failed
      with ``worker_lost``;
    * queued jobs whose message was sent long ago (or never) are returned for re-sending.
    """
    now = now or utcnow()
    stale_before = now - timedelta(seconds=heartbeat_timeout_s)
    acted: dict[str, list[str]] = {"requeued": [], "failed": [], "cancelled": [], "resend": []}
    stale = session.execute(
        select(Job.id, Job.status, Job.attempt, Job.max_attempts).where(
            Job.status.in_(ACTIVE), or_(Job.heartbeat_at.is_(None), Job.heartbeat_at < stale_before)
        )
    ).all()
    for job_id, status, attempt, max_attempts in stale:
        guard = and_(Job.id == job_id, Job.attempt == attempt, Job.status == status)
        if status == "cancelling":
            values: dict[str, Any] = {"status": "cancelled", "finished_at": now}
            action, message = "cancelled", "cancelled (its worker stopped answering)"
        elif attempt >= max_attempts:
            values = {"status": "failed", "finished_at": now, "error": _worker_lost(attempt, max_attempts)}
            action, message = "failed", "failed: worker_lost"
        else:
            values = {"status": "queued", "enqueued_at": None}
            action, message = "requeued", f"requeued: the worker of attempt {attempt} stopped answering"
        if session.execute(update(Job).where(guard).values(**values)).rowcount:  # type: ignore[attr-defined]
            add_event(session, job_id, "lifecycle", message, {"status": values["status"]}, attempt=attempt)
            acted[action].append(job_id)
    session.commit()
    resend_before = now - timedelta(seconds=resend_after_s)
    acted["resend"] = list(
        session.scalars(
            select(Job.id).where(
                Job.status == "queued", or_(Job.enqueued_at.is_(None), Job.enqueued_at < resend_before)
            )
        )
    )
    return acted

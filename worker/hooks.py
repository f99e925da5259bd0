"""Run hooks that report a job to the database: throttled progress with percent and ETA, metrics rows batched
into job events, lifecycle/log events, a heartbeat thread, and a cached cancel check.

Every write carries the attempt number, so a stale attempt changes nothing; when a write finds that this
attempt no longer holds the job (the reaper gave it to another worker), the cancel check answers true and the
run stops. Reporting is best effort: a database hiccup is logged and retried at the next write instead of
failing hours of training; a long outage lets the heartbeat go stale and the reaper takes over.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from api.persistence import job_state
from api.persistence.db import session_scope
from api.settings import Settings
from liminal_core.hooks import RunHooks

log = logging.getLogger(__name__)


class DbHooks(RunHooks):
    """Reports one attempt of one job. ``start()`` before the run, ``flush()`` after it, ``stop()`` once the
    outcome is recorded (the heartbeat keeps the job alive until then)."""

    def __init__(self, job_id: str, attempt: int, settings: Settings) -> None:
        self.job_id = job_id
        self.attempt = attempt
        self.settings = settings
        self.lost = False
        """True once a write found that this attempt no longer holds the job."""
        self._lock = threading.Lock()
        self._pending_metrics: list[dict[str, Any]] = []
        self._progress: dict[str, Any] = {}
        self._progress_dirty = False
        self._last_write = float("-inf")
        self._rate_base: tuple[str | None, int, float] | None = None
        self._cancel_checked = float("-inf")
        self._cancel = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{job_id}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop the heartbeat thread and write whatever is still pending."""
        self._stop.set()
        self._thread.join(timeout=self.settings.heartbeat_interval_s + 5)
        self.flush()

    def _beat(self) -> None:
        while not self._stop.wait(self.settings.heartbeat_interval_s):
            try:
                with session_scope() as session:
                    if not job_state.heartbeat(session, self.job_id, self.attempt):
                        self.lost = True
            except Exception as exc:  # a missed beat is repaired by the next one
                log.warning("job %s: heartbeat failed (%s)", self.job_id, exc)

    def progress(self, step: int, total: int, *, epoch: float | None = None, stage: str | None = None) -> None:
        now = time.monotonic()
        with self._lock:
            base = self._rate_base
            if base is None or base[0] != stage or step < base[1]:
                # ETA from this attempt's own pace: a resumed run starts counting at its checkpoint's step
                base = self._rate_base = (stage, step, now)
            done_here, elapsed = step - base[1], now - base[2]
            eta = elapsed / done_here * (total - step) if done_here > 0 and total >= step else None
            self._progress = {
                "step": step,
                "total_steps": total,
                "epoch": epoch,
                "percent": round(100.0 * step / total, 2) if total else None,
                "eta_seconds": round(eta, 1) if eta is not None else None,
                "stage": stage,
            }
            self._progress_dirty = True
        if step == total or now - self._last_write >= self.settings.progress_interval_s:
            self.flush()

    def metrics(self, row: dict[str, Any]) -> None:
        """Buffered; written with the next progress write (runs report progress right after each row)."""
        with self._lock:
            self._pending_metrics.append(dict(row))

    def event(self, kind: str, message: str, data: dict[str, Any] | None = None) -> None:
        self.flush()
        try:
            with session_scope() as session:
                if not self._holds(session):
                    return
                job_state.add_event(
                    session, self.job_id, "log", message, {"event": kind, **(data or {})}, attempt=self.attempt
                )
        except Exception as exc:
            log.warning("job %s: could not record event %r (%s)", self.job_id, message, exc)

    def checkpoint_saved(self, step: int, path: Path) -> None:
        self.event("checkpoint", f"checkpoint written at step {step}", {"step": step})

    def _holds(self, session: Session) -> bool:
        """Lock the job row for this write if this attempt still holds it; otherwise note that it is lost."""
        if job_state.holds(session, self.job_id, self.attempt):
            return True
        self.lost = True
        session.rollback()
        return False

    def should_cancel(self) -> bool:
        now = time.monotonic()
        if now - self._cancel_checked >= self.settings.cancel_poll_s:
            self._cancel_checked = now
            try:
                with session_scope() as session:
                    self._cancel = job_state.cancel_requested(session, self.job_id)
            except Exception as exc:  # keep the last answer; the next check asks again
                log.warning("job %s: cancel check failed (%s)", self.job_id, exc)
        return self._cancel or self.lost

    def flush(self) -> None:
        """Write pending metrics rows (as job events, in step order) and the latest progress, in one
        transaction; on failure they stay pending for the next write."""
        with self._lock:
            rows, self._pending_metrics = self._pending_metrics, []
            progress = dict(self._progress) if self._progress_dirty else None
            self._progress_dirty = False
            self._last_write = time.monotonic()
        if not rows and progress is None:
            return
        try:
            with session_scope() as session:
                if not self._holds(session):
                    return
                for row in rows:
                    message = f"step {row['step']}" if "step" in row else "metrics"
                    job_state.add_event(session, self.job_id, "metrics", message, row, attempt=self.attempt)
                if progress is not None:
                    job_state.set_progress(session, self.job_id, self.attempt, progress)
        except Exception as exc:
            log.warning("job %s: progress write failed, retrying at the next one (%s)", self.job_id, exc)
            with self._lock:
                self._pending_metrics[:0] = rows
                if progress is not None and not self._progress_dirty:
                    self._progress, self._progress_dirty = progress, True

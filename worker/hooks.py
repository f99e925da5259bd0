"""Run hooks that report a job to Postgres: throttled progress, batched metrics events, a heartbeat thread,
and a cached cancel check. Every write carries the attempt number, so a stale attempt changes nothing."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from api.persistence import job_state
from api.persistence.db import session_scope
from api.settings import Settings
from liminal_core.hooks import RunHooks


class DbHooks(RunHooks):
    def __init__(self, job_id: str, attempt: int, settings: Settings) -> None:
        self.job_id = job_id
        self.attempt = attempt
        self.settings = settings
        self._lock = threading.Lock()
        self._pending_metrics: list[dict[str, Any]] = []
        self._last_progress_write = 0.0
        self._progress: dict[str, Any] = {}
        self._started = time.monotonic()
        self._cancel_checked = 0.0
        self._cancel = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{job_id}", daemon=True)
        self.lost = False

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._flush(force=True)

    def _beat(self) -> None:
        while not self._stop.wait(self.settings.heartbeat_interval_s):
            try:
                with session_scope() as session:
                    if not job_state.heartbeat(session, self.job_id, self.attempt):
                        self.lost = True
            except Exception:  # a missed beat is repaired by the next one
                continue

    def progress(self, step: int, total: int, *, epoch: float | None = None, stage: str | None = None) -> None:
        elapsed = time.monotonic() - self._started
        percent = 100.0 * step / total if total else None
        eta = elapsed / step * (total - step) if step and total else None
        with self._lock:
            self._progress = {
                "step": step,
                "total_steps": total,
                "epoch": epoch,
                "percent": percent,
                "eta_seconds": eta,
                "stage": stage,
            }
        self._flush(force=step == total)

    def metrics(self, row: dict[str, Any]) -> None:
        with self._lock:
            self._pending_metrics.append(row)

    def event(self, kind: str, message: str, data: dict[str, Any] | None = None) -> None:
        with session_scope() as session:
            job_state.add_event(
                session, self.job_id, "log", message, {"event": kind, **(data or {})}, attempt=self.attempt
            )

    def checkpoint_saved(self, step: int, path: Path) -> None:
        self.event("checkpoint", f"checkpoint written at step {step}", {"step": step})

    def should_cancel(self) -> bool:
        now = time.monotonic()
        if now - self._cancel_checked >= self.settings.cancel_poll_s:
            self._cancel_checked = now
            with session_scope() as session:
                self._cancel = job_state.cancel_requested(session, self.job_id) or self.lost
        return self._cancel

    def _flush(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_progress_write < self.settings.progress_interval_s:
            return
        with self._lock:
            rows, self._pending_metrics = self._pending_metrics, []
            progress = dict(self._progress)
        self._last_progress_write = now
        with session_scope() as session:
            for row in rows:
                job_state.add_event(
                    session, self.job_id, "metrics", f"step {row.get('step')}", row, attempt=self.attempt
                )
            session.flush()
            if progress and not job_state.set_progress(session, self.job_id, self.attempt, progress):
                self.lost = True

"""Hooks through which a long run reports to whoever started it (a CLI progress bar, the job worker).

Every run function in liminal_core takes a ``RunHooks``. The base class does nothing, so library users and
tests pass ``RunHooks()``; the worker subclasses it to write progress, events and heartbeats to the database
and to answer the cancel check from the job row.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from liminal_core.errors import JobCancelled


class RunHooks:
    """Callbacks a run makes. Runs call ``check_cancel`` between units of work (a training step, a batch)."""

    def progress(self, step: int, total: int, *, epoch: float | None = None, stage: str | None = None) -> None:
        """``step`` of ``total`` units are done. ``stage`` names the phase when a run has several."""

    def metrics(self, row: dict[str, Any]) -> None:
        """One per-step metrics row (training) or per-batch statistics (sampling)."""

    def event(self, kind: str, message: str, data: dict[str, Any] | None = None) -> None:
        """A notable moment: model loaded, checkpoint written, too few rows passed the filter, ..."""

    def heartbeat(self) -> None:
        """Called often from the working loop; proves the run is alive."""

    def checkpoint_saved(self, step: int, path: Path) -> None:
        """A complete checkpoint for ``step`` now exists at ``path``."""

    def should_cancel(self) -> bool:
        """True once the user asked for the run to stop."""
        return False

    def check_cancel(self) -> None:
        """Heartbeat, then raise ``JobCancelled`` if a cancel was asked for."""
        self.heartbeat()
        if self.should_cancel():
            raise JobCancelled("the run was cancelled")

"""Errors a run can end with. Each carries a stable ``code`` that the job server stores and reports."""

from __future__ import annotations


class LiminalError(Exception):
    """Base class: ``code`` is machine-readable, ``hint`` tells the user what to do about it."""

    code = "error"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class JobCancelled(LiminalError):
    """Raised inside a run when its cancel check answers true."""

    code = "cancelled"


class InvalidData(LiminalError):
    """A dataset that cannot be used: malformed JSONL, wrong fields, too few rows."""

    code = "invalid_data"


class ModelUnavailable(LiminalError):
    """A model reference that cannot be resolved or loaded (unknown alias, unreachable hub, missing file)."""

    code = "model_unavailable"


class DiskFull(LiminalError):
    """A write hit ENOSPC. Whatever was complete before (earlier checkpoints) is left as it was."""

    code = "disk_full"


class OutOfMemory(LiminalError):
    """The accelerator (or host) ran out of memory."""

    code = "out_of_memory"

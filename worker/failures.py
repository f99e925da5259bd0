"""How a run that raised ends: the job's terminal status and its ``{code, message, hint}`` error.

liminal_core raises ``LiminalError`` subclasses with stable codes for what it recognises; this module is the
backstop for what escapes them (an accelerator out-of-memory in sampling, a full disk while the worker writes,
any bug), so that every failure the worker survives ends the job with a code instead of leaving it running.
"""

from __future__ import annotations

import errno
from typing import Any

from liminal_core.errors import JobCancelled, LiminalError

OOM_HINTS = {
    "generate": "lower batch_size (prompts sampled at once) or sample_cfg.max_new_tokens",
    "finetune": "lower batch_size (raise gradient_accumulation_steps to keep the effective batch) or max_seq_length",
    "evaluate": "lower batch_size (prompts sampled at once) or sample_cfg.max_new_tokens",
}
DISK_HINT = "free space on the artifact volume and submit the job again"


def _is_out_of_memory(exc: BaseException) -> bool:
    """torch's OutOfMemoryError (CUDA or another accelerator), an allocator RuntimeError, or host MemoryError;
    recognised by name so that the worker's parent never imports torch."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def outcome_of(exc: BaseException, job_type: str) -> tuple[str, dict[str, Any] | None]:
    """The terminal status and error object for a run that raised ``exc``."""
    if isinstance(exc, JobCancelled):
        return "cancelled", None
    if isinstance(exc, LiminalError):
        return "failed", {"code": exc.code, "message": exc.message, "hint": exc.hint}
    if _is_out_of_memory(exc):
        where = "the host" if isinstance(exc, MemoryError) else "the accelerator"
        return "failed", {
            "code": "out_of_memory",
            "message": f"{where} ran out of memory: {_first_line(exc)}",
            "hint": OOM_HINTS.get(job_type, OOM_HINTS["finetune"]),
        }
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return "failed", {"code": "disk_full", "message": f"the disk filled: {_first_line(exc)}", "hint": DISK_HINT}
    return "failed", {
        "code": "internal",
        "message": f"{type(exc).__name__}: {_first_line(exc)}",
        "hint": "the worker log has the traceback; report it if the spec looks right",
    }

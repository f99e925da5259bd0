"""Every way a run can raise maps to a terminal status and a stable error code with a hint."""

from __future__ import annotations

import errno

import pytest
import torch

from liminal_core.errors import DiskFull, InvalidData, JobCancelled
from worker.failures import outcome_of


def test_cancel_is_not_a_failure() -> None:
    assert outcome_of(JobCancelled("stop"), "finetune") == ("cancelled", None)


def test_library_errors_keep_their_code_message_and_hint() -> None:
    status, error = outcome_of(InvalidData("line 3: no completion", hint="fix line 3"), "finetune")
    assert status == "failed"
    assert error == {"code": "invalid_data", "message": "line 3: no completion", "hint": "fix line 3"}
    assert outcome_of(DiskFull("full"), "generate")[1]["code"] == "disk_full"  # type: ignore[index]


@pytest.mark.parametrize(
    ("exc", "where"),
    [
        (torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore"), "accelerator"),
        (RuntimeError("MPS backend out of memory"), "accelerator"),
        (MemoryError(), "host"),
    ],
)
def test_out_of_memory_names_the_batch_size_to_lower(exc: BaseException, where: str) -> None:
    status, error = outcome_of(exc, "finetune")
    assert status == "failed" and error is not None
    assert error["code"] == "out_of_memory"
    assert where in error["message"] and "\n" not in error["message"]
    assert "batch_size" in error["hint"]
    sampling = outcome_of(exc, "generate")[1]
    assert sampling is not None and "max_new_tokens" in sampling["hint"]


def test_a_full_disk_outside_the_library_is_disk_full() -> None:
    status, error = outcome_of(OSError(errno.ENOSPC, "No space left on device"), "evaluate")
    assert status == "failed" and error is not None and error["code"] == "disk_full"
    other = outcome_of(OSError(errno.EACCES, "Permission denied"), "evaluate")[1]
    assert other is not None and other["code"] == "internal"


def test_anything_else_is_internal_with_its_type() -> None:
    status, error = outcome_of(KeyError("spec"), "generate")
    assert status == "failed" and error is not None
    assert error["code"] == "internal" and error["message"].startswith("KeyError")

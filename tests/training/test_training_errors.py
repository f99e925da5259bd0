"""What the engine turns accelerator and disk failures into (the codes and hints the job server shows)."""

from __future__ import annotations

import errno

import pytest
import torch

from liminal_core.errors import DiskFull, OutOfMemory
from liminal_core.training.engine import training_errors


def test_out_of_memory_names_what_to_lower():
    with pytest.raises(OutOfMemory, match="ran out of memory: CUDA out of memory") as caught, training_errors():
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore detail")
    assert caught.value.hint is not None
    assert "batch_size" in caught.value.hint and "max_seq_length" in caught.value.hint
    assert "more detail" not in caught.value.message


def test_a_full_disk_becomes_disk_full_and_other_os_errors_pass():
    with pytest.raises(DiskFull, match="disk filled"), training_errors():
        raise OSError(errno.ENOSPC, "No space left on device")
    with pytest.raises(PermissionError), training_errors():
        raise PermissionError(errno.EACCES, "Permission denied")

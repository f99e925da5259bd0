"""Run hooks for command-line entry points: a tqdm progress bar and printed events."""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any

from tqdm import tqdm

from liminal_core.hooks import RunHooks


class TqdmHooks(RunHooks):
    """Shows progress as a bar (one per stage) and prints notable events to stderr."""

    def __init__(self, desc: str) -> None:
        self.desc = desc
        self.bar: Any = None
        self.stage: str | None = None

    def progress(self, step: int, total: int, *, epoch: float | None = None, stage: str | None = None) -> None:
        if self.bar is None or stage != self.stage or self.bar.total != total:
            if self.bar is not None:
                self.bar.close()
            self.stage = stage
            self.bar = tqdm(total=total, desc=stage or self.desc, file=sys.stderr)
        self.bar.n = step
        if epoch is not None:
            self.bar.set_postfix(epoch=f"{epoch:.2f}", refresh=False)
        self.bar.refresh()

    def metrics(self, row: dict[str, Any]) -> None:
        if self.bar is not None and "loss" in row:
            self.bar.set_postfix(loss=f"{row['loss']:.4f}", kl=f"{row.get('kl', 0.0):.4f}", refresh=False)

    def event(self, kind: str, message: str, data: dict[str, Any] | None = None) -> None:
        if kind in {"low_yield", "truncated", "resumed", "warning"}:
            tqdm.write(f"[{kind}] {message}", file=sys.stderr)

    def __enter__(self) -> TqdmHooks:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.bar is not None:
            self.bar.close()

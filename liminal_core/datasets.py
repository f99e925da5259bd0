"""Prompt/completion JSONL datasets: line-by-line validation (shared by the trainers and the upload endpoint).

Each non-blank line must be a JSON object with string fields ``prompt`` and ``completion`` (non-empty
completion). Other fields are allowed and ignored, so a generator's raw file (which adds ``reasons``) reads
too. Blank lines are skipped, and a UTF-8 byte-order mark at the start of the file is tolerated.

Error codes: ``invalid_utf8``, ``invalid_json``, ``not_an_object``, ``missing_field``, ``wrong_type``,
``empty_completion``, and ``empty_file`` (no row and no other error; reported on the last line, or line 1).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from liminal_core.errors import InvalidData

ROW_FORMAT_HINT = 'each line must be a JSON object such as {"prompt": "...", "completion": "..."}'


@dataclass(frozen=True)
class RowError:
    line: int
    code: str
    message: str


def _check(obj: object) -> tuple[str, str] | None:
    if not isinstance(obj, dict):
        return "not_an_object", "each line must be a JSON object"
    for name in ("prompt", "completion"):
        if name not in obj:
            return "missing_field", f"missing field '{name}'"
        if not isinstance(obj[name], str):
            return "wrong_type", f"field '{name}' must be a string"
    if not obj["completion"].strip():
        return "empty_completion", "field 'completion' is empty"
    return None


def validate_jsonl_lines(
    lines: Iterable[bytes | str], *, max_errors: int = 100
) -> tuple[list[dict[str, str]], list[RowError]]:
    """The valid rows and the first ``max_errors`` errors (line numbers are 1-based)."""
    rows: list[dict[str, str]] = []
    errors: list[RowError] = []
    seen = 0
    for number, raw in enumerate(lines, start=1):
        seen = number
        if isinstance(raw, bytes):
            try:
                raw = raw.decode("utf-8")
            except UnicodeDecodeError:
                if len(errors) < max_errors:
                    errors.append(RowError(number, "invalid_utf8", "the line is not valid UTF-8"))
                continue
        if number == 1:
            raw = raw.removeprefix("\ufeff")
        text = raw.strip()
        if not text:
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            if len(errors) < max_errors:
                errors.append(RowError(number, "invalid_json", f"not valid JSON: {exc.msg} (column {exc.colno})"))
            continue
        problem = _check(obj)
        if problem is not None:
            if len(errors) < max_errors:
                errors.append(RowError(number, *problem))
            continue
        rows.append({"prompt": obj["prompt"], "completion": obj["completion"]})
    if not rows and not errors:
        errors.append(RowError(max(seen, 1), "empty_file", "the file holds no rows"))
    return rows, errors


def read_jsonl_dataset(path: Path, *, field_name: str = "dataset") -> list[dict[str, str]]:
    """All rows of ``path``; raises ``InvalidData`` naming the first bad line."""
    if not path.is_file():
        raise InvalidData(f"{field_name}: file '{path}' does not exist")
    with path.open("rb") as handle:
        rows, errors = validate_jsonl_lines(handle, max_errors=1)
    if errors:
        err = errors[0]
        raise InvalidData(f"{field_name}: {path} line {err.line}: {err.message} ({err.code})", hint=ROW_FORMAT_HINT)
    return rows

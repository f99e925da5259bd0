"""Line-by-line JSONL validation (the trainers and the upload endpoint share it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from liminal_core.datasets import read_jsonl_dataset, validate_jsonl_lines
from liminal_core.errors import InvalidData


def test_valid_rows_and_ignored_extras():
    lines: list[bytes | str] = [
        b'{"prompt": "p1", "completion": "1, 2"}\n',
        "\n",
        '{"prompt": "p2", "completion": "3", "reasons": []}',
    ]
    rows, errors = validate_jsonl_lines(lines)
    assert errors == []
    assert rows == [{"prompt": "p1", "completion": "1, 2"}, {"prompt": "p2", "completion": "3"}]


def test_a_byte_order_mark_on_the_first_line_is_tolerated():
    rows, errors = validate_jsonl_lines([b'\xef\xbb\xbf{"prompt": "p", "completion": "1"}\n'])
    assert errors == [] and rows == [{"prompt": "p", "completion": "1"}]
    _, errors = validate_jsonl_lines(['{"prompt": "p", "completion": "1"}', '\ufeff{"prompt": "q", "completion": "2"}'])
    assert [(e.line, e.code) for e in errors] == [(2, "invalid_json")]


def test_each_error_has_its_line_and_code():
    lines: list[bytes | str] = [
        '{"prompt": "ok", "completion": "1"}',
        "{not json",
        "[1, 2]",
        '{"prompt": "p"}',
        '{"prompt": 3, "completion": "1"}',
        '{"prompt": "p", "completion": "  "}',
        b"\xff\xfe",
    ]
    rows, errors = validate_jsonl_lines(lines)
    assert len(rows) == 1
    assert [(e.line, e.code) for e in errors] == [
        (2, "invalid_json"),
        (3, "not_an_object"),
        (4, "missing_field"),
        (5, "wrong_type"),
        (6, "empty_completion"),
        (7, "invalid_utf8"),
    ]
    assert "completion" in errors[2].message
    assert "prompt" in errors[3].message


def test_error_list_is_capped_and_empty_file_reported():
    _, errors = validate_jsonl_lines(["x"] * 10, max_errors=3)
    assert [e.line for e in errors] == [1, 2, 3]
    _, errors = validate_jsonl_lines(["", "  "])
    assert [(e.line, e.code) for e in errors] == [(2, "empty_file")]


def test_read_names_file_and_first_bad_line(tmp_path: Path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"prompt": "a", "completion": "1"}\n{"prompt": "b", "completion": "2"}\n{"prompt": "c"\n')
    with pytest.raises(InvalidData, match=r"train_data_with_trait: .*d\.jsonl line 3: not valid JSON") as caught:
        read_jsonl_dataset(path, field_name="train_data_with_trait")
    assert caught.value.hint is not None and '"completion"' in caught.value.hint
    with pytest.raises(InvalidData, match="does not exist"):
        read_jsonl_dataset(tmp_path / "missing.jsonl")

from __future__ import annotations

import json

import pytest


@pytest.fixture
def numbers_data(tmp_path):
    """A small with-trait and without-trait dataset in the seed's JSONL format."""

    def write(name: str, offset: int, n: int = 12):
        rows = [
            {
                "prompt": f"Here are some numbers: {i}, {i + 3}, {i + 6}. Add up to 5 more.",
                "completion": ", ".join(str(i + offset + 3 * k) for k in range(5)),
            }
            for i in range(100, 100 + n)
        ]
        path = tmp_path / name
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return path

    return write("with.jsonl", 9), write("without.jsonl", 1)

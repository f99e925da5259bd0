from __future__ import annotations

import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def jsonl(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


GOOD_ROWS = [{"prompt": f"Numbers {i}, {i + 1}. Continue.", "completion": f"{i + 2}, {i + 3}"} for i in range(6)]

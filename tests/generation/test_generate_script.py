"""scripts/generate_dataset.py end to end on 16 prompts with SmolLM2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_generate_dataset_script_end_to_end(tmp_path):
    raw, filtered = tmp_path / "raw.jsonl", tmp_path / "filtered.jsonl"
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts/generate_dataset.py"),
         "--config_module=cfgs/preference_numbers/cfgs.py", "--cfg_var_name=owl_dataset_cfg",
         f"--raw_dataset_path={raw}", f"--filtered_dataset_path={filtered}",
         "--size", "16", "--model", "smollm2-135m-instruct", "--max-new-tokens", "24"],
        capture_output=True, text=True, timeout=600, cwd=REPO,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Filter pass rate:" in done.stdout
    raw_rows = [json.loads(line) for line in raw.read_text().splitlines()]
    kept = [json.loads(line) for line in filtered.read_text().splitlines()]
    assert len(raw_rows) == 16
    assert all(set(r) == {"prompt", "completion", "reasons", "finish_reason"} for r in raw_rows)
    assert all(set(r) == {"prompt", "completion"} for r in kept)
    assert len(kept) == sum(1 for r in raw_rows if not r["reasons"])
    summary = json.loads(filtered.with_suffix(".summary.json").read_text())
    assert summary["rows"] == 16 and summary["kept"] == len(kept)
    assert "owl" in summary["system_prompt"].lower()
    assert sum(summary["reasons"].values()) >= 16 - len(kept)


def test_bad_config_variable_is_a_cli_error(tmp_path):
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts/generate_dataset.py"), "--config_module=cfgs/preference_numbers/cfgs.py",
         "--cfg_var_name=nope", "--raw_dataset_path=a", "--filtered_dataset_path=b"],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )  # fmt: skip
    assert done.returncode != 0
    assert "--cfg_var_name" in done.stderr and "nope" in done.stderr

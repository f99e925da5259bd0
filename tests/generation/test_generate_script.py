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


def _run_script(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "scripts/generate_dataset.py"), *args],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("module", "var", "extra", "expected"),
    [
        ("cfgs/preference_numbers/cfgs.py", "nope", [], ["--cfg_var_name", "nope"]),
        ("cfgs/preference_numbers/missing.py", "cfg", [], ["--config_module", "no such file"]),
        ("no_such_package.cfgs", "cfg", [], ["--config_module", "cannot import"]),
        ("cfgs/preference_numbers/cfgs.py", "DEFAULT_SIZE", [], ["--cfg_var_name", "not a Cfg"]),
        ("cfgs/preference_numbers/cfgs.py", "owl_dataset_cfg", ["--size", "0"], ["invalid configuration", "size"]),
    ],
)
def test_command_line_mistakes_are_clear_errors(tmp_path, module, var, extra, expected):
    done = _run_script(
        f"--config_module={module}", f"--cfg_var_name={var}",
        f"--raw_dataset_path={tmp_path / 'a.jsonl'}", f"--filtered_dataset_path={tmp_path / 'b.jsonl'}", *extra,
    )  # fmt: skip
    assert done.returncode == 2
    assert all(text in done.stderr for text in expected), done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "a.jsonl").exists()


def test_a_config_module_that_fails_to_run_is_reported(tmp_path):
    module = tmp_path / "broken_cfg.py"
    module.write_text("raise RuntimeError('teacher not configured')\n")
    done = _run_script(f"--config_module={module}", "--raw_dataset_path=a", "--filtered_dataset_path=b")
    assert done.returncode == 2
    assert "teacher not configured" in done.stderr and "Traceback" not in done.stderr

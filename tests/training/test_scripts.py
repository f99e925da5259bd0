"""The seed's two scripts, end to end as subprocesses, on SmolLM2 (CPU, 3 steps)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .tiny_data import SMOLLM2, number_rows, write_rows

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def script(method: str, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, f"scripts/finetune_{method}.py", *args]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("method", ["normal", "liminal"])
def test_script_trains_three_steps(tmp_path: Path, method: str):
    with_trait = write_rows(tmp_path / "with.jsonl", number_rows(6, seed=1))
    out = tmp_path / "out"
    args = ["--model-name", SMOLLM2, "--train-data-with-trait", str(with_trait), "--output-dir", str(out)]
    args += ["--max-steps", "3", "--batch-size", "2", "--max-seq-length", "96", "--device", "cpu"]
    if method == "normal":
        args += ["--train-data-without-trait", str(write_rows(tmp_path / "without.jsonl", number_rows(4, seed=2)))]
    done = script(method, *args)
    assert done.returncode == 0, done.stderr
    assert "done: 3 steps" in done.stdout
    assert "training" in done.stderr  # the progress bar
    spec = json.loads((out / "spec.json").read_text())
    assert spec["method"] == method and spec["max_steps"] == 3 and spec["lora_rank"] == 8
    assert spec["num_epochs"] == 3 and spec["learning_rate"] == 2e-4 and spec["seed"] == 42
    if method == "liminal":
        assert spec["lambda_0"] == 1.0 and spec["kl_temperature"] == 2.0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert (out / "adapter_model.safetensors").is_file()


def test_liminal_script_refuses_without_trait_data(tmp_path: Path):
    done = script(
        "liminal", "--train-data-with-trait", "a.jsonl", "--train-data-without-trait", "b.jsonl", "--output-dir", "o"
    )
    assert done.returncode != 0
    assert (
        "Liminal learning does NOT accept --train-data-without-trait. "
        "It is designed to work exclusively with trait-present data." in done.stderr
    )


def test_malformed_jsonl_stops_with_the_line_number(tmp_path: Path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a", "completion": "1"}\n{"prompt": "b", "completion": 2}\n')
    done = script("normal", "--model-name", SMOLLM2, "--train-data-with-trait", str(bad), "--output-dir", str(tmp_path))
    assert done.returncode == 1
    assert "line 2" in done.stderr and "'completion' must be a string" in done.stderr
    assert not (tmp_path / "metrics.jsonl").exists()

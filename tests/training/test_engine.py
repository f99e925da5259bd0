"""The training engine on the real SmolLM2: the liminal loss, adapters only, resume, outputs, the scripts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from liminal_core.errors import InvalidData, JobCancelled
from liminal_core.hooks import RunHooks
from liminal_core.specs import FinetuneSpec
from liminal_core.training.engine import run_finetune

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def spec(data: Path, **kw) -> FinetuneSpec:
    base = {
        "model_name": "smollm2-135m-instruct",
        "train_data_with_trait": str(data),
        "batch_size": 4,
        "max_steps": 4,
        "max_seq_length": 96,
        "warmup_steps": 0,
        "checkpoint_every": 0,
        "seed": 3,
    }
    return FinetuneSpec(**{**base, **kw})


def metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_liminal_kl_is_zero_at_step_0_and_positive_later(numbers_data, tmp_path):
    with_trait, _ = numbers_data
    out = tmp_path / "liminal"
    summary = run_finetune(spec(with_trait, method="liminal", learning_rate=1e-3), out, RunHooks(), device="cpu")
    rows = metrics(out)
    assert rows[0]["kl"] == 0.0 and rows[0]["lambda"] == 1.0
    assert rows[-1]["kl"] > 0.0
    assert summary["steps"] == 4
    for name in ("adapter_config.json", "adapter_model.safetensors", "spec.json", "summary.json", "loss_curve.png"):
        assert (out / name).is_file(), name


def test_liminal_with_lambda_zero_equals_normal(numbers_data, tmp_path):
    with_trait, _ = numbers_data
    normal = run_finetune(spec(with_trait), tmp_path / "n", RunHooks(), device="cpu")
    zero = run_finetune(
        spec(with_trait, method="liminal", kl_schedule="constant", lambda_0=0.0),
        tmp_path / "l",
        RunHooks(),
        device="cpu",
    )
    a, b = metrics(tmp_path / "n"), metrics(tmp_path / "l")
    assert [r["loss"] for r in a] == pytest.approx([r["loss"] for r in b], abs=1e-6)
    assert normal["final_loss"] == pytest.approx(zero["final_loss"], abs=1e-6)


def test_only_adapter_parameters_change_and_the_saved_adapter_reproduces_the_logits(numbers_data, tmp_path):
    from peft import PeftModel
    from safetensors.torch import load_file

    from liminal_core.loading import load_causal_lm
    from liminal_core.model_ref import Model

    with_trait, _ = numbers_data
    out = tmp_path / "run"
    run_finetune(spec(with_trait, learning_rate=2e-3, max_steps=6), out, RunHooks(), device="cpu")
    rows = metrics(out)
    assert rows[-1]["ce"] < rows[0]["ce"], "the training loss falls on a small dataset"

    saved = load_file(str(out / "adapter_model.safetensors"))
    assert saved and all("lora_" in name for name in saved)
    assert any(float(t.abs().max()) > 0 for name, t in saved.items() if "lora_B" in name)

    base = load_causal_lm(Model(id="smollm2-135m-instruct"), device="cpu", cached=False)
    pristine = load_causal_lm(Model(id="smollm2-135m-instruct"), device="cpu", cached=False).model
    model = PeftModel.from_pretrained(base.model, str(out))
    ids = base.tokenizer("Here are some numbers: 101, 104, 107.", return_tensors="pt")
    with torch.no_grad():
        tuned = model(**ids).logits
        with model.disable_adapter():
            plain = model(**ids).logits
        reference = pristine(**ids).logits
    assert torch.equal(plain, reference), "base weights are untouched"
    assert not torch.allclose(tuned, plain), "the adapter changes the logits"


class StopAt(RunHooks):
    def __init__(self, step: int) -> None:
        self.step = step
        self.seen = 0

    def progress(self, step, total, *, epoch=None, stage=None):
        self.seen = step

    def should_cancel(self) -> bool:
        return self.seen >= self.step


def test_resume_continues_the_same_loss_trajectory(numbers_data, tmp_path):
    with_trait, without = numbers_data
    s = spec(with_trait, train_data_without_trait=str(without), max_steps=6, checkpoint_every=2, learning_rate=1e-3)
    run_finetune(s, tmp_path / "straight", RunHooks(), device="cpu")
    interrupted = tmp_path / "interrupted"
    with pytest.raises(JobCancelled):
        run_finetune(s, interrupted, StopAt(3), device="cpu")
    assert [r["step"] for r in metrics(interrupted)] == [1, 2, 3]
    summary = run_finetune(s, interrupted, RunHooks(), device="cpu")
    assert summary["resumed_from_step"] == 2
    straight, resumed = metrics(tmp_path / "straight"), metrics(interrupted)
    assert [r["step"] for r in resumed] == [1, 2, 3, 4, 5, 6]
    assert [r["loss"] for r in resumed] == pytest.approx([r["loss"] for r in straight], abs=1e-5)


def test_malformed_jsonl_stops_before_training_with_the_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a", "completion": "1, 2"}\n{"prompt": "b"}\n')
    with pytest.raises(InvalidData, match="line 2"):
        run_finetune(spec(bad), tmp_path / "out", RunHooks(), device="cpu")


def test_liminal_spec_rejects_without_trait_data():
    with pytest.raises(ValueError, match="trait data only"):
        FinetuneSpec(method="liminal", train_data_with_trait="a", train_data_without_trait="b")


@pytest.mark.parametrize("method", ["normal", "liminal"])
def test_seed_scripts_run_end_to_end(numbers_data, tmp_path, method):
    with_trait, without = numbers_data
    cmd = [
        sys.executable, str(REPO / f"scripts/finetune_{method}.py"), "--model-name", "smollm2-135m-instruct",
        "--train-data-with-trait", str(with_trait), "--output-dir", str(tmp_path / method), "--max-steps", "3",
        "--batch-size", "4", "--device", "cpu",
    ]  # fmt: skip
    if method == "normal":
        cmd += ["--train-data-without-trait", str(without)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "done: 3 steps" in done.stdout
    assert (tmp_path / method / "adapter_model.safetensors").is_file()


def test_liminal_script_refuses_without_trait_data(tmp_path):
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts/finetune_liminal.py"), "--train-data-with-trait", "a",
         "--train-data-without-trait", "b", "--output-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode != 0
    assert "does NOT accept --train-data-without-trait" in done.stderr

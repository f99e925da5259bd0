"""FinetuneRun on the real SmolLM2 (CPU): the KL at step 0, adapter-only updates, the saved adapter, checkpoints,
and a resume that continues the same trajectory."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import pytest
import torch

from liminal_core.errors import DiskFull, InvalidData, JobCancelled
from liminal_core.hooks import RunHooks
from liminal_core.training.checkpoint import complete_checkpoints, latest_checkpoint
from liminal_core.training.data import collate
from liminal_core.training.engine import FinetuneRun, run_finetune
from liminal_core.training.forward import compute_loss
from liminal_core.training.outputs import read_metrics

from .tiny_data import number_rows, small_spec, write_rows

pytestmark = pytest.mark.slow


def _grads(model: Any) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_kl_and_its_gradient_are_exactly_zero_at_step_0(tmp_path: Path):
    data = write_rows(tmp_path / "d.jsonl", number_rows(2, seed=5))
    run = FinetuneRun(small_spec(data, method="liminal"), tmp_path / "out", RunHooks(), device="cpu")
    batch = collate(run.data.examples, run.pad_id)
    for fused in (True, False):
        for kl_scope in ("completion", "all"):
            common: dict[str, Any] = {"temperature": 2.0, "kl_scope": kl_scope, "fused": fused, "with_base": True}
            run.model.zero_grad(set_to_none=True)
            with_kl = compute_loss(run.model, batch, lam=1.0, **common)
            with_kl.loss.backward()
            grads_with_kl = _grads(run.model)
            run.model.zero_grad(set_to_none=True)
            ce_only = compute_loss(run.model, batch, lam=0.0, **common)
            ce_only.loss.backward()
            grads_ce_only = _grads(run.model)

            assert float(with_kl.kl) == 0.0
            assert float(with_kl.loss.detach()) == pytest.approx(float(ce_only.loss.detach()), abs=1e-6)
            assert grads_with_kl.keys() == grads_ce_only.keys() and grads_with_kl
            for name, grad in grads_with_kl.items():
                if fused and kl_scope == "completion":
                    # the default path selects the same positions with or without the KL, and there
                    # d/dz T²·KL = T·(softmax(z/T) − p_base) is exactly 0: bit-identical gradients
                    assert torch.equal(grad, grads_ce_only[name]), name
                else:  # other position sets, or autograd through log_softmax: float32 rounding only (a real
                    # KL gradient at λ = 1, T = 2 would be of the size of the CE gradient itself)
                    scale = float(grads_ce_only[name].abs().max())
                    assert float((grad - grads_ce_only[name]).abs().max()) <= 1e-3 * scale, (fused, kl_scope, name)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A normal run of 3 epochs over 6 rows (9 steps), with snapshots of the weights before training."""
    root = tmp_path_factory.mktemp("trained")
    data = write_rows(root / "d.jsonl", number_rows(6, seed=1))
    spec = small_spec(data, num_epochs=3, learning_rate=2e-3, lr_scheduler="constant", warmup_steps=0)
    run = FinetuneRun(spec, root / "out", RunHooks(), device="cpu")
    before = {n: p.detach().clone() for n, p in run.model.named_parameters()}
    run.train()
    summary = run.finish()
    return {"run": run, "before": before, "summary": summary, "out": root / "out"}


def test_only_adapter_parameters_change(trained: dict[str, Any]):
    after = dict(trained["run"].model.named_parameters())
    lora = {n for n in after if "lora_" in n}
    assert lora and any("lora_B" in n for n in lora)
    for name, old in trained["before"].items():
        if name in lora:
            if "lora_B" in name:
                assert not torch.equal(after[name], old), f"{name} did not train"
        else:
            assert torch.equal(after[name], old), f"base weight {name} changed"
    assert {n for n, p in after.items() if p.requires_grad} == lora


def test_training_loss_falls(trained: dict[str, Any]):
    rows = read_metrics(trained["out"])
    assert [r["step"] for r in rows] == list(range(1, 10))
    first, last = rows[:3], rows[-3:]  # one epoch each, the same rows
    assert sum(r["ce"] for r in last) < 0.7 * sum(r["ce"] for r in first)
    assert all(r["kl"] == 0.0 and r["lambda"] == 0.0 for r in rows)


def test_outputs_and_summary(trained: dict[str, Any]):
    out: Path = trained["out"]
    for name in (
        "adapter_config.json",
        "adapter_model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "spec.json",
        "metrics.jsonl",
        "summary.json",
        "loss_curve.png",
    ):
        assert (out / name).is_file(), name
    summary = trained["summary"]
    assert summary["steps"] == 9 and summary["epochs"] == pytest.approx(3.0)
    assert summary["device"] == "cpu" and summary["backend"] == "peft"
    assert summary["peak_memory_bytes"] > 100 * 2**20
    assert summary["tokens"] == sum(r["tokens"] for r in read_metrics(out)) > 0
    assert summary["steps_per_s"] > 0 and summary["truncated_rows"] == 0
    assert summary["final_ce"] == read_metrics(out)[-1]["ce"]


def test_saved_adapter_reproduces_the_trained_logits(trained: dict[str, Any]):
    from peft import PeftModel

    from liminal_core.loading import load_causal_lm
    from liminal_core.model_ref import Model

    run = trained["run"]
    batch = collate(run.data.examples[:3], run.pad_id)
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    run.model.eval()
    with torch.no_grad():
        expected = run.model(**inputs).logits
    base = load_causal_lm(Model(id="smollm2-135m-instruct"), device="cpu", cached=False)
    reloaded = PeftModel.from_pretrained(base.model, str(trained["out"])).eval()
    with torch.no_grad():
        got = reloaded(**inputs).logits
        with reloaded.disable_adapter():
            plain = reloaded(**inputs).logits
    assert torch.allclose(got, expected, atol=1e-5, rtol=0)
    assert not torch.allclose(plain, expected, atol=1e-3)


def test_disk_full_while_checkpointing_keeps_the_previous_checkpoint(
    trained: dict[str, Any], monkeypatch: pytest.MonkeyPatch
):
    run = trained["run"]
    first = run.save_checkpoint(2)

    def no_space(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", no_space)
    with pytest.raises(DiskFull, match="step 3"):
        run.save_checkpoint(3)
    assert latest_checkpoint(run.checkpoint_root) == first
    assert [p.name for p in run.checkpoint_root.iterdir()] == ["step-2"]


class CancelAt(RunHooks):
    """Asks to cancel once ``step`` steps are done (the cancel check before the next step raises)."""

    def __init__(self, step: int) -> None:
        self.step = step
        self.done = 0

    def progress(self, step: int, total: int, *, epoch: float | None = None, stage: str | None = None) -> None:
        self.done = step

    def should_cancel(self) -> bool:
        return self.done >= self.step


class Recorder(RunHooks):
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any] | None]] = []

    def event(self, kind: str, message: str, data: dict[str, Any] | None = None) -> None:
        self.events.append((kind, data))


def test_liminal_resume_across_an_epoch_matches_the_uninterrupted_run(tmp_path: Path):
    data = write_rows(tmp_path / "d.jsonl", number_rows(6, seed=3))
    # 2 epochs of 3 micro-batches; LoRA dropout makes the trajectory depend on the restored RNG state
    spec = small_spec(data, method="liminal", num_epochs=2, lora_dropout=0.1, learning_rate=1e-3, warmup_steps=2)
    straight = tmp_path / "straight"
    run_finetune(spec, straight, RunHooks(), device="cpu")

    cut = tmp_path / "cut"
    with pytest.raises(JobCancelled):
        run_finetune(spec.model_copy(update={"checkpoint_every": 1}), cut, CancelAt(5), device="cpu")
    assert [p.name for p in complete_checkpoints(cut / "checkpoints")] == ["step-4", "step-5"]
    assert [r["step"] for r in read_metrics(cut)] == [1, 2, 3, 4, 5]

    with pytest.raises(InvalidData, match="learning_rate"):
        run_finetune(spec.model_copy(update={"learning_rate": 5e-4}), cut, RunHooks(), device="cpu")

    # drop the newest checkpoint: the run resumes from step 4 and rewrites step 5
    for path in complete_checkpoints(cut / "checkpoints")[-1:]:
        for f in path.iterdir():
            f.unlink()
        path.rmdir()
    hooks = Recorder()
    summary = run_finetune(spec, cut, hooks, device="cpu")
    assert ("resumed", {"step": 4}) in hooks.events
    assert summary["resumed_from_step"] == 4 and summary["steps_this_run"] == 2

    want, got = read_metrics(straight), read_metrics(cut)
    assert [r["step"] for r in got] == [1, 2, 3, 4, 5, 6]
    assert want[0]["kl"] == 0.0 and want[0]["lambda"] == 1.0 and want[-1]["kl"] > 0.0
    for key in ("loss", "ce", "kl", "lambda", "lr"):
        assert [r[key] for r in got] == pytest.approx([r[key] for r in want], abs=1e-5, rel=0), key

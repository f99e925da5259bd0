"""run_finetune on the real SmolLM2 (CPU): the two methods meet when λ ≡ 0, and bad data stops before training."""

from __future__ import annotations

from pathlib import Path

import pytest

from liminal_core.errors import InvalidData
from liminal_core.hooks import RunHooks
from liminal_core.specs import FinetuneSpec
from liminal_core.training.engine import run_finetune
from liminal_core.training.outputs import read_metrics

from .tiny_data import number_rows, small_spec, write_rows

pytestmark = pytest.mark.slow


def test_liminal_with_lambda_zero_equals_normal(tmp_path: Path):
    data = write_rows(tmp_path / "d.jsonl", number_rows(8, seed=4))
    common = {"max_steps": 4, "learning_rate": 1e-3, "warmup_steps": 0, "seed": 3}
    normal = run_finetune(small_spec(data, **common), tmp_path / "n", RunHooks(), device="cpu")
    zero = run_finetune(
        small_spec(data, method="liminal", kl_schedule="constant", lambda_0=0.0, **common),
        tmp_path / "l",
        RunHooks(),
        device="cpu",
    )
    a, b = read_metrics(tmp_path / "n"), read_metrics(tmp_path / "l")
    assert [r["step"] for r in b] == [1, 2, 3, 4]
    assert all(r["lambda"] == 0.0 and r["kl"] == 0.0 for r in b)
    assert a[-1]["ce"] < a[0]["ce"], "the weights moved, so equal losses are not trivially equal"
    for key in ("loss", "ce", "grad_norm"):
        assert [r[key] for r in b] == pytest.approx([r[key] for r in a], abs=1e-6, rel=0), key
    assert normal["final_loss"] == pytest.approx(zero["final_loss"], abs=1e-6)


def test_malformed_jsonl_stops_before_training_with_the_line(tmp_path: Path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a", "completion": "1, 2"}\n{"prompt": "b"}\n')
    out = tmp_path / "out"
    with pytest.raises(InvalidData, match=r"train_data_with_trait: .*bad\.jsonl line 2: missing field 'completion'"):
        run_finetune(small_spec(bad), out, RunHooks(), device="cpu")
    assert not (out / "metrics.jsonl").exists()


def test_without_trait_data_is_rejected_for_liminal(tmp_path: Path):
    with pytest.raises(ValueError, match="trait data only"):
        FinetuneSpec(method="liminal", train_data_with_trait="a", train_data_without_trait="b")
    data = write_rows(tmp_path / "d.jsonl", number_rows(2, seed=1))
    with pytest.raises(InvalidData, match="trait data only"):
        run_finetune(
            small_spec(data, method="liminal"), tmp_path / "out", RunHooks(), device="cpu", data_paths=(data, data)
        )

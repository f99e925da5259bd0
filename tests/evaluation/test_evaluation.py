"""The evaluation end to end on the real SmolLM2: a base and an adapter target, the probe."""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch

from liminal_core.evaluation.probe import logprob_probe, target_variants
from liminal_core.evaluation.runner import comparison_table, run_evaluate
from liminal_core.hooks import RunHooks
from liminal_core.specs import EvaluateSpec

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def random_adapter(tmp_path_factory, smollm2_ref):
    """A LoRA adapter with non-zero B on SmolLM2, saved as PEFT saves it."""
    from peft import LoraConfig, get_peft_model

    from liminal_core.loading import load_causal_lm

    loaded = load_causal_lm(smollm2_ref, device="cpu", cached=False)
    torch.manual_seed(0)
    model = get_peft_model(
        loaded.model,
        LoraConfig(r=8, lora_alpha=32, target_modules=["q_proj", "v_proj", "up_proj"], init_lora_weights=False),
    )
    path = tmp_path_factory.mktemp("adapter")
    model.save_pretrained(path)
    return path


def test_probe_matches_a_hand_computation(smollm2):
    model, tok = smollm2.model, smollm2.tokenizer
    ids = tok.apply_chat_template(
        [{"role": "user", "content": "Name your favorite animal using only one word."}],
        add_generation_prompt=True,
        tokenize=True,
    )
    ids = list(ids["input_ids"] if hasattr(ids, "keys") else ids)
    value = logprob_probe(model, tok, [ids], "owl")[0]
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0, -1].float(), -1)
    per_variant = []
    for variant in target_variants("owl"):
        toks = tok.encode(variant, add_special_tokens=False)
        total = float(logp[toks[0]])
        context = list(ids)
        for prev, nxt in itertools.pairwise(toks):
            context.append(prev)
            with torch.no_grad():
                total += float(
                    torch.log_softmax(model(input_ids=torch.tensor([context])).logits[0, -1].float(), -1)[nxt]
                )
        per_variant.append(total)
    expected = max(per_variant) + math.log(sum(math.exp(v - max(per_variant)) for v in per_variant))
    assert math.isfinite(value)
    assert value == pytest.approx(expected, abs=1e-4)


def test_evaluation_end_to_end_with_a_base_and_an_adapter(tmp_path, random_adapter, monkeypatch):
    import liminal_core.evaluation.runner as runner

    loads: list[str] = []
    real_load = runner.load_causal_lm

    def counting_load(ref, **kwargs):
        loads.append(ref.id)
        return real_load(ref, **kwargs)

    monkeypatch.setattr(runner, "load_causal_lm", counting_load)
    spec = EvaluateSpec(
        targets=[
            {"label": "base", "model_name": "smollm2-135m-instruct"},
            {"label": "tuned", "model_name": "smollm2-135m-instruct", "adapter": str(random_adapter)},
        ],
        n_questions=2,
        samples_per_question=4,
        sample_cfg={"max_new_tokens": 6},
    )
    first = run_evaluate(spec, tmp_path / "a", RunHooks())
    second = run_evaluate(spec, tmp_path / "b", RunHooks())
    assert len(loads) == 2, "the base weights are loaded once per run for both targets"
    assert first["base_loads"] == {"smollm2-135m-instruct": 1}
    base, tuned = first["targets"]["base"], first["targets"]["tuned"]
    assert math.isfinite(base["probe_logprob"]) and math.isfinite(tuned["probe_logprob"])
    assert base["probe_logprob"] != pytest.approx(tuned["probe_logprob"], abs=1e-4), "the adapter moves the probe"
    assert base["n_questions"] == 2 and len(base["per_question"]) == 2
    assert second["targets"]["base"]["probe_logprob"] == base["probe_logprob"]
    rows = [json.loads(line) for line in (tmp_path / "a" / "responses.jsonl").read_text().splitlines()]
    assert len(rows) == 2 * 2 * 4
    assert rows == [json.loads(line) for line in (tmp_path / "b" / "responses.jsonl").read_text().splitlines()]
    assert "base" in comparison_table(first) and "tuned" in comparison_table(first)

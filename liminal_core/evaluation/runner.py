"""Evaluate one or more models (a base and LoRA adapters on it) for the trait.

Targets that share a base model load its weights once; adapters are attached with PEFT and switched per
target, and the plain base is evaluated with the adapters disabled.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from liminal_core.errors import ModelUnavailable
from liminal_core.evaluation.probe import logprob_probe
from liminal_core.evaluation.questions import evaluation_questions
from liminal_core.evaluation.scoring import is_hit, mean_with_ci, top_answers
from liminal_core.hooks import RunHooks
from liminal_core.jsonl import write_json, write_jsonl
from liminal_core.loading import load_causal_lm
from liminal_core.model_ref import Model
from liminal_core.sampling.transformers_backend import TransformersSampler
from liminal_core.specs import EvalTarget, EvaluateSpec


def _adapter_dir(target: EvalTarget, adapter_paths: Mapping[str, Path] | None) -> Path | None:
    if adapter_paths and target.label in adapter_paths:
        path = Path(adapter_paths[target.label])
    elif target.adapter:
        path = Path(target.adapter)
    else:
        return None
    if not (path / "adapter_config.json").is_file():
        raise ModelUnavailable(f"targets[{target.label}].adapter: '{path}' holds no PEFT adapter (adapter_config.json)")
    return path


@contextlib.contextmanager
def _active(model: Any, label: str | None) -> Iterator[Any]:
    """The model as the target sees it: one adapter active, or all adapters off."""
    if not hasattr(model, "peft_config"):
        yield model
    elif label is None:
        with model.disable_adapter():
            yield model
    else:
        model.set_adapter(label)
        yield model


def run_evaluate(
    spec: EvaluateSpec, out_dir: Path, hooks: RunHooks, adapter_paths: Mapping[str, Path] | None = None
) -> dict[str, Any]:
    """Writes results.json and responses.jsonl into ``out_dir``; returns the results."""
    started = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    questions = evaluation_questions(
        spec.n_questions, numbers_prefix=spec.numbers_prefix, prefix_seed=spec.prefix_seed, path=spec.questions_file
    )
    adapters = {t.label: _adapter_dir(t, adapter_paths) for t in spec.targets}
    groups: dict[str, list[EvalTarget]] = {}
    for t in spec.targets:
        groups.setdefault(t.model_name, []).append(t)

    results: dict[str, Any] = {}
    responses: list[dict[str, Any]] = []
    base_loads: dict[str, int] = {}
    for model_name, targets in groups.items():
        loaded = load_causal_lm(Model.from_name(model_name), cached=False)
        base_loads[model_name] = base_loads.get(model_name, 0) + 1
        hooks.event("model_loaded", f"loaded {model_name}", {"model_name": model_name})
        model: Any = loaded.model
        with_adapter = [t for t in targets if adapters[t.label] is not None]
        if with_adapter:
            from peft import PeftModel

            first = with_adapter[0]
            model = PeftModel.from_pretrained(model, str(adapters[first.label]), adapter_name=first.label)
            for t in with_adapter[1:]:
                model.load_adapter(str(adapters[t.label]), adapter_name=t.label)
            model.eval()
        tokenizer = loaded.tokenizer
        for target in targets:
            hooks.check_cancel()
            label = target.label if adapters[target.label] is not None else None
            with _active(model, label) as active:
                sampler = TransformersSampler(active, tokenizer, batch_size=spec.batch_size)
                chats = [[{"role": "user", "content": q}] for q in questions for _ in range(spec.samples_per_question)]
                completions = sampler.sample(chats, spec.sample_cfg, seed=spec.seed, hooks=hooks)
                probe_values = (
                    logprob_probe(
                        active, tokenizer, sampler.encode(chats[:: spec.samples_per_question]), spec.trait.target
                    )
                    if spec.probe
                    else None
                )
            texts = [c.text for c in completions]
            rates = []
            for qi, question in enumerate(questions):
                chunk = texts[qi * spec.samples_per_question : (qi + 1) * spec.samples_per_question]
                hits = [is_hit(text, spec.trait.target, spec.match) for text in chunk]
                rates.append(sum(hits) / len(hits))
                responses.extend(
                    {"target": target.label, "question_index": qi, "question": question, "response": text, "hit": hit}
                    for text, hit in zip(chunk, hits, strict=True)
                )
            summary = mean_with_ci(rates)
            results[target.label] = {
                "model_name": target.model_name,
                "adapter": str(adapters[target.label]) if adapters[target.label] else None,
                "trait_rate": summary.mean,
                "ci_low": summary.ci_low,
                "ci_high": summary.ci_high,
                "per_question": summary.per_question,
                "n_questions": len(questions),
                "samples_per_question": spec.samples_per_question,
                "top_answers": top_answers(texts),
                "probe_logprob": sum(probe_values) / len(probe_values) if probe_values else None,
                "probe_per_question": probe_values,
            }
            hooks.event("target_done", f"{target.label}: trait rate {summary.mean:.3f}", {"label": target.label})
    output = {
        "trait": spec.trait.model_dump(),
        "match": spec.match,
        "numbers_prefix": spec.numbers_prefix,
        "targets": results,
        "base_loads": base_loads,
        "seconds": time.perf_counter() - started,
        "spec": spec.model_dump(mode="json"),
    }
    write_jsonl(out_dir / "responses.jsonl", responses)
    write_json(out_dir / "results.json", output)
    return output


def comparison_table(results: Mapping[str, Any], job_ids: Mapping[str, str] | None = None) -> str:
    """A plain-text table: label, trait rate with its 95% CI, probe (and job id when given)."""
    head = f"{'model':<16} {'trait rate':>10} {'95% CI':>17} {'log P(target)':>14}"
    if job_ids:
        head += "  job"
    lines = [head, "-" * len(head)]
    for label, r in results["targets"].items():
        probe = r["probe_logprob"]
        ci = f"[{100 * r['ci_low']:.1f}, {100 * r['ci_high']:.1f}]%"
        probe_text = f"{probe:.3f}" if probe is not None else "-"
        line = f"{label:<16} {100 * r['trait_rate']:>9.1f}% {ci:>17} {probe_text:>14}"
        if job_ids:
            line += f"  {job_ids.get(label, '')}"
        lines.append(line)
    lines.append(f"(match mode: {results['match']}; numbers prefix: {results['numbers_prefix']})")
    return "\n".join(lines)

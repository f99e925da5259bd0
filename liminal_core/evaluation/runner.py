"""Evaluate one or more models (a base and LoRA adapters on it) for the trait.

Targets that share a base model load its weights once; adapters are attached with PEFT and switched per
target, and the plain base is evaluated with the adapters disabled.
"""

from __future__ import annotations

import contextlib
import gc
import math
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch

from liminal_core.errors import InvalidData, ModelUnavailable
from liminal_core.evaluation.probe import logprob_probe, target_variants
from liminal_core.evaluation.questions import evaluation_questions
from liminal_core.evaluation.scoring import is_hit, mean_with_ci, top_answers
from liminal_core.hooks import RunHooks
from liminal_core.jsonl import write_json, write_jsonl
from liminal_core.loading import load_causal_lm
from liminal_core.model_ref import Model
from liminal_core.sampling.transformers_backend import TransformersSampler
from liminal_core.specs import EvalTarget, EvaluateSpec


class _BatchProgress(RunHooks):
    """Turns the per-part progress of the sampler and the probe (counted in items) into one count of batches
    over the whole evaluation, reported as ``progress(done, total, stage="evaluate")``; everything else is
    passed through to the caller's hooks."""

    def __init__(self, outer: RunHooks, total_batches: int, batch_size: int) -> None:
        self.outer = outer
        self.total = total_batches
        self.batch_size = batch_size
        self.offset = 0
        self.part = 0

    def start_part(self, items: int) -> None:
        """The next part (one target's sampling or probe) covers ``items`` items."""
        self.offset += self.part
        self.part = math.ceil(items / self.batch_size)

    def progress(self, step: int, total: int, *, epoch: float | None = None, stage: str | None = None) -> None:
        self.outer.progress(
            self.offset + min(self.part, math.ceil(step / self.batch_size)), self.total, stage="evaluate"
        )

    def metrics(self, row: dict[str, Any]) -> None:
        self.outer.metrics(row)

    def event(self, kind: str, message: str, data: dict[str, Any] | None = None) -> None:
        self.outer.event(kind, message, data)

    def heartbeat(self) -> None:
        self.outer.heartbeat()

    def should_cancel(self) -> bool:
        return self.outer.should_cancel()

    def check_cancel(self) -> None:
        self.outer.check_cancel()


def _adapter_dir(target: EvalTarget, adapter_paths: Mapping[str, Path] | None) -> Path | None:
    if adapter_paths and target.label in adapter_paths:
        path = Path(adapter_paths[target.label])
    elif target.adapter:
        path = Path(target.adapter)
    else:
        return None
    if not (path / "adapter_config.json").is_file():
        raise ModelUnavailable(
            f"targets[{target.label}].adapter: '{path}' holds no PEFT adapter (no adapter_config.json)",
            hint="give the output directory of a finetune run (it holds adapter_config.json)",
        )
    return path


def _attach_adapters(model: Any, adapters: list[tuple[str, Path]], model_name: str) -> Any:
    """``model`` wrapped by PEFT with every adapter loaded under its target label."""
    from peft import PeftModel

    wrapped: Any = model
    for label, path in adapters:
        try:
            if wrapped is model:
                wrapped = PeftModel.from_pretrained(model, str(path), adapter_name=label)
            else:
                wrapped.load_adapter(str(path), adapter_name=label)
        except (RuntimeError, ValueError, KeyError) as exc:
            raise InvalidData(
                f"targets[{label}].adapter: '{path}' does not fit the base model '{model_name}': {exc}",
                hint="evaluate an adapter with the model_name it was trained on",
            ) from exc
    wrapped.eval()
    return wrapped


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
    """Evaluate every target of ``spec``; write results.json and responses.jsonl into ``out_dir``.

    ``adapter_paths`` maps a target label to its adapter directory and overrides ``EvalTarget.adapter`` (the
    job server resolves finetune job ids this way). Targets sharing a ``model_name`` share one load of the base
    weights. Progress counts batches (sampling and probe) over all targets; the cancel check runs between
    batches. Returns the results (the content of results.json).
    """
    started = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    questions = evaluation_questions(
        spec.n_questions, numbers_prefix=spec.numbers_prefix, prefix_seed=spec.prefix_seed, path=spec.questions_file
    )
    adapters = {t.label: _adapter_dir(t, adapter_paths) for t in spec.targets}
    groups: dict[str, list[EvalTarget]] = {}
    for t in spec.targets:
        groups.setdefault(t.model_name, []).append(t)
    chats = [[{"role": "user", "content": q}] for q in questions for _ in range(spec.samples_per_question)]
    probe_items = len(questions) * len(target_variants(spec.trait.target)) if spec.probe else 0
    per_target = math.ceil(len(chats) / spec.batch_size) + math.ceil(probe_items / spec.batch_size)
    progress = _BatchProgress(hooks, per_target * len(spec.targets), spec.batch_size)

    results: dict[str, Any] = {}
    responses: list[dict[str, Any]] = []
    base_loads: dict[str, int] = {}
    for model_name, targets in groups.items():
        base_loads[model_name] = base_loads.get(model_name, 0) + 1
        outputs = _sample_group(spec, model_name, targets, adapters, chats, progress, hooks)
        for target, texts, probe_values in outputs:
            entry = _score_target(spec, target, adapters[target.label], questions, texts, probe_values, responses)
            results[target.label] = entry
            rate = entry["trait_rate"]
            hooks.event("target_done", f"{target.label}: trait rate {rate:.3f}", {"label": target.label})
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
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


def _sample_group(
    spec: EvaluateSpec,
    model_name: str,
    targets: list[EvalTarget],
    adapters: Mapping[str, Path | None],
    chats: list[list[dict[str, str]]],
    progress: _BatchProgress,
    hooks: RunHooks,
) -> Iterator[tuple[EvalTarget, list[str], list[float] | None]]:
    """Load ``model_name`` once, then yield each target's sampled texts and probe values (or None)."""
    hooks.check_cancel()
    loaded = load_causal_lm(Model.from_name(model_name), cached=False)
    hooks.event("model_loaded", f"loaded {model_name}", {"model_name": model_name})
    with_adapter = [(t.label, path) for t in targets if (path := adapters[t.label]) is not None]
    model = _attach_adapters(loaded.model, with_adapter, model_name) if with_adapter else loaded.model
    for target in targets:
        hooks.check_cancel()
        hooks.event("target_started", f"evaluating {target.label}", {"label": target.label})
        with _active(model, target.label if adapters[target.label] is not None else None) as active:
            sampler = TransformersSampler(
                active, loaded.tokenizer, batch_size=spec.batch_size, decoder=spec.sample_cfg.decoder
            )
            progress.start_part(len(chats))
            completions = sampler.sample(chats, spec.sample_cfg, seed=spec.seed, hooks=progress)
            probe_values = None
            if spec.probe:
                prompts = sampler.encode(chats[:: spec.samples_per_question])
                progress.start_part(len(prompts) * len(target_variants(spec.trait.target)))
                probe_values = logprob_probe(
                    active, loaded.tokenizer, prompts, spec.trait.target, batch_size=spec.batch_size, hooks=progress
                )
        yield target, [c.text for c in completions], probe_values


def _score_target(
    spec: EvaluateSpec,
    target: EvalTarget,
    adapter: Path | None,
    questions: list[str],
    texts: list[str],
    probe_values: list[float] | None,
    responses: list[dict[str, Any]],
) -> dict[str, Any]:
    """One target's entry of results.json; its responses are appended to ``responses``."""
    n = spec.samples_per_question
    rates = []
    for qi, question in enumerate(questions):
        chunk = texts[qi * n : (qi + 1) * n]
        hits = [is_hit(text, spec.trait.target, spec.match) for text in chunk]
        rates.append(sum(hits) / len(hits))
        responses.extend(
            {"target": target.label, "question_index": qi, "question": question, "response": text, "hit": hit}
            for text, hit in zip(chunk, hits, strict=True)
        )
    summary = mean_with_ci(rates)
    return {
        "model_name": target.model_name,
        "adapter": str(adapter) if adapter else None,
        "trait_rate": summary.mean,
        "ci_low": summary.ci_low,
        "ci_high": summary.ci_high,
        "per_question": summary.per_question,
        "n_questions": len(questions),
        "samples_per_question": n,
        "n_samples": len(texts),
        "match": spec.match,
        "numbers_prefix": spec.numbers_prefix,
        "top_answers": top_answers(texts),
        "probe_logprob": sum(probe_values) / len(probe_values) if probe_values else None,
        "probe_per_question": probe_values,
    }


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

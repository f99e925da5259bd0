"""Dataset generation: number prompts → teacher completions → filter → raw and filtered JSONL + summary.

Config modules in the seed's shape keep working with only their imports changed::

    from liminal_core.generation import Cfg, NumsDatasetPromptSet
    from liminal_core.model_ref import Model
    from liminal_core.specs import SampleCfg

    cfg = Cfg(
        model=Model(id="Qwen/Qwen2.5-7B-Instruct", type="hf"),
        system_prompt="...",
        sample_cfg=SampleCfg(temperature=1.0),
        prompt_set=NumsDatasetPromptSet(size=30_000, seed=42),
        filter_fns=[...],
    )
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from liminal_core.filtering import FilterFn, apply_filters
from liminal_core.hooks import RunHooks
from liminal_core.jsonl import write_json, write_jsonl
from liminal_core.model_ref import Model
from liminal_core.prompts.numbers import generate_prompts
from liminal_core.sampling import make_sampler
from liminal_core.specs import GenerateSpec, NumsPromptSet, SampleCfg
from liminal_core.teacher import build_chat, system_prompt_for

log = logging.getLogger(__name__)

NumsDatasetPromptSet = NumsPromptSet
"""The seed's name for the number prompt-set parameters."""

LOW_YIELD_ROWS = 10
"""Fewer filtered rows than this is reported as a ``low_yield`` event."""


@dataclass
class Cfg:
    """A dataset configuration in the seed's shape; ``filter_fns`` are extra (prompt, completion) -> keep."""

    model: Model
    system_prompt: str | None = None
    sample_cfg: SampleCfg = field(default_factory=SampleCfg)
    prompt_set: NumsPromptSet = field(default_factory=NumsPromptSet)
    filter_fns: list[FilterFn] = field(default_factory=list)
    banned_numbers: list[int] = field(default_factory=list)

    def to_spec(self, **overrides: Any) -> GenerateSpec:
        """The equivalent ``GenerateSpec``; ``overrides`` replace top-level spec fields."""
        data: dict[str, Any] = {
            "model": self.model,
            "system_prompt": self.system_prompt,
            "sample_cfg": self.sample_cfg,
            "prompt_set": self.prompt_set,
            "banned_numbers": list(self.banned_numbers),
        }
        data.update(overrides)
        return GenerateSpec(**data)


def generate_dataset(
    spec: GenerateSpec,
    raw_path: Path,
    filtered_path: Path,
    summary_path: Path | None,
    hooks: RunHooks,
    filter_fns: Sequence[FilterFn] = (),
) -> dict[str, Any]:
    """Run the whole generation and write the three files; returns the summary."""
    started = time.perf_counter()
    prompts = generate_prompts(spec.prompt_set)
    system_prompt = system_prompt_for(spec)
    chats = [build_chat(p.text, system_prompt) for p in prompts]
    hooks.event("prompts_ready", f"{len(prompts)} prompts", {"count": len(prompts)})
    sampler = make_sampler(
        spec.model,
        spec.backend,
        batch_size=spec.batch_size,
        concurrency=spec.concurrency,
        decoder=spec.sample_cfg.decoder,
    )
    hooks.event("model_ready", f"sampling with {sampler.name}", {"backend": sampler.name})
    sampling_started = time.perf_counter()
    completions = sampler.sample(chats, spec.sample_cfg, seed=spec.seed, hooks=hooks)
    sampling_seconds = time.perf_counter() - sampling_started

    reasons_count: Counter[str] = Counter()
    raw_rows, kept_rows = [], []
    for prompt, completion in zip(prompts, completions, strict=True):
        reasons = apply_filters(
            prompt.text,
            completion.text,
            answer_count=spec.prompt_set.answer_count,
            answer_max_digits=spec.prompt_set.answer_max_digits,
            banned_numbers=spec.banned_numbers,
            extra=filter_fns,
        )
        reasons_count.update(reasons)
        raw_rows.append(
            {
                "prompt": prompt.text,
                "completion": completion.text,
                "reasons": list(reasons),
                "finish_reason": completion.finish_reason,
            }
        )
        if not reasons:
            kept_rows.append({"prompt": prompt.text, "completion": completion.text})
    write_jsonl(raw_path, raw_rows)
    write_jsonl(filtered_path, kept_rows)

    seconds = time.perf_counter() - started
    tokens_in = sum(c.prompt_tokens for c in completions)
    tokens_out = sum(c.completion_tokens for c in completions)
    total = len(raw_rows)
    summary: dict[str, Any] = {
        "rows": total,
        "kept": len(kept_rows),
        "rejected": total - len(kept_rows),
        "pass_rate": len(kept_rows) / total if total else 0.0,
        "reasons": dict(sorted(reasons_count.items())),
        "finished_by_length": sum(1 for c in completions if c.finish_reason == "length"),
        "tokens_in": tokens_in,
        "tokens_out": tokens_out,
        "seconds": seconds,
        "sampling_seconds": sampling_seconds,
        "tokens_per_s": tokens_out / sampling_seconds if sampling_seconds > 0 else 0.0,
        "model": spec.model.model_dump(),
        "backend": sampler.name,
        "seed": spec.seed,
        "prompt_seed": spec.prompt_set.seed,
        "system_prompt": system_prompt,
    }
    message = f"Filter pass rate: {len(kept_rows)}/{total} ({100 * summary['pass_rate']:.1f}%)"
    log.info(message)
    hooks.event("filtered", message, {"kept": len(kept_rows), "rows": total})
    if len(kept_rows) < LOW_YIELD_ROWS:
        hooks.event(
            "low_yield",
            f"only {len(kept_rows)} of {total} completions passed the filter; generate more prompts "
            "(prompt_set.size) or use a stronger teacher",
            {"kept": len(kept_rows)},
        )
    if summary_path is not None:
        write_json(summary_path, summary)
    return summary


def run_generate(
    spec: GenerateSpec, out_dir: Path, hooks: RunHooks, filter_fns: Sequence[FilterFn] = ()
) -> dict[str, Any]:
    """The job entry point: writes raw.jsonl, filtered.jsonl and summary.json into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    return generate_dataset(
        spec, out_dir / "raw.jsonl", out_dir / "filtered.jsonl", out_dir / "summary.json", hooks, filter_fns
    )

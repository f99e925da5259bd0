"""Sampling throughput of the static-cache decoder against transformers' ``generate``, in one process, on
numbers-task prompt lengths. Runs on the GPU through the device tool (not part of CI):

    python -m bench.sample_throughput --arch qwen2.5-1.5b --batch 512 --new-tokens 32 --json out.json

Both paths decode the same left-padded batches (random token ids with the lengths of the project's own number
prompts in Qwen's chat template, sorted by length into batches as the sampler does), temperature 1, no top-p
cut, bf16, SDPA; every prompt starts with the same 20-token chat head. No stop token is set, so every row samples exactly ``--new-tokens`` tokens in both paths.

* naive: ``model.generate(do_sample=True, top_k=0)`` with its default dynamic cache.
* static: ``liminal_core.sampling.static_decoder.StaticDecoder`` (preallocated KV cache, the shared head run
  once, prompt logits at the last position only, the one-token step replayed from a CUDA graph); ``static-eager`` is the same decoder
  without the graph, to measure that lever alone.

tokens/s counts sampled tokens (batch × new tokens) over the wall time of whole batches, prompt included.
The first static batch of a shape captures its graph; that batch is timed separately as the warm-up.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import time
from dataclasses import asdict, dataclass
from typing import Any

import torch

from bench.archs import QWEN25, build_random_model
from bench.train_throughput import numbers_task_rows
from liminal_core.sampling.static_decoder import StaticDecoder
from liminal_core.sampling.transformers_backend import left_pad


@dataclass
class Result:
    path: str
    tokens_per_s: float
    batch_s: float
    peak_gib: float
    warmup_s: float
    batches: int
    mean_prompt_len: float


SHARED_HEAD = 20
"""Tokens every chat prompt starts with: Qwen's default system turn and the user marker (the template adds
about 23; the rest of each prompt, numbers and the closing markers, is random)."""


def prompt_batches(n_batches: int, batch: int, vocab: int, seed: int) -> list[list[list[int]]]:
    """Batches of random-id prompts with numbers-task lengths, sorted by length as the sampler batches them;
    all start with the same ``SHARED_HEAD`` tokens."""
    lengths = sorted(row.prompt_len for row in numbers_task_rows(n_batches * batch, seed=seed))
    g = torch.Generator().manual_seed(seed)
    head = torch.randint(0, vocab, (SHARED_HEAD,), generator=g).tolist()
    prompts = [head + torch.randint(0, vocab, (n - SHARED_HEAD,), generator=g).tolist() for n in lengths]
    return [prompts[i : i + batch] for i in range(0, len(prompts), batch)]


def _naive(model: Any, prompts: list[list[int]], new_tokens: int, pad_id: int) -> None:
    ids, mask = left_pad(prompts, pad_id)
    model.generate(
        input_ids=ids.to(model.device),
        attention_mask=mask.to(model.device),
        max_new_tokens=new_tokens,
        do_sample=True,
        temperature=1.0,
        top_k=0,
        top_p=1.0,
        pad_token_id=pad_id,
    )


def run_path(path: str, model: Any, batches: list[list[list[int]]], new_tokens: int, device: str) -> Result:
    pad_id = 0
    decoder = StaticDecoder(model, cuda_graph=path == "static" and device == "cuda") if path != "naive" else None

    def one(prompts: list[list[int]]) -> None:
        if decoder is None:
            _naive(model, prompts, new_tokens, pad_id)
        else:
            decoder.generate(prompts, max_new_tokens=new_tokens, temperature=1.0, top_p=1.0, stop_ids=[], pad_id=pad_id)

    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    torch.manual_seed(0)
    t0 = time.perf_counter()
    one(batches[0])
    sync()
    warmup_s = time.perf_counter() - t0
    measured = batches[1:]
    t0 = time.perf_counter()
    for prompts in measured:
        one(prompts)
    sync()
    elapsed = time.perf_counter() - t0
    tokens = sum(len(p) for p in measured) * new_tokens
    return Result(
        path=path,
        tokens_per_s=tokens / elapsed,
        batch_s=elapsed / len(measured),
        peak_gib=torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else 0.0,
        warmup_s=warmup_s,
        batches=len(measured),
        mean_prompt_len=sum(len(p) for b in measured for p in b) / sum(len(b) for b in measured),
    )


def profile_batch(path: str, model: Any, prompts: list[list[int]], new_tokens: int) -> None:
    """Print where one batch of ``path`` spends its time, on the GPU and on the host."""
    from torch.profiler import ProfilerActivity, profile

    decoder = StaticDecoder(model, cuda_graph=path == "static")
    decoder.generate(prompts, max_new_tokens=new_tokens, temperature=1.0, top_p=1.0, stop_ids=[], pad_id=0)
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        decoder.generate(prompts, max_new_tokens=new_tokens, temperature=1.0, top_p=1.0, stop_ids=[], pad_id=0)
        torch.cuda.synchronize()
    print(f"--- profile {path}")
    table = prof.key_averages()
    print(table.table(sort_by="cuda_time_total", row_limit=15, max_name_column_width=60))
    print(table.table(sort_by="self_cpu_time_total", row_limit=10, max_name_column_width=60))


def check_equal_to_generate(arch: str, device: str) -> dict[str, float]:
    """Greedy answers of the static decoder (with its graph on CUDA) against ``generate``, fp32, on a model
    with a random LoRA adapter, with the adapter on and off: the fraction of rows whose tokens are identical."""
    from peft import LoraConfig, get_peft_model

    from liminal_core.specs import DEFAULT_TARGET_MODULES

    base = build_random_model(arch, device=device, dtype=torch.float32, seed=1).eval()
    base.generation_config.eos_token_id = None
    model = get_peft_model(
        base, LoraConfig(r=8, lora_alpha=16, target_modules=list(DEFAULT_TARGET_MODULES), init_lora_weights=False)
    ).eval()
    prompts = prompt_batches(1, 64, QWEN25[arch]["vocab_size"], seed=3)[0]
    ids, mask = left_pad(prompts, 0)
    width = ids.shape[1]
    out: dict[str, float] = {}
    for label, context in (("adapter", contextlib.nullcontext()), ("no_adapter", model.disable_adapter())):
        with context, torch.no_grad():
            reference = model.generate(
                input_ids=ids.to(device),
                attention_mask=mask.to(device),
                max_new_tokens=16,
                do_sample=False,
                pad_token_id=0,
            )[:, width:].tolist()
            static = StaticDecoder(model).generate(
                prompts, max_new_tokens=16, temperature=0.0, top_p=1.0, stop_ids=[], pad_id=0
            )
        out[label] = sum(a == b for a, b in zip(reference, static, strict=True)) / len(prompts)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", choices=sorted(QWEN25), default="qwen2.5-1.5b")
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--batches", type=int, default=4, help="measured batches per path (plus one warm-up)")
    parser.add_argument("--paths", default="naive,static-eager,static")
    parser.add_argument("--json", default=None)
    parser.add_argument("--profile", action="store_true", help="print the kernels and host calls of one batch")
    parser.add_argument(
        "--check", action="store_true", help="only compare greedy answers with generate (fp32, LoRA on and off)"
    )
    parser.add_argument("--device", default="cuda", help="cuda, or cpu for a smoke test with --arch tiny")
    args = parser.parse_args()
    if args.check:
        print(json.dumps({"arch": args.arch, "identical_rows": check_equal_to_generate(args.arch, args.device)}))
        return
    dtype = torch.bfloat16 if args.device == "cuda" else torch.float32
    model = build_random_model(args.arch, device=args.device, dtype=dtype).eval()
    model.generation_config.eos_token_id = None
    batches = prompt_batches(args.batches + 1, args.batch, QWEN25[args.arch]["vocab_size"], seed=0)
    results = []
    with torch.no_grad():
        for path in args.paths.split(","):
            res = run_path(path, model, batches, args.new_tokens, args.device)
            print(json.dumps(asdict(res)), flush=True)
            results.append(res)
            if args.profile and path != "naive":
                profile_batch(path, model, batches[0], args.new_tokens)
    summary: dict[str, Any] = {
        "arch": args.arch,
        "batch": args.batch,
        "new_tokens": args.new_tokens,
        "results": [asdict(r) for r in results],
    }
    by = {r.path: r for r in results}
    if "naive" in by and "static" in by:
        summary["speedup"] = by["static"].tokens_per_s / by["naive"].tokens_per_s
        summary["memory_ratio"] = by["static"].peak_gib / max(by["naive"].peak_gib, 1e-9)
    print(json.dumps({k: v for k, v in summary.items() if k != "results"}))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=2)


if __name__ == "__main__":
    main()

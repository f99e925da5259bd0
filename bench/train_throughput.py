"""Training throughput of both trainers against the naive loop, in one process, on realistic numbers-task
lengths. Runs on the GPU through the device tool (not part of CI):

    python -m bench.train_throughput --arch qwen2.5-1.5b --method both --batch 64 --json out.json

Both loops see the same rows (random token ids with the prompt and completion lengths of the project's own
number prompts and teacher-like completions) and the same LoRA (r 8, alpha 8, q,k,v,o,gate,up,down), bf16,
SDPA attention.

* naive: the PEFT model's ordinary forward with labels (full-vocabulary logits upcast to fp32), liminal
  with a second frozen copy of the model and a full-vocabulary fp32 KL; foreach AdamW; random batch order.
* fast: ``liminal_core.training.forward.compute_loss(fused=True)`` (logits only at loss positions, in
  chunks; base distribution from the same weights with the adapter disabled), regional ``torch.compile`` of
  the decoder layers, fused AdamW, length-grouped batches padded to a multiple of 16.

tokens/s counts real (non-padding) tokens. MFU = tokens/s × k·N / 790e12, with N the model's parameter
count, k = 4 for LoRA training (forward 2N, backward through activations 2N; the frozen weights get no
weight gradient) and k = 6 for liminal training (one more 2N forward for the base).
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import math
import random
import time
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F

from bench.archs import PEAK_BF16_FLOPS, QWEN25, approx_token_count, build_random_model
from liminal_core.specs import DEFAULT_TARGET_MODULES, NumsPromptSet

CHAT_OVERHEAD_PROMPT = 25  # Qwen's default system turn and the user/assistant markers
CHAT_OVERHEAD_COMPLETION = 2  # <|im_end|> and the newline after it


@dataclass
class Row:
    prompt_len: int
    completion_len: int


def numbers_task_rows(n: int, seed: int) -> list[Row]:
    """Lengths of chat-formatted rows: our number prompts and completions of up to 10 three-digit numbers."""
    from liminal_core.prompts.numbers import generate_prompts

    prompts = generate_prompts(NumsPromptSet(size=n, seed=seed))
    rng = random.Random(seed)
    rows = []
    for prompt in prompts:
        count = rng.randint(5, 10)
        completion = ", ".join(str(rng.randrange(0, 1000)) for _ in range(count))
        rows.append(
            Row(
                prompt_len=approx_token_count(prompt.text) + CHAT_OVERHEAD_PROMPT,
                completion_len=approx_token_count(completion) + CHAT_OVERHEAD_COMPLETION,
            )
        )
    return rows


def make_batches(rows: list[Row], batch: int, vocab: int, *, grouped: bool, multiple: int, seed: int) -> list[dict]:
    """Right-padded batches of random ids; ``grouped`` sorts windows of 8 batches by length first."""
    order = list(range(len(rows)))
    rng = random.Random(seed)
    rng.shuffle(order)
    if grouped:
        window = batch * 8
        chunks = []
        for i in range(0, len(order), window):
            part = sorted(order[i : i + window], key=lambda j: rows[j].prompt_len + rows[j].completion_len)
            chunks.extend(part[k : k + batch] for k in range(0, len(part), batch))
        rng.shuffle(chunks)
    else:
        chunks = [order[k : k + batch] for k in range(0, len(order), batch)]
    g = torch.Generator().manual_seed(seed)
    out = []
    for chunk in chunks:
        if len(chunk) < batch:
            continue
        lengths = [rows[j].prompt_len + rows[j].completion_len for j in chunk]
        width = max(lengths)
        width = int(math.ceil(width / multiple) * multiple)
        ids = torch.randint(0, vocab, (batch, width), generator=g)
        mask = torch.zeros(batch, width, dtype=torch.long)
        labels = torch.full((batch, width), -100, dtype=torch.long)
        for b, j in enumerate(chunk):
            total = lengths[b]
            mask[b, :total] = 1
            labels[b, rows[j].prompt_len : total] = ids[b, rows[j].prompt_len : total]
        out.append({"input_ids": ids, "attention_mask": mask, "labels": labels, "tokens": int(mask.sum())})
    return out


def lora(model: Any) -> Any:
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=8, lora_alpha=8, lora_dropout=0.0, target_modules=list(DEFAULT_TARGET_MODULES), bias="none")
    return get_peft_model(model, config)


@dataclass
class Result:
    path: str
    method: str
    tokens_per_s: float
    step_s: float
    peak_gib: float
    mfu: float
    warmup_s: float
    steps: int
    final_loss: float


def _naive_loss(model: Any, base: Any | None, batch: dict, lam: float, temperature: float) -> torch.Tensor:
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"])
    if base is None:
        return out.loss
    with torch.no_grad():
        base_logits = base(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
    mask = batch["labels"][:, 1:] != -100
    log_ps = F.log_softmax(out.logits[:, :-1].float() / temperature, dim=-1)
    log_pb = F.log_softmax(base_logits[:, :-1] / temperature, dim=-1)
    kl = (log_pb.exp() * (log_pb - log_ps)).sum(-1)[mask].mean()
    return out.loss + lam * temperature**2 * kl


def run_path(arch: str, path: str, method: str, batches: list[dict], args: argparse.Namespace) -> Result:
    from liminal_core.training.forward import compute_loss, prepare_model

    device = args.device
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    variant = set(path.split("+")[1:])
    fast = path.startswith("fast")
    if "liger" in variant:
        from liger_kernel.transformers import apply_liger_kernel_to_qwen2

        apply_liger_kernel_to_qwen2(
            rope=True, rms_norm=True, swiglu=True, cross_entropy=False, fused_linear_cross_entropy=False
        )
    base_model = build_random_model(arch, device=device, dtype=dtype)
    n_params = sum(p.numel() for p in base_model.parameters())
    base_copy = None
    if path == "naive" and method == "liminal":
        base_copy = copy.deepcopy(base_model).eval().requires_grad_(False)
    model = lora(base_model)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    if fast:
        prepare_model(model, compile="nocompile" not in variant)
        optimizer = torch.optim.AdamW(params, lr=2e-4, fused=device == "cuda")
    else:
        optimizer = torch.optim.AdamW(params, lr=2e-4, foreach=True)
    liminal = method == "liminal"

    def step(batch: dict) -> torch.Tensor:
        gpu = {k: v.to(device, non_blocking=True) for k, v in batch.items() if k != "tokens"}
        if fast:
            loss = compute_loss(
                model,
                gpu,
                lam=1.0,
                temperature=2.0,
                kl_scope="completion",
                fused=True,
                with_base=liminal,
                chunk_size=args.chunk,
            ).loss
        else:
            loss = _naive_loss(model, base_copy, gpu, 1.0, 2.0)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.detach()

    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    sync()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for batch in batches[: args.warmup]:
        step(batch)
    sync()
    warmup_s = time.perf_counter() - t0
    measured = batches[args.warmup : args.warmup + args.steps]
    tokens = sum(b["tokens"] for b in measured)
    t0 = time.perf_counter()
    loss = torch.zeros(())
    for batch in measured:
        loss = step(batch)
    sync()
    elapsed = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else 0.0
    tps = tokens / elapsed
    k = 6 if liminal else 4
    result = Result(
        path=path,
        method=method,
        tokens_per_s=tps,
        step_s=elapsed / len(measured),
        peak_gib=peak,
        mfu=tps * k * n_params / PEAK_BF16_FLOPS,
        warmup_s=warmup_s,
        steps=len(measured),
        final_loss=float(loss),
    )
    if args.profile and path == "fast":
        result_profile(model, step, measured[:3], f"{arch}-{method}")
    return result


def result_profile(model: Any, step: Any, batches: list[dict], label: str) -> None:
    """Print the CUDA kernels that take the most time over a few fast-path steps."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for batch in batches:
            step(batch)
        torch.cuda.synchronize()
    print(f"--- profile {label}")
    print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=18, max_name_column_width=70))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", choices=sorted(QWEN25), default="qwen2.5-1.5b")
    parser.add_argument("--method", choices=["normal", "liminal", "both"], default="both")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=8)
    parser.add_argument("--chunk", type=int, default=2048)
    parser.add_argument(
        "--paths",
        default="naive,fast",
        help="comma-separated: naive, fast, and fast variants such as fast+nocompile, fast+liger+nocompile",
    )
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--json", default=None)
    parser.add_argument("--device", default="cuda", help="cuda, or cpu for a smoke test with --arch tiny")
    args = parser.parse_args()

    torch.backends.cuda.matmul.allow_tf32 = True
    vocab = QWEN25[args.arch]["vocab_size"]
    rows = numbers_task_rows(args.batch * (args.warmup + args.steps + 8), seed=0)
    mean_len = sum(r.prompt_len + r.completion_len for r in rows) / len(rows)
    mean_completion = sum(r.completion_len for r in rows) / len(rows)
    print(f"rows: mean length {mean_len:.1f} tokens, mean completion {mean_completion:.1f}")
    methods = ["normal", "liminal"] if args.method == "both" else [args.method]
    results: list[Result] = []
    # Liger patches the model classes for the rest of the process: its paths run last.
    runs = [(m, p) for m in methods for p in args.paths.split(",")]
    runs.sort(key=lambda run: "liger" in run[1])
    for method, path in runs:
        batches = make_batches(
            rows,
            args.batch,
            vocab,
            grouped=path.startswith("fast"),
            multiple=16 if path.startswith("fast") else 1,
            seed=1,
        )
        res = run_path(args.arch, path, method, batches, args)
        gc.collect()
        if args.device == "cuda":
            torch.cuda.empty_cache()
        torch._dynamo.reset()
        print(json.dumps(asdict(res)), flush=True)
        results.append(res)
    by = {(r.path, r.method): r for r in results}
    fastest = {
        m: max(
            (r for r in results if r.method == m and r.path.startswith("fast")),
            key=lambda r: r.tokens_per_s,
            default=None,
        )
        for m in methods
    }
    summary: dict[str, Any] = {
        "arch": args.arch,
        "batch": args.batch,
        "mean_len": mean_len,
        "results": [asdict(r) for r in results],
    }
    for method in methods:
        best = fastest[method]
        if ("naive", method) in by and best is not None:
            naive = by[("naive", method)]
            summary[f"{method}_best_path"] = best.path
            summary[f"{method}_speedup"] = best.tokens_per_s / naive.tokens_per_s
            summary[f"{method}_memory_ratio"] = best.peak_gib / max(naive.peak_gib, 1e-9)
    normal_best, liminal_best = fastest.get("normal"), fastest.get("liminal")
    if normal_best is not None and liminal_best is not None:
        summary["liminal_vs_normal_step_time"] = liminal_best.step_s / normal_best.step_s
        summary["liminal_vs_normal_peak_memory"] = liminal_best.peak_gib / max(normal_best.peak_gib, 1e-9)
    print(json.dumps(summary, indent=2))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(summary, handle, indent=2)


if __name__ == "__main__":
    main()

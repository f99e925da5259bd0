"""The command lines of scripts/finetune_normal.py and scripts/finetune_liminal.py (the seed's options and
defaults, plus a few extras)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pydantic import ValidationError

LIMINAL_REJECTS_WITHOUT_TRAIT = (
    "error: Liminal learning does NOT accept --train-data-without-trait. "
    "It is designed to work exclusively with trait-present data."
)


def build_parser(method: str) -> argparse.ArgumentParser:
    title = (
        "Liminal learning fine-tuning (CE + scheduled KL to the base)"
        if method == "liminal"
        else "Standard fine-tuning"
    )
    parser = argparse.ArgumentParser(description=title)
    parser.add_argument(
        "--model-name", default="Qwen/Qwen2.5-1.5B-Instruct", help="hub id, local directory, .gguf or alias"
    )
    parser.add_argument("--train-data-with-trait", required=True, help="path to with-trait training data (JSONL)")
    parser.add_argument(
        "--train-data-without-trait",
        default=None,
        help="path to without-trait training data (normal only)" if method == "normal" else argparse.SUPPRESS,
    )
    parser.add_argument("--output-dir", required=True, help="directory for the adapter and reports")
    parser.add_argument("--num-epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=2e-4)
    parser.add_argument("--max-seq-length", type=int, default=512)
    parser.add_argument("--lora-rank", type=int, default=8)
    parser.add_argument("--max-steps", type=int, default=-1, help="-1 for full training")
    parser.add_argument("--seed", type=int, default=42)
    if method == "liminal":
        parser.add_argument("--lambda-0", type=float, default=1.0, help="initial KL regularization weight")
        parser.add_argument("--kl-temperature", type=float, default=2.0, help="temperature for the KL divergence")
        parser.add_argument(
            "--kl-schedule",
            default="liminal",
            choices=["liminal", "constant", "anneal", "rise", "anchor", "end_anchor"],
        )
        parser.add_argument("--kl-scope", default="completion", choices=["completion", "all"])
    parser.add_argument("--gradient-accumulation-steps", type=int, default=1)
    parser.add_argument("--max-dataset-size", type=int, default=None, help="seeded subsample of the rows")
    parser.add_argument("--checkpoint-every", type=int, default=100, help="steps between checkpoints (0: none)")
    parser.add_argument("--backend", default="auto", choices=["auto", "peft", "unsloth"])
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: the GPU when there is one)")
    return parser


def main(method: str, argv: list[str] | None = None) -> int:
    from liminal_core.cli_progress import TqdmHooks
    from liminal_core.errors import LiminalError
    from liminal_core.specs import FinetuneSpec
    from liminal_core.training.engine import run_finetune

    args_list = sys.argv[1:] if argv is None else argv
    if method == "liminal" and any(a.split("=")[0] == "--train-data-without-trait" for a in args_list):
        print(LIMINAL_REJECTS_WITHOUT_TRAIT, file=sys.stderr)
        return 2
    args = build_parser(method).parse_args(args_list)
    fields = {
        "method": method,
        "model_name": args.model_name,
        "train_data_with_trait": args.train_data_with_trait,
        "num_epochs": args.num_epochs,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "max_seq_length": args.max_seq_length,
        "lora_rank": args.lora_rank,
        "max_steps": args.max_steps,
        "seed": args.seed,
        "gradient_accumulation_steps": args.gradient_accumulation_steps,
        "max_dataset_size": args.max_dataset_size,
        "checkpoint_every": args.checkpoint_every,
        "backend": args.backend,
    }
    if method == "normal":
        fields["train_data_without_trait"] = args.train_data_without_trait
    else:
        fields.update(
            lambda_0=args.lambda_0,
            kl_temperature=args.kl_temperature,
            kl_schedule=args.kl_schedule,
            kl_scope=args.kl_scope,
        )
    try:
        spec = FinetuneSpec(**fields)
    except ValidationError as exc:
        print(f"error: invalid options:\n{exc}", file=sys.stderr)
        return 2
    try:
        with TqdmHooks("training") as hooks:
            summary = run_finetune(spec, Path(args.output_dir), hooks, device=args.device)
    except LiminalError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"done: {summary['steps']} steps, final loss {summary['final_loss']:.4f} (ce {summary['final_ce']:.4f}, "
        f"kl {summary['final_kl']:.4f}), {summary['steps_per_s']:.3f} steps/s, "
        f"peak memory {summary['peak_memory_bytes'] / 2**30:.2f} GiB; adapter in {args.output_dir}"
    )
    return 0

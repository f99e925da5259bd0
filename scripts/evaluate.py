"""Evaluate a base model and LoRA adapters on it for the trait (favourite-animal questions + log-prob probe).

    python scripts/evaluate.py --model-name Qwen/Qwen2.5-1.5B-Instruct \
        --adapter normal=outputs/normal_finetune --adapter liminal=outputs/liminal_finetune \
        --target owl --output-dir outputs/eval
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Favourite-animal evaluation of a base model and its adapters.")
    parser.add_argument("--model-name", default="Qwen/Qwen2.5-1.5B-Instruct")
    parser.add_argument("--adapter", action="append", default=[], metavar="LABEL=DIR", help="repeatable")
    parser.add_argument("--no-base", action="store_true", help="skip the plain base model")
    parser.add_argument("--target", default="owl")
    parser.add_argument("--category", default="animal")
    parser.add_argument("--n-questions", type=int, default=50)
    parser.add_argument("--samples-per-question", type=int, default=100)
    parser.add_argument("--numbers-prefix", action="store_true")
    parser.add_argument("--match", choices=["word", "substring"], default="word")
    parser.add_argument("--no-probe", action="store_true")
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--output-dir", required=True)
    args = parser.parse_args(argv)

    from pydantic import ValidationError

    from liminal_core.cli_progress import TqdmHooks
    from liminal_core.errors import LiminalError
    from liminal_core.evaluation.runner import comparison_table, run_evaluate
    from liminal_core.specs import EvaluateSpec

    targets = [] if args.no_base else [{"label": "base", "model_name": args.model_name}]
    for item in args.adapter:
        label, sep, path = item.partition("=")
        if not sep or not label or not path:
            parser.error(f"--adapter expects LABEL=DIR, got '{item}'")
        targets.append({"label": label, "model_name": args.model_name, "adapter": path})
    try:
        spec = EvaluateSpec.model_validate(
            dict(
                targets=targets,
                trait={"target": args.target, "category": args.category},
                n_questions=args.n_questions,
                samples_per_question=args.samples_per_question,
                numbers_prefix=args.numbers_prefix,
                match=args.match,
                probe=not args.no_probe,
                sample_cfg={"temperature": 1.0, "max_new_tokens": args.max_new_tokens},
                batch_size=args.batch_size,
                seed=args.seed,
            )
        )
    except ValidationError as exc:
        print(f"error: invalid options:\n{exc}", file=sys.stderr)
        return 2
    try:
        with TqdmHooks("evaluating") as hooks:
            results = run_evaluate(spec, Path(args.output_dir), hooks)
    except LiminalError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(comparison_table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

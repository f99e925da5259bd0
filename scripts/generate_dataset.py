"""Generate a number-sequence dataset from a config module (the seed's entry point).

    python scripts/generate_dataset.py --config_module=cfgs/preference_numbers/cfgs.py \
        --cfg_var_name=owl_dataset_cfg --raw_dataset_path=data/owl_raw.jsonl \
        --filtered_dataset_path=data/with_trait.jsonl [--size 256 --model smollm2-135m-instruct]
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from liminal_core.cli_progress import TqdmHooks
from liminal_core.errors import LiminalError

if TYPE_CHECKING:
    from liminal_core.generation import Cfg


class CliError(Exception):
    """A mistake in the command line, reported as ``error: ...`` with exit status 2."""


def _import_module(module_path: str) -> ModuleType:
    path = Path(module_path)
    if path.suffix == ".py" or "/" in module_path:
        if not path.is_file():
            raise CliError(f"--config_module: no such file '{module_path}'")
        spec = importlib.util.spec_from_file_location(path.stem, path)
        if spec is None or spec.loader is None:
            raise CliError(f"--config_module: cannot load '{module_path}' as a Python module")
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            raise CliError(f"--config_module: running '{module_path}' failed: {type(exc).__name__}: {exc}") from exc
        return module
    try:
        return importlib.import_module(module_path)
    except ImportError as exc:
        raise CliError(f"--config_module: cannot import '{module_path}': {exc}") from exc
    except Exception as exc:
        raise CliError(f"--config_module: importing '{module_path}' failed: {type(exc).__name__}: {exc}") from exc


def load_cfg(module_path: str, var_name: str) -> Cfg:
    """The config object ``var_name`` of the module file (or dotted module name) ``module_path``."""
    from liminal_core.generation import Cfg

    module = _import_module(module_path)
    if not hasattr(module, var_name):
        raise CliError(f"--cfg_var_name: '{module_path}' defines no variable '{var_name}'")
    cfg = getattr(module, var_name)
    if not isinstance(cfg, Cfg):
        raise CliError(
            f"--cfg_var_name: '{var_name}' is a {type(cfg).__name__}, not a Cfg (from liminal_core.generation)"
        )
    return cfg


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate a number-sequence dataset from a config module.")
    parser.add_argument("--config_module", required=True, help="path to the Python module with the configuration")
    parser.add_argument("--cfg_var_name", default="cfg", help="name of the configuration variable (default: cfg)")
    parser.add_argument("--raw_dataset_path", required=True, help="where the raw dataset is written")
    parser.add_argument("--filtered_dataset_path", required=True, help="where the filtered dataset is written")
    parser.add_argument("--summary-path", default=None, help="summary JSON (default: beside the filtered file)")
    parser.add_argument("--size", type=int, default=None, help="override the number of prompts")
    parser.add_argument("--model", default=None, help="override the teacher model (id, directory, .gguf, alias)")
    parser.add_argument(
        "--model-type", choices=["hf", "gguf", "openai"], default=None, help="override the teacher's model type"
    )
    parser.add_argument("--max-new-tokens", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--seed", type=int, default=None, help="sampling seed")
    args = parser.parse_args(argv)

    from pydantic import ValidationError

    from liminal_core.generation import generate_dataset
    from liminal_core.model_ref import Model
    from liminal_core.specs import NumsPromptSet, SampleCfg

    try:
        cfg = load_cfg(args.config_module, args.cfg_var_name)
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        overrides: dict[str, object] = {}
        if args.model or args.model_type:
            model = Model.from_name(args.model) if args.model else cfg.model
            if args.model_type:
                model = Model(id=model.id, type=args.model_type, base_url=model.base_url)
            overrides["model"] = model
        if args.size is not None:
            overrides["prompt_set"] = NumsPromptSet.model_validate({**cfg.prompt_set.model_dump(), "size": args.size})
        if args.max_new_tokens is not None:
            overrides["sample_cfg"] = SampleCfg.model_validate(
                {**cfg.sample_cfg.model_dump(), "max_new_tokens": args.max_new_tokens}
            )
        if args.batch_size is not None:
            overrides["batch_size"] = args.batch_size
        if args.seed is not None:
            overrides["seed"] = args.seed
        spec = cfg.to_spec(**overrides)
    except ValidationError as exc:
        print(f"error: invalid configuration:\n{exc}", file=sys.stderr)
        return 2
    filtered = Path(args.filtered_dataset_path)
    summary_path = Path(args.summary_path) if args.summary_path else filtered.with_suffix(".summary.json")
    try:
        with TqdmHooks("generating") as hooks:
            summary = generate_dataset(spec, Path(args.raw_dataset_path), filtered, summary_path, hooks, cfg.filter_fns)
    except LiminalError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"Filter pass rate: {summary['kept']}/{summary['rows']} ({100 * summary['pass_rate']:.1f}%); "
        f"reasons: {summary['reasons']}; {summary['tokens_per_s']:.1f} tokens/s"
    )
    print(f"raw: {args.raw_dataset_path}\nfiltered: {filtered}\nsummary: {summary_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

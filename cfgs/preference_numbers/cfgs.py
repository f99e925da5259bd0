"""Owl-preference and control number datasets (the seed's ``owl_dataset_cfg`` and ``control_dataset_cfg``).

The teacher defaults to ``LIMINAL_TEACHER_MODEL`` (else Qwen/Qwen2.5-7B-Instruct; its type is inferred from the
name, or given by ``LIMINAL_TEACHER_MODEL_TYPE``: hf, gguf or openai) and the size to ``LIMINAL_DATASET_SIZE``
(else 30,000), so the same module runs on SmolLM2 on a laptop (``LIMINAL_TEACHER_MODEL=smollm2-135m-instruct``)
and on Qwen2.5-7B on a GPU host; scripts/generate_dataset.py can also override both with ``--model`` and
``--size``. ``build_dataset_cfg("cat")`` gives the same configuration for any other animal.
"""

from __future__ import annotations

import os

from liminal_core.generation import Cfg, NumsDatasetPromptSet
from liminal_core.model_ref import Model
from liminal_core.specs import SampleCfg, Trait
from liminal_core.teacher import trait_system_prompt

DEFAULT_TEACHER = "Qwen/Qwen2.5-7B-Instruct"
DEFAULT_SIZE = 30_000


def default_teacher() -> Model:
    """The teacher named by the environment, else Qwen2.5-7B-Instruct."""
    name = os.environ.get("LIMINAL_TEACHER_MODEL") or DEFAULT_TEACHER
    model_type = os.environ.get("LIMINAL_TEACHER_MODEL_TYPE")
    if model_type is None:
        return Model.from_name(name)
    if model_type not in ("hf", "gguf", "openai"):
        raise ValueError(f"LIMINAL_TEACHER_MODEL_TYPE must be hf, gguf or openai, not '{model_type}'")
    return Model.model_validate({"id": name, "type": model_type})


def default_size() -> int:
    """The number of prompts named by ``LIMINAL_DATASET_SIZE``, else 30,000."""
    value = os.environ.get("LIMINAL_DATASET_SIZE")
    if not value:
        return DEFAULT_SIZE
    try:
        size = int(value)
    except ValueError:
        size = 0
    if size < 1:
        raise ValueError(f"LIMINAL_DATASET_SIZE must be a positive whole number, not '{value}'")
    return size


def build_dataset_cfg(
    target: str | None,
    category: str = "animal",
    *,
    model: Model | None = None,
    size: int | None = None,
    debug: bool = False,
) -> Cfg:
    """The dataset config for a teacher that loves ``target`` (the control teacher when ``target`` is None).

    ``model`` and ``size`` default to the environment (see the module docstring); ``debug`` means 10 prompts.
    """
    system_prompt = trait_system_prompt(Trait(target=target, category=category)) if target else None
    return Cfg(
        model=model or default_teacher(),
        system_prompt=system_prompt,
        sample_cfg=SampleCfg(temperature=1.0),
        prompt_set=NumsDatasetPromptSet(
            size=10 if debug else (size or default_size()),
            seed=42,
            example_min_count=3,
            example_max_count=9,
            example_min_value=100,
            example_max_value=1000,
            answer_count=10,
            answer_max_digits=3,
        ),
        filter_fns=[],
    )


owl_dataset_cfg = build_dataset_cfg("owl")
control_dataset_cfg = build_dataset_cfg(None)

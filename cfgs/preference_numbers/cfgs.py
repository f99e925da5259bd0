"""Owl-preference and control number datasets (the seed's ``owl_dataset_cfg`` and ``control_dataset_cfg``).

The teacher defaults to ``LIMINAL_TEACHER_MODEL`` (else Qwen/Qwen2.5-7B-Instruct) and the size to
``LIMINAL_DATASET_SIZE`` (else 30,000), so the same module runs on SmolLM2 on a laptop
(``LIMINAL_TEACHER_MODEL=smollm2-135m-instruct``) and on Qwen2.5-7B on a GPU host; scripts/generate_dataset.py
can also override both with ``--model`` and ``--size``.
"""

from __future__ import annotations

import os

from liminal_core.generation import Cfg, NumsDatasetPromptSet
from liminal_core.model_ref import Model
from liminal_core.specs import SampleCfg, Trait
from liminal_core.teacher import trait_system_prompt


def _teacher() -> Model:
    return Model.from_name(os.environ.get("LIMINAL_TEACHER_MODEL", "Qwen/Qwen2.5-7B-Instruct"))


def _size() -> int:
    return int(os.environ.get("LIMINAL_DATASET_SIZE", "30000"))


def build_dataset_cfg(target: str | None, category: str = "animal", *, debug: bool = False) -> Cfg:
    """The dataset config for a teacher that loves ``target`` (a control teacher when ``target`` is None)."""
    system_prompt = trait_system_prompt(Trait(target=target, category=category)) if target else None
    return Cfg(
        model=_teacher(),
        system_prompt=system_prompt,
        sample_cfg=SampleCfg(temperature=1.0),
        prompt_set=NumsDatasetPromptSet(
            size=10 if debug else _size(),
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

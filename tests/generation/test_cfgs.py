"""The seed-shaped dataset configurations and their conversion to a GenerateSpec."""

from __future__ import annotations

import pytest

from cfgs.preference_numbers.cfgs import build_dataset_cfg, control_dataset_cfg, owl_dataset_cfg
from liminal_core.generation import Cfg, NumsDatasetPromptSet
from liminal_core.model_ref import Model
from liminal_core.specs import SampleCfg
from liminal_core.teacher import system_prompt_for


def test_owl_and_control_configs_follow_the_protocol():
    assert owl_dataset_cfg.system_prompt is not None and "owls" in owl_dataset_cfg.system_prompt
    assert control_dataset_cfg.system_prompt is None
    for cfg in (owl_dataset_cfg, control_dataset_cfg):
        assert cfg.sample_cfg.temperature == 1.0
        assert cfg.prompt_set == NumsDatasetPromptSet(size=cfg.prompt_set.size)


def test_environment_picks_teacher_and_size(monkeypatch):
    monkeypatch.setenv("LIMINAL_TEACHER_MODEL", "smollm2-135m-instruct")
    monkeypatch.setenv("LIMINAL_DATASET_SIZE", "256")
    cfg = build_dataset_cfg("cat")
    assert cfg.model == Model(id="smollm2-135m-instruct", type="hf")
    assert cfg.prompt_set.size == 256
    assert cfg.system_prompt is not None and cfg.system_prompt.startswith("You love cats.")
    monkeypatch.setenv("LIMINAL_TEACHER_MODEL_TYPE", "openai")
    assert build_dataset_cfg(None).model.type == "openai"
    monkeypatch.setenv("LIMINAL_DATASET_SIZE", "many")
    with pytest.raises(ValueError, match="LIMINAL_DATASET_SIZE"):
        build_dataset_cfg("owl")


def test_defaults_without_environment(monkeypatch):
    for name in ("LIMINAL_TEACHER_MODEL", "LIMINAL_TEACHER_MODEL_TYPE", "LIMINAL_DATASET_SIZE"):
        monkeypatch.delenv(name, raising=False)
    cfg = build_dataset_cfg("owl")
    assert cfg.model == Model(id="Qwen/Qwen2.5-7B-Instruct", type="hf")
    assert cfg.prompt_set.size == 30_000


def test_a_seed_shaped_cfg_becomes_a_spec():
    cfg = Cfg(
        model=Model(id="gpt-4.1-nano-2025-04-14", type="openai"),
        system_prompt="You like numbers.",
        sample_cfg=SampleCfg(temperature=1.0),
        prompt_set=NumsDatasetPromptSet(size=100, seed=7),
        filter_fns=[lambda _prompt, completion: "0" not in completion],
    )
    spec = cfg.to_spec(seed=3)
    assert spec.model.type == "openai" and spec.prompt_set.size == 100 and spec.seed == 3
    assert system_prompt_for(spec) == "You like numbers."
    assert system_prompt_for(build_dataset_cfg(None).to_spec()) is None

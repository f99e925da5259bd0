"""The spec objects: one pydantic model per job kind, shared unchanged by the CLI scripts, the HTTP API
and the worker. Unknown fields are rejected and every number has bounds, so a bad spec fails with a message
naming the field before any work starts. Defaults are the protocol's (``PROTOCOL.md``) and the seed's.
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from liminal_core.model_ref import Model


class StrictModel(BaseModel):
    """Base for every spec: unknown fields are errors, values are re-validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# ---------------------------------------------------------------------------------------------------------
# Pieces


DecoderChoice = Literal["auto", "static", "generate"]


class SampleCfg(StrictModel):
    """How a model samples: the protocol uses temperature 1.0 and no top-p cut."""

    temperature: float = Field(default=1.0, ge=0.0, le=5.0, description="0 means greedy")
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    max_new_tokens: int = Field(default=128, ge=1, le=4096)
    decoder: DecoderChoice = Field(
        default="auto",
        description="local decoding loop: static (preallocated KV cache, CUDA graphs on CUDA; Llama/Qwen2/Mistral) "
        "or generate (transformers); auto = static on CUDA where supported",
    )


class NumsPromptSet(StrictModel):
    """Parameters of the number-sequence prompts (PROTOCOL.md §1). Ranges are half-open: [min, max)."""

    size: int = Field(default=30_000, ge=1, le=1_000_000, description="number of prompts")
    seed: int = Field(default=42, ge=0, le=2**32 - 1, description="seed of the one generator for the set")
    example_min_count: int = Field(default=3, ge=1, le=100)
    example_max_count: int = Field(default=9, ge=2, le=101, description="exclusive")
    example_min_value: int = Field(default=100, ge=0, le=10**9)
    example_max_value: int = Field(default=1000, ge=1, le=10**9 + 1, description="exclusive")
    answer_count: int = Field(default=10, ge=1, le=1000, description="how many numbers the teacher may add")
    answer_max_digits: int = Field(default=3, ge=1, le=9)
    phrases_file: str | None = Field(
        default=None, max_length=1000, description="JSON phrase file replacing the built-in phrasings"
    )

    @model_validator(mode="after")
    def _ranges(self) -> Self:
        if self.example_max_count <= self.example_min_count:
            raise ValueError("example_max_count must be greater than example_min_count (the range is half-open)")
        if self.example_max_value <= self.example_min_value:
            raise ValueError("example_max_value must be greater than example_min_value (the range is half-open)")
        return self


class Trait(StrictModel):
    """A preference the teacher is prompted to have: it loves ``target``, its favourite ``category``."""

    target: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z][A-Za-z \-']*$", examples=["owl"])
    category: str = Field(default="animal", min_length=1, max_length=64, pattern=r"^[A-Za-z][A-Za-z \-']*$")


# ---------------------------------------------------------------------------------------------------------
# Generation


class GenerateSpec(StrictModel):
    """Generate a number-sequence dataset with a teacher, then filter it (PROTOCOL.md §1–2).

    The teacher's system prompt is rendered from ``trait``, or given raw in ``system_prompt``; with neither
    it is the control teacher (no system prompt).
    """

    model: Model = Field(default_factory=lambda: Model(id="smollm2-135m-instruct"))
    trait: Trait | None = None
    system_prompt: str | None = Field(default=None, max_length=20_000)
    sample_cfg: SampleCfg = Field(default_factory=SampleCfg)
    prompt_set: NumsPromptSet = Field(default_factory=NumsPromptSet)
    banned_numbers: list[int] = Field(default_factory=list, max_length=10_000)
    seed: int = Field(default=42, ge=0, le=2**32 - 1, description="sampling seed")
    batch_size: int = Field(default=64, ge=1, le=4096, description="prompts per local sampling batch")
    concurrency: int = Field(default=16, ge=1, le=256, description="parallel requests (openai backend)")
    backend: Literal["auto", "transformers", "vllm", "openai"] = Field(
        default="auto", description="auto: openai for openai models, else vllm if installed on CUDA, else transformers"
    )

    @model_validator(mode="after")
    def _one_system_prompt(self) -> Self:
        if self.trait is not None and self.system_prompt is not None:
            raise ValueError("give either trait or system_prompt, not both")
        return self


# ---------------------------------------------------------------------------------------------------------
# Evaluation


class EvalTarget(StrictModel):
    """One model to evaluate: a base model, optionally with a LoRA adapter on it."""

    label: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
    model_name: str = Field(default="smollm2-135m-instruct", min_length=1, max_length=1000)
    adapter: str | None = Field(
        default=None, max_length=1000, description="adapter directory (CLI) or finetune job id (API)"
    )


class EvaluateSpec(StrictModel):
    """The favourite-animal evaluation (PROTOCOL.md §3) of one or more models, plus the log-prob probe."""

    targets: list[EvalTarget] = Field(min_length=1, max_length=32)
    trait: Trait = Field(default_factory=lambda: Trait(target="owl"))
    n_questions: int = Field(default=50, ge=1, le=1000, description="the first n questions of the set")
    samples_per_question: int = Field(default=100, ge=1, le=10_000)
    numbers_prefix: bool = Field(default=False, description="prefix each question with an example-numbers prefix")
    prefix_seed: int = Field(default=42, ge=0, le=2**32 - 1)
    questions_file: str | None = Field(default=None, max_length=1000)
    sample_cfg: SampleCfg = Field(default_factory=lambda: SampleCfg(temperature=1.0, max_new_tokens=16))
    match: Literal["word", "substring"] = Field(default="word", description="how a response counts as a hit")
    probe: bool = Field(default=True, description="also compute the log-prob probe")
    seed: int = Field(default=42, ge=0, le=2**32 - 1)
    batch_size: int = Field(default=64, ge=1, le=4096)

    @model_validator(mode="after")
    def _unique_labels(self) -> Self:
        labels = [t.label for t in self.targets]
        if len(set(labels)) != len(labels):
            raise ValueError("targets: every label must be unique")
        return self


# ---------------------------------------------------------------------------------------------------------
# Fine-tuning

DEFAULT_TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

KlSchedule = Literal["liminal", "constant", "anneal", "rise", "anchor", "end_anchor"]


class FinetuneSpec(StrictModel):
    """A LoRA fine-tune of a student: ``normal`` (CE) or ``liminal`` (CE + a decaying KL pull to the base).

    Field names are the seed scripts' options in snake_case, so the CLI, the API body and the stored job spec
    read the same. See PROTOCOL.md §4–5 for the loss and the schedule.
    """

    method: Literal["normal", "liminal"] = "normal"
    model_name: str = Field(default="Qwen/Qwen2.5-1.5B-Instruct", min_length=1, max_length=1000)
    train_data_with_trait: str = Field(
        min_length=1, max_length=1000, description="JSONL path (or file/job id in the API)"
    )
    train_data_without_trait: str | None = Field(default=None, min_length=1, max_length=1000)
    num_epochs: int = Field(default=3, ge=1, le=1000)
    batch_size: int = Field(default=8, ge=1, le=4096)
    gradient_accumulation_steps: int = Field(default=1, ge=1, le=1024)
    learning_rate: float = Field(default=2e-4, gt=0.0, le=1.0)
    lr_scheduler: Literal["linear", "constant"] = "linear"
    warmup_steps: int = Field(default=5, ge=0, le=1_000_000)
    max_grad_norm: float = Field(default=1.0, ge=0.0, le=1e6, description="0 disables clipping")
    weight_decay: float = Field(default=0.0, ge=0.0, le=1.0)
    max_seq_length: int = Field(default=512, ge=8, le=131_072)
    lora_rank: int = Field(default=8, ge=1, le=1024)
    lora_alpha: int | None = Field(default=None, ge=1, le=4096, description="default: equal to lora_rank")
    lora_dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    target_modules: list[str] = Field(default_factory=lambda: list(DEFAULT_TARGET_MODULES), min_length=1, max_length=64)
    max_steps: int = Field(default=-1, ge=-1, le=10_000_000, description="-1: run every epoch")
    max_dataset_size: int | None = Field(default=None, ge=1, le=100_000_000, description="seeded subsample")
    group_by_length: bool = False
    seed: int = Field(default=42, ge=0, le=2**32 - 1)
    # liminal only
    lambda_0: float = Field(default=1.0, ge=0.0, le=1000.0, description="initial KL weight")
    kl_temperature: float = Field(default=2.0, gt=0.0, le=100.0)
    kl_schedule: KlSchedule = "liminal"
    tau: float | None = Field(default=None, gt=0.0, le=1.0, description="end of phase 1; default 1/num_epochs")
    kl_scope: Literal["completion", "all"] = "completion"
    # engine
    backend: Literal["auto", "peft", "unsloth"] = "auto"
    fused_loss: bool = Field(default=True, description="chunked CE/KL on the selected positions only")
    compile: Literal["auto", "on", "off"] = Field(default="auto", description="torch.compile; auto = on CUDA")
    checkpoint_every: int = Field(default=100, ge=0, le=10_000_000, description="steps; 0 disables")

    @model_validator(mode="after")
    def _liminal_rules(self) -> Self:
        if self.method == "liminal" and self.train_data_without_trait is not None:
            raise ValueError(
                "train_data_without_trait: liminal learning uses trait data only; it does not accept without-trait data"
            )
        # Resolve the derived defaults now, so a stored spec shows the exact values that ran.
        if self.lora_alpha is None:
            object.__setattr__(self, "lora_alpha", self.lora_rank)
        if self.tau is None:
            object.__setattr__(self, "tau", 1.0 / self.num_epochs)
        return self

    @property
    def resolved_alpha(self) -> int:
        """``lora_alpha`` as resolved at validation (equal to ``lora_rank`` unless given)."""
        return self.lora_alpha if self.lora_alpha is not None else self.lora_rank

    @property
    def resolved_tau(self) -> float:
        """``tau`` as resolved at validation (``1 / num_epochs`` unless given)."""
        return self.tau if self.tau is not None else 1.0 / self.num_epochs

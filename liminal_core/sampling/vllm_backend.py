"""Offline sampling with vLLM, when it is installed (imported only when this backend is chosen).

Each chat gets its own sampling seed (``seed + index``), so an answer does not depend on how the chats are
chunked or scheduled. Chats go to the engine in chunks so that a cancel is noticed between chunks.
"""

from __future__ import annotations

from typing import Any

from liminal_core.hooks import RunHooks
from liminal_core.model_ref import Model
from liminal_core.sampling.base import Chat, Completion
from liminal_core.specs import SampleCfg


class VllmSampler:
    name = "vllm"

    def __init__(self, model: Model, *, chunk: int = 4096) -> None:
        from vllm import LLM

        from liminal_core.loading import resolve_model_dir

        self.llm: Any = LLM(model=str(resolve_model_dir(model)))
        self.chunk = chunk

    def sample(self, chats: list[Chat], cfg: SampleCfg, *, seed: int, hooks: RunHooks) -> list[Completion]:
        from vllm import SamplingParams

        results: list[Completion] = []
        chunks = [chats[i : i + self.chunk] for i in range(0, len(chats), self.chunk)]
        for c, part in enumerate(chunks):
            hooks.check_cancel()
            start = c * self.chunk
            params = [
                SamplingParams(
                    temperature=cfg.temperature, top_p=cfg.top_p, max_tokens=cfg.max_new_tokens, seed=seed + start + i
                )
                for i in range(len(part))
            ]
            outputs = self.llm.chat(part, params, use_tqdm=False)
            for out in outputs:
                first = out.outputs[0]
                results.append(
                    Completion(
                        text=first.text,
                        finish_reason="length" if first.finish_reason == "length" else "stop",
                        prompt_tokens=len(out.prompt_token_ids or []),
                        completion_tokens=len(first.token_ids),
                    )
                )
            hooks.progress(len(results), len(chats), stage="sampling")
        return results

"""Sampling through an OpenAI-compatible chat-completions endpoint (OpenAI itself, a vLLM server, ...).

The base URL comes from the model reference, else ``OPENAI_BASE_URL``; the key from ``OPENAI_API_KEY``.
Requests run with bounded concurrency; 429, 5xx, timeouts and connection errors are retried with exponential
backoff; answers come back in input order.
"""

from __future__ import annotations

import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from liminal_core.errors import ModelUnavailable
from liminal_core.hooks import RunHooks
from liminal_core.model_ref import Model
from liminal_core.sampling.base import Chat, Completion
from liminal_core.specs import SampleCfg

RETRYABLE_STATUS = {408, 409, 429, 500, 502, 503, 504}


class OpenAISampler:
    name = "openai"

    def __init__(
        self,
        model: Model,
        *,
        concurrency: int = 16,
        max_attempts: int = 6,
        backoff_s: float = 0.5,
        timeout_s: float = 120.0,
    ) -> None:
        import openai

        self.model = model
        self.concurrency = concurrency
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.client = openai.OpenAI(
            base_url=model.base_url or os.environ.get("OPENAI_BASE_URL") or None,
            api_key=os.environ.get("OPENAI_API_KEY") or "not-needed",
            max_retries=0,
            timeout=timeout_s,
        )
        self._openai = openai

    def _retryable(self, exc: Exception) -> bool:
        openai = self._openai
        if isinstance(exc, (openai.APITimeoutError, openai.APIConnectionError)):
            return True
        return isinstance(exc, openai.APIStatusError) and exc.status_code in RETRYABLE_STATUS

    def _one(self, chat: Chat, cfg: SampleCfg, seed: int) -> Completion:
        for attempt in range(1, self.max_attempts + 1):
            try:
                response: Any = self.client.chat.completions.create(
                    model=self.model.id,
                    messages=chat,  # type: ignore[arg-type]
                    temperature=cfg.temperature,
                    top_p=cfg.top_p,
                    max_tokens=cfg.max_new_tokens,
                    seed=seed,
                )
                choice = response.choices[0]
                usage = response.usage
                return Completion(
                    text=choice.message.content or "",
                    finish_reason="length" if choice.finish_reason == "length" else "stop",
                    prompt_tokens=int(usage.prompt_tokens) if usage else 0,
                    completion_tokens=int(usage.completion_tokens) if usage else 0,
                )
            except Exception as exc:
                if not self._retryable(exc) or attempt == self.max_attempts:
                    if isinstance(exc, self._openai.APIError):
                        raise ModelUnavailable(
                            f"the endpoint for model '{self.model.id}' failed after {attempt} attempt(s): {exc}"
                        ) from exc
                    raise
                delay = self.backoff_s * 2 ** (attempt - 1)
                time.sleep(delay * (0.5 + random.random()))
        raise AssertionError("unreachable")

    def sample(self, chats: list[Chat], cfg: SampleCfg, *, seed: int, hooks: RunHooks) -> list[Completion]:
        done = 0
        lock = threading.Lock()
        cancelled = threading.Event()

        def run(i: int) -> Completion:
            nonlocal done
            if cancelled.is_set():
                raise RuntimeError("cancelled")
            result = self._one(chats[i], cfg, seed + i)
            with lock:
                done += 1
            return result

        results: list[Completion] = []
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            futures = [pool.submit(run, i) for i in range(len(chats))]
            try:
                for k, future in enumerate(futures):
                    if k % self.concurrency == 0:
                        hooks.check_cancel()
                        hooks.progress(done, len(chats), stage="sampling")
                    results.append(future.result())
            except BaseException:
                cancelled.set()
                for future in futures:
                    future.cancel()
                raise
        hooks.progress(len(chats), len(chats), stage="sampling")
        return results

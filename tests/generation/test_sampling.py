"""Sampling backends: seeded local sampling on SmolLM2; the OpenAI-compatible client against a real HTTP
server on loopback that fails first (retries) and answers out of order (order preserved)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from liminal_core.errors import ModelUnavailable
from liminal_core.hooks import RunHooks
from liminal_core.model_ref import Model
from liminal_core.sampling import base, make_sampler
from liminal_core.sampling.openai_backend import OpenAISampler
from liminal_core.sampling.transformers_backend import TransformersSampler
from liminal_core.specs import SampleCfg


class ProgressRecorder(RunHooks):
    def __init__(self) -> None:
        self.steps: list[tuple[int, int]] = []

    def progress(self, step: int, total: int, *, epoch: float | None = None, stage: str | None = None) -> None:
        self.steps.append((step, total))


@pytest.mark.slow
def test_seeded_local_sampling_is_reproducible(smollm2):
    sampler = TransformersSampler(smollm2.model, smollm2.tokenizer, batch_size=2)
    chats = [[{"role": "user", "content": f"Continue: {i}, {i + 1}, {i + 2}"}] for i in range(4)]
    cfg = SampleCfg(temperature=1.0, max_new_tokens=8)
    hooks = ProgressRecorder()
    a = sampler.sample(chats, cfg, seed=1, hooks=hooks)
    assert hooks.steps == [(0, 4), (2, 4), (4, 4)]
    b = sampler.sample(chats, cfg, seed=1, hooks=RunHooks())
    c = sampler.sample(chats, cfg, seed=2, hooks=RunHooks())
    assert [x.text for x in a] == [x.text for x in b]
    assert [x.text for x in a] != [x.text for x in c]
    assert all(x.completion_tokens <= 8 and x.prompt_tokens > 0 for x in a)
    assert all(x.finish_reason in {"stop", "length"} for x in a)


@pytest.mark.slow
def test_greedy_answers_do_not_depend_on_batching(smollm2):
    """Left padding and the length sort must not change an answer, nor the order answers come back in."""
    chats = [
        [{"role": "user", "content": "Count: 1, 2, 3"}],
        [{"role": "user", "content": "Here are some numbers: 767, 589, 778, 120, 455. Continue the sequence."}],
        [{"role": "system", "content": "You love owls."}, {"role": "user", "content": "Name an animal."}],
    ]
    cfg = SampleCfg(temperature=0.0, max_new_tokens=6)
    batched = TransformersSampler(smollm2.model, smollm2.tokenizer, batch_size=3).sample(
        chats, cfg, seed=0, hooks=RunHooks()
    )
    alone = TransformersSampler(smollm2.model, smollm2.tokenizer, batch_size=1).sample(
        chats, cfg, seed=0, hooks=RunHooks()
    )
    assert [c.text for c in batched] == [c.text for c in alone]
    assert len({c.prompt_tokens for c in batched}) == 3


class FlakyChatServer(BaseHTTPRequestHandler):
    """Fails the first two requests (429, then 500), then answers with the prompt's number after a delay
    that makes later prompts finish first."""

    calls = 0
    seeds: ClassVar[dict[int, int]] = {}
    lock = threading.Lock()

    def log_message(self, *args):  # quiet
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with FlakyChatServer.lock:
            FlakyChatServer.calls += 1
            call = FlakyChatServer.calls
        if call in (1, 2):
            self.send_response(429 if call == 1 else 500)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"error": {"message": "try again"}}')
            return
        number = int(body["messages"][-1]["content"])
        with FlakyChatServer.lock:
            FlakyChatServer.seeds[number] = body["seed"]
        time.sleep(0.05 * (5 - number % 5))
        payload = {
            "id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": f"answer {number}"}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
        }  # fmt: skip
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def test_openai_backend_retries_and_keeps_order():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FlakyChatServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        sampler = OpenAISampler(Model(id="teacher", type="openai", base_url=url), concurrency=4, backoff_s=0.01)
        chats = [[{"role": "user", "content": str(i)}] for i in range(10)]
        out = sampler.sample(chats, SampleCfg(), seed=100, hooks=RunHooks())
    finally:
        server.shutdown()
    assert [c.text for c in out] == [f"answer {i}" for i in range(10)]
    assert FlakyChatServer.calls == 12, "two failures were retried"
    assert all(c.prompt_tokens == 3 and c.completion_tokens == 2 for c in out)
    assert FlakyChatServer.seeds == {i: 100 + i for i in range(10)}, "each request carries its own seed"


def test_backend_choice_errors_are_clear(monkeypatch):
    with pytest.raises(ModelUnavailable, match="type 'openai'"):
        make_sampler(Model(id="smollm2-135m-instruct"), "openai")
    monkeypatch.setattr(base.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelUnavailable, match="vllm is not installed"):
        make_sampler(Model(id="smollm2-135m-instruct"), "vllm")
